// chatd.js: the JavaScript client of chatd (REST + JSON events over a WebSocket).
// One dependency-free ES module for browsers and Node 22+ (Node 20 with
// --experimental-websocket). The wire contract is docs/PROTOCOL.md of chatd.
//
// One small class per concern:
//   Emitter   typed events for the application
//   Session   auth and tokens: login, refresh (single flight, timed from the JWT's exp),
//             or the product's own tokens from a getToken callback
//   Rest      the REST routes, with one refresh and retry on a 401
//   Transport the WebSocket: connect, heartbeat, reconnect with backoff
//   Rooms     joined rooms and their positions: ordering, de-duplication, gaps, rejoin
//   Outbox    changes not yet acknowledged: re-sent after a reconnect, bounded, kept per user
//   Typing    typing_start / typing_stop with an automatic stop
//   ChatdClient  the facade an application uses

/** Version of this library. */
export const VERSION = '0.1.0';

/** Most characters in one message (Unicode scalar values), as the server enforces. */
export const MAX_MESSAGE_CHARS = 65536;

// Events the library emits itself; a server event of the same name is only
// surfaced through the generic `event` so that it cannot be mistaken for them.
const LOCAL_EVENTS = new Set([
  'state', 'disconnect', 'message', 'messages', 'joined', 'session_ended', 'tokens',
  'ack', 'send_failed', 'event', 'unknown_event', 'gap', 'removed', 'reconnect_scheduled',
  'outbox_restored',
]);

// Server events the client handles itself (everything else passes through by name).
const HANDLED = new Set([
  'history', 'joined_room', 'left_room', 'new_message', 'new_message_batch',
  'message_ack', 'error', 'pong', 'read_state',
]);

// Server events this version knows by name; others are still passed through and
// also reported as `unknown_event`.
const KNOWN = new Set([
  ...HANDLED, 'presence', 'typing', 'user_joined', 'user_left', 'read_state', 'receipt', 'membership',
  'user_updated', 'message_edited', 'message_deleted', 'reaction_added', 'reaction_removed',
]);

// Send errors worth retrying with the same client_msg_id.
const RETRYABLE = new Set(['unavailable', 'rate_limited', 'internal']);

// Client events answered with message_ack: the outbox sends them (PROTOCOL.md 6.6, 10.2).
const CHANGES = new Set(['send_message', 'edit_message', 'delete_message', 'react', 'unreact']);

/** An error from the server or the library; `code` is stable, branch on it. */
export class ChatdError extends Error {
  /** Create an error with a machine-readable code and optional details. */
  constructor(code, message, extra = {}) {
    super(message || code, extra.cause ? { cause: extra.cause } : undefined);
    this.name = 'ChatdError';
    /** Stable code: a server code (PROTOCOL.md) or a library one (network_error, ...). */
    this.code = code;
    /** HTTP status when the error came from a REST answer. */
    this.status = extra.status;
    /** The send's client_msg_id when the error answers a send. */
    this.clientMsgId = extra.clientMsgId;
    /** The server's `message` (an array of strings for validation errors). */
    this.details = extra.details;
    /** How long to wait before trying again (`slow_mode`, rate limits), when the server said. */
    this.retryAfterMs = extra.retryAfterMs;
  }
}

/**
 * True for a system entry of a room's stream (`kind: "system"`: someone joined, left,
 * was kicked or banned, the room was renamed...). System entries take seqs like
 * messages and are delivered with them, in order; `content` is a readable line and
 * `data.type` says what happened.
 */
export function isSystemEntry(m) {
  return !!m && m.kind === 'system';
}

/** A storage that keeps the session in memory only (the default). */
export class MemoryStorage {
  #map = new Map();
  /** The stored string, or null. */
  getItem(key) { return this.#map.has(key) ? this.#map.get(key) : null; }
  /** Store a string. */
  setItem(key, value) { this.#map.set(key, String(value)); }
  /** Forget a key. */
  removeItem(key) { this.#map.delete(key); }
}

/** The claims of a JWT (not verified: the server does that), or null. */
export function decodeJwt(token) {
  try {
    const part = String(token).split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

// Character count as the server counts it (Unicode scalar values).
function charCount(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// A timer that does not keep a Node process alive.
function quietTimeout(fn, ms) {
  const t = setTimeout(fn, ms);
  if (t && typeof t.unref === 'function') t.unref();
  return t;
}

function newId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === 'function') {
    return globalThis.crypto.randomUUID();
  }
  // Very old runtimes only: not cryptographic, but unique enough for retries.
  return 'c-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 12);
}

// ---------------------------------------------------------------------------

/** A minimal typed event emitter. */
export class Emitter {
  #handlers = new Map();

  /** Call `fn` for every `type` event; returns a function that unsubscribes. */
  on(type, fn) {
    let set = this.#handlers.get(type);
    if (!set) this.#handlers.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /** Stop calling `fn` for `type`. */
  off(type, fn) {
    this.#handlers.get(type)?.delete(fn);
  }

  /** Call `fn` for the next `type` event only. */
  once(type, fn) {
    const off = this.on(type, (data) => {
      off();
      fn(data);
    });
    return off;
  }

  /** Deliver `data` to the `type` handlers; a throwing handler does not stop the others. */
  emit(type, data) {
    const set = this.#handlers.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(data);
      } catch (e) {
        if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
        else console.error('chatd: event handler failed:', e);
      }
    }
  }
}

// ---------------------------------------------------------------------------

/** Raw HTTP to the server: JSON in, JSON out, errors as ChatdError. */
class Http {
  constructor(baseUrl, fetchFn) {
    this.baseUrl = baseUrl;
    this.fetch = fetchFn;
  }

  // One request; resolves with the JSON body of a 2xx, throws a ChatdError otherwise.
  // A `RawBody` is sent as it is (file uploads) instead of as JSON; with `asBlob` a 2xx
  // resolves with the body as a Blob (file downloads).
  async call(method, path, body, token, extra, asBlob = false, signal = undefined) {
    const headers = { accept: asBlob ? '*/*' : 'application/json', ...extra };
    const raw = body instanceof RawBody;
    if (body !== undefined) headers['content-type'] = raw ? 'application/octet-stream' : 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    let res;
    try {
      res = await this.fetch(new URL(path, this.baseUrl), {
        method,
        headers,
        body: body === undefined ? undefined : raw ? body.bytes : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (e?.name === 'AbortError') throw new ChatdError('cancelled', 'the request was cancelled', { cause: e });
      throw new ChatdError('network_error', `cannot reach the server: ${e.message}`, { cause: e });
    }
    if (asBlob && res.ok) return res.blob();
    const text = await res.text().catch(() => '');
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (res.ok) return json;
    throw failure(res.status, res.statusText, json, res.headers);
  }

  // An upload by XMLHttpRequest: `onProgress({loaded, total})` as the body goes out;
  // resolves with the JSON answer of a 2xx, throws a ChatdError otherwise.
  xhrUpload(path, blob, token, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', new URL(path, this.baseUrl));
      xhr.setRequestHeader('accept', 'application/json');
      xhr.setRequestHeader('content-type', blob.type || 'application/octet-stream');
      if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
      xhr.upload.onprogress = (e) => onProgress({ loaded: e.loaded, total: e.lengthComputable ? e.total : blob.size });
      xhr.onload = () => {
        let json = null;
        try {
          json = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch {
          json = null;
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress({ loaded: blob.size, total: blob.size });
          resolve(json);
          return;
        }
        const headers = { get: (name) => xhr.getResponseHeader(name) };
        reject(failure(xhr.status, xhr.statusText, json, headers));
      };
      // A refused upload is answered before the body is read and the connection closed:
      // browsers may report that as a network error.
      xhr.onerror = () => reject(new ChatdError('network_error', 'cannot reach the server (upload)'));
      xhr.onabort = () => reject(new ChatdError('cancelled', 'the upload was cancelled'));
      if (signal) {
        if (signal.aborted) return xhr.onabort();
        signal.addEventListener('abort', () => xhr.abort(), { once: true });
      }
      xhr.send(blob);
    });
  }
}

// The ChatdError of a non-2xx answer.
function failure(status, statusText, json, headers) {
  const code = (json && json.code) || `http_${status}`;
  const message = json && json.message;
  return new ChatdError(code, Array.isArray(message) ? message.join('; ') : message || statusText, {
    status,
    details: message,
    retryAfterMs: retryAfter(json, headers),
  });
}

// A request body sent as bytes, not JSON (a Blob, File, ArrayBuffer or typed array).
class RawBody {
  constructor(bytes) {
    this.bytes = bytes;
  }
}

// How long the server asked us to wait: `retry_after_ms` in the body, else Retry-After (seconds).
function retryAfter(json, headers) {
  if (json && Number.isFinite(json.retry_after_ms)) return json.retry_after_ms;
  const secs = Number(headers?.get?.('retry-after'));
  return Number.isFinite(secs) && secs > 0 ? secs * 1000 : undefined;
}

// ---------------------------------------------------------------------------

// The opt-in header of the refresh cookie (PROTOCOL.md 3.1): the server then keeps the
// refresh token in an HttpOnly cookie scoped to /auth and leaves it out of the answer.
const COOKIE_MODE = { 'x-chatd-refresh-cookie': '1' };

/** Auth and tokens: the session's access and refresh tokens, kept fresh. */
class Session {
  #http;
  #storage;
  #key;
  #emit;
  #access = null;
  #refresh = null;
  #cookie; // refreshCookie: the refresh token lives in the server's HttpOnly cookie
  #cookieHeld = false; // a sign-in or refresh answered with the cookie: the session lives
  #claims = null;
  #receivedAt = 0;
  #refreshing = null;
  #timer = null;
  #onEnd;
  #getToken;

  constructor(http, { storage, storageKey, autoRefresh, getToken, refreshCookie }, emit, onEnd) {
    this.#http = http;
    this.#cookie = refreshCookie === true && typeof getToken !== 'function';
    this.#storage = storage;
    this.#key = storageKey;
    this.#emit = emit;
    this.#onEnd = onEnd;
    this.#getToken = typeof getToken === 'function' ? getToken : null;
    this.autoRefresh = autoRefresh;
    /** The signed-in user, or null. */
    this.user = null;
  }

  /** True when tokens come from the product (the getToken option), not from a password. */
  get external() { return this.#getToken !== null; }
  /** True while an access token is held. */
  get signedIn() { return this.#access !== null; }
  /** The session's id (the token's `sid`), for logout. */
  get sessionId() { return this.#claims?.sid ?? null; }
  /** The current access token as held (maybe about to expire: prefer token()). */
  get accessToken() { return this.#access; }

  /** Create an account; the answer's tokens open the session. */
  async register({ username, email, password }) {
    return this.#adopt(await this.#http.call('POST', '/auth/register', { username, email, password }, null, this.#mode()));
  }

  /** Sign in; the answer's tokens open the session. */
  async login({ email, password, deviceInfo }) {
    const body = { email, password };
    if (deviceInfo !== undefined) body.deviceInfo = deviceInfo;
    return this.#adopt(await this.#http.call('POST', '/auth/login', body, null, this.#mode()));
  }

  // The opt-in header in cookie mode, else none.
  #mode() { return this.#cookie ? COOKIE_MODE : undefined; }

  // Resume from storage: the stored access token while fresh, else one refresh. In cookie
  // mode nothing is stored: one refresh by the cookie says whether a session lives.
  async restore() {
    if (this.#cookie) return this.#restoreByCookie();
    const stored = await this.#read();
    if (!stored || !stored.refreshToken) return null;
    this.#refresh = stored.refreshToken;
    this.user = stored.user ?? null;
    if (stored.accessToken && this.#freshFor(decodeJwt(stored.accessToken), stored.receivedAt) > 5000) {
      this.#setAccess(stored.accessToken, stored.receivedAt);
      this.#schedule();
      return this.user;
    }
    try {
      await this.refresh();
    } catch (e) {
      if (e.code === 'session_ended') return null;
      throw e;
    }
    return this.user;
  }

  async #restoreByCookie() {
    // A refresh token an earlier version stored goes once in the body, and from then on
    // lives in the cookie only (the answer leaves it out; #write removes the entry).
    const stored = await this.#read();
    if (stored && stored.refreshToken) {
      this.#refresh = stored.refreshToken;
      this.user = stored.user ?? null;
    }
    try {
      await this.refresh();
    } catch (e) {
      if (e.code === 'session_ended') return null;
      throw e;
    }
    return this.user;
  }

  // A valid access token, refreshed first when it is about to expire.
  async token() {
    if (this.#getToken) {
      if (!this.#access || this.#freshFor(this.#claims, this.#receivedAt) < 5000) await this.refresh();
      return this.#access;
    }
    if (!this.#access) {
      if (this.#refresh || this.#cookieHeld) await this.refresh();
      else throw new ChatdError('not_authenticated', 'not signed in');
    }
    if (this.#freshFor(this.#claims, this.#receivedAt) < 5000) await this.refresh();
    return this.#access;
  }

  // Refresh unless someone already replaced `used` (the token the server refused).
  async refreshIfCurrent(used) {
    if (this.#refreshing) return this.#refreshing;
    if (used && this.#access && used !== this.#access) return undefined;
    return this.refresh();
  }

  // One refresh at a time: concurrent callers share the one in flight.
  refresh() {
    if (!this.#refreshing) {
      this.#refreshing = this.#lockedRefresh().finally(() => {
        this.#refreshing = null;
      });
    }
    return this.#refreshing;
  }

  async #lockedRefresh() {
    if (this.#getToken) return this.#fetchExternal();
    // Tabs sharing a storage must not present the same refresh token twice (a reuse
    // revokes the session): serialise them with the Web Locks API where it exists.
    // Tabs share a cookie as they share a storage.
    const locks = globalThis.navigator?.locks;
    const shared = this.#cookie || !(this.#storage instanceof MemoryStorage);
    if (locks && typeof locks.request === 'function' && shared) {
      return locks.request(`chatd-refresh:${this.#key}`, () => this.#doRefresh());
    }
    return this.#doRefresh();
  }

  async #doRefresh() {
    if (this.#cookie) return this.#refreshByCookie();
    const stored = await this.#read();
    if (stored && stored.refreshToken && stored.refreshToken !== this.#refresh) {
      // Another tab rotated the token: take its pair instead of reusing ours.
      const claims = decodeJwt(stored.accessToken);
      if (this.#freshFor(claims, stored.receivedAt) > 5000) {
        this.#refresh = stored.refreshToken;
        this.user = stored.user ?? this.user;
        this.#setAccess(stored.accessToken, stored.receivedAt);
        this.#schedule();
        this.#emit('tokens', { user: this.user, accessToken: this.#access });
        return;
      }
      this.#refresh = stored.refreshToken;
    }
    if (!this.#refresh) throw new ChatdError('not_authenticated', 'not signed in');
    let res;
    try {
      res = await this.#http.call('POST', '/auth/refresh', { refreshToken: this.#refresh });
    } catch (e) {
      if (e.status === 401 || e.status === 400) {
        await this.end('expired');
        throw new ChatdError('session_ended', 'the session has ended: sign in again', { cause: e });
      }
      throw e;
    }
    await this.#adopt(res);
  }

  // The browser sends the cookie (same origin, path /auth); the header says we use it.
  async #refreshByCookie() {
    const body = this.#refresh ? { refreshToken: this.#refresh } : {};
    let res;
    try {
      res = await this.#http.call('POST', '/auth/refresh', body, null, COOKIE_MODE);
    } catch (e) {
      if (e.status === 401 || e.status === 400) {
        await this.end('expired');
        throw new ChatdError('session_ended', 'the session has ended: sign in again', { cause: e });
      }
      throw e;
    }
    await this.#adopt(res);
  }

  // A token from the product's getToken callback: the first one, before the held one
  // expires (when its exp is readable), and again when the server refuses the held one.
  async #fetchExternal() {
    let token;
    try {
      token = await this.#getToken();
    } catch (e) {
      throw new ChatdError('token_unavailable', `getToken failed: ${e?.message ?? e}`, { cause: e });
    }
    if (typeof token !== 'string' || token === '') {
      throw new ChatdError('token_unavailable', 'getToken returned no token');
    }
    this.#setAccess(token, Date.now());
    this.#schedule();
    this.#emit('tokens', { user: this.user, accessToken: token });
  }

  /** Revoke this session (or all of the user's) on the server, then forget it here. */
  async logout({ everywhere = false } = {}) {
    if (this.#getToken) {
      // The product owns the session: forget the token here, nothing to revoke.
      await this.end('logout');
      return;
    }
    const body = everywhere || !this.sessionId ? {} : { sessionId: this.sessionId };
    try {
      if (this.#access || this.#refresh || this.#cookieHeld) {
        // In cookie mode the server also ends the cookie's session and clears the cookie.
        await this.#http.call('POST', '/auth/logout', body, await this.token(), this.#mode());
      }
    } finally {
      await this.end('logout');
    }
  }

  // Forget everything and tell the application (reason: logout, revoked, expired).
  async end(reason) {
    const had = this.#access !== null || this.#refresh !== null || this.#cookieHeld;
    const user = this.user;
    this.#access = this.#refresh = this.#claims = null;
    this.#cookieHeld = false;
    this.user = null;
    clearTimeout(this.#timer);
    try {
      await this.#storage.removeItem(this.#key);
    } catch {
      // a storage that refuses is not worth failing the sign-out for
    }
    if (had) this.#onEnd(reason, user);
  }

  /** Stop the refresh timer. */
  dispose() {
    clearTimeout(this.#timer);
  }

  async #adopt(res) {
    const { user, tokens } = res;
    this.user = user ?? this.user;
    // In cookie mode the answer has no refresh token: the cookie holds it.
    this.#refresh = this.#cookie ? null : tokens.refreshToken;
    this.#cookieHeld = this.#cookie;
    this.#setAccess(tokens.accessToken, Date.now());
    await this.#write();
    this.#schedule();
    this.#emit('tokens', { user: this.user, accessToken: this.#access });
    return this.user;
  }

  #setAccess(token, receivedAt) {
    this.#access = token;
    this.#claims = decodeJwt(token);
    this.#receivedAt = receivedAt || Date.now();
    // A product's token names the user in the product's terms: GET /me says who it is here.
    if (!this.user && this.#claims && !this.#getToken) {
      this.user = { id: this.#claims.sub, username: this.#claims.username };
    }
  }

  // Milliseconds the token stays usable, measured on our clock from when we got it
  // (iat..exp is its lifetime), so that a skewed client clock does not matter.
  #freshFor(claims, receivedAt) {
    if (!claims || typeof claims.exp !== 'number') return Infinity;
    if (typeof claims.iat === 'number' && receivedAt) {
      return receivedAt + (claims.exp - claims.iat) * 1000 - Date.now();
    }
    return claims.exp * 1000 - Date.now();
  }

  // Refresh at 80% of the lifetime (at most a minute before expiry).
  #schedule() {
    clearTimeout(this.#timer);
    if (!this.autoRefresh || !this.#claims) return;
    const life = typeof this.#claims.iat === 'number' ? (this.#claims.exp - this.#claims.iat) * 1000 : 60_000;
    const margin = Math.min(60_000, life * 0.2);
    const fresh = this.#freshFor(this.#claims, this.#receivedAt);
    if (!Number.isFinite(fresh)) return; // no readable exp: refresh when the server refuses it
    const wait = Math.max(1000, fresh - margin);
    this.#timer = quietTimeout(() => {
      this.refresh().catch((e) => {
        if (e.code !== 'session_ended') {
          // Server unreachable: try again soon; token() refreshes on demand anyway.
          this.#timer = quietTimeout(() => this.#schedule(), 5000);
        }
      });
    }, wait);
  }

  async #read() {
    try {
      const raw = await this.#storage.getItem(this.#key);
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  async #write() {
    if (this.#cookie) {
      // Nothing of the session is stored (the access token stays in memory); an entry an
      // earlier version left goes.
      try {
        await this.#storage.removeItem(this.#key);
      } catch {
        // a storage that refuses holds nothing of ours either
      }
      return;
    }
    const value = JSON.stringify({
      refreshToken: this.#refresh,
      accessToken: this.#access,
      receivedAt: this.#receivedAt,
      user: this.user,
    });
    await this.#storage.setItem(this.#key, value);
  }
}

// ---------------------------------------------------------------------------

const roomPath = (roomId) => `/rooms/${encodeURIComponent(roomId)}`;
const memberPath = (roomId, userId) => `${roomPath(roomId)}/members/${encodeURIComponent(userId)}`;
const messagePath = (roomId, id) => `${roomPath(roomId)}/messages/${encodeURIComponent(id)}`;

// `?a=1&b=2` of the values that are set, or ''.
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return qs ? `?${qs}` : '';
}

/** The REST routes; a 401 invalid_token triggers one refresh and one retry. */
export class Rest {
  #http;
  #session;
  #onMyRooms;
  #onRead;

  constructor(http, session, { onMyRooms, onRead } = {}) {
    this.#http = http;
    this.#session = session;
    this.#onMyRooms = onMyRooms;
    this.#onRead = onRead;
  }

  /** Any authenticated route: `request('GET', '/me/rooms')`. */
  async request(method, path, body, extra, asBlob = false, signal = undefined) {
    const token = await this.#session.token();
    try {
      return await this.#http.call(method, path, body, token, extra, asBlob, signal);
    } catch (e) {
      if (e.status !== 401 || e.code !== 'invalid_token') throw e;
      await this.#session.refreshIfCurrent(token);
      return this.#http.call(method, path, body, await this.#session.token(), extra, asBlob, signal);
    }
  }

  /**
   * Upload a file into a room (POST /rooms/:id/files): `file` is a Blob or File (its
   * `name` is used unless `options.name` is given), an ArrayBuffer or a typed array.
   * Resolves with the stored `File`; attach it to a message with
   * `attachments: [{file_id: file.id}]`. The server detects the type from the bytes.
   */
  async upload(roomId, file, { name, onProgress, signal } = {}) {
    const fileName = name ?? (typeof file?.name === 'string' && file.name ? file.name : 'file');
    const path = `${roomPath(roomId)}/files${query({ name: fileName })}`;
    // Browsers: XMLHttpRequest, whose upload reports progress (fetch cannot). Node and
    // other runtimes: fetch, with one progress report at the end.
    if (typeof onProgress === 'function' && typeof XMLHttpRequest === 'function' && typeof Blob === 'function') {
      const blob = file instanceof Blob ? file : new Blob([file]);
      const send = (token) => this.#http.xhrUpload(path, blob, token, onProgress, signal);
      const token = await this.#session.token();
      try {
        return await send(token);
      } catch (e) {
        if (e.status !== 401 || e.code !== 'invalid_token') throw e;
        await this.#session.refreshIfCurrent(token);
        return send(await this.#session.token());
      }
    }
    const size = file?.size ?? file?.byteLength ?? 0;
    const stored = await this.request('POST', path, new RawBody(file), undefined, false, signal);
    if (typeof onProgress === 'function') onProgress({ loaded: size, total: size });
    return stored;
  }

  /** A file's bytes as a Blob (GET /files/:id; members of its room). */
  download(fileId) {
    return this.request('GET', `/files/${encodeURIComponent(fileId)}`, undefined, undefined, true);
  }

  /** A file's thumbnail as a Blob (GET /files/:id/thumbnail; 404 `http_404` or `file_not_found` when none). */
  thumbnail(fileId) {
    return this.request('GET', `/files/${encodeURIComponent(fileId)}/thumbnail`, undefined, undefined, true);
  }

  /**
   * Signed URLs of a file, usable without a token until `expires_at` (servers that have
   * them): `{url, thumbnail_url, expires_at}`.
   */
  fileUrl(roomId, fileId) {
    return this.request('GET', `${roomPath(roomId)}/files/${encodeURIComponent(fileId)}/url`);
  }

  /** Every room the caller may see (public ones, and private ones it belongs to), newest first (GET /rooms). */
  listRooms() { return this.request('GET', '/rooms'); }

  /**
   * One page of the caller's own rooms, most recent activity first, with read state and
   * unread counts (GET /me/rooms): `{rooms, next_cursor}`; pass `next_cursor` back as
   * `cursor` for the next page (null on the last). Servers without the conversations
   * extension answer 404 `not_found`.
   */
  async myRooms({ cursor, limit } = {}) {
    const q = new URLSearchParams();
    if (cursor != null && cursor !== '') q.set('cursor', String(cursor));
    if (limit != null) q.set('limit', String(limit));
    const qs = q.toString();
    const page = await this.request('GET', `/me/rooms${qs ? `?${qs}` : ''}`);
    this.#onMyRooms?.(page?.rooms || []);
    return page;
  }

  /**
   * Every room of the caller, walking the pages of `myRooms` (at most `maxPages`). The
   * server pages by last activity, which moves while we walk: a room that gets a message
   * mid-walk jumps ahead of the cursor and would be missed, so after a multi-page walk
   * the first page is read again; rooms are de-duplicated by id (the fresher copy wins)
   * and returned most recent activity first.
   */
  async allMyRooms({ limit = 100, maxPages = 50 } = {}) {
    const byId = new Map();
    let cursor = null;
    let pages = 0;
    do {
      const page = await this.myRooms({ cursor, limit });
      for (const r of page.rooms || []) if (!byId.has(r.id)) byId.set(r.id, r);
      cursor = page.next_cursor ?? null;
      pages++;
    } while (cursor != null && pages < maxPages);
    if (pages > 1) {
      const first = await this.myRooms({ limit });
      for (const r of first.rooms || []) byId.set(r.id, r);
    }
    return [...byId.values()].sort((a, b) =>
      String(b.last_activity_at).localeCompare(String(a.last_activity_at)) || String(b.id).localeCompare(String(a.id)));
  }

  /** Create a room (`visibility`: public, the default, or private); the creator becomes its owner. */
  createRoom({ name, description, visibility }) {
    const body = { name };
    if (description !== undefined) body.description = description;
    if (visibility !== undefined) body.visibility = visibility;
    return this.request('POST', '/rooms', body);
  }
  /** Change a room's settings (owners and admins): `{name?, description?, visibility?, receipts?, retention_days?, members_can_pin?, slow_mode_secs?}`; absent fields stay. */
  updateRoom(roomId, patch) { return this.request('PATCH', roomPath(roomId), patch); }
  /** Set a room's slow mode (owners and admins): members wait `seconds` (0..3600, 0: off) between two messages. */
  setSlowMode(roomId, seconds) { return this.updateRoom(roomId, { slow_mode_secs: seconds }); }
  /** Delete a room with its messages (owner only). */
  deleteRoom(roomId) { return this.request('DELETE', roomPath(roomId)); }
  /** Invite a user (owners and admins); the invitation is accepted by joining. */
  invite(roomId, userId) { return this.request('POST', `${roomPath(roomId)}/invites`, { user_id: userId }); }
  /** Remove a member (owners and admins). */
  kick(roomId, userId) { return this.#act(roomId, userId, 'kick'); }
  /** Remove a user and keep them out until unbanned (owners and admins). */
  ban(roomId, userId) { return this.#act(roomId, userId, 'ban'); }
  /** Let a banned user join or be invited again. */
  unban(roomId, userId) { return this.#act(roomId, userId, 'unban'); }
  /** Stop a member from sending (they still read). */
  mute(roomId, userId) { return this.#act(roomId, userId, 'mute'); }
  /** Let a muted member send again. */
  unmute(roomId, userId) { return this.#act(roomId, userId, 'unmute'); }
  /** Promote a member to `admin` or demote an admin to `member` (owner only). */
  setRole(roomId, userId, role) {
    return this.request('PUT', `${memberPath(roomId, userId)}/role`, { role });
  }
  /** Silence (or not) a room's notifications for the caller: `{room_id, notifications_muted}`. */
  setNotifications(roomId, muted) {
    return this.request('PUT', `${roomPath(roomId)}/notifications`, { muted: !!muted });
  }
  /**
   * The caller's notification level in a room: `'all'`, `'mentions'` or `'none'`
   * (`{room_id, notification_level, notifications_muted}`).
   */
  setNotificationLevel(roomId, level) {
    return this.request('PUT', `${roomPath(roomId)}/notifications`, { level });
  }
  /**
   * Mentions of the caller in its rooms, newest first: a page `{mentions: [{message,
   * room_name, unread}], next_cursor}` (pass `cursor` for the next).
   */
  mentions({ cursor, limit } = {}) {
    const q = new URLSearchParams();
    if (cursor) q.set('cursor', cursor);
    if (limit) q.set('limit', String(limit));
    const qs = q.toString();
    return this.request('GET', `/me/mentions${qs ? `?${qs}` : ''}`);
  }
  /** The server's VAPID public key `{key}`: the `applicationServerKey` for `pushManager.subscribe`. */
  vapidPublicKey() {
    return this.request('GET', '/push/vapid-public-key');
  }
  /**
   * Registers a Web Push subscription (a `PushSubscription` or its `toJSON()` form): while
   * the caller has no socket open, the messages it would be notified of are pushed to it,
   * a room's messages together (`{endpoint, created_at}`).
   */
  subscribePush(subscription) {
    const s = typeof subscription?.toJSON === 'function' ? subscription.toJSON() : subscription;
    return this.request('POST', '/me/push-subscriptions', { endpoint: s?.endpoint, keys: s?.keys });
  }
  /** Removes the caller's subscription with this endpoint (none is fine). */
  unsubscribePush(endpoint) {
    return this.request('DELETE', `/me/push-subscriptions${query({ endpoint })}`);
  }
  /** The direct room of the caller and `userId` (created on the first call): a Room with `other_user`. */
  openDirect(userId) { return this.request('POST', '/dm', { user_id: userId }); }
  /** Invitations waiting for the caller, newest first (the first page): `[{room, invited_by, created_at}]`. */
  myInvites() { return this.request('GET', '/me/invites?limit=100').then((page) => page.invites); }
  /** Declines the caller's invitation to `roomId`. */
  declineInvite(roomId) { return this.request('DELETE', `/me/invites/${encodeURIComponent(roomId)}`); }
  /**
   * Block a user, privately: neither side sends into (or opens) your direct room while it
   * stands, and the user cannot invite you (`blocked`). Resolves with the block
   * `{user_id, username, display_name, created_at}`.
   */
  block(userId) { return this.request('POST', '/me/blocks', { user_id: userId }); }
  /** Lift a block: `{success, unblocked}` (`unblocked` false when there was none). */
  unblock(userId) { return this.request('DELETE', `/me/blocks/${encodeURIComponent(userId)}`); }
  /** The users the caller blocked, newest first: a page `{blocks, next_cursor}` (pass `cursor` for the next). */
  blocks({ cursor, limit } = {}) {
    const q = new URLSearchParams();
    if (cursor) q.set('cursor', cursor);
    if (limit) q.set('limit', String(limit));
    const qs = q.toString();
    return this.request('GET', `/me/blocks${qs ? `?${qs}` : ''}`);
  }
  /** The caller's own account: profile and e-mail address (GET /me). */
  me() { return this.request('GET', '/me'); }
  /**
   * Change the caller's profile (PATCH /me): `{display_name?, avatar_url?, status_text?,
   * status_emoji?}`; an absent field stays, null clears it.
   */
  updateMe(fields) { return this.request('PATCH', '/me', fields); }
  /** A user's profile (GET /users/:id). */
  getUser(userId) { return this.request('GET', `/users/${encodeURIComponent(userId)}`); }
  /** Users whose username or display name starts with `q`, whatever the case and accents (GET /users). */
  searchUsers(q, { limit } = {}) {
    const p = new URLSearchParams({ q });
    if (limit !== undefined) p.set('limit', String(limit));
    return this.request('GET', `/users?${p}`);
  }
  /** Mark a room read up to `seq` over REST: `{room_id, last_read_seq}` (prefer ChatdClient.markRead). */
  async markRead(roomId, seq) {
    const res = await this.request('POST', `${roomPath(roomId)}/read`, { seq });
    if (res && typeof res.last_read_seq === 'number') this.#onRead?.(roomId, res.last_read_seq);
    return res;
  }

  #act(roomId, userId, action) {
    return this.request('POST', `${memberPath(roomId, userId)}/${action}`);
  }

  /** One room. */
  getRoom(roomId) { return this.request('GET', roomPath(roomId)); }
  /** Become a member (idempotent). */
  joinRoom(roomId) { return this.request('POST', `/rooms/${encodeURIComponent(roomId)}/join`); }
  /** Stop being a member. */
  leaveRoom(roomId) { return this.request('POST', `/rooms/${encodeURIComponent(roomId)}/leave`); }
  /** The room's members with their online flag. */
  members(roomId) { return this.request('GET', `/rooms/${encodeURIComponent(roomId)}/members`); }
  /** One page of history, newest first: messages with seq < cursor. */
  messages(roomId, { cursor, limit } = {}) {
    const q = new URLSearchParams();
    if (cursor != null) q.set('cursor', String(cursor));
    if (limit != null) q.set('limit', String(limit));
    const qs = q.toString();
    return this.request('GET', `/rooms/${encodeURIComponent(roomId)}/messages${qs ? `?${qs}` : ''}`);
  }
  /** Post a message over REST (no client_msg_id; prefer ChatdClient.send); `extra`: `{reply_to, attachments}`. */
  postMessage(roomId, content, extra = {}) {
    return this.request('POST', `${roomPath(roomId)}/messages`, { ...extra, content });
  }

  // Messages after send (PROTOCOL.md section 10): each answers the change's stream entry.

  /** Replace one's own message's content (prefer ChatdClient.edit, which survives a disconnect). */
  editMessage(roomId, messageId, content) {
    return this.request('PATCH', messagePath(roomId, messageId), { content });
  }
  /** Delete a message (one's own; admins and owners any). */
  deleteMessage(roomId, messageId) { return this.request('DELETE', messagePath(roomId, messageId)); }
  /** Add one's reaction. */
  addReaction(roomId, messageId, emoji) {
    return this.request('PUT', `${messagePath(roomId, messageId)}/reactions/${encodeURIComponent(emoji)}`);
  }
  /** Take back one's reaction. */
  removeReaction(roomId, messageId, emoji) {
    return this.request('DELETE', `${messagePath(roomId, messageId)}/reactions/${encodeURIComponent(emoji)}`);
  }
  /** Pin a message (owners and admins, or any member when the room's `members_can_pin`): `{message, pinned_by, pinned_at}`. */
  pin(roomId, messageId) {
    return this.request('PUT', `${roomPath(roomId)}/pins/${encodeURIComponent(messageId)}`);
  }
  /** Unpin a message: `{success, unpinned}` (`unpinned` false when it was not pinned). */
  unpin(roomId, messageId) {
    return this.request('DELETE', `${roomPath(roomId)}/pins/${encodeURIComponent(messageId)}`);
  }
  /** The room's pins, most recently pinned first: `{pins: [{message, pinned_by, pinned_at}]}`. */
  pins(roomId) { return this.request('GET', `${roomPath(roomId)}/pins`); }
  /** Report a message to the room's owner and admins (once): `{id, status}`. */
  report(roomId, messageId, reason, note) {
    return this.request('POST', `${messagePath(roomId, messageId)}/report`, note === undefined ? { reason } : { reason, note });
  }
  /** The room's reports, oldest first (owners and admins): `{reports}`. */
  reports(roomId, { status } = {}) { return this.request('GET', `${roomPath(roomId)}/reports${query({ status })}`); }
  /** Resolve a report with an action (owners and admins): the resolved report. */
  resolveReport(roomId, reportId, action, note) {
    return this.request('POST', `${roomPath(roomId)}/reports/${encodeURIComponent(reportId)}/resolve`, note === undefined ? { action } : { action, note });
  }
  /** Earlier versions of an edited message, oldest first: `[{version, content, replaced_at}]`. */
  edits(roomId, messageId) { return this.request('GET', `${messagePath(roomId, messageId)}/edits`); }
  /** One page of the replies to message `rootId`, newest first: `{messages, next_cursor}`. */
  thread(roomId, rootId, { cursor, limit } = {}) {
    return this.request('GET', `${roomPath(roomId)}/messages${query({ thread: rootId, cursor, limit })}`);
  }
  /** Full-text search in one room, newest first: `{messages, next_cursor}` (q: 1 to 200 characters). */
  search(roomId, q, { cursor, limit } = {}) {
    return this.request('GET', `${roomPath(roomId)}/search${query({ q, cursor, limit })}`);
  }
  /** Full-text search across every room of the caller, newest first: `{messages, next_cursor}`. */
  searchAll(q, { cursor, limit } = {}) {
    return this.request('GET', `/me/search${query({ q, cursor, limit })}`);
  }
}

// ---------------------------------------------------------------------------

/** The WebSocket: one connection at a time, reconnected until stopped. */
class Transport {
  #opts;
  #session;
  #http;
  #handlers;
  #emit;
  #ws = null;
  #wanted = false;
  #attempt = 0;
  #timer = null;
  #hbTimer = null;
  #hbDeadline = null;
  #generation = 0;

  constructor(opts, session, http, emit, handlers) {
    this.#opts = opts;
    this.#session = session;
    this.#http = http;
    this.#emit = emit;
    this.#handlers = handlers;
    /** connecting | open | reconnecting | closed */
    this.state = 'closed';
    if (typeof globalThis.addEventListener === 'function' && typeof window !== 'undefined') {
      // Back online: do not wait for the backoff.
      globalThis.addEventListener('online', () => {
        if (this.#wanted && !this.#ws) this.#reconnectNow();
      });
    }
  }

  /** Counts connection attempts: work tied to one socket checks it is still current. */
  get generation() { return this.#generation; }
  /** True while a socket is open. */
  get isOpen() { return this.state === 'open'; }

  /** Connect, and keep reconnecting until stop(). */
  start() {
    this.#wanted = true;
    if (!this.#ws && !this.#timer) this.#open();
  }

  // Connect now, skipping the backoff wait ("Retry now", the network came back).
  retryNow() {
    this.#wanted = true;
    if (this.#ws) return;
    this.#reconnectNow();
  }

  /** Close deliberately: no reconnect. */
  stop() {
    this.#wanted = false;
    clearTimeout(this.#timer);
    this.#timer = null;
    const ws = this.#ws;
    if (ws) {
      this.#detach(ws);
      try {
        ws.close(1000, 'bye');
      } catch {
        // already closing
      }
      this.#handlers.down();
    }
    this.#setState('closed');
  }

  // Send one event; false when there is no open socket.
  send(event, data) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== 1 || this.state !== 'open') return false;
    ws.send(JSON.stringify({ event, data }));
    return true;
  }

  // Drop the current socket as if the network failed (tests; heartbeat timeouts).
  drop(reason = 'dropped') {
    const ws = this.#ws;
    if (!ws) return;
    try {
      ws.close(4000, reason);
    } catch {
      // ignore
    }
    this.#closed(ws, 4000, reason, true);
  }

  #setState(state, extra) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.#emit('state', { state, previous, ...extra });
  }

  #reconnectNow() {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#open();
  }

  async #open() {
    this.#timer = null;
    const generation = ++this.#generation;
    this.#setState(this.#attempt === 0 && this.state === 'closed' ? 'connecting' : 'reconnecting');
    let token;
    try {
      token = await this.#session.token();
    } catch (e) {
      if (generation !== this.#generation || !this.#wanted) return;
      if (e.code === 'session_ended' || e.code === 'not_authenticated') {
        this.stop();
        return;
      }
      this.#retry(false, 0);
      return;
    }
    if (generation !== this.#generation || !this.#wanted) return;
    const url = new URL('/ws', this.#opts.url);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', token);
    let ws;
    try {
      ws = new this.#opts.WebSocket(url.toString());
    } catch (e) {
      this.#emit('error', { code: 'network_error', message: String(e.message || e) });
      this.#retry(false, 0);
      return;
    }
    this.#ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (this.#ws !== ws) return;
      opened = true;
      this.#attempt = 0;
      this.#setState('open');
      this.#startHeartbeat();
      this.#handlers.open();
    };
    ws.onmessage = (ev) => {
      if (this.#ws !== ws) return;
      this.#alive();
      let frame;
      try {
        frame = JSON.parse(typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data));
      } catch {
        this.#emit('error', { code: 'invalid_json', message: 'the server sent a frame that is not JSON' });
        return;
      }
      if (frame && typeof frame.event === 'string') this.#handlers.frame(frame.event, frame.data);
    };
    ws.onclose = (ev) => this.#closed(ws, ev.code, ev.reason, opened, token);
    ws.onerror = () => {
      // A close event normally follows and decides what to do; some runtimes (Node
      // 20's WebSocket on a refused connection) never send it, so do not wait long.
      if (!opened) this.#closed(ws, 1006, 'connection failed', false, token);
      else quietTimeout(() => this.#closed(ws, 1006, 'connection error', true, token), 1000);
    };
  }

  #detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (this.#ws === ws) this.#ws = null;
    this.#stopHeartbeat();
  }

  async #closed(ws, code, reason, opened, token) {
    if (this.#ws !== ws) return;
    this.#detach(ws);
    if (opened) this.#handlers.down();
    const willReconnect = this.#wanted && code !== 1008;
    this.#emit('disconnect', { code, reason: reason || '', willReconnect });
    if (!this.#wanted) {
      this.#setState('closed');
      return;
    }
    if (code === 1008) {
      // Policy violation: the session was revoked (logout elsewhere, token reuse).
      this.#wanted = false;
      this.#setState('closed');
      await this.#session.end('revoked');
      return;
    }
    this.#setState('reconnecting', { code });
    if (!opened && token) {
      // The upgrade failed and browsers hide its status: ask the same route over
      // plain HTTP. 401 means the token is refused (refresh it); 426 means it is fine.
      const verdict = await this.#probe(token);
      if (!this.#wanted || this.#ws || this.#timer) return;
      if (verdict === 'invalid_token') {
        try {
          await this.#session.refreshIfCurrent(token);
        } catch (e) {
          if (e.code === 'session_ended') {
            this.stop();
            return;
          }
        }
        if (!this.#wanted || this.#ws || this.#timer) return;
        this.#retry(this.#attempt === 0, 0);
        return;
      }
    }
    // Going away (1001) and try again later (1013) mean "another node, or this one
    // soon": reconnect at once, then back off if that fails.
    this.#retry(opened && (code === 1001 || code === 1013), code);
  }

  async #probe(token) {
    try {
      await this.#http.call('GET', '/ws', undefined, token);
      return 'ok';
    } catch (e) {
      if (e.status === 401) return 'invalid_token';
      return e.status ? 'ok' : 'down';
    }
  }

  #retry(immediately, code) {
    if (!this.#wanted) return;
    const { baseMs, maxMs, factor } = this.#opts.reconnect;
    let delay = 0;
    if (!immediately) {
      const ceiling = Math.min(maxMs, baseMs * factor ** this.#attempt);
      // "Equal jitter": half fixed, half random, so that clients spread out but none
      // hammers the server right away.
      delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
      this.#attempt++;
    }
    this.#setState('reconnecting');
    this.#emit('reconnect_scheduled', { delay, attempt: this.#attempt, code });
    this.#timer = setTimeout(() => this.#open(), delay);
  }

  // Application-level ping; a socket silent for too long is presumed dead.
  #startHeartbeat() {
    this.#stopHeartbeat();
    const every = this.#opts.heartbeatMs;
    if (!every) return;
    this.#hbTimer = setInterval(() => {
      if (this.#hbDeadline) return;
      this.send('ping', { heartbeat: Date.now() });
      this.#hbDeadline = quietTimeout(() => {
        this.#hbDeadline = null;
        this.drop('heartbeat timeout');
      }, this.#opts.heartbeatTimeoutMs);
    }, every);
    if (this.#hbTimer && typeof this.#hbTimer.unref === 'function') this.#hbTimer.unref();
  }

  #alive() {
    if (this.#hbDeadline) {
      clearTimeout(this.#hbDeadline);
      this.#hbDeadline = null;
    }
  }

  #stopHeartbeat() {
    clearInterval(this.#hbTimer);
    this.#hbTimer = null;
    this.#alive();
  }
}

// ---------------------------------------------------------------------------

/** Joined rooms and their positions (the highest seq delivered, gapless). */
class Rooms {
  #map = new Map();
  #leaving = new Map(); // room_id -> leave_room frames whose left_room is still due
  #rest;
  #transport;
  #emit;
  #opts;

  constructor(rest, transport, emit, opts) {
    this.#rest = rest;
    this.#transport = transport;
    this.#emit = emit;
    this.#opts = opts;
  }

  /** The subscribed room ids. */
  get ids() { return [...this.#map.keys()]; }
  /** One room's state, if subscribed. */
  get(roomId) { return this.#map.get(roomId); }

  // Subscribe; resolves once the server confirmed the join (after the first catch-up page).
  subscribe(roomId, { since, historyLimit } = {}) {
    let room = this.#map.get(roomId);
    if (room) return room.ready;
    room = {
      id: roomId,
      lastSeq: since == null ? null : since,
      firstSeq: since == null ? null : since + 1,
      hasOlder: since == null ? null : since > 0,
      historyLimit: historyLimit ?? this.#opts.historyLimit,
      pending: new Map(),
      status: 'idle',
      joinedOnce: false,
      gapTimer: null,
      syncTimer: null,
      syncFailures: 0,
      filling: false,
      loadingOlder: null,
    };
    room.ready = new Promise((resolve, reject) => {
      room.resolve = resolve;
      room.reject = reject;
    });
    room.ready.catch(() => {});
    this.#map.set(roomId, room);
    if (this.#transport.isOpen) this.#sync(room);
    return room.ready;
  }

  // Stop delivery of a room to this client (membership untouched).
  unsubscribe(roomId) {
    const room = this.#map.get(roomId);
    if (!room) return false;
    this.#forget(room, new ChatdError('unsubscribed', 'the room was left before the join completed'));
    if (this.#transport.send('leave_room', { room_id: roomId })) {
      this.#leaving.set(roomId, (this.#leaving.get(roomId) || 0) + 1);
    }
    return true;
  }

  /** Forget every room (the session ended). */
  clear(reason) {
    for (const room of [...this.#map.values()]) this.#forget(room, new ChatdError(reason, reason));
  }

  #forget(room, err) {
    clearTimeout(room.gapTimer);
    clearTimeout(room.syncTimer);
    this.#map.delete(room.id);
    room.reject(err);
  }

  // After every (re)connect: join each room from its position.
  onOpen() {
    for (const room of this.#map.values()) this.#sync(room);
  }

  // The socket is gone: every room waits for the next one.
  onDown() {
    for (const room of this.#map.values()) room.status = 'idle';
    this.#leaving.clear();
  }

  async #sync(room) {
    const generation = this.#transport.generation;
    room.status = 'syncing';
    if (room.lastSeq == null) {
      // First join: the newest page over REST fixes the starting position, so the
      // application gets recent history and then everything after it exactly once.
      try {
        const page = await this.#rest.messages(room.id, { limit: room.historyLimit });
        if (this.#map.get(room.id) !== room) return;
        if (room.lastSeq == null) {
          const msgs = [...page.messages].reverse();
          room.firstSeq = msgs.length ? msgs[0].seq : 1;
          room.lastSeq = msgs.length ? msgs[0].seq - 1 : 0;
          room.hasOlder = page.next_cursor != null;
          this.accept(room.id, msgs);
        }
      } catch (e) {
        if (this.#map.get(room.id) !== room) return;
        if (e.code === 'not_member' || e.code === 'room_not_found') {
          this.#forget(room, e);
          this.#emit('left_room', { room_id: room.id, reason: 'lost', code: e.code });
          this.#opts.onLost?.(room.id);
          return;
        }
        room.status = 'idle';
        if (e.code !== 'network_error') this.#emit('error', { code: e.code, message: e.message, room_id: room.id });
        // Transient (unavailable, network): try again while this connection lasts; a
        // reconnect starts over anyway.
        const delay = Math.min(10_000, 500 * 2 ** Math.min(5, room.syncFailures++));
        clearTimeout(room.syncTimer);
        room.syncTimer = quietTimeout(() => {
          if (this.#map.get(room.id) === room && room.status === 'idle' && this.#transport.isOpen
            && this.#transport.generation === generation) this.#sync(room);
        }, delay);
        return;
      }
      room.syncFailures = 0;
    }
    if (this.#map.get(room.id) !== room || generation !== this.#transport.generation) return;
    if (this.#transport.send('join_room', { room_id: room.id, last_seen_seq: room.lastSeq })) {
      room.status = 'joining';
    } else {
      room.status = 'idle';
    }
  }

  // The first frame of a join from a position (then joined_room, then any catch-up).
  onHistory(data) {
    const room = this.#map.get(data.room_id);
    if (!room) return;
    room.catchingUp = !!data.has_more;
    this.horizon(room, data.first_seq);
    this.accept(room.id, data.messages || []);
  }

  // The server removed the room's messages below `firstSeq` (retention): a position
  // before it moves up to it, so that what was removed is not waited for as a gap.
  horizon(room, firstSeq) {
    if (typeof firstSeq !== 'number' || room.lastSeq == null || room.lastSeq >= firstSeq - 1) return;
    const from = room.lastSeq + 1;
    room.lastSeq = firstSeq - 1;
    for (const seq of room.pending.keys()) if (seq <= room.lastSeq) room.pending.delete(seq);
    room.hasOlder = false;
    this.#emit('removed', { room_id: room.id, from, to: firstSeq - 1, first_seq: firstSeq });
  }

  // The join completed: resolve whoever waits for it.
  onJoined(data) {
    const room = this.#map.get(data.room_id);
    if (!room) return;
    const resumed = room.joinedOnce;
    room.status = 'joined';
    room.joinedOnce = true;
    room.resolve({ room_id: room.id, last_seq: room.lastSeq });
    this.#emit('joined', { room_id: room.id, resumed, last_seq: room.lastSeq });
  }

  // The server removed this socket from the room: the answer to our own leave_room
  // (it carries no reason; returns false), or the membership ended (reason: left
  // elsewhere, kicked, banned, deleted): the room is forgotten, so that no reconnect
  // rejoins it (returns true when it was still subscribed here).
  onLeft(data) {
    const due = this.#leaving.get(data.room_id);
    if (due && !data.reason) {
      // A later subscribe of the room stays.
      if (due > 1) this.#leaving.set(data.room_id, due - 1);
      else this.#leaving.delete(data.room_id);
      return false;
    }
    const room = this.#map.get(data.room_id);
    if (!room) return false; // already given up here (our own leave crossed the server's news)
    this.#forget(room, new ChatdError(data.reason || 'left_room', 'no longer in the room'));
    return true;
  }

  // A join-related error we cannot attribute (errors carry no room id): check each
  // room still joining over REST, and drop the ones the server refuses.
  async verifyJoining() {
    for (const room of [...this.#map.values()]) {
      if (room.status !== 'joining') continue;
      try {
        await this.#rest.messages(room.id, { limit: 1 });
      } catch (e) {
        if ((e.code === 'not_member' || e.code === 'room_not_found') && this.#map.get(room.id) === room) {
          this.#forget(room, e);
          this.#emit('left_room', { room_id: room.id, reason: 'lost', code: e.code });
          this.#opts.onLost?.(room.id);
        }
      }
    }
  }

  // Messages of one room from any source: drop what was delivered, buffer what is
  // early, deliver the rest in seq order.
  accept(roomId, messages) {
    const room = this.#map.get(roomId);
    if (!room || room.lastSeq == null) return;
    for (const m of messages) {
      if (m && typeof m.seq === 'number' && m.seq > room.lastSeq) room.pending.set(m.seq, m);
    }
    const out = [];
    while (room.pending.has(room.lastSeq + 1)) {
      const m = room.pending.get(room.lastSeq + 1);
      room.pending.delete(room.lastSeq + 1);
      room.lastSeq++;
      out.push(m);
    }
    if (out.length) {
      if (room.firstSeq == null) room.firstSeq = out[0].seq;
      this.#emit('messages', { room_id: roomId, messages: out });
      for (const m of out) {
        this.#opts.onDeliver?.(m);
        this.#emit('message', m);
      }
    }
    if (room.pending.size === 0) {
      clearTimeout(room.gapTimer);
      room.gapTimer = null;
    } else if (!room.gapTimer && !room.filling) {
      room.gapTimer = quietTimeout(() => {
        room.gapTimer = null;
        this.#fillGap(room);
      }, this.#opts.gapTimeoutMs);
    }
  }

  // A gap that outlived the timeout: read the missing seqs from the REST history.
  async #fillGap(room) {
    if (room.filling || this.#map.get(room.id) !== room) return;
    room.filling = true;
    try {
      while (room.pending.size && this.#map.get(room.id) === room) {
        const from = room.lastSeq;
        const upto = Math.min(...room.pending.keys());
        this.#emit('gap', { room_id: room.id, from: from + 1, to: upto - 1 });
        const got = [];
        let cursor = upto;
        for (;;) {
          const page = await this.#rest.messages(room.id, { cursor, limit: 100 });
          this.horizon(room, page.first_seq);
          for (const m of page.messages) if (m.seq > from) got.push(m);
          const oldest = page.messages.length ? page.messages[page.messages.length - 1].seq : null;
          if (page.next_cursor == null || oldest == null || oldest <= from + 1) break;
          cursor = page.next_cursor;
        }
        this.accept(room.id, got);
        if (room.lastSeq === from) break; // nothing came back: try again later
      }
    } catch (e) {
      this.#emit('error', { code: e.code || 'gap_fill_failed', message: e.message, room_id: room.id });
    } finally {
      room.filling = false;
      if (room.pending.size && !room.gapTimer && this.#map.get(room.id) === room) {
        room.gapTimer = quietTimeout(() => {
          room.gapTimer = null;
          this.#fillGap(room);
        }, this.#opts.gapTimeoutMs);
      }
    }
  }

  // Older messages than the oldest delivered, ascending (not emitted as `message`).
  async loadOlder(roomId, { limit = 50 } = {}) {
    const room = this.#map.get(roomId);
    if (!room) throw new ChatdError('not_joined', 'join the room first');
    if (room.loadingOlder) return room.loadingOlder;
    const run = async () => {
      if (room.firstSeq == null || room.firstSeq <= 1 || room.hasOlder === false) {
        return { messages: [], hasMore: false };
      }
      const page = await this.#rest.messages(roomId, { cursor: room.firstSeq, limit });
      const msgs = [...page.messages].reverse();
      if (msgs.length) room.firstSeq = msgs[0].seq;
      room.hasOlder = page.next_cursor != null && room.firstSeq > 1 && page.first_seq == null;
      return { messages: msgs, hasMore: room.hasOlder };
    };
    room.loadingOlder = run().finally(() => {
      room.loadingOlder = null;
    });
    return room.loadingOlder;
  }
}

// ---------------------------------------------------------------------------

/**
 * Changes waiting for their ack (messages, edits, deletions, reactions): sent at once
 * when connected, re-sent after a reconnect, each with its client_msg_id so that the
 * server applies it once. Once the user is known, the queue is also kept in the
 * client's storage under a key of that user: a reload, or signing out and in again as
 * the same user, sends what was left (stored once however often it is sent).
 */
class Outbox {
  #entries = new Map(); // client_msg_id -> entry, in send order
  #recent = []; // times of the sends within the last second (the pacing window)
  #flushTimer = null;
  #transport;
  #emit;
  #opts;
  #userId;
  #store = null; // { storage, key } of the signed-in user's stored queue
  #done = new Set(); // ids settled here: never written back by a merge with other tabs
  #writing = Promise.resolve();
  #writeQueued = false;

  constructor(transport, emit, opts, userId) {
    this.#transport = transport;
    this.#emit = emit;
    this.#opts = opts;
    this.#userId = userId;
  }

  /** Changes waiting for their ack. */
  get size() { return this.#entries.size; }

  /** A copy of the waiting changes (of one room, or all), in send order. */
  pending(roomId) {
    return [...this.#entries.values()]
      .filter((e) => roomId == null || e.room_id === roomId)
      .map(describeEntry);
  }

  /** Queue a message; the promise settles with its ack or its refusal. */
  send(roomId, content, clientMsgId, { replyTo, attachments } = {}) {
    const data = { room_id: roomId, content };
    if (replyTo != null) data.reply_to = replyTo;
    if (attachments != null) data.attachments = attachments;
    return this.queue('send_message', data, clientMsgId);
  }

  /**
   * Queue any change the server acknowledges with `message_ack`: `send_message`,
   * `edit_message`, `delete_message`, `react`, `unreact` (`data` as PROTOCOL.md 10.2
   * has it, without the client_msg_id).
   */
  queue(event, data, clientMsgId) {
    const client_msg_id = clientMsgId ?? newId();
    const entry = this.#entry({ client_msg_id, event, data, queuedAt: Date.now() });
    const refusal = checkChange(event, data, client_msg_id);
    if (!refusal && this.#entries.has(client_msg_id)) return this.#refuse(entry, 'invalid_payload', 'client_msg_id already pending');
    if (!refusal && this.#entries.size >= this.#opts.outboxLimit) return this.#refuse(entry, 'outbox_full', 'too many unacknowledged messages');
    if (refusal) return this.#refuse(entry, ...refusal);
    this.#entries.set(client_msg_id, entry);
    this.#persist();
    this.#flush();
    return entry.promise;
  }

  #entry({ client_msg_id, event, data, queuedAt }) {
    const entry = { client_msg_id, event, data, room_id: data.room_id, queuedAt, attempts: 0, failures: 0 };
    entry.promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    entry.promise.clientMsgId = client_msg_id;
    entry.promise.catch(() => {}); // a send nobody awaits must not crash Node
    return entry;
  }

  #refuse(entry, code, message) {
    entry.reject(new ChatdError(code, message, { clientMsgId: entry.client_msg_id }));
    return entry.promise;
  }

  /**
   * Keep the queue in `storage` under `key` (the signed-in user's) and take up what an
   * earlier page or session of that user left there; resolves with those entries.
   */
  async attach(storage, key) {
    if (this.#store && this.#store.key !== key) this.detach('session_ended'); // another user's
    this.#store = { storage, key };
    const stored = await this.#readStored();
    if (this.#store?.key !== key) return [];
    const restored = [];
    for (const s of stored) {
      if (this.#entries.has(s.client_msg_id) || this.#done.has(s.client_msg_id)) continue;
      if (checkChange(s.event, s.data || {}, s.client_msg_id)) continue;
      if (this.#entries.size >= this.#opts.outboxLimit) break;
      const entry = this.#entry(s);
      entry.restored = true;
      this.#entries.set(s.client_msg_id, entry);
      restored.push(describeEntry(entry));
    }
    if (restored.length) this.#emit('outbox_restored', { pending: restored });
    this.#persist();
    this.#flush();
    return restored;
  }

  /**
   * The session ended: every waiting change is given up here (its promise rejects with
   * `code`) but stays in storage for the next sign-in of the same user; returns them.
   */
  detach(code) {
    const unsent = this.pending();
    this.#store = null;
    this.#done.clear();
    for (const id of [...this.#entries.keys()]) {
      this.#drop(id, new ChatdError(code, 'not sent yet: it will be sent when the same user signs in again', { clientMsgId: id }));
    }
    return unsent;
  }

  /** Forget the stored queue of the signed-in user too (nothing will be sent). */
  async discardStored(storage, key) {
    try {
      await storage.removeItem(key);
    } catch {
      // nothing to forget
    }
  }

  // Put every change not yet on this socket on it, in send order, at most
  // maxSendsPerSecond in any one second: the server drops what exceeds its own limit
  // (rate_limited), and a backlog re-sent after a reconnect must not trip it.
  #flush() {
    if (!this.#transport.isOpen) return;
    const generation = this.#transport.generation;
    for (const entry of this.#entries.values()) {
      if (entry.sentGeneration === generation || entry.retryTimer) continue;
      const now = Date.now();
      while (this.#recent.length && now - this.#recent[0] >= 1000) this.#recent.shift();
      if (this.#recent.length >= this.#opts.maxSendsPerSecond) {
        if (!this.#flushTimer) {
          this.#flushTimer = setTimeout(() => {
            this.#flushTimer = null;
            this.#flush();
          }, 1000 - (now - this.#recent[0]) + 1);
        }
        return;
      }
      if (!this.#transport.send(entry.event, { ...entry.data, client_msg_id: entry.client_msg_id })) return;
      this.#recent.push(now);
      entry.attempts++;
      entry.sentGeneration = generation;
    }
  }

  // After every (re)connect: everything unacknowledged, in the order it was sent.
  onOpen() {
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.retryTimer);
      entry.retryTimer = null;
    }
    this.#flush();
  }

  // message_ack: the change is durable.
  onAck(data) {
    this.#settle(data.client_msg_id, {
      id: data.id, seq: data.seq, room_id: data.room_id, created_at: data.created_at,
    });
  }

  // Seeing one's own entry in the room is an ack as well (PROTOCOL.md 6.6).
  onMessage(m) {
    if (m.client_msg_id && m.user_id === this.#userId()) {
      this.#settle(m.client_msg_id, { id: m.id, seq: m.seq, room_id: m.room_id, created_at: m.created_at });
    }
  }

  #settle(id, ack) {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#forget(entry);
    entry.resolve(ack);
    this.#emit('ack', { client_msg_id: id, event: entry.event, ...ack });
  }

  // An error naming a pending change: retry the transient ones, fail the others.
  onError(data) {
    const entry = this.#entries.get(data.client_msg_id);
    if (!entry) return false;
    if (RETRYABLE.has(data.code) && ++entry.failures <= this.#opts.sendRetries) {
      const delay = Math.min(10_000, this.#opts.sendRetryMs * 2 ** (entry.failures - 1));
      clearTimeout(entry.retryTimer);
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = null;
        if (this.#entries.get(entry.client_msg_id) !== entry) return;
        entry.sentGeneration = null; // due again on this socket
        this.#flush();
      }, delay);
      return true;
    }
    this.fail(entry.client_msg_id, new ChatdError(data.code, data.message, {
      clientMsgId: entry.client_msg_id, retryAfterMs: Number.isFinite(data.retry_after_ms) ? data.retry_after_ms : undefined,
    }));
    return true;
  }

  // Give up one change for good (the server applies it at most once if it has it).
  fail(clientMsgId, err) {
    const entry = this.#entries.get(clientMsgId);
    if (!entry) return false;
    this.#forget(entry);
    this.#reject(entry, err);
    return true;
  }

  // Give up one change here only: the stored copy stays (the session ended).
  #drop(clientMsgId, err) {
    const entry = this.#entries.get(clientMsgId);
    if (!entry) return;
    this.#entries.delete(clientMsgId);
    clearTimeout(entry.retryTimer);
    this.#reject(entry, err);
  }

  #reject(entry, err) {
    entry.reject(err);
    this.#emit('send_failed', {
      client_msg_id: entry.client_msg_id, room_id: entry.room_id, event: entry.event, code: err.code, message: err.message,
      ...(err.retryAfterMs !== undefined ? { retry_after_ms: err.retryAfterMs } : {}),
    });
  }

  #forget(entry) {
    this.#entries.delete(entry.client_msg_id);
    clearTimeout(entry.retryTimer);
    this.#done.add(entry.client_msg_id);
    if (this.#done.size > 2000) this.#done.delete(this.#done.values().next().value);
    this.#persist();
  }

  // --- storage ------------------------------------------------------------------

  async #readStored() {
    const store = this.#store;
    if (!store) return [];
    try {
      const raw = await store.storage.getItem(store.key);
      const list = raw ? JSON.parse(raw) : [];
      return Array.isArray(list) ? list.filter((s) => s && typeof s.client_msg_id === 'string' && s.data) : [];
    } catch {
      return [];
    }
  }

  // Write the queue once per turn. Other tabs of the same user share the key: their
  // entries are kept, ours replace our own, and what we settled is left out.
  #persist() {
    if (!this.#store || this.#writeQueued) return;
    this.#writeQueued = true;
    const store = this.#store;
    this.#writing = this.#writing.then(async () => {
      this.#writeQueued = false;
      if (this.#store !== store) return;
      const others = (await this.#readStored())
        .filter((s) => !this.#entries.has(s.client_msg_id) && !this.#done.has(s.client_msg_id));
      const ours = [...this.#entries.values()].map(({ client_msg_id, event, data, queuedAt }) => ({
        client_msg_id, event, data, queuedAt,
      }));
      const list = [...others, ...ours].slice(-this.#opts.outboxLimit);
      try {
        if (list.length) await store.storage.setItem(store.key, JSON.stringify(list));
        else await store.storage.removeItem(store.key);
      } catch {
        // a full or refusing storage: the queue still lives in memory
      }
    });
  }

  /** Resolves once every queued write reached the storage (tests, before a reload). */
  flushed() {
    return this.#writing.then(() => (this.#writeQueued ? this.#writing : undefined));
  }
}

// What pending() shows of an entry.
function describeEntry(e) {
  const { client_msg_id, event, data, queuedAt, attempts } = e;
  const out = { client_msg_id, event, room_id: data.room_id, queuedAt, attempts };
  for (const k of ['content', 'reply_to', 'attachments', 'message_id', 'emoji']) {
    if (data[k] !== undefined) out[k] = data[k];
  }
  if (e.restored) out.restored = true;
  return out;
}

// Why a change cannot be queued ([code, message]), or null.
function checkChange(event, data, clientMsgId) {
  if (!CHANGES.has(event)) return ['invalid_payload', `not a change the outbox sends: ${event}`];
  if (typeof data.room_id !== 'string' || !data.room_id) return ['invalid_payload', 'room_id is required'];
  if (typeof clientMsgId !== 'string' || clientMsgId.length < 1 || clientMsgId.length > 64) {
    return ['invalid_payload', 'client_msg_id must be 1 to 64 characters'];
  }
  if (event === 'send_message' || event === 'edit_message') {
    const { content } = data;
    if (typeof content !== 'string' || content.length === 0) return ['invalid_payload', 'content must be a non-empty string'];
    if (content.length > MAX_MESSAGE_CHARS && charCount(content) > MAX_MESSAGE_CHARS) {
      return ['message_too_long', `a message is at most ${MAX_MESSAGE_CHARS} characters`];
    }
  }
  if (event !== 'send_message' && !Number.isSafeInteger(data.message_id)) return ['invalid_payload', 'message_id must be a message id'];
  if ((event === 'react' || event === 'unreact') && (typeof data.emoji !== 'string' || !data.emoji)) {
    return ['invalid_payload', 'emoji is required'];
  }
  return null;
}

// ---------------------------------------------------------------------------

/** Our own typing state per room: start on input, stop after a pause. */
class Typing {
  // room_id -> { active, sent, lastStart, idle, deferred }; kept across stops so that
  // the next start respects the server's one-start-a-second relay.
  #rooms = new Map();
  #latest = new Map(); // "room/user" -> newest typing or message time seen (ms)
  #transport;
  #opts;

  constructor(transport, opts) {
    this.#transport = transport;
    this.#opts = opts;
  }

  /** A keystroke in `roomId`'s input. */
  input(roomId) {
    const now = Date.now();
    let t = this.#rooms.get(roomId);
    if (!t) this.#rooms.set(roomId, (t = { active: false, sent: false, lastStart: 0, idle: null, deferred: null }));
    // The server ends a typing after 6 s without a start: repeat it every few seconds
    // while the user keeps typing.
    if ((!t.active || now - t.lastStart >= this.#opts.typingRepeatMs) && !t.deferred) {
      // It also drops a start within a second of the last one it relayed (and the stop
      // after it): wait for that second instead of losing the start.
      const wait = t.lastStart + 1050 - now;
      if (wait <= 0) this.#start(roomId, t);
      else t.deferred = quietTimeout(() => {
        t.deferred = null;
        if (t.active) this.#start(roomId, t);
      }, wait);
    }
    t.active = true;
    clearTimeout(t.idle);
    t.idle = quietTimeout(() => this.stop(roomId), this.#opts.typingIdleMs);
  }

  #start(roomId, t) {
    if (this.#transport.send('typing_start', { room_id: roomId })) {
      t.lastStart = Date.now();
      t.sent = true;
    }
  }

  /** The user stopped typing in `roomId`. */
  stop(roomId) {
    const t = this.#rooms.get(roomId);
    if (!t || !t.active) return;
    clearTimeout(t.idle);
    clearTimeout(t.deferred);
    t.deferred = null;
    t.active = false;
    if (t.sent) this.#transport.send('typing_stop', { room_id: roomId });
    t.sent = false;
  }

  /** Forget our typing state (the socket is gone; the server stopped it). */
  clear() {
    for (const t of this.#rooms.values()) {
      clearTimeout(t.idle);
      clearTimeout(t.deferred);
    }
    this.#rooms.clear();
  }

  // Others' typing events can arrive out of order (a start relayed after its stop, or
  // after the message it announced): keep the newest per user and room, by the time
  // the server stamped on it, and drop older ones.
  fresh(event) {
    const at = Date.parse(event.started_at);
    if (Number.isNaN(at)) return true;
    const key = `${event.room_id}/${event.user_id}`;
    const seen = this.#latest.get(key);
    if (seen !== undefined && at < seen) return false;
    this.#remember(key, at);
    return true;
  }

  // A message ends its author's typing: a start stamped before it is stale.
  sawMessage(m) {
    if (isSystemEntry(m)) return;
    const at = Date.parse(m.created_at);
    if (Number.isNaN(at)) return;
    const key = `${m.room_id}/${m.user_id}`;
    if ((this.#latest.get(key) ?? -Infinity) < at) this.#remember(key, at);
  }

  #remember(key, at) {
    this.#latest.delete(key);
    this.#latest.set(key, at);
    if (this.#latest.size > 2000) this.#latest.delete(this.#latest.keys().next().value);
  }
}

// A change asked for while signed out: refused at once.
function notSignedIn(clientMsgId) {
  const p = Promise.reject(new ChatdError('not_authenticated', 'not signed in'));
  p.catch(() => {});
  p.clientMsgId = clientMsgId ?? null;
  return p;
}

// ---------------------------------------------------------------------------

const DEFAULTS = {
  storageKey: 'chatd.session',
  autoRefresh: true,
  reconnect: { baseMs: 500, maxMs: 15_000, factor: 2 },
  heartbeatMs: 25_000,
  heartbeatTimeoutMs: 10_000,
  historyLimit: 50,
  gapTimeoutMs: 1500,
  outboxLimit: 500,
  maxSendsPerSecond: 50,
  sendRetries: 5,
  sendRetryMs: 500,
  typingIdleMs: 3000,
  typingRepeatMs: 3000,
};

/** The chatd client: sign in, connect, join rooms, send and receive. */
export class ChatdClient extends Emitter {
  #http;
  #transport;
  #rooms;
  #outbox;
  #typing;
  #pings = new Map();
  #reads = new Map(); // room_id -> { local, confirmed, sentAt }: read marks (see markRead)
  #opts;

  /** Create a client; `url` is the server's http(s) base URL (the page's origin by default). */
  constructor(options = {}) {
    super();
    const base = options.url ?? globalThis.location?.origin;
    if (!base) throw new ChatdError('invalid_options', 'url is required outside a browser');
    const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    const fetchFn = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (!WebSocketImpl) throw new ChatdError('invalid_options', 'no WebSocket: pass options.WebSocket (Node 20: --experimental-websocket)');
    if (!fetchFn) throw new ChatdError('invalid_options', 'no fetch: pass options.fetch');
    this.#opts = {
      ...DEFAULTS,
      ...options,
      url: String(base),
      WebSocket: WebSocketImpl,
      reconnect: { ...DEFAULTS.reconnect, ...(options.reconnect || {}) },
      storage: options.storage ?? new MemoryStorage(),
    };
    const emit = (type, data) => this.emit(type, data);
    this.#http = new Http(this.#opts.url, fetchFn);
    /** @internal auth and tokens */
    this.session = new Session(this.#http, this.#opts, emit, (reason, user) => this.#sessionEnded(reason, user));
    /** REST helpers (rooms, members, history pages). */
    this.api = new Rest(this.#http, this.session, {
      onMyRooms: (rooms) => {
        for (const r of rooms) if (typeof r.last_read_seq === 'number') this.#noteRead(r.id, r.last_read_seq);
      },
      onRead: (roomId, seq) => this.#noteRead(roomId, seq),
    });
    this.#transport = new Transport(this.#opts, this.session, this.#http, emit, {
      open: () => {
        this.#rooms.onOpen();
        this.#outbox.onOpen();
      },
      down: () => {
        this.#rooms.onDown();
        this.#typing.clear();
        for (const p of this.#pings.values()) p.reject(new ChatdError('disconnected', 'connection lost'));
        this.#pings.clear();
      },
      frame: (event, data) => this.#onFrame(event, data),
    });
    this.#rooms = new Rooms(this.api, this.#transport, emit, {
      ...this.#opts,
      onDeliver: (m) => this.#typing.sawMessage(m),
      onLost: (roomId) => this.#reads.delete(roomId),
    });
    this.#outbox = new Outbox(this.#transport, emit, this.#opts, () => this.session.user?.id);
    this.#typing = new Typing(this.#transport, this.#opts);
  }

  /** The signed-in user ({id, username, ...}) or null. */
  get user() { return this.session.user; }
  /** Connection state: connecting | open | reconnecting | closed. */
  get state() { return this.#transport.state; }
  /** The rooms this client is subscribed to. */
  get rooms() { return this.#rooms.ids; }
  /** Number of sends waiting for their ack. */
  get pendingCount() { return this.#outbox.size; }

  /** Create an account and sign in. */
  async register(fields) { return this.#signedIn(await this.session.register(fields)); }
  /**
   * Sign in with email and password (with the getToken option: see signIn); changes this
   * user left unsent are sent again.
   */
  async login(fields) {
    if (this.session.external) return this.signIn();
    return this.#signedIn(await this.session.login(fields));
  }
  /**
   * With the getToken option: take the first token from the product and learn who it
   * names here (GET /me; the server creates the user on its first request). Resolves
   * with the user.
   */
  async signIn() {
    if (!this.session.external) throw new ChatdError('invalid_options', 'signIn needs the getToken option');
    const me = await this.api.me();
    this.session.user = me;
    this.emit('tokens', { user: me, accessToken: this.session.accessToken });
    return this.#signedIn(me);
  }
  /** Resume a stored session; resolves with the user, or null when there is none (getToken: signIn). */
  async restore() {
    if (this.session.external) return this.signIn();
    const user = await this.session.restore();
    return user ? this.#signedIn(user) : null;
  }

  // The user is known: their stored outbox (left by a reload or an ended session) is
  // taken up and sent once the socket opens.
  async #signedIn(user) {
    if (user?.id) await this.#outbox.attach(this.#opts.storage, this.#outboxKey(user.id));
    return user;
  }

  #outboxKey(userId) { return `${this.#opts.storageKey}.outbox.${userId}`; }

  /**
   * Forget the changes `userId` left unsent (they were stored for their next sign-in);
   * for a "discard" button after a session ended.
   */
  discardUnsent(userId) { return this.#outbox.discardStored(this.#opts.storage, this.#outboxKey(userId)); }

  /** Resolves once the outbox's last change reached the storage. */
  outboxSaved() { return this.#outbox.flushed(); }
  /** Sign out (this session, or all of the user's with `everywhere`). */
  async logout(options) {
    this.#transport.stop();
    await this.session.logout(options);
  }
  /** A valid access token (refreshed first when about to expire). */
  getAccessToken() { return this.session.token(); }

  /** Open the WebSocket (and keep it open); resolves when it is open. */
  connect() {
    if (this.#transport.state === 'open') return Promise.resolve();
    const opened = new Promise((resolve, reject) => {
      const offState = this.on('state', ({ state }) => {
        if (state === 'open') done(resolve);
        else if (state === 'closed') done(() => reject(new ChatdError('closed', 'the connection was closed')));
      });
      const done = (fn) => {
        offState();
        fn();
      };
    });
    opened.catch(() => {});
    this.#transport.start();
    return opened;
  }

  /** Close the WebSocket deliberately (no reconnect); unacknowledged sends stay queued. */
  disconnect() { this.#transport.stop(); }

  /** Disconnect and stop every timer (the client can still be reconnected). */
  close() {
    this.#transport.stop();
    this.#typing.clear();
    this.session.dispose();
  }

  /** Become a member (REST) and subscribe; `since` = last seq already seen (0: from the start). */
  async join(roomId, options = {}) {
    if (options.membership !== false) await this.api.joinRoom(roomId);
    return this.#rooms.subscribe(roomId, options);
  }

  /** Subscribe to a room the user is a member of (WebSocket only). */
  subscribe(roomId, options) { return this.#rooms.subscribe(roomId, options); }

  /** Stop receiving a room on this client (the membership stays). */
  unsubscribe(roomId) {
    this.#typing.stop(roomId);
    return this.#rooms.unsubscribe(roomId);
  }

  /** Unsubscribe and give up the membership (REST). */
  async leave(roomId) {
    this.unsubscribe(roomId);
    await this.api.leaveRoom(roomId);
    this.#reads.delete(roomId); // a later membership starts its own read state
  }

  /** The highest seq delivered for a room (its position), or null. */
  position(roomId) { return this.#rooms.get(roomId)?.lastSeq ?? null; }

  /**
   * Mark a room read up to `seq`: over the socket (`mark_read`) when the room is joined
   * on it, else over REST. The local read position never moves backwards: a mark at or
   * below it sends nothing. Resolves with the read position this client knows after the
   * mark; every socket of the user (other tabs, devices) gets `read_state`.
   */
  async markRead(roomId, seq) {
    if (!Number.isInteger(seq) || seq < 0) throw new ChatdError('invalid_payload', 'seq must be a non-negative integer');
    const r = this.#readState(roomId);
    const now = Date.now();
    // Resend a mark the server has not confirmed (a socket that dropped right after it)
    // when asked again, at most every few seconds.
    const again = seq > r.confirmed && r.local > r.confirmed && now - r.sentAt > 3000;
    if (seq <= r.local && !again) return r.local;
    r.local = Math.max(r.local, seq);
    r.sentAt = now;
    if (this.#rooms.get(roomId)?.status === 'joined' && this.#transport.send('mark_read', { room_id: roomId, seq: r.local })) {
      return r.local;
    }
    await this.api.markRead(roomId, r.local);
    return r.local;
  }

  /** The furthest read mark known for a room (this client's marks, `read_state`, `myRooms`), or null. */
  readPosition(roomId) { return this.#reads.get(roomId)?.local ?? null; }

  #readState(roomId) {
    let r = this.#reads.get(roomId);
    if (!r) this.#reads.set(roomId, (r = { local: 0, confirmed: 0, sentAt: 0 }));
    return r;
  }

  // A read position the server reported (read_state, REST answers, myRooms).
  #noteRead(roomId, seq) {
    const r = this.#readState(roomId);
    r.confirmed = Math.max(r.confirmed, seq);
    r.local = Math.max(r.local, seq);
  }

  /** Load messages older than the oldest delivered (ascending); `hasMore` tells if there are more. */
  loadOlder(roomId, options) { return this.#rooms.loadOlder(roomId, options); }

  /**
   * Send a message (`replyTo`: the id of a message of the room it answers;
   * `attachments`: metadata, PROTOCOL.md 10.2); resolves with the ack {id, seq, room_id,
   * created_at}; `.clientMsgId` names it.
   */
  send(roomId, content, options = {}) {
    if (!this.session.signedIn) return notSignedIn(options.clientMsgId);
    this.#typing.stop(roomId);
    return this.#outbox.send(roomId, content, options.clientMsgId, options);
  }

  /** Replace the content of one's own message; resolves with the ack of the edit entry. */
  edit(roomId, messageId, content, options = {}) {
    return this.#change('edit_message', { room_id: roomId, message_id: messageId, content }, options);
  }

  /** Delete a message (one's own; admins and owners any); resolves with the ack of the deletion entry. */
  deleteMessage(roomId, messageId, options = {}) {
    return this.#change('delete_message', { room_id: roomId, message_id: messageId }, options);
  }

  /** Add one's reaction `emoji` to a message. */
  react(roomId, messageId, emoji, options = {}) {
    return this.#change('react', { room_id: roomId, message_id: messageId, emoji }, options);
  }

  /** Take back one's reaction `emoji`. */
  unreact(roomId, messageId, emoji, options = {}) {
    return this.#change('unreact', { room_id: roomId, message_id: messageId, emoji }, options);
  }

  // Changes travel like sends: queued while offline, re-sent with their client_msg_id.
  #change(event, data, options) {
    if (!this.session.signedIn) return notSignedIn(options.clientMsgId);
    return this.#outbox.queue(event, data, options.clientMsgId);
  }

  /** The unacknowledged changes (of one room, or all): messages, edits, deletions, reactions. */
  pending(roomId) { return this.#outbox.pending(roomId); }

  /** Give up a pending send (its promise rejects with code `cancelled`). */
  cancel(clientMsgId) {
    return this.#outbox.fail(clientMsgId, new ChatdError('cancelled', 'cancelled', { clientMsgId }));
  }

  /** Call on every keystroke: sends typing_start, and typing_stop after a pause. */
  typing(roomId) { this.#typing.input(roomId); }

  /** The user stopped typing (sent, cleared the input, left the field). */
  stopTyping(roomId) { this.#typing.stop(roomId); }

  /** Round trip to the server in milliseconds (application-level ping). */
  ping(timeoutMs = 10_000) {
    const id = newId();
    const started = Date.now();
    return new Promise((resolve, reject) => {
      if (!this.#transport.send('ping', { id })) {
        reject(new ChatdError('disconnected', 'not connected'));
        return;
      }
      const timer = quietTimeout(() => {
        this.#pings.delete(id);
        reject(new ChatdError('timeout', 'no pong'));
      }, timeoutMs);
      this.#pings.set(id, {
        resolve: () => { clearTimeout(timer); resolve(Date.now() - started); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }

  /** Drop the socket as a network failure would (for tests and "retry now" buttons). */
  reconnect() {
    if (this.#transport.state === 'open') this.#transport.drop('reconnect');
    else this.#transport.retryNow();
  }

  #onFrame(event, data) {
    this.emit('event', { event, data });
    switch (event) {
      case 'history':
        this.#rooms.onHistory(data);
        for (const m of data.messages || []) this.#outbox.onMessage(m);
        break;
      case 'joined_room': {
        this.#rooms.onJoined(data);
        // A mark sent on a socket that dropped before the server stored it: again.
        const r = data && this.#reads.get(data.room_id);
        if (r && r.local > r.confirmed && this.#rooms.get(data.room_id)?.status === 'joined') {
          this.#transport.send('mark_read', { room_id: data.room_id, seq: r.local });
        }
        break;
      }
      case 'left_room':
        // Our own leave_room's answer is not news; the end of a membership is.
        if (data && this.#rooms.onLeft(data)) {
          this.#typing.stop(data.room_id);
          this.#reads.delete(data.room_id); // a later membership starts its own read state
          this.emit('left_room', { ...data, reason: data.reason || 'left' });
        }
        break;
      case 'read_state':
        if (data && typeof data.last_read_seq === 'number') this.#noteRead(data.room_id, data.last_read_seq);
        this.emit('read_state', data);
        break;
      case 'new_message':
        this.#outbox.onMessage(data);
        this.#rooms.accept(data.room_id, [data]);
        break;
      case 'new_message_batch':
        if (Array.isArray(data) && data.length) {
          for (const m of data) this.#outbox.onMessage(m);
          // One room per batch by protocol; grouping keeps us safe if that changes.
          const byRoom = new Map();
          for (const m of data) {
            if (!byRoom.has(m.room_id)) byRoom.set(m.room_id, []);
            byRoom.get(m.room_id).push(m);
          }
          for (const [roomId, list] of byRoom) this.#rooms.accept(roomId, list);
        }
        break;
      case 'message_ack':
        this.#outbox.onAck(data);
        break;
      case 'pong': {
        const p = data && this.#pings.get(data.id);
        if (p) {
          this.#pings.delete(data.id);
          p.resolve();
        }
        this.emit('pong', data);
        break;
      }
      case 'error':
        if (data && data.client_msg_id && this.#outbox.onError(data)) break;
        if (data && (data.code === 'not_member' || data.code === 'room_not_found')) this.#rooms.verifyJoining();
        this.emit('error', data);
        break;
      default:
        // presence, typing, user_joined, user_left, receipt, and whatever the server
        // adds later (message_edited, ...): passed through by name.
        if (event === 'typing' && data && !this.#typing.fresh(data)) break;
        if (!LOCAL_EVENTS.has(event)) this.emit(event, data);
        if (!KNOWN.has(event)) this.emit('unknown_event', { event, data });
    }
  }

  #sessionEnded(reason, user) {
    this.#transport.stop();
    const unsent = this.#outbox.detach('session_ended');
    this.#rooms.clear('session_ended');
    this.#reads.clear();
    this.#typing.clear();
    this.emit('session_ended', { reason, unsent, user: user ?? null });
  }
}

export default ChatdClient;
