//! Slow mode on two nodes: who may set it, who it holds (members; not the owner, admins
//! or the server API posting as a user), the refusal over REST (429 `slow_mode`,
//! `Retry-After`) and on sockets (`error` with `retry_after_ms`), one user's two sockets
//! on two nodes held as one, and that a refused message is stored nowhere and takes no
//! seq.

use crate::admin::{KEY, with_key};
use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(token), body)
}

fn code(r: &(u16, Value)) -> (u16, String) {
    (r.0, r.1["code"].as_str().unwrap_or("").to_string())
}

fn set_slow(addr: &str, token: &str, room: &str, secs: i64) -> (u16, Value) {
    call(
        addr,
        "PATCH",
        &format!("/rooms/{room}"),
        token,
        Some(&json!({ "slow_mode_secs": secs })),
    )
}

fn post(addr: &str, token: &str, room: &str, text: &str) -> Resp {
    raw_request(
        addr,
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(token),
        Some(&json!({ "content": text })),
    )
}

/// Every seq of the room's history (oldest first), as `token` reads it.
fn all_seqs(addr: &str, token: &str, room: &str) -> Vec<i64> {
    let (s, page) = call(
        addr,
        "GET",
        &format!("/rooms/{room}/messages?limit=100"),
        token,
        None,
    );
    assert_eq!(s, 200, "{page}");
    let mut seqs: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    seqs.sort();
    seqs
}

fn gapless(seqs: &[i64]) {
    let want: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, want, "seqs must be gapless");
}

#[test]
fn slow_mode_holds_members_and_not_owners_admins_or_the_server_api() {
    let db = TestDb::new();
    let (na, nb) = (start_with(&db, with_key), start_with(&db, with_key));
    let (a, b) = (na.addr(), nb.addr());
    let owner = register(&a, "own");
    let admin = register(&b, "adm");
    let member = register(&b, "mem");
    let muted = register(&b, "mut");
    let outsider = register(&b, "out");
    let room = create_room(&a, &owner.token);
    for u in [&admin, &member, &muted] {
        join_room(&b, &u.token, &room);
    }
    let r = call(
        &a,
        "PUT",
        &format!("/rooms/{room}/members/{}/role", admin.id),
        &owner.token,
        Some(&json!({"role": "admin"})),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(
        &a,
        "POST",
        &format!("/rooms/{room}/members/{}/mute", muted.id),
        &owner.token,
        None,
    );
    assert_eq!(r.0, 200, "{}", r.1);

    // Who may set it: owners and admins, within 0..3600.
    assert_eq!(
        code(&set_slow(&b, &member.token, &room, 30)),
        (403, "forbidden".into())
    );
    assert_eq!(
        code(&set_slow(&b, &outsider.token, &room, 30)),
        (403, "not_member".into())
    );
    for bad in [-1, 3601] {
        assert_eq!(
            code(&set_slow(&b, &admin.token, &room, bad)),
            (400, "validation_failed".into())
        );
    }
    let head = room_head(&a, &owner.token, &room);
    let (s, r) = set_slow(&b, &admin.token, &room, 30);
    assert_eq!((s, &r["slow_mode_secs"]), (200, &json!(30)), "{r}");
    // The change is an entry of the stream; the room shows the setting.
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages?limit=1"),
        &owner.token,
        None,
    );
    let entry = &page["messages"][0];
    assert_eq!(entry["seq"], head + 1);
    assert_eq!(entry["data"]["type"], "slow_mode");
    assert_eq!(entry["data"]["slow_mode_secs"], 30);
    let (_, got) = call(&a, "GET", &format!("/rooms/{room}"), &member.token, None);
    assert_eq!(got["slow_mode_secs"], 30, "{got}");
    // Setting the same value again appends nothing.
    assert_eq!(set_slow(&a, &owner.token, &room, 30).0, 200);
    assert_eq!(room_head(&a, &owner.token, &room), head + 1);

    // Owners and admins are not held.
    for u in [&owner, &admin] {
        for i in 0..3 {
            let r = post(&a, &u.token, &room, &format!("{} {i}", u.username));
            assert_eq!(r.status, 201, "{}", u.username);
        }
    }
    // A member sends once, then is refused until the wait is over, on either node.
    let first = post(&b, &member.token, &room, "first");
    assert_eq!(first.status, 201);
    let before = room_head(&a, &owner.token, &room);
    for addr in [&a, &b] {
        let r = post(addr, &member.token, &room, "too early");
        assert_eq!(r.status, 429);
        let body = r.json();
        assert_eq!(body["code"], "slow_mode", "{body}");
        let ms = body["retry_after_ms"].as_u64().unwrap();
        assert!(ms > 25_000 && ms <= 30_000, "{ms}");
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((26..=30).contains(&secs), "{secs}");
    }
    // The muted and outsiders are refused as before.
    assert_eq!(post(&b, &muted.token, &room, "x").json()["code"], "muted");
    assert_eq!(
        post(&b, &outsider.token, &room, "x").json()["code"],
        "not_member"
    );
    // Edits and reactions are not messages: the held member still makes them.
    let mid = first.json()["id"].as_i64().unwrap();
    let r = call(
        &b,
        "PATCH",
        &format!("/rooms/{room}/messages/{mid}"),
        &member.token,
        Some(&json!({"content": "first, edited"})),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(
        &b,
        "PUT",
        &format!("/rooms/{room}/messages/{mid}/reactions/👍"),
        &member.token,
        None,
    );
    assert!(r.0 == 200 || r.0 == 201, "{}", r.1);
    // The server API posting as the member is not held.
    let (s, m) = request(
        &a,
        "POST",
        &format!("/admin/rooms/{room}/messages"),
        Some(KEY),
        Some(&json!({"user_id": member.id, "content": "from the backend"})),
    );
    assert_eq!(s, 201, "{m}");
    // Refusals stored nothing and took no seq: the edit, the reaction and the backend's
    // message follow the member's first message directly.
    assert_eq!(room_head(&a, &owner.token, &room), before + 3);
    let seqs = all_seqs(&a, &owner.token, &room);
    gapless(&seqs);
    let stored: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM messages WHERE content = 'too early' OR content = 'x'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    // Turning it off lets the member send at once.
    assert_eq!(set_slow(&a, &owner.token, &room, 0).0, 200);
    assert_eq!(post(&b, &member.token, &room, "free again").status, 201);
}

#[test]
fn one_user_on_two_nodes_is_held_as_one_and_the_wait_ends() {
    let db = TestDb::new();
    let (na, nb) = (start(&db), start(&db));
    let (a, b) = (na.addr(), nb.addr());
    let owner = register(&a, "own");
    let member = register(&b, "mem");
    let room = create_room(&a, &owner.token);
    join_room(&b, &member.token, &room);
    assert_eq!(set_slow(&a, &owner.token, &room, 2).0, 200);
    let mut wa = Ws::connect(&a, &member.token);
    let mut wb = Ws::connect(&b, &member.token);
    wa.join(&room, None);
    wb.join(&room, None);
    // Both sockets send at once: exactly one message is stored.
    let send = |w: &mut Ws, id: &str| {
        w.send(
            "send_message",
            json!({"room_id": room, "content": id, "client_msg_id": id}),
        )
    };
    send(&mut wa, "on-a");
    send(&mut wb, "on-b");
    let outcome = |w: &mut Ws| loop {
        let v = w.next_within(Duration::from_secs(10)).expect("an answer");
        match v["event"].as_str() {
            Some("message_ack") | Some("error") => return v,
            _ => {}
        }
    };
    let (oa, ob) = (outcome(&mut wa), outcome(&mut wb));
    let acks = [&oa, &ob]
        .iter()
        .filter(|v| v["event"] == "message_ack")
        .count();
    assert_eq!(acks, 1, "{oa} {ob}");
    let refused = if oa["event"] == "error" { &oa } else { &ob };
    assert_eq!(refused["data"]["code"], "slow_mode", "{refused}");
    let ms = refused["data"]["retry_after_ms"].as_u64().unwrap();
    assert!(ms > 0 && ms <= 2000, "{ms}");
    assert!(refused["data"]["client_msg_id"].is_string());
    // Over REST too, until the wait is over; then the member sends again.
    let r = post(&a, &member.token, &room, "rest too early");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (429, json!("slow_mode"))
    );
    let wait = r.json()["retry_after_ms"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(wait + 50));
    send(&mut wb, "later");
    let later = outcome(&mut wb);
    assert_eq!(later["event"], "message_ack", "{later}");
    // What was refused took no seq.
    gapless(&all_seqs(&a, &owner.token, &room));
}

#[test]
fn a_direct_room_has_no_slow_mode() {
    let db = TestDb::new();
    let n = start(&db);
    let a = n.addr();
    let (x, y) = (register(&a, "x"), register(&a, "y"));
    let (s, dm) = call(&a, "POST", "/dm", &x.token, Some(&json!({"user_id": y.id})));
    assert_eq!(s, 201, "{dm}");
    assert_eq!(dm["slow_mode_secs"], 0);
    let room = dm["id"].as_str().unwrap();
    assert_eq!(
        code(&set_slow(&a, &x.token, room, 10)),
        (400, "invalid_payload".into())
    );
}
