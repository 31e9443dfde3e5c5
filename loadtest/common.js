// common.js: code shared by k6-message-delivery.js and k6-chat-ws.js.
//
// Environment helpers and the knobs both scripts read with the same defaults,
// the metrics both scripts report, REST provisioning for setup(), message
// validation, seq tracking and WebSocket frame helpers. Knobs whose defaults
// differ between the scripts (SENDERS, RECEIVERS) and script-specific metrics
// stay in the scripts. Uses only k6 built-in modules.

import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

// ---------------------------------------------------------------- knobs

export function envStr(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : v;
}

export function envNum(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`${name} must be a non-negative number, got "${v}"`);
  }
  return n;
}

export function envInt(name, def) {
  return Math.floor(envNum(name, def));
}

export function envList(name) {
  return envStr(name, '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export const MESSAGES_PER_VU = envInt('MESSAGES_PER_VU', 20);
export const MESSAGE_INTERVAL_MS = envInt('MESSAGE_INTERVAL_MS', 100);
export const BASE_URL = envStr('BASE_URL', 'http://localhost:3000').replace(/\/+$/, '');
export const WS_URL = envStr('WS_URL', 'ws://localhost:3000/ws');
export const NODE_URLS = envList('NODE_URLS').length > 0 ? envList('NODE_URLS') : [WS_URL];
export const P95_MS = envNum('P95_MS', 10);
// Receivers (and the other listening VUs) connect first; senders start this much later.
export const SENDER_START_DELAY_MS = envInt('SENDER_START_DELAY_MS', 3000);
// Extra time receivers wait for messages after the senders should be done.
export const GRACE_MS = envInt('GRACE_MS', 15000);
// Once a receiver has every expected message it stays this long (to catch duplicates).
export const LINGER_MS = envInt('LINGER_MS', 1000);
// How long a sender waits for its acks after its last send.
export const ACK_TIMEOUT_MS = envInt('ACK_TIMEOUT_MS', 10000);
// How long a socket waits for joined_room.
export const JOIN_TIMEOUT_MS = envInt('JOIN_TIMEOUT_MS', 10000);
// Unplanned closes or failed connects a listening VU tolerates (it rejoins with last_seen_seq).
export const MAX_RECONNECTS = envInt('MAX_RECONNECTS', 5);
// Rooms to create when ROOM_ID/ROOM_IDS are not given.
export const ROOM_COUNT = Math.max(1, envInt('ROOM_COUNT', 1));
// "query" (?token=) or "header" (Authorization: Bearer).
export const TOKEN_IN = envStr('TOKEN_IN', 'query');
// 1: every Message of this run must carry back its client_msg_id.
export const CHECK_CLIENT_MSG_ID = envInt('CHECK_CLIENT_MSG_ID', 1) === 1;
// 1: receivers join with last_seen_seq = the room's seq before the run (needs BASE_URL).
export const JOIN_WITH_LAST_SEEN = envInt('JOIN_WITH_LAST_SEEN', 1) === 1;
export const PASSWORD = envStr('PASSWORD', 'k6-load-password');
export const REGISTER_BATCH = Math.max(1, envInt('REGISTER_BATCH', 10));
export const GIVEN_TOKENS = envList('TOKENS').length > 0 ? envList('TOKENS') : envList('ACCESS_TOKEN');
export const GIVEN_ROOMS = (envList('ROOM_IDS').length > 0 ? envList('ROOM_IDS') : envList('ROOM_ID')).map((r) =>
  r.toLowerCase(),
);

// 1: sender s starts its schedule s/SENDERS of an interval late, so that the senders'
// messages are spread over each interval; 0: every sender sends at the same instants
// (k6 starts them together), which tests bursts of SENDERS messages at once.
export const SENDER_STAGGER = envInt('SENDER_STAGGER', 1) === 1;

export const SEND_DURATION_MS = MESSAGES_PER_VU * MESSAGE_INTERVAL_MS + MESSAGE_INTERVAL_MS;

// How long sender s (of `senders`) waits after its join before its first message.
export function senderOffset(s, senders) {
  return SENDER_STAGGER && senders > 0 ? ((s % senders) * MESSAGE_INTERVAL_MS) / senders : 0;
}

export function secs(ms) {
  return `${Math.ceil(ms / 1000)}s`;
}

// ---------------------------------------------------------------- metrics (both scripts)

export const deliverySuccess = new Rate('delivery_success_rate');
export const deliveryLatency = new Trend('delivery_latency_ms', true);
export const payloadValid = new Rate('payload_valid_rate');
export const seqDuplicates = new Counter('seq_duplicates');
export const seqOutOfOrder = new Counter('seq_out_of_order');
export const contentDuplicates = new Counter('content_duplicates');
export const seqGaps = new Counter('seq_gaps');
export const messagesSent = new Counter('messages_sent');
export const messagesAcked = new Counter('messages_acked');
export const messagesReceived = new Counter('messages_received');
export const ackLatency = new Trend('ack_latency_ms', true);
export const wsErrors = new Counter('ws_error_events');
export const wsConnectFailures = new Counter('ws_connect_failures');
export const wsServerCloses = new Counter('ws_unexpected_closes');

// ---------------------------------------------------------------- REST provisioning

export function is2xx(res) {
  return res.status >= 200 && res.status < 300;
}

export function jsonParams(token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return { headers, timeout: '60s' };
}

// Runs http.batch over requests, retrying 429/503/network failures with backoff.
export function batchWithRetry(requests, what) {
  let pending = requests.map((req, i) => ({ req, i }));
  const results = new Array(requests.length);
  for (let attempt = 0; attempt < 6 && pending.length > 0; attempt++) {
    if (attempt > 0) sleep(Math.min(5, 0.25 * 2 ** attempt));
    const responses = http.batch(pending.map((p) => p.req));
    const retry = [];
    responses.forEach((res, k) => {
      const p = pending[k];
      results[p.i] = res;
      if (res.status === 0 || res.status === 429 || res.status === 503) retry.push(p);
    });
    pending = retry;
  }
  results.forEach((res) => {
    if (!is2xx(res)) {
      throw new Error(`${what} failed: HTTP ${res.status} ${String(res.body).slice(0, 300)}`);
    }
  });
  return results;
}

export function registerUsers(runId, count) {
  const tokens = [];
  for (let start = 0; start < count; start += REGISTER_BATCH) {
    const reqs = [];
    for (let n = start; n < Math.min(count, start + REGISTER_BATCH); n++) {
      const username = `k6${runId}u${n}`;
      reqs.push([
        'POST',
        `${BASE_URL}/auth/register`,
        JSON.stringify({ username, email: `${username}@example.com`, password: PASSWORD }),
        jsonParams(null),
      ]);
    }
    batchWithRetry(reqs, 'POST /auth/register').forEach((res) => {
      const token = res.json('tokens.accessToken');
      if (typeof token !== 'string' || token.length === 0) {
        throw new Error(`POST /auth/register: no tokens.accessToken in ${String(res.body).slice(0, 300)}`);
      }
      tokens.push(token);
    });
  }
  return tokens;
}

export function createRooms(runId, token, count, description) {
  const rooms = [];
  for (let r = 0; r < count; r++) {
    const res = batchWithRetry(
      [
        [
          'POST',
          `${BASE_URL}/rooms`,
          JSON.stringify({ name: `k6-${runId}-room-${r}`, description }),
          jsonParams(token),
        ],
      ],
      'POST /rooms',
    )[0];
    const id = res.json('id');
    if (typeof id !== 'string') throw new Error(`POST /rooms: no id in ${String(res.body).slice(0, 300)}`);
    rooms.push(id.toLowerCase());
  }
  return rooms;
}

export function joinRooms(tokens, rooms) {
  const reqs = [];
  tokens.forEach((token) => {
    rooms.forEach((room) => {
      reqs.push(['POST', `${BASE_URL}/rooms/${room}/join`, '{}', jsonParams(token)]);
    });
  });
  for (let start = 0; start < reqs.length; start += 50) {
    batchWithRetry(reqs.slice(start, start + 50), 'POST /rooms/:id/join');
  }
}

// The highest seq in the room now (0 when empty), or null when it cannot be read.
// `listeners` names the VUs that join with it, for the warning.
export function currentSeq(room, token, listeners) {
  const res = http.get(`${BASE_URL}/rooms/${room}/messages?limit=1`, jsonParams(token));
  if (!is2xx(res)) {
    console.warn(`GET /rooms/${room}/messages: HTTP ${res.status}; ${listeners} will join without last_seen_seq`);
    return null;
  }
  const msgs = res.json('messages');
  if (!Array.isArray(msgs)) return null;
  return msgs.length > 0 && Number.isInteger(msgs[0].seq) ? msgs[0].seq : 0;
}

// Fails fast when a given token is refused (a test with a dead token measures nothing).
export function checkToken(token) {
  const res = http.get(`${BASE_URL}/rooms`, jsonParams(token));
  if (res.status === 401) {
    throw new Error(`ACCESS_TOKEN/TOKENS: GET /rooms answered 401 ${String(res.body).slice(0, 200)}; get fresh tokens`);
  }
  if (!is2xx(res)) console.warn(`GET /rooms with the first token: HTTP ${res.status} (BASE_URL ${BASE_URL})`);
}

// The body of setup(): registers usersNeeded users (unless TOKENS/ACCESS_TOKEN are given),
// creates ROOM_COUNT rooms described as roomDescription (unless ROOM_IDS/ROOM_ID are given),
// joins every token to every room, reads the baseline seq of each room, and logs
// `run <id>: <tokens>, <rooms>` followed by describe (the script's own VU summary).
// Returns { runId, tokens, rooms, baselines }.
export function provision({ usersNeeded, roomDescription, listeners, describe }) {
  const runId = envStr('RUN_ID', Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36));
  let tokens = GIVEN_TOKENS;
  let rooms = GIVEN_ROOMS;
  const provisionTokens = tokens.length === 0;
  const provisionRooms = rooms.length === 0;
  if (provisionTokens) tokens = registerUsers(runId, Math.max(1, usersNeeded));
  else checkToken(tokens[0]);
  if (provisionRooms) rooms = createRooms(runId, tokens[0], ROOM_COUNT, roomDescription);
  if (provisionTokens || provisionRooms || envInt('JOIN_ROOMS', 0) === 1) joinRooms(tokens, rooms);
  const baselines = rooms.map((room) => {
    if (!JOIN_WITH_LAST_SEEN) return null;
    if (provisionRooms) return 0;
    return currentSeq(room, tokens[0], listeners);
  });
  console.log(
    `run ${runId}: ${tokens.length} token(s)${provisionTokens ? ' (registered)' : ''}, ` +
      `${rooms.length} room(s)${provisionRooms ? ' (created)' : ''}${describe}`,
  );
  return { runId, tokens, rooms, baselines };
}

// ---------------------------------------------------------------- message validation

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function clientMsgId(runId, sender, i) {
  return `k6-${runId}-${sender}-${i}`;
}

// UUIDs already seen to match UUID_RE: a room has few authors, and k6's regexp
// costs microseconds per call on the per-message path.
const knownUuids = {};

function isUuid(s) {
  if (knownUuids[s] === true) return true;
  if (!UUID_RE.test(s)) return false;
  knownUuids[s] = true;
  return true;
}

// All Message fields present with the right types, in the expected room.
export function validMessage(m, roomId) {
  return (
    m !== null &&
    typeof m === 'object' &&
    Number.isInteger(m.id) &&
    m.id > 0 &&
    Number.isInteger(m.seq) &&
    m.seq >= 1 &&
    typeof m.room_id === 'string' &&
    m.room_id === roomId &&
    typeof m.user_id === 'string' &&
    isUuid(m.user_id) &&
    typeof m.username === 'string' &&
    m.username.length > 0 &&
    typeof m.content === 'string' &&
    typeof m.created_at === 'string' &&
    TIMESTAMP_RE.test(m.created_at) &&
    (m.client_msg_id === undefined || m.client_msg_id === null || typeof m.client_msg_id === 'string')
  );
}

// The content a sender of this run sends as its i-th message at time t.
export function runContent(runId, vu, i, t) {
  return `{"k6":"${runId}","vu":${vu},"i":${i},"t":${t}}`;
}

// The embedded {vu, i, t} of a message sent by this run (exactly as runContent wrote
// it), or null. Read with string operations and checked by rebuilding the content:
// as strict as JSON.parse plus field checks, and several times cheaper in k6, where
// this runs for every message every socket receives.
let payloadPrefix = { runId: null, prefix: '' };

export function runPayload(content, runId) {
  if (payloadPrefix.runId !== runId) payloadPrefix = { runId, prefix: `{"k6":"${runId}","vu":` };
  const prefix = payloadPrefix.prefix;
  if (typeof content !== 'string' || !content.startsWith(prefix)) return null;
  const iAt = content.indexOf(',"i":', prefix.length);
  const tAt = content.indexOf(',"t":', iAt + 5);
  if (iAt < 0 || tAt < 0) return null;
  const vu = Number(content.slice(prefix.length, iAt));
  const i = Number(content.slice(iAt + 5, tAt));
  const t = Number(content.slice(tAt + 5, content.length - 1));
  if (!Number.isInteger(vu) || !Number.isInteger(i) || !Number.isInteger(t)) return null;
  return content === prefix + vu + ',"i":' + i + ',"t":' + t + '}' ? { vu, i, t } : null;
}

// The senders of room `roomIndex` out of `senders` senders: sender s sends to room s % rooms.
export function sendersOfRoom(roomIndex, roomCount, senders) {
  const list = [];
  for (let s = 0; s < senders; s++) if (s % roomCount === roomIndex) list.push(s);
  return list;
}

// ---------------------------------------------------------------- seq tracking

// Per-stream seq bookkeeping for one room. `last` is the highest seq seen.
export function newSeqState(start) {
  return { last: start, seen: {} };
}

// Returns false when the message is a duplicate (and must not be counted again).
// Gaps (seqs skipped past the highest seen) go to gapCounter, seq_gaps by default.
export function trackSeq(st, seq, gapCounter = seqGaps) {
  if (st.seen[seq]) {
    seqDuplicates.add(1);
    return false;
  }
  st.seen[seq] = true;
  if (st.last !== null && seq < st.last) {
    seqOutOfOrder.add(1);
    return true;
  }
  if (st.last !== null && seq > st.last + 1) gapCounter.add(seq - st.last - 1);
  st.last = seq;
  return true;
}

// ---------------------------------------------------------------- WebSocket frames

export function wsUrlFor(index, token) {
  const base = NODE_URLS[index % NODE_URLS.length];
  if (TOKEN_IN === 'header') return base;
  return `${base}${base.indexOf('?') >= 0 ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

export function wsParams(token, role) {
  const params = { tags: { role } };
  if (TOKEN_IN === 'header') params.headers = { Authorization: `Bearer ${token}` };
  return params;
}

// socket.setTimeout with a delay clamped to >= 1 ms (k6/ws refuses 0).
export function later(socket, fn, ms) {
  socket.setTimeout(fn, Math.max(1, Math.ceil(ms)));
}

export function frame(event, data) {
  return JSON.stringify({ event, data });
}

export function parseFrame(raw) {
  try {
    const msg = JSON.parse(raw);
    return msg !== null && typeof msg === 'object' && typeof msg.event === 'string' ? msg : null;
  } catch (e) {
    return null;
  }
}

// The Messages a frame carries ([null] for a malformed batch or history), or null for other events.
export function messagesOf(msg) {
  switch (msg.event) {
    case 'new_message':
      return [msg.data];
    case 'new_message_batch':
      return Array.isArray(msg.data) ? msg.data : [null];
    case 'history':
      return msg.data && Array.isArray(msg.data.messages) ? msg.data.messages : [null];
    default:
      return null;
  }
}

// An `error` frame: counted in ws_error_events (tagged with its code) and logged.
export function onError(who, msg) {
  wsErrors.add(1, { code: String(msg.data && msg.data.code) });
  console.warn(`${who}: error ${JSON.stringify(msg.data)}`);
}
