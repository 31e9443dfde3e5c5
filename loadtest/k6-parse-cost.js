// k6-parse-cost.js: what one received message costs k6 itself, with no server.
//
// Times, inside one VU, the work the delivery scripts do for every message they
// receive: JSON.parse of a `new_message` frame as chatd sends it, and the receiver's
// checks (common.js). Multiply by the messages per second a test delivers to all its
// sockets to get the cores k6 needs to keep up; when that exceeds the cores it has,
// its latency figures measure k6's own backlog, not the server.
//
//   k6 run loadtest/k6-parse-cost.js            (N=20000 frames by default)

import { envInt, runContent, runPayload, validMessage, newSeqState, trackSeq, clientMsgId } from './common.js';

export const options = { vus: 1, iterations: 1 };

const N = envInt('N', 20000);

export default function () {
  const runId = 'abc123xyz';
  const room = '0195a3c2-8b21-7d5f-8b66-2c3d4e5f6a7b';
  const frames = [];
  for (let i = 0; i < 1000; i++) {
    const content = runContent(runId, i % 40, i, Date.now());
    const m = {
      id: 100000 + i,
      seq: i + 1,
      room_id: room,
      user_id: '0195a3c2-8b21-7d5f-8b66-2c3d4e5f6a7c',
      username: `k6${runId}u${i % 40}`,
      content,
      created_at: '2026-11-29T14:16:06.123Z',
      client_msg_id: clientMsgId(runId, i % 40, i),
    };
    frames.push(JSON.stringify({ event: 'new_message', data: m }));
  }
  let t0 = Date.now();
  let sink = 0;
  for (let n = 0; n < N; n++) sink += JSON.parse(frames[n % 1000]).data.seq;
  const parseUs = ((Date.now() - t0) * 1000) / N;

  const parsed = frames.map((f) => JSON.parse(f).data);
  t0 = Date.now();
  for (let n = 0; n < N; n++) {
    const m = parsed[n % 1000];
    const st = n % 1000 === 0 ? newSeqState(0) : undefined;
    const p = runPayload(m.content, runId);
    if (validMessage(m, room) && p !== null && m.client_msg_id === clientMsgId(runId, p.vu, p.i)) sink++;
    if (st) trackSeq(st, m.seq);
  }
  const checkUs = ((Date.now() - t0) * 1000) / N;
  const perMsg = parseUs + checkUs;
  console.log(
    `per received message: JSON.parse of the frame ${parseUs.toFixed(1)} µs, receiver checks ${checkUs.toFixed(1)} µs, ` +
      `total ${perMsg.toFixed(1)} µs -> ${(1e6 / perMsg).toFixed(0)} messages/s per core (sink ${sink})`,
  );
  // 40 senders x 1 message / 100 ms, delivered to 100 receivers and the 40 senders.
  const rate = 40 * 10 * 140;
  console.log(`40 + 100 shape: ${rate} messages/s into k6 -> ${((rate * perMsg) / 1e6).toFixed(2)} cores for this work alone`);
}
