// The outbox outlives the page and the session: what a user queued (messages, edits,
// reactions, deletions) is kept in the client's storage under that user, taken up by
// the next client of the same user on the same storage (a reload, or signing out and in
// again), sent with its original client_msg_id, and stored exactly once, even when the
// server had already stored it before the page went away. Another user signing in on the
// same storage sends none of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatdClient, MemoryStorage } from '../../src/web/chatd.js';
import { startNodes, FlakyProxy, newClient, registerClient, storedHistory, waitFor, sleep } from './support.mjs';

const PASSWORD = 'password-123';

// A registered user's email (registerClient makes it from the username).
const emailOf = (client) => `${client.user.username}@example.com`;

test('a reload takes up the stored outbox: each message stored once, lost acks included', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const proxy = await new FlakyProxy(t, node.port).listen();
  const storage = new MemoryStorage(); // the browser's localStorage, shared by the reloads
  const alice = await registerClient(t, proxy.url, 'alice', { storage });
  const room = await alice.api.createRoom({ name: `persist-${Date.now()}` });
  await alice.connect();

  // 1. Acks lost: the server stores, the page never hears of it.
  proxy.mode = 'mute';
  const lost = ['lost ack 1', 'lost ack 2'].map((text) => alice.send(room.id, text));
  const watcher = await registerClient(t, node.url, 'watcher');
  await watcher.api.joinRoom(room.id);
  await waitFor(async () => (await storedHistory(watcher, room.id)).filter((m) => m.kind !== 'system').length === 2,
    { what: 'the server to store the two sends' });
  // 2. Then offline: more are queued.
  proxy.mode = 'refuse';
  proxy.cut();
  await waitFor(() => alice.state === 'reconnecting', { what: 'alice to notice' });
  const offline = ['offline 1', 'offline 2', 'offline 3'].map((text) => alice.send(room.id, text));
  const ids = [...lost, ...offline].map((p) => p.clientMsgId);
  await alice.outboxSaved();
  assert.deepEqual(JSON.parse(storage.getItem(`chatd.session.outbox.${alice.user.id}`)).map((e) => e.client_msg_id), ids,
    'the five unacknowledged sends are in storage, in send order');

  // 3. The page reloads (a new client on the same storage) while the network is back.
  alice.close();
  proxy.mode = 'pass';
  const again = newClient(t, proxy.url, { storage });
  const restored = new Promise((resolve) => again.once('outbox_restored', resolve));
  const acks = [];
  again.on('ack', (a) => acks.push(a.client_msg_id));
  assert.equal((await again.restore()).id, alice.user.id, 'the session is restored');
  assert.deepEqual((await restored).pending.map((p) => p.content),
    ['lost ack 1', 'lost ack 2', 'offline 1', 'offline 2', 'offline 3'], 'outbox_restored names them');
  assert.ok(again.pending().every((p) => p.restored), 'pending() marks them restored');
  await again.connect();
  await waitFor(() => acks.length === 5, { what: 'five acks after the reload' });
  assert.deepEqual(acks, ids, 'acked with the original client_msg_ids, in send order');
  assert.equal(again.pendingCount, 0);
  await again.outboxSaved();
  assert.equal(storage.getItem(`chatd.session.outbox.${alice.user.id}`), null, 'nothing left in storage');

  const stored = (await storedHistory(watcher, room.id)).filter((m) => m.kind !== 'system');
  assert.deepEqual(stored.map((m) => m.content), ['lost ack 1', 'lost ack 2', 'offline 1', 'offline 2', 'offline 3'],
    'each stored exactly once, in send order');
  assert.deepEqual(stored.map((m) => m.client_msg_id), ids);
});

test('signing out and in again sends what was left; another user on the same browser does not', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const proxy = await new FlakyProxy(t, node.port).listen();
  const storage = new MemoryStorage();
  const alice = await registerClient(t, proxy.url, 'alice', { storage });
  const email = emailOf(alice);
  const room = await alice.api.createRoom({ name: `relogin-${Date.now()}` });
  const first = await alice.api.postMessage(room.id, 'a message to react to');

  // Offline: a message, an edit and a reaction wait.
  proxy.mode = 'refuse';
  const sent = alice.send(room.id, 'written before signing out');
  const edited = alice.edit(room.id, first.id, 'edited before signing out');
  const reacted = alice.react(room.id, first.id, '👍');
  assert.deepEqual(alice.pending().map((p) => p.event), ['send_message', 'edit_message', 'react']);

  // The session ends (the server cannot be told: it is a local sign-out).
  const aliceId = alice.user.id;
  const ended = new Promise((resolve) => alice.once('session_ended', resolve));
  await alice.logout().catch(() => {});
  const event = await ended;
  assert.equal(event.user.id, aliceId, 'session_ended names the user');
  assert.deepEqual(event.unsent.map((p) => p.event), ['send_message', 'edit_message', 'react'], 'session_ended lists what was not sent');
  for (const p of [sent, edited, reacted]) await assert.rejects(p, { code: 'session_ended' });

  // bob signs in on the same browser: alice's changes are not his.
  proxy.mode = 'pass';
  const bob = await registerClient(t, node.url, 'bob');
  const bobEmail = emailOf(bob);
  await bob.logout();
  const bobHere = newClient(t, proxy.url, { storage });
  await bobHere.login({ email: bobEmail, password: PASSWORD });
  assert.equal(bobHere.pendingCount, 0, 'another user takes up nothing');
  await bobHere.logout();
  bobHere.close();

  // alice signs in again: her three changes go out.
  const back = newClient(t, proxy.url, { storage });
  const acks = [];
  back.on('ack', (a) => acks.push(a.event));
  await back.login({ email, password: PASSWORD });
  assert.equal(back.pendingCount, 3, 'her three changes are waiting again');
  await back.connect();
  await waitFor(() => acks.length === 3, { what: 'the three changes acknowledged' });
  // Sends go through the writers, changes through the workers: acks may cross.
  assert.deepEqual(acks.sort(), ['edit_message', 'react', 'send_message']);
  const page = await back.api.messages(room.id);
  const byContent = page.messages.filter((m) => m.kind === 'message' || !m.kind);
  assert.deepEqual(byContent.map((m) => m.content).sort(), ['edited before signing out', 'written before signing out']);
  const target = page.messages.find((m) => m.id === first.id);
  assert.deepEqual(target.reactions, { '👍': 1 }, 'the reaction applied once');
  assert.ok(target.edited_at, 'the edit applied');
});

test('edits, reactions and deletions go through the outbox and reach the other members', { timeout: 30_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice');
  const bob = await registerClient(t, node.url, 'bob');
  const room = await alice.api.createRoom({ name: `changes-${Date.now()}` });
  await bob.api.joinRoom(room.id);
  const seen = [];
  bob.on('message', (m) => { if (m.room_id === room.id) seen.push(m); });
  await Promise.all([alice.connect(), bob.connect()]);
  await bob.subscribe(room.id, { since: 0 });
  const root = await alice.send(room.id, 'root');
  const reply = await bob.send(room.id, 'an answer', { replyTo: root.id });
  await alice.edit(room.id, root.id, 'root, edited');
  await bob.react(room.id, root.id, '🎉');
  await bob.unreact(room.id, root.id, '🎉');
  await bob.react(room.id, root.id, '👀');
  await alice.deleteMessage(room.id, reply.id);
  await assert.rejects(bob.edit(room.id, root.id, 'not mine'), { code: 'forbidden' });
  await waitFor(() => seen.some((m) => m.kind === 'message_deleted'), { what: 'bob to see the deletion' });
  assert.deepEqual(seen.filter((m) => m.kind !== 'system').map((m) => m.kind), [
    'message', 'message', 'message_edited', 'reaction_added', 'reaction_removed', 'reaction_added', 'message_deleted',
  ]);
  assert.equal(seen.find((m) => m.content === 'an answer').reply_to, root.id, 'the reply names its root');
  const thread = await alice.api.thread(room.id, root.id);
  assert.deepEqual(thread.messages.map((m) => m.id), [reply.id], 'the thread lists the reply');
  await sleep(50);
});

test('discarding a user\'s unsent changes leaves other users\' alone', { timeout: 30_000 }, async (t) => {
  // Without a server: the storage alone decides.
  const storage = new MemoryStorage();
  storage.setItem('chatd.session.outbox.u1', JSON.stringify([
    { client_msg_id: 'c1', event: 'send_message', data: { room_id: 'r1', content: 'kept' }, queuedAt: 1 },
    { client_msg_id: 'c2', event: 'bogus', data: { room_id: 'r1' }, queuedAt: 2 },
  ]));
  const client = new ChatdClient({ url: 'http://127.0.0.1:9', storage, WebSocket: class {}, fetch: async () => { throw new Error('offline'); } });
  t.after(() => client.close());
  assert.equal(client.pendingCount, 0, 'nothing before a user is known');
  await client.discardUnsent('u2');
  assert.ok(storage.getItem('chatd.session.outbox.u1'), "discarding another user's leaves this one's");
  await client.discardUnsent('u1');
  assert.equal(storage.getItem('chatd.session.outbox.u1'), null, 'discarded');
});
