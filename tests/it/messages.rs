//! Messages after send: edits, deletions, reactions, replies and threads, attachments
//! and search, over real PostgreSQL and real sockets (one node, and three for delivery
//! across nodes). Every change is an entry of the room's stream: live sockets, catch-up
//! and history pages end in the same state.

use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn call(a: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    request(a, method, path, Some(token), body.as_ref())
}

fn code(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["code"].as_str().unwrap_or(""))
}

/// Sends over the socket and returns the ack (or panics with the error).
fn send(w: &mut Ws, room: &str, data: Value, key: &str) -> Value {
    let mut data = data;
    data["room_id"] = json!(room);
    data["client_msg_id"] = json!(key);
    w.send("send_message", data);
    ack(w, key)
}

fn ack(w: &mut Ws, key: &str) -> Value {
    loop {
        let v = w.next_within(Duration::from_secs(10)).expect("an answer");
        match v["event"].as_str() {
            Some("message_ack") if v["data"]["client_msg_id"] == key => return v["data"].clone(),
            Some("error") if v["data"]["client_msg_id"] == key => panic!("refused: {v}"),
            _ => {}
        }
    }
}

/// The error answering `key`.
fn refused(w: &mut Ws, key: &str) -> String {
    loop {
        let v = w.next_within(Duration::from_secs(10)).expect("an answer");
        match v["event"].as_str() {
            Some("error") if v["data"]["client_msg_id"] == key => {
                return v["data"]["code"].as_str().unwrap().to_string();
            }
            Some("message_ack") if v["data"]["client_msg_id"] == key => panic!("accepted: {v}"),
            _ => {}
        }
    }
}

fn change(w: &mut Ws, event: &str, room: &str, id: i64, extra: Value, key: &str) {
    let mut data = json!({"room_id": room, "message_id": id, "client_msg_id": key});
    if let (Some(d), Value::Object(e)) = (data.as_object_mut(), extra) {
        d.extend(e);
    }
    w.send(event, data);
}

/// The state a client reaches by replaying stream entries in order.
#[derive(Default, Debug, PartialEq)]
struct State {
    /// id -> (content, edited, deleted, reactions)
    msgs: std::collections::BTreeMap<
        i64,
        (String, bool, bool, std::collections::BTreeMap<String, i64>),
    >,
}

impl State {
    fn apply(&mut self, m: &Value) {
        let target = m["message_id"].as_i64();
        match m["kind"].as_str().unwrap() {
            "message" => {
                self.msgs.insert(
                    m["id"].as_i64().unwrap(),
                    (
                        m["content"].as_str().unwrap().into(),
                        false,
                        false,
                        Default::default(),
                    ),
                );
            }
            "message_edited" => {
                if let Some(e) = self.msgs.get_mut(&target.unwrap()) {
                    e.0 = m["content"].as_str().unwrap().into();
                    e.1 = true;
                }
            }
            "message_deleted" => {
                if let Some(e) = self.msgs.get_mut(&target.unwrap()) {
                    *e = (String::new(), e.1, true, Default::default());
                }
            }
            "reaction_added" | "reaction_removed" => {
                let add = m["kind"] == "reaction_added";
                if let Some(e) = self.msgs.get_mut(&target.unwrap()) {
                    let emoji = m["data"]["emoji"].as_str().unwrap().to_string();
                    let n = e.3.entry(emoji.clone()).or_insert(0);
                    *n += if add { 1 } else { -1 };
                    if *n == 0 {
                        e.3.remove(&emoji);
                    }
                }
            }
            _ => {}
        }
    }

    /// The state a history read shows: each message row as it is now.
    fn from_history(page: &Value) -> State {
        let mut s = State::default();
        for m in page["messages"].as_array().unwrap() {
            if m["kind"] != "message" {
                continue;
            }
            let reactions = m["reactions"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            s.msgs.insert(
                m["id"].as_i64().unwrap(),
                (
                    m["content"].as_str().unwrap().into(),
                    m["edited_at"].is_string(),
                    m["deleted_at"].is_string(),
                    reactions,
                ),
            );
        }
        s
    }
}

#[test]
fn edits_deletes_and_reactions_with_every_refusal() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (ann, bob) = (register(&a, "eann"), register(&a, "ebob"));
    let room = create_room(&a, &ann.token);
    join_room(&a, &bob.token, &room);
    let mut wa = Ws::connect(&a, &ann.token);
    wa.join(&room, None);
    let mut wb = Ws::connect(&a, &bob.token);
    wb.join(&room, None);
    let first = send(&mut wa, &room, json!({"content": "helo"}), "m1");
    let id = first["id"].as_i64().unwrap();

    // Edit: the author; an entry of its own with its own seq; retried once.
    change(
        &mut wa,
        "edit_message",
        &room,
        id,
        json!({"content": "hello"}),
        "e1",
    );
    let e = ack(&mut wa, "e1");
    change(
        &mut wa,
        "edit_message",
        &room,
        id,
        json!({"content": "hello"}),
        "e1",
    );
    assert_eq!(
        ack(&mut wa, "e1")["seq"],
        e["seq"],
        "a retried edit applies once"
    );
    let live = wb.expect_where("new_message", |m| m["kind"] == "message_edited");
    assert_eq!(
        (live["message_id"].as_i64(), live["content"].as_str()),
        (Some(id), Some("hello"))
    );
    assert!(live["edited_at"].is_string());
    // Refusals: someone else's message, another room's, an unknown one, bad input.
    change(
        &mut wb,
        "edit_message",
        &room,
        id,
        json!({"content": "x"}),
        "e2",
    );
    assert_eq!(refused(&mut wb, "e2"), "forbidden");
    let other = create_room(&a, &bob.token);
    change(
        &mut wa,
        "edit_message",
        &other,
        id,
        json!({"content": "x"}),
        "e3",
    );
    assert_eq!(refused(&mut wa, "e3"), "not_member");
    join_room(&a, &ann.token, &other);
    change(
        &mut wa,
        "edit_message",
        &other,
        id,
        json!({"content": "x"}),
        "e4",
    );
    assert_eq!(refused(&mut wa, "e4"), "message_not_found");
    change(
        &mut wa,
        "edit_message",
        &room,
        id + 1000,
        json!({"content": "x"}),
        "e5",
    );
    assert_eq!(refused(&mut wa, "e5"), "message_not_found");
    wa.send(
        "edit_message",
        json!({"room_id": room, "message_id": id, "content": ""}),
    );
    assert_eq!(wa.expect("error")["code"], "invalid_payload");
    // Earlier versions.
    let (s, v) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages/{id}/edits"),
        &bob.token,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v[0]["content"], "helo");

    // Reactions: one per (user, message, emoji); validated; bounded per message.
    for (who, w, key) in [(&ann, &mut wa, "r1"), (&bob, &mut wb, "r2")] {
        let _ = who;
        change(w, "react", &room, id, json!({"emoji": "👍"}), key);
        ack(w, key);
    }
    change(&mut wb, "react", &room, id, json!({"emoji": "👍"}), "r3");
    assert_eq!(refused(&mut wb, "r3"), "already_reacted");
    change(&mut wb, "react", &room, id, json!({"emoji": "lol"}), "r4");
    assert_eq!(refused(&mut wb, "r4"), "invalid_payload");
    change(&mut wb, "unreact", &room, id, json!({"emoji": "🎉"}), "r5");
    assert_eq!(refused(&mut wb, "r5"), "not_reacted");
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages"),
        &bob.token,
        None,
    );
    let msg = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(msg["reactions"]["👍"], 2);
    assert_eq!(page["my_reactions"][id.to_string()], json!(["👍"]));
    change(&mut wb, "unreact", &room, id, json!({"emoji": "👍"}), "r6");
    ack(&mut wb, "r6");
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages"),
        &bob.token,
        None,
    );
    assert!(page["my_reactions"].get(id.to_string()).is_none(), "{page}");

    // Delete: not someone else's (for a member); the content leaves storage; a
    // tombstone keeps the seq; nothing more can happen to it.
    change(&mut wb, "delete_message", &room, id, json!({}), "d1");
    assert_eq!(refused(&mut wb, "d1"), "forbidden");
    let r = call(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{id}"),
        &ann.token,
        None,
    );
    assert_eq!((r.0, r.1["kind"].as_str()), (200, Some("message_deleted")));
    let leftovers: i64 = db
        .client()
        .query_one(
            "SELECT (SELECT count(*) FROM messages WHERE content LIKE '%hel%')
                  + (SELECT count(*) FROM message_edits)
                  + (SELECT count(*) FROM message_reactions)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        leftovers, 0,
        "a deleted message's content is gone from the database"
    );
    change(
        &mut wa,
        "edit_message",
        &room,
        id,
        json!({"content": "back"}),
        "e9",
    );
    assert_eq!(refused(&mut wa, "e9"), "message_deleted");
    let r = call(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{id}"),
        &ann.token,
        None,
    );
    assert_eq!(code(&r), (404, "message_not_found"));
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages"),
        &ann.token,
        None,
    );
    let tomb = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(
        (tomb["content"].as_str(), tomb["deleted_at"].is_string()),
        (Some(""), true)
    );
    // An admin may delete others' messages.
    let bobs = send(&mut wb, &room, json!({"content": "by bob"}), "b1");
    let r = call(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{}", bobs["id"]),
        &ann.token,
        None,
    );
    assert_eq!(r.0, 200, "{}", r.1);
}

#[test]
fn replies_threads_and_attachments() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let ann = register(&a, "tann");
    let room = create_room(&a, &ann.token);
    let other = create_room(&a, &ann.token);
    let mut w = Ws::connect(&a, &ann.token);
    w.join(&room, None);
    let root = send(&mut w, &room, json!({"content": "root"}), "root")["id"]
        .as_i64()
        .unwrap();
    let elsewhere = send(&mut w, &other, json!({"content": "x"}), "x")["id"]
        .as_i64()
        .unwrap();
    for i in 0..3 {
        send(
            &mut w,
            &room,
            json!({"content": format!("reply {i}"), "reply_to": root}),
            &format!("rp{i}"),
        );
    }
    // A reply to another room's message, or to nothing: refused, nothing stored.
    w.send(
        "send_message",
        json!({"room_id": room, "content": "bad", "reply_to": elsewhere, "client_msg_id": "bad1"}),
    );
    assert_eq!(refused(&mut w, "bad1"), "message_not_found");
    let (s, b) = call(
        &a,
        "POST",
        &format!("/rooms/{room}/messages"),
        &ann.token,
        Some(json!({"content": "bad", "reply_to": 99999999})),
    );
    assert_eq!(code(&(s, b)), (404, "message_not_found"));
    let (_, t) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?thread={root}&limit=2"),
        &ann.token,
        None,
    );
    let replies: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(replies, vec!["reply 2", "reply 1"]);
    let cursor = t["next_cursor"].as_str().unwrap();
    let (_, t) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?thread={root}&cursor={cursor}"),
        &ann.token,
        None,
    );
    assert_eq!(t["messages"][0]["content"], "reply 0");
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages"),
        &ann.token,
        None,
    );
    let r = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == root)
        .unwrap()
        .clone();
    assert_eq!(r["reply_count"], 3);
    assert!(r["last_reply_at"].is_string());

    // Attachments: checked, stored, relayed.
    let file = json!({"url": "https://files.example/a.png", "name": "a.png", "mime": "image/png", "size": 1234});
    let m = send(
        &mut w,
        &room,
        json!({"content": "see", "attachments": [file]}),
        "att",
    );
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=1"),
        &ann.token,
        None,
    );
    assert_eq!(page["messages"][0]["id"], m["id"]);
    assert_eq!(
        page["messages"][0]["attachments"][0]["url"],
        "https://files.example/a.png"
    );
    for bad in [
        json!([{"url": "javascript:alert(1)", "name": "a", "mime": "a/b", "size": 1}]),
        json!([{"url": "https://x.example", "name": "a", "mime": "nope", "size": 1}]),
        json!((0..11).map(|_| file.clone()).collect::<Vec<_>>()),
    ] {
        let r = call(
            &a,
            "POST",
            &format!("/rooms/{room}/messages"),
            &ann.token,
            Some(json!({"content": "x", "attachments": bad})),
        );
        assert_eq!(code(&r), (400, "invalid_payload"), "{}", r.1);
    }
}

#[test]
fn search_finds_live_messages_of_my_rooms_only() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (ann, eve) = (register(&a, "sann"), register(&a, "seve"));
    let room = create_room(&a, &ann.token);
    let secret = create_room(&a, &eve.token);
    let mut h = Http::connect(&a);
    let mut first = None;
    for i in 0..12 {
        let m = post_message(
            &mut h,
            &ann.token,
            &room,
            &format!("the quick brown fox number {i}"),
        );
        first.get_or_insert(m["id"].as_i64().unwrap());
    }
    post_message(&mut h, &ann.token, &room, "fox fox fox fox");
    post_message(&mut h, &eve.token, &secret, "a fox in a private place");
    let gone = post_message(&mut h, &ann.token, &room, "a deleted fox");
    call(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{}", gone["id"]),
        &ann.token,
        None,
    );
    // Indexing follows the stream off the send path: wait until both rooms are indexed.
    for (r, t) in [(&room, &ann.token), (&secret, &eve.token)] {
        let head = room_head(&a, t, r);
        let id: uuid::Uuid = r.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let done: Option<i64> = db
                .client()
                .query_opt(
                    "SELECT indexed_seq FROM search_progress WHERE room_id = $1",
                    &[&id],
                )
                .unwrap()
                .map(|row| row.get(0));
            if done.is_some_and(|d| d >= head) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "room never indexed: {done:?} of {head}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let indexed: i64 = db
        .client()
        .query_one("SELECT count(*) FROM message_search", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        indexed, 14,
        "live messages only: the deleted one left the index"
    );
    // Newest first, paged by an opaque cursor.
    let (s, r) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/search?q=fox&limit=5"),
        &ann.token,
        None,
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["messages"][0]["content"], "fox fox fox fox");
    let ids = |r: &Value| -> Vec<i64> {
        r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect()
    };
    let mut all = ids(&r);
    let mut cursor = r["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (_, r) = call(
            &a,
            "GET",
            &format!("/rooms/{room}/search?q=fox&limit=5&cursor={c}"),
            &ann.token,
            None,
        );
        all.extend(ids(&r));
        cursor = r["next_cursor"].as_str().map(str::to_string);
    }
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    assert_eq!(all.last(), first.as_ref(), "the oldest match last");
    let seen = all.len();
    let r = call(
        &a,
        "GET",
        &format!("/rooms/{room}/search?q=fox&cursor=x1"),
        &ann.token,
        None,
    );
    assert_eq!(code(&r), (400, "invalid_payload"));
    assert_eq!(seen, 13, "every live match once; the deleted one never");
    // Across my rooms: never another's room.
    let (_, r) = call(&a, "GET", "/me/search?q=private", &ann.token, None);
    assert_eq!(r["messages"].as_array().unwrap().len(), 0);
    let (_, r) = call(&a, "GET", "/me/search?q=private", &eve.token, None);
    assert_eq!(r["messages"].as_array().unwrap().len(), 1);
    let r = call(
        &a,
        "GET",
        &format!("/rooms/{secret}/search?q=fox"),
        &ann.token,
        None,
    );
    assert_eq!(code(&r), (403, "not_member"));
    let r = call(
        &a,
        "GET",
        &format!("/rooms/{room}/search?q="),
        &ann.token,
        None,
    );
    assert_eq!(code(&r), (400, "validation_failed"));
    // An edit is re-indexed: its new words are found, its old ones no longer.
    let first = first.unwrap();
    let (s, _) = call(
        &a,
        "PATCH",
        &format!("/rooms/{room}/messages/{first}"),
        &ann.token,
        Some(json!({"content": "a zebra instead"})),
    );
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, z) = call(&a, "GET", "/me/search?q=zebra", &ann.token, None);
        if z["messages"].as_array().unwrap().len() == 1 {
            assert_eq!(z["messages"][0]["id"], first);
            break;
        }
        assert!(Instant::now() < deadline, "the edit was never indexed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, r) = call(&a, "GET", "/me/search?q=number&limit=50", &ann.token, None);
    assert_eq!(r["messages"].as_array().unwrap().len(), 11);
}

/// A socket that reconnects with `last_seen_seq` in the middle of edits, deletions and
/// reactions, on another node, ends in the same state as a fresh history read; every
/// entry reaches every socket once, in seq order.
#[test]
fn replaying_the_stream_equals_reading_history_across_nodes() {
    let db = TestDb::new();
    let nodes = [start(&db), start(&db), start(&db)];
    let a = nodes[0].addr();
    let (ann, bob) = (register(&a, "pann"), register(&a, "pbob"));
    let room = create_room(&a, &ann.token);
    join_room(&a, &bob.token, &room);
    let head = room_head(&a, &ann.token, &room);
    let mut wa = Ws::connect(&nodes[0].addr(), &ann.token);
    wa.join(&room, None);
    let mut watcher = Ws::connect(&nodes[2].addr(), &bob.token);
    watcher.join(&room, None);
    let mut reader = Ws::connect(&nodes[1].addr(), &bob.token);
    reader.join(&room, None);
    let mut state = State::default();
    let mut seqs: Vec<i64> = Vec::new();
    let absorb = |v: &Value, state: &mut State, seqs: &mut Vec<i64>| {
        let list: Vec<Value> = match v["event"].as_str() {
            Some("new_message") => vec![v["data"].clone()],
            Some("new_message_batch") => v["data"].as_array().unwrap().clone(),
            Some("history") => v["data"]["messages"].as_array().unwrap().clone(),
            _ => vec![],
        };
        for m in list {
            seqs.push(m["seq"].as_i64().unwrap());
            state.apply(&m);
        }
    };
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            send(
                &mut wa,
                &room,
                json!({"content": format!("m{i}")}),
                &format!("m{i}"),
            )["id"]
                .as_i64()
                .unwrap(),
        );
    }
    // The reader drops out midway.
    while seqs.len() < 5 {
        if let Some(v) = reader.next_within(Duration::from_millis(200)) {
            absorb(&v, &mut state, &mut seqs);
        }
    }
    drop(reader);
    for (i, id) in ids.iter().enumerate() {
        match i % 4 {
            0 => change(
                &mut wa,
                "edit_message",
                &room,
                *id,
                json!({"content": format!("edited {i}")}),
                &format!("c{i}"),
            ),
            1 => change(
                &mut wa,
                "delete_message",
                &room,
                *id,
                json!({}),
                &format!("c{i}"),
            ),
            2 => change(
                &mut wa,
                "react",
                &room,
                *id,
                json!({"emoji": "🎉"}),
                &format!("c{i}"),
            ),
            _ => change(
                &mut wa,
                "react",
                &room,
                *id,
                json!({"emoji": "👀"}),
                &format!("c{i}"),
            ),
        }
        ack(&mut wa, &format!("c{i}"));
    }
    change(
        &mut wa,
        "unreact",
        &room,
        ids[3],
        json!({"emoji": "👀"}),
        "u3",
    );
    ack(&mut wa, "u3");
    let total = head + 10 + 10 + 1;
    // Back on another node, from its position.
    let mut back = Ws::connect(&nodes[2].addr(), &bob.token);
    let last = *seqs.last().unwrap();
    back.send("join_room", json!({"room_id": room, "last_seen_seq": last}));
    while (seqs.len() as i64) < total - head {
        let v = back.next_within(Duration::from_secs(10)).expect("catch-up");
        absorb(&v, &mut state, &mut seqs);
    }
    assert_exact(&seqs, head + 1, total);
    // The watcher, joined all along on a third node, saw every entry once in order.
    let watched = watcher.collect_seqs((total - head) as usize, Duration::from_secs(10));
    assert_exact(&watched, head + 1, total);
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=100"),
        &bob.token,
        None,
    );
    assert_eq!(state, State::from_history(&page));
}

/// Deleting a room leaves none of its rows behind: messages, edit history, reactions,
/// search entries and progress, memberships.
#[test]
fn deleting_a_room_leaves_nothing_of_it() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let ann = register(&a, "dann");
    let room = create_room(&a, &ann.token);
    let mut h = Http::connect(&a);
    let m = post_message(&mut h, &ann.token, &room, "words to index");
    let id = m["id"].as_i64().unwrap();
    let (s, _) = call(
        &a,
        "PATCH",
        &format!("/rooms/{room}/messages/{id}"),
        &ann.token,
        Some(json!({"content": "other words"})),
    );
    assert_eq!(s, 200);
    let (s, _) = call(
        &a,
        "PUT",
        &format!("/rooms/{room}/messages/{id}/reactions/%F0%9F%91%8D"),
        &ann.token,
        None,
    );
    assert_eq!(s, 200);
    let rid: uuid::Uuid = room.parse().unwrap();
    let count = |table: &str| -> i64 {
        db.client()
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE room_id = $1"),
                &[&rid],
            )
            .unwrap()
            .get(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count("message_search") == 0 || count("search_progress") == 0 {
        assert!(Instant::now() < deadline, "never indexed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((count("message_edits"), count("message_reactions")), (1, 1));
    let (s, _) = call(&a, "DELETE", &format!("/rooms/{room}"), &ann.token, None);
    assert_eq!(s, 200);
    for table in [
        "messages",
        "message_edits",
        "message_reactions",
        "message_search",
        "search_progress",
        "room_members",
    ] {
        assert_eq!(count(table), 0, "{table} kept rows of a deleted room");
    }
}

/// Waits until `who`'s `/me/search?q=` finds exactly `n` messages.
fn found(a: &str, who: &User, q: &str, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, r) = call(a, "GET", &format!("/me/search?q={q}"), &who.token, None);
        assert_eq!(s, 200, "{what}: {r}");
        let got = r["messages"].as_array().unwrap().len();
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {got} found, {n} expected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The whole database as `pg_dump --data-only` writes it.
fn dump(db: &TestDb) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", &db.url])
        .output()
        .expect("pg_dump runs (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deleting a message the indexer already indexed, and one that was edited first, leaves
/// no trace of their words in any table (a `pg_dump --data-only` of the whole database
/// holds none of them); search finds them no more. The edit history is for members only,
/// and `/me/search` shows a private room's messages to its members only: never to an
/// outsider, nor after leaving, a kick or a ban.
/// Fails if a deletion leaves the search row: shown by removing the `DELETE FROM
/// message_search` of a deletion in `chat::edits` ("zebracorn is still in the database
/// after the deletion: [\"...\t1\t'alpha':2 'zebracorn':1\"]": search itself no longer
/// showed it). Fails if /me/search skips membership: shown by making `SEARCH_SQL`'s
/// `room_members` join a LEFT JOIN ("an outsider finds it: 1 found, 0 expected").
#[test]
fn deleted_messages_leave_no_trace_and_search_is_for_members_only() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (ann, bob, eve) = (
        register(&a, "xann"),
        register(&a, "xbob"),
        register(&a, "xeve"),
    );
    let room = create_room(&a, &ann.token);
    let mut h = Http::connect(&a);
    let plain = post_message(&mut h, &ann.token, &room, "zebracorn alpha")["id"]
        .as_i64()
        .unwrap();
    let edited = post_message(&mut h, &ann.token, &room, "quokkafish beta")["id"]
        .as_i64()
        .unwrap();
    let r = call(
        &a,
        "PATCH",
        &format!("/rooms/{room}/messages/{edited}"),
        &ann.token,
        Some(json!({"content": "platypod gamma"})),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    found(&a, &ann, "zebracorn", 1, "the plain message indexed");
    found(&a, &ann, "platypod", 1, "the edit indexed");
    // The edit history: members only, also after leaving.
    let edits = format!("/rooms/{room}/messages/{edited}/edits");
    let (s, v) = call(&a, "GET", &edits, &ann.token, None);
    assert_eq!(
        (s, v[0]["content"].as_str()),
        (200, Some("quokkafish beta"))
    );
    assert_eq!(
        code(&call(&a, "GET", &edits, &eve.token, None)),
        (403, "not_member")
    );
    join_room(&a, &eve.token, &room);
    assert_eq!(call(&a, "GET", &edits, &eve.token, None).0, 200);
    assert_eq!(
        call(
            &a,
            "POST",
            &format!("/rooms/{room}/leave"),
            &eve.token,
            None
        )
        .0,
        201
    );
    assert_eq!(
        code(&call(&a, "GET", &edits, &eve.token, None)),
        (403, "not_member")
    );
    for id in [plain, edited] {
        let r = call(
            &a,
            "DELETE",
            &format!("/rooms/{room}/messages/{id}"),
            &ann.token,
            None,
        );
        assert_eq!(r.0, 200, "{}", r.1);
    }
    found(&a, &ann, "zebracorn", 0, "a deleted message found");
    found(&a, &ann, "platypod", 0, "a deleted edited message found");
    let text = dump(&db);
    for word in ["zebracorn", "quokkafish", "platypod"] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(word)).collect();
        assert!(
            lines.is_empty(),
            "{word} is still in the database after the deletion: {lines:?}"
        );
    }

    // A private room: its member finds it, an outsider never; leaving, a kick and a ban
    // each end it at once.
    let (s, b) = call(
        &a,
        "POST",
        "/rooms",
        &ann.token,
        Some(json!({"name": "hidden", "visibility": "private"})),
    );
    assert_eq!(s, 201, "{b}");
    let secret = b["id"].as_str().unwrap().to_string();
    let invite_and_join = || {
        let inv = format!("/rooms/{secret}/invites");
        assert_eq!(
            call(
                &a,
                "POST",
                &inv,
                &ann.token,
                Some(json!({"user_id": bob.id}))
            )
            .0,
            201
        );
        assert_eq!(
            call(
                &a,
                "POST",
                &format!("/rooms/{secret}/join"),
                &bob.token,
                None
            )
            .0,
            201
        );
    };
    invite_and_join();
    post_message(&mut h, &ann.token, &secret, "nimbusword here");
    found(&a, &bob, "nimbusword", 1, "a member finds it");
    found(&a, &eve, "nimbusword", 0, "an outsider finds it");
    let member = |act: &str| format!("/rooms/{secret}/members/{}/{act}", bob.id);
    for (how, path, token) in [
        ("leaving", format!("/rooms/{secret}/leave"), &bob.token),
        ("a kick", member("kick"), &ann.token),
        ("a ban", member("ban"), &ann.token),
    ] {
        let r = call(&a, "POST", &path, token, None);
        assert!(r.0 == 200 || r.0 == 201, "{how}: {}", r.1);
        let (s, r) = call(&a, "GET", "/me/search?q=nimbusword", &bob.token, None);
        assert_eq!(
            (s, r["messages"].as_array().unwrap().len()),
            (200, 0),
            "found after {how}: {r}"
        );
        if how != "a ban" {
            invite_and_join();
            found(
                &a,
                &bob,
                "nimbusword",
                1,
                &format!("a member again after {how}"),
            );
        }
    }
    found(&a, &eve, "nimbusword", 0, "an outsider at the end");
}
