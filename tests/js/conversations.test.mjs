// The conversations extension through the library: read state shared by two clients of
// one user (socket and REST marks, read_state, exact unread counts through a
// reconnect), and memberships that end (kick, ban, deletion) ending the room on the
// client: a left_room with its reason, no rejoin after reconnects. Also the REST
// helpers of private and direct rooms, invitations, roles and mutes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSystemEntry } from '../../src/web/chatd.js';
import { startNodes, registerClient, newClient, record, waitFor, sleep } from './support.mjs';

const PASSWORD = 'password-123';

// A WebSocket that keeps what the client sent.
function recordingSocket(sent) {
  return class extends WebSocket {
    send(text) {
      sent.push(JSON.parse(text));
      super.send(text);
    }
  };
}

// A WebSocket that keeps every frame the server sent, parsed, before the library sees
// it: what reaches the socket, not only what the library passes on.
function rawSocket(frames) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        try {
          frames.push(JSON.parse(e.data));
        } catch {
          frames.push({ event: '__unparsed', data: String(e.data) });
        }
      });
    }
  };
}

// Whether a server frame carries anything of room `id` (a batch: any of its messages).
function ofRoom(frame, id) {
  const d = frame.data;
  if (Array.isArray(d)) return d.some((m) => m && m.room_id === id);
  return Boolean(d) && (d.room_id === id || d.room?.id === id);
}

async function unreadOf(client, roomId) {
  const page = await client.api.myRooms();
  const r = page.rooms.find((x) => x.id === roomId);
  assert.ok(r, `room ${roomId} is in GET /me/rooms`);
  return r;
}

test('read state across two clients of one user, exact through a reconnect', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const a1 = await registerClient(t, node.url, 'alice');
  const sent2 = [];
  const a2 = newClient(t, node.url, { WebSocket: recordingSocket(sent2) });
  const marks2 = () => sent2.filter((f) => f.event === 'mark_read').map((f) => f.data.seq);
  await a2.login({ email: `${a1.user.username}@example.com`, password: PASSWORD });
  const bob = await registerClient(t, node.url, 'bob');
  const room = await a1.api.createRoom({ name: `reads-${Date.now()}` });
  await bob.api.joinRoom(room.id); // seq 1: a system entry

  const seen1 = record(a1, room.id);
  const states2 = [];
  a2.on('read_state', (r) => { if (r.room_id === room.id) states2.push(r.last_read_seq); });
  const receipts = [];
  bob.on('receipt', (r) => { if (r.room_id === room.id) receipts.push(r); });
  await Promise.all([a1.connect(), a2.connect(), bob.connect()]);
  await Promise.all([a1, a2, bob].map((c) => c.subscribe(room.id, { since: 0 })));
  for (let i = 1; i <= 5; i++) await bob.send(room.id, `hello ${i}`); // seqs 2..6
  await waitFor(() => a1.position(room.id) === 6 && a2.position(room.id) === 6, { what: 'both of alice\'s clients at seq 6' });
  assert.deepEqual(seen1.seqs, [1, 2, 3, 4, 5, 6]);
  assert.equal(seen1.system, 1, 'bob\'s join is a system entry, in order with the messages');
  assert.deepEqual(seen1.problems, []);

  let mine = await unreadOf(a1, room.id);
  assert.equal(mine.role, 'owner');
  // Unread counts others' messages only: bob's join (seq 1) is not one.
  assert.deepEqual([mine.last_seq, mine.last_read_seq, mine.unread], [6, 0, 5]);
  assert.equal(mine.last_message.content, 'hello 5');
  assert.equal((await unreadOf(bob, room.id)).role, 'member');

  // On the socket: the other client hears of it.
  assert.equal(await a1.markRead(room.id, 4), 4);
  await waitFor(() => states2.includes(4), { what: 'read_state 4 on the second client' });
  assert.equal(a2.readPosition(room.id), 4);
  await waitFor(async () => (await unreadOf(a2, room.id)).unread === 2, { what: 'unread 2' });
  // Never backwards: a lower (or the same) mark sends nothing and changes nothing.
  assert.equal(await a2.markRead(room.id, 2), 4);
  assert.equal(await a2.markRead(room.id, 4), 4);
  assert.equal(a2.readPosition(room.id), 4);
  assert.deepEqual(marks2(), []);
  // Bob, in the room, gets a receipt for alice.
  await waitFor(() => receipts.some((r) => r.user_id === a1.user.id && r.seq === 4), { what: 'bob\'s receipt' });

  // Over REST when the room is not joined on the socket.
  a1.unsubscribe(room.id);
  assert.equal(await a1.markRead(room.id, 5), 5);
  await waitFor(() => states2.includes(5), { what: 'read_state 5 on the second client' });
  mine = await unreadOf(a2, room.id);
  assert.deepEqual([mine.last_read_seq, mine.unread], [5, 1]);

  // The second client misses marks and messages while offline; after the reconnect its
  // position, GET /me/rooms and its read position agree exactly.
  a2.disconnect();
  for (let i = 6; i <= 8; i++) await bob.send(room.id, `hello ${i}`); // seqs 7..9
  assert.equal(await a1.markRead(room.id, 8), 8);
  assert.ok(!states2.includes(8), 'offline: no read_state');
  await a2.connect();
  await waitFor(() => a2.position(room.id) === 9, { what: 'the second client to catch up' });
  mine = await unreadOf(a2, room.id);
  assert.deepEqual([mine.last_seq, mine.last_read_seq, mine.unread], [9, 8, 1]);
  assert.equal(a2.readPosition(room.id), 8, 'myRooms told the client its read position');
  // Reading to the end from there: read_state reaches the other client, unread is 0.
  const states1 = [];
  a1.on('read_state', (r) => { if (r.room_id === room.id) states1.push(r.last_read_seq); });
  assert.equal(await a2.markRead(room.id, 9), 9);
  assert.deepEqual(marks2(), [9], 'on the socket, where the room is joined');
  await waitFor(() => states1.includes(9), { what: 'read_state 9 on the first client' });
  assert.equal((await unreadOf(a1, room.id)).unread, 0);
  // Bob's read state is his own: he joined (seq 1) and wrote everything after it, and a
  // member has read what it wrote.
  await waitFor(async () => {
    const b = await unreadOf(bob, room.id);
    return b.last_read_seq === 9 && b.unread === 0;
  }, { what: 'bob to have read his own messages' });

  // Walking the pages of GET /me/rooms: every room once, most recent activity first.
  for (let i = 0; i < 4; i++) await a1.api.createRoom({ name: `reads-extra-${i}-${Date.now()}` });
  const all = await a1.api.allMyRooms({ limit: 2 });
  assert.equal(all.length, 5);
  assert.equal(new Set(all.map((r) => r.id)).size, 5);
  const times = all.map((r) => r.last_activity_at);
  assert.deepEqual(times, [...times].sort().reverse(), 'most recent activity first');
});

test('kick, ban and deletion end the room on the client; private and direct rooms', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice');
  const rawB = [];
  const bob = await registerClient(t, node.url, 'bob', { WebSocket: rawSocket(rawB) });
  const carol = await registerClient(t, node.url, 'carol');
  const room = await alice.api.createRoom({ name: `kick-${Date.now()}` });
  assert.equal(room.visibility, 'public');
  await bob.api.joinRoom(room.id);
  await carol.api.joinRoom(room.id);
  const seenA = record(alice, room.id);
  const systemA = [];
  alice.on('message', (m) => { if (m.room_id === room.id && isSystemEntry(m)) systemA.push(m); });
  const left = { bob: [], carol: [] };
  bob.on('left_room', (e) => left.bob.push(e));
  carol.on('left_room', (e) => left.carol.push(e));
  const joinedB = [];
  bob.on('joined', (j) => joinedB.push(j.room_id));
  const seenB = record(bob, room.id);
  await Promise.all([alice.connect(), bob.connect(), carol.connect()]);
  await Promise.all([alice, bob, carol].map((c) => c.subscribe(room.id, { since: 0 })));
  await alice.send(room.id, 'before');

  // Roles and mutes.
  await alice.api.setRole(room.id, bob.user.id, 'admin');
  let members = await alice.api.members(room.id);
  assert.equal(members.find((m) => m.id === bob.user.id).role, 'admin');
  assert.equal(members.find((m) => m.id === alice.user.id).role, 'owner');
  await alice.api.setRole(room.id, bob.user.id, 'member');
  await alice.api.mute(room.id, carol.user.id);
  await assert.rejects(carol.send(room.id, 'muted?'), (e) => e.code === 'muted');
  members = await alice.api.members(room.id);
  assert.equal(members.find((m) => m.id === carol.user.id).muted, true);
  await alice.api.unmute(room.id, carol.user.id);
  await carol.send(room.id, 'unmuted');
  assert.deepEqual(await bob.api.setNotifications(room.id, true), { room_id: room.id, notifications_muted: true, notification_level: 'none' });
  assert.deepEqual(await bob.api.setNotificationLevel(room.id, 'mentions'), { room_id: room.id, notifications_muted: false, notification_level: 'mentions' });
  await assert.rejects(bob.api.setNotificationLevel(room.id, 'loud'), (e) => e.code === 'validation_failed');
  // A mention of bob reaches his mentions page.
  const mention = await alice.api.postMessage(room.id, `ping @${bob.user.username}`);
  assert.deepEqual(mention.mentions, [bob.user.id]);
  const page = await bob.api.mentions({ limit: 10 });
  assert.equal(page.mentions[0].message.id, mention.id);
  assert.equal(page.mentions[0].unread, true);

  // The kick: bob's client drops the room, with the reason, and never rejoins it.
  await alice.api.kick(room.id, bob.user.id);
  await waitFor(() => left.bob.length === 1, { what: 'bob\'s left_room' });
  assert.deepEqual(left.bob[0], { room_id: room.id, reason: 'kicked' });
  assert.ok(!bob.rooms.includes(room.id), 'the room left bob\'s joined set');
  await waitFor(() => systemA.some((m) => m.data.type === 'kicked'), { what: 'alice to see the kick entry' });
  const kickEntry = systemA.find((m) => m.data.type === 'kicked');
  assert.equal(kickEntry.data.user_id, bob.user.id);
  assert.equal(kickEntry.data.by, alice.user.id);
  assert.equal(typeof kickEntry.content, 'string');
  const joinsBefore = joinedB.length;
  const bobSeqs = seenB.seqs.length;
  // Read on bob's raw socket: the library drops frames of rooms it has not joined, so
  // a server leak would not show in what it passes on.
  const kickedAt = rawB.findIndex((f) => f.event === 'left_room' && f.data?.room_id === room.id);
  assert.ok(kickedAt >= 0, 'bob\'s socket got left_room');
  bob.reconnect();
  await waitFor(() => bob.state === 'open', { what: 'bob to reconnect' });
  await alice.send(room.id, 'after the kick');
  alice.typing(room.id);
  await sleep(500);
  assert.equal(joinedB.length, joinsBefore, 'no rejoin of the room after the reconnect');
  assert.equal(seenB.seqs.length, bobSeqs, 'nothing of the room reaches bob');
  const leaked = rawB.slice(kickedAt + 1).filter((f) => ofRoom(f, room.id) && f.event !== 'membership');
  assert.deepEqual(leaked, [], 'nothing of the room reaches bob\'s socket after the kick');
  await assert.rejects(bob.send(room.id, 'still here?'), (e) => e.code === 'not_member');
  assert.deepEqual(seenA.problems, [], 'alice: system entries and messages in seq order, no gap');

  // A ban: the same, and no way back in.
  await alice.api.ban(room.id, carol.user.id);
  await waitFor(() => left.carol.length === 1, { what: 'carol\'s left_room' });
  assert.equal(left.carol[0].reason, 'banned');
  await assert.rejects(carol.api.joinRoom(room.id), (e) => e.code === 'banned');
  await alice.api.unban(room.id, carol.user.id);
  await carol.api.joinRoom(room.id);

  // A deletion reaches every joined client, the owner's included.
  const doomed = await alice.api.createRoom({ name: `doomed-${Date.now()}` });
  await bob.join(doomed.id);
  await alice.subscribe(doomed.id, { since: 0 });
  const leftA = [];
  alice.on('left_room', (e) => leftA.push(e));
  await alice.api.deleteRoom(doomed.id);
  await waitFor(() => left.bob.some((e) => e.room_id === doomed.id), { what: 'bob told of the deletion' });
  assert.equal(left.bob.find((e) => e.room_id === doomed.id).reason, 'deleted');
  await waitFor(() => leftA.some((e) => e.room_id === doomed.id && e.reason === 'deleted'), { what: 'alice told of the deletion' });
  assert.deepEqual(alice.rooms, [room.id]);

  // A private room: invisible until invited; the invitation is accepted by joining.
  const secret = await alice.api.createRoom({ name: `secret-${Date.now()}`, visibility: 'private' });
  assert.equal(secret.visibility, 'private');
  await assert.rejects(bob.api.getRoom(secret.id), (e) => e.code === 'room_not_found');
  assert.ok(!(await bob.api.listRooms()).some((r) => r.id === secret.id), 'not listed to others');
  // Bob's client hears of the invitation at once (a `membership` event), though it is
  // joined to no such room; so does it of a direct room alice opens with him.
  const standing = [];
  bob.on('membership', (e) => standing.push(e));
  await alice.api.invite(secret.id, bob.user.id);
  await waitFor(() => standing.length === 1, { what: 'bob told of the invitation' });
  assert.equal(standing[0].change, 'invited');
  assert.equal(standing[0].room.id, secret.id);
  assert.equal(standing[0].by.username, alice.user.username);
  const invites = await bob.api.myInvites();
  assert.equal(invites.length, 1);
  assert.equal(invites[0].room.id, secret.id);
  assert.equal(invites[0].invited_by.username, alice.user.username);
  await bob.join(secret.id);
  assert.deepEqual(await bob.api.myInvites(), []);
  await alice.api.updateRoom(secret.id, { name: `secret-renamed-${Date.now()}` });
  const secretPage = await bob.api.messages(secret.id);
  assert.deepEqual(secretPage.messages.map((m) => m.data?.type), ['renamed', 'joined']);

  // A direct room: one per pair, whoever opens it.
  const dm = await alice.api.openDirect(bob.user.id);
  assert.equal(dm.visibility, 'direct');
  await waitFor(() => standing.length === 2, { what: 'bob told of the direct room' });
  assert.deepEqual([standing[1].change, standing[1].room_id], ['direct', dm.id]);
  assert.equal(dm.other_user.id, bob.user.id);
  const dmBack = await bob.api.openDirect(alice.user.id);
  assert.equal(dmBack.id, dm.id);
  assert.equal(dmBack.other_user.username, alice.user.username);
  const bobsDm = (await bob.api.myRooms()).rooms.find((r) => r.id === dm.id);
  assert.equal(bobsDm.other_user.id, alice.user.id);
  await assert.rejects(alice.api.invite(dm.id, carol.user.id), (e) => e.code === 'invalid_payload');
});
