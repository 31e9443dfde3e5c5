// Read marks at a message rate, as clients showing a room send them: ROOMS rooms, one
// sender socket posting RATE messages a second over them, READERS users each joined to
// every room on a socket of their own; with MARK=1 every reader marks each message it
// receives read at once (`mark_read` on its socket). Prints the send-to-delivery latency
// the readers saw, the marks sent and the read_state events that came back.
//
//   node --experimental-websocket bench/marks.mjs [URL] [ROOMS] [READERS] [RATE] [SECONDS] [MARK]
//   (defaults: http://127.0.0.1:3000 20 10 1000 20 1; run the server with
//    loadtest/server.toml: one socket here sends far more than a person)
//
// Marks per second = RATE x READERS (10,000 with the defaults).
const [url = 'http://127.0.0.1:3000', roomsArg = '20', readersArg = '10', rateArg = '1000', secsArg = '20', markArg = '1'] =
  process.argv.slice(2);
const ROOMS = Number(roomsArg);
const READERS = Number(readersArg);
const RATE = Number(rateArg);
const SECS = Number(secsArg);
const MARK = markArg === '1';
const tag = Math.random().toString(36).slice(2, 8);
const ws = url.replace(/^http/, 'ws') + '/ws?token=';

async function api(path, body, token) {
  const res = await fetch(url + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function user(name) {
  const u = `${name}${tag}`;
  const r = await api('/auth/register', { username: u, email: `${u}@example.com`, password: 'password123' });
  return r.tokens.accessToken;
}

function socket(token, rooms, onFrame) {
  return new Promise((resolve, reject) => {
    const w = new WebSocket(ws + token);
    let joined = 0;
    w.onerror = reject;
    w.onopen = () => rooms.forEach((room_id) => w.send(JSON.stringify({ event: 'join_room', data: { room_id } })));
    w.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.event === 'joined_room' && ++joined === rooms.length) resolve(w);
      onFrame(w, f);
    };
  });
}

const owner = await user('mo');
const rooms = [];
for (let i = 0; i < ROOMS; i++) rooms.push((await api('/rooms', { name: `marks-${tag}-${i}` }, owner)).id);
const latencies = [];
let marks = 0;
let states = 0;
let sending = false;
for (let r = 0; r < READERS; r++) {
  const token = await user(`mr${r}`);
  for (const room of rooms) await api(`/rooms/${room}/join`, {}, token);
  await socket(token, rooms, (w, f) => {
    if (f.event === 'read_state') states++;
    const list = f.event === 'new_message' ? [f.data] : f.event === 'new_message_batch' ? f.data : [];
    for (const m of list) {
      const t = Number(m.content.split(' ')[0]);
      if (sending && t > 0) latencies.push(Date.now() - t);
      if (MARK) {
        w.send(JSON.stringify({ event: 'mark_read', data: { room_id: m.room_id, seq: m.seq } }));
        marks++;
      }
    }
  });
}
const sender = await socket(owner, rooms, () => {});
await new Promise((r) => setTimeout(r, 1000));
sending = true;
const start = Date.now();
let sent = 0;
await new Promise((resolve) => {
  const tick = setInterval(() => {
    const due = Math.floor(((Date.now() - start) / 1000) * RATE);
    while (sent < due) {
      const room_id = rooms[sent % ROOMS];
      sender.send(JSON.stringify({ event: 'send_message', data: { room_id, content: `${Date.now()} marks`, client_msg_id: `${tag}-${sent}` } }));
      sent++;
    }
    if (Date.now() - start >= SECS * 1000) {
      clearInterval(tick);
      resolve();
    }
  }, 5);
});
await new Promise((r) => setTimeout(r, 2000));
sending = false;
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
const expected = sent * READERS;
console.log(
  `mark=${MARK ? 1 : 0} sent ${sent} (${(sent / SECS).toFixed(0)}/s) delivered ${latencies.length}/${expected}` +
    ` latency p50 ${q(0.5)} ms p99 ${q(0.99)} ms max ${latencies[latencies.length - 1]} ms;` +
    ` marks sent ${marks} (${(marks / SECS).toFixed(0)}/s), read_state received ${states}`,
);
process.exit(latencies.length === expected ? 0 : 1);
