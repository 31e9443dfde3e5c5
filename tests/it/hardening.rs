//! What a hostile client found, each fixed at its cause: one test per finding, each
//! failing on the code before the fix (SECURITY.md maps them).

use crate::support::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// `chatd_http_requests_total` of `route` with status 200, read from /metrics.
fn answered(addr: &str, route: &str) -> u64 {
    let m = raw_request(addr, "GET", "/metrics", None, None);
    let text = String::from_utf8_lossy(&m.body).into_owned();
    let prefix = format!("chatd_http_requests_total{{route=\"{route}\",status=\"200\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The bytes of one whole answer (head and body) to `req` on a fresh connection.
fn answer_len(addr: &str, req: &[u8]) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the answer ended early");
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            if got.len() >= end + 4 + len {
                return end + 4 + len;
            }
        }
    }
}

/// (send queue, receive queue) of the TCP socket from `local` to `remote`, as
/// /proc/net/tcp shows them (bytes the kernel holds for it).
fn tcp_queues(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> (u64, u64) {
    let hex = |a: std::net::SocketAddr| {
        let std::net::IpAddr::V4(ip) = a.ip() else {
            panic!("IPv4 only")
        };
        format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), a.port())
    };
    let (l, r) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 4 && f[1] == l && f[2] == r {
            let (tx, rx) = f[4].split_once(':').unwrap();
            return (
                u64::from_str_radix(tx, 16).unwrap(),
                u64::from_str_radix(rx, 16).unwrap(),
            );
        }
    }
    panic!("no socket {l} -> {r} in /proc/net/tcp")
}

/// A client that pipelines thousands of requests and reads none of the answers makes the
/// server hold at most 256 KiB of answers for it (plus the one answer that crossed the
/// bound), and is dropped once it took nothing for the idle timeout. Measured from the
/// outside: every answer the server produced for the connection (its answered-request
/// counter times the answer's size) is either in the kernel (the server socket's send
/// queue and the client socket's receive queue, from /proc/net/tcp) or held by the
/// server; the difference is what the server holds. (Before: ~200 MB per such
/// connection, never closed.)
/// Fails if the bound is lifted: shown by raising `MAX_HTTP_QUEUED` in
/// `net::event_loop` to 64 MiB ("the server holds 64.0 MiB of answers for a client that
/// reads nothing (20000 requests sent, 1099 answered of 63803 bytes, ...)").
#[test]
fn pipelined_requests_from_a_client_that_never_reads_stay_bounded() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.http.idle_timeout_secs = 3;
        c.server.event_loops = 1;
    });
    let addr = node.addr();
    let req = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let one = answer_len(&addr, req) as u64;
    let before = answered(&addr, "GET /openapi.json");
    // A tiny receive window, set before connecting, so that answers pile up on the server.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let server: std::net::SocketAddr = addr.parse().unwrap();
    sock.connect(&server.into()).unwrap();
    let mut s: TcpStream = sock.into();
    let client = s.local_addr().unwrap();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut sent = 0u64;
    for _ in 0..20_000 {
        if s.write_all(req).is_err() {
            break; // the server stopped reading us: that is the point
        }
        sent += 1;
    }
    std::thread::sleep(Duration::from_millis(300));
    let produced = (answered(&addr, "GET /openapi.json") - before) * one;
    let (server_send, _) = tcp_queues(server, client);
    let (_, client_recv) = tcp_queues(client, server);
    let held = produced.saturating_sub(server_send + client_recv);
    eprintln!(
        "{sent} requests sent; {} answered ({produced} bytes): {server_send} in the server's send queue, {client_recv} in the client's receive queue, {held} held by the server",
        produced / one
    );
    assert!(
        sent > produced / one,
        "the server answered every request ({sent}): nothing was held back"
    );
    assert!(
        held <= 256 * 1024 + one,
        "the server holds {:.1} MiB of answers for a client that reads nothing ({sent} requests sent, {} answered of {one} bytes, kernel queues {server_send} + {client_recv})",
        held as f64 / (1 << 20) as f64,
        produced / one
    );
    // Nothing was read for the idle timeout: the server drops the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.handle.metrics.connections.load(Relaxed) > 0 {
        assert!(
            Instant::now() < deadline,
            "a peer that reads nothing is never dropped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Others are served meanwhile and after.
    assert_eq!(request(&addr, "GET", "/health", None, None).0, 200);
}

/// U+0000 is refused at the edge naming the field, and a row PostgreSQL refuses in the
/// batched writer fails alone: other users' messages in the same batch are stored.
/// (Before: 500 `internal`, and one bad message failed the whole batch.)
#[test]
fn a_bad_row_never_fails_another_users_message() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.database.writers = 1);
    let a = node.addr();
    let victim = register(&a, "victim");
    let evil = register(&a, "evil");
    let room = create_room(&a, &victim.token);
    join_room(&a, &evil.token, &room);
    // The edge: every field of every body, and message content over WebSocket.
    let (s, b) = request(
        &a,
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&evil.token),
        Some(&json!({"content": "a\u{0}b"})),
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_payload")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("content"), "{b}");
    let (s, b) = request(
        &a,
        "POST",
        "/rooms",
        Some(&evil.token),
        Some(&json!({"name": "x\u{0}y"})),
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_payload")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("name"), "{b}");
    let mut ev = Ws::connect(&a, &evil.token);
    ev.join(&room, None);
    ev.send(
        "send_message",
        json!({"room_id": room, "content": "\u{0}", "client_msg_id": "nul"}),
    );
    let e = ev.expect("error");
    assert_eq!(e["code"], "invalid_payload");

    // The writer: a row PostgreSQL refuses (here by a constraint standing in for any
    // data error) shares batches with 100 messages of another user.
    db.client()
        .batch_execute("ALTER TABLE messages ADD CONSTRAINT no_poison CHECK (content <> 'poison')")
        .unwrap();
    let mut vi = Ws::connect(&a, &victim.token);
    vi.join(&room, None);
    for i in 0..100 {
        vi.send(
            "send_message",
            json!({"room_id": room, "content": format!("v{i}"), "client_msg_id": format!("v{i}")}),
        );
        if i % 10 == 0 {
            ev.send(
                "send_message",
                json!({"room_id": room, "content": "poison", "client_msg_id": format!("p{i}")}),
            );
        }
    }
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked < 100 && Instant::now() < deadline {
        let Some(v) = vi.next_within(Duration::from_millis(500)) else {
            continue;
        };
        match v["event"].as_str() {
            Some("message_ack") => acked += 1,
            Some("error") => panic!("a victim got an error for another's input: {v}"),
            _ => {}
        }
    }
    assert_eq!(acked, 100);
    let mut poison_errors = 0;
    while let Some(v) = ev.next_within(Duration::from_millis(500)) {
        if v["event"] == "error" {
            poison_errors += 1;
        }
    }
    assert_eq!(
        poison_errors, 10,
        "each refused row is answered with an error"
    );
    let stored: i64 = db
        .client()
        .query_one("SELECT count(*) FROM messages WHERE content LIKE 'v%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, 100);
}

/// A client streaming small frames cannot starve its loop: requests on the same loop
/// are answered within a few milliseconds. (Before: 117 ms to 5 s.)
#[test]
fn a_socket_streaming_frames_does_not_starve_its_loop() {
    let _alone = alone();
    let db = TestDb::new();
    let node = start_with(&db, |c| c.server.event_loops = 1);
    let a = node.addr();
    let u = register(&a, "streamer");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let addr = a.clone();
    let streamer = std::thread::spawn(move || {
        let mut ws = Ws::connect(&addr, &u.token);
        // Unsolicited pongs are legal (RFC 6455 §5.5.3) and cost the server a frame each.
        let mut sent = 0u64;
        while !flag.load(Relaxed) {
            if ws
                .ws
                .write(tungstenite::Message::Pong(Vec::new().into()))
                .is_err()
            {
                break;
            }
            sent += 1;
            if sent.is_multiple_of(256) && ws.ws.flush().is_err() {
                break;
            }
        }
        sent
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut times = Vec::new();
    for _ in 0..40 {
        let t = Instant::now();
        assert_eq!(request(&a, "GET", "/health", None, None).0, 200);
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Relaxed);
    let sent = streamer.join().unwrap();
    times.sort();
    let p90 = times[times.len() * 9 / 10];
    assert!(sent > 10_000, "the streamer sent only {sent} frames");
    assert!(
        p90 < Duration::from_millis(25),
        "health p90 {p90:?} while a socket streams ({sent} frames); all: {times:?}"
    );
}

/// `/health` latencies, one every 10 ms, each started while `flooding` says the flood
/// still runs; at least 30 of them, or the flood outlasted too few (which the slowest
/// one tells).
fn latencies_during(
    addr: &str,
    flooding: &std::sync::atomic::AtomicBool,
    what: &str,
) -> Vec<Duration> {
    let mut times = Vec::new();
    while times.len() < 40 && flooding.load(Relaxed) {
        let t = Instant::now();
        assert_eq!(request(addr, "GET", "/health", None, None).0, 200);
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    times.sort();
    assert!(
        times.len() >= 30,
        "{what}: only {} /health answers during the flood, the slowest {:?}",
        times.len(),
        times.last()
    );
    times
}

/// A WebSocket streaming frames that cost the server a frame each and answer nothing
/// (typing_stop for a joined room with no typing going on), small ones (the 64-frame
/// budget) or of 200 KiB (the 256 KiB budget), and an HTTP client pipelining requests as
/// fast as it reads the answers (the 32-request budget): while each flood runs, another
/// client's `/health` on the same loop answers within 25 ms at p90 (30 answers at least,
/// each started during the flood).
/// Fails without each budget: shown by setting `READ_BUDGET` and `READ_BUDGET_BYTES` in
/// `ws::hub` and `HTTP_BUDGET` in `net::event_loop` to `usize::MAX` ("small frames: only
/// 1 /health answers during the flood, the slowest 1.35s"); `READ_BUDGET_BYTES` alone
/// ("200 KiB frames: only 18 /health answers during the flood, the slowest 80.9ms");
/// `HTTP_BUDGET` alone ("pipelining: only 15 /health answers during the flood, the
/// slowest 99.2ms").
#[test]
fn other_clients_are_served_during_each_flood() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let _alone = alone();
    let db = TestDb::new();
    let node = start_with(&db, |c| c.server.event_loops = 1);
    let a = node.addr();
    let u = register(&a, "flood");
    let room = create_room(&a, &u.token);
    for (what, pad) in [("small frames", 0usize), ("200 KiB frames", 200 * 1024)] {
        let flooding = Arc::new(AtomicBool::new(true));
        let (flag, addr, token, room) =
            (flooding.clone(), a.clone(), u.token.clone(), room.clone());
        let flooder = std::thread::spawn(move || {
            let mut ws = Ws::connect(&addr, &token);
            ws.join(&room, None);
            let frame =
                json!({"event": "typing_stop", "data": {"room_id": room, "pad": "p".repeat(pad)}})
                    .to_string();
            let started = Instant::now();
            let mut sent = 0u64;
            while started.elapsed() < Duration::from_millis(1500) {
                if ws
                    .ws
                    .write(tungstenite::Message::text(frame.clone()))
                    .is_err()
                {
                    break;
                }
                sent += 1;
                if sent.is_multiple_of(64) && ws.ws.flush().is_err() {
                    break;
                }
            }
            flag.store(false, Relaxed);
            sent
        });
        std::thread::sleep(Duration::from_millis(200));
        let times = latencies_during(&a, &flooding, what);
        let sent = flooder.join().unwrap();
        let p90 = times[times.len() * 9 / 10];
        eprintln!(
            "{what}: {sent} frames; /health p50 {:?} p90 {p90:?} max {:?}",
            times[times.len() / 2],
            times.last().unwrap()
        );
        assert!(sent > 1000, "{what}: the flooder sent only {sent} frames");
        assert!(
            p90 < Duration::from_millis(25),
            "{what}: /health p90 {p90:?} during the flood ({sent} frames); all: {times:?}"
        );
    }
    // HTTP: requests written as fast as the answers are read, on one connection.
    let flooding = Arc::new(AtomicBool::new(true));
    let s = TcpStream::connect(&a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let stop = flooding.clone();
    let writer = std::thread::spawn(move || {
        let burst = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_millis(1500) && w.write_all(&burst).is_ok() {
            sent += 64;
        }
        stop.store(false, Relaxed);
        sent
    });
    let reader = std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(s);
        let mut n = 0u64;
        while read_response(&mut r, false).is_some() {
            n += 1;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(200));
    let times = latencies_during(&a, &flooding, "pipelining");
    let sent = writer.join().unwrap();
    let p90 = times[times.len() * 9 / 10];
    eprintln!(
        "pipelining: {sent} requests; /health p50 {:?} p90 {p90:?} max {:?}",
        times[times.len() / 2],
        times.last().unwrap()
    );
    assert!(
        sent > 10_000,
        "the pipelining client sent only {sent} requests"
    );
    assert!(
        p90 < Duration::from_millis(25),
        "pipelining: /health p90 {p90:?} during the flood ({sent} requests); all: {times:?}"
    );
    drop(reader);
}

/// A second `join_room` on a joined socket keeps its place in the stream: no message is
/// skipped. (Before: the re-join restarted the socket at the room's head.)
#[test]
fn rejoining_a_joined_room_skips_nothing() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "rj");
    let bob = register(&a, "rjb");
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let mut rx = Ws::connect(&a, &bob.token);
    rx.join(&room, None);
    let head = room_head(&a, &alice.token, &room);
    let total = 400;
    let addr = a.clone();
    let (token, r) = (alice.token.clone(), room.clone());
    let sender = std::thread::spawn(move || {
        let mut c = Http::connect(&addr);
        for i in 0..total {
            post_message(&mut c, &token, &r, &format!("m{i}"));
        }
    });
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rejoins = 0;
    while seqs.len() < total && Instant::now() < deadline {
        if seqs.len() > rejoins * 40 && rejoins < 8 {
            rx.send("join_room", json!({"room_id": room}));
            rejoins += 1;
        }
        if let Some(v) = rx.next_within(Duration::from_millis(100)) {
            seqs.extend(message_seqs(&v));
        }
    }
    sender.join().unwrap();
    assert!(rejoins >= 5);
    assert_exact(&seqs, head + 1, head + total as i64);
}

/// Alternating typing_start and typing_stop relays at most one start (and its stop) a
/// second to the room. (Before: 14,200 typing frames in 2 s.)
#[test]
fn alternating_typing_start_and_stop_is_throttled() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (t, w) = (register(&a, "typer"), register(&a, "watcher"));
    let room = create_room(&a, &t.token);
    join_room(&a, &w.token, &room);
    let mut typer = Ws::connect(&a, &t.token);
    typer.join(&room, None);
    let mut watcher = Ws::connect(&a, &w.token);
    watcher.join(&room, None);
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        typer.send("typing_start", json!({"room_id": room}));
        typer.send("typing_stop", json!({"room_id": room}));
        sent += 2;
    }
    // Relayed starts carry the server's time: consecutive ones are a second apart, and
    // each stop follows a relayed start.
    let (mut starts, mut stops) = (Vec::new(), 0);
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        if let Some(v) = watcher.next_within(Duration::from_millis(100))
            && v["event"] == "typing"
        {
            if v["data"]["typing"] == true {
                let at = v["data"]["started_at"].as_str().unwrap().to_string();
                starts.push(chrono::DateTime::parse_from_rfc3339(&at).unwrap());
            } else {
                stops += 1;
            }
        }
    }
    assert!(sent > 200, "only {sent} events sent");
    assert!(!starts.is_empty(), "typing must still get through");
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(990),
            "two typing starts {gap} apart ({} starts, {stops} stops for {sent} events)",
            starts.len()
        );
    }
    assert!(
        stops <= starts.len(),
        "{stops} stops for {} starts",
        starts.len()
    );
}

fn register_as(addr: &str, username: &str, email: &str) -> (u16, Value) {
    request(
        addr,
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": username, "email": email, "password": "password123"})),
    )
}

/// Usernames are normalised and unique regardless of case; invisible, control, bidi and
/// mixed-script names are refused. (Before: each registered as a distinct user.)
#[test]
fn look_alike_usernames_are_one_name_or_refused() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (s, b) = register_as(&a, "  Zoe\u{301}  ", "z1@example.com");
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["user"]["username"], "Zo\u{e9}");
    for (name, email) in [
        ("zo\u{e9}", "z2@example.com"),
        ("ZOE\u{301}", "z3@example.com"),
        (" Zo\u{e9} ", "z4@example.com"),
    ] {
        let (s, b) = register_as(&a, name, email);
        assert_eq!(
            (s, b["code"].as_str()),
            (409, Some("username_taken")),
            "{name:?}"
        );
    }
    for (i, name) in [
        "     ",
        "zo\u{200b}e",
        "zoe\u{202e}",
        "zo\u{7}e",
        "p\u{430}ypal",
        "\u{feff}zoe2",
    ]
    .iter()
    .enumerate()
    {
        let (s, b) = register_as(&a, name, &format!("bad{i}@example.com"));
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("validation_failed")),
            "{name:?}: {b}"
        );
    }
}

/// Registration is rate-limited per address, and a taken address or username is refused
/// before any password is hashed. (Before: no limit, and every attempt paid for argon2.)
/// Fails if a taken username is found only after hashing: shown by hashing the password
/// before the duplicate check in `accounts::register` ("4 registrations of a taken
/// username took ...").
#[test]
fn registration_is_limited_and_duplicates_cost_no_hash() {
    let db = TestDb::new();
    // A deliberately expensive hash makes the work visible.
    let node = start_with(&db, |c| {
        c.limits.register_per_ip_per_min = 9;
        c.auth.argon2_memory_kib = 65536;
        c.auth.argon2_iterations = 4;
    });
    let a = node.addr();
    let t = Instant::now();
    assert_eq!(register_as(&a, "first", "first@example.com").0, 201);
    let one_hash = t.elapsed();
    let t = Instant::now();
    for i in 0..4 {
        let (s, b) = register_as(&a, &format!("other{i}"), "first@example.com");
        assert_eq!((s, b["code"].as_str()), (409, Some("email_taken")));
    }
    assert!(
        t.elapsed() < one_hash * 2,
        "4 duplicate registrations took {:?}, one hash {one_hash:?}",
        t.elapsed()
    );
    // A taken username, with a fresh address each time, costs no hash either.
    let t = Instant::now();
    for i in 0..4 {
        let (s, b) = register_as(&a, "first", &format!("fresh{i}@example.com"));
        assert_eq!((s, b["code"].as_str()), (409, Some("username_taken")));
    }
    assert!(
        t.elapsed() < one_hash * 2,
        "4 registrations of a taken username took {:?}, one hash {one_hash:?}",
        t.elapsed()
    );
    let r = raw_request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(
            &json!({"username": "tenth", "email": "tenth@example.com", "password": "password123"}),
        ),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (429, Some("rate_limited"))
    );
    assert!(r.header("retry-after").is_some());
}

fn login_from(addr: &str, xff: &str, email: &str, password: &str) -> u16 {
    let body = json!({"email": email, "password": password}).to_string();
    let mut c = Http::connect(addr);
    c.send_raw(
        format!(
            "POST /auth/login HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {xff}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    c.read().expect("a response").status
}

/// Wrong passwords from one address do not lock the owner out from another; the
/// account-wide bound is much higher. (Before: 10 wrong passwords locked the owner out.)
#[test]
fn a_guesser_does_not_lock_the_owner_out() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.limits.trust_forwarded_for = true;
        c.limits.login_per_account_ip_per_min = 3;
        c.limits.login_per_account_per_min = 20;
    });
    let a = node.addr();
    let u = register(&a, "owner");
    let email = format!("{}@example.com", u.username);
    let codes: Vec<u16> = (0..6)
        .map(|_| login_from(&a, "10.0.0.66", &email, "wrong-password"))
        .collect();
    assert_eq!(codes, vec![401, 401, 401, 429, 429, 429]);
    assert_eq!(login_from(&a, "10.0.0.7", &email, "password123"), 201);
    // Many addresses together still meet the account-wide bound.
    let spread: Vec<u16> = (0..30)
        .map(|i| login_from(&a, &format!("10.1.0.{i}"), &email, "wrong-password"))
        .collect();
    assert!(spread.contains(&429), "{spread:?}");
}

fn refresh(addr: &str, token: &str) -> (u16, Value) {
    request(
        addr,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": token})),
    )
}

/// Two refreshes of one token at once (two tabs, a retried request) get the same new
/// pair and keep the session; a reuse after the grace window is still theft. (Before:
/// the second refresh revoked the session.)
#[test]
fn parallel_refreshes_share_one_rotation() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.auth.refresh_grace_secs = 2);
    let a = node.addr();
    let u = register(&a, "tabs");
    let results: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| refresh(&a, &u.refresh)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (s, b) in &results {
        assert_eq!(*s, 201, "{b}");
    }
    let next = results[0].1["tokens"]["refreshToken"].as_str().unwrap();
    assert_eq!(results[1].1["tokens"]["refreshToken"].as_str(), Some(next));
    let access = results[1].1["tokens"]["accessToken"].as_str().unwrap();
    assert_eq!(request(&a, "GET", "/rooms", Some(access), None).0, 200);
    // The successor rotates normally.
    let (s, b) = refresh(&a, next);
    assert_eq!(s, 201, "{b}");
    let third = b["tokens"]["refreshToken"].as_str().unwrap().to_string();
    // The first token once more, after the window: theft, the session ends.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(refresh(&a, &u.refresh).0, 401);
    assert_eq!(refresh(&a, &third).0, 401);
}

/// `Content-Length` is digits only, and a WebSocket key must be 16 bytes of base64.
/// (Before: `+2` was read as 2, and `!!!…==` accepted.)
#[test]
fn lenient_framing_is_refused() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let mut s = TcpStream::connect(&a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}")
        .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let u = register(&a, "keys");
    let mut s = TcpStream::connect(&a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!(
            "GET /ws?token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n\r\n",
            u.token
        )
        .as_bytes(),
    )
    .unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
