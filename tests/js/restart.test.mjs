// A stream of messages while the only node restarts: every client ends with every
// message exactly once, in order; the room stores each exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNodes, registerClient, streamThrough } from './support.mjs';

test('node restart mid-stream: every message exactly once, in order, on every client', { timeout: 120_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice');
  const bob = await registerClient(t, node.url, 'bob');
  const carol = await registerClient(t, node.url, 'carol');
  const room = await alice.api.createRoom({ name: `restart-${Date.now()}` });
  await bob.api.joinRoom(room.id);
  await carol.api.joinRoom(room.id);

  const { reconnects } = await streamThrough(t, {
    clients: [alice, bob, carol],
    senders: [alice, bob],
    roomId: room.id,
    total: 200,
    at: 80,
    midway: async () => {
      assert.equal(await node.stop(), 0, 'graceful shutdown exits 0');
      await node.start();
    },
  });
  assert.ok(reconnects.every((n) => n >= 1), `every client reconnected (${reconnects})`);
});
