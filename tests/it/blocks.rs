//! Blocking on two nodes: a block stops both members of a direct room from sending
//! into it (over WebSocket and REST, on either node, stored nowhere), stops either from
//! opening the pair's room and the blocked user from inviting the blocker, leaves
//! shared rooms alone, is listed to the blocker only, lifts with unblock, and is
//! limited per user.

use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(token), body)
}

fn code(r: &(u16, Value)) -> (u16, String) {
    (r.0, r.1["code"].as_str().unwrap_or("").to_string())
}

fn post(addr: &str, token: &str, room: &str, text: &str) -> (u16, Value) {
    call(
        addr,
        "POST",
        &format!("/rooms/{room}/messages"),
        token,
        Some(&json!({ "content": text })),
    )
}

fn open_dm(addr: &str, token: &str, user: &str) -> (u16, Value) {
    call(
        addr,
        "POST",
        "/dm",
        token,
        Some(&json!({ "user_id": user })),
    )
}

fn block(addr: &str, token: &str, user: &str) -> (u16, Value) {
    call(
        addr,
        "POST",
        "/me/blocks",
        token,
        Some(&json!({ "user_id": user })),
    )
}

/// The answer to a `send_message` with key `id` (skipping other frames).
fn send_outcome(w: &mut Ws, room: &str, id: &str) -> Value {
    w.send(
        "send_message",
        json!({"room_id": room, "content": id, "client_msg_id": id}),
    );
    loop {
        let v = w.next_within(Duration::from_secs(10)).expect("an answer");
        if v["event"] == "message_ack" || v["event"] == "error" {
            return v;
        }
    }
}

fn blocked_ids(addr: &str, token: &str, query: &str) -> (Vec<String>, Value) {
    let (s, page) = call(addr, "GET", &format!("/me/blocks{query}"), token, None);
    assert_eq!(s, 200, "{page}");
    let ids = page["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["user_id"].as_str().unwrap().to_string())
        .collect();
    (ids, page["next_cursor"].clone())
}

#[test]
fn a_block_stops_the_direct_room_both_ways_on_every_node() {
    let db = TestDb::new();
    let (na, nb) = (start(&db), start(&db));
    let (a, b) = (na.addr(), nb.addr());
    let x = register(&a, "x");
    let y = register(&b, "y");
    let (s, dm) = open_dm(&a, &x.token, &y.id);
    assert_eq!(s, 201, "{dm}");
    let dm = dm["id"].as_str().unwrap().to_string();
    assert_eq!(post(&b, &y.token, &dm, "hello").0, 201);
    let mut wx = Ws::connect(&b, &x.token);
    let mut wy = Ws::connect(&a, &y.token);
    wx.join(&dm, None);
    wy.join(&dm, None);
    assert_eq!(send_outcome(&mut wx, &dm, "before")["event"], "message_ack");

    // y blocks x on node a; blocking again changes nothing.
    let (s, blk) = block(&a, &y.token, &x.id);
    assert_eq!(
        (s, blk["user_id"].as_str()),
        (201, Some(x.id.as_str())),
        "{blk}"
    );
    assert_eq!(block(&b, &y.token, &x.id).0, 200);
    let head = room_head(&a, &x.token, &dm);

    // Neither side sends into the direct room, over either transport, on either node.
    for (w, who) in [(&mut wx, "x"), (&mut wy, "y")] {
        let out = send_outcome(w, &dm, &format!("ws-{who}"));
        assert_eq!(out["event"], "error", "{who} {out}");
        assert_eq!(out["data"]["code"], "blocked", "{who} {out}");
        assert_eq!(out["data"]["client_msg_id"], format!("ws-{who}"));
    }
    for addr in [&a, &b] {
        for u in [&x, &y] {
            let r = post(addr, &u.token, &dm, "rest");
            assert_eq!(code(&r), (403, "blocked".into()), "{} {}", u.username, r.1);
        }
    }
    // Nothing was stored or delivered; both still read the room.
    assert_eq!(room_head(&a, &x.token, &dm), head);
    assert_eq!(room_head(&b, &y.token, &dm), head);
    let stored: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE content IN ('ws-x', 'ws-y', 'rest')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    // Neither opens the pair's room.
    for (addr, u, other) in [(&a, &x, &y), (&b, &y, &x)] {
        let r = open_dm(addr, &u.token, &other.id);
        assert_eq!(code(&r), (403, "blocked".into()), "{}", r.1);
    }
    // The blocked user cannot invite the blocker; the blocker may invite it.
    let xs = create_room(&a, &x.token);
    let r = call(
        &b,
        "POST",
        &format!("/rooms/{xs}/invites"),
        &x.token,
        Some(&json!({"user_id": y.id})),
    );
    assert_eq!(code(&r), (403, "blocked".into()), "{}", r.1);
    let ys = create_room(&b, &y.token);
    let r = call(
        &a,
        "POST",
        &format!("/rooms/{ys}/invites"),
        &y.token,
        Some(&json!({"user_id": x.id})),
    );
    assert_eq!(r.0, 201, "{}", r.1);
    // A shared room is unchanged: x still posts there, under its own id.
    let shared = create_room(&a, &y.token);
    join_room(&b, &x.token, &shared);
    let (s, m) = post(&b, &x.token, &shared, "in the shared room");
    assert_eq!(
        (s, m["user_id"].as_str()),
        (201, Some(x.id.as_str())),
        "{m}"
    );
    // Only the blocker sees the block.
    assert_eq!(blocked_ids(&b, &y.token, "").0, vec![x.id.clone()]);
    assert!(blocked_ids(&a, &x.token, "").0.is_empty());

    // Unblocking opens the room again at once, on the other node too.
    let (s, r) = call(
        &b,
        "DELETE",
        &format!("/me/blocks/{}", x.id),
        &y.token,
        None,
    );
    assert_eq!((s, &r["unblocked"]), (200, &json!(true)), "{r}");
    let (s, r) = call(
        &b,
        "DELETE",
        &format!("/me/blocks/{}", x.id),
        &y.token,
        None,
    );
    assert_eq!((s, &r["unblocked"]), (200, &json!(false)), "{r}");
    assert_eq!(send_outcome(&mut wx, &dm, "after")["event"], "message_ack");
    assert_eq!(post(&a, &y.token, &dm, "and back").0, 201);
    assert_eq!(open_dm(&a, &x.token, &y.id).0, 200);
}

#[test]
fn blocks_are_checked_limited_and_paged() {
    let db = TestDb::new();
    let n = start_with(&db, |c| c.limits.max_blocks_per_user = 2);
    let a = n.addr();
    let me = register(&a, "me");
    let (p, q, r) = (register(&a, "p"), register(&a, "q"), register(&a, "r"));
    assert_eq!(
        code(&block(&a, &me.token, &me.id)),
        (400, "invalid_payload".into())
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        code(&block(&a, &me.token, &unknown)),
        (404, "user_not_found".into())
    );
    assert_eq!(
        code(&call(&a, "POST", "/me/blocks", &me.token, Some(&json!({})))),
        (400, "validation_failed".into())
    );
    assert_eq!(block(&a, &me.token, &p.id).0, 201);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(block(&a, &me.token, &q.id).0, 201);
    let refused = block(&a, &me.token, &r.id);
    assert_eq!(
        code(&refused),
        (400, "too_many_blocks".into()),
        "{}",
        refused.1
    );
    // Newest first, a page at a time.
    let (first, next) = blocked_ids(&a, &me.token, "?limit=1");
    assert_eq!(first, vec![q.id.clone()]);
    let cursor = next.as_str().expect("a next page").to_string();
    let (second, next) = blocked_ids(&a, &me.token, &format!("?limit=1&cursor={cursor}"));
    assert_eq!(second, vec![p.id.clone()]);
    let cursor = next.as_str().expect("a full page has a cursor").to_string();
    let (third, next) = blocked_ids(&a, &me.token, &format!("?limit=1&cursor={cursor}"));
    assert!(third.is_empty() && next.is_null());
    let bad = call(&a, "GET", "/me/blocks?cursor=nope", &me.token, None);
    assert_eq!(code(&bad), (400, "invalid_payload".into()));
    // Unblocking one makes room for another.
    assert_eq!(
        call(
            &a,
            "DELETE",
            &format!("/me/blocks/{}", p.id),
            &me.token,
            None
        )
        .0,
        200
    );
    assert_eq!(block(&a, &me.token, &r.id).0, 201);
}
