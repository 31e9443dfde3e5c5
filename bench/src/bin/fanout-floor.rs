//! fanout-floor: the least work a server can do for `chat-bench fanout`, to measure
//! what this machine allows before chatd's own costs. One mio thread, no database,
//! no JSON parsing: it answers chat-bench's provisioning calls with made-up ids,
//! accepts WebSocket upgrades, finds `room_id`, `content` and `client_msg_id` in a
//! client frame by scanning for them, acks each send at once and, once per poll
//! round, encodes one `new_message` (or `new_message_batch`) frame per room in
//! exactly the shape chatd sends, shared by every socket of the room and written
//! with writev.
//!
//! ```text
//! fanout-floor [--listen 127.0.0.1:3000]
//! chat-bench fanout --url 127.0.0.1:3000 --server-pid $(pgrep -n fanout-floor)
//! ```
//!
//! What it does not do (so its figures are a floor, not a competitor): store
//! anything, check tokens or membership, send presence, typing, history or catch-up
//! (a rejoin with `last_seen_seq` gets no history: chat-bench would report the
//! losses), ping idle sockets. A socket whose queue passes 4 MiB is closed with
//! 1013, as chatd does with a slow consumer.

#[allow(dead_code)]
#[path = "../util.rs"]
mod util;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;

const LISTENER: Token = Token(usize::MAX);
const MAX_QUEUED: usize = 4 << 20;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct Conn {
    sock: TcpStream,
    rbuf: Vec<u8>,
    /// Frames to write; the first may be partly written (`sent` bytes of it).
    out: VecDeque<Rc<[u8]>>,
    sent: usize,
    queued: usize,
    ws: bool,
    user: u64,
    rooms: Vec<usize>,
    /// Close once the queue is written.
    closing: bool,
}

struct Room {
    id: String,
    seq: u64,
    subs: Vec<usize>,
    /// Messages (JSON objects) arrived this poll round.
    pending: Vec<Vec<u8>>,
}

struct Floor {
    poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    rooms: Vec<Room>,
    room_index: HashMap<String, usize>,
    usernames: Vec<String>,
    next_id: u64,
    dirty: Vec<usize>,
    dead: Vec<usize>,
}

fn uuid(kind: u8, n: u64) -> String {
    format!("00000000-0000-7000-80{kind:02x}-{n:012x}")
}

/// Unix time as chatd formats it: `2026-03-18T07:02:30.123Z`.
fn iso_now() -> String {
    let us = util::now_us();
    let (secs, ms) = (us / 1_000_000, (us / 1000) % 1000);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The string value of `"key":"..."` in `json` (raw, escapes left as they are).
fn field<'a>(json: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let pat = format!("\"{key}\":\"");
    let at = json.windows(pat.len()).position(|w| w == pat.as_bytes())? + pat.len();
    let mut i = at;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return Some(&json[at..i]),
            _ => i += 1,
        }
    }
    None
}

/// An unmasked server frame.
fn frame(opcode: u8, payload: &[u8]) -> Rc<[u8]> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xFFFF {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out.into()
}

/// One masked client frame at the start of `buf`, unmasked in place: `(fin, opcode,
/// payload range, frame length)`; None when incomplete; Err on a protocol error.
#[allow(clippy::type_complexity)]
fn client_frame(buf: &mut [u8]) -> Result<Option<(bool, u8, std::ops::Range<usize>, usize)>, ()> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b1 & 0x80 == 0 {
        return Err(());
    }
    let (len, mut at) = match b1 & 0x7F {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().map_err(|_| ())?),
            10,
        ),
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if len > 1 << 20 {
        return Err(());
    }
    if buf.len() < at + 4 + len as usize {
        return Ok(None);
    }
    let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    at += 4;
    let end = at + len as usize;
    for (i, b) in buf[at..end].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    Ok(Some((b0 & 0x80 != 0, b0 & 0x0F, at..end, end)))
}

impl Floor {
    fn queue(&mut self, k: usize, chunk: Rc<[u8]>) {
        let Some(c) = self.conns[k].as_mut() else {
            return;
        };
        if c.closing {
            return;
        }
        c.queued += chunk.len();
        c.out.push_back(chunk);
        if c.queued > MAX_QUEUED {
            // A slow consumer, as chatd treats it: 1013, then close.
            c.out.clear();
            c.sent = 0;
            c.queued = 0;
            c.out.push_back(frame(0x8, &1013u16.to_be_bytes()));
            c.closing = true;
        }
        self.dirty.push(k);
    }

    fn text(&mut self, k: usize, s: &str) {
        self.queue(k, frame(0x1, s.as_bytes()));
    }

    fn accept(&mut self, l: &TcpListener) {
        loop {
            match l.accept() {
                Ok((mut sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    let k = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    if self
                        .poll
                        .registry()
                        .register(&mut sock, Token(k), Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        self.free.push(k);
                        continue;
                    }
                    self.conns[k] = Some(Conn {
                        sock,
                        rbuf: Vec::new(),
                        out: VecDeque::new(),
                        sent: 0,
                        queued: 0,
                        ws: false,
                        user: 0,
                        rooms: Vec::new(),
                        closing: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }

    fn readable(&mut self, k: usize, scratch: &mut [u8]) {
        loop {
            let Some(c) = self.conns[k].as_mut() else {
                return;
            };
            match c.sock.read(scratch) {
                Ok(0) => return self.dead.push(k),
                Ok(n) => c.rbuf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.dead.push(k),
            }
        }
        let Some(c) = self.conns[k].as_mut() else {
            return;
        };
        let mut buf = std::mem::take(&mut c.rbuf);
        let used = if c.ws {
            self.frames(k, &mut buf)
        } else {
            self.http(k, &buf)
        };
        buf.drain(..used.min(buf.len()));
        if let Some(c) = self.conns[k].as_mut() {
            c.rbuf = buf;
        }
    }

    /// HTTP requests (provisioning and the upgrade); returns the bytes used.
    fn http(&mut self, k: usize, buf: &[u8]) -> usize {
        let mut at = 0;
        while at < buf.len() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head = match req.parse(&buf[at..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    self.dead.push(k);
                    return buf.len();
                }
            };
            let mut len = 0usize;
            let mut key = None;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    len = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                } else if h.name.eq_ignore_ascii_case("sec-websocket-key") {
                    key = Some(String::from_utf8_lossy(h.value).trim().to_string());
                }
            }
            if buf.len() < at + head + len {
                break;
            }
            let body = &buf[at + head..at + head + len];
            let (method, path) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
            at += head + len;
            if let (true, Some(key)) = (path.starts_with("/ws"), key) {
                let user = path
                    .split("token=floor.")
                    .nth(1)
                    .and_then(|t| t.split('&').next()?.parse().ok())
                    .unwrap_or(0);
                let accept = util::base64(&sha1(format!("{key}{GUID}").as_bytes()));
                let resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                self.queue(k, resp.into_bytes().into());
                if let Some(c) = self.conns[k].as_mut() {
                    c.ws = true;
                    c.user = user;
                }
                // Frames sent right behind the upgrade request.
                let mut rest = buf[at..].to_vec();
                let used = self.frames(k, &mut rest);
                return at + used;
            }
            let (status, json) = self.route(method, path, body);
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            );
            self.queue(k, resp.into_bytes().into());
        }
        at
    }

    /// The REST calls chat-bench's provisioning makes, answered with made-up ids.
    fn route(&mut self, method: &str, path: &str, body: &[u8]) -> (&'static str, String) {
        self.next_id += 1;
        let n = self.next_id;
        match (method, path) {
            ("GET", "/health") => ("200 OK", r#"{"status":"ok"}"#.into()),
            ("GET", "/ready") => ("200 OK", r#"{"status":"ready"}"#.into()),
            ("POST", "/auth/register") => {
                let name = String::from_utf8_lossy(field(body, "username").unwrap_or(b"u"))
                    .into_owned();
                let user = self.usernames.len() as u64;
                let json = format!(
                    r#"{{"user":{{"id":"{}","username":"{name}","email":"{name}@example.com","created_at":"{}"}},"tokens":{{"accessToken":"floor.{user}","refreshToken":"floor"}}}}"#,
                    uuid(1, user),
                    iso_now()
                );
                self.usernames.push(name);
                ("201 Created", json)
            }
            ("POST", "/rooms") => {
                let id = uuid(2, n);
                self.room_index.insert(id.clone(), self.rooms.len());
                self.rooms.push(Room {
                    id: id.clone(),
                    seq: 0,
                    subs: Vec::new(),
                    pending: Vec::new(),
                });
                let json = format!(
                    r#"{{"id":"{id}","name":"room","description":null,"created_by":null,"created_at":"{}"}}"#,
                    iso_now()
                );
                ("201 Created", json)
            }
            ("POST", p) if p.starts_with("/rooms/") && p.ends_with("/join") => {
                ("201 Created", r#"{"success":true}"#.into())
            }
            // A room's head after provisioning: the floor stores nothing, so it is empty.
            ("GET", p) if p.starts_with("/rooms/") && p.contains("/messages") => {
                ("200 OK", r#"{"messages":[],"next_cursor":null}"#.into())
            }
            _ => (
                "404 Not Found",
                r#"{"statusCode":404,"message":"Not found","error":"Not Found","code":"not_found"}"#
                    .into(),
            ),
        }
    }

    /// WebSocket frames from a client; returns the bytes used.
    fn frames(&mut self, k: usize, buf: &mut [u8]) -> usize {
        let mut at = 0;
        loop {
            match client_frame(&mut buf[at..]) {
                Ok(None) => return at,
                Err(()) => {
                    self.dead.push(k);
                    return buf.len();
                }
                Ok(Some((_, op, range, n))) => {
                    let payload = buf[at + range.start..at + range.end].to_vec();
                    at += n;
                    match op {
                        0x1 => self.event(k, &payload),
                        0x8 => {
                            self.queue(k, frame(0x8, &payload[..payload.len().min(2)]));
                            if let Some(c) = self.conns[k].as_mut() {
                                c.closing = true;
                            }
                            return buf.len();
                        }
                        0x9 => self.queue(k, frame(0xA, &payload)),
                        _ => {}
                    }
                }
            }
        }
    }

    /// One client event, found by scanning (no JSON parsing).
    fn event(&mut self, k: usize, p: &[u8]) {
        let room = field(p, "room_id")
            .and_then(|r| self.room_index.get(std::str::from_utf8(r).ok()?).copied());
        match field(p, "event") {
            Some(b"send_message") => {
                let Some(r) = room else {
                    return self.text(k, r#"{"event":"error","data":{"message":"Room not found","code":"room_not_found"}}"#);
                };
                let content = field(p, "content").unwrap_or(b"");
                let cmid = field(p, "client_msg_id");
                let user = self.conns[k].as_ref().map_or(0, |c| c.user);
                self.next_id += 1;
                let id = self.next_id;
                let room = &mut self.rooms[r];
                room.seq += 1;
                let (seq, created) = (room.seq, iso_now());
                let name = self
                    .usernames
                    .get(user as usize)
                    .map_or("u", String::as_str);
                let mut m = format!(
                    r#"{{"id":{id},"seq":{seq},"room_id":"{}","user_id":"{}","username":"{name}","content":""#,
                    room.id,
                    uuid(1, user)
                )
                .into_bytes();
                m.extend_from_slice(content);
                m.extend_from_slice(format!(r#"","created_at":"{created}""#).as_bytes());
                if let Some(c) = cmid {
                    m.extend_from_slice(br#","client_msg_id":""#);
                    m.extend_from_slice(c);
                    m.push(b'"');
                }
                m.push(b'}');
                room.pending.push(m);
                if let Some(c) = cmid {
                    let ack = format!(
                        r#"{{"event":"message_ack","data":{{"client_msg_id":"{}","id":{id},"seq":{seq},"room_id":"{}","created_at":"{created}"}}}}"#,
                        String::from_utf8_lossy(c),
                        self.rooms[r].id
                    );
                    self.text(k, &ack);
                }
            }
            Some(b"join_room") => {
                let Some(r) = room else {
                    return self.text(k, r#"{"event":"error","data":{"message":"Room not found","code":"room_not_found"}}"#);
                };
                if let Some(c) = self.conns[k].as_mut()
                    && !c.rooms.contains(&r)
                {
                    c.rooms.push(r);
                    self.rooms[r].subs.push(k);
                }
                let s = format!(
                    r#"{{"event":"joined_room","data":{{"room_id":"{}"}}}}"#,
                    self.rooms[r].id
                );
                self.text(k, &s);
            }
            Some(b"leave_room") => {
                if let Some(r) = room {
                    self.unsubscribe(k, r);
                    let s = format!(
                        r#"{{"event":"left_room","data":{{"room_id":"{}"}}}}"#,
                        self.rooms[r].id
                    );
                    self.text(k, &s);
                }
            }
            Some(b"ping") => self.text(k, r#"{"event":"pong","data":null}"#),
            _ => {}
        }
    }

    fn unsubscribe(&mut self, k: usize, r: usize) {
        let subs = &mut self.rooms[r].subs;
        if let Some(i) = subs.iter().position(|&s| s == k) {
            subs.swap_remove(i);
        }
        if let Some(c) = self.conns[k].as_mut() {
            c.rooms.retain(|&x| x != r);
        }
    }

    /// The messages of this round: one shared frame per room, queued on every
    /// socket of the room.
    fn fan_out(&mut self) {
        for r in 0..self.rooms.len() {
            if self.rooms[r].pending.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut self.rooms[r].pending);
            let mut payload =
                Vec::with_capacity(pending.iter().map(|m| m.len() + 1).sum::<usize>() + 40);
            if let [one] = &pending[..] {
                payload.extend_from_slice(br#"{"event":"new_message","data":"#);
                payload.extend_from_slice(one);
            } else {
                payload.extend_from_slice(br#"{"event":"new_message_batch","data":["#);
                for (i, m) in pending.iter().enumerate() {
                    if i > 0 {
                        payload.push(b',');
                    }
                    payload.extend_from_slice(m);
                }
                payload.push(b']');
            }
            payload.push(b'}');
            let f = frame(0x1, &payload);
            let subs = self.rooms[r].subs.clone();
            for k in subs {
                self.queue(k, f.clone());
            }
        }
    }

    /// Writes what a socket has queued, up to 64 frames per writev.
    fn flush(&mut self, k: usize) {
        let Some(c) = self.conns[k].as_mut() else {
            return;
        };
        while !c.out.is_empty() {
            let slices: Vec<IoSlice> = c
                .out
                .iter()
                .take(64)
                .enumerate()
                .map(|(i, f)| IoSlice::new(if i == 0 { &f[c.sent..] } else { f }))
                .collect();
            match c.sock.write_vectored(&slices) {
                Ok(0) => return self.dead.push(k),
                Ok(mut n) => {
                    c.queued = c.queued.saturating_sub(n);
                    while n > 0 {
                        let left = c.out[0].len() - c.sent;
                        if n >= left {
                            n -= left;
                            c.sent = 0;
                            c.out.pop_front();
                        } else {
                            c.sent += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.dead.push(k),
            }
        }
        if c.closing {
            self.dead.push(k);
        }
    }

    fn close(&mut self, k: usize) {
        let Some(mut c) = self.conns[k].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        for r in std::mem::take(&mut c.rooms) {
            let subs = &mut self.rooms[r].subs;
            if let Some(i) = subs.iter().position(|&s| s == k) {
                subs.swap_remove(i);
            }
        }
        self.free.push(k);
    }
}

/// SHA-1 (RFC 3174), for Sec-WebSocket-Accept only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn main() {
    let mut listen = "127.0.0.1:3000".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            _ => {
                eprintln!("usage: fanout-floor [--listen HOST:PORT]");
                std::process::exit(3);
            }
        }
    }
    util::raise_nofile_limit();
    let addr = listen.parse().unwrap_or_else(|e| {
        eprintln!("fanout-floor: --listen {listen}: {e}");
        std::process::exit(3)
    });
    let mut listener = TcpListener::bind(addr).unwrap_or_else(|e| {
        eprintln!("fanout-floor: bind {listen}: {e}");
        std::process::exit(3)
    });
    let poll = Poll::new().expect("poll");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register listener");
    println!("listening on {}", listener.local_addr().expect("address"));
    let _ = io::stdout().flush();
    let mut f = Floor {
        poll,
        conns: Vec::new(),
        free: Vec::new(),
        rooms: Vec::new(),
        room_index: HashMap::new(),
        usernames: Vec::new(),
        next_id: 0,
        dirty: Vec::new(),
        dead: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.poll.poll(&mut events, None)
            && e.kind() != io::ErrorKind::Interrupted
        {
            eprintln!("fanout-floor: poll: {e}");
            std::process::exit(1);
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => f.accept(&listener),
                Token(k) => {
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        f.readable(k, &mut scratch);
                    }
                    if ev.is_writable() {
                        f.dirty.push(k);
                    }
                }
            }
        }
        f.fan_out();
        let mut dirty = std::mem::take(&mut f.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &k in &dirty {
            f.flush(k);
        }
        dirty.clear();
        f.dirty = dirty;
        let mut dead = std::mem::take(&mut f.dead);
        dead.sort_unstable();
        dead.dedup();
        for &k in &dead {
            f.close(k);
        }
        dead.clear();
        f.dead = dead;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_accept_matches_rfc6455() {
        // The example of RFC 6455 section 1.3.
        let k = format!("dGhlIHNhbXBsZSBub25jZQ=={GUID}");
        assert_eq!(
            util::base64(&sha1(k.as_bytes())),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(util::base64(&sha1(b"")), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    }

    #[test]
    fn scans_fields_and_formats_times() {
        let p = br#"{"event":"send_message","data":{"room_id":"r1","client_msg_id":"3-0-9","content":"t=5 a \"q\" b"}}"#;
        assert_eq!(field(p, "event"), Some(&b"send_message"[..]));
        assert_eq!(field(p, "content"), Some(&br#"t=5 a \"q\" b"#[..]));
        assert_eq!(field(p, "nope"), None);
        let t = iso_now();
        assert!(
            t.len() == 24 && t.ends_with('Z') && t.starts_with("20"),
            "{t}"
        );
    }

    #[test]
    fn unmasks_client_frames() {
        let mut f = vec![0x81, 0x83, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2, b'c' ^ 3];
        let (fin, op, r, n) = client_frame(&mut f).unwrap().unwrap();
        assert_eq!((fin, op, &f[r], n), (true, 1, &b"abc"[..], 9));
        assert_eq!(client_frame(&mut [0x81, 0x83, 1]).unwrap(), None);
        assert!(client_frame(&mut [0x81, 0x03, 1, 2, 3]).is_err());
    }
}
