// chatd.js uploads and downloads files: `api.upload` sends the bytes as they are (not
// JSON) and resolves with the stored file, which a message attaches with {file_id};
// `api.download` gives the same bytes back. Fails if the client sends the body as JSON,
// loses the name, or parses the download as JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNodes, registerClient } from './support.mjs';

test('upload, attach and download a file', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const alice = await registerClient(t, node.url, 'alice');
  const room = await alice.api.createRoom({ name: `files-${Date.now()}` });
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52,
    0, 0, 0, 4, 0, 0, 0, 3, 1, 2, 3, 4, 5]);
  const file = await alice.api.upload(room.id, new Blob([png]), { name: 'dir/pic one.png' });
  assert.equal(file.name, 'pic one.png');
  assert.equal(file.mime, 'image/png');
  assert.deepEqual([file.size, file.width, file.height], [png.length, 4, 3]);
  const m = await alice.api.postMessage(room.id, 'a picture', { attachments: [{ file_id: file.id }] });
  assert.deepEqual(m.attachments, [{ file_id: file.id, file }]);
  const blob = await alice.api.download(file.id);
  assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), png);
  const named = await alice.api.upload(room.id, new File([new Uint8Array([1, 2, 3])], 'notes.bin'));
  assert.equal(named.name, 'notes.bin');

  // Progress: in Node (fetch, no XMLHttpRequest) one report, at the end, of every byte.
  const seen = [];
  const big = new Uint8Array(200_000).fill(7);
  const stored = await alice.api.upload(room.id, big, { name: 'big.bin', onProgress: (p) => seen.push(p) });
  assert.equal(stored.size, big.length);
  assert.deepEqual(seen, [{ loaded: big.length, total: big.length }]);
  // A cancelled upload rejects with `cancelled` and stores nothing.
  const stop = new AbortController();
  stop.abort();
  await assert.rejects(alice.api.upload(room.id, big, { name: 'never.bin', signal: stop.signal, onProgress: () => {} }),
    (e) => e.code === 'cancelled');
  // Refusals keep the server's code (here: not a member).
  const bob = await registerClient(t, node.url, 'bob');
  await assert.rejects(bob.api.upload(room.id, new Uint8Array([1]), { name: 'x', onProgress: () => {} }),
    (e) => e.code === 'not_member' && e.status === 403);
});
