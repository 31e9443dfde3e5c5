//! WebSocket: upgrade, every event and error, ordering, catch-up, large messages.

use crate::support::*;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// No client reached a panic or a 500: the node's counters of panics caught in jobs and
/// of 500 answers are zero. Fails if a job panics even after answering: shown by a
/// `panic!` in `pg::pool`'s job runner after every job: every test of this file then
/// failed here (the clients saw nothing wrong; e.g. 10 panics counted at the end of
/// `typing_indicator_times_out_after_six_seconds`, 1 in `upgrade_requires_a_valid_token`).
fn assert_no_panics(node: &Node) {
    let m = &node.handle.metrics;
    assert_eq!(
        (m.job_panics.load(Relaxed), m.http_500.load(Relaxed)),
        (0, 0),
        "(job panics, HTTP 500 answers)"
    );
}

/// A short form of frames for failure messages: each event with its seqs or code.
fn summary(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|v| {
            let seqs = message_seqs(v);
            match (seqs.first(), seqs.last()) {
                (Some(a), Some(b)) => format!("{} seq {a}..={b}", v["event"]),
                _ => format!("{} {}", v["event"], v["data"]["code"]),
            }
        })
        .collect()
}

/// Every frame `w` receives until it has been quiet for `quiet` (at most 10 s).
fn drain(w: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match w.next_within(quiet) {
            Some(v) => frames.push(v),
            None => break,
        }
    }
    frames
}

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
    assert_no_panics(&node);
}

/// Every event, its errors and acks. Each refusal is the very next frame (nothing before
/// it). Fails if a refused join is answered before its check: shown by sending
/// `joined_room` before the refusal in `Hub::on_joined` ("expected error next, got
/// {"event":"joined_room",...}"). Fails if a non-member's `typing_stop` is relayed:
/// shown by relaying a stop from a socket without the room in `Hub::typing` ("no frame
/// within 10 s, expected error": the stop went to the room instead).
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
    assert_eq!(wb.expect_next("error")["code"], "invalid_json");
    wb.send("dance", json!({}));
    assert_eq!(wb.expect_next("error")["code"], "unknown_event");
    wb.send("join_room", json!({"room_id": 5}));
    assert_eq!(wb.expect_next("error")["code"], "invalid_payload");
    wb.ws
        .send(tungstenite::Message::binary(vec![1, 2, 3]))
        .unwrap();
    assert_eq!(wb.expect_next("error")["code"], "invalid_payload");
    wb.send("ping", json!({"n": 1}));
    assert_eq!(wb.expect_next("pong"), json!({"n": 1}));

    // Membership is checked before anything is delivered.
    wb.send("join_room", json!({"room_id": room}));
    assert_eq!(wb.expect_next("error")["code"], "not_member");
    wb.send(
        "join_room",
        json!({"room_id": "00000000-0000-7000-8000-000000000000"}),
    );
    assert_eq!(wb.expect_next("error")["code"], "room_not_found");
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "sneaky"}),
    );
    assert_eq!(wb.expect_next("error")["code"], "not_member");
    wb.send("typing_start", json!({"room_id": room}));
    assert_eq!(wb.expect_next("error")["code"], "not_member");
    wb.send("typing_stop", json!({"room_id": room}));
    assert_eq!(wb.expect_next("error")["code"], "not_member");

    assert_eq!(wa.join(&room, None), None);
    wa.send("send_message", json!({"room_id": room, "content": "first"}));
    let m = wa.expect("new_message");
    assert_eq!(
        (m["seq"].as_i64(), m["content"].as_str()),
        (Some(1), Some("first"))
    );
    // Bob was never subscribed: nothing reached him.
    assert!(wb.next_within(Duration::from_millis(300)).is_none());
    // A non-member's typing_stop (and start) is refused and never reaches the room.
    wa.drain(Duration::from_millis(300));
    wb.send("typing_stop", json!({"room_id": room}));
    assert_eq!(wb.expect_next("error")["code"], "not_member");
    wb.send("typing_start", json!({"room_id": room}));
    assert_eq!(wb.expect_next("error")["code"], "not_member");
    wa.assert_silent(
        Duration::from_millis(500),
        "a member heard a non-member's typing",
    );

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

    // Leaving stops live delivery: every frame of the window is read. (Fails if a left
    // socket still gets the room: shown by making `leave_room` answer `left_room`
    // without unsubscribing; Alice then got the 20 messages.)
    wa.send("leave_room", json!({"room_id": room}));
    assert_eq!(wa.expect("left_room")["room_id"], room.as_str());
    for i in 0..20 {
        wb.send(
            "send_message",
            json!({"room_id": room, "content": format!("after leave {i}")}),
        );
    }
    wb.send("typing_start", json!({"room_id": room}));
    // Bob (joined) got all 20: the window is over when they went out on this node.
    let got = wb.collect_seqs(20, Duration::from_secs(10));
    assert_eq!(got.len(), 20, "{got:?}");
    let leaked = drain(&mut wa, Duration::from_millis(500));
    assert!(
        leaked.is_empty(),
        "a left socket received {:?}",
        summary(&leaked)
    );
    assert_no_panics(&node);
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
    assert_no_panics(&node);
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
    assert_no_panics(&node);
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
    assert_no_panics(&node);
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
    assert_no_panics(&node);
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
    assert_no_panics(&node);
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
    assert_no_panics(&node);
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
    assert_no_panics(&node);
}

/// After leaving over REST, every path is closed to the user even on a socket that stays
/// connected: no live message, typing or presence reaches it (every frame of the window
/// is read), and its `send_message`, `typing_start` and `join_room` are refused, as are
/// REST posting, history and members; nothing was stored.
/// Fails if the leave does not unsubscribe the user's sockets: shown by making
/// `Hub::kick` send `left_room` without calling `self.leave` (the socket received the
/// owner's 20 messages and the typing). Fails if the writer does not check membership:
/// shown by mapping `(Some(true), None)` to `Slot::New` in `pg::writer` (the former
/// member's send was acknowledged).
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
    let mut wo = Ws::connect(&a, &owner.token);
    wo.join(&room, None);
    let joined_at = room_head(&a, &owner.token, &room);
    // What the joins announced, read before the leave.
    w.drain(Duration::from_millis(300));
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
    // The first frame after the leave is the left_room.
    let left = w.expect_next("left_room");
    assert_eq!(left["room_id"], room.as_str());
    let head = room_head(&a, &owner.token, &room);
    // The owner talks and types; the owner's own socket sees all of it go out.
    for i in 0..20 {
        wo.send(
            "send_message",
            json!({"room_id": room, "content": format!("after {i}")}),
        );
    }
    // (The guest's leave is an entry of the stream too.)
    let seqs = wo.collect_seqs((head - joined_at) as usize + 20, Duration::from_secs(10));
    assert_exact(&seqs, joined_at + 1, head + 20);
    // A third member watches for the owner's typing (nobody hears their own).
    let third = register(&a, "rt");
    join_room(&a, &third.token, &room);
    let mut w3 = Ws::connect(&a, &third.token);
    w3.join(&room, None);
    wo.send("typing_start", json!({"room_id": room}));
    assert_eq!(w3.expect("typing")["user_id"], owner.id.as_str());
    let leaked = drain(&mut w, Duration::from_millis(500));
    assert!(
        leaked.is_empty(),
        "a former member's socket got {:?}",
        summary(&leaked)
    );

    // The socket is still open; every path refuses it.
    w.send(
        "send_message",
        json!({"room_id": room, "content": "still here?", "client_msg_id": "x-1"}),
    );
    let frames = drain(&mut w, Duration::from_millis(500));
    assert_eq!(frames.len(), 1, "{:?}", summary(&frames));
    assert_eq!(
        (
            frames[0]["event"].as_str(),
            frames[0]["data"]["code"].as_str(),
            frames[0]["data"]["client_msg_id"].as_str()
        ),
        (Some("error"), Some("not_member"), Some("x-1")),
        "{frames:?}"
    );
    w.send("typing_start", json!({"room_id": room}));
    assert_eq!(w.expect("error")["code"], "not_member");
    w.send("join_room", json!({"room_id": room}));
    assert_eq!(w.expect("error")["code"], "not_member");
    let (s, b) = request(
        &a,
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&guest.token),
        Some(&json!({"content": "rest"})),
    );
    assert_eq!((s, b["code"].as_str()), (403, Some("not_member")), "{b}");
    for path in ["messages", "members"] {
        let (s, b) = request(
            &a,
            "GET",
            &format!("/rooms/{room}/{path}"),
            Some(&guest.token),
            None,
        );
        assert_eq!(
            (s, b["code"].as_str()),
            (403, Some("not_member")),
            "{path}: {b}"
        );
    }
    // And the members heard none of it.
    let typing_or_msgs: Vec<Value> = drain(&mut w3, Duration::from_millis(300))
        .into_iter()
        .filter(|v| !message_seqs(v).is_empty() || v["event"] == "typing")
        .collect();
    assert!(typing_or_msgs.is_empty(), "{:?}", summary(&typing_or_msgs));
    let stored: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE kind = 'message' AND user_id = $1",
            &[&uuid::Uuid::parse_str(&guest.id).unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    assert_no_panics(&node);
}

/// Live delivery starts only after the join was checked: messages committed while a
/// non-member's `join_room` waits for its check never reach that socket, and the check's
/// refusal is the only frame it gets. The check is held up by occupying the node's one
/// query worker with a REST join that waits on a row lock this test holds, while a
/// member streams messages (the writers do not need that worker).
/// Fails if a joining subscription is fed: shown by removing `sub.joining ||` from
/// `Hub::fan_out` (the refused socket received the window's messages before its error).
#[test]
fn a_refused_join_receives_nothing_while_its_check_is_pending() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.server.event_loops = 1;
        c.database.db_workers = 1;
    });
    let a = node.addr();
    let owner = register(&a, "jo");
    let stranger = register(&a, "js");
    let helper = register(&a, "jh");
    let room = create_room(&a, &owner.token);
    let other_room = create_room(&a, &owner.token);
    let mut wo = Ws::connect(&a, &owner.token);
    wo.join(&room, None);
    let mut wx = Ws::connect(&a, &stranger.token);
    let mut sender = Ws::connect(&a, &owner.token);

    // Hold the other room's row: the helper's REST join waits on it, on the only worker.
    let mut locker = db.client();
    let mut tx = locker.transaction().unwrap();
    let other = uuid::Uuid::parse_str(&other_room).unwrap();
    tx.execute("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE", &[&other])
        .unwrap();
    let blocked = {
        let (a, t, r) = (a.clone(), helper.token.clone(), other_room.clone());
        std::thread::spawn(move || {
            request(&a, "POST", &format!("/rooms/{r}/join"), Some(&t), None).0
        })
    };
    let mut admin = db.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the REST join never waited on the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The stranger asks to join; its check waits behind the blocked worker.
    wx.send("join_room", json!({"room_id": room, "last_seen_seq": 0}));
    let total = 200;
    for i in 0..total {
        sender.send(
            "send_message",
            json!({"room_id": room, "content": format!("w{i}")}),
        );
    }
    // They went out live on this node (the member got them all) while the check waited.
    let seqs = wo.collect_seqs(total, Duration::from_secs(20));
    assert_exact(&seqs, 1, total as i64);
    let during = drain(&mut wx, Duration::from_millis(300));
    assert!(
        during.is_empty(),
        "during the check: {:?}",
        summary(&during)
    );

    tx.rollback().unwrap();
    assert_eq!(blocked.join().unwrap(), 201);
    // Every frame after the check: its refusal, and nothing else.
    let after = drain(&mut wx, Duration::from_millis(700));
    assert_eq!(after.len(), 1, "{:?}", summary(&after));
    assert_eq!(
        (
            after[0]["event"].as_str(),
            after[0]["data"]["code"].as_str()
        ),
        (Some("error"), Some("not_member")),
        "{after:?}"
    );
    // Later messages do not reach it either.
    for i in 0..20 {
        sender.send(
            "send_message",
            json!({"room_id": room, "content": format!("later {i}")}),
        );
    }
    assert_eq!(wo.collect_seqs(20, Duration::from_secs(10)).len(), 20);
    let later = drain(&mut wx, Duration::from_millis(300));
    assert!(later.is_empty(), "after the refusal: {:?}", summary(&later));
    assert_no_panics(&node);
}
