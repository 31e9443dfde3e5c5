// k6-message-delivery.js: message delivery test for chatd.
//
// Only two kinds of virtual users: senders and receivers, sharing one room
// (or spread over ROOM_IDS / ROOM_COUNT rooms). Senders send MESSAGES_PER_VU
// messages each; every receiver must get every message sent to its room by
// this run, exactly once, in seq order, with a valid payload, fast.
//
// Metrics (thresholds in brackets):
//   delivery_success_rate  Rate    one sample per (receiver, expected message): seen or not  [rate==1]
//   delivered_messages     Counter messages of the run received, first copies               [count==expected]
//   delivery_latency_ms    Trend   receive time - send time embedded in the content        [p(95)<P95_MS]
//   payload_valid_rate     Rate    one sample per Message checked in full (1 in VALIDATE_EVERY),
//                                  and one false per Message failing the cheap checks      [rate==1]
//   payloads_validated     Counter Messages checked in full                                 [count>0]
//   messages_acked         Counter sends acknowledged                                       [count==SENDERS*MESSAGES_PER_VU]
//   seq_duplicates         Counter a seq seen twice on one VU's stream                      [count==0]
//   seq_out_of_order       Counter a seq lower than one already seen                        [count==0]
//   content_duplicates     Counter one sent message stored twice (two seqs)                 [count==0]
// k6 runs on the cores the server needs: per received message it does integer
// bookkeeping only (common.js, newStream). See loadtest/README.md for every knob.
// Uses only k6 built-in modules.

import ws from 'k6/ws';
import { sleep } from 'k6';
import exec from 'k6/execution';
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
  deliveryLatency,
  seqGaps,
  messagesSent,
  messagesAcked,
  ackLatency,
  wsConnectFailures,
  wsServerCloses,
  expectedDeliveries,
  roomCountOfRun,
  deliveryThresholds,
  stopOnUpgrade429,
  provision,
  clientMsgId,
  runContent,
  senderOffset,
  sendersOfRoom,
  newStream,
  wsUrlFor,
  wsParams,
  later,
  frame,
  onError,
} from './common.js';

// ---------------------------------------------------------------- knobs

// The knobs both scripts share (BASE_URL, MESSAGES_PER_VU, ...) are read in common.js;
// every metric this script reports is defined there too.

const SENDERS = envInt('SENDERS', 40);
const RECEIVERS = envInt('RECEIVERS', 100);

// Longest a receiver stays, counted from its own start.
const RECEIVER_HOLD_MS = SENDER_START_DELAY_MS + JOIN_TIMEOUT_MS + SEND_DURATION_MS + GRACE_MS;
const USERS_NEEDED = SENDERS + RECEIVERS;
// The rooms the run will use, as far as the options can know it (for the expected counts).
const ROOMS_EXPECTED = roomCountOfRun();

// ---------------------------------------------------------------- options

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
  thresholds: deliveryThresholds(
    expectedDeliveries(RECEIVERS, SENDERS, ROOMS_EXPECTED),
    SENDERS * MESSAGES_PER_VU,
  ),
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

// ---------------------------------------------------------------- setup

export function setup() {
  return provision({
    usersNeeded: USERS_NEEDED,
    roomDescription: 'k6 message delivery test',
    listeners: 'receivers',
    describe: `, ${SENDERS} senders x ${MESSAGES_PER_VU} messages, ${RECEIVERS} receivers, nodes ${NODE_URLS.join(' ')}`,
  });
}

// ---------------------------------------------------------------- receiver

export function receiver(data) {
  const j = exec.scenario.iterationInTest;
  const roomIndex = j % data.rooms.length;
  const roomId = data.rooms[roomIndex];
  const token = data.tokens[(SENDERS + j) % data.tokens.length];
  const st = newStream({
    runId: data.runId,
    roomId,
    start: data.baselines[roomIndex],
    senders: sendersOfRoom(roomIndex, data.rooms.length, SENDERS),
    senderCount: SENDERS,
    latency: deliveryLatency,
    tags: { role: 'receiver' },
  });
  let completeAt = 0;
  const startedAt = Date.now();
  const deadline = startedAt + RECEIVER_HOLD_MS;
  const windowEnd = startedAt + SENDER_START_DELAY_MS + SEND_DURATION_MS;

  // Done at the deadline, or LINGER_MS after every expected message arrived.
  function finished(now) {
    if (completeAt === 0 && st.complete() && now >= windowEnd) completeAt = now;
    return now >= deadline || (completeAt > 0 && now - completeAt >= LINGER_MS);
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
          socket.send(frame('join_room', { room_id: roomId, last_seen_seq: st.lastSeq() }));
        });
        socket.on('message', (raw) => {
          const msg = st.frame(raw);
          if (msg === null) return;
          const ev = msg.event;
          if (ev === 'joined_room') {
            joined = true;
          } else if (ev === 'error') {
            onError(`receiver ${j}`, msg);
            const code = msg.data && msg.data.code;
            if (!joined && (code === 'not_member' || code === 'room_not_found')) {
              refused = true;
              closedByUs = true;
              socket.close(1000);
            }
          }
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
      if (res && res.status === 429) stopOnUpgrade429(`receiver ${j}`);
      if (res) console.warn(`receiver ${j}: upgrade answered HTTP ${res.status}`);
    } else if (!closedByUs) {
      wsServerCloses.add(1);
    }
    if (refused || finished(Date.now())) break;
    // Closed by the server, failed to connect or to join: rejoin with last_seen_seq.
    if (++reconnects > MAX_RECONNECTS) break;
    sleep(0.5);
  }

  st.end(seqGaps);
  if (!st.complete()) {
    console.warn(`receiver ${j} (room ${roomId}): got ${st.got()}/${st.expected} messages`);
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
        const msg = st.frame(raw);
        if (msg === null) return;
        const ev = msg.event;
        if (ev === 'message_ack') {
          const cmid = msg.data && msg.data.client_msg_id;
          if (sentAt[cmid] !== undefined) {
            ackLatency.add(Date.now() - sentAt[cmid]);
            delete sentAt[cmid];
            acked++;
          }
        } else if (ev === 'joined_room' && !joined) {
          joined = true;
          sendStart = Date.now() + senderOffset(s, SENDERS);
          if (MESSAGES_PER_VU > 0) later(socket, sendNext, sendStart - Date.now());
        } else if (ev === 'error') {
          onError(`sender ${s}`, msg);
          const code = msg.data && msg.data.code;
          // A refused join cannot be fixed by waiting.
          if (!joined && (code === 'not_member' || code === 'room_not_found')) socket.close(1000);
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
    if (res && res.status === 429) stopOnUpgrade429(`sender ${s}`);
    if (res) console.warn(`sender ${s}: upgrade answered HTTP ${res.status}`);
  }
  messagesSent.add(sent);
  messagesAcked.add(acked);
  st.end(seqGaps);
  if (sent < MESSAGES_PER_VU || acked < sent) {
    console.warn(`sender ${s}: sent ${sent}/${MESSAGES_PER_VU}, acked ${acked}`);
  }
}
