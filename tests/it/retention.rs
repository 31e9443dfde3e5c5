//! Retention: expired messages are deleted in batches by whichever node holds the lock,
//! rooms override the server's period, and history, join history and catch-up start at
//! the room's horizon and say so, never showing a gap.

use crate::support::*;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

fn retaining(db: &TestDb, days: u32) -> Node {
    start_with(db, |c| {
        c.retention.max_age_days = days;
        c.retention.interval_secs = 1;
        c.retention.batch_size = 7;
        c.retention.pause_ms = 0;
        c.http.history_cache_mb = 0;
    })
}

/// Makes seqs `..= upto` of `room` look `days` days old.
fn age(db: &TestDb, room: &str, upto: i64, days: i32) {
    let room: uuid::Uuid = room.parse().unwrap();
    db.client()
        .execute(
            "UPDATE messages SET created_at = now() - make_interval(days => $3)
             WHERE room_id = $1 AND seq <= $2",
            &[&room, &upto, &days],
        )
        .unwrap();
}

fn first_seq(db: &TestDb, room: &str) -> i64 {
    let room: uuid::Uuid = room.parse().unwrap();
    db.client()
        .query_one("SELECT first_seq FROM rooms WHERE id = $1", &[&room])
        .unwrap()
        .get(0)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn page(addr: &str, token: &str, room: &str, query: &str) -> Value {
    let (status, body) = request(
        addr,
        "GET",
        &format!("/rooms/{room}/messages{query}"),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn seqs(v: &Value) -> Vec<i64> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

fn patch_room(addr: &str, token: &str, room: &str, body: Value) -> (u16, Value) {
    request(
        addr,
        "PATCH",
        &format!("/rooms/{room}"),
        Some(token),
        Some(&body),
    )
}

#[test]
fn expired_messages_go_and_readers_start_at_the_horizon() {
    let db = TestDb::new();
    let node = retaining(&db, 1);
    let addr = node.addr();
    let u = register(&addr, "rt");
    let room = create_room(&addr, &u.token);
    let mut h = Http::connect(&addr);
    let mut sent = Vec::new();
    for i in 0..40 {
        sent.push(post_message(&mut h, &u.token, &room, &format!("m{i}")));
    }
    // A reaction and an edit on a message that will expire: their rows go with it.
    let doomed = sent[2]["id"].as_i64().unwrap();
    let (s, b) = request(
        &addr,
        "PUT",
        &format!("/rooms/{room}/messages/{doomed}/reactions/%F0%9F%91%8D"),
        Some(&u.token),
        None,
    );
    assert!(s == 200 || s == 201, "{b}");
    let (s, b) = request(
        &addr,
        "PATCH",
        &format!("/rooms/{room}/messages/{doomed}"),
        Some(&u.token),
        Some(&json!({"content": "m2 edited"})),
    );
    assert_eq!(s, 200, "{b}");
    let horizon = sent[25]["seq"].as_i64().unwrap();
    let head = room_head(&addr, &u.token, &room);
    age(&db, &room, horizon - 1, 2);

    wait_for("retention removes the expired prefix", || {
        first_seq(&db, &room) == horizon
    });
    let left: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE room_id = $1::text::uuid",
            &[&room],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, head - horizon + 1, "exactly the expired prefix went");
    assert_eq!(
        node.handle.metrics.retention_deleted.load(Relaxed),
        (horizon - 1) as u64
    );
    let orphans: i64 = db
        .client()
        .query_one(
            "SELECT (SELECT count(*) FROM message_reactions WHERE message_id = $1)
                  + (SELECT count(*) FROM message_edits WHERE message_id = $1)",
            &[&doomed],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        orphans, 0,
        "reactions and edit history go with their message"
    );

    // History: the newest page is whole; paging down ends at the horizon, which the
    // last page names.
    let all = page(&addr, &u.token, &room, "?limit=100");
    assert_eq!(seqs(&all), (horizon..=head).rev().collect::<Vec<_>>());
    assert_eq!(all["first_seq"], horizon);
    assert!(all["next_cursor"].is_null());
    let newest = page(&addr, &u.token, &room, "?limit=5");
    assert!(newest.get("first_seq").is_none(), "{newest}");
    let low = page(
        &addr,
        &u.token,
        &room,
        &format!("?limit=10&cursor={}", horizon + 4),
    );
    assert_eq!(seqs(&low), (horizon..horizon + 4).rev().collect::<Vec<_>>());
    assert_eq!(low["first_seq"], horizon);
    assert!(low["next_cursor"].is_null());
    let below = page(&addr, &u.token, &room, &format!("?cursor={}", horizon - 3));
    assert_eq!(seqs(&below), Vec::<i64>::new());
    assert_eq!(below["first_seq"], horizon);

    // A socket back from before the horizon: told where it is, then every remaining
    // seq exactly once.
    let mut w = Ws::connect(&addr, &u.token);
    w.send("join_room", json!({ "room_id": room, "last_seen_seq": 3 }));
    let mut got = Vec::new();
    let mut told = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.last() != Some(&head) {
        assert!(
            Instant::now() < deadline,
            "caught up to {:?} of {head}",
            got.last()
        );
        let Some(v) = w.next_within(Duration::from_millis(500)) else {
            continue;
        };
        if v["event"] == "history" {
            told = v["data"]["first_seq"].as_i64();
        }
        got.extend(message_seqs(&v));
    }
    assert_eq!(told, Some(horizon), "the history frame names the horizon");
    assert_exact(&got, horizon, head);
    // A socket that last saw a message after the horizon hears nothing of it.
    let mut w2 = Ws::connect(&addr, &u.token);
    let hist = w2.join(&room, Some(horizon + 2)).unwrap();
    assert!(hist.get("first_seq").is_none(), "{hist}");
    assert_eq!(hist["messages"][0]["seq"], horizon + 3);
}

#[test]
fn rooms_override_the_server_period() {
    let db = TestDb::new();
    let node = retaining(&db, 1);
    let addr = node.addr();
    let owner = register(&addr, "ro");
    let other = register(&addr, "rx");
    let forever = create_room(&addr, &owner.token);
    let week = create_room(&addr, &owner.token);
    let default = create_room(&addr, &owner.token);
    join_room(&addr, &other.token, &week);

    // Bad values and non-admins are refused; the room shows its setting.
    let (s, b) = patch_room(&addr, &owner.token, &week, json!({"retention_days": -1}));
    assert_eq!(s, 400, "{b}");
    let (s, b) = patch_room(&addr, &owner.token, &week, json!({"retention_days": "7"}));
    assert_eq!(s, 400, "{b}");
    let (s, _) = patch_room(&addr, &other.token, &week, json!({"retention_days": 1}));
    assert_eq!(s, 403);
    let (s, b) = patch_room(&addr, &owner.token, &week, json!({"retention_days": 7}));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["retention_days"], 7);
    let (s, b) = patch_room(&addr, &owner.token, &forever, json!({"retention_days": 0}));
    assert_eq!(s, 200, "{b}");

    let mut h = Http::connect(&addr);
    for room in [&forever, &week, &default] {
        for i in 0..6 {
            post_message(&mut h, &owner.token, room, &format!("x{i}"));
        }
    }
    let cuts: Vec<i64> = [&forever, &week, &default]
        .iter()
        .map(|room| room_head(&addr, &owner.token, room) - 2)
        .collect();
    let cut = |room: &str| {
        cuts[[&forever, &week, &default]
            .iter()
            .position(|r| *r == room)
            .unwrap()]
    };
    // All but the newest two three days old, the oldest of `week` ten days.
    for room in [&forever, &week, &default] {
        age(&db, room, cut(room), 3);
    }
    age(&db, &week, 2, 10);
    wait_for("the default room expires", || {
        first_seq(&db, &default) == cut(&default) + 1
    });
    wait_for("the week room expires past seven days only", || {
        first_seq(&db, &week) == 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        first_seq(&db, &forever),
        1,
        "retention_days 0 keeps forever"
    );
    assert_eq!(first_seq(&db, &week), 3);

    // Back to the server's period: the rest of `week` expires too.
    let (s, b) = patch_room(&addr, &owner.token, &week, json!({"retention_days": null}));
    assert_eq!(s, 200, "{b}");
    assert!(b["retention_days"].is_null());
    wait_for("the week room follows the server again", || {
        first_seq(&db, &week) == cut(&week) + 1
    });
}

#[test]
fn one_node_deletes_at_a_time() {
    let db = TestDb::new();
    let a = retaining(&db, 1);
    let b = retaining(&db, 1);
    let u = register(&a.addr(), "rl");
    let room = create_room(&a.addr(), &u.token);
    let mut h = Http::connect(&a.addr());
    for i in 0..30 {
        post_message(&mut h, &u.token, &room, &format!("y{i}"));
    }
    let upto = room_head(&a.addr(), &u.token, &room) - 1;
    // While someone else holds the deleters' lock, no node deletes.
    let mut holder = db.client();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&0x6368_6174_645f_7274_i64])
        .unwrap();
    age(&db, &room, upto, 2);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(first_seq(&db, &room), 1, "nothing deleted without the lock");
    holder
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&0x6368_6174_645f_7274_i64],
        )
        .unwrap();
    wait_for("deleted once the lock is free", || {
        first_seq(&db, &room) == upto + 1
    });
    let deleted = a.handle.metrics.retention_deleted.load(Relaxed)
        + b.handle.metrics.retention_deleted.load(Relaxed);
    assert_eq!(deleted, upto as u64, "each row deleted once, by one node");
}

/// With the history cache on (every other test here turns it off): pages read (and
/// cached) before the expired prefix goes start at the horizon right after; the expired
/// messages' search rows go with them, a message with attachments among them, and a
/// `pg_dump --data-only` of the database holds none of their words.
/// Fails if the deleter leaves the search rows: shown by removing the `search` step from
/// `chat::retention`'s DELETE_SQL ("search rows of expired messages left: 3"); likewise
/// the `mentioned` step and the mention rows.
#[test]
fn expiry_with_the_history_cache_on_removes_search_rows_and_attachments() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        c.retention.max_age_days = 1;
        c.retention.interval_secs = 1;
        c.retention.batch_size = 7;
        c.retention.pause_ms = 0;
    });
    let addr = node.addr();
    let u = register(&addr, "rc");
    let room = create_room(&addr, &u.token);
    let mut h = Http::connect(&addr);
    let file = json!({"url": "https://files.example/old.png", "name": "old.png", "mime": "image/png", "size": 9});
    let r = h.call(
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&u.token),
        Some(&json!({"content": "gryphonic attached", "attachments": [file]})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // An expired message that mentions a member: its mention row goes with it.
    let m = register(&addr, "rcm");
    join_room(&addr, &m.token, &room);
    for i in 0..2 {
        post_message(
            &mut h,
            &u.token,
            &room,
            &format!("gryphonic old {i} @{}", m.username),
        );
    }
    let horizon = room_head(&addr, &u.token, &room) + 1;
    for i in 0..5 {
        post_message(&mut h, &u.token, &room, &format!("recent {i}"));
    }
    let head = room_head(&addr, &u.token, &room);
    // Indexed, and the pages cached.
    let rid: uuid::Uuid = room.parse().unwrap();
    wait_for("the room is indexed", || {
        db.client()
            .query_opt(
                "SELECT indexed_seq FROM search_progress WHERE room_id = $1",
                &[&rid],
            )
            .unwrap()
            .is_some_and(|r| r.get::<_, i64>(0) >= head)
    });
    let hits = || node.handle.metrics.history_cache_hits.load(Relaxed);
    page(&addr, &u.token, &room, "?limit=100");
    let before = hits();
    assert_eq!(
        seqs(&page(&addr, &u.token, &room, "?limit=100")).len() as i64,
        head
    );
    assert!(hits() > before, "the page did not come from the cache");
    age(&db, &room, horizon - 1, 2);
    wait_for("retention removes the expired prefix", || {
        first_seq(&db, &room) == horizon
    });
    let all = page(&addr, &u.token, &room, "?limit=100");
    assert_eq!(seqs(&all), (horizon..=head).rev().collect::<Vec<_>>());
    assert_eq!(all["first_seq"], horizon);
    let left: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM message_search s WHERE room_id = $1
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = s.message_id)",
            &[&rid],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "search rows of expired messages left: {left}");
    let mentions: i64 = db
        .client()
        .query_one("SELECT count(*) FROM mentions WHERE room_id = $1", &[&rid])
        .unwrap()
        .get(0);
    assert_eq!(
        mentions, 0,
        "mention rows of expired messages left: {mentions}"
    );
    let (s, found) = request(&addr, "GET", "/me/search?q=gryphonic", Some(&u.token), None);
    assert_eq!(
        (s, found["messages"].as_array().unwrap().len()),
        (200, 0),
        "{found}"
    );
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", &db.url])
        .output()
        .expect("pg_dump runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["gryphonic", "old.png"] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(word)).collect();
        assert!(lines.is_empty(), "{word} left after expiry: {lines:?}");
    }
}
