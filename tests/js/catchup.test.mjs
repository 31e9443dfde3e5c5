// Catching up: a client that missed more than one history page gets the first 100 in
// `history` (has_more) and the rest as new_message_batch frames, each once, in order.
// A first join without a position starts from the newest page; older pages load on demand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNodes, registerClient, record, assertComplete, waitFor, sleep } from './support.mjs';

test('catch-up past one history page, and joins without a position', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice');
  const bob = await registerClient(t, node.url, 'bob');
  const carol = await registerClient(t, node.url, 'carol');
  const room = await alice.api.createRoom({ name: `catchup-${Date.now()}` });
  await bob.api.joinRoom(room.id);
  const seen = record(bob, room.id);
  const frames = [];
  bob.on('event', ({ event, data }) => {
    if (event === 'history') frames.push(`history:${data.messages.length}:${data.has_more}`);
    if (event === 'new_message_batch') frames.push('batch');
  });
  await Promise.all([alice.connect(), bob.connect()]);
  await Promise.all([alice.join(room.id, { since: 0 }), bob.join(room.id, { since: 0 })]);
  // Bob's REST join is the room's first entry (a system entry).
  const head = 1;
  assert.deepEqual(frames, [`history:${head}:false`]);

  bob.disconnect();
  assert.equal(bob.state, 'closed');
  const expected = [];
  const acks = [];
  for (let i = 0; i < 250; i++) {
    expected.push(`missed ${i}`);
    acks.push(alice.send(room.id, `missed ${i}`));
  }
  await Promise.all(acks);
  assert.equal(seen.contents.length, 0);

  frames.length = 0;
  await bob.connect();
  await waitFor(() => seen.contents.length >= 250, { what: 'bob to catch up' });
  await sleep(200);
  assertComplete(seen, expected, 'bob');
  assert.equal(frames[0], 'history:100:true', 'the first page says there is more');
  assert.ok(frames.slice(1).every((f) => f === 'batch') && frames.length > 1, `then catch-up batches (${frames})`);
  assert.equal(bob.position(room.id), head + 250);

  // carol joins without a position: the newest 50, then live; older pages on demand.
  const carolSeen = record(carol, room.id);
  await carol.connect();
  await carol.join(room.id);
  // Her own join is the newest entry by then.
  const top = head + 250 + 1;
  assert.deepEqual(carolSeen.seqs, Array.from({ length: 50 }, (_, i) => top - 49 + i));
  await alice.send(room.id, 'live one');
  await waitFor(() => carolSeen.seqs.length === 51, { what: 'carol to get the live message' });
  assert.equal(carolSeen.seqs[50], top + 1);
  const older = await carol.loadOlder(room.id);
  assert.deepEqual(older.messages.map((m) => m.seq), Array.from({ length: 50 }, (_, i) => top - 99 + i));
  assert.equal(older.hasMore, true);
  let pages = 1;
  let last = older;
  while (last.hasMore) {
    last = await carol.loadOlder(room.id, { limit: 100 });
    pages++;
  }
  assert.equal(last.messages[0].seq, 1, 'paged back to the first message');
  assert.equal(pages, 3);
  assert.deepEqual(carolSeen.problems, []);
});
