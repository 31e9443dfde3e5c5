// Access tokens that expire mid-session (access_ttl_secs = 10): the client refreshes
// before expiry and keeps sending, reconnecting and calling REST routes; a token the
// server refuses is refreshed once, by one request, however many callers need it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatdClient, MemoryStorage, decodeJwt } from '../../src/web/chatd.js';
import { startNodes, registerClient, record, assertComplete, storedHistory, waitFor, sleep } from './support.mjs';

const CONFIG = '[auth]\naccess_ttl_secs = 10\n';

test('access-token expiry mid-session is survived', { timeout: 90_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1, { config: CONFIG });
  const alice = await registerClient(t, node.url, 'alice');
  const bob = await registerClient(t, node.url, 'bob');
  const claims = decodeJwt(await alice.getAccessToken());
  assert.equal(claims.exp - claims.iat, 10, 'the node issues 10-second tokens');
  let refreshes = 0;
  alice.on('tokens', () => refreshes++);
  const room = await alice.api.createRoom({ name: `ttl-${Date.now()}` });
  await bob.api.joinRoom(room.id);
  const seen = record(bob, room.id);
  await Promise.all([alice.connect(), bob.connect()]);
  await Promise.all([alice.join(room.id, { since: 0 }), bob.join(room.id, { since: 0 })]);

  // 25 s: two and a half token lifetimes of sends, REST calls and a reconnect.
  const expected = [];
  const sends = [];
  const started = Date.now();
  let reconnected = false;
  for (let i = 0; Date.now() - started < 25_000; i++) {
    expected.push(`tick ${i}`);
    sends.push(alice.send(room.id, `tick ${i}`));
    if (i % 10 === 0) await alice.api.getRoom(room.id); // REST with whatever token is current
    if (!reconnected && Date.now() - started > 12_000) {
      // The first token has expired by now: the upgrade needs a fresh one.
      reconnected = true;
      alice.reconnect();
    }
    await sleep(250);
  }
  const acks = await Promise.all(sends);
  assert.equal(acks.length, expected.length);
  assert.ok(refreshes >= 2, `refreshed before expiry at least twice (${refreshes})`);
  const now = Date.now() / 1000;
  assert.ok(decodeJwt(await alice.getAccessToken()).exp > now, 'holds an unexpired token');
  assert.equal(alice.state, 'open');
  await waitFor(() => seen.contents.length >= expected.length, { what: 'bob to see every tick' });
  assertComplete(seen, expected, 'bob');
  assert.equal((await storedHistory(bob, room.id)).length, expected.length);
});

// A syntactically valid token the server refuses (bad signature, far-off exp): the
// client cannot tell it is bad until the server answers 401.
function forged(token) {
  const [header] = token.split('.');
  const claims = { ...decodeJwt(token), iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
}

test('a refused token is refreshed once, for REST calls and for the WebSocket upgrade', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1, { config: CONFIG });
  for (const path of ['rest', 'ws']) {
    const donorStorage = new MemoryStorage();
    const donor = await registerClient(t, node.url, `dave${path}`, { storage: donorStorage, storageKey: 'k' });
    donor.close(); // from now on only the client below uses this session
    const stored = JSON.parse(donorStorage.getItem('k'));
    const storage = new MemoryStorage();
    storage.setItem('k', JSON.stringify({ ...stored, accessToken: forged(stored.accessToken), receivedAt: Date.now() }));
    const client = new ChatdClient({ url: node.url, storage, storageKey: 'k', reconnect: { baseMs: 100, maxMs: 1000 } });
    t.after(() => client.close());
    let refreshes = 0;
    client.on('tokens', () => refreshes++);
    assert.equal((await client.restore()).username, stored.user.username, 'restored without a request');
    assert.equal(refreshes, 0);
    if (path === 'rest') {
      // Five requests at once, all refused: one refresh, then all five succeed.
      const results = await Promise.all([1, 2, 3, 4, 5].map(() => client.api.listRooms()));
      assert.equal(results.length, 5);
    } else {
      // The upgrade is answered 401: the client asks why, refreshes, and connects.
      await client.connect();
      assert.equal(client.state, 'open');
      const room = await client.api.createRoom({ name: `ws-${Date.now()}` });
      await client.join(room.id);
      const ack = await client.send(room.id, 'after the refresh');
      assert.equal(ack.seq, 1);
    }
    assert.equal(refreshes, 1, `${path}: exactly one refresh`);
    // The refresh token rotated: the donor's copy is now spent, the session still alive.
    assert.notEqual(JSON.parse(storage.getItem('k')).refreshToken, stored.refreshToken);
  }
});

test('a revoked session ends: 1008 closes the socket and the application is told', { timeout: 30_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const storage = new MemoryStorage();
  const alice = await registerClient(t, node.url, 'erin', { storage });
  const other = new ChatdClient({ url: node.url });
  t.after(() => other.close());
  await other.login({ email: `${alice.user.username}@example.com`, password: 'password-123' });
  await alice.connect();
  const ended = new Promise((resolve) => alice.on('session_ended', resolve));
  const pending = alice.send('00000000-0000-7000-8000-000000000000', 'never acked');
  const aliceId = alice.user.id;
  await other.logout({ everywhere: true });
  const event = await ended;
  assert.equal(event.reason, 'revoked');
  assert.equal(event.user.id, aliceId, 'the event names whose session ended');
  assert.ok(Array.isArray(event.unsent), 'and what was not sent');
  assert.equal(alice.state, 'closed');
  assert.equal(alice.user, null);
  assert.equal(storage.getItem('chatd.session'), null, 'the stored session is gone');
  await assert.rejects(pending, (e) => ['session_ended', 'room_not_found'].includes(e.code));
});
