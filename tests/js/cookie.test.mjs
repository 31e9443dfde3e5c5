// refreshCookie: the refresh token lives in the server's HttpOnly cookie, as in the web
// app. Node's fetch keeps no cookies, so a small jar stands in for the browser's: it keeps
// chatd_refresh from Set-Cookie and sends it to /auth/... only, as Path=/auth says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage } from '../../src/web/chatd.js';
import { startNodes, newClient, registerClient } from './support.mjs';

/** A fetch with a one-cookie jar; every answer's body is kept for inspection. */
function cookieJar() {
  const jar = { value: null, bodies: [], sentHeader: [] };
  jar.fetch = async (url, init = {}) => {
    const u = new URL(url);
    const headers = { ...(init.headers || {}) };
    if (u.pathname.startsWith('/auth/')) {
      jar.sentHeader.push(headers['x-chatd-refresh-cookie'] === '1');
      if (jar.value) headers.cookie = `chatd_refresh=${jar.value}`;
    }
    const res = await fetch(url, { ...init, headers });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split('; ');
      const [name, value] = pair.split('=');
      if (name !== 'chatd_refresh') continue;
      assert.ok(attrs.includes('HttpOnly') && attrs.includes('SameSite=Strict') && attrs.includes('Path=/auth'), line);
      jar.value = attrs.includes('Max-Age=0') ? null : value;
    }
    jar.bodies.push(await res.clone().text());
    return res;
  };
  return jar;
}

test('refreshCookie: nothing of the session stored, restored by the cookie, cleared by logout', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const storage = new MemoryStorage(); // the page's localStorage, shared by the reloads
  const jar = cookieJar();
  const options = { storage, storageKey: 'k', refreshCookie: true, fetch: jar.fetch };
  const first = await registerClient(t, node.url, 'cookie', options);
  assert.match(jar.value ?? '', /^[0-9a-f]{64}$/, 'the register answer set the cookie');
  assert.equal(storage.getItem('k'), null, 'nothing of the session in the storage');
  const room = await first.api.createRoom({ name: `cookie-${Date.now()}` });
  await first.connect();
  await first.join(room.id);
  await first.send(room.id, 'hello');
  first.close();

  // A reload: a new client on the same storage and cookie.
  const before = jar.value;
  const again = newClient(t, node.url, options);
  assert.equal((await again.restore())?.username, first.user.username, 'restored by the cookie');
  assert.notEqual(jar.value, before, 'the refresh rotated the cookie');
  assert.equal((await again.api.getRoom(room.id)).id, room.id);
  assert.equal(storage.getItem('k'), null);
  for (const body of jar.bodies) {
    assert.ok(!body.includes('refreshToken') && !body.includes(before), `an answer names the refresh token: ${body}`);
  }
  assert.ok(jar.sentHeader.every(Boolean), 'every /auth request opted in');

  await again.logout();
  assert.equal(jar.value, null, 'logout cleared the cookie');
  const after = newClient(t, node.url, options);
  assert.equal(await after.restore(), null, 'no session after logout');
});

test('refreshCookie moves a refresh token an earlier version stored into the cookie', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1);
  const storage = new MemoryStorage();
  const old = await registerClient(t, node.url, 'legacy', { storage, storageKey: 'k' });
  const stored = JSON.parse(storage.getItem('k'));
  assert.match(stored.refreshToken, /^[0-9a-f]{64}$/, 'without the option the token is stored, as before');
  old.close();
  const jar = cookieJar();
  const client = newClient(t, node.url, { storage, storageKey: 'k', refreshCookie: true, fetch: jar.fetch });
  assert.equal((await client.restore())?.username, stored.user.username);
  assert.equal(storage.getItem('k'), null, 'the stored entry is gone');
  assert.match(jar.value ?? '', /^[0-9a-f]{64}$/, 'the session lives in the cookie');
  const reloaded = newClient(t, node.url, { storage, storageKey: 'k', refreshCookie: true, fetch: jar.fetch });
  assert.equal((await reloaded.restore())?.username, stored.user.username, 'and is restored from it');
});
