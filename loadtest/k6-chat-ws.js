// k6-chat-ws.js: mixed WebSocket workload for chatd.
//
// Scenarios (all optional: set a VU count to 0 to leave one out):
//   senders    send MESSAGES_PER_VU messages each (with client_msg_id), wait for the acks
//   receivers  join (with last_seen_seq when known) and check every message of the run
//   churn      connect, join, leave, disconnect, over and over
//   reconnect  receivers that drop RECONNECT_CYCLES times and rejoin with last_seen_seq;
//              they must still see every seq exactly once, with no gap
//   typing     typing_start / typing_stop in a loop; everyone counts the typing events
//
// Metrics (thresholds in brackets):
//   delivery_success_rate  Rate    one sample per (receiver or reconnect VU, expected message)  [rate==1]
//   delivery_latency_ms    Trend   receive time - send time, receivers only                     [p(95)<P95_MS]
//   payload_valid_rate     Rate    one sample per received Message                              [rate==1]
//   seq_duplicates         Counter a seq seen twice on one VU's stream (across its reconnects)  [count==0]
//   seq_out_of_order       Counter a seq lower than one already seen                            [count==0]
//   reconnect_gaps         Counter seqs skipped by the reconnect VUs' streams                   [count==0]
//   content_duplicates     Counter one sent message stored twice (two seqs)                     [count==0]
//   typing_events_received Counter typing events received (from the others)                     [count>0 when typing runs]
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

const SENDERS = envInt('SENDERS', 20);
const RECEIVERS = envInt('RECEIVERS', 50);
const CHURN_VUS = envInt('CHURN_VUS', 10);
const RECONNECT_VUS = envInt('RECONNECT_VUS', 10);
const TYPING_VUS = envInt('TYPING_VUS', 10);
const MESSAGES_PER_VU = envInt('MESSAGES_PER_VU', 20);
const MESSAGE_INTERVAL_MS = envInt('MESSAGE_INTERVAL_MS', 100);
const BASE_URL = envStr('BASE_URL', 'http://localhost:3000').replace(/\/+$/, '');
const WS_URL = envStr('WS_URL', 'ws://localhost:3000/ws');
const NODE_URLS = envList('NODE_URLS').length > 0 ? envList('NODE_URLS') : [WS_URL];
const P95_MS = envNum('P95_MS', 10);
const SENDER_START_DELAY_MS = envInt('SENDER_START_DELAY_MS', 3000);
const GRACE_MS = envInt('GRACE_MS', 15000);
const LINGER_MS = envInt('LINGER_MS', 1000);
const ACK_TIMEOUT_MS = envInt('ACK_TIMEOUT_MS', 10000);
const JOIN_TIMEOUT_MS = envInt('JOIN_TIMEOUT_MS', 10000);
// Unplanned closes or failed connects a listening VU tolerates (it rejoins with last_seen_seq).
const MAX_RECONNECTS = envInt('MAX_RECONNECTS', 5);
// Churn: cycles per VU (0 = keep cycling until the senders' window ends), hold and pause.
const CHURN_CYCLES = envInt('CHURN_CYCLES', 0);
const CHURN_HOLD_MS = envInt('CHURN_HOLD_MS', 200);
const CHURN_PAUSE_MS = envInt('CHURN_PAUSE_MS', 100);
// Reconnect: planned drops per VU, time connected between drops, pause before rejoining.
const RECONNECT_CYCLES = envInt('RECONNECT_CYCLES', 3);
const RECONNECT_HOLD_MS = envInt('RECONNECT_HOLD_MS', 500);
const RECONNECT_PAUSE_MS = envInt('RECONNECT_PAUSE_MS', 100);
// Typing: cycles per VU (0 = keep typing until the senders' window ends), period, start->stop.
const TYPING_CYCLES = envInt('TYPING_CYCLES', 0);
const TYPING_INTERVAL_MS = Math.max(1, envInt('TYPING_INTERVAL_MS', 500));
const TYPING_HOLD_MS = envInt('TYPING_HOLD_MS', 200);
const ROOM_COUNT = Math.max(1, envInt('ROOM_COUNT', 1));
const TOKEN_IN = envStr('TOKEN_IN', 'query');
const CHECK_CLIENT_MSG_ID = envInt('CHECK_CLIENT_MSG_ID', 1) === 1;
const JOIN_WITH_LAST_SEEN = envInt('JOIN_WITH_LAST_SEEN', 1) === 1;
const PASSWORD = envStr('PASSWORD', 'k6-load-password');
const REGISTER_BATCH = Math.max(1, envInt('REGISTER_BATCH', 10));
const GIVEN_TOKENS = envList('TOKENS').length > 0 ? envList('TOKENS') : envList('ACCESS_TOKEN');
const GIVEN_ROOMS = (envList('ROOM_IDS').length > 0 ? envList('ROOM_IDS') : envList('ROOM_ID')).map((r) =>
  r.toLowerCase(),
);

// Global VU index layout (picks the token and the node): senders, receivers, churn, reconnect, typing.
const OFFSET = {
  sender: 0,
  receiver: SENDERS,
  churn: SENDERS + RECEIVERS,
  reconnect: SENDERS + RECEIVERS + CHURN_VUS,
  typing: SENDERS + RECEIVERS + CHURN_VUS + RECONNECT_VUS,
};
const USERS_NEEDED = OFFSET.typing + TYPING_VUS;

const SEND_DURATION_MS = MESSAGES_PER_VU * MESSAGE_INTERVAL_MS;
// When the senders should be done, from the start of the scenarios.
const WINDOW_END_MS = SENDER_START_DELAY_MS + SEND_DURATION_MS;
// Longest a listening VU stays, counted from its own start.
const LISTEN_HOLD_MS = SENDER_START_DELAY_MS + JOIN_TIMEOUT_MS + SEND_DURATION_MS + GRACE_MS;

// ---------------------------------------------------------------- options

function secs(ms) {
  return `${Math.ceil(ms / 1000)}s`;
}

const listenMaxMs =
  LISTEN_HOLD_MS + (MAX_RECONNECTS + RECONNECT_CYCLES + 1) * (RECONNECT_PAUSE_MS + 1000) + 30000;
const scenarios = {};
function addScenario(name, execName, vus, extra) {
  if (vus <= 0) return;
  scenarios[name] = Object.assign(
    { executor: 'per-vu-iterations', exec: execName, vus, iterations: 1, gracefulStop: '30s' },
    extra,
  );
}
addScenario('receivers', 'receiver', RECEIVERS, { maxDuration: secs(listenMaxMs) });
addScenario('reconnect', 'reconnector', RECONNECT_VUS, { maxDuration: secs(listenMaxMs) });
addScenario('senders', 'sender', SENDERS, {
  startTime: `${SENDER_START_DELAY_MS}ms`,
  maxDuration: secs(JOIN_TIMEOUT_MS + SEND_DURATION_MS + ACK_TIMEOUT_MS + 30000),
});
addScenario('churn', 'churner', CHURN_VUS, {
  maxDuration: secs(
    WINDOW_END_MS + (CHURN_CYCLES + 1) * (CHURN_HOLD_MS + CHURN_PAUSE_MS + JOIN_TIMEOUT_MS) + 30000,
  ),
});
addScenario('typing', 'typist', TYPING_VUS, {
  maxDuration: secs(WINDOW_END_MS + JOIN_TIMEOUT_MS + TYPING_CYCLES * TYPING_INTERVAL_MS + LINGER_MS + 30000),
});

const thresholds = {
  delivery_success_rate: ['rate==1'],
  payload_valid_rate: ['rate==1'],
  seq_duplicates: ['count==0'],
  seq_out_of_order: ['count==0'],
  reconnect_gaps: ['count==0'],
  content_duplicates: ['count==0'],
  delivery_latency_ms: [`p(95)<${P95_MS}`],
};
if (TYPING_VUS > 0 && (TYPING_VUS > 1 || RECEIVERS > 0 || RECONNECT_VUS > 0)) {
  thresholds.typing_events_received = ['count>0'];
}

export const options = {
  scenarios,
  setupTimeout: envStr('SETUP_TIMEOUT', secs(60000 + USERS_NEEDED * 1000)),
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

// ---------------------------------------------------------------- metrics

const deliverySuccess = new Rate('delivery_success_rate');
const deliveryLatency = new Trend('delivery_latency_ms', true);
const reconnectLatency = new Trend('reconnect_delivery_latency_ms', true);
const payloadValid = new Rate('payload_valid_rate');
const seqDuplicates = new Counter('seq_duplicates');
const seqOutOfOrder = new Counter('seq_out_of_order');
const seqGaps = new Counter('seq_gaps');
const reconnectGaps = new Counter('reconnect_gaps');
const reconnects = new Counter('reconnects');
const contentDuplicates = new Counter('content_duplicates');
const messagesSent = new Counter('messages_sent');
const messagesAcked = new Counter('messages_acked');
const messagesReceived = new Counter('messages_received');
const ackLatency = new Trend('ack_latency_ms', true);
const churnCycles = new Counter('churn_cycles');
const churnFailures = new Counter('churn_failures');
const churnJoinLatency = new Trend('churn_join_latency_ms', true);
const typingSent = new Counter('typing_sent');
const typingReceived = new Counter('typing_events_received');
const typingValid = new Rate('typing_payload_valid_rate');
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
          JSON.stringify({ name: `k6-${runId}-room-${r}`, description: 'k6 chat ws test' }),
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
    console.warn(`GET /rooms/${room}/messages: HTTP ${res.status}; listeners will join without last_seen_seq`);
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
      `${rooms.length} room(s)${provisionRooms ? ' (created)' : ''}; senders ${SENDERS} x ${MESSAGES_PER_VU}, ` +
      `receivers ${RECEIVERS}, churn ${CHURN_VUS}, reconnect ${RECONNECT_VUS}, typing ${TYPING_VUS}; ` +
      `nodes ${NODE_URLS.join(' ')}`,
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

function parseFrame(raw) {
  try {
    const msg = JSON.parse(raw);
    return msg !== null && typeof msg === 'object' && typeof msg.event === 'string' ? msg : null;
  } catch (e) {
    return null;
  }
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

function onTyping(msg) {
  typingReceived.add(1);
  const d = msg.data;
  typingValid.add(
    d !== null && typeof d === 'object' && typeof d.user_id === 'string' && UUID_RE.test(d.user_id) &&
      typeof d.room_id === 'string',
  );
}

function onError(who, msg) {
  wsErrors.add(1, { code: String(msg.data && msg.data.code) });
  console.warn(`${who}: error ${JSON.stringify(msg.data)}`);
}

// The senders of room `roomIndex`: sender s sends to room s % rooms.
function sendersOfRoom(roomIndex, roomCount) {
  const list = [];
  for (let s = 0; s < SENDERS; s++) if (s % roomCount === roomIndex) list.push(s);
  return list;
}

// Per-stream seq bookkeeping for one room. `last` is the highest seq seen.
function newSeqState(start) {
  return { last: start, seen: {} };
}

// Returns false when the message is a duplicate (and must not be counted again).
function trackSeq(st, seq, gapCounter) {
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

function roomOf(data, k) {
  const roomIndex = k % data.rooms.length;
  return { roomIndex, roomId: data.rooms[roomIndex] };
}

function tokenOf(data, globalIndex) {
  return data.tokens[globalIndex % data.tokens.length];
}

// ---------------------------------------------------------------- listeners (receivers, reconnect)

// Joins the room, checks every message of the run, and keeps going across reconnects
// (planned ones: `drops`; unplanned ones: up to MAX_RECONNECTS) by joining with
// last_seen_seq = the highest seq seen.
function listen(data, role, k, drops) {
  const who = `${role} ${k}`;
  const { roomIndex, roomId } = roomOf(data, k);
  const globalIndex = OFFSET[role] + k;
  const token = tokenOf(data, globalIndex);
  const senders = sendersOfRoom(roomIndex, data.rooms.length);
  const expectedTotal = senders.length * MESSAGES_PER_VU;
  const latency = role === 'receiver' ? deliveryLatency : reconnectLatency;
  const gaps = role === 'receiver' ? seqGaps : reconnectGaps;
  const got = {}; // "sender:i" -> seq
  let gotCount = 0;
  let completeAt = 0;
  const st = newSeqState(data.baselines[roomIndex]);
  const startedAt = Date.now();
  const deadline = startedAt + LISTEN_HOLD_MS;
  const windowEnd = startedAt + WINDOW_END_MS;

  function finished(now) {
    if (completeAt === 0 && gotCount >= expectedTotal && now >= windowEnd) completeAt = now;
    return now >= deadline || (completeAt > 0 && now - completeAt >= LINGER_MS);
  }

  function onMessage(m) {
    messagesReceived.add(1, { role });
    const isObject = m !== null && typeof m === 'object';
    // Delivery is judged on the content alone, so that a bad field shows in payload_valid_rate only.
    const p = isObject ? runPayload(m.content, data.runId) : null;
    const cmidOk =
      !CHECK_CLIENT_MSG_ID || p === null || m.client_msg_id === clientMsgId(data.runId, p.vu, p.i);
    payloadValid.add(validMessage(m, roomId) && cmidOk, { role });
    if (!isObject) return;
    if (Number.isInteger(m.seq) && !trackSeq(st, m.seq, gaps)) return;
    if (p === null) return;
    const key = `${p.vu}:${p.i}`;
    if (got[key] !== undefined) {
      contentDuplicates.add(1);
      return;
    }
    got[key] = m.seq;
    gotCount++;
    latency.add(Date.now() - p.t);
  }

  let dropsLeft = drops;
  let unplanned = 0;
  let session = 0;
  let refused = false; // join_room refused (not a member, no such room): retrying cannot help
  while (!refused && !finished(Date.now())) {
    // A planned drop ends the session early; the first one waits for the senders to start.
    const hold = session === 0 ? SENDER_START_DELAY_MS + Math.random() * RECONNECT_HOLD_MS : RECONNECT_HOLD_MS;
    const plannedEnd = dropsLeft > 0 ? Date.now() + hold : Infinity;
    let closedByUs = false;
    let dropped = false;
    let joinTimedOut = false;
    let res;
    try {
      res = ws.connect(wsUrlFor(globalIndex, token), wsParams(token, role), (socket) => {
        let joined = false;
        const connectedAt = Date.now();
        socket.on('open', () => {
          socket.send(frame('join_room', { room_id: roomId, last_seen_seq: st.last }));
        });
        socket.on('message', (raw) => {
          const msg = parseFrame(raw);
          if (msg === null) {
            payloadValid.add(false, { role });
            return;
          }
          if (msg.event === 'joined_room') joined = true;
          else if (msg.event === 'typing') onTyping(msg);
          else if (msg.event === 'error') {
            onError(who, msg);
            const code = msg.data && msg.data.code;
            if (!joined && (code === 'not_member' || code === 'room_not_found')) {
              refused = true;
              closedByUs = true;
              socket.close(1000);
            }
          } else {
            const list = messagesOf(msg);
            if (list !== null) list.forEach(onMessage);
          }
        });
        socket.on('error', (e) => console.warn(`${who}: socket error ${e && e.error ? e.error() : e}`));
        socket.setInterval(() => {
          const now = Date.now();
          if (finished(now)) {
            closedByUs = true;
            socket.close(1000);
          } else if (!joined && now - connectedAt > JOIN_TIMEOUT_MS) {
            console.warn(`${who}: no joined_room in time`);
            closedByUs = true;
            joinTimedOut = true;
            socket.close(1000);
          } else if (now >= plannedEnd) {
            closedByUs = true;
            dropped = true;
            socket.close(1000);
          }
        }, 50);
      });
    } catch (e) {
      console.warn(`${who}: connect failed: ${e}`);
    }
    session++;
    if (!res || res.status !== 101) {
      wsConnectFailures.add(1, { role });
      if (res) console.warn(`${who}: upgrade answered HTTP ${res.status}`);
      unplanned++;
    } else if (!closedByUs) {
      wsServerCloses.add(1, { role });
      unplanned++;
    } else if (joinTimedOut) {
      unplanned++;
    }
    if (refused) break;
    if (dropped) {
      dropsLeft--;
      reconnects.add(1);
      if (RECONNECT_PAUSE_MS > 0) sleep(RECONNECT_PAUSE_MS / 1000);
    } else if (unplanned > MAX_RECONNECTS) {
      break;
    } else if (!closedByUs || joinTimedOut) {
      sleep(0.5);
    }
  }

  senders.forEach((s) => {
    for (let i = 0; i < MESSAGES_PER_VU; i++) deliverySuccess.add(got[`${s}:${i}`] !== undefined, { role });
  });
  if (gotCount < expectedTotal) console.warn(`${who} (room ${roomId}): got ${gotCount}/${expectedTotal} messages`);
}

export function receiver(data) {
  listen(data, 'receiver', exec.scenario.iterationInTest, 0);
}

export function reconnector(data) {
  listen(data, 'reconnect', exec.scenario.iterationInTest, RECONNECT_CYCLES);
}

// ---------------------------------------------------------------- sender

export function sender(data) {
  const s = exec.scenario.iterationInTest;
  const who = `sender ${s}`;
  const { roomId } = roomOf(data, s);
  const token = tokenOf(data, OFFSET.sender + s);
  const sentAt = {}; // client_msg_id -> send time
  let sent = 0;
  let acked = 0;
  const st = newSeqState(null);

  let res;
  try {
    res = ws.connect(wsUrlFor(OFFSET.sender + s, token), wsParams(token, 'sender'), (socket) => {
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
        } else if (msg.event === 'typing') {
          onTyping(msg);
        } else if (msg.event === 'error') {
          onError(who, msg);
          const code = msg.data && msg.data.code;
          // A refused join cannot be fixed by waiting.
          if (!joined && (code === 'not_member' || code === 'room_not_found')) socket.close(1000);
        } else {
          const list = messagesOf(msg);
          if (list !== null) list.forEach((m) => m && Number.isInteger(m.seq) && trackSeq(st, m.seq, seqGaps));
        }
      });
      socket.on('error', (e) => console.warn(`${who}: socket error ${e && e.error ? e.error() : e}`));
      socket.setInterval(() => {
        const now = Date.now();
        if (!joined && now - connectedAt > JOIN_TIMEOUT_MS) {
          console.warn(`${who}: no joined_room in time, giving up`);
          socket.close(1000);
        } else if (sent >= MESSAGES_PER_VU && (acked >= sent || now - lastSendAt > ACK_TIMEOUT_MS)) {
          socket.close(1000);
        }
      }, 50);
    });
  } catch (e) {
    console.warn(`${who}: connect failed: ${e}`);
  }
  if (!res || res.status !== 101) {
    wsConnectFailures.add(1, { role: 'sender' });
    if (res) console.warn(`${who}: upgrade answered HTTP ${res.status}`);
  }
  if (sent < MESSAGES_PER_VU || acked < sent) console.warn(`${who}: sent ${sent}/${MESSAGES_PER_VU}, acked ${acked}`);
}

// ---------------------------------------------------------------- churn

// Connect, join, hold, leave, disconnect; repeat CHURN_CYCLES times, or (0) until the
// senders' window is over.
export function churner(data) {
  const c = exec.scenario.iterationInTest;
  const who = `churn ${c}`;
  const { roomId } = roomOf(data, c);
  const globalIndex = OFFSET.churn + c;
  const token = tokenOf(data, globalIndex);
  const windowEnd = Date.now() + WINDOW_END_MS;

  for (let cycle = 0; CHURN_CYCLES > 0 ? cycle < CHURN_CYCLES : Date.now() < windowEnd; cycle++) {
    let ok = false;
    let res;
    try {
      res = ws.connect(wsUrlFor(globalIndex + cycle, token), wsParams(token, 'churn'), (socket) => {
        const connectedAt = Date.now();
        let joined = false;
        socket.on('open', () => socket.send(frame('join_room', { room_id: roomId })));
        socket.on('message', (raw) => {
          const msg = parseFrame(raw);
          if (msg === null) return;
          if (msg.event === 'joined_room' && !joined) {
            joined = true;
            churnJoinLatency.add(Date.now() - connectedAt);
            later(socket, () => {
              socket.send(frame('leave_room', { room_id: roomId }));
              ok = true;
              // Give the leave a moment to leave the socket before closing.
              later(socket, () => socket.close(1000), 50);
            }, CHURN_HOLD_MS);
          } else if (msg.event === 'error') {
            onError(who, msg);
            if (!joined) socket.close(1000); // the join was refused
          }
        });
        socket.on('error', (e) => console.warn(`${who}: socket error ${e && e.error ? e.error() : e}`));
        later(socket, () => {
          if (!joined) {
            console.warn(`${who}: no joined_room in time`);
            socket.close(1000);
          }
        }, JOIN_TIMEOUT_MS);
      });
    } catch (e) {
      console.warn(`${who}: connect failed: ${e}`);
    }
    if (!res || res.status !== 101) wsConnectFailures.add(1, { role: 'churn' });
    if (ok) churnCycles.add(1);
    else churnFailures.add(1);
    if (CHURN_PAUSE_MS > 0) sleep(CHURN_PAUSE_MS / 1000);
  }
}

// ---------------------------------------------------------------- typing

// typing_start, then typing_stop TYPING_HOLD_MS later, every TYPING_INTERVAL_MS; TYPING_CYCLES
// times, or (0) until the senders' window is over. Counts the others' typing events.
export function typist(data) {
  const t = exec.scenario.iterationInTest;
  const who = `typing ${t}`;
  const { roomId } = roomOf(data, t);
  const globalIndex = OFFSET.typing + t;
  const token = tokenOf(data, globalIndex);
  const windowEnd = Date.now() + WINDOW_END_MS;

  let res;
  try {
    res = ws.connect(wsUrlFor(globalIndex, token), wsParams(token, 'typing'), (socket) => {
      const connectedAt = Date.now();
      let joined = false;
      let cycles = 0;
      let doneAt = 0;

      function cycle() {
        socket.send(frame('typing_start', { room_id: roomId }));
        typingSent.add(1);
        later(socket, () => {
          socket.send(frame('typing_stop', { room_id: roomId }));
          typingSent.add(1);
        }, Math.min(TYPING_HOLD_MS, TYPING_INTERVAL_MS - 1));
        cycles++;
        const more = TYPING_CYCLES > 0 ? cycles < TYPING_CYCLES : Date.now() + TYPING_INTERVAL_MS < windowEnd;
        if (more) later(socket, cycle, TYPING_INTERVAL_MS);
        else later(socket, () => (doneAt = Date.now()), TYPING_INTERVAL_MS);
      }

      socket.on('open', () => socket.send(frame('join_room', { room_id: roomId })));
      socket.on('message', (raw) => {
        const msg = parseFrame(raw);
        if (msg === null) return;
        if (msg.event === 'joined_room' && !joined) {
          joined = true;
          cycle();
        } else if (msg.event === 'typing') {
          onTyping(msg);
        } else if (msg.event === 'error') {
          onError(who, msg);
          if (!joined) socket.close(1000); // the join was refused
        }
      });
      socket.on('error', (e) => console.warn(`${who}: socket error ${e && e.error ? e.error() : e}`));
      socket.setInterval(() => {
        const now = Date.now();
        if (!joined && now - connectedAt > JOIN_TIMEOUT_MS) {
          console.warn(`${who}: no joined_room in time`);
          socket.close(1000);
        } else if (doneAt > 0 && now - doneAt >= LINGER_MS) {
          // Stay a little longer to receive the others' last events.
          socket.close(1000);
        }
      }, 50);
    });
  } catch (e) {
    console.warn(`${who}: connect failed: ${e}`);
  }
  if (!res || res.status !== 101) wsConnectFailures.add(1, { role: 'typing' });
}
