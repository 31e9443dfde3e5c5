// k6-message-delivery.js: message delivery test for chatd.
//
// Only two kinds of virtual users: senders and receivers, sharing one room
// (or spread over ROOM_IDS / ROOM_COUNT rooms). Senders send MESSAGES_PER_VU
// messages each; every receiver must get every message sent to its room by
// this run, exactly once, in seq order, with a valid payload, fast.
//
// Metrics (thresholds in brackets):
//   delivery_success_rate  Rate    one sample per (receiver, expected message): seen or not  [rate==1]
//   delivery_latency_ms    Trend   receive time - send time embedded in the content        [p(95)<P95_MS]
//   payload_valid_rate     Rate    one sample per received Message: all fields, right types [rate==1]
//   seq_duplicates         Counter a seq seen twice on one socket stream                    [count==0]
//   seq_out_of_order       Counter a seq lower than one already seen                        [count==0]
//   content_duplicates     Counter one sent message stored twice (two seqs)                 [count==0]
// See loadtest/README.md for every knob. Uses only k6 built-in modules.

import ws from 'k6/ws';
import http from 'k6/http';
import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

// ---------------------------------------------------------------- knobs

function envStr(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : v;
}

function envNum(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`${name} must be a non-negative number, got "${v}"`);
  }
  return n;
}

function envInt(name, def) {
  return Math.floor(envNum(name, def));
}

function envList(name) {
  return envStr(name, '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const SENDERS = envInt('SENDERS', 40);
const RECEIVERS = envInt('RECEIVERS', 100);
const MESSAGES_PER_VU = envInt('MESSAGES_PER_VU', 20);
const MESSAGE_INTERVAL_MS = envInt('MESSAGE_INTERVAL_MS', 100);
const BASE_URL = envStr('BASE_URL', 'http://localhost:3000').replace(/\/+$/, '');
const WS_URL = envStr('WS_URL', 'ws://localhost:3000/ws');
const NODE_URLS = envList('NODE_URLS').length > 0 ? envList('NODE_URLS') : [WS_URL];
const P95_MS = envNum('P95_MS', 10);
// Receivers connect first; senders start this much later.
const SENDER_START_DELAY_MS = envInt('SENDER_START_DELAY_MS', 3000);
// Extra time receivers wait for messages after the senders should be done.
const GRACE_MS = envInt('GRACE_MS', 15000);
// Once a receiver has every expected message it stays this long (to catch duplicates).
const LINGER_MS = envInt('LINGER_MS', 1000);
// How long a sender waits for its acks after its last send.
const ACK_TIMEOUT_MS = envInt('ACK_TIMEOUT_MS', 10000);
// How long a socket waits for joined_room.
const JOIN_TIMEOUT_MS = envInt('JOIN_TIMEOUT_MS', 10000);
// Receivers reconnect (joining with last_seen_seq) when the server closes them early.
const MAX_RECONNECTS = envInt('MAX_RECONNECTS', 5);
// Rooms to create when ROOM_ID/ROOM_IDS are not given.
const ROOM_COUNT = Math.max(1, envInt('ROOM_COUNT', 1));
// "query" (?token=) or "header" (Authorization: Bearer).
const TOKEN_IN = envStr('TOKEN_IN', 'query');
// 1: every Message of this run must carry back its client_msg_id.
const CHECK_CLIENT_MSG_ID = envInt('CHECK_CLIENT_MSG_ID', 1) === 1;
// 1: receivers join with last_seen_seq = the room's seq before the run (needs BASE_URL).
const JOIN_WITH_LAST_SEEN = envInt('JOIN_WITH_LAST_SEEN', 1) === 1;
const PASSWORD = envStr('PASSWORD', 'k6-load-password');
const REGISTER_BATCH = Math.max(1, envInt('REGISTER_BATCH', 10));
const GIVEN_TOKENS = envList('TOKENS').length > 0 ? envList('TOKENS') : envList('ACCESS_TOKEN');
const GIVEN_ROOMS = (envList('ROOM_IDS').length > 0 ? envList('ROOM_IDS') : envList('ROOM_ID')).map((r) =>
  r.toLowerCase(),
);

const SEND_DURATION_MS = MESSAGES_PER_VU * MESSAGE_INTERVAL_MS;
// Longest a receiver stays, counted from its own start.
const RECEIVER_HOLD_MS = SENDER_START_DELAY_MS + JOIN_TIMEOUT_MS + SEND_DURATION_MS + GRACE_MS;
const USERS_NEEDED = SENDERS + RECEIVERS;

// ---------------------------------------------------------------- options

function secs(ms) {
  return `${Math.ceil(ms / 1000)}s`;
}

const scenarios = {};
if (RECEIVERS > 0) {
  scenarios.receivers = {
    executor: 'per-vu-iterations',
    exec: 'receiver',
    vus: RECEIVERS,
    iterations: 1,
    maxDuration: secs(RECEIVER_HOLD_MS + (MAX_RECONNECTS + 1) * 2000 + 30000),
    gracefulStop: '30s',
  };
}
if (SENDERS > 0) {
  scenarios.senders = {
    executor: 'per-vu-iterations',
    exec: 'sender',
    vus: SENDERS,
    iterations: 1,
    startTime: `${SENDER_START_DELAY_MS}ms`,
    maxDuration: secs(JOIN_TIMEOUT_MS + SEND_DURATION_MS + ACK_TIMEOUT_MS + 30000),
    gracefulStop: '30s',
  };
}

export const options = {
  scenarios,
  setupTimeout: envStr('SETUP_TIMEOUT', secs(60000 + USERS_NEEDED * 1000)),
  thresholds: {
    delivery_success_rate: ['rate==1'],
    payload_valid_rate: ['rate==1'],
    seq_duplicates: ['count==0'],
    seq_out_of_order: ['count==0'],
    content_duplicates: ['count==0'],
    delivery_latency_ms: [`p(95)<${P95_MS}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

// ---------------------------------------------------------------- metrics

const deliverySuccess = new Rate('delivery_success_rate');
const deliveryLatency = new Trend('delivery_latency_ms', true);
const payloadValid = new Rate('payload_valid_rate');
const seqDuplicates = new Counter('seq_duplicates');
const seqOutOfOrder = new Counter('seq_out_of_order');
const contentDuplicates = new Counter('content_duplicates');
const seqGaps = new Counter('seq_gaps');
const messagesSent = new Counter('messages_sent');
const messagesAcked = new Counter('messages_acked');
const messagesReceived = new Counter('messages_received');
const ackLatency = new Trend('ack_latency_ms', true);
const wsErrors = new Counter('ws_error_events');
const wsConnectFailures = new Counter('ws_connect_failures');
const wsServerCloses = new Counter('ws_unexpected_closes');

// ---------------------------------------------------------------- REST provisioning

function is2xx(res) {
  return res.status >= 200 && res.status < 300;
}

function jsonParams(token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return { headers, timeout: '60s' };
}

// Runs http.batch over requests, retrying 429/503/network failures with backoff.
function batchWithRetry(requests, what) {
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

function registerUsers(runId, count) {
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

function createRooms(runId, token, count) {
  const rooms = [];
  for (let r = 0; r < count; r++) {
    const res = batchWithRetry(
      [
        [
          'POST',
          `${BASE_URL}/rooms`,
          JSON.stringify({ name: `k6-${runId}-room-${r}`, description: 'k6 message delivery test' }),
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

function joinRooms(tokens, rooms) {
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
function currentSeq(room, token) {
  const res = http.get(`${BASE_URL}/rooms/${room}/messages?limit=1`, jsonParams(token));
  if (!is2xx(res)) {
    console.warn(`GET /rooms/${room}/messages: HTTP ${res.status}; receivers will join without last_seen_seq`);
    return null;
  }
  const msgs = res.json('messages');
  if (!Array.isArray(msgs)) return null;
  return msgs.length > 0 && Number.isInteger(msgs[0].seq) ? msgs[0].seq : 0;
}

// Fails fast when a given token is refused (a test with a dead token measures nothing).
function checkToken(token) {
  const res = http.get(`${BASE_URL}/rooms`, jsonParams(token));
  if (res.status === 401) {
    throw new Error(`ACCESS_TOKEN/TOKENS: GET /rooms answered 401 ${String(res.body).slice(0, 200)}; get fresh tokens`);
  }
  if (!is2xx(res)) console.warn(`GET /rooms with the first token: HTTP ${res.status} (BASE_URL ${BASE_URL})`);
}

export function setup() {
  const runId = envStr('RUN_ID', Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36));
  let tokens = GIVEN_TOKENS;
  let rooms = GIVEN_ROOMS;
  const provisionTokens = tokens.length === 0;
  const provisionRooms = rooms.length === 0;
  if (provisionTokens) tokens = registerUsers(runId, Math.max(1, USERS_NEEDED));
  else checkToken(tokens[0]);
  if (provisionRooms) rooms = createRooms(runId, tokens[0], ROOM_COUNT);
  if (provisionTokens || provisionRooms || envInt('JOIN_ROOMS', 0) === 1) joinRooms(tokens, rooms);
  const baselines = rooms.map((room) => {
    if (!JOIN_WITH_LAST_SEEN) return null;
    if (provisionRooms) return 0;
    return currentSeq(room, tokens[0]);
  });
  console.log(
    `run ${runId}: ${tokens.length} token(s)${provisionTokens ? ' (registered)' : ''}, ` +
      `${rooms.length} room(s)${provisionRooms ? ' (created)' : ''}, ${SENDERS} senders x ${MESSAGES_PER_VU} messages, ` +
      `${RECEIVERS} receivers, nodes ${NODE_URLS.join(' ')}`,
  );
  return { runId, tokens, rooms, baselines };
}

// ---------------------------------------------------------------- helpers

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function clientMsgId(runId, sender, i) {
  return `k6-${runId}-${sender}-${i}`;
}

// All Message fields present with the right types, in the expected room.
function validMessage(m, roomId) {
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
    UUID_RE.test(m.user_id) &&
    typeof m.username === 'string' &&
    m.username.length > 0 &&
    typeof m.content === 'string' &&
    typeof m.created_at === 'string' &&
    TIMESTAMP_RE.test(m.created_at) &&
    (m.client_msg_id === undefined || m.client_msg_id === null || typeof m.client_msg_id === 'string')
  );
}

// The embedded {k6, vu, i, t} of a message sent by this run, or null.
function runPayload(content, runId) {
  if (typeof content !== 'string' || content.indexOf('{"k6":') !== 0) return null;
  try {
    const p = JSON.parse(content);
    if (p.k6 !== runId || !Number.isInteger(p.vu) || !Number.isInteger(p.i) || typeof p.t !== 'number') return null;
    return p;
  } catch (e) {
    return null;
  }
}

function wsUrlFor(index, token) {
  const base = NODE_URLS[index % NODE_URLS.length];
  if (TOKEN_IN === 'header') return base;
  return `${base}${base.indexOf('?') >= 0 ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

function wsParams(token, role) {
  const params = { tags: { role } };
  if (TOKEN_IN === 'header') params.headers = { Authorization: `Bearer ${token}` };
  return params;
}

// socket.setTimeout with a delay clamped to >= 1 ms (k6/ws refuses 0).
function later(socket, fn, ms) {
  socket.setTimeout(fn, Math.max(1, Math.ceil(ms)));
}

function frame(event, data) {
  return JSON.stringify({ event, data });
}

// The senders of room `roomIndex`: sender s sends to room s % rooms.
function sendersOfRoom(roomIndex, roomCount) {
  const list = [];
  for (let s = 0; s < SENDERS; s++) if (s % roomCount === roomIndex) list.push(s);
  return list;
}

// Per-socket-stream seq bookkeeping for one room. `last` is the highest seq seen.
function newSeqState(start) {
  return { last: start, seen: {} };
}

// Returns false when the message is a duplicate (and must not be counted again).
function trackSeq(st, seq) {
  if (st.seen[seq]) {
    seqDuplicates.add(1);
    return false;
  }
  st.seen[seq] = true;
  if (st.last !== null && seq < st.last) {
    seqOutOfOrder.add(1);
    return true;
  }
  if (st.last !== null && seq > st.last + 1) seqGaps.add(seq - st.last - 1);
  st.last = seq;
  return true;
}

function messagesOf(msg) {
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

function parseFrame(raw) {
  try {
    const msg = JSON.parse(raw);
    return msg !== null && typeof msg === 'object' && typeof msg.event === 'string' ? msg : null;
  } catch (e) {
    return null;
  }
}

// ---------------------------------------------------------------- receiver

export function receiver(data) {
  const j = exec.scenario.iterationInTest;
  const roomIndex = j % data.rooms.length;
  const roomId = data.rooms[roomIndex];
  const token = data.tokens[(SENDERS + j) % data.tokens.length];
  const senders = sendersOfRoom(roomIndex, data.rooms.length);
  const expectedTotal = senders.length * MESSAGES_PER_VU;
  const got = {}; // "sender:i" -> seq it arrived with
  let gotCount = 0;
  let completeAt = 0;
  const st = newSeqState(data.baselines[roomIndex]);
  const startedAt = Date.now();
  const deadline = startedAt + RECEIVER_HOLD_MS;
  const windowEnd = startedAt + SENDER_START_DELAY_MS + SEND_DURATION_MS;

  // Done at the deadline, or LINGER_MS after every expected message arrived.
  function finished(now) {
    if (completeAt === 0 && gotCount >= expectedTotal && now >= windowEnd) completeAt = now;
    return now >= deadline || (completeAt > 0 && now - completeAt >= LINGER_MS);
  }

  function onMessage(m) {
    messagesReceived.add(1);
    const isObject = m !== null && typeof m === 'object';
    // Delivery is judged on the content alone, so that a bad field shows in payload_valid_rate only.
    const p = isObject ? runPayload(m.content, data.runId) : null;
    const cmidOk =
      !CHECK_CLIENT_MSG_ID || p === null || m.client_msg_id === clientMsgId(data.runId, p.vu, p.i);
    payloadValid.add(validMessage(m, roomId) && cmidOk);
    if (!isObject) return;
    if (Number.isInteger(m.seq) && !trackSeq(st, m.seq)) return;
    if (p === null) return;
    const key = `${p.vu}:${p.i}`;
    if (got[key] !== undefined) {
      contentDuplicates.add(1);
      return;
    }
    got[key] = m.seq;
    gotCount++;
    deliveryLatency.add(Date.now() - p.t);
  }

  let reconnects = 0;
  let refused = false; // join_room refused (not a member, no such room): retrying cannot help
  while (!refused && !finished(Date.now())) {
    let closedByUs = false;
    let res;
    try {
      res = ws.connect(wsUrlFor(SENDERS + j, token), wsParams(token, 'receiver'), (socket) => {
        let joined = false;
        const connectedAt = Date.now();
        socket.on('open', () => {
          socket.send(frame('join_room', { room_id: roomId, last_seen_seq: st.last }));
        });
        socket.on('message', (raw) => {
          const msg = parseFrame(raw);
          if (msg === null) {
            payloadValid.add(false);
            return;
          }
          if (msg.event === 'joined_room') {
            joined = true;
            return;
          }
          if (msg.event === 'error') {
            const code = msg.data && msg.data.code;
            wsErrors.add(1, { code: String(code) });
            console.warn(`receiver ${j}: error ${JSON.stringify(msg.data)}`);
            if (!joined && (code === 'not_member' || code === 'room_not_found')) {
              refused = true;
              closedByUs = true;
              socket.close(1000);
            }
            return;
          }
          const list = messagesOf(msg);
          if (list !== null) list.forEach(onMessage);
        });
        socket.on('error', (e) => {
          console.warn(`receiver ${j}: socket error ${e && e.error ? e.error() : e}`);
        });
        socket.setInterval(() => {
          const now = Date.now();
          if (finished(now)) {
            closedByUs = true;
            socket.close(1000);
          } else if (!joined && now - connectedAt > JOIN_TIMEOUT_MS) {
            console.warn(`receiver ${j}: no joined_room in time`);
            closedByUs = true;
            socket.close(1000);
          }
        }, 50);
      });
    } catch (e) {
      console.warn(`receiver ${j}: connect failed: ${e}`);
    }
    if (!res || res.status !== 101) {
      wsConnectFailures.add(1);
      if (res) console.warn(`receiver ${j}: upgrade answered HTTP ${res.status}`);
    } else if (!closedByUs) {
      wsServerCloses.add(1);
    }
    if (refused || finished(Date.now())) break;
    // Closed by the server, failed to connect or to join: rejoin with last_seen_seq.
    if (++reconnects > MAX_RECONNECTS) break;
    sleep(0.5);
  }

  // One sample per expected message: true if it arrived.
  senders.forEach((s) => {
    for (let i = 0; i < MESSAGES_PER_VU; i++) deliverySuccess.add(got[`${s}:${i}`] !== undefined);
  });
  if (gotCount < expectedTotal) {
    console.warn(`receiver ${j} (room ${roomId}): got ${gotCount}/${expectedTotal} messages`);
  }
}

// ---------------------------------------------------------------- sender

export function sender(data) {
  const s = exec.scenario.iterationInTest;
  const roomIndex = s % data.rooms.length;
  const roomId = data.rooms[roomIndex];
  const token = data.tokens[s % data.tokens.length];
  const sentAt = {}; // client_msg_id -> send time
  let sent = 0;
  let acked = 0;
  const st = newSeqState(null);

  let res;
  try {
    res = ws.connect(wsUrlFor(s, token), wsParams(token, 'sender'), (socket) => {
      let joined = false;
      let sendStart = 0;
      let lastSendAt = 0;
      const connectedAt = Date.now();

      function sendNext() {
        const cmid = clientMsgId(data.runId, s, sent);
        const t = Date.now();
        const content = JSON.stringify({ k6: data.runId, vu: s, i: sent, t });
        sentAt[cmid] = t;
        socket.send(frame('send_message', { room_id: roomId, content, client_msg_id: cmid }));
        messagesSent.add(1);
        sent++;
        lastSendAt = t;
        if (sent < MESSAGES_PER_VU) {
          // Schedule against the start time so that the rate does not drift.
          later(socket, sendNext, Math.max(0, sendStart + sent * MESSAGE_INTERVAL_MS - Date.now()));
        }
      }

      socket.on('open', () => socket.send(frame('join_room', { room_id: roomId })));
      socket.on('message', (raw) => {
        const msg = parseFrame(raw);
        if (msg === null) return;
        if (msg.event === 'joined_room' && !joined) {
          joined = true;
          sendStart = Date.now();
          if (MESSAGES_PER_VU > 0) sendNext();
        } else if (msg.event === 'message_ack') {
          const cmid = msg.data && msg.data.client_msg_id;
          if (sentAt[cmid] !== undefined) {
            ackLatency.add(Date.now() - sentAt[cmid]);
            delete sentAt[cmid];
            messagesAcked.add(1);
            acked++;
          }
        } else if (msg.event === 'error') {
          const code = msg.data && msg.data.code;
          wsErrors.add(1, { code: String(code) });
          console.warn(`sender ${s}: error ${JSON.stringify(msg.data)}`);
          // A refused join cannot be fixed by waiting.
          if (!joined && (code === 'not_member' || code === 'room_not_found')) socket.close(1000);
        } else {
          const list = messagesOf(msg);
          if (list !== null) list.forEach((m) => m && Number.isInteger(m.seq) && trackSeq(st, m.seq));
        }
      });
      socket.on('error', (e) => console.warn(`sender ${s}: socket error ${e && e.error ? e.error() : e}`));
      socket.setInterval(() => {
        const now = Date.now();
        if (!joined && now - connectedAt > JOIN_TIMEOUT_MS) {
          console.warn(`sender ${s}: no joined_room in time, giving up`);
          socket.close(1000);
        } else if (sent >= MESSAGES_PER_VU && (acked >= sent || now - lastSendAt > ACK_TIMEOUT_MS)) {
          socket.close(1000);
        }
      }, 50);
    });
  } catch (e) {
    console.warn(`sender ${s}: connect failed: ${e}`);
  }
  if (!res || res.status !== 101) {
    wsConnectFailures.add(1);
    if (res) console.warn(`sender ${s}: upgrade answered HTTP ${res.status}`);
  }
  if (sent < MESSAGES_PER_VU || acked < sent) {
    console.warn(`sender ${s}: sent ${sent}/${MESSAGES_PER_VU}, acked ${acked}`);
  }
}
