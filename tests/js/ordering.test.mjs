// The client's own guarantees, driven by hand-made frames on a stand-in WebSocket
// (REST still goes to a real node): out-of-order and repeated messages are delivered
// once in seq order, a gap that persists is filled from the REST history, and events
// the library does not know pass through by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNodes, registerClient, record, newClient, waitFor, sleep } from './support.mjs';

class ScriptedSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    ScriptedSocket.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
    }, 5);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000) {
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason: '' }), 0);
  }
  push(event, data) { this.onmessage?.({ data: JSON.stringify({ event, data }) }); }
}

test('disorder, duplicates and gaps: each message once, in seq order', { timeout: 30_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice');
  const room = await alice.api.createRoom({ name: `order-${Date.now()}` });
  const posted = [];
  for (let i = 1; i <= 8; i++) posted.push(await alice.api.postMessage(room.id, `m${i}`));
  const msg = (seq) => posted[seq - 1];

  const client = newClient(t, node.url, { WebSocket: ScriptedSocket, gapTimeoutMs: 200 });
  await client.login({ email: `${alice.user.username}@example.com`, password: 'password-123' });
  const seen = record(client, room.id);
  const gaps = [];
  client.on('gap', (g) => gaps.push(g));
  await client.connect();
  const joined = client.subscribe(room.id, { since: 0 });
  await waitFor(() => ScriptedSocket.last.sent.some((f) => f.event === 'join_room'), { what: 'join_room' });
  assert.deepEqual(ScriptedSocket.last.sent.at(-1), { event: 'join_room', data: { room_id: room.id, last_seen_seq: 0 } });

  const ws = ScriptedSocket.last;
  ws.push('history', { room_id: room.id, messages: [msg(1), msg(2), msg(3)], next_cursor: 3, has_more: true });
  ws.push('joined_room', { room_id: room.id });
  await joined;
  ws.push('new_message_batch', [msg(5), msg(4)]); // out of order
  ws.push('new_message', msg(3)); // a repeat
  ws.push('new_message', msg(7)); // 6 is missing
  assert.deepEqual(seen.seqs, [1, 2, 3, 4, 5], '7 waits for 6');
  await waitFor(() => seen.seqs.length === 7, { what: 'the gap to be filled over REST' });
  assert.deepEqual(gaps, [{ room_id: room.id, from: 6, to: 6 }]);
  ws.push('new_message_batch', [msg(7), msg(8)]);
  await sleep(50);
  assert.deepEqual(seen.seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(seen.contents, posted.map((m) => m.content));
  assert.deepEqual(seen.problems, []);
  assert.equal(client.position(room.id), 8);

  // After a reconnect the room is rejoined from its position.
  ws.close(1001);
  await waitFor(() => ScriptedSocket.last !== ws && ScriptedSocket.last.sent.some((f) => f.event === 'join_room'), { what: 'the rejoin' });
  assert.deepEqual(ScriptedSocket.last.sent.find((f) => f.event === 'join_room').data, { room_id: room.id, last_seen_seq: 8 });

  // Events the library does not handle itself pass through by name.
  const got = {};
  for (const name of ['presence', 'message_edited', 'read_state', 'brand_new_event', 'unknown_event', 'state', 'event']) {
    got[name] = [];
    client.on(name, (d) => got[name].push(d));
  }
  const ws2 = ScriptedSocket.last;
  ws2.push('presence', { user_id: 'u', username: 'bob', room_id: room.id, node_id: 'n', status: 'online', last_seen: 'x' });
  ws2.push('message_edited', { id: 1, seq: 1, room_id: room.id, content: 'edited' });
  ws2.push('read_state', { room_id: room.id, last_read_seq: 8 });
  ws2.push('brand_new_event', { anything: true });
  ws2.push('state', { not: 'a connection state' });
  assert.equal(got.presence.length, 1);
  assert.equal(got.message_edited[0].content, 'edited');
  assert.equal(got.read_state[0].last_read_seq, 8);
  assert.deepEqual(got.brand_new_event, [{ anything: true }]);
  assert.deepEqual(got.unknown_event.map((e) => e.event), ['brand_new_event', 'state']);
  assert.deepEqual(got.state, [], 'a server event cannot pose as a library event');
  assert.equal(got.event.length, 5, 'every frame is also surfaced generically');

  // Typing events that arrive after newer news of the same user are stale and dropped.
  const typing = [];
  client.on('typing', (e) => typing.push(e.typing));
  const tEvent = (typingOn, ms) => ({
    user_id: 'u2', username: 'bob', room_id: room.id, typing: typingOn, started_at: new Date(ms).toISOString(),
  });
  const base = Date.now();
  ws2.push('typing', tEvent(true, base));
  ws2.push('typing', tEvent(false, base + 100));
  ws2.push('typing', tEvent(true, base + 50)); // the start overtaken by its stop
  ws2.push('new_message', { ...msg(8), seq: 9, id: 999, user_id: 'u2', created_at: new Date(base + 300).toISOString() });
  ws2.push('typing', tEvent(true, base + 200)); // announced the message above
  ws2.push('typing', tEvent(true, base + 400));
  assert.deepEqual(typing, [true, false, true]);

  // Our own typing: a start, a stop on send; a start within a second of the last one
  // waits for that second (the server would drop it, and the stop after it).
  const ours = () => ws2.sent.filter((f) => f.event.startsWith('typing_')).map((f) => f.event);
  client.typing(room.id);
  client.typing(room.id);
  assert.deepEqual(ours(), ['typing_start']);
  client.stopTyping(room.id);
  client.typing(room.id);
  assert.deepEqual(ours(), ['typing_start', 'typing_stop'], 'the next start waits');
  await waitFor(() => ours().length === 3, { timeout: 2000, what: 'the deferred start' });
  client.stopTyping(room.id);
  client.typing(room.id);
  client.stopTyping(room.id); // stopped before its start could go: nothing to send
  await sleep(1200);
  assert.deepEqual(ours(), ['typing_start', 'typing_stop', 'typing_start', 'typing_stop']);
});
