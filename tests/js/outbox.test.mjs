// Sends whose acks were lost, and sends made while offline, are re-sent after the
// reconnect with their client_msg_id: each is stored exactly once and every promise
// resolves with the stored message's id and seq.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNodes, FlakyProxy, registerClient, record, assertComplete, storedHistory, waitFor, sleep,
} from './support.mjs';

test('unacknowledged sends are re-sent after a reconnect and stored exactly once', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const proxy = await new FlakyProxy(t, node.port).listen();
  // alice talks through the proxy without joining the room (sending does not need it),
  // so that only an ack can settle her sends; bob, connected directly, watches the room.
  const framesSent = []; // client_msg_id of every send_message alice puts on a socket
  class CountingSocket extends WebSocket {
    send(text) {
      const frame = JSON.parse(text);
      if (frame.event === 'send_message') framesSent.push(frame.data.client_msg_id);
      super.send(text);
    }
  }
  const alice = await registerClient(t, proxy.url, 'alice', { WebSocket: CountingSocket });
  const bob = await registerClient(t, node.url, 'bob');
  const room = await alice.api.createRoom({ name: `outbox-${Date.now()}` });
  await bob.api.joinRoom(room.id);
  const seenByBob = record(bob, room.id);
  await Promise.all([alice.connect(), bob.connect()]);
  await bob.join(room.id, { since: 0 });

  // 1. The server stores and acks, but nothing reaches alice.
  proxy.mode = 'mute';
  const expected = [];
  const sends = [];
  for (let i = 0; i < 10; i++) {
    expected.push(`lost ack ${i}`);
    sends.push(alice.send(room.id, `lost ack ${i}`));
  }
  await waitFor(() => seenByBob.contents.length === 10, { what: 'bob to see the 10 stored messages' });
  await sleep(200);
  assert.equal(alice.pendingCount, 10, 'no ack reached alice');
  assert.ok(alice.pending().every((p) => p.attempts === 1), 'each sent once so far');

  // 2. The connection dies; alice cannot reconnect and keeps sending (queued).
  proxy.mode = 'refuse';
  proxy.cut();
  await waitFor(() => alice.state === 'reconnecting', { what: 'alice to notice' });
  for (let i = 0; i < 5; i++) {
    expected.push(`offline ${i}`);
    sends.push(alice.send(room.id, `offline ${i}`));
  }
  assert.equal(alice.pendingCount, 15);
  assert.deepEqual(alice.pending(room.id).map((p) => p.content), expected, 'queued in send order');
  await sleep(500);

  // 3. The network comes back: everything is re-sent, de-duplicated by the server.
  proxy.mode = 'pass';
  const acks = await Promise.all(sends);
  assert.equal(alice.pendingCount, 0);
  const times = (id) => framesSent.filter((x) => x === id).length;
  assert.deepEqual(sends.map((s) => times(s.clientMsgId)), [...Array(10).fill(2), ...Array(5).fill(1)],
    'the 10 unacknowledged were sent again, the 5 queued once');
  // After the room's membership entries (system entries).
  const base = acks[0].seq - 1;
  assert.deepEqual(acks.map((a) => a.seq), expected.map((_, i) => base + i + 1), 'acks carry the stored seqs, in send order');
  for (const a of acks) assert.equal(a.room_id, room.id);

  const stored = await storedHistory(bob, room.id);
  assert.deepEqual(stored.map((m) => m.content), expected, 'each message stored exactly once, in send order');
  assert.deepEqual(stored.map((m) => m.client_msg_id), sends.map((s) => s.clientMsgId), 'stored with the client_msg_ids');
  assert.deepEqual(stored.map((m) => m.id), acks.map((a) => a.id), 'acks name the stored rows');

  await waitFor(() => seenByBob.contents.length >= 15, { what: 'bob to see 15' });
  await sleep(300);
  assertComplete(seenByBob, expected, 'bob');
});

test('a full outbox refuses, and server refusals reject with the server code', { timeout: 30_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice', { outboxLimit: 3 });
  const room = await alice.api.createRoom({ name: `limits-${Date.now()}` });
  const other = await alice.api.createRoom({ name: `other-${Date.now()}` });
  // Bob stays, so the room outlives alice's leaving (the last member leaving deletes it).
  const bob = await registerClient(t, node.url, 'bob');
  await bob.api.joinRoom(other.id);
  await alice.api.leaveRoom(other.id);
  // Offline: three queue, the fourth is refused at once.
  const queued = [1, 2, 3].map((i) => alice.send(room.id, `queued ${i}`));
  await assert.rejects(alice.send(room.id, 'one too many'), { code: 'outbox_full' });
  await assert.rejects(alice.send(room.id, ''), { code: 'invalid_payload' });
  await assert.rejects(alice.send(room.id, 'x'.repeat(65537)), { code: 'message_too_long' });
  // Online: the queue drains; a send to a room alice left is refused by the server.
  await alice.connect();
  await Promise.all(queued);
  const refused = alice.send(other.id, 'not a member');
  await assert.rejects(refused, (e) => e.code === 'not_member' && e.clientMsgId === refused.clientMsgId);
});

test('a burst is paced under the server rate limit and stored in send order', { timeout: 30_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice');
  const room = await alice.api.createRoom({ name: `burst-${Date.now()}` });
  const limited = [];
  alice.on('event', ({ event, data }) => {
    if (event === 'error' && data.code === 'rate_limited') limited.push(data);
  });
  await alice.connect();
  const started = Date.now();
  const sends = Array.from({ length: 130 }, (_, i) => alice.send(room.id, `burst ${i}`));
  const acks = await Promise.all(sends);
  const took = Date.now() - started;
  assert.deepEqual(limited, [], 'the server never had to drop a send');
  assert.deepEqual(acks.map((a) => a.seq), acks.map((_, i) => acks[0].seq + i), 'stored in send order');
  assert.ok(took >= 2000, `130 sends at 50 a second take over 2 s (took ${took} ms)`);
});
