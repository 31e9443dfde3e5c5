//! Several nodes on one database, and the faults a node must survive.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Delivery, presence, typing and revocation across three nodes. A user with a socket
/// on each of two nodes stays online through the whole window after one closes.
/// Fails if closing one socket drops the user's presence on another node: shown by
/// deleting the user's presence rows of every node in `presence::apply` ("alice heard
/// bob leave 15ms after one of his two sockets closed: {...status: offline...}").
#[test]
fn cross_node_delivery_presence_typing_and_revocation() {
    let db = TestDb::new();
    // No refresh grace: the reuse below must count as theft at once.
    let no_grace = |c: &mut chatd::config::Config| c.auth.refresh_grace_secs = 0;
    let n1 = start_with(&db, no_grace);
    let n2 = start_with(&db, no_grace);
    let n3 = start_with(&db, no_grace);
    let (a1, a2, a3) = (n1.addr(), n2.addr(), n3.addr());
    let alice = register(&a1, "alice");
    let bob = register(&a2, "bob");
    let room = create_room(&a1, &alice.token);
    join_room(&a2, &bob.token, &room);

    let mut wa = Ws::connect(&a1, &alice.token);
    wa.join(&room, None);
    let mut wb = Ws::connect(&a2, &bob.token);
    wb.join(&room, None);
    // Alice (node 1) sees Bob come online on node 2.
    let p = wa.expect_where("presence", |p| p["user_id"] == bob.id.as_str());
    assert_eq!(p["status"], "online");
    // Which node holds the socket is the server's business (PROTOCOL.md §6.4).
    assert!(p.get("node_id").is_none(), "{p}");
    let mut wb3 = Ws::connect(&a3, &bob.token);
    wb3.join(&room, None);

    // A message posted over REST on node 3 reaches sockets on every node.
    let (s, _) = request(
        &a3,
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&alice.token),
        Some(&json!({"content": "hi all"})),
    );
    assert_eq!(s, 201);
    for w in [&mut wa, &mut wb, &mut wb3] {
        assert_eq!(w.expect("new_message")["content"], "hi all");
    }
    wb.send("typing_start", json!({"room_id": room}));
    assert_eq!(wa.expect("typing")["user_id"], bob.id.as_str());

    // Bob has two sockets: closing one keeps him online, at every moment of the next
    // two heartbeats: the member list says online each time it is read, and alice's
    // socket hears no offline presence and no user_left for him.
    wa.drain(Duration::from_millis(200));
    drop(wb3);
    let window = Instant::now();
    let mut reads = 0;
    while window.elapsed() < Duration::from_millis(2500) {
        let (_, members) = request(
            &a1,
            "GET",
            &format!("/rooms/{room}/members"),
            Some(&alice.token),
            None,
        );
        let bob_row = members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == bob.id.as_str())
            .unwrap()
            .clone();
        assert_eq!(
            bob_row["online"],
            true,
            "bob offline {:?} after closing one of two sockets: {members}",
            window.elapsed()
        );
        reads += 1;
        if let Some(v) = wa.next_within(Duration::from_millis(50)) {
            let about_bob = v["data"]["user_id"] == bob.id.as_str();
            let gone = v["event"] == "user_left"
                || (v["event"] == "presence" && v["data"]["status"] != "online");
            assert!(
                !(about_bob && gone),
                "alice heard bob leave {:?} after one of his two sockets closed: {v}",
                window.elapsed()
            );
        }
    }
    assert!(reads >= 10, "only {reads} reads of the member list");

    // Logout on node 1 closes Bob's socket on node 2 within a second.
    let started = Instant::now();
    assert_eq!(
        request(&a1, "POST", "/auth/logout", Some(&bob.token), None).0,
        201
    );
    let closed = wb.next_within(Duration::from_secs(2)).unwrap();
    assert_eq!(
        (closed["event"].as_str(), closed["data"]["code"].as_u64()),
        (Some("__close"), Some(1008)),
        "{closed}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    // Node 3 learns it from its own listener: within the same second.
    while request(&a3, "GET", "/rooms", Some(&bob.token), None).0 != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node 3 still accepts a revoked token"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And his last socket gone, Alice hears him leave.
    wa.expect_where("user_left", |l| l["user_id"] == bob.id.as_str());
}

#[test]
fn listener_backend_killed_during_a_stream_loses_nothing() {
    let db = TestDb::new();
    let n1 = start(&db);
    let n2 = start(&db);
    let u = register(&n1.addr(), "kill");
    let room = create_room(&n1.addr(), &u.token);
    let mut receivers = [
        Ws::connect(&n1.addr(), &u.token),
        Ws::connect(&n2.addr(), &u.token),
    ];
    for r in receivers.iter_mut() {
        r.join(&room, None);
    }
    let total = 1500;
    let (addr, token, room2) = (n2.addr(), u.token.clone(), room.clone());
    let sender = std::thread::spawn(move || {
        let mut s = Ws::connect(&addr, &token);
        for i in 0..total {
            s.send("send_message", json!({"room_id": room2, "content": format!("k{i}"), "client_msg_id": format!("k{i}")}));
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut acked = 0;
        while acked < total {
            let v = s
                .next_within(Duration::from_secs(20))
                .expect("acks keep coming");
            if v["event"] == "message_ack" {
                acked += 1;
            }
        }
    });
    let mut admin = db.client();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(60));
        admin
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'chatd-listener'", &[])
            .unwrap();
    }
    sender.join().unwrap();
    for r in receivers.iter_mut() {
        let seqs = r.collect_seqs(total as usize, Duration::from_secs(30));
        assert_exact(&seqs, 1, total);
    }
    assert!(
        n1.handle
            .metrics
            .listener_reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

/// The `q`-quantile of `xs` (sorted in place).
fn quantile(xs: &mut [Duration], q: f64) -> Duration {
    xs.sort();
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}

/// Reads `w` until its close frame: asserts the messages before it continue from seq 0
/// in order, and returns (close code, last seq read).
fn read_until_close(w: &mut Ws, within: Duration) -> (Option<u64>, i64) {
    let mut last = 0;
    let deadline = Instant::now() + within;
    loop {
        assert!(
            Instant::now() < deadline,
            "no close frame within {within:?}; read up to seq {last}"
        );
        let Some(v) = w.next_within(Duration::from_millis(500)) else {
            continue;
        };
        for seq in message_seqs(&v) {
            assert_eq!(seq, last + 1, "a gap before the close");
            last = seq;
        }
        match v["event"].as_str() {
            Some("__close") => return (v["data"]["code"].as_u64(), last),
            Some("__closed") | Some("__error") => return (None, last),
            _ => {}
        }
    }
}

/// Slow readers are closed with 1013 (the code is read on the wire, after every message
/// they were sent, in order), and a fast reader on the same loop keeps getting every
/// message promptly while they are closed.
/// Fails if the close code is not 1013: shown by closing slow consumers with 1008 in
/// `Hub::slow_close` (the assertion on the code failed). Fails if slow consumers delay
/// the others: shown by sleeping 100 ms in `EventLoop::flush` whenever a WebSocket's
/// write is blocked (a loop that waits for its slow sockets): the fast reader's p90
/// rose to 700-900 ms. A 20 ms wait is within this machine's noise and not caught.
#[test]
fn slow_consumer_is_closed_and_others_are_not_delayed() {
    let _alone = alone();
    let db = TestDb::new();
    // One loop: the slow sockets and the fast one share it, so any wait for the slow
    // ones would show in the fast one's latency.
    let node = start_with(&db, |c| {
        c.websocket.max_outbound_bytes = 1024 * 1024;
        c.server.event_loops = 1;
    });
    let a = node.addr();
    let u = register(&a, "slow");
    let room = create_room(&a, &u.token);
    // The slow ones join and then never read; their kernel buffers fill, then our queue.
    let mut slow: Vec<Ws> = (0..3)
        .map(|_| {
            let mut w = Ws::connect_small_rcvbuf(&a, &u.token);
            w.join(&room, None);
            w
        })
        .collect();
    let mut fast = Ws::connect(&a, &u.token);
    fast.join(&room, None);
    // 16 MB of messages: each slow socket fills the kernel's buffers and the 1 MiB bound
    // after about a third of them.
    let total = 1000;
    let t0 = Instant::now();
    let (addr, token, room2) = (a.clone(), u.token.clone(), room.clone());
    // The sender runs beside the fast reader, which keeps reading all along. Each message
    // carries the time it was sent (µs since t0), so the reader can tell its latency.
    let sender = std::thread::spawn(move || {
        let mut s = Ws::connect(&addr, &token);
        let pad = "z".repeat(16_000);
        for i in 0..total {
            let sent = t0.elapsed().as_micros();
            s.send(
                "send_message",
                json!({"room_id": room2, "content": format!("{sent}:{pad}")}),
            );
            // 200 a second: the node has room to spare, so latency is its own.
            if i % 2 == 1 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        s
    });
    let mut seqs = Vec::new();
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seqs.len() < total && Instant::now() < deadline {
        let Some(v) = fast.next_within(Duration::from_millis(200)) else {
            continue;
        };
        let now = t0.elapsed();
        let msgs = match v["event"].as_str() {
            Some("new_message") => vec![v["data"].clone()],
            Some("new_message_batch") => v["data"].as_array().cloned().unwrap_or_default(),
            _ => vec![],
        };
        for m in msgs {
            seqs.push(m["seq"].as_i64().unwrap());
            let content = m["content"].as_str().unwrap();
            let sent: u64 = content[..content.find(':').unwrap()].parse().unwrap();
            latencies.push(now.saturating_sub(Duration::from_micros(sent)));
        }
    }
    let _s = sender.join().unwrap();
    assert_exact(&seqs, 1, total as i64);
    let closes = node
        .handle
        .metrics
        .slow_consumer_closes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(closes >= 3, "every slow consumer closed ({closes})");
    let (p50, p90, p99, max) = (
        quantile(&mut latencies, 0.5),
        quantile(&mut latencies, 0.9),
        quantile(&mut latencies, 0.99),
        quantile(&mut latencies, 1.0),
    );
    eprintln!("fast reader latency: p50 {p50:?}, p90 {p90:?}, p99 {p99:?}, max {max:?}");
    // Seen here: p90 about 30 ms alone, and up to 373 ms (p99 497 ms) while the whole
    // suite shares the two cores; with the loop waiting 100 ms per blocked write, p90
    // over 700 ms and p99 over 900 ms. The bound sits between the two.
    assert!(
        p90 < Duration::from_millis(500) && p99 < Duration::from_millis(800),
        "the fast reader was delayed: p50 {p50:?}, p90 {p90:?}, p99 {p99:?}, max {max:?}"
    );
    // Each slow socket got a prefix in order, then a 1013 close frame: nothing skipped
    // silently, and the code on the wire says why.
    for w in slow.iter_mut() {
        let (code, last) = read_until_close(w, Duration::from_secs(20));
        assert_eq!(code, Some(1013), "close code after seq {last}");
        assert!(last < total as i64);
    }
}

#[test]
fn graceful_shutdown_acks_queued_writes_then_closes_with_1001() {
    let db = TestDb::new();
    let mut node = start(&db);
    let a = node.addr();
    let u = register(&a, "bye");
    let room = create_room(&a, &u.token);
    let mut s = Ws::connect(&a, &u.token);
    for i in 0..300 {
        s.send(
            "send_message",
            json!({"room_id": room, "content": format!("q{i}"), "client_msg_id": format!("q{i}")}),
        );
    }
    std::thread::sleep(Duration::from_millis(20));
    let stopper = std::thread::spawn(move || {
        node.handle.shutdown();
        node
    });
    let mut acks = 0;
    let code = loop {
        let v = s
            .next_within(Duration::from_secs(15))
            .expect("frames until close");
        match v["event"].as_str() {
            Some("message_ack") => acks += 1,
            Some("__close") => break v["data"]["code"].as_u64(),
            Some("__closed") | Some("__error") => break None,
            _ => {}
        }
    };
    let _node = stopper.join().unwrap();
    assert_eq!(code, Some(1001));
    let stored: i64 = db
        .client()
        .query_one("SELECT count(*) FROM messages", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        acks, stored,
        "every stored message was acknowledged before the close"
    );
    assert!(acks > 0);
}

#[test]
fn a_dead_nodes_presence_is_cleared_and_announced() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "alive");
    let ghost = register(&a, "ghost");
    let room = create_room(&a, &alice.token);
    join_room(&a, &ghost.token, &room);
    let mut w = Ws::connect(&a, &alice.token);
    w.join(&room, None);
    // A node that stopped heartbeating a minute ago, with the ghost online through it.
    let mut c = db.client();
    c.execute("INSERT INTO nodes (node_id, heartbeat_at) VALUES ('dead-node', now() - interval '1 minute')", &[]).unwrap();
    let gid = uuid::Uuid::parse_str(&ghost.id).unwrap();
    let rid = uuid::Uuid::parse_str(&room).unwrap();
    c.execute("INSERT INTO presence (node_id, room_id, user_id, username) VALUES ('dead-node', $1, $2, $3)", &[&rid, &gid, &ghost.username]).unwrap();
    let p = w.expect_where("presence", |p| p["user_id"] == ghost.id.as_str());
    assert_eq!(p["status"], "offline");
    w.expect_where("user_left", |l| l["user_id"] == ghost.id.as_str());
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM presence WHERE node_id = 'dead-node'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// The next close frame's code on `w`, within `within` (other frames are skipped).
fn close_code(w: &mut Ws, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let Some(v) = w.next_within(Duration::from_millis(100)) else {
            continue;
        };
        match v["event"].as_str() {
            Some("__close") => return v["data"]["code"].as_u64(),
            Some("__closed") | Some("__error") => return None,
            _ => {}
        }
    }
    None
}

/// A reused refresh token ends its session on every node: the session's sockets on both
/// nodes (opened with the first access token and with the rotated one) are closed with
/// 1008 within a second, its tokens stop working everywhere, and another session of the
/// same user keeps its sockets.
/// Fails if the reuse is not published to the other nodes: shown by removing the
/// `notify::publish` of the revocation from `accounts::refresh` (the socket on node 1
/// got no close frame).
#[test]
fn refresh_token_reuse_closes_the_sessions_sockets_on_every_node() {
    let db = TestDb::new();
    // No refresh grace: within the default 10 s a second refresh of the same token is a
    // retry answered with the same pair, by design; here it must count as theft.
    let no_grace = |c: &mut chatd::config::Config| c.auth.refresh_grace_secs = 0;
    let n1 = start_with(&db, no_grace);
    let n2 = start_with(&db, no_grace);
    let (a1, a2) = (n1.addr(), n2.addr());
    let u = register(&a1, "reuse");
    // A second session of the same user, which must survive.
    let (s, b) = request(
        &a2,
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": format!("{}@example.com", u.username), "password": "password123"})),
    );
    assert_eq!(s, 201, "{b}");
    let other = b["tokens"]["accessToken"].as_str().unwrap().to_string();
    let room = create_room(&a1, &u.token);
    // The stolen session: a socket on each node with its first access token.
    let mut doomed = vec![Ws::connect(&a1, &u.token), Ws::connect(&a2, &u.token)];
    // The owner refreshes on node 1, and opens a socket on node 2 with the new token.
    let (s, b) = request(
        &a1,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": u.refresh})),
    );
    assert_eq!(s, 201, "{b}");
    let rotated = b["tokens"]["accessToken"].as_str().unwrap().to_string();
    doomed.push(Ws::connect(&a2, &rotated));
    let mut kept = [Ws::connect(&a1, &other), Ws::connect(&a2, &other)];
    for w in doomed.iter_mut().chain(kept.iter_mut()) {
        w.join(&room, None);
    }
    // The thief presents the old token on node 2.
    let started = Instant::now();
    let (s, b) = request(
        &a2,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": u.refresh})),
    );
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{b}");
    for (i, w) in doomed.iter_mut().enumerate() {
        let code = close_code(w, Duration::from_secs(2));
        assert_eq!(code, Some(1008), "socket {i} of the reused session");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closing took {:?}",
        started.elapsed()
    );
    for addr in [&a1, &a2] {
        for t in [&u.token, &rotated] {
            assert_eq!(request(addr, "GET", "/rooms", Some(t), None).0, 401);
        }
        assert_eq!(request(addr, "GET", "/rooms", Some(&other), None).0, 200);
    }
    for (i, w) in kept.iter_mut().enumerate() {
        w.send("ping", json!(i));
        assert_eq!(w.expect("pong"), json!(i), "the other session's socket {i}");
    }
}
