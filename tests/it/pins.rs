//! Pinned messages on two nodes: who may pin, unpin and list (owner, admin, member,
//! muted member, outsider; and members once the room lets them), the stream entries on
//! the other node's sockets and through catch-up, deletion unpinning, and the limit.

use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `(status, error code or "")` of a call.
fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(token), body)
}

fn code(r: &(u16, Value)) -> (u16, String) {
    (r.0, r.1["code"].as_str().unwrap_or("").to_string())
}

fn pin_path(room: &str, id: i64) -> String {
    format!("/rooms/{room}/pins/{id}")
}

/// The ids of a room's pins, as `user` lists them on `addr`.
fn pinned(addr: &str, token: &str, room: &str) -> Vec<i64> {
    let (status, body) = call(addr, "GET", &format!("/rooms/{room}/pins"), token, None);
    assert_eq!(status, 200, "{body}");
    body["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"]["id"].as_i64().unwrap())
        .collect()
}

/// A room on `a` owned by `owner` with an admin, a member, a muted member (joined on
/// `b`), and a message of the member's; returns (room, message id).
struct Cast {
    owner: User,
    admin: User,
    member: User,
    muted: User,
    outsider: User,
    room: String,
    msg: i64,
}

fn cast(a: &str, b: &str) -> Cast {
    let owner = register(a, "own");
    let admin = register(b, "adm");
    let member = register(b, "mem");
    let muted = register(b, "mut");
    let outsider = register(b, "out");
    let room = create_room(a, &owner.token);
    for u in [&admin, &member, &muted] {
        join_room(b, &u.token, &room);
    }
    let r = call(
        a,
        "PUT",
        &format!("/rooms/{room}/members/{}/role", admin.id),
        &owner.token,
        Some(&json!({"role": "admin"})),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(
        a,
        "POST",
        &format!("/rooms/{room}/members/{}/mute", muted.id),
        &owner.token,
        None,
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let mut c = Http::connect(b);
    let msg = post_message(&mut c, &member.token, &room, "pin me")["id"]
        .as_i64()
        .unwrap();
    Cast {
        owner,
        admin,
        member,
        muted,
        outsider,
        room,
        msg,
    }
}

#[test]
fn owners_and_admins_pin_members_when_the_room_lets_them() {
    let db = TestDb::new();
    let (na, nb) = (start(&db), start(&db));
    let (a, b) = (na.addr(), nb.addr());
    let k = cast(&a, &b);
    let (room, msg) = (&k.room, k.msg);
    let path = pin_path(room, msg);
    // Refused: nothing stored, nothing appended.
    let head = room_head(&a, &k.owner.token, room);
    for (u, want) in [
        (&k.member, "forbidden"),
        (&k.muted, "forbidden"),
        (&k.outsider, "not_member"),
    ] {
        let r = call(&b, "PUT", &path, &u.token, None);
        assert_eq!(code(&r), (403, want.to_string()), "{} {}", u.username, r.1);
    }
    assert_eq!(room_head(&a, &k.owner.token, room), head);
    assert!(pinned(&a, &k.owner.token, room).is_empty());
    // The admin pins on one node; everyone in the room lists it on the other.
    let r = call(&b, "PUT", &path, &k.admin.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["message"]["id"], msg);
    assert_eq!(r.1["message"]["content"], "pin me");
    assert_eq!(r.1["pinned_by"], k.admin.id.as_str());
    assert_eq!(room_head(&a, &k.owner.token, room), head + 1);
    for u in [&k.owner, &k.admin, &k.member, &k.muted] {
        assert_eq!(pinned(&a, &u.token, room), vec![msg], "{}", u.username);
    }
    let r = call(
        &a,
        "GET",
        &format!("/rooms/{room}/pins"),
        &k.outsider.token,
        None,
    );
    assert_eq!(code(&r), (403, "not_member".into()));
    // Pinning again changes nothing: same pin, no entry.
    let r = call(&a, "PUT", &path, &k.owner.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["pinned_by"], k.admin.id.as_str());
    assert_eq!(room_head(&a, &k.owner.token, room), head + 1);
    // Unpinning follows the same rule.
    for (u, want) in [
        (&k.member, "forbidden"),
        (&k.muted, "forbidden"),
        (&k.outsider, "not_member"),
    ] {
        let r = call(&a, "DELETE", &path, &u.token, None);
        assert_eq!(code(&r), (403, want.to_string()), "{} {}", u.username, r.1);
    }
    let r = call(&a, "DELETE", &path, &k.owner.token, None);
    assert_eq!((r.0, &r.1["unpinned"]), (200, &json!(true)), "{}", r.1);
    let r = call(&b, "DELETE", &path, &k.admin.token, None);
    assert_eq!((r.0, &r.1["unpinned"]), (200, &json!(false)), "{}", r.1);
    assert_eq!(room_head(&a, &k.owner.token, room), head + 2);
    assert!(pinned(&b, &k.member.token, room).is_empty());
    // The setting: owners and admins only, a boolean, shown in the room.
    let settings = format!("/rooms/{room}");
    let on = json!({"members_can_pin": true});
    let r = call(&b, "PATCH", &settings, &k.member.token, Some(&on));
    assert_eq!(code(&r), (403, "forbidden".into()));
    let r = call(
        &b,
        "PATCH",
        &settings,
        &k.owner.token,
        Some(&json!({"members_can_pin": "yes"})),
    );
    assert_eq!(code(&r), (400, "validation_failed".into()), "{}", r.1);
    let (status, body) = call(&a, "GET", &settings, &k.member.token, None);
    assert_eq!((status, &body["members_can_pin"]), (200, &json!(false)));
    let r = call(&a, "PATCH", &settings, &k.admin.token, Some(&on));
    assert_eq!(
        (r.0, &r.1["members_can_pin"]),
        (200, &json!(true)),
        "{}",
        r.1
    );
    // Now a member pins and unpins; a muted member and an outsider still cannot.
    let r = call(&b, "PUT", &path, &k.muted.token, None);
    assert_eq!(code(&r), (403, "muted".into()));
    let r = call(&b, "PUT", &path, &k.outsider.token, None);
    assert_eq!(code(&r), (403, "not_member".into()));
    let r = call(&b, "PUT", &path, &k.member.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(&a, "DELETE", &path, &k.member.token, None);
    assert_eq!((r.0, &r.1["unpinned"]), (200, &json!(true)), "{}", r.1);
    // Unknown messages, ids that are no number, a system entry: message_not_found.
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=100"),
        &k.owner.token,
        None,
    );
    let system = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "system")
        .expect("a joined entry")["id"]
        .as_i64()
        .unwrap();
    for bad in [
        format!("/rooms/{room}/pins/abc"),
        pin_path(room, msg + 1_000_000),
        pin_path(room, system),
    ] {
        let r = call(&a, "PUT", &bad, &k.owner.token, None);
        assert_eq!(code(&r), (404, "message_not_found".into()), "{bad}");
    }
}

/// The entries of `room` a socket gets until one of `kind` arrives (10 s at most).
fn entry_of(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(v) = ws.next_within(Duration::from_millis(200)) else {
            continue;
        };
        let entries = match v["event"].as_str() {
            Some("new_message") => vec![v["data"].clone()],
            Some("new_message_batch") => v["data"].as_array().unwrap().clone(),
            _ => continue,
        };
        if let Some(e) = entries.into_iter().find(|e| e["kind"] == kind) {
            return e;
        }
    }
    panic!("no {kind} entry within 10 s");
}

#[test]
fn pin_entries_reach_the_other_node_and_catch_up() {
    let db = TestDb::new();
    let (na, nb) = (start(&db), start(&db));
    let (a, b) = (na.addr(), nb.addr());
    let k = cast(&a, &b);
    let (room, msg) = (&k.room, k.msg);
    let mut ws = Ws::connect(&b, &k.member.token);
    ws.join(room, None);
    let seen = room_head(&a, &k.owner.token, room);
    // Pinned on node a, delivered on node b with its own seq.
    let r = call(&a, "PUT", &pin_path(room, msg), &k.owner.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    let e = entry_of(&mut ws, "message_pinned");
    assert_eq!(e["message_id"], msg);
    assert_eq!(e["user_id"], k.owner.id.as_str());
    assert_eq!(e["seq"], seen + 1);
    drop(ws);
    // Unpinned while the socket is away: a reconnect with last_seen_seq replays both.
    let r = call(&a, "DELETE", &pin_path(room, msg), &k.admin.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    let mut back = Ws::connect(&b, &k.member.token);
    let history = back.join(room, Some(seen)).expect("catch-up history");
    let kinds: Vec<(i64, String, i64)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["kind"].as_str().unwrap().to_string(),
                m["message_id"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (seen + 1, "message_pinned".into(), msg),
            (seen + 2, "message_unpinned".into(), msg),
        ]
    );
    // History pages show them too, for a client that reads REST.
    let (status, body) = call(
        &b,
        "GET",
        &format!("/rooms/{room}/messages?limit=2"),
        &k.member.token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let page: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert!(
        page.contains(&"message_pinned") && page.contains(&"message_unpinned"),
        "{body}"
    );
}

#[test]
fn deleting_a_message_unpins_it() {
    let db = TestDb::new();
    let (na, nb) = (start(&db), start(&db));
    let (a, b) = (na.addr(), nb.addr());
    let k = cast(&a, &b);
    let (room, msg) = (&k.room, k.msg);
    let r = call(&a, "PUT", &pin_path(room, msg), &k.owner.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(pinned(&b, &k.member.token, room), vec![msg]);
    // The author deletes it on the other node: the pin goes in the same transaction.
    let r = call(
        &b,
        "DELETE",
        &format!("/rooms/{room}/messages/{msg}"),
        &k.member.token,
        None,
    );
    assert_eq!(
        (r.0, r.1["kind"].as_str()),
        (200, Some("message_deleted")),
        "{}",
        r.1
    );
    assert!(pinned(&a, &k.owner.token, room).is_empty());
    let rows: i64 = db
        .client()
        .query_one("SELECT count(*) FROM message_pins", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    // A deleted message cannot be pinned, nor unpinned.
    for method in ["PUT", "DELETE"] {
        let r = call(&a, method, &pin_path(room, msg), &k.owner.token, None);
        assert_eq!(code(&r), (404, "message_not_found".into()), "{method}");
    }
}

#[test]
fn a_room_holds_at_most_the_configured_pins_newest_first() {
    let db = TestDb::new();
    let two = |c: &mut chatd::config::Config| c.messages.max_pins = 2;
    let (na, nb) = (start_with(&db, two), start_with(&db, two));
    let (a, b) = (na.addr(), nb.addr());
    let k = cast(&a, &b);
    let room = &k.room;
    let mut c = Http::connect(&a);
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            post_message(&mut c, &k.owner.token, room, &format!("m{i}"))["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    for (id, node) in [(ids[0], &a), (ids[1], &b)] {
        let r = call(node, "PUT", &pin_path(room, id), &k.owner.token, None);
        assert_eq!(r.0, 200, "{}", r.1);
    }
    let head = room_head(&a, &k.owner.token, room);
    // The third, on either node, is refused and leaves no trace.
    for node in [&a, &b] {
        let r = call(node, "PUT", &pin_path(room, ids[2]), &k.admin.token, None);
        assert_eq!(code(&r), (400, "too_many_pins".into()), "{}", r.1);
        assert!(r.1["message"].as_str().unwrap().contains('2'), "{}", r.1);
    }
    assert_eq!(room_head(&a, &k.owner.token, room), head);
    // A pinned one pins again (no new pin), newest first.
    let r = call(&a, "PUT", &pin_path(room, ids[0]), &k.owner.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(pinned(&b, &k.member.token, room), vec![ids[1], ids[0]]);
    // Room for one more once one is unpinned.
    let r = call(&b, "DELETE", &pin_path(room, ids[0]), &k.owner.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(&a, "PUT", &pin_path(room, ids[2]), &k.owner.token, None);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(pinned(&a, &k.member.token, room), vec![ids[2], ids[1]]);
}
