//! History pages served through the history cache and the batched membership check:
//! the same answers as the messages table, whatever the cache holds.

use crate::support::*;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;

fn hits(node: &Node) -> u64 {
    node.handle.metrics.history_cache_hits.load(Relaxed)
}

fn page(c: &mut Http, token: &str, room: &str, query: &str) -> (u16, Value) {
    let r = c.call(
        "GET",
        &format!("/rooms/{room}/messages?{query}"),
        Some(token),
        None,
    );
    (r.status, r.json())
}

fn seqs(p: &Value) -> Vec<i64> {
    p["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

/// The rows of the messages table as a page would show them, newest first.
fn table(db: &TestDb, room: &str) -> Vec<Value> {
    let mut c = db.client();
    let room: uuid::Uuid = room.parse().unwrap();
    c.query(
        "SELECT id, seq, user_id, username, content, client_msg_id FROM messages
         WHERE room_id = $1 ORDER BY seq DESC",
        &[&room],
    )
    .unwrap()
    .iter()
    .map(|r| {
        json!({
            "id": r.get::<_, i64>(0),
            "seq": r.get::<_, i64>(1),
            "user_id": r.get::<_, uuid::Uuid>(2).to_string(),
            "username": r.get::<_, String>(3),
            "content": r.get::<_, String>(4),
            "client_msg_id": r.get::<_, Option<String>>(5),
        })
    })
    .collect()
}

/// Pages through the whole room with `limit`, checking cursors on the way.
fn all_pages(c: &mut Http, token: &str, room: &str, limit: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut query = format!("limit={limit}");
    loop {
        let (s, p) = page(c, token, room, &query);
        assert_eq!(s, 200, "{p}");
        let msgs = p["messages"].as_array().unwrap().clone();
        if msgs.len() as i64 == limit {
            assert_eq!(p["next_cursor"], msgs.last().unwrap()["seq"]);
        } else {
            assert_eq!(p["next_cursor"], Value::Null);
        }
        out.extend(msgs);
        match p["next_cursor"].as_i64() {
            Some(cur) => query = format!("limit={limit}&cursor={cur}"),
            None => return out,
        }
    }
}

fn same_as_table(pages: &[Value], rows: &[Value]) {
    assert_eq!(pages.len(), rows.len());
    for (p, r) in pages.iter().zip(rows) {
        for k in ["id", "seq", "user_id", "username", "content"] {
            assert_eq!(p[k], r[k], "{k} of {p}");
        }
        assert_eq!(
            p.get("client_msg_id").cloned().unwrap_or(Value::Null),
            r["client_msg_id"]
        );
        assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn cached_pages_equal_the_table_and_follow_new_messages() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let u = register(&a, "hc");
    let room = create_room(&a, &u.token);
    let mut c = Http::connect(&a);
    let (s, empty) = page(&mut c, &u.token, &room, "");
    assert_eq!((s, seqs(&empty).len()), (200, 0));
    assert_eq!(empty["next_cursor"], Value::Null);
    for i in 1..=130 {
        post_message(
            &mut c,
            &u.token,
            &room,
            &format!("m{i} \"quoted\" \u{e9}\u{1f600}"),
        );
    }
    let rows = table(&db, &room);
    // First pass fills the cache, second is served from it: both equal the table.
    for limit in [50, 7, 100] {
        let before = hits(&node);
        same_as_table(&all_pages(&mut c, &u.token, &room, limit), &rows);
        same_as_table(&all_pages(&mut c, &u.token, &room, limit), &rows);
        assert!(
            hits(&node) > before,
            "limit {limit}: no page came from the cache"
        );
    }
    // Every new message is in the very next read, cached or not.
    for i in 131..=160 {
        post_message(&mut c, &u.token, &room, &format!("m{i}"));
        let (_, p) = page(&mut c, &u.token, &room, "limit=3");
        assert_eq!(seqs(&p), vec![i, i - 1, i - 2]);
    }
    same_as_table(&all_pages(&mut c, &u.token, &room, 50), &table(&db, &room));
    // A cursor above the head is the newest page.
    let (_, p) = page(&mut c, &u.token, &room, "limit=2&cursor=999999");
    assert_eq!(seqs(&p), vec![160, 159]);
}

#[test]
fn a_page_on_another_node_includes_a_message_just_stored() {
    let db = TestDb::new();
    let n1 = start(&db);
    let n2 = start(&db);
    let u = register(&n1.addr(), "hx");
    let room = create_room(&n1.addr(), &u.token);
    let mut c1 = Http::connect(&n1.addr());
    let mut c2 = Http::connect(&n2.addr());
    // A socket in the room on each node: a node hears the notifications of the rooms
    // it has sockets in (their shards), which keep its cache of them current.
    let mut w1 = Ws::connect(&n1.addr(), &u.token);
    w1.join(&room, None);
    let mut w2 = Ws::connect(&n2.addr(), &u.token);
    w2.join(&room, None);
    for i in 1..=60 {
        // Alternate writers so that both nodes' caches hold the room.
        let (w, r) = if i % 2 == 0 {
            (&mut c1, &mut c2)
        } else {
            (&mut c2, &mut c1)
        };
        post_message(w, &u.token, &room, &format!("x{i}"));
        let (_, p) = page(r, &u.token, &room, "limit=2");
        assert_eq!(seqs(&p)[0], i, "node without the write missed seq {i}");
    }
    assert!(hits(&n1) + hits(&n2) > 0);
}

#[test]
fn membership_is_checked_on_every_read() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let owner = register(&a, "ho");
    let other = register(&a, "hn");
    let room = create_room(&a, &owner.token);
    join_room(&a, &other.token, &room);
    let mut c = Http::connect(&a);
    for i in 0..5 {
        post_message(&mut c, &owner.token, &room, &format!("s{i}"));
    }
    for _ in 0..2 {
        assert_eq!(page(&mut c, &other.token, &room, "").0, 200);
    }
    let r = c.call(
        "POST",
        &format!("/rooms/{room}/leave"),
        Some(&other.token),
        None,
    );
    assert_eq!(r.status, 201);
    let (s, b) = page(&mut c, &other.token, &room, "");
    assert_eq!(s, 403, "a cached page leaked to a former member: {b}");
    assert_eq!(b["code"], "not_member");
    assert_eq!(page(&mut c, &owner.token, &room, "").0, 200);
}

#[test]
fn concurrent_readers_each_get_their_own_answer() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let members: Vec<User> = (0..4).map(|_| register(&a, "hm")).collect();
    let outsider = register(&a, "hz");
    let rooms: Vec<String> = members.iter().map(|u| create_room(&a, &u.token)).collect();
    let mut c = Http::connect(&a);
    // Room k holds k + 1 messages, so every answer tells which room it came from.
    for (k, room) in rooms.iter().enumerate() {
        for i in 0..=k {
            post_message(&mut c, &members[k].token, room, &format!("r{k}m{i}"));
        }
    }
    let missing = "00000000-0000-7000-8000-000000000000".to_string();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let a = a.clone();
            let rooms = rooms.clone();
            let members = members.clone();
            let outsider = outsider.clone();
            let missing = missing.clone();
            std::thread::spawn(move || {
                let mut c = Http::connect(&a);
                for i in 0..150 {
                    let k = (t + i) % rooms.len();
                    match i % 3 {
                        0 => {
                            let (s, p) = page(&mut c, &members[k].token, &rooms[k], "");
                            assert_eq!(s, 200);
                            assert_eq!(seqs(&p).len(), k + 1);
                            assert!(
                                p["messages"][0]["content"]
                                    .as_str()
                                    .unwrap()
                                    .starts_with(&format!("r{k}m"))
                            );
                        }
                        1 => assert_eq!(page(&mut c, &outsider.token, &rooms[k], "").0, 403),
                        _ => assert_eq!(page(&mut c, &members[k].token, &missing, "").0, 404),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn with_the_cache_off_pages_are_still_right() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.http.history_cache_mb = 0);
    let a = node.addr();
    let u = register(&a, "hoff");
    let room = create_room(&a, &u.token);
    let mut c = Http::connect(&a);
    for i in 0..30 {
        post_message(&mut c, &u.token, &room, &format!("o{i}"));
    }
    let rows = table(&db, &room);
    same_as_table(&all_pages(&mut c, &u.token, &room, 8), &rows);
    same_as_table(&all_pages(&mut c, &u.token, &room, 8), &rows);
    assert_eq!(hits(&node), 0);
}

/// A membership removed elsewhere (kicked through another node, or its row deleted in SQL
/// by an operator) is seen by the very next read of a page this node serves from its
/// cache: 403 at once, with the cache hit just before.
/// Fails if the check reads membership from anything but the rows as they are now:
/// shown by deciding it in `HEADS_SQL` from the room's stream (any entry by or about the
/// user) instead of `room_members` ("kicked on another node: a cached page leaked:
/// 200").
#[test]
fn membership_removed_on_another_node_or_in_sql_is_checked_on_the_next_read() {
    let db = TestDb::new();
    let n1 = start(&db);
    let n2 = start(&db);
    let (a1, a2) = (n1.addr(), n2.addr());
    let owner = register(&a1, "hk");
    let other = register(&a1, "hr");
    let room = create_room(&a1, &owner.token);
    join_room(&a1, &other.token, &room);
    let mut c = Http::connect(&a1);
    for i in 0..5 {
        post_message(&mut c, &owner.token, &room, &format!("k{i}"));
    }
    let cached_read = |c: &mut Http, what: &str| {
        assert_eq!(page(c, &other.token, &room, "").0, 200, "{what}");
        let before = hits(&n1);
        assert_eq!(page(c, &other.token, &room, "").0, 200, "{what}");
        assert!(
            hits(&n1) > before,
            "{what}: the page did not come from the cache"
        );
    };
    cached_read(&mut c, "before the kick");
    let kick = format!("/rooms/{room}/members/{}/kick", other.id);
    assert_eq!(request(&a2, "POST", &kick, Some(&owner.token), None).0, 200);
    let (s, b) = page(&mut c, &other.token, &room, "");
    assert_eq!(
        (s, b["code"].as_str()),
        (403, Some("not_member")),
        "kicked on another node: a cached page leaked: {s}"
    );
    // Back in, then removed by hand in the database.
    join_room(&a1, &other.token, &room);
    cached_read(&mut c, "after rejoining");
    let (r, u): (uuid::Uuid, uuid::Uuid) = (room.parse().unwrap(), other.id.parse().unwrap());
    let gone = db
        .client()
        .execute(
            "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2",
            &[&r, &u],
        )
        .unwrap();
    assert_eq!(gone, 1);
    let (s, b) = page(&mut c, &other.token, &room, "");
    assert_eq!(
        (s, b["code"].as_str()),
        (403, Some("not_member")),
        "removed in SQL: a cached page leaked: {s}"
    );
    assert_eq!(page(&mut c, &owner.token, &room, "").0, 200);
}
