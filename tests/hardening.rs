//! What a hostile client found, each fixed at its cause: one test per finding, each
//! failing on the code before the fix (SECURITY.md maps them).

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use support::*;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc is readable");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// A client that pipelines thousands of requests and reads none of the answers costs a
/// bounded amount of memory, and is dropped once it took nothing for the idle timeout.
/// (Before: ~200 MB per such connection, never closed.)
#[test]
fn pipelined_requests_from_a_client_that_never_reads_stay_bounded() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.http.idle_timeout_secs = 2;
        c.server.event_loops = 1;
    });
    let before = rss_kib();
    let mut s = TcpStream::connect(node.addr()).unwrap();
    // Keep our receive window tiny so that the answers pile up on the server.
    let sock = socket2::SockRef::from(&s);
    sock.set_recv_buffer_size(4096).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut sent = 0;
    for _ in 0..10_000 {
        if s.write_all(req).is_err() {
            break; // the server stopped reading us: that is the point
        }
        sent += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB after {sent} unread pipelined requests"
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
    assert_eq!(request(&node.addr(), "GET", "/health", None, None).0, 200);
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

/// Registration is rate-limited per address, and a taken address is refused before any
/// password is hashed. (Before: no limit, and every attempt paid for argon2.)
#[test]
fn registration_is_limited_and_duplicates_cost_no_hash() {
    let db = TestDb::new();
    // A deliberately expensive hash makes the work visible.
    let node = start_with(&db, |c| {
        c.limits.register_per_ip_per_min = 5;
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
    let r = raw_request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(
            &json!({"username": "sixth", "email": "sixth@example.com", "password": "password123"}),
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
