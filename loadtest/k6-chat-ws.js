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
//   delivered_messages     Counter messages of the run received by them, first copies          [count==expected]
//   delivery_latency_ms    Trend   receive time - send time, receivers only                     [p(95)<P95_MS]
//   payload_valid_rate     Rate    one sample per Message checked in full (the Messages of one
//                                  live frame in VALIDATE_EVERY, and of every history frame)   [rate==1]
//   payloads_validated     Counter Messages checked in full                                     [count>0]
//   messages_acked         Counter sends acknowledged                                           [count==SENDERS*MESSAGES_PER_VU]
//   seq_duplicates         Counter a seq seen twice on one VU's stream (across its reconnects)  [count==0]
//   seq_out_of_order       Counter a seq lower than one already seen                            [count==0]
//   reconnect_gaps         Counter seqs skipped by the reconnect VUs' streams                   [count==0]
//   content_duplicates     Counter one sent message stored twice (two seqs)                     [count==0]
//   typing_events_received Counter typing events received (from the others)                     [count>0 when typing runs]
// k6 runs on the cores the server needs: per received message it does integer
// bookkeeping only (common.js, newStream). See loadtest/README.md for every knob.
// Uses only k6 built-in modules.

import ws from 'k6/ws';
import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  envStr,
  envInt,
  secs,
  MESSAGES_PER_VU,
  MESSAGE_INTERVAL_MS,
  NODE_URLS,
  SENDER_START_DELAY_MS,
  GRACE_MS,
  LINGER_MS,
  ACK_TIMEOUT_MS,
  JOIN_TIMEOUT_MS,
  MAX_RECONNECTS,
  SEND_DURATION_MS,
  VALIDATE_EVERY,
  deliveryLatency,
  seqGaps,
  messagesSent,
  messagesAcked,
  ackLatency,
  wsConnectFailures,
  wsServerCloses,
  expectedDeliveries,
  deliveryThresholds,
  roomCountOfRun,
  stopOnUpgrade429,
  provision,
  UUID_RE,
  clientMsgId,
  runContent,
  senderOffset,
  sendersOfRoom,
  newStream,
  wsUrlFor,
  wsParams,
  later,
  frame,
  parseFrame,
  roomTraffic,
  onError,
} from './common.js';

// ---------------------------------------------------------------- knobs

// The knobs both scripts share (BASE_URL, MESSAGES_PER_VU, ...) are read in common.js.
const SENDERS = envInt('SENDERS', 20);
const RECEIVERS = envInt('RECEIVERS', 50);
const CHURN_VUS = envInt('CHURN_VUS', 10);
const RECONNECT_VUS = envInt('RECONNECT_VUS', 10);
const TYPING_VUS = envInt('TYPING_VUS', 10);
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

// Global VU index layout (picks the token and the node): senders, receivers, churn, reconnect, typing.
const OFFSET = {
  sender: 0,
  receiver: SENDERS,
  churn: SENDERS + RECEIVERS,
  reconnect: SENDERS + RECEIVERS + CHURN_VUS,
  typing: SENDERS + RECEIVERS + CHURN_VUS + RECONNECT_VUS,
};
const USERS_NEEDED = OFFSET.typing + TYPING_VUS;

// When the senders should be done, from the start of the scenarios.
const WINDOW_END_MS = SENDER_START_DELAY_MS + SEND_DURATION_MS;
// Longest a listening VU stays, counted from its own start.
const LISTEN_HOLD_MS = SENDER_START_DELAY_MS + JOIN_TIMEOUT_MS + SEND_DURATION_MS + GRACE_MS;

// ---------------------------------------------------------------- options

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

// Receivers and reconnect VUs are numbered from 0 each, and listener k listens to room k % rooms.
const EXPECTED_DELIVERIES =
  expectedDeliveries(RECEIVERS, SENDERS, roomCountOfRun()) + expectedDeliveries(RECONNECT_VUS, SENDERS, roomCountOfRun());
const thresholds = deliveryThresholds(EXPECTED_DELIVERIES, SENDERS * MESSAGES_PER_VU);
thresholds.reconnect_gaps = ['count==0'];
if (TYPING_VUS > 0 && (TYPING_VUS > 1 || RECEIVERS > 0 || RECONNECT_VUS > 0)) {
  thresholds.typing_events_received = ['count>0'];
  thresholds.typing_payload_valid_rate = ['rate==1'];
}

export const options = {
  scenarios,
  setupTimeout: envStr('SETUP_TIMEOUT', secs(60000 + USERS_NEEDED * 1000)),
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

// ---------------------------------------------------------------- metrics

// Metrics both scripts report (delivery_success_rate, delivery_latency_ms, payload_valid_rate,
// seq_duplicates, seq_out_of_order, content_duplicates, seq_gaps, messages_*, ack_latency_ms,
// ws_*) are defined in common.js; these are chat-ws's own.
const reconnectLatency = new Trend('reconnect_delivery_latency_ms', true);
const reconnectGaps = new Counter('reconnect_gaps');
const reconnects = new Counter('reconnects');
const churnCycles = new Counter('churn_cycles');
const churnFailures = new Counter('churn_failures');
const churnJoinLatency = new Trend('churn_join_latency_ms', true);
const typingSent = new Counter('typing_sent');
const typingReceived = new Counter('typing_events_received');
const typingValid = new Rate('typing_payload_valid_rate');

// ---------------------------------------------------------------- setup

export function setup() {
  return provision({
    usersNeeded: USERS_NEEDED,
    roomDescription: 'k6 chat ws test',
    listeners: 'listeners',
    describe:
      `; senders ${SENDERS} x ${MESSAGES_PER_VU}, ` +
      `receivers ${RECEIVERS}, churn ${CHURN_VUS}, reconnect ${RECONNECT_VUS}, typing ${TYPING_VUS}; ` +
      `nodes ${NODE_URLS.join(' ')}`,
  });
}

// ---------------------------------------------------------------- helpers

const TYPING_HEAD = '{"event":"typing",';

// Counts the typing events a VU receives, reading them only by their first bytes; one in
// VALIDATE_EVERY is parsed and checked. The samples are added by end().
function typingTally() {
  let count = 0;
  let until = 1;
  return {
    // True when `raw` was a typing event (and is taken).
    take(raw) {
      if (!raw.startsWith(TYPING_HEAD)) return false;
      count++;
      if (--until === 0) {
        until = VALIDATE_EVERY;
        const msg = parseFrame(raw);
        const d = msg && msg.data;
        typingValid.add(
          d !== null &&
            typeof d === 'object' &&
            typeof d.user_id === 'string' &&
            UUID_RE.test(d.user_id) &&
            typeof d.room_id === 'string',
        );
      }
      return true;
    },
    end() {
      typingReceived.add(count);
    },
  };
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
  const gaps = role === 'receiver' ? seqGaps : reconnectGaps;
  const st = newStream({
    runId: data.runId,
    roomId,
    start: data.baselines[roomIndex],
    senders: sendersOfRoom(roomIndex, data.rooms.length, SENDERS),
    senderCount: SENDERS,
    latency: role === 'receiver' ? deliveryLatency : reconnectLatency,
    tags: { role },
  });
  const typing = typingTally();
  let completeAt = 0;
  const startedAt = Date.now();
  const deadline = startedAt + LISTEN_HOLD_MS;
  const windowEnd = startedAt + WINDOW_END_MS;

  function finished(now) {
    if (completeAt === 0 && st.complete() && now >= windowEnd) completeAt = now;
    return now >= deadline || (completeAt > 0 && now - completeAt >= LINGER_MS);
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
          socket.send(frame('join_room', { room_id: roomId, last_seen_seq: st.lastSeq() }));
        });
        socket.on('message', (raw) => {
          if (typing.take(raw)) return;
          const msg = st.frame(raw);
          if (msg === null) return;
          if (msg.event === 'joined_room') joined = true;
          else if (msg.event === 'error') {
            onError(who, msg);
            const code = msg.data && msg.data.code;
            if (!joined && (code === 'not_member' || code === 'room_not_found')) {
              refused = true;
              closedByUs = true;
              socket.close(1000);
            }
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
      if (res && res.status === 429) stopOnUpgrade429(who);
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

  st.end(gaps);
  typing.end();
  if (!st.complete()) console.warn(`${who} (room ${roomId}): got ${st.got()}/${st.expected} messages`);
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
  // The sender's socket gets the room's stream too: its order is checked, nothing more.
  const st = newStream({
    runId: data.runId,
    roomId,
    start: null,
    senders: null,
    senderCount: SENDERS,
    latency: null,
    tags: { role: 'sender' },
  });
  const typing = typingTally();

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
        const content = runContent(data.runId, s, sent, t);
        sentAt[cmid] = t;
        socket.send(frame('send_message', { room_id: roomId, content, client_msg_id: cmid }));
        sent++;
        lastSendAt = t;
        if (sent < MESSAGES_PER_VU) {
          // Schedule against the start time so that the rate does not drift.
          later(socket, sendNext, Math.max(0, sendStart + sent * MESSAGE_INTERVAL_MS - Date.now()));
        }
      }

      socket.on('open', () => socket.send(frame('join_room', { room_id: roomId })));
      socket.on('message', (raw) => {
        if (typing.take(raw)) return;
        const msg = st.frame(raw);
        if (msg === null) return;
        if (msg.event === 'joined_room' && !joined) {
          joined = true;
          sendStart = Date.now() + senderOffset(s, SENDERS);
          if (MESSAGES_PER_VU > 0) later(socket, sendNext, sendStart - Date.now());
        } else if (msg.event === 'message_ack') {
          const cmid = msg.data && msg.data.client_msg_id;
          if (sentAt[cmid] !== undefined) {
            ackLatency.add(Date.now() - sentAt[cmid]);
            delete sentAt[cmid];
            acked++;
          }
        } else if (msg.event === 'error') {
          onError(who, msg);
          const code = msg.data && msg.data.code;
          // A refused join cannot be fixed by waiting.
          if (!joined && (code === 'not_member' || code === 'room_not_found')) socket.close(1000);
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
    if (res && res.status === 429) stopOnUpgrade429(who);
    if (res) console.warn(`${who}: upgrade answered HTTP ${res.status}`);
  }
  messagesSent.add(sent);
  messagesAcked.add(acked);
  st.end(seqGaps);
  typing.end();
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
          if (roomTraffic(raw) || raw.startsWith('{"event":"typing",')) return;
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
    if (!res || res.status !== 101) {
      wsConnectFailures.add(1, { role: 'churn' });
      if (res && res.status === 429) stopOnUpgrade429(who);
    }
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
  const typing = typingTally();

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
        if (typing.take(raw) || roomTraffic(raw)) return;
        const msg = parseFrame(raw);
        if (msg === null) return;
        if (msg.event === 'joined_room' && !joined) {
          joined = true;
          cycle();
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
  if (!res || res.status !== 101) {
    wsConnectFailures.add(1, { role: 'typing' });
    if (res && res.status === 429) stopOnUpgrade429(who);
  }
  typing.end();
}
