// common.js: code shared by k6-message-delivery.js and k6-chat-ws.js.
//
// Environment helpers and the knobs both scripts read with the same defaults,
// the metrics and thresholds both scripts report, stopping a run that cannot
// measure, REST provisioning for setup(), the bookkeeping of a received stream (seq
// order, the run's messages, sampled validation) and WebSocket frame helpers. Knobs
// whose defaults differ between the scripts (SENDERS, RECEIVERS) and script-specific
// metrics stay in the scripts. Uses only k6 built-in modules.

import http from 'k6/http';
import { sleep } from 'k6';
import exec from 'k6/execution';
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
// Distinct users to register (VU k uses user k % USERS); 0 = one per VU.
export const USERS = envInt('USERS', 0);
// One live message frame in VALIDATE_EVERY (and every other frame) is parsed with
// JSON.parse and each of its Messages checked field by field (payload_valid_rate); the
// others are read by the fast reader (newStream). 1 = every frame.
export const VALIDATE_EVERY = Math.max(1, envInt('VALIDATE_EVERY', 32));
// One delivered message in LATENCY_EVERY adds a delivery_latency_ms sample. 1 = all of them.
export const LATENCY_EVERY = Math.max(1, envInt('LATENCY_EVERY', 1));
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
export const deliveredMessages = new Counter('delivered_messages');
export const deliveryLatency = new Trend('delivery_latency_ms', true);
export const payloadValid = new Rate('payload_valid_rate');
export const payloadsValidated = new Counter('payloads_validated');
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

// The rooms a run uses: those given, or ROOM_COUNT created ones.
export function roomCountOfRun() {
  return GIVEN_ROOMS.length > 0 ? GIVEN_ROOMS.length : ROOM_COUNT;
}

// The run's messages that `listeners` listening VUs (numbered from 0) must receive:
// listener k listens to room k % roomCount, which gets MESSAGES_PER_VU from each of its senders.
export function expectedDeliveries(listeners, senders, roomCount) {
  let n = 0;
  for (let k = 0; k < listeners; k++) n += sendersOfRoom(k % roomCount, roomCount, senders).length;
  return n * MESSAGES_PER_VU;
}

// The thresholds both scripts share. Every rate and trend threshold stands beside a count
// that fails when nothing was measured: a run that delivered nothing passes no threshold.
export function deliveryThresholds(expected, sends) {
  return {
    delivery_success_rate: ['rate==1'],
    delivered_messages: [`count==${expected}`],
    delivery_latency_ms: [`p(95)<${P95_MS}`],
    payload_valid_rate: ['rate==1'],
    payloads_validated: [expected > 0 ? 'count>0' : 'count>=0'],
    messages_acked: [`count==${sends}`],
    seq_duplicates: ['count==0'],
    seq_out_of_order: ['count==0'],
    content_duplicates: ['count==0'],
  };
}

// ---------------------------------------------------------------- stopping a run that cannot measure

// What to do about a limit, said in every message that stops a run on one.
const LOAD_CONFIG =
  'start the node with --config loadtest/server.toml ' +
  '(chatd --config loadtest/server.toml, or CHATD_CONFIG=loadtest/server.toml deploy/run.sh)';

// Ends the whole test at once (k6 exits non-zero) with a message saying what to change.
export function stop(message) {
  console.error(message);
  exec.test.abort(message);
  // abort() does not return; this only keeps a caller from carrying on if it ever did.
  throw new Error(message);
}

// A `rate_limited` error on a socket: the node's per-socket event limit is below what
// the run sends, so every further send would be refused too.
export function stopOnRateLimit(who) {
  stop(
    `${who}: the node refused an event with rate_limited: its websocket.max_events_per_sec ` +
      `is below this run's rate (1000 / MESSAGE_INTERVAL_MS = ` +
      `${Math.round(1000 / Math.max(1, MESSAGE_INTERVAL_MS))}/s ` +
      `per sender, plus typing); ${LOAD_CONFIG}, or send less often`,
  );
}

// An upgrade answered 429: the node limits connections per address (limits.connections_per_ip).
export function stopOnUpgrade429(who) {
  stop(
    `${who}: the WebSocket upgrade was answered 429: the node limits connections per address ` +
      `(limits.connections_per_ip); ${LOAD_CONFIG}`,
  );
}

// ---------------------------------------------------------------- REST provisioning

export function is2xx(res) {
  return res.status >= 200 && res.status < 300;
}

export function jsonParams(token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return { headers, timeout: '60s' };
}

// Runs http.batch over requests, retrying 503/network failures (and 429, unless
// `on429` handles it) with backoff.
export function batchWithRetry(requests, what, on429) {
  let pending = requests.map((req, i) => ({ req, i }));
  const results = new Array(requests.length);
  for (let attempt = 0; attempt < 6 && pending.length > 0; attempt++) {
    if (attempt > 0) sleep(Math.min(5, 0.25 * 2 ** attempt));
    const responses = http.batch(pending.map((p) => p.req));
    const retry = [];
    responses.forEach((res, k) => {
      const p = pending[k];
      results[p.i] = res;
      if (res.status === 429 && on429) on429(res);
      if (res.status === 0 || res.status === 429 || res.status === 503) retry.push(p);
    });
    pending = retry;
  }
  results.forEach((res) => {
    if (!is2xx(res)) {
      stop(`${what} failed: HTTP ${res.status} ${String(res.body).slice(0, 300)}`);
    }
  });
  return results;
}

// Registers `count` users. The node limits registrations per address (a password hash
// each; limits.register_per_ip_per_min, 30 by default): pacing a load test's users
// through that limit would take minutes (140 users: five), so the first 429 stops the
// run, saying how to run within the limit or without it.
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
    const refused = (res) =>
      stop(
        `setup: POST /auth/register answered 429 after ${tokens.length} of ${count} users ` +
          `(Retry-After ${res.headers['Retry-After']} s): the node limits registrations per address ` +
          `(limits.register_per_ip_per_min); ${LOAD_CONFIG}. Against a node that keeps its limits, ` +
          `set USERS to at most that limit (VUs then share users), or give TOKENS and ROOM_IDS.`,
      );
    batchWithRetry(reqs, 'POST /auth/register', refused).forEach((res) => {
      const token = res.json('tokens.accessToken');
      if (typeof token !== 'string' || token.length === 0) {
        stop(`POST /auth/register: no tokens.accessToken in ${String(res.body).slice(0, 300)}`);
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
    if (typeof id !== 'string') stop(`POST /rooms: no id in ${String(res.body).slice(0, 300)}`);
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
    stop(`ACCESS_TOKEN/TOKENS: GET /rooms answered 401 ${String(res.body).slice(0, 200)}; get fresh tokens`);
  }
  if (!is2xx(res)) console.warn(`GET /rooms with the first token: HTTP ${res.status} (BASE_URL ${BASE_URL})`);
}

// The body of setup(): registers USERS users (default: usersNeeded, one per VU) unless
// TOKENS/ACCESS_TOKEN are given, creates ROOM_COUNT rooms described as roomDescription
// (unless ROOM_IDS/ROOM_ID are given), joins every token to every room, reads the
// baseline seq of each room, and logs `run <id>: <tokens>, <rooms>` followed by describe
// (the script's own VU summary). Returns { runId, tokens, rooms, baselines }.
export function provision({ usersNeeded, roomDescription, listeners, describe }) {
  const runId = envStr('RUN_ID', Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36));
  if (runId.indexOf(' ') >= 0) stop('RUN_ID must not contain spaces');
  let tokens = GIVEN_TOKENS;
  let rooms = GIVEN_ROOMS;
  const provisionTokens = tokens.length === 0;
  const provisionRooms = rooms.length === 0;
  if (provisionTokens) {
    tokens = registerUsers(runId, Math.max(1, USERS > 0 ? Math.min(USERS, usersNeeded) : usersNeeded));
  }
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

// ---------------------------------------------------------------- the run's messages

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function clientMsgId(runId, sender, i) {
  return `k6-${runId}-${sender}-${i}`;
}

// The content of sender s's i-th message, sent at time t: `k6 <run id> <t> <n>`, with t
// (Date.now(), 13 digits until the year 2286) first and n = s * MESSAGES_PER_VU + i, the
// message's slot. A receiver reads both at fixed offsets, with no search.
export function runContent(runId, s, i, t) {
  return `k6 ${runId} ${t} ${s * MESSAGES_PER_VU + i}`;
}

// UUIDs already seen to match UUID_RE: a room has few authors, and k6's regular
// expressions cost microseconds per call.
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

// The senders of room `roomIndex` out of `senders` senders: sender s sends to room s % rooms.
export function sendersOfRoom(roomIndex, roomCount, senders) {
  const list = [];
  for (let s = 0; s < senders; s++) if (s % roomCount === roomIndex) list.push(s);
  return list;
}

// ---------------------------------------------------------------- the stream a socket receives

const BATCH_HEAD = '{"event":"new_message_batch","data":[';
const ONE_HEAD = '{"event":"new_message","data":{';
// Room events every socket of the room gets, which no listening VU needs to read.
const PRESENCE_HEAD = '{"event":"presence",';
const JOINED_HEAD = '{"event":"user_joined",';
const LEFT_HEAD = '{"event":"user_left",';
const SEQ_KEY = '"seq":';
const CONTENT_KEY = '"content":"';

// Whether a frame is a live message frame or a room event (presence, user_joined,
// user_left): what a VU that does not check the stream can skip unread.
export function roomTraffic(raw) {
  return (
    raw.startsWith('{"event":"new_message') ||
    raw.startsWith(PRESENCE_HEAD) ||
    raw.startsWith(JOINED_HEAD) ||
    raw.startsWith(LEFT_HEAD)
  );
}

// One VU's view of its room's stream, across all its connections.
//
// k6 runs every VU's JavaScript on the cores the server needs too, and its JSON.parse is
// slow (Go's token decoder, an allocation per value): parsing every frame, and checking
// every Message with string building and regular expressions, made k6 the bottleneck of
// a busy room and its latency figures the age of its own backlog. So a live message
// frame is read with a few indexOf calls (each Message's seq, and for a message of this
// run the send time and slot at fixed offsets in its content), the bookkeeping is in
// integers held in this closure (a seq against the last one; a byte per expected
// message), and the receive time is read once per frame. One live frame in
// VALIDATE_EVERY, and every other frame, goes through JSON.parse instead: each of its
// Messages is checked field by field, and the fast reader's result for the same frame
// must agree with it (or the frame counts as invalid), so a change in the server's
// framing cannot pass unnoticed. Metric samples wait for end(), except
// delivery_latency_ms (one per delivered message, or one in LATENCY_EVERY) and those of
// the frames checked in full.
//
// `start`: the seq before the first one expected (null: the stream starts with the
// first Message received, as for a join without last_seen_seq). `senders`: the senders
// whose messages this VU must receive, or null to check seq order only (a sender's own
// socket). `latency`: the Trend for the delivery latency. `tags`: the tags of every
// other sample (the VU's role).
//
// Returns { frame(raw), lastSeq(), complete(), got(), expected, end(gapCounter) }.
export function newStream({ runId, roomId, start, senders, senderCount, latency, tags }) {
  const prefix = `k6 ${runId} `;
  const plen = prefix.length;
  let slots = null; // per slot n: 0 not this room's, 1 expected, 2 received
  if (senders !== null) {
    slots = new Uint8Array(Math.max(1, senderCount * MESSAGES_PER_VU));
    senders.forEach((s) => slots.fill(1, s * MESSAGES_PER_VU, (s + 1) * MESSAGES_PER_VU));
  }
  const expected = senders === null ? 0 : senders.length * MESSAGES_PER_VU;
  let last = start === null || start === undefined ? -1 : start;
  let holes = null; // seqs skipped and not yet received (rare): seq -> true
  // One frame's entries, reused from frame to frame: seq, slot (-1: not this run's), send time.
  const seqs = [];
  const nums = [];
  const sent = [];
  let got = 0; // messages of the run received, each once
  let received = 0; // Messages taken into the stream (every kind, every sender)
  let duplicates = 0;
  let outOfOrder = 0;
  let gaps = 0;
  let storedTwice = 0; // one sent message under two seqs
  let invalid = 0; // failed a cheap check (the frames checked in full add their own samples)
  let validated = 0;
  let untilParse = 1; // the first live frame is checked in full
  let untilLatency = 1;

  // Reads the entries of a live frame as chatd writes it (each Message's keys in the
  // order id, seq, ..., content, ...; a key cannot occur inside a JSON string, whose
  // quotes are escaped) into seqs/nums/sent. Returns their number, or -1 when the frame
  // is not as expected.
  function scan(raw, from) {
    let k = 0;
    let at = from;
    for (;;) {
      const s = raw.indexOf(SEQ_KEY, at);
      if (s < 0) return k;
      // parseInt stops at the comma after the digits.
      seqs[k] = parseInt(raw.slice(s + 6, s + 24), 10);
      nums[k] = -1;
      sent[k] = 0;
      at = s + 6;
      if (slots !== null) {
        const c = raw.indexOf(CONTENT_KEY, at);
        if (c < 0) return -1;
        at = c + 11;
        if (raw.startsWith(prefix, at)) {
          at += plen;
          sent[k] = Number(raw.slice(at, at + 13));
          nums[k] = parseInt(raw.slice(at + 14, at + 30), 10);
        }
      }
      k++;
    }
  }

  // The same entries from parsed Messages; a Message without a numeric seq gets NaN.
  function entriesOf(list) {
    for (let k = 0; k < list.length; k++) {
      const m = list[k];
      const ok = m !== null && typeof m === 'object';
      const c = ok ? m.content : undefined;
      seqs[k] = ok && typeof m.seq === 'number' ? m.seq : NaN;
      nums[k] = -1;
      sent[k] = 0;
      if (slots !== null && typeof c === 'string' && c.startsWith(prefix)) {
        sent[k] = Number(c.slice(plen, plen + 13));
        nums[k] = parseInt(c.slice(plen + 14), 10);
      }
    }
    return list.length;
  }

  // A seq that does not continue the stream by one: the first of a live join, a gap, a
  // duplicate or a late one. True when the entry is to be taken (not a duplicate).
  function unusualSeq(seq) {
    if (!Number.isInteger(seq) || seq < 1) {
      invalid++;
      return false;
    }
    if (last < 0) {
      last = seq;
      return true;
    }
    if (seq > last) {
      const skipped = seq - last - 1;
      gaps += skipped;
      if (skipped <= 100000) {
        if (holes === null) holes = {};
        for (let s = last + 1; s < seq; s++) holes[s] = true;
      }
      last = seq;
      return true;
    }
    if (holes !== null && holes[seq] === true) {
      delete holes[seq];
      outOfOrder++;
      return true;
    }
    duplicates++;
    return false;
  }

  // Takes the first `count` entries, all received at `now`.
  function take(count, now) {
    for (let k = 0; k < count; k++) {
      const seq = seqs[k];
      if (seq === last + 1) last = seq;
      else if (!unusualSeq(seq)) continue;
      received++;
      const n = nums[k];
      if (slots === null || n === -1) continue; // a sender's socket; another client's message or a system entry
      const slot = slots[n];
      if (slot === 1) {
        slots[n] = 2;
        got++;
        if (--untilLatency === 0) {
          untilLatency = LATENCY_EVERY;
          const ms = now - sent[k];
          if (ms >= 0) latency.add(ms);
          else invalid++; // no send time, or one in the future
        }
      } else if (slot === 2) {
        storedTwice++;
      } else {
        invalid++; // a message of the run not meant for this room, or a content no sender wrote
      }
    }
  }

  // Every field of one Message, and for a message of the run its content and
  // client_msg_id exactly as its sender wrote them.
  function checkFully(m) {
    let ok = validMessage(m, roomId);
    const c = ok ? m.content : '';
    if (ok && c.startsWith(prefix)) {
      const t = Number(c.slice(plen, plen + 13));
      const n = Number(c.slice(plen + 14));
      const s = Math.floor(n / MESSAGES_PER_VU);
      const i = n % MESSAGES_PER_VU;
      ok = Number.isInteger(n) && n >= 0 && Number.isInteger(t) && c === runContent(runId, s, i, t);
      if (ok && CHECK_CLIENT_MSG_ID) ok = m.client_msg_id === clientMsgId(runId, s, i);
    }
    validated++;
    payloadValid.add(ok, tags);
  }

  // A live frame read both ways: the fast reader must find what JSON.parse found.
  function agrees(raw, from, count) {
    const parsed = [seqs.slice(0, count), nums.slice(0, count), sent.slice(0, count)];
    let same = scan(raw, from) === count;
    for (let j = 0; same && j < count; j++) {
      same = Object.is(seqs[j], parsed[0][j]) && Object.is(nums[j], parsed[1][j]) && Object.is(sent[j], parsed[2][j]);
    }
    for (let j = 0; j < count; j++) {
      seqs[j] = parsed[0][j];
      nums[j] = parsed[1][j];
      sent[j] = parsed[2][j];
    }
    if (!same) console.warn(`the fast frame reader disagrees with JSON.parse on: ${raw.slice(0, 300)}`);
    return same;
  }

  // Handles one received frame. A live message frame or a room event nobody reads is
  // taken and null returned; any other frame is parsed and returned (null when it is not
  // a JSON event, counted invalid), the Messages of a history frame taken first.
  function frame(raw) {
    const now = Date.now();
    const from = raw.startsWith(BATCH_HEAD) ? BATCH_HEAD.length : raw.startsWith(ONE_HEAD) ? ONE_HEAD.length - 1 : 0;
    if (from > 0 && --untilParse > 0) {
      const count = scan(raw, from);
      if (count >= 0) {
        take(count, now);
        return null;
      }
    }
    if (from > 0) untilParse = VALIDATE_EVERY;
    else if (raw.startsWith(PRESENCE_HEAD) || raw.startsWith(JOINED_HEAD) || raw.startsWith(LEFT_HEAD)) return null;
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch (e) {
      invalid++;
      return null;
    }
    if (msg === null || typeof msg !== 'object' || typeof msg.event !== 'string') {
      invalid++;
      return null;
    }
    const ev = msg.event;
    let list = null;
    if (ev === 'new_message_batch') list = Array.isArray(msg.data) ? msg.data : [null];
    else if (ev === 'new_message') list = [msg.data];
    else if (ev === 'history') list = msg.data && Array.isArray(msg.data.messages) ? msg.data.messages : [null];
    if (list === null) return msg;
    const count = entriesOf(list);
    if (from > 0 && !agrees(raw, from, count)) invalid++;
    for (let k = 0; k < list.length; k++) checkFully(list[k]);
    take(count, now);
    return null;
  }

  // Adds the stream's samples once it is over: the counts, the failures of cheap checks
  // as payload_valid_rate false, and one delivery_success_rate sample per expected message.
  function end(gapCounter) {
    messagesReceived.add(received, tags);
    seqDuplicates.add(duplicates, tags);
    seqOutOfOrder.add(outOfOrder, tags);
    contentDuplicates.add(storedTwice, tags);
    gapCounter.add(gaps, tags);
    payloadsValidated.add(validated, tags);
    for (let k = 0; k < invalid; k++) payloadValid.add(false, tags);
    if (slots === null) return;
    deliveredMessages.add(got, tags);
    for (let n = 0; n < slots.length; n++) if (slots[n] !== 0) deliverySuccess.add(slots[n] === 2, tags);
  }

  return {
    frame,
    end,
    expected,
    // The seq to rejoin with (null: none seen yet, and none known before).
    lastSeq: () => (last < 0 ? null : last),
    got: () => got,
    // Whether every message of the run this stream expects has arrived.
    complete: () => got >= expected,
  };
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

// An `error` frame: counted in ws_error_events (tagged with its code) and logged; a
// `rate_limited` one stops the run (every further send would be refused too).
export function onError(who, msg) {
  const code = msg.data && msg.data.code;
  wsErrors.add(1, { code: String(code) });
  console.warn(`${who}: error ${JSON.stringify(msg.data)}`);
  if (code === 'rate_limited') stopOnRateLimit(who);
}
