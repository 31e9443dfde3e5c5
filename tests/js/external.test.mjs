// Tokens from the product's own identity provider: the client takes them from a
// getToken callback (no password), asks for a new one before the held one expires and
// when the server refuses it, and learns who it is from GET /me. The server trusts an
// HS256 secret shared with the "provider", which is this test minting tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { decodeJwt } from '../../src/web/chatd.js';
import { startNodes, newClient, registerClient, sleep, waitFor } from './support.mjs';

const ISSUER = 'https://id.js-test.example';
const AUDIENCE = 'chatd-js';
const SECRET = 'js-provider-secret-0123456789abcdefghijklmn';
const CONFIG = `[auth.external]
issuer = "${ISSUER}"
audience = "${AUDIENCE}"
hs256_secret = "${SECRET}"
`;

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 JWT of the provider; `secret` other than the shared one makes a forgery. */
function mint(claims, secret = SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300, ...claims })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('getToken signs in with the product\'s token and keeps it fresh', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1, { config: CONFIG });
  const sub = `user|${process.pid}-${Date.now()}`;
  let calls = 0;
  const chat = newClient(t, node.url, {
    getToken: async () => {
      calls++;
      const now = Math.floor(Date.now() / 1000);
      // Short-lived, so that the client must come back for another before it expires.
      return mint({ sub, preferred_username: 'Grace', name: 'Grace Hopper', iat: now, exp: now + 6 });
    },
  });
  const me = await chat.signIn();
  assert.equal(calls, 1);
  assert.equal(me.username, 'Grace', 'created on first use, named from the claims');
  assert.equal(me.display_name, 'Grace Hopper');
  assert.equal(me.email, null);
  assert.deepEqual(chat.user, me);
  assert.notEqual(chat.user.id, decodeJwt(await chat.getAccessToken()).sub, 'the chatd id, not the provider\'s');

  // The REST routes take the product's token: the user is the same on every route.
  const room = await chat.api.createRoom({ name: `ext-${Date.now()}` });
  const msg = await chat.api.postMessage(room.id, 'hello from the product');
  assert.equal(msg.user_id, me.id);
  const changed = await chat.api.updateMe({ status_text: 'Compiling', status_emoji: '🐛' });
  assert.equal(changed.status_emoji, '🐛');
  const found = await chat.api.searchUsers('grace');
  assert.deepEqual(found.map((u) => u.id), [me.id]);

  // Before the 6-second token expires the client takes another, and calls go on.
  await waitFor(() => calls >= 2, { timeout: 8000, what: 'a new token before expiry' });
  await sleep(3000);
  assert.ok(calls >= 2);
  const exp = decodeJwt(await chat.getAccessToken()).exp;
  assert.ok(exp > Date.now() / 1000, 'holds an unexpired token');
  assert.equal((await chat.api.getRoom(room.id)).id, room.id);

  // Signing out forgets the token; the product owns the session.
  await chat.logout();
  assert.equal(chat.user, null);
});

test('a token the server refuses is replaced once and the call retried', { timeout: 60_000 }, async (t) => {
  const { nodes: [node] } = await startNodes(t, 1, { config: CONFIG });
  const sub = `user|${process.pid}-refused`;
  const handed = [];
  const chat = newClient(t, node.url, {
    getToken: () => {
      // The first token carries a bad signature: only the server can tell.
      const token = handed.length === 0
        ? mint({ sub, preferred_username: 'linus' }, 'not-the-shared-secret-at-all-0123456789')
        : mint({ sub, preferred_username: 'linus' });
      handed.push(token);
      return token;
    },
  });
  const rooms = await chat.api.listRooms();
  assert.ok(Array.isArray(rooms));
  assert.equal(handed.length, 2, 'one refusal, one new token, one retry');
  assert.equal((await chat.signIn()).username, 'linus');
  assert.equal(handed.length, 2);

  // A local account on the same server still signs in with its password.
  const local = await registerClient(t, node.url, 'local');
  assert.ok(local.user.id);
  assert.notEqual(local.user.id, chat.user.id);
  assert.equal((await local.api.getUser(chat.user.id)).username, 'linus');

  // getToken failing is an error the caller sees, not a hang.
  const broken = newClient(t, node.url, { getToken: async () => { throw new Error('provider down'); } });
  await assert.rejects(broken.api.listRooms(), (e) => e.code === 'token_unavailable');
});
