//! WebSocket: upgrade, every event and error, ordering, catch-up, large messages.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

#[test]
fn upgrade_requires_a_valid_token() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "up");
    let upgrade = |path: &str, extra: &str| {
        let mut c = Http::connect(&a);
        c.send_raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").as_bytes());
        c.read().map(|r| r.status)
    };
    assert_eq!(upgrade("/ws", ""), Some(401));
    assert_eq!(upgrade("/ws?token=garbage", ""), Some(401));
    assert_eq!(upgrade(&format!("/ws?token={}", u.token), ""), Some(101));
    assert_eq!(
        upgrade("/ws", &format!("Authorization: Bearer {}\r\n", u.token)),
        Some(101)
    );
    // Not an upgrade at all.
    assert_eq!(
        request(&a, "GET", &format!("/ws?token={}", u.token), None, None).0,
        426
    );
}

#[test]
fn events_errors_and_acks() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "alice");
    let bob = register(&a, "bob");
    let room = create_room(&a, &alice.token);
    let mut wa = Ws::connect(&a, &alice.token);
    let mut wb = Ws::connect(&a, &bob.token);

    // Bad frames: one error each, the socket stays usable.
    wb.send_text("not json");
    assert_eq!(wb.expect("error")["code"], "invalid_json");
    wb.send("dance", json!({}));
    assert_eq!(wb.expect("error")["code"], "unknown_event");
    wb.send("join_room", json!({"room_id": 5}));
    assert_eq!(wb.expect("error")["code"], "invalid_payload");
    wb.ws
        .send(tungstenite::Message::binary(vec![1, 2, 3]))
        .unwrap();
    assert_eq!(wb.expect("error")["code"], "invalid_payload");
    wb.send("ping", json!({"n": 1}));
    assert_eq!(wb.expect("pong"), json!({"n": 1}));

    // Membership is checked before anything is delivered.
    wb.send("join_room", json!({"room_id": room}));
    assert_eq!(wb.expect("error")["code"], "not_member");
    wb.send(
        "join_room",
        json!({"room_id": "00000000-0000-7000-8000-000000000000"}),
    );
    assert_eq!(wb.expect("error")["code"], "room_not_found");
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "sneaky"}),
    );
    assert_eq!(wb.expect("error")["code"], "not_member");
    wb.send("typing_start", json!({"room_id": room}));
    assert_eq!(wb.expect("error")["code"], "not_member");

    assert_eq!(wa.join(&room, None), None);
    wa.send("send_message", json!({"room_id": room, "content": "first"}));
    let m = wa.expect("new_message");
    assert_eq!(
        (m["seq"].as_i64(), m["content"].as_str()),
        (Some(1), Some("first"))
    );
    // Bob was never subscribed: nothing reached him.
    assert!(wb.next_within(Duration::from_millis(300)).is_none());

    join_room(&a, &bob.token, &room);
    let history = wb.join(&room, Some(0)).expect("history frame");
    // The message, then Bob's join as a system entry.
    let msgs = history["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0]["kind"].as_str(), msgs[1]["kind"].as_str()),
        (Some("message"), Some("system"))
    );
    assert_eq!(msgs[1]["data"]["type"], "joined");
    assert_eq!(msgs[1]["data"]["user_id"], bob.id.as_str());
    assert_eq!(history["next_cursor"], 2);
    assert_eq!(history["has_more"], false);
    wa.expect_where("user_joined", |j| j["user_id"] == bob.id.as_str());

    // send_message with client_msg_id: ack once committed, retry stores nothing new.
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "hello", "client_msg_id": "c-1"}),
    );
    let ack = wb.expect("message_ack");
    assert_eq!(
        (ack["client_msg_id"].as_str(), ack["seq"].as_i64()),
        (Some("c-1"), Some(3))
    );
    // Alice, joined all along, got Bob's join entry (seq 2) live before.
    let live = wa.expect_where("new_message", |m| m["seq"] != 2);
    assert_eq!(
        (live["seq"].as_i64(), live["client_msg_id"].as_str()),
        (Some(3), Some("c-1"))
    );
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "hello", "client_msg_id": "c-1"}),
    );
    let again = wb.expect("message_ack");
    assert_eq!(
        (again["id"].clone(), again["seq"].as_i64()),
        (ack["id"].clone(), Some(3))
    );
    let count: i64 = db
        .client()
        .query_one("SELECT count(*) FROM messages WHERE kind = 'message'", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 2);

    // Too long: its own code.
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "x".repeat(65537), "client_msg_id": "c-2"}),
    );
    let e = wb.expect("error");
    assert_eq!(e["code"], "message_too_long");

    // Typing goes to the others, with typing: true then false.
    wb.send("typing_start", json!({"room_id": room}));
    let t = wa.expect("typing");
    assert_eq!(
        (t["user_id"].as_str(), t["typing"].as_bool()),
        (Some(bob.id.as_str()), Some(true))
    );
    wb.send("typing_stop", json!({"room_id": room}));
    assert_eq!(wa.expect("typing")["typing"], false);

    // Leaving stops live delivery.
    wa.send("leave_room", json!({"room_id": room}));
    wa.expect("left_room");
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "after leave"}),
    );
    wb.expect("new_message");
    let leaked = wa.next_within(Duration::from_millis(500));
    assert!(
        leaked.is_none() || leaked.as_ref().unwrap()["event"] != "new_message",
        "{leaked:?}"
    );
}

#[test]
fn oversize_frames_close_with_1009() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.websocket.max_message_bytes = 4096);
    let a = node.addr();
    let u = register(&a, "big");
    let mut w = Ws::connect(&a, &u.token);
    w.send_text(&"x".repeat(10_000));
    let v = w.next_within(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["data"]["code"].as_u64()),
        (Some("__close"), Some(1009)),
        "{v}"
    );
}

#[test]
fn burst_of_1000_arrives_complete_in_order_once() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "burst");
    let room = create_room(&a, &u.token);
    let mut receivers: Vec<Ws> = (0..3).map(|_| Ws::connect(&a, &u.token)).collect();
    for r in receivers.iter_mut() {
        r.join(&room, None);
    }
    let mut sender = Ws::connect(&a, &u.token);
    for i in 0..1000 {
        sender.send(
            "send_message",
            json!({"room_id": room, "content": format!("b{i}")}),
        );
    }
    for r in receivers.iter_mut() {
        let seqs = r.collect_seqs(1000, Duration::from_secs(30));
        assert_exact(&seqs, 1, 1000);
    }
}

#[test]
fn join_with_last_seen_seq_mid_stream_is_exact() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "mid");
    let room = create_room(&a, &u.token);
    let total = 600;
    let (addr, token, room2) = (a.clone(), u.token.clone(), room.clone());
    let sender = std::thread::spawn(move || {
        let mut s = Ws::connect(&addr, &token);
        for i in 0..total {
            s.send(
                "send_message",
                json!({"room_id": room2, "content": format!("s{i}")}),
            );
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        s
    });
    // Join several times while the stream runs, each from a different point.
    std::thread::sleep(Duration::from_millis(40));
    let mut late = Vec::new();
    for last_seen in [0i64, 3, 10] {
        let mut w = Ws::connect(&a, &u.token);
        w.send(
            "join_room",
            json!({"room_id": room, "last_seen_seq": last_seen}),
        );
        late.push((w, last_seen));
        std::thread::sleep(Duration::from_millis(30));
    }
    let _s = sender.join().unwrap();
    for (mut w, last_seen) in late {
        let seqs = w.collect_seqs((total - last_seen) as usize, Duration::from_secs(30));
        assert_exact(&seqs, last_seen + 1, total);
    }
}

#[test]
fn more_than_a_page_missed_says_has_more_then_catches_up() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "page");
    let room = create_room(&a, &u.token);
    let mut s = Ws::connect(&a, &u.token);
    for i in 0..250 {
        s.send(
            "send_message",
            json!({"room_id": room, "content": format!("p{i}"), "client_msg_id": format!("p{i}")}),
        );
    }
    for _ in 0..250 {
        s.expect("message_ack");
    }
    let mut w = Ws::connect(&a, &u.token);
    w.send("join_room", json!({"room_id": room, "last_seen_seq": 20}));
    let first = w.next_within(Duration::from_secs(5)).unwrap();
    assert_eq!(first["event"], "history");
    assert_eq!(first["data"]["has_more"], true);
    assert_eq!(first["data"]["messages"].as_array().unwrap().len(), 100);
    assert_eq!(first["data"]["next_cursor"], 120);
    let mut seqs = message_seqs(&first);
    seqs.extend(w.collect_seqs(130, Duration::from_secs(10)));
    assert_exact(&seqs, 21, 250);
}

#[test]
fn messages_larger_than_a_notification_are_delivered() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "large");
    let room = create_room(&a, &u.token);
    let mut r = Ws::connect(&a, &u.token);
    r.join(&room, None);
    let mut s = Ws::connect(&a, &u.token);
    let big: String = "ü".repeat(60_000);
    for _ in 0..3 {
        s.send("send_message", json!({"room_id": room, "content": big}));
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let v = r
            .next_within(Duration::from_secs(10))
            .expect("large message");
        match v["event"].as_str() {
            Some("new_message") => got.push(v["data"].clone()),
            Some("new_message_batch") => got.extend(v["data"].as_array().unwrap().iter().cloned()),
            _ => {}
        }
    }
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m["seq"], i as i64 + 1);
        assert_eq!(m["content"].as_str().unwrap().chars().count(), 60_000);
    }
}

#[test]
fn dead_peers_are_dropped_and_live_ones_kept() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.websocket.ping_interval_secs = 1);
    let a = node.addr();
    let u = register(&a, "ping");
    // A client that reads answers pings (tungstenite replies on read).
    let mut alive = Ws::connect(&a, &u.token);
    // A raw socket that completed the handshake and then says nothing at all.
    let mut dead = Http::connect(&a);
    dead.send_raw(format!("GET /ws?token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", u.token).as_bytes());
    assert_eq!(dead.read().unwrap().status, 101);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        alive.next_within(Duration::from_millis(100));
    }
    alive.send("ping", json!(1));
    assert_eq!(alive.expect("pong"), json!(1));
    // The silent one got pings, never answered, and was closed.
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(dead.r.get_mut(), &mut rest);
    assert!(
        rest.len() >= 2 && rest[0] == 0x89,
        "expected a ping frame first, got {:?}",
        &rest[..rest.len().min(8)]
    );
    assert_eq!(
        node.handle
            .metrics
            .websockets
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn typing_indicator_times_out_after_six_seconds() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let alice = register(&a, "ta");
    let bob = register(&a, "tb");
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let mut wa = Ws::connect(&a, &alice.token);
    wa.join(&room, None);
    let mut wb = Ws::connect(&a, &bob.token);
    wb.join(&room, None);
    wb.send("typing_start", json!({"room_id": room}));
    // Repeated starts within a second are not relayed again.
    wb.send("typing_start", json!({"room_id": room}));
    assert_eq!(wa.expect("typing")["typing"], true);
    let started = std::time::Instant::now();
    let stop = wa.expect_where("typing", |t| t["typing"] == false);
    let waited = started.elapsed();
    assert_eq!(stop["user_id"], bob.id.as_str());
    assert!(
        waited >= Duration::from_secs(4) && waited <= Duration::from_secs(8),
        "{waited:?}"
    );
    // Disconnecting while typing also sends typing: false.
    wb.send("typing_start", json!({"room_id": room}));
    assert_eq!(wa.expect("typing")["typing"], true);
    drop(wb);
    assert_eq!(wa.expect("typing")["typing"], false);
}

#[test]
fn leaving_over_rest_removes_the_users_live_sockets() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let owner = register(&a, "ro");
    let guest = register(&a, "rg");
    let room = create_room(&a, &owner.token);
    join_room(&a, &guest.token, &room);
    let mut w = Ws::connect(&a, &guest.token);
    w.join(&room, None);
    assert_eq!(
        request(
            &a,
            "POST",
            &format!("/rooms/{room}/leave"),
            Some(&guest.token),
            None
        )
        .0,
        201
    );
    assert_eq!(w.expect("left_room")["room_id"], room.as_str());
    let (s, _) = request(
        &a,
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&owner.token),
        Some(&json!({"content": "after"})),
    );
    assert_eq!(s, 201);
    let leaked = w.next_within(Duration::from_millis(700));
    assert!(
        leaked.as_ref().is_none_or(|v| v["event"] != "new_message"),
        "{leaked:?}"
    );
}
