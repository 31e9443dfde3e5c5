//! Several nodes on one database, and the faults a node must survive.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

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
    assert_eq!(p["node_id"], n2.handle.node_id.as_str());
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

    // Bob has two sockets: closing one keeps him online.
    drop(wb3);
    std::thread::sleep(Duration::from_millis(500));
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
    assert_eq!(bob_row["online"], true, "{members}");

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

#[test]
fn slow_consumer_is_closed_and_others_are_not_delayed() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.websocket.max_outbound_bytes = 1024 * 1024);
    let a = node.addr();
    let u = register(&a, "slow");
    let room = create_room(&a, &u.token);
    // The slow one joins and then never reads; its kernel buffers fill, then our queue.
    let mut slow = Ws::connect_small_rcvbuf(&a, &u.token);
    slow.join(&room, None);
    let mut fast = Ws::connect(&a, &u.token);
    fast.join(&room, None);
    let body = "z".repeat(4000);
    let total = 3000;
    let (addr, token, room2) = (a.clone(), u.token.clone(), room.clone());
    // The sender runs beside the fast reader, which keeps reading all along.
    let sender = std::thread::spawn(move || {
        let mut s = Ws::connect(&addr, &token);
        for i in 0..total {
            s.send("send_message", json!({"room_id": room2, "content": body}));
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        s
    });
    let seqs = fast.collect_seqs(total, Duration::from_secs(30));
    let _s = sender.join().unwrap();
    if seqs.len() != total {
        eprintln!(
            "next: {:?}",
            fast.next_within(Duration::from_secs(1))
                .map(|v| v["event"].clone())
        );
        let m = raw_request(&a, "GET", "/metrics", None, None);
        let text = String::from_utf8(m.body).unwrap();
        for l in text.lines().filter(|l| {
            !l.starts_with('#')
                && !l.contains("bucket")
                && (l.contains("slow") || l.contains("deliver") || l.contains("websockets"))
        }) {
            eprintln!("{l}");
        }
    }
    assert_exact(&seqs, 1, total as i64);
    assert!(
        node.handle
            .metrics
            .slow_consumer_closes
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // The slow socket got a prefix in order, then a 1013 close: nothing skipped silently.
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        assert!(
            Instant::now() < deadline,
            "slow consumer never closed; read up to {last}; closes {}",
            node.handle
                .metrics
                .slow_consumer_closes
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        let Some(v) = slow.next_within(Duration::from_millis(500)) else {
            continue;
        };
        for seq in message_seqs(&v) {
            assert_eq!(seq, last + 1);
            last = seq;
        }
        if v["event"] == "__close" {
            break v["data"]["code"].as_u64();
        }
        if v["event"] == "__closed" || v["event"] == "__error" {
            break None;
        }
    };
    assert!(code == Some(1013) || code.is_none(), "{code:?}");
    assert!(last < total as i64);
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
    assert_eq!(
        (p["status"].as_str(), p["node_id"].as_str()),
        (Some("offline"), Some("dead-node"))
    );
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
