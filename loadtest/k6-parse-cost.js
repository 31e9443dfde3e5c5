// k6-parse-cost.js: what one received message costs k6 itself, with no server.
//
// Feeds frames as chatd writes them (new_message_batch of BATCH messages, the keys in
// chatd's order) through the receivers' stream bookkeeping (common.js, newStream), and
// through JSON.parse alone for comparison, and reports the CPU time per message. It
// also checks the bookkeeping: every message taken once, none invalid, and the fast
// frame reader in agreement with JSON.parse on the frames checked in full. Multiply the
// cost by the messages per second a test delivers to all its sockets to get the cores
// k6 needs for it; when that nears the cores it has, its latency figures measure k6's
// own backlog, not the server. Exits 99 if the bookkeeping is wrong.
//
//   MESSAGES_PER_VU=2000 k6 run loadtest/k6-parse-cost.js
//
// (40 senders x MESSAGES_PER_VU messages, in frames of BATCH=4: 20,000 frames.)

import { Counter, Trend } from 'k6/metrics';
import { envInt, MESSAGES_PER_VU, runContent, clientMsgId, newStream } from './common.js';

const BATCH = Math.max(1, envInt('BATCH', 4));
const SENDERS = 40;
const N = Math.floor((SENDERS * MESSAGES_PER_VU) / BATCH);

// Zero when the bookkeeping counted every message once and found nothing wrong.
const wrong = new Counter('parse_cost_wrong');
const scratch = new Trend('parse_cost_latency_scratch');
const gaps = new Counter('parse_cost_gaps');

export const options = {
  vus: 1,
  iterations: 1,
  thresholds: {
    parse_cost_wrong: ['count==0'],
    payloads_validated: ['count>0'],
    payload_valid_rate: ['rate==1'],
    seq_duplicates: ['count==0'],
    seq_out_of_order: ['count==0'],
    content_duplicates: ['count==0'],
    parse_cost_gaps: ['count==0'],
  },
};

export default function () {
  const runId = 'abc123xyz';
  const room = '0195a3c2-8b21-7d5f-8b66-2c3d4e5f6a7b';
  const total = N * BATCH;
  const frames = [];
  for (let f = 0; f < N; f++) {
    const list = [];
    for (let k = 0; k < BATCH; k++) {
      const seq = f * BATCH + k + 1;
      const s = (seq - 1) % SENDERS;
      const i = Math.floor((seq - 1) / SENDERS);
      list.push({
        id: 100000 + seq,
        seq,
        room_id: room,
        user_id: '0195a3c2-8b21-7d5f-8b66-2c3d4e5f6a7c',
        username: `k6${runId}u${s}`,
        content: runContent(runId, s, i, Date.now()),
        created_at: '2026-11-29T14:16:06.123Z',
        client_msg_id: clientMsgId(runId, s, i),
        kind: 'message',
      });
    }
    frames.push(JSON.stringify({ event: 'new_message_batch', data: list }));
  }
  const senders = [];
  for (let s = 0; s < SENDERS; s++) senders.push(s);

  let t0 = Date.now();
  let sink = 0;
  for (let f = 0; f < N; f++) sink += JSON.parse(frames[f]).data.length;
  const parseUs = ((Date.now() - t0) * 1000) / total;

  const st = newStream({ runId, roomId: room, start: 0, senders, senderCount: SENDERS, latency: scratch, tags: {} });
  t0 = Date.now();
  for (let f = 0; f < N; f++) st.frame(frames[f]);
  const streamUs = ((Date.now() - t0) * 1000) / total;
  st.end(gaps);
  if (total === 0 || st.got() !== total) wrong.add(1);
  console.log(
    `per received message: JSON.parse alone ${parseUs.toFixed(2)} µs; the receivers' bookkeeping ` +
      `(fast reader, 1 frame in VALIDATE_EVERY parsed and checked in full) ${streamUs.toFixed(2)} µs ` +
      `-> ${(1e6 / streamUs).toFixed(0)} messages/s per core; took ${st.got()} of ${total} (sink ${sink})`,
  );
  // 40 senders x 1 message / 80 ms, delivered to 100 receivers and the 40 senders.
  const rate = 40 * 12.5 * 140;
  const cores = ((rate * streamUs) / 1e6).toFixed(2);
  console.log(`40 + 100 shape @80 ms: ${rate} messages/s into k6 -> ${cores} cores for this work`);
  wrong.add(0);
}
