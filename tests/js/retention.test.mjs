// Retention: a client away while the server removed a room's old messages comes back
// to a `removed` event naming what it can no longer get, then every remaining message
// once, in order, with no gap waited for and no older page offered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { startNodes, registerClient, record, waitFor, sleep } from './support.mjs';

function sql(databaseUrl, text) {
  return new Promise((resolve, reject) => {
    execFile('psql', [databaseUrl, '-v', 'ON_ERROR_STOP=1', '-qAtc', text], (err, stdout, stderr) => {
      if (err) reject(new Error(`psql failed: ${stderr || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

const config = `
[retention]
max_age_days = 1
interval_secs = 1
pause_ms = 0
[limits]
register_per_ip_per_min = 0
`;

test('a client behind the retention horizon is told, then resumes from it', { timeout: 60_000 }, async (t) => {
  const { nodes: [node], databaseUrl } = await startNodes(t, 1, { config });
  const alice = await registerClient(t, node.url, 'alice');
  const bob = await registerClient(t, node.url, 'bob');
  const room = await alice.api.createRoom({ name: `retention-${Date.now()}` });
  await bob.api.joinRoom(room.id);
  await Promise.all([alice.connect(), bob.connect()]);
  await Promise.all([alice.join(room.id, { since: 0 }), bob.join(room.id, { since: 0 })]);
  const away = bob.position(room.id);
  bob.disconnect();

  const acks = [];
  for (let i = 0; i < 30; i++) acks.push(alice.send(room.id, `while away ${i}`));
  const sent = await Promise.all(acks);
  const horizon = sent[20].seq;
  const head = sent[29].seq;
  await sql(databaseUrl, `UPDATE messages SET created_at = now() - interval '2 days'
                          WHERE room_id = '${room.id}' AND seq < ${horizon}`);
  await waitFor(async () => Number(await sql(databaseUrl,
    `SELECT first_seq FROM rooms WHERE id = '${room.id}'`)) === horizon, { what: 'retention to run' });

  const seen = record(bob, room.id);
  const removed = [];
  const gaps = [];
  bob.on('removed', (e) => removed.push(e));
  bob.on('gap', (e) => gaps.push(e));
  await bob.connect();
  await waitFor(() => bob.position(room.id) === head, { what: 'bob to reach the head' });
  await sleep(300);
  assert.deepEqual(removed, [{ room_id: room.id, from: away + 1, to: horizon - 1, first_seq: horizon }]);
  assert.deepEqual(gaps, [], 'nothing removed is waited for as a gap');
  assert.deepEqual(seen.problems, []);
  assert.deepEqual(seen.seqs, Array.from({ length: head - horizon + 1 }, (_, i) => horizon + i));
  const older = await bob.loadOlder(room.id);
  assert.deepEqual(older, { messages: [], hasMore: false }, 'no page before the horizon');
});
