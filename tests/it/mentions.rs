//! Mentions and notification levels: `@username` of a member is stored with the message
//! and shown on the live event and in history; `@room` only for the owner and admins
//! in rooms above the configured size; a user who blocked the sender is not mentioned;
//! an edit adds a mention once and removes none; `GET /me/rooms` counts unread mentions
//! and `GET /me/mentions` pages them; `PUT /rooms/:id/notifications` sets a level, its
//! `{muted}` form keeps working, and the defaults follow the room's kind and size.

use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(token), body)
}

fn post(addr: &str, token: &str, room: &str, text: &str) -> Value {
    let (s, m) = call(
        addr,
        "POST",
        &format!("/rooms/{room}/messages"),
        token,
        Some(&json!({ "content": text })),
    );
    assert_eq!(s, 201, "{m}");
    m
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The caller's `/me/rooms` entry for `room`.
fn my_room(addr: &str, token: &str, room: &str) -> Value {
    let (s, page) = call(addr, "GET", "/me/rooms?limit=100", token, None);
    assert_eq!(s, 200, "{page}");
    page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .cloned()
        .unwrap_or_else(|| panic!("{room} not in {page}"))
}

fn mentions_in(addr: &str, token: &str, room: &str) -> i64 {
    my_room(addr, token, room)["mentions"].as_i64().unwrap()
}

/// Waits until the caller's unread mentions in `room` are `n` (read marks are applied
/// by a thread of their own, shortly after they are answered).
fn wait_mentions(addr: &str, token: &str, room: &str, n: i64) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = mentions_in(addr, token, room);
        if got == n {
            return;
        }
        assert!(Instant::now() < until, "mentions stayed {got}, not {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The newest message of the room as history shows it.
fn last_in_history(addr: &str, token: &str, room: &str, id: i64) -> Value {
    let (s, page) = call(
        addr,
        "GET",
        &format!("/rooms/{room}/messages?limit=50"),
        token,
        None,
    );
    assert_eq!(s, 200, "{page}");
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("message {id} not in {page}"))
}

fn set_level(addr: &str, token: &str, room: &str, body: Value) -> (u16, Value) {
    call(
        addr,
        "PUT",
        &format!("/rooms/{room}/notifications"),
        token,
        Some(&body),
    )
}

/// A member named `@username` (in any case) is mentioned: the REST answer, the
/// `new_message` event and the history page all carry its id; a registered user who is
/// not a member, an e-mail address and plain text mention nobody. Fails if mentions are
/// not resolved or stored (no `mentions`), if a non-member is resolved, or if the live
/// event is built before the mentions are known.
#[test]
fn a_members_mention_is_stored_live_and_in_history() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, bob, carol) = (register(&a, "al"), register(&a, "bo"), register(&a, "ca"));
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let mut wb = Ws::connect(&a, &bob.token);
    wb.join(&room, None);

    let text = format!(
        "hi @{}, @{} and mail {}@example.com",
        bob.username.to_uppercase(),
        carol.username,
        bob.username
    );
    let m = post(&a, &alice.token, &room, &text);
    assert_eq!(ids(&m["mentions"]), vec![bob.id.clone()], "{m}");
    let live = wb.expect_where("new_message", |v| v["id"] == m["id"]);
    assert_eq!(ids(&live["mentions"]), vec![bob.id.clone()], "{live}");
    let seen = last_in_history(&a, &bob.token, &room, m["id"].as_i64().unwrap());
    assert_eq!(ids(&seen["mentions"]), vec![bob.id.clone()], "{seen}");

    let plain = post(&a, &alice.token, &room, "nobody here, @nosuchuser");
    assert!(plain.get("mentions").is_none(), "{plain}");
    assert!(plain.get("mentions_room").is_none(), "{plain}");
    assert_eq!(mentions_in(&a, &bob.token, &room), 1);
    // carol is no member: nothing to count, nothing listed.
    let (s, page) = call(&a, "GET", "/me/mentions", &carol.token, None);
    assert_eq!(
        (s, page["mentions"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{page}"
    );
}

/// `@room` from a plain member of a room above `room_mention_max_members` is plain text
/// (no flag, nobody counts it); from the owner it notifies every member but the sender;
/// in a room within the size any member may. Fails if the role or size rule is not
/// asked, or if `@room` does not reach every member's count.
#[test]
fn room_mentions_are_for_owners_and_admins_in_big_rooms() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.notifications.room_mention_max_members = 2);
    let a = node.addr();
    let (owner, m1, m2) = (register(&a, "ow"), register(&a, "mo"), register(&a, "mt"));
    let big = create_room(&a, &owner.token);
    join_room(&a, &m1.token, &big);
    join_room(&a, &m2.token, &big);

    let refused = post(&a, &m1.token, &big, "hey @room");
    assert!(refused.get("mentions_room").is_none(), "{refused}");
    assert_eq!(mentions_in(&a, &m2.token, &big), 0);
    assert_eq!(mentions_in(&a, &owner.token, &big), 0);

    let allowed = post(&a, &owner.token, &big, "everyone: @Room");
    assert_eq!(allowed["mentions_room"], true, "{allowed}");
    assert_eq!(mentions_in(&a, &m1.token, &big), 1);
    assert_eq!(mentions_in(&a, &m2.token, &big), 1);
    assert_eq!(mentions_in(&a, &owner.token, &big), 0);

    let small = create_room(&a, &owner.token);
    join_room(&a, &m1.token, &small);
    let ok = post(&a, &m1.token, &small, "@room lunch?");
    assert_eq!(ok["mentions_room"], true, "{ok}");
    assert_eq!(mentions_in(&a, &owner.token, &small), 1);
}

/// A user who blocked the sender is not mentioned by it (neither listed on the message
/// nor counted), while another member named in the same message is. Fails if the block
/// is not asked when mentions are resolved.
#[test]
fn a_blocked_senders_mention_is_not_counted() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, bob, carol) = (register(&a, "al"), register(&a, "bo"), register(&a, "ca"));
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    join_room(&a, &carol.token, &room);
    let (s, b) = call(
        &a,
        "POST",
        "/me/blocks",
        &bob.token,
        Some(&json!({ "user_id": alice.id })),
    );
    assert_eq!(s, 201, "{b}");

    let m = post(
        &a,
        &alice.token,
        &room,
        &format!("@{} @{}", bob.username, carol.username),
    );
    assert_eq!(ids(&m["mentions"]), vec![carol.id.clone()], "{m}");
    assert_eq!(mentions_in(&a, &bob.token, &room), 0);
    assert_eq!(mentions_in(&a, &carol.token, &room), 1);
    let (_, page) = call(&a, "GET", "/me/mentions", &bob.token, None);
    assert_eq!(page["mentions"].as_array().unwrap().len(), 0, "{page}");
}

/// An edit that adds a name mentions it once: editing it in again notifies nobody
/// twice, and an edit that drops it removes nothing (the message still lists it, the
/// count stays). The edit entry carries the message's mentions; deleting the message
/// takes the mention away. Fails if edits are not re-evaluated, if a repeated edit
/// counts again, if an edit removes mentions, or if a deletion leaves them counted.
#[test]
fn an_edit_adds_a_mention_once() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, bob) = (register(&a, "al"), register(&a, "bo"));
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let m = post(&a, &alice.token, &room, "hello");
    let id = m["id"].as_i64().unwrap();
    let edit = |text: &str| {
        let (s, e) = call(
            &a,
            "PATCH",
            &format!("/rooms/{room}/messages/{id}"),
            &alice.token,
            Some(&json!({ "content": text })),
        );
        assert_eq!(s, 200, "{e}");
        e
    };
    assert_eq!(mentions_in(&a, &bob.token, &room), 0);
    let e = edit(&format!("hello @{}", bob.username));
    assert_eq!(ids(&e["data"]["mentions"]), vec![bob.id.clone()], "{e}");
    assert_eq!(mentions_in(&a, &bob.token, &room), 1);
    edit(&format!("hello @{} again", bob.username));
    assert_eq!(mentions_in(&a, &bob.token, &room), 1);
    edit("hello");
    assert_eq!(mentions_in(&a, &bob.token, &room), 1);
    let seen = last_in_history(&a, &bob.token, &room, id);
    assert_eq!(seen["content"], "hello");
    assert_eq!(ids(&seen["mentions"]), vec![bob.id.clone()], "{seen}");
    // Deleting the message takes its mention away.
    let (s, d) = call(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{id}"),
        &alice.token,
        None,
    );
    assert_eq!(s, 200, "{d}");
    assert_eq!(mentions_in(&a, &bob.token, &room), 0);
}

/// `GET /me/mentions` pages the caller's mentions newest first with a cursor, each
/// marked unread until the read mark passes it; reading to the room's head takes them
/// out of `/me/rooms`' count; a member who left sees none of the room's. Fails if
/// pages overlap or skip, if the count ignores the read mark, or if a former member
/// still lists them.
#[test]
fn mentions_page_and_clear_when_read() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (alice, bob) = (register(&a, "al"), register(&a, "bo"));
    let room = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &room);
    let sent: Vec<i64> = (0..3)
        .map(|i| {
            let m = post(&a, &alice.token, &room, &format!("{i} @{}", bob.username));
            m["id"].as_i64().unwrap()
        })
        .collect();
    post(&a, &alice.token, &room, "no mention");
    assert_eq!(mentions_in(&a, &bob.token, &room), 3);

    let (s, p1) = call(&a, "GET", "/me/mentions?limit=2", &bob.token, None);
    assert_eq!(s, 200, "{p1}");
    let got: Vec<i64> = p1["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![sent[2], sent[1]], "{p1}");
    assert_eq!(p1["mentions"][0]["unread"], true);
    assert_eq!(p1["mentions"][0]["message"]["room_id"], room.as_str());
    let cursor = p1["next_cursor"].as_str().expect("a next page").to_string();
    let (_, p2) = call(
        &a,
        "GET",
        &format!("/me/mentions?limit=2&cursor={cursor}"),
        &bob.token,
        None,
    );
    assert_eq!(p2["mentions"].as_array().unwrap().len(), 1, "{p2}");
    assert_eq!(p2["mentions"][0]["message"]["id"], sent[0]);
    assert!(p2["next_cursor"].is_null(), "{p2}");
    let (s, bad) = call(&a, "GET", "/me/mentions?cursor=x", &bob.token, None);
    assert_eq!(
        (s, bad["code"].as_str()),
        (400, Some("invalid_payload")),
        "{bad}"
    );

    let head = room_head(&a, &bob.token, &room);
    let (s, r) = call(
        &a,
        "POST",
        &format!("/rooms/{room}/read"),
        &bob.token,
        Some(&json!({ "seq": head })),
    );
    assert_eq!(s, 200, "{r}");
    wait_mentions(&a, &bob.token, &room, 0);
    let (_, p) = call(&a, "GET", "/me/mentions", &bob.token, None);
    assert_eq!(p["mentions"][0]["unread"], false, "{p}");

    let (s, _) = call(
        &a,
        "POST",
        &format!("/rooms/{room}/leave"),
        &bob.token,
        None,
    );
    assert_eq!(s, 201);
    let (_, p) = call(&a, "GET", "/me/mentions", &bob.token, None);
    assert_eq!(p["mentions"].as_array().unwrap().len(), 0, "{p}");
}

/// Levels: defaults `all` in a direct room and a small room, `mentions` above
/// `mentions_only_above_members`; `{level}` sets and `/me/rooms` shows it with
/// `notifications_muted` following `none`; the `{muted}` form maps to `none`/`all`;
/// a bad level or neither form is 400 `validation_failed`, and with both forms the
/// level wins; a non-member is refused. Fails if a default, the muted mapping or a validation rule breaks.
#[test]
fn notification_levels_defaults_set_and_muted_form() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.notifications.mentions_only_above_members = 2);
    let a = node.addr();
    let (alice, bob, carol) = (register(&a, "al"), register(&a, "bo"), register(&a, "ca"));
    let small = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &small);
    let big = create_room(&a, &alice.token);
    join_room(&a, &bob.token, &big);
    join_room(&a, &carol.token, &big);
    let (s, dm) = call(
        &a,
        "POST",
        "/dm",
        &alice.token,
        Some(&json!({"user_id": bob.id})),
    );
    assert_eq!(s, 201, "{dm}");
    let dm = dm["id"].as_str().unwrap().to_string();
    let level = |room: &str| my_room(&a, &bob.token, room)["notification_level"].clone();
    assert_eq!(level(&small), "all");
    assert_eq!(level(&big), "mentions");
    assert_eq!(level(&dm), "all");

    let (s, r) = set_level(&a, &bob.token, &big, json!({"level": "none"}));
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            r["notification_level"].as_str(),
            r["notifications_muted"].as_bool()
        ),
        (Some("none"), Some(true))
    );
    let mine = my_room(&a, &bob.token, &big);
    assert_eq!(
        (
            mine["notification_level"].as_str(),
            mine["notifications_muted"].as_bool()
        ),
        (Some("none"), Some(true))
    );
    let (s, r) = set_level(&a, &bob.token, &big, json!({"muted": false}));
    assert_eq!(
        (s, r["notifications_muted"].as_bool()),
        (200, Some(false)),
        "{r}"
    );
    assert_eq!(level(&big), "all");
    set_level(&a, &bob.token, &small, json!({"muted": true}));
    assert_eq!(level(&small), "none");
    set_level(&a, &bob.token, &small, json!({"level": "mentions"}));
    let mine = my_room(&a, &bob.token, &small);
    assert_eq!(
        (
            mine["notification_level"].as_str(),
            mine["notifications_muted"].as_bool()
        ),
        (Some("mentions"), Some(false))
    );

    for body in [json!({"level": "loud"}), json!({}), json!({"level": 3})] {
        let (s, r) = set_level(&a, &bob.token, &small, body.clone());
        assert_eq!(
            (s, r["code"].as_str()),
            (400, Some("validation_failed")),
            "{body} {r}"
        );
    }
    // Both forms at once: the level wins (a client moving to levels may send both).
    let (s, r) = set_level(
        &a,
        &bob.token,
        &small,
        json!({"level": "all", "muted": true}),
    );
    assert_eq!(
        (s, r["notification_level"].as_str()),
        (200, Some("all")),
        "{r}"
    );
    let other = create_room(&a, &alice.token);
    let (s, r) = set_level(&a, &carol.token, &other, json!({"level": "all"}));
    assert_eq!((s, r["code"].as_str()), (403, Some("not_member")), "{r}");
}
