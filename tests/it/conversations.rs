//! Conversations: private rooms, roles and moderation, direct rooms, read state and
//! unread counts, over real PostgreSQL and real sockets (one node, and three for the
//! cluster-wide effect of kicks and bans).

use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn call(a: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    request(a, method, path, Some(token), body.as_ref())
}

fn code(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["code"].as_str().unwrap_or(""))
}

fn private_room(a: &str, token: &str) -> String {
    let (s, b) = call(
        a,
        "POST",
        "/rooms",
        token,
        Some(
            json!({"name": format!("p-{}", uuid::Uuid::new_v4().simple()), "visibility": "private"}),
        ),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["visibility"], "private");
    b["id"].as_str().unwrap().to_string()
}

fn count_rows(db: &TestDb, room: &str) -> i64 {
    let id: uuid::Uuid = room.parse().unwrap();
    db.client()
        .query_one("SELECT count(*) FROM messages WHERE room_id = $1", &[&id])
        .unwrap()
        .get(0)
}

/// History entries of the room as (kind, data.type or content), oldest first.
fn entries(a: &str, token: &str, room: &str) -> Vec<(String, String)> {
    let (_, page) = call(
        a,
        "GET",
        &format!("/rooms/{room}/messages?limit=100"),
        token,
        None,
    );
    let mut out: Vec<(String, String)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let kind = m["kind"].as_str().unwrap().to_string();
            let what = if kind == "system" {
                m["data"]["type"].as_str().unwrap().to_string()
            } else {
                m["content"].as_str().unwrap().to_string()
            };
            (kind, what)
        })
        .collect();
    out.reverse();
    out
}

#[test]
fn private_rooms_are_invisible_to_non_members_on_every_path() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let owner = register(&a, "own");
    let out = register(&a, "out");
    let room = private_room(&a, &owner.token);
    let p = |s: &str| format!("/rooms/{room}{s}");
    // Lists, reads, joins, members, history, posting, marking read: as if it did not exist.
    let (_, list) = call(&a, "GET", "/rooms", &out.token, None);
    assert!(!list.to_string().contains(&room));
    let (_, list) = call(&a, "GET", "/rooms", &owner.token, None);
    assert!(list.to_string().contains(&room));
    for (m, path, body) in [
        ("GET", p(""), None),
        ("POST", p("/join"), None),
        ("POST", p("/leave"), None),
        ("GET", p("/members"), None),
        ("GET", p("/messages"), None),
        ("POST", p("/messages"), Some(json!({"content": "x"}))),
        ("POST", p("/read"), Some(json!({"seq": 1}))),
        ("PATCH", p(""), Some(json!({"name": "x"}))),
    ] {
        let r = call(&a, m, &path, &out.token, body);
        assert_eq!(code(&r), (404, "room_not_found"), "{m} {path}: {}", r.1);
    }
    // The socket: join refused, typing and marks refused, nothing delivered.
    let mut w = Ws::connect(&a, &out.token);
    w.send("join_room", json!({"room_id": room}));
    assert_eq!(w.expect("error")["code"], "room_not_found");
    w.send("typing_start", json!({"room_id": room}));
    assert_eq!(w.expect("error")["code"], "not_member");
    w.send("mark_read", json!({"room_id": room, "seq": 1}));
    assert_eq!(w.expect("error")["code"], "not_member");
    w.send(
        "send_message",
        json!({"room_id": room, "content": "x", "client_msg_id": "x1"}),
    );
    assert_eq!(w.expect("error")["code"], "room_not_found");
    let mut wo = Ws::connect(&a, &owner.token);
    wo.join(&room, None);
    wo.send(
        "send_message",
        json!({"room_id": room, "content": "secret", "client_msg_id": "s1"}),
    );
    wo.expect("message_ack");
    wo.send("typing_start", json!({"room_id": room}));
    // No message, typing or presence event of the room reaches the outsider.
    let deadline = Instant::now() + Duration::from_millis(700);
    while Instant::now() < deadline {
        if let Some(v) = w.next_within(Duration::from_millis(100)) {
            panic!("an outsider got an event of a private room: {v}");
        }
    }
    // Private names are not reserved against other private or public rooms' names.
    assert_eq!(count_rows(&db, &room), 1);
}

#[test]
fn roles_moderation_and_every_refusal() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let owner = register(&a, "owner");
    let ann = register(&a, "ann");
    let bob = register(&a, "bob");
    let room = private_room(&a, &owner.token);
    let p = |s: &str| format!("/rooms/{room}{s}");
    let member = |u: &User, act: &str| p(&format!("/members/{}/{act}", u.id));

    // Invitation: listed for the invitee, visible, consumed by joining.
    assert_eq!(
        call(
            &a,
            "POST",
            &p("/invites"),
            &owner.token,
            Some(json!({"user_id": ann.id}))
        )
        .0,
        201
    );
    // Without paging parameters, the bare array of 0.1.
    let (_, inv) = call(&a, "GET", "/me/invites", &ann.token, None);
    assert_eq!(inv[0]["room"]["id"], room.as_str());
    assert_eq!(inv[0]["invited_by"]["id"], owner.id.as_str());
    assert_eq!(call(&a, "GET", &p(""), &ann.token, None).0, 200);
    assert_eq!(call(&a, "POST", &p("/join"), &ann.token, None).0, 201);
    let (_, inv) = call(&a, "GET", "/me/invites", &ann.token, None);
    assert_eq!(inv.as_array().unwrap().len(), 0);
    let (_, members) = call(&a, "GET", &p("/members"), &owner.token, None);
    let roles: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        vec![
            (owner.username.as_str(), "owner"),
            (ann.username.as_str(), "member")
        ]
    );

    // A member may not moderate; nobody acts on themselves or on the owner.
    let bob_id = json!({"user_id": bob.id});
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &p("/invites"),
            &ann.token,
            Some(bob_id.clone())
        )),
        (403, "forbidden")
    );
    assert_eq!(
        code(&call(&a, "POST", &member(&owner, "kick"), &ann.token, None)),
        (403, "forbidden")
    );
    assert_eq!(
        code(&call(
            &a,
            "PATCH",
            &p(""),
            &ann.token,
            Some(json!({"name": "x"}))
        )),
        (403, "forbidden")
    );
    assert_eq!(
        code(&call(&a, "DELETE", &p(""), &ann.token, None)),
        (403, "forbidden")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &member(&owner, "kick"),
            &owner.token,
            None
        )),
        (400, "invalid_payload")
    );
    assert_eq!(
        code(&call(
            &a,
            "PUT",
            &member(&owner, "role"),
            &owner.token,
            Some(json!({"role": "member"}))
        )),
        (400, "invalid_payload")
    );
    assert_eq!(
        code(&call(
            &a,
            "PUT",
            &member(&ann, "role"),
            &owner.token,
            Some(json!({"role": "owner"}))
        )),
        (400, "validation_failed")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &p("/invites"),
            &owner.token,
            Some(json!({"user_id": uuid::Uuid::now_v7()}))
        )),
        (404, "user_not_found")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &p("/invites"),
            &owner.token,
            Some(json!({"user_id": owner.id}))
        )),
        (400, "invalid_payload")
    );
    assert_eq!(
        code(&call(&a, "POST", &member(&bob, "mute"), &owner.token, None)),
        (403, "not_member")
    );

    // Promoted, Ann invites and mutes Bob; a muted member reads but cannot send.
    assert_eq!(
        call(
            &a,
            "PUT",
            &member(&ann, "role"),
            &owner.token,
            Some(json!({"role": "admin"}))
        )
        .0,
        200
    );
    assert_eq!(
        code(&call(&a, "POST", &member(&owner, "mute"), &ann.token, None)),
        (403, "forbidden")
    );
    assert_eq!(
        call(&a, "POST", &p("/invites"), &ann.token, Some(bob_id.clone())).0,
        201
    );
    assert_eq!(call(&a, "POST", &p("/join"), &bob.token, None).0, 201);
    assert_eq!(
        call(&a, "POST", &member(&bob, "mute"), &ann.token, None).0,
        200
    );
    let before = count_rows(&db, &room);
    let r = call(
        &a,
        "POST",
        &p("/messages"),
        &bob.token,
        Some(json!({"content": "hi"})),
    );
    assert_eq!(code(&r), (403, "muted"));
    let mut wb = Ws::connect(&a, &bob.token);
    wb.join(&room, None);
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "hi", "client_msg_id": "m1"}),
    );
    let e = wb.expect("error");
    assert_eq!(
        (e["code"].as_str(), e["client_msg_id"].as_str()),
        (Some("muted"), Some("m1"))
    );
    assert_eq!(
        count_rows(&db, &room),
        before,
        "a refused send stored nothing"
    );
    assert_eq!(
        call(&a, "POST", &member(&bob, "unmute"), &ann.token, None).0,
        200
    );
    wb.send(
        "send_message",
        json!({"room_id": room, "content": "free", "client_msg_id": "m2"}),
    );
    wb.expect("message_ack");

    // Ban: the banned user's socket leaves at once; joining and invitations are refused
    // until unbanned.
    assert_eq!(
        call(&a, "POST", &member(&bob, "ban"), &owner.token, None).0,
        200
    );
    let left = wb.expect("left_room");
    assert_eq!(
        (left["room_id"].as_str(), left["reason"].as_str()),
        (Some(room.as_str()), Some("banned"))
    );
    assert_eq!(
        code(&call(&a, "POST", &p("/join"), &bob.token, None)),
        (404, "room_not_found")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &p("/invites"),
            &owner.token,
            Some(bob_id.clone())
        )),
        (403, "banned")
    );
    assert_eq!(
        call(&a, "POST", &member(&bob, "unban"), &owner.token, None).0,
        200
    );
    assert_eq!(
        call(
            &a,
            "POST",
            &p("/invites"),
            &owner.token,
            Some(bob_id.clone())
        )
        .0,
        201
    );
    assert_eq!(call(&a, "POST", &p("/join"), &bob.token, None).0, 201);
    // Kick, then leave; then rename and open the room: each in the stream, in order.
    assert_eq!(
        call(&a, "POST", &member(&bob, "kick"), &ann.token, None).0,
        200
    );
    assert_eq!(call(&a, "POST", &p("/leave"), &ann.token, None).0, 201);
    let r = call(
        &a,
        "PATCH",
        &p(""),
        &owner.token,
        Some(json!({"name": "Renamed", "visibility": "public"})),
    );
    assert_eq!(
        (r.0, r.1["name"].as_str(), r.1["visibility"].as_str()),
        (200, Some("Renamed"), Some("public"))
    );
    let kinds: Vec<String> = entries(&a, &owner.token, &room)
        .into_iter()
        .map(|(k, w)| format!("{k}:{w}"))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "system:joined",
            "system:joined",
            "message:free",
            "system:banned",
            "system:joined",
            "system:kicked",
            "system:left",
            "system:renamed",
            "system:visibility",
        ]
    );
    // Now public: listed for everyone, joinable without invitation.
    let (_, list) = call(&a, "GET", "/rooms", &bob.token, None);
    assert!(list.to_string().contains(&room));
    assert_eq!(call(&a, "POST", &p("/join"), &bob.token, None).0, 201);

    // Deletion: owner only; every joined socket leaves it; the room and its rows are gone.
    let mut wb = Ws::connect(&a, &bob.token);
    wb.join(&room, None);
    assert_eq!(
        code(&call(&a, "DELETE", &p(""), &bob.token, None)),
        (403, "forbidden")
    );
    assert_eq!(call(&a, "DELETE", &p(""), &owner.token, None).0, 200);
    assert_eq!(wb.expect("left_room")["reason"], "deleted");
    assert_eq!(
        code(&call(&a, "GET", &p(""), &owner.token, None)),
        (404, "room_not_found")
    );
    assert_eq!(count_rows(&db, &room), 0);
}

#[test]
fn direct_rooms_are_one_per_pair_even_when_both_sides_open_them_at_once() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (ann, bob, eve) = (
        register(&a, "dann"),
        register(&a, "dbob"),
        register(&a, "deve"),
    );
    let ids: Vec<(u16, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let (me, other) = if i % 2 == 0 {
                    (&ann, &bob)
                } else {
                    (&bob, &ann)
                };
                let a = a.clone();
                s.spawn(move || {
                    let (st, b) = call(
                        &a,
                        "POST",
                        "/dm",
                        &me.token,
                        Some(json!({"user_id": other.id})),
                    );
                    assert_eq!(b["visibility"], "direct", "{b}");
                    assert_eq!(b["other_user"]["id"], other.id.as_str());
                    (st, b["id"].as_str().unwrap().to_string())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let room = ids[0].1.clone();
    assert!(ids.iter().all(|(_, id)| *id == room), "{ids:?}");
    assert_eq!(ids.iter().filter(|(s, _)| *s == 201).count(), 1, "{ids:?}");
    let rooms: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM rooms WHERE visibility = 'direct'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rooms, 1);
    // Refusals: with oneself, an unknown user; no third member; no kick; no invitation.
    assert_eq!(
        code(&call(
            &a,
            "POST",
            "/dm",
            &ann.token,
            Some(json!({"user_id": ann.id}))
        )),
        (400, "invalid_payload")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            "/dm",
            &ann.token,
            Some(json!({"user_id": uuid::Uuid::now_v7()}))
        )),
        (404, "user_not_found")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            "/dm",
            &ann.token,
            Some(json!({"user_id": "nope"}))
        )),
        (400, "validation_failed")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &format!("/rooms/{room}/join"),
            &eve.token,
            None
        )),
        (404, "room_not_found")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &format!("/rooms/{room}/invites"),
            &ann.token,
            Some(json!({"user_id": eve.id}))
        )),
        (400, "invalid_payload")
    );
    assert_eq!(
        code(&call(
            &a,
            "POST",
            &format!("/rooms/{room}/members/{}/kick", bob.id),
            &ann.token,
            None
        )),
        (403, "forbidden")
    );
    // Either side may silence it.
    let r = call(
        &a,
        "PUT",
        &format!("/rooms/{room}/notifications"),
        &bob.token,
        Some(json!({"muted": true})),
    );
    assert_eq!(
        (r.0, r.1["notifications_muted"].as_bool()),
        (200, Some(true))
    );
    // Talk, then it shows in both sides' room lists with the other user.
    let mut h = Http::connect(&a);
    post_message(&mut h, &ann.token, &room, "hello bob");
    let (_, mine) = call(&a, "GET", "/me/rooms", &bob.token, None);
    let dm = &mine["rooms"][0];
    assert_eq!(
        (dm["id"].as_str(), dm["other_user"]["username"].as_str()),
        (Some(room.as_str()), Some(ann.username.as_str()))
    );
    assert_eq!(
        (dm["unread"].as_i64(), dm["notifications_muted"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(dm["last_message"]["content"], "hello bob");
}

#[test]
fn read_state_unread_counts_and_coalesced_receipts() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.rooms.receipt_window_ms = 1000);
    let a = node.addr();
    let (ann, bob) = (register(&a, "rann"), register(&a, "rbob"));
    let room = create_room(&a, &ann.token);
    join_room(&a, &bob.token, &room);
    let mut h = Http::connect(&a);
    for i in 0..9 {
        post_message(&mut h, &ann.token, &room, &format!("m{i}"));
    }
    let head = room_head(&a, &ann.token, &room);
    assert_eq!(head, 10, "bob's join and nine messages");
    let unread = |who: &User| -> i64 {
        let (_, mine) = call(&a, "GET", "/me/rooms", &who.token, None);
        let r = mine["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == room.as_str())
            .cloned()
            .unwrap();
        // Others' messages after the mark: never more than the entries after it.
        assert!(
            r["unread"].as_i64().unwrap()
                <= r["last_seq"].as_i64().unwrap() - r["last_read_seq"].as_i64().unwrap()
        );
        r["unread"].as_i64().unwrap()
    };
    // Joining reads the room up to the join; the messages after it are unread. A
    // poster has read its own messages (the mark follows them off the send path).
    assert_eq!(unread(&bob), 9);
    let deadline = Instant::now() + Duration::from_secs(5);
    while unread(&ann) != 0 {
        assert!(Instant::now() < deadline, "ann's own messages stay unread");
        std::thread::sleep(Duration::from_millis(20));
    }
    // REST marks: forward only, clamped to the room's last seq.
    let mark = |who: &User, seq: i64| {
        call(
            &a,
            "POST",
            &format!("/rooms/{room}/read"),
            &who.token,
            Some(json!({"seq": seq})),
        )
    };
    assert_eq!(mark(&bob, 4).1["last_read_seq"], 4);
    assert_eq!(mark(&bob, 2).1["last_read_seq"], 4);
    assert_eq!(unread(&bob), 6);
    assert_eq!(mark(&bob, 1_000_000).1["last_read_seq"], head);
    assert_eq!(unread(&bob), 0);
    assert_eq!(code(&mark(&bob, -1)), (400, "validation_failed"));

    // WebSocket marks: the user's other sockets learn it (cross-device); the room's other
    // members get receipts, coalesced to one per window for a burst.
    let mut bob1 = Ws::connect(&a, &bob.token);
    bob1.join(&room, None);
    let mut bob2 = Ws::connect(&a, &bob.token);
    let mut annw = Ws::connect(&a, &ann.token);
    annw.join(&room, None);
    for i in 0..5 {
        post_message(&mut h, &ann.token, &room, &format!("n{i}"));
    }
    let head = head + 5;
    let started = Instant::now();
    for s in head - 4..=head {
        bob1.send("mark_read", json!({"room_id": room, "seq": s}));
        std::thread::sleep(Duration::from_millis(30));
    }
    let st = bob2.expect_where("read_state", |d| d["last_read_seq"] == head);
    assert_eq!(st["room_id"], room.as_str());
    let mut receipts = Vec::new();
    while started.elapsed() < Duration::from_millis(2500) {
        if let Some(v) = annw.next_within(Duration::from_millis(100))
            && v["event"] == "receipt"
        {
            assert_eq!(v["data"]["user_id"], bob.id.as_str());
            receipts.push(v["data"]["seq"].as_i64().unwrap());
        }
    }
    assert!(!receipts.is_empty() && receipts.len() <= 2, "{receipts:?}");
    assert_eq!(
        *receipts.last().unwrap(),
        head,
        "the last receipt carries the furthest mark"
    );
    // Unread stays exact through a reconnect and catch-up.
    drop(bob1);
    for i in 0..3 {
        post_message(&mut h, &ann.token, &room, &format!("o{i}"));
    }
    assert_eq!(unread(&bob), 3);
    let mut bob3 = Ws::connect(&a, &bob.token);
    let hist = bob3.join(&room, Some(head)).expect("history");
    assert_eq!(hist["messages"].as_array().unwrap().len(), 3);
    bob3.send("mark_read", json!({"room_id": room, "seq": head + 3}));
    bob3.expect_where("read_state", |d| d["last_read_seq"] == head + 3);
    assert_eq!(unread(&bob), 0);
    // A message bob sends on the socket stays read for him and is unread for ann, and
    // the quiet mark it implies sends no receipt.
    bob3.send(
        "send_message",
        json!({"room_id": room, "content": "mine", "client_msg_id": "own-1"}),
    );
    let ack = bob3.expect("message_ack");
    let ann_read = unread(&ann);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, mine) = call(&a, "GET", "/me/rooms", &bob.token, None);
        let me = mine["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == room.as_str())
            .cloned()
            .unwrap();
        if me["last_read_seq"] == ack["seq"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob's own message stays unread: {me}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(unread(&bob), 0);
    assert!(ann_read >= 1);
    // Receipts off for the room: marks still move, nobody is told.
    assert_eq!(
        call(
            &a,
            "PATCH",
            &format!("/rooms/{room}"),
            &ann.token,
            Some(json!({"receipts": false}))
        )
        .0,
        200
    );
    post_message(&mut h, &ann.token, &room, "p");
    std::thread::sleep(Duration::from_millis(1100));
    while annw.next_within(Duration::from_millis(100)).is_some() {}
    bob3.send("mark_read", json!({"room_id": room, "seq": head + 5}));
    bob3.expect("read_state");
    let deadline = Instant::now() + Duration::from_millis(800);
    while Instant::now() < deadline {
        if let Some(v) = annw.next_within(Duration::from_millis(100)) {
            assert_ne!(v["event"], "receipt", "{v}");
        }
    }
}

#[test]
fn my_rooms_are_paged_by_last_activity() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let ann = register(&a, "pann");
    let rooms: Vec<String> = (0..5).map(|_| create_room(&a, &ann.token)).collect();
    let mut h = Http::connect(&a);
    // Activity order: rooms[2] newest, then rooms[0], then the others by creation.
    post_message(&mut h, &ann.token, &rooms[0], "zero");
    post_message(&mut h, &ann.token, &rooms[2], "two");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/me/rooms?limit=2&cursor={c}"),
            None => "/me/rooms?limit=2".into(),
        };
        let (s, page) = call(&a, "GET", &path, &ann.token, None);
        assert_eq!(s, 200, "{page}");
        for r in page["rooms"].as_array().unwrap() {
            assert_eq!(r["role"], "owner");
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(&seen[..2], &[rooms[2].clone(), rooms[0].clone()]);
    let mut rest = seen[2..].to_vec();
    rest.sort();
    let mut want = vec![rooms[1].clone(), rooms[3].clone(), rooms[4].clone()];
    want.sort();
    assert_eq!(rest, want);
    assert_eq!(
        code(&call(&a, "GET", "/me/rooms?cursor=bogus", &ann.token, None)),
        (400, "invalid_payload")
    );
}

/// A kick and a ban through one node reach the user's sockets on every node within a
/// second; after each, no frame of the room at all (message, typing, presence) reaches
/// those sockets; a banned user's posts are refused on every node, over REST and on the
/// socket, and nothing is stored; the banned user cannot come back.
/// Fails if a kicked socket keeps the room: shown by sending `left_room` without leaving
/// in `Hub::kick` ("socket 0 got a frame after the kick: {...new_message...}"). Fails if
/// a ban keeps the membership: shown by re-inserting the row after the ban in
/// `moderation` ("node 0: a banned user's post: ... left: 201, right: 403").
#[test]
fn kicks_and_bans_take_effect_on_every_node_within_a_second() {
    let db = TestDb::new();
    let nodes = [start(&db), start(&db), start(&db)];
    let a = nodes[0].addr();
    let (owner, bob) = (register(&a, "kown"), register(&a, "kbob"));
    let room = create_room(&a, &owner.token);
    join_room(&a, &bob.token, &room);
    let mut sockets: Vec<Ws> = nodes
        .iter()
        .map(|n| {
            let mut w = Ws::connect(&n.addr(), &bob.token);
            w.join(&room, None);
            w
        })
        .collect();
    let t = Instant::now();
    let kick = format!("/rooms/{room}/members/{}/kick", bob.id);
    assert_eq!(
        call(&nodes[1].addr(), "POST", &kick, &owner.token, None).0,
        200
    );
    for w in sockets.iter_mut() {
        let left = w.expect("left_room");
        assert_eq!(left["reason"], "kicked");
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    // Nothing more of the room reaches those sockets: no message, typing or presence
    // (every frame of the window is read; a `membership` note to the user is allowed).
    let mut h = Http::connect(&a);
    let mut wo = Ws::connect(&nodes[1].addr(), &owner.token);
    wo.join(&room, None);
    let room_talks = |h: &mut Http, wo: &mut Ws, what: &str| {
        post_message(h, &owner.token, &room, what);
        wo.send("typing_start", json!({"room_id": room}));
    };
    room_talks(&mut h, &mut wo, "after the kick");
    let nothing_of_the_room = |sockets: &mut Vec<Ws>, what: &str| {
        for (i, w) in sockets.iter_mut().enumerate() {
            for v in w.drain(Duration::from_millis(600)) {
                assert!(
                    v["event"] == "membership",
                    "socket {i} got a frame after the {what}: {v}"
                );
            }
        }
    };
    nothing_of_the_room(&mut sockets, "kick");
    // Ban, the same way, through a third node; the banned user cannot come back.
    join_room(&a, &bob.token, &room);
    for (n, w) in nodes.iter().zip(sockets.iter_mut()) {
        *w = Ws::connect(&n.addr(), &bob.token);
        w.join(&room, None);
    }
    let t = Instant::now();
    let ban = format!("/rooms/{room}/members/{}/ban", bob.id);
    assert_eq!(
        call(&nodes[2].addr(), "POST", &ban, &owner.token, None).0,
        200
    );
    for w in sockets.iter_mut() {
        assert_eq!(w.expect("left_room")["reason"], "banned");
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    // Delivery stops, and the banned user's posts are refused on every node and path;
    // nothing of theirs is stored.
    std::thread::sleep(Duration::from_millis(1100)); // past the typing throttle
    room_talks(&mut h, &mut wo, "after the ban");
    nothing_of_the_room(&mut sockets, "ban");
    for (i, n) in nodes.iter().enumerate() {
        let r = call(
            &n.addr(),
            "POST",
            &format!("/rooms/{room}/messages"),
            &bob.token,
            Some(json!({"content": "banned but talking"})),
        );
        assert_eq!(r.0, 403, "node {i}: a banned user's post: {}", r.1);
        sockets[i].send(
            "send_message",
            json!({"room_id": room, "content": "banned but talking", "client_msg_id": format!("b{i}")}),
        );
        let e = sockets[i].expect_next("error");
        assert_eq!(e["client_msg_id"], format!("b{i}"), "node {i}: {e}");
        assert!(
            ["not_member", "banned", "room_not_found"].contains(&e["code"].as_str().unwrap()),
            "node {i}: {e}"
        );
    }
    let stored: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE kind = 'message' AND content = 'banned but talking'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a banned user's message was stored");
    let r = call(
        &nodes[1].addr(),
        "POST",
        &format!("/rooms/{room}/join"),
        &bob.token,
        None,
    );
    assert_eq!(code(&r), (403, "banned"));
    sockets[0].send("join_room", json!({"room_id": room}));
    assert_eq!(sockets[0].expect("error")["code"], "not_member");
}

/// A mute through one node holds on every node and path at once: the muted member's
/// sockets on the other nodes are refused (`muted`) and so are REST posts through each
/// node, nothing is stored; an unmute through a third node lets them send again.
/// Fails if a mute is not enforced where the message is stored: shown by letting muted
/// members' rows through `pg::writer`'s slot decision ("REST through node 0: left:
/// (201, ""), right: (403, "muted")").
#[test]
fn mutes_take_effect_on_every_node() {
    let db = TestDb::new();
    let nodes = [start(&db), start(&db), start(&db)];
    let a = nodes[0].addr();
    let (owner, bob) = (register(&a, "muown"), register(&a, "mubob"));
    let room = create_room(&a, &owner.token);
    join_room(&a, &bob.token, &room);
    let mut sockets: Vec<Ws> = nodes
        .iter()
        .map(|n| {
            let mut w = Ws::connect(&n.addr(), &bob.token);
            w.join(&room, None);
            w
        })
        .collect();
    let mute = format!("/rooms/{room}/members/{}/mute", bob.id);
    assert_eq!(
        call(&nodes[0].addr(), "POST", &mute, &owner.token, None).0,
        200
    );
    for (i, n) in nodes.iter().enumerate() {
        let r = call(
            &n.addr(),
            "POST",
            &format!("/rooms/{room}/messages"),
            &bob.token,
            Some(json!({"content": "muted but talking"})),
        );
        assert_eq!(code(&r), (403, "muted"), "REST through node {i}");
        sockets[i].send(
            "send_message",
            json!({"room_id": room, "content": "muted but talking", "client_msg_id": format!("m{i}")}),
        );
        let e = loop {
            let v = sockets[i]
                .next_within(Duration::from_secs(5))
                .expect("an answer");
            if v["event"] == "error" || v["event"] == "message_ack" {
                break v;
            }
        };
        assert_eq!(
            (e["event"].as_str(), e["data"]["code"].as_str()),
            (Some("error"), Some("muted")),
            "the socket on node {i}: {e}"
        );
    }
    let stored: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE kind = 'message' AND content = 'muted but talking'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a muted user's message was stored");
    let unmute = format!("/rooms/{room}/members/{}/unmute", bob.id);
    assert_eq!(
        call(&nodes[2].addr(), "POST", &unmute, &owner.token, None).0,
        200
    );
    for (i, w) in sockets.iter_mut().enumerate() {
        w.send(
            "send_message",
            json!({"room_id": room, "content": format!("free {i}"), "client_msg_id": format!("f{i}")}),
        );
        let ack = w.expect_where("message_ack", |a| a["client_msg_id"] == format!("f{i}"));
        assert!(ack["seq"].as_i64().is_some(), "node {i}: {ack}");
    }
}

#[test]
fn membership_changes_reach_the_users_sockets_on_every_node() {
    let db = TestDb::new();
    let nodes = [start(&db), start(&db)];
    let (a, b) = (nodes[0].addr(), nodes[1].addr());
    let (owner, carol, dave, eve) = (
        register(&a, "mown"),
        register(&a, "mcarol"),
        register(&a, "mdave"),
        register(&a, "meve"),
    );
    let room = private_room(&a, &owner.token);
    let member = |act: &str| format!("/rooms/{room}/members/{}/{act}", carol.id);
    // Carol's sockets join no room: the events come to the user, not to a room.
    let mut carols = [Ws::connect(&a, &carol.token), Ws::connect(&b, &carol.token)];
    let mut bystander = Ws::connect(&b, &eve.token);
    // One `membership` on each of carol's sockets, and nothing after it.
    let next = |ws: &mut [Ws; 2]| -> Vec<Value> {
        ws.iter_mut()
            .map(|w| {
                let v = w.expect_next("membership");
                w.assert_silent(Duration::from_millis(300), "one event per change");
                v
            })
            .collect()
    };

    // Nothing reaches carol's sockets for half a second.
    let silent = |ws: &mut [Ws; 2]| {
        for w in ws.iter_mut() {
            assert!(w.next_within(Duration::from_millis(500)).is_none());
        }
    };

    let invite = json!({"user_id": carol.id});
    let t = Instant::now();
    let r = call(
        &b,
        "POST",
        &format!("/rooms/{room}/invites"),
        &owner.token,
        Some(invite.clone()),
    );
    assert_eq!(r.0, 201);
    for v in next(&mut carols) {
        assert_eq!(v["change"], "invited");
        assert_eq!(v["room_id"], room.as_str());
        assert_eq!(v["room"]["id"], room.as_str());
        assert_eq!(v["room"]["visibility"], "private");
        assert_eq!(v["by"]["id"], owner.id.as_str());
        assert_eq!(v["by"]["username"], owner.username.as_str());
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    // Inviting again changes nothing and says nothing.
    let r = call(
        &a,
        "POST",
        &format!("/rooms/{room}/invites"),
        &owner.token,
        Some(invite),
    );
    assert_eq!(r.0, 201);
    silent(&mut carols);

    assert_eq!(
        call(
            &a,
            "POST",
            &format!("/rooms/{room}/join"),
            &carol.token,
            None
        )
        .0,
        201
    );
    for (act, muted) in [("mute", true), ("unmute", false)] {
        assert_eq!(call(&a, "POST", &member(act), &owner.token, None).0, 200);
        for v in next(&mut carols) {
            assert_eq!(v["change"], "muted");
            assert_eq!(v["muted"], muted);
            assert_eq!(v["room_id"], room.as_str());
        }
    }
    // Unmuting an unmuted member says nothing.
    assert_eq!(
        call(&a, "POST", &member("unmute"), &owner.token, None).0,
        200
    );
    silent(&mut carols);
    let role = Some(json!({"role": "admin"}));
    assert_eq!(call(&b, "PUT", &member("role"), &owner.token, role).0, 200);
    for v in next(&mut carols) {
        assert_eq!(v["change"], "role");
        assert_eq!(v["role"], "admin");
    }

    // A direct room opened by dave appears for carol at once; opening it again does not.
    let dm = call(
        &b,
        "POST",
        "/dm",
        &dave.token,
        Some(json!({"user_id": carol.id})),
    );
    assert!(dm.0 == 200 || dm.0 == 201, "{dm:?}");
    for v in next(&mut carols) {
        assert_eq!(v["change"], "direct");
        assert_eq!(v["room_id"], dm.1["id"]);
        assert_eq!(v["room"]["visibility"], "direct");
        assert_eq!(v["by"]["id"], dave.id.as_str());
    }
    let again = call(
        &a,
        "POST",
        "/dm",
        &dave.token,
        Some(json!({"user_id": carol.id})),
    );
    assert_eq!(again.1["id"], dm.1["id"]);
    silent(&mut carols);
    // None of it reached anyone else.
    assert!(bystander.next_within(Duration::from_millis(300)).is_none());
}
