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
// See loadtest/README.md for every knob. Shared code lives in common.js; uses only k6 built-in modules.

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
  P95_MS,
  SENDER_START_DELAY_MS,
  GRACE_MS,
  LINGER_MS,
  ACK_TIMEOUT_MS,
  JOIN_TIMEOUT_MS,
  MAX_RECONNECTS,
  CHECK_CLIENT_MSG_ID,
  SEND_DURATION_MS,
  deliverySuccess,
  deliveryLatency,
  payloadValid,
  contentDuplicates,
  messagesSent,
  messagesAcked,
  messagesReceived,
  ackLatency,
  wsConnectFailures,
  wsServerCloses,
  provision,
  clientMsgId,
  validMessage,
  runPayload,
  runContent,
  senderOffset,
  sendersOfRoom,
  newSeqState,
  trackSeq,
  wsUrlFor,
  wsParams,
  later,
  frame,
  parseFrame,
  messagesOf,
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
  const senders = sendersOfRoom(roomIndex, data.rooms.length, SENDERS);
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

  // Metric samples are costly in k6 (each goes through its metrics engine): while the
  // stream runs, only plain counters and an array are updated; the samples are added
  // once the stream is over, so k6's own work does not inflate the latencies it measures.
  let received = 0;
  let valid = 0;
  let invalid = 0;
  const latencies = [];
  function onMessage(m) {
    received++;
    const isObject = m !== null && typeof m === 'object';
    // Delivery is judged on the content alone, so that a bad field shows in payload_valid_rate only.
    const p = isObject ? runPayload(m.content, data.runId) : null;
    const cmidOk =
      !CHECK_CLIENT_MSG_ID || p === null || m.client_msg_id === clientMsgId(data.runId, p.vu, p.i);
    if (validMessage(m, roomId) && cmidOk) valid++;
    else invalid++;
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
    latencies.push(Date.now() - p.t);
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
            onError(`receiver ${j}`, msg);
            const code = msg.data && msg.data.code;
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

  messagesReceived.add(received);
  for (let i = 0; i < valid; i++) payloadValid.add(true);
  for (let i = 0; i < invalid; i++) payloadValid.add(false);
  latencies.forEach((ms) => deliveryLatency.add(ms));
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
        const content = runContent(data.runId, s, sent, t);
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
          sendStart = Date.now() + senderOffset(s, SENDERS);
          if (MESSAGES_PER_VU > 0) later(socket, sendNext, sendStart - Date.now());
        } else if (msg.event === 'message_ack') {
          const cmid = msg.data && msg.data.client_msg_id;
          if (sentAt[cmid] !== undefined) {
            ackLatency.add(Date.now() - sentAt[cmid]);
            delete sentAt[cmid];
            messagesAcked.add(1);
            acked++;
          }
        } else if (msg.event === 'error') {
          onError(`sender ${s}`, msg);
          const code = msg.data && msg.data.code;
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
