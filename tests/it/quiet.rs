//! A quiet room's plain message takes one round trip (`chat_send_one`, migration 27):
//! the same acks, deliveries, refusals and exactly-once storage as the batched path.

use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Calls of `chat_send_one` counted by the database (the test database tracks functions;
/// an idle backend reports its counts within about ten seconds).
fn send_one_calls(db: &TestDb, at_least: i64) -> i64 {
    let mut c = db.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_user_functions
                 WHERE funcname = 'chat_send_one'",
                &[],
            )
            .unwrap()
            .get(0);
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn track_functions(db: &TestDb) {
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET track_functions = 'all'",
            db.name
        ))
        .unwrap();
}

/// The next ack or error on `w` for `cmid`.
fn answer(w: &mut Ws, cmid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(v) = w.next_within(Duration::from_millis(500)) {
            let key = match v["event"].as_str() {
                Some("message_ack") => v["data"]["client_msg_id"].clone(),
                Some("error") => v["data"]["client_msg_id"].clone(),
                _ => continue,
            };
            if key == cmid {
                return v;
            }
        }
    }
    panic!("no answer for {cmid}");
}

/// Messages sent one at a time into a quiet room are stored by the function (counted by
/// PostgreSQL) and reach a socket on another node with the ack's id, seq and time, which
/// history shows alike; one too large to travel inline still goes. Fails if quiet messages take the batched path (no calls), or if
/// the notification the function assembles differs from the ack.
#[test]
fn quiet_messages_take_one_call_and_arrive_as_acked() {
    let db = TestDb::new();
    track_functions(&db);
    let (a_node, b_node) = (start(&db), start(&db));
    let (a, b) = (a_node.addr(), b_node.addr());
    let owner = register(&a, "qown");
    let room = create_room(&a, &owner.token);
    let head = room_head(&a, &owner.token, &room);
    let mut sender = Ws::connect(&a, &owner.token);
    let mut reader = Ws::connect(&b, &owner.token);
    reader.join(&room, None);
    let tricky = r#"a "quoted" \ text with "created_at":"" and ünïcode"#;
    let mut acks = Vec::new();
    for i in 0..5 {
        let cmid = format!("q{i}");
        sender.send(
            "send_message",
            json!({"room_id": room, "content": format!("{tricky} {i}"), "client_msg_id": cmid}),
        );
        let ack = answer(&mut sender, &cmid);
        assert_eq!(ack["event"], "message_ack", "{ack}");
        acks.push(ack["data"].clone());
        let got = reader.expect_where("new_message", |m| m["client_msg_id"] == cmid);
        for field in ["id", "seq", "created_at", "room_id"] {
            assert_eq!(got[field], ack["data"][field], "{field}: {got} vs {ack}");
        }
        assert_eq!(got["content"], format!("{tricky} {i}"));
        assert_eq!(
            (&got["user_id"], &got["username"]),
            (&json!(owner.id), &json!(owner.username))
        );
    }
    // Too large to travel inline: the batched path (a pointer) stores and delivers it.
    let big = "b".repeat(10_000);
    sender.send(
        "send_message",
        json!({"room_id": room, "content": big, "client_msg_id": "big"}),
    );
    assert_eq!(answer(&mut sender, "big")["data"]["seq"], head + 6);
    let got = reader.expect_where("new_message", |m| m["client_msg_id"] == "big");
    assert_eq!(got["content"], big);
    let seqs: Vec<i64> = acks.iter().map(|a| a["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (head + 1..=head + 5).collect::<Vec<_>>());
    let (status, page) = request(
        &b,
        "GET",
        &format!("/rooms/{room}/messages?limit=6"),
        Some(&owner.token),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let page = page["messages"].as_array().unwrap();
    assert_eq!(page.len(), 6);
    for m in page.iter().filter(|m| m["client_msg_id"] != "big") {
        let ack = acks.iter().find(|a| a["id"] == m["id"]).expect("acked");
        assert_eq!(
            (&m["seq"], &m["created_at"]),
            (&ack["seq"], &ack["created_at"])
        );
    }
    assert!(
        send_one_calls(&db, 5) >= 5,
        "quiet messages took the batched path"
    );
}

/// The same client_msg_id sent at once through two nodes, many times over: one message
/// per key, both senders get the same ack, the room's seqs stay gapless.
#[test]
fn one_key_sent_through_two_nodes_at_once_is_stored_once() {
    let db = TestDb::new();
    let nodes = [start(&db), start(&db)];
    let owner = register(&nodes[0].addr(), "qdup");
    let room = create_room(&nodes[0].addr(), &owner.token);
    let head = room_head(&nodes[0].addr(), &owner.token, &room);
    const ROUNDS: usize = 30;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = nodes
        .iter()
        .map(|n| {
            let (addr, token, room) = (n.addr(), owner.token.clone(), room.clone());
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut w = Ws::connect(&addr, &token);
                let mut acks = Vec::new();
                for r in 0..ROUNDS {
                    let cmid = format!("k{r}");
                    barrier.wait();
                    w.send(
                        "send_message",
                        json!({"room_id": room, "content": format!("body {r}"), "client_msg_id": cmid}),
                    );
                    let ack = answer(&mut w, &cmid);
                    assert_eq!(ack["event"], "message_ack", "{ack}");
                    acks.push((ack["data"]["id"].as_i64(), ack["data"]["seq"].as_i64()));
                }
                acks
            })
        })
        .collect();
    let acks: Vec<Vec<_>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(acks[0], acks[1], "both senders of a key get the same ack");
    let rows = db
        .client()
        .query(
            "SELECT client_msg_id, seq FROM messages WHERE room_id = $1::text::uuid
             AND kind = 'message' ORDER BY seq",
            &[&room],
        )
        .unwrap();
    assert_eq!(rows.len(), ROUNDS, "one message per key");
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(seqs, (head + 1..=head + ROUNDS as i64).collect::<Vec<_>>());
}

/// The function looks a client_msg_id up after it holds the room's lock: a message with
/// the key committed by a transaction that held the lock while the call waited is found
/// (the call stores nothing and says so), where a look-up with the statement's first
/// snapshot would miss it and fail on the unique index.
#[test]
fn the_key_look_up_sees_what_the_lock_holder_committed() {
    let db = TestDb::new();
    let node = start(&db);
    let owner = register(&node.addr(), "qlock");
    let room = create_room(&node.addr(), &owner.token);
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM rooms WHERE id = $1::text::uuid FOR UPDATE",
        &[&room],
    )
    .unwrap();
    tx.execute(
        "WITH s AS (UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1::text::uuid
                    RETURNING last_seq)
         INSERT INTO messages (room_id, seq, user_id, username, content, client_msg_id)
         SELECT $1::text::uuid, s.last_seq, $2::text::uuid, 'x', 'first', 'same' FROM s",
        &[&room, &owner.id],
    )
    .unwrap();
    let (url, r, u) = (db.url.clone(), room.clone(), owner.id.clone());
    let caller = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query_one(
            "SELECT o_role, o_seq FROM chat_send_one($1::text::uuid, $2::text::uuid, 'x',
                 'second', 'same', false, ARRAY['owner/false/false/public'], ARRAY[]::text[],
                 'chat_messages', ARRAY['','','','','','',''])",
            &[&r, &u],
        )
        .map(|row| {
            (
                row.get::<_, Option<String>>(0),
                row.get::<_, Option<i64>>(1),
            )
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!caller.is_finished(), "the call waits for the room's lock");
    tx.commit().unwrap();
    let got = caller.join().unwrap();
    assert_eq!(
        got.map_err(|e| e.to_string()),
        Ok((Some("owner".to_string()), None)),
        "the call found the key and stored nothing"
    );
    let n: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE client_msg_id = 'same'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// Quiet sends by a muted member, a banned user and an outsider are refused as the
/// batched path refuses them, and store nothing; once unmuted, the member sends.
#[test]
fn quiet_sends_are_refused_to_the_muted_the_banned_and_outsiders() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (owner, bob, carol, dave) = (
        register(&a, "qo"),
        register(&a, "qb"),
        register(&a, "qc"),
        register(&a, "qd"),
    );
    let room = create_room(&a, &owner.token);
    join_room(&a, &bob.token, &room);
    join_room(&a, &carol.token, &room);
    let post = |path: String| {
        let (status, body) = request(&a, "POST", &path, Some(&owner.token), None);
        assert_eq!(status, 200, "{path}: {body}");
    };
    post(format!("/rooms/{room}/members/{}/mute", bob.id));
    post(format!("/rooms/{room}/members/{}/ban", carol.id));
    let private = {
        let (status, body) = request(
            &a,
            "POST",
            "/rooms",
            Some(&owner.token),
            Some(
                &json!({"name": format!("p-{}", uuid::Uuid::new_v4().simple()), "visibility": "private"}),
            ),
        );
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    };
    let cases = [
        (&bob, &room, "muted"),
        (&carol, &room, "not_member"),
        (&dave, &room, "not_member"),
        (&dave, &private, "room_not_found"),
    ];
    for (i, (who, target, want)) in cases.iter().enumerate() {
        let mut w = Ws::connect(&a, &who.token);
        let cmid = format!("r{i}");
        w.send(
            "send_message",
            json!({"room_id": target, "content": "refused", "client_msg_id": cmid}),
        );
        let e = answer(&mut w, &cmid);
        assert_eq!(
            (e["event"].as_str(), e["data"]["code"].as_str()),
            (Some("error"), Some(*want)),
            "case {i}: {e}"
        );
    }
    let stored: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE content = 'refused'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a refused message was stored");
    post(format!("/rooms/{room}/members/{}/unmute", bob.id));
    let mut w = Ws::connect(&a, &bob.token);
    w.send(
        "send_message",
        json!({"room_id": room, "content": "free", "client_msg_id": "free"}),
    );
    assert_eq!(answer(&mut w, "free")["event"], "message_ack");
}
