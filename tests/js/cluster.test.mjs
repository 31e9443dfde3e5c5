// Two nodes behind nginx; one is stopped mid-stream and stays down: the clients it
// served reconnect through nginx to the other, and every client ends with every
// message exactly once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNodes, startNginx, registerClient, streamThrough } from './support.mjs';

test('2 nodes behind nginx, one stopped mid-stream: every message exactly once, in order', { timeout: 120_000 }, async (t) => {
  const { nodes, dir } = await startNodes(t, 2);
  const lb = await startNginx(t, dir, nodes.map((n) => n.port));
  const clients = [];
  for (const name of ['alice', 'bob', 'carol', 'dave']) clients.push(await registerClient(t, lb.url, name));
  const room = await clients[0].api.createRoom({ name: `cluster-${Date.now()}` });
  for (const c of clients.slice(1)) await c.api.joinRoom(room.id);

  const { reconnects } = await streamThrough(t, {
    clients,
    senders: [clients[0], clients[1], clients[2]],
    roomId: room.id,
    total: 240,
    at: 80,
    midway: async () => {
      assert.equal(await nodes[0].stop(), 0, 'graceful shutdown exits 0');
    },
  });
  // least_conn spreads the four sockets over both nodes: some had to move.
  assert.ok(reconnects.some((n) => n >= 1), `some client reconnected (${reconnects})`);
});
