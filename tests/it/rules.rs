//! The rules of rooms a hostile member or admin tried to get around: restrictions that
//! outlive membership, retry keys reused across operations, the token checked before
//! the body, roles in the access rule, invitations, ownership, typing, direct rooms,
//! unread counts and per-user rates. Two nodes on one database wherever more than one
//! is involved.

use crate::support::*;
use serde_json::{Value, json};

/// One REST call on a fresh connection.
fn call(a: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    request(a, method, path, Some(token), body.as_ref())
}

/// Status and error code of an answer.
fn code(r: &(u16, Value)) -> (u16, String) {
    (r.0, r.1["code"].as_str().unwrap_or_default().to_string())
}

/// Asserts a call succeeded (any 2xx).
fn ok(r: (u16, Value)) {
    assert!((200..300).contains(&r.0), "{} {}", r.0, r.1);
}

/// `/rooms/:room/members/:user/<verb>`.
fn member(room: &str, user: &User, verb: &str) -> String {
    format!("/rooms/{room}/members/{}/{verb}", user.id)
}

/// Posts `content` over REST: the status and body.
fn post(a: &str, token: &str, room: &str, content: &str) -> (u16, Value) {
    call(
        a,
        "POST",
        &format!("/rooms/{room}/messages"),
        token,
        Some(json!({ "content": content })),
    )
}

#[test]
fn a_mute_outlives_leaving_and_joining_again_on_every_node() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let owner = register(&a, "own");
    let bob = register(&b, "bob");
    let room = create_room(&a, &owner.token);
    join_room(&b, &bob.token, &room);
    ok(call(
        &a,
        "POST",
        &member(&room, &bob, "mute"),
        &owner.token,
        None,
    ));
    assert_eq!(
        code(&post(&b, &bob.token, &room, "x")),
        (403, "muted".into())
    );

    // Leaving and joining again (on the other node) keeps the mute.
    ok(call(
        &b,
        "POST",
        &format!("/rooms/{room}/leave"),
        &bob.token,
        None,
    ));
    join_room(&b, &bob.token, &room);
    assert_eq!(
        code(&post(&b, &bob.token, &room, "x")),
        (403, "muted".into())
    );
    assert_eq!(
        code(&post(&a, &bob.token, &room, "x")),
        (403, "muted".into())
    );
    let mut ws = Ws::connect(&a, &bob.token);
    ws.join(&room, None);
    ws.send(
        "send_message",
        json!({"room_id": room, "content": "x", "client_msg_id": "k"}),
    );
    assert_eq!(ws.expect("error")["code"], "muted");
    let (_, list) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/members"),
        &owner.token,
        None,
    );
    let shown = list
        .as_array()
        .or(list["members"].as_array())
        .expect("a member list")
        .iter()
        .find(|m| m["id"] == bob.id.as_str())
        .expect("bob is listed")
        .clone();
    assert_eq!(shown["muted"], true, "{shown}");

    // Unmuted, he sends again; a ban then an unban lifts nothing else.
    ok(call(
        &b,
        "POST",
        &member(&room, &bob, "unmute"),
        &owner.token,
        None,
    ));
    assert_eq!(post(&a, &bob.token, &room, "free").0, 201);
    ok(call(
        &a,
        "POST",
        &member(&room, &bob, "mute"),
        &owner.token,
        None,
    ));
    ok(call(
        &a,
        "POST",
        &member(&room, &bob, "ban"),
        &owner.token,
        None,
    ));
    assert_eq!(
        code(&call(
            &b,
            "POST",
            &format!("/rooms/{room}/join"),
            &bob.token,
            None
        )),
        (403, "banned".into())
    );
    ok(call(
        &b,
        "POST",
        &member(&room, &bob, "unban"),
        &owner.token,
        None,
    ));
    join_room(&b, &bob.token, &room);
    assert_eq!(
        code(&post(&b, &bob.token, &room, "x")),
        (403, "muted".into())
    );
}

/// Sends `event` on `ws` with `client_msg_id` `key`; the answer naming that key
/// (`message_ack` or `error`).
fn answer(ws: &mut Ws, event: &str, mut data: Value, key: &str) -> Value {
    data["client_msg_id"] = json!(key);
    ws.send(event, data);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Some(e) = ws.next_within(std::time::Duration::from_millis(200))
            && (e["event"] == "message_ack" || e["event"] == "error")
            && e["data"]["client_msg_id"] == key
        {
            return e;
        }
    }
    panic!("no answer to {event} {key}");
}

#[test]
fn a_client_msg_id_reused_for_another_operation_is_refused_on_every_node() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let ann = register(&a, "ann");
    let room = create_room(&a, &ann.token);
    let mut wa = Ws::connect(&a, &ann.token);
    wa.join(&room, None);
    let send = |ws: &mut Ws, key: &str| {
        answer(
            ws,
            "send_message",
            json!({"room_id": room, "content": format!("text {key}")}),
            key,
        )
    };
    let k1 = send(&mut wa, "k1");
    let k2 = send(&mut wa, "k2");
    assert_eq!(k2["event"], "message_ack", "{k2}");
    let (id1, id2) = (k1["data"]["id"].clone(), k2["data"]["id"].clone());

    // On the other node: k1 named a send; a deletion or an edit of k2 under k1 is refused.
    let mut wb = Ws::connect(&b, &ann.token);
    wb.join(&room, None);
    let target = json!({"room_id": room, "message_id": id2});
    for (event, extra) in [
        ("delete_message", json!({})),
        ("edit_message", json!({"content": "changed"})),
        ("react", json!({"emoji": "👍"})),
    ] {
        let mut data = target.clone();
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = answer(&mut wb, event, data, "k1");
        assert_eq!(
            (e["event"].as_str(), e["data"]["code"].as_str()),
            (Some("error"), Some("client_msg_id_reused")),
            "{event} under a send's key: {e}"
        );
    }
    let (_, page) = call(
        &a,
        "GET",
        &format!("/rooms/{room}/messages"),
        &ann.token,
        None,
    );
    let m2 = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id2)
        .expect("k2's message")
        .clone();
    assert!(m2["deleted_at"].is_null(), "{m2}");
    assert_eq!(m2["content"], "text k2");

    // A deletion under d1, retried, is one deletion; d1 then names it: a send, or the
    // deletion of another message, under d1 is refused.
    let del = |ws: &mut Ws, id: &Value| {
        answer(
            ws,
            "delete_message",
            json!({"room_id": room, "message_id": id}),
            "d1",
        )
    };
    let first = del(&mut wb, &id2);
    assert_eq!(first["event"], "message_ack", "{first}");
    let again = del(&mut wa, &id2);
    assert_eq!(again["data"]["seq"], first["data"]["seq"], "{again}");
    let other = del(&mut wa, &id1);
    assert_eq!(other["data"]["code"], "client_msg_id_reused", "{other}");
    let s = send(&mut wa, "d1");
    assert_eq!(s["data"]["code"], "client_msg_id_reused", "{s}");
}

/// A route's path with each parameter filled in.
fn concrete(path: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    path.replace("{id}", &id)
        .replace("{user_id}", &id)
        .replace("{message_id}", "1")
        .replace("{emoji}", "%F0%9F%91%8D")
        .replace("{room_id}", &id)
}

#[test]
fn the_token_is_checked_before_the_body_on_every_route() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let (_, openapi) = request(&a, "GET", "/openapi.json", None, None);
    let mut checked = 0;
    for (method, path) in chatd::http::routes::ROUTES {
        let op = &openapi["paths"][*path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in /openapi.json");
        if op["security"].as_array().is_none_or(|s| s.is_empty()) {
            continue;
        }
        checked += 1;
        let target = concrete(path);
        for auth in [None, Some("Bearer not-a-token")] {
            let mut req = format!(
                "{method} {target}?limit=-5&q=%00 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n"
            );
            if let Some(h) = auth {
                req.push_str(&format!("Authorization: {h}\r\n"));
            }
            req.push_str("\r\n{,}x]");
            let mut c = Http::connect(&a);
            c.send_raw(req.as_bytes());
            let r = c.read().expect("a response");
            assert_eq!(
                r.status,
                401,
                "{method} {path} ({auth:?}, bad body): {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    assert!(checked >= 30, "only {checked} routes need a token");
}

#[test]
fn an_admin_acts_on_members_only_and_history_is_the_owners() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let owner = register(&a, "own");
    let ad1 = register(&b, "adm");
    let ad2 = register(&a, "adn");
    let mem = register(&b, "mem");
    let out = register(&a, "out");
    let room = create_room(&a, &owner.token);
    for u in [&ad1, &ad2, &mem] {
        join_room(&b, &u.token, &room);
    }
    for u in [&ad1, &ad2] {
        ok(call(
            &a,
            "PUT",
            &member(&room, u, "role"),
            &owner.token,
            Some(json!({"role": "admin"})),
        ));
    }
    let patch = |who: &User, body: Value| {
        code(&call(
            &b,
            "PATCH",
            &format!("/rooms/{room}"),
            &who.token,
            Some(body),
        ))
    };
    let refused = (403, "forbidden".to_string());

    // Retention: an admin may keep messages longer, never shorter.
    assert_eq!(patch(&ad1, json!({"retention_days": 1})), refused);
    assert_eq!(patch(&owner, json!({"retention_days": 30})).0, 200);
    assert_eq!(patch(&ad1, json!({"retention_days": 7})), refused);
    assert_eq!(patch(&ad1, json!({"retention_days": null})), refused);
    assert_eq!(patch(&ad1, json!({"retention_days": 60})).0, 200);
    assert_eq!(patch(&ad1, json!({"retention_days": 0})).0, 200);
    assert_eq!(patch(&ad1, json!({"retention_days": 5})), refused);
    assert_eq!(patch(&ad1, json!({"description": "plain"})).0, 200);

    // Visibility: an admin may hide the room, only the owner exposes its history.
    assert_eq!(patch(&ad1, json!({"visibility": "private"})).0, 200);
    assert_eq!(patch(&ad1, json!({"visibility": "public"})), refused);
    assert_eq!(patch(&owner, json!({"visibility": "public"})).0, 200);

    // Others' messages: an admin deletes members' only; the owner admins' too.
    let mut c = Http::connect(&a);
    let id = |u: &User, c: &mut Http| post_message(c, &u.token, &room, "x")["id"].clone();
    let (m_o, m_a2, m_m, m_a2b) = (
        id(&owner, &mut c),
        id(&ad2, &mut c),
        id(&mem, &mut c),
        id(&ad2, &mut c),
    );
    let del = |who: &User, mid: &Value| {
        code(&call(
            &b,
            "DELETE",
            &format!("/rooms/{room}/messages/{mid}"),
            &who.token,
            None,
        ))
    };
    assert_eq!(del(&ad1, &m_o), refused);
    assert_eq!(del(&ad1, &m_a2), refused);
    assert!(del(&ad1, &m_m).0 < 300);
    assert!(del(&owner, &m_a2b).0 < 300);

    // Restrictions the owner set are the owner's to lift; an admin's, any admin's.
    ok(call(
        &a,
        "POST",
        &member(&room, &out, "ban"),
        &owner.token,
        None,
    ));
    assert_eq!(
        code(&call(
            &b,
            "POST",
            &member(&room, &out, "unban"),
            &ad1.token,
            None
        )),
        refused
    );
    ok(call(
        &a,
        "POST",
        &member(&room, &mem, "mute"),
        &owner.token,
        None,
    ));
    assert_eq!(
        code(&call(
            &b,
            "POST",
            &member(&room, &mem, "unmute"),
            &ad1.token,
            None
        )),
        refused
    );
    ok(call(
        &a,
        "POST",
        &member(&room, &mem, "unmute"),
        &owner.token,
        None,
    ));
    ok(call(
        &a,
        "POST",
        &member(&room, &out, "unban"),
        &owner.token,
        None,
    ));
    ok(call(
        &a,
        "POST",
        &member(&room, &out, "ban"),
        &ad2.token,
        None,
    ));
    ok(call(
        &b,
        "POST",
        &member(&room, &out, "unban"),
        &ad1.token,
        None,
    ));

    // Sanctions on admins and the owner.
    for verb in ["kick", "ban", "mute"] {
        assert_eq!(
            code(&call(
                &b,
                "POST",
                &member(&room, &ad2, verb),
                &ad1.token,
                None
            )),
            refused,
            "{verb} an admin"
        );
        assert_eq!(
            code(&call(
                &b,
                "POST",
                &member(&room, &owner, verb),
                &ad1.token,
                None
            )),
            refused,
            "{verb} the owner"
        );
    }
}

#[test]
fn a_muted_members_typing_is_not_relayed_to_any_node() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let owner = register(&a, "own");
    let bob = register(&b, "bob");
    let room = create_room(&a, &owner.token);
    join_room(&b, &bob.token, &room);
    let mut wo = Ws::connect(&a, &owner.token);
    wo.join(&room, None);
    ok(call(
        &a,
        "POST",
        &member(&room, &bob, "mute"),
        &owner.token,
        None,
    ));
    let mut wb = Ws::connect(&b, &bob.token);
    wb.join(&room, None);
    wo.drain(std::time::Duration::from_millis(300));
    wb.send("typing_start", json!({"room_id": room}));
    let seen = wo.drain(std::time::Duration::from_millis(1500));
    assert!(
        !seen.iter().any(|e| e["event"] == "typing"),
        "a muted member's typing was relayed: {seen:?}"
    );
    // Unmuted, a fresh socket's typing arrives (the check above could see one).
    ok(call(
        &a,
        "POST",
        &member(&room, &bob, "unmute"),
        &owner.token,
        None,
    ));
    let mut wb2 = Ws::connect(&b, &bob.token);
    wb2.join(&room, None);
    wb2.send("typing_start", json!({"room_id": room}));
    let t = wo.expect("typing");
    assert_eq!(t["user_id"], bob.id.as_str(), "{t}");
}

/// The caller's entry for `room` in `GET /me/rooms`, and the rooms' order.
fn my_room(a: &str, who: &User, room: &str) -> (Value, Vec<String>) {
    let (s, body) = call(a, "GET", "/me/rooms?limit=100", &who.token, None);
    assert_eq!(s, 200, "{body}");
    let rooms = body["rooms"].as_array().expect("rooms").clone();
    let order = rooms
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mine = rooms
        .into_iter()
        .find(|r| r["id"] == room)
        .unwrap_or(Value::Null);
    (mine, order)
}

#[test]
fn ownership_passes_to_a_member_who_can_act_and_an_empty_room_goes() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let owner = register(&a, "own");
    let heir = register(&b, "heir");
    let room = create_room(&a, &owner.token);
    join_room(&b, &heir.token, &room);
    ok(call(
        &a,
        "POST",
        &member(&room, &heir, "mute"),
        &owner.token,
        None,
    ));
    ok(call(
        &a,
        "POST",
        &format!("/rooms/{room}/leave"),
        &owner.token,
        None,
    ));
    // The only member left is the owner now, and can act.
    let (mine, _) = my_room(&b, &heir, &room);
    assert_eq!(
        (mine["role"].as_str(), mine["muted"].as_bool()),
        (Some("owner"), Some(false)),
        "{mine}"
    );
    assert_eq!(post(&b, &heir.token, &room, "mine now").0, 201);

    // The last member leaving deletes the room with what it stored.
    ok(call(
        &b,
        "POST",
        &format!("/rooms/{room}/leave"),
        &heir.token,
        None,
    ));
    assert_eq!(
        code(&call(
            &a,
            "GET",
            &format!("/rooms/{room}"),
            &owner.token,
            None
        )),
        (404, "room_not_found".into())
    );
    let rid: uuid::Uuid = room.parse().unwrap();
    let left: i64 = db
        .client()
        .query_one("SELECT count(*) FROM messages WHERE room_id = $1", &[&rid])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn reopening_a_direct_room_keeps_the_settings_of_the_side_that_left() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let ann = register(&a, "ann");
    let bob = register(&b, "bob");
    let dm = |from: &User, to: &User, at: &str| {
        let r = call(
            at,
            "POST",
            "/dm",
            &from.token,
            Some(json!({"user_id": to.id})),
        );
        assert!(r.0 == 200 || r.0 == 201, "{r:?}");
        r.1["id"].as_str().unwrap().to_string()
    };
    let room = dm(&ann, &bob, &a);
    let mut c = Http::connect(&a);
    post_message(&mut c, &ann.token, &room, "one");
    let seq = post_message(&mut c, &ann.token, &room, "two")["seq"]
        .as_i64()
        .unwrap();
    ok(call(
        &b,
        "POST",
        &format!("/rooms/{room}/read"),
        &bob.token,
        Some(json!({"seq": seq})),
    ));
    ok(call(
        &b,
        "PUT",
        &format!("/rooms/{room}/notifications"),
        &bob.token,
        Some(json!({"muted": true})),
    ));
    ok(call(
        &b,
        "POST",
        &format!("/rooms/{room}/leave"),
        &bob.token,
        None,
    ));
    post_message(&mut c, &ann.token, &room, "three");
    assert_eq!(dm(&ann, &bob, &a), room);
    let (mine, _) = my_room(&b, &bob, &room);
    assert_eq!(mine["notifications_muted"], true, "{mine}");
    assert_eq!(mine["last_read_seq"].as_i64(), Some(seq), "{mine}");
    assert_eq!(mine["unread"].as_i64(), Some(1), "{mine}");
}

#[test]
fn unread_counts_messages_of_others_and_only_messages_move_a_room_up() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let ann = register(&a, "ann");
    let bob = register(&b, "bob");
    let cat = register(&a, "cat");
    let room = create_room(&a, &ann.token);
    let other = create_room(&a, &ann.token);
    for u in [&bob, &cat] {
        join_room(&b, &u.token, &room);
        join_room(&b, &u.token, &other);
    }
    let mut c = Http::connect(&a);
    post_message(&mut c, &bob.token, &room, "mine do not count");
    let mid = post_message(&mut c, &ann.token, &room, "hello")["id"].clone();
    let (mine, _) = my_room(&b, &bob, &room);
    assert_eq!(mine["unread"].as_i64(), Some(1), "{mine}");
    let head = room_head(&b, &bob.token, &room);
    ok(call(
        &b,
        "POST",
        &format!("/rooms/{room}/read"),
        &bob.token,
        Some(json!({"seq": head})),
    ));
    // The other room gets the latest message: it is first.
    post_message(&mut c, &ann.token, &other, "later");
    let (_, order) = my_room(&b, &bob, &room);
    assert_eq!(order[0], other);

    // Reactions, edits, deletions and membership entries in the first room.
    for _ in 0..10 {
        for m in ["PUT", "DELETE"] {
            ok(call(
                &a,
                m,
                &format!("/rooms/{room}/messages/{mid}/reactions/%F0%9F%91%8D"),
                &cat.token,
                None,
            ));
        }
    }
    ok(call(
        &a,
        "PATCH",
        &format!("/rooms/{room}/messages/{mid}"),
        &ann.token,
        Some(json!({"content": "edited"})),
    ));
    ok(call(
        &a,
        "DELETE",
        &format!("/rooms/{room}/messages/{mid}"),
        &ann.token,
        None,
    ));
    let dan = register(&a, "dan");
    join_room(&a, &dan.token, &room);
    ok(call(
        &a,
        "POST",
        &format!("/rooms/{room}/leave"),
        &dan.token,
        None,
    ));
    let (mine, order) = my_room(&b, &bob, &room);
    assert!(mine["last_seq"].as_i64().unwrap() > head + 20, "{mine}");
    assert_eq!(mine["unread"].as_i64(), Some(0), "{mine}");
    assert_eq!(order[0], other, "only a message moves a room up");

    // A message does both.
    post_message(&mut c, &cat.token, &room, "news");
    let (mine, order) = my_room(&b, &bob, &room);
    assert_eq!(mine["unread"].as_i64(), Some(1), "{mine}");
    assert_eq!(order[0], room);
}

#[test]
fn an_invitation_works_only_while_its_inviter_may_invite() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let owner = register(&a, "own");
    let adm = register(&a, "adm");
    let (x, y) = (register(&b, "xx"), register(&b, "yy"));
    let (s, body) = call(
        &a,
        "POST",
        "/rooms",
        &owner.token,
        Some(json!({"name": format!("p-{}", &x.id[..8]), "visibility": "private"})),
    );
    assert_eq!(s, 201, "{body}");
    let room = body["id"].as_str().unwrap().to_string();
    let invite = |by: &User, to: &User| {
        call(
            &a,
            "POST",
            &format!("/rooms/{room}/invites"),
            &by.token,
            Some(json!({"user_id": to.id})),
        )
    };
    ok(invite(&owner, &adm));
    join_room(&b, &adm.token, &room);
    ok(call(
        &a,
        "PUT",
        &member(&room, &adm, "role"),
        &owner.token,
        Some(json!({"role": "admin"})),
    ));
    ok(invite(&adm, &x));
    ok(invite(&adm, &y));
    // Demoted, then removed: neither invitation lets anyone in, nor is listed.
    ok(call(
        &a,
        "PUT",
        &member(&room, &adm, "role"),
        &owner.token,
        Some(json!({"role": "member"})),
    ));
    let (_, listed) = call(&b, "GET", "/me/invites?limit=50", &x.token, None);
    assert_eq!(
        listed["invites"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert_eq!(
        code(&call(
            &b,
            "POST",
            &format!("/rooms/{room}/join"),
            &x.token,
            None
        )),
        (404, "room_not_found".into())
    );
    ok(call(
        &a,
        "POST",
        &member(&room, &adm, "kick"),
        &owner.token,
        None,
    ));
    assert_eq!(
        code(&call(
            &b,
            "POST",
            &format!("/rooms/{room}/join"),
            &y.token,
            None
        )),
        (404, "room_not_found".into())
    );
    // Invited again by someone who may, x joins.
    ok(invite(&owner, &x));
    join_room(&b, &x.token, &room);
}

#[test]
fn room_creations_and_invitations_are_limited_per_user_across_nodes() {
    let db = TestDb::new();
    let tweak = |c: &mut chatd::config::Config| {
        c.limits.rooms_per_user_per_hour = 3;
        c.limits.invites_per_user_per_hour = 2;
    };
    let (n1, n2) = (start_with(&db, tweak), start_with(&db, tweak));
    let (a, b) = (n1.addr(), n2.addr());
    let ann = register(&a, "ann");
    let bob = register(&b, "bob");
    let room = create_room(&a, &ann.token);
    create_room(&b, &ann.token);
    create_room(&a, &ann.token);
    let r = raw_request(
        &b,
        "POST",
        "/rooms",
        Some(&ann.token),
        Some(&json!({"name": "one-too-many"})),
    );
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    // Another user is not held back; a direct room is not counted.
    create_room(&a, &bob.token);
    let dm = call(
        &a,
        "POST",
        "/dm",
        &ann.token,
        Some(json!({"user_id": bob.id})),
    );
    assert!(dm.0 < 300, "{dm:?}");

    let mut invited = 0;
    for _ in 0..3 {
        let u = register(&a, "inv");
        let r = call(
            &b,
            "POST",
            &format!("/rooms/{room}/invites"),
            &ann.token,
            Some(json!({"user_id": u.id})),
        );
        match r.0 {
            200..=299 => invited += 1,
            429 => break,
            s => panic!("{s} {}", r.1),
        }
    }
    assert_eq!(invited, 2);
}

#[test]
fn invitations_are_listed_revoked_declined_and_paged() {
    let db = TestDb::new();
    let (n1, n2) = (start(&db), start(&db));
    let (a, b) = (n1.addr(), n2.addr());
    let owner = register(&a, "own");
    let mem = register(&a, "mem");
    let guests: Vec<User> = (0..5).map(|_| register(&b, "g")).collect();
    let room = create_room(&a, &owner.token);
    join_room(&a, &mem.token, &room);
    let path = format!("/rooms/{room}/invites");
    for g in &guests {
        ok(call(
            &a,
            "POST",
            &path,
            &owner.token,
            Some(json!({"user_id": g.id})),
        ));
    }
    // A member may not list or revoke.
    assert_eq!(
        code(&call(&b, "GET", &path, &mem.token, None)),
        (403, "forbidden".into())
    );
    let revoke = format!("{path}/{}", guests[0].id);
    assert_eq!(
        code(&call(&b, "DELETE", &revoke, &mem.token, None)),
        (403, "forbidden".into())
    );
    // The owner pages through all five, two at a time, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let (s, page) = call(&b, "GET", &q, &owner.token, None);
        assert_eq!(s, 200, "{page}");
        for i in page["invites"].as_array().unwrap() {
            seen.push(i["user"]["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let want: Vec<String> = guests.iter().rev().map(|g| g.id.clone()).collect();
    assert_eq!(seen, want);
    // Revoked on one node, declined on the other: neither can join; the rest can.
    ok(call(&b, "DELETE", &revoke, &owner.token, None));
    ok(call(
        &a,
        "DELETE",
        &format!("/me/invites/{room}"),
        &guests[1].token,
        None,
    ));
    let (_, mine) = call(&a, "GET", "/me/invites?limit=50", &guests[1].token, None);
    assert_eq!(mine["invites"].as_array().map(Vec::len), Some(0), "{mine}");
    let (_, left) = call(&a, "GET", &path, &owner.token, None);
    assert_eq!(left["invites"].as_array().map(Vec::len), Some(3), "{left}");
    ok(call(
        &b,
        "PATCH",
        &format!("/rooms/{room}"),
        &owner.token,
        Some(json!({"visibility": "private"})),
    ));
    for (g, can) in guests.iter().zip([false, false, true, true, true]) {
        let r = call(&b, "POST", &format!("/rooms/{room}/join"), &g.token, None);
        assert_eq!(r.0 < 300, can, "{r:?}");
    }
}

#[test]
fn one_event_rate_binds_a_user_across_rest_and_its_sockets() {
    let db = TestDb::new();
    let node = start_with(&db, |c| c.websocket.max_events_per_sec = 20);
    let a = node.addr();
    let ann = register(&a, "ann");
    let bob = register(&a, "bob");
    let room = create_room(&a, &ann.token);
    join_room(&a, &bob.token, &room);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Twenty events on a socket use up the second; REST posts and room creations wait.
    let mut ws = Ws::connect(&a, &ann.token);
    ws.join(&room, None);
    for i in 0..20 {
        let _ = i;
        ws.send("typing_stop", json!({"room_id": room}));
    }
    ws.send("ping", json!({}));
    ws.expect("pong");
    let mut c = Http::connect(&a);
    let r = c.call(
        "POST",
        &format!("/rooms/{room}/messages"),
        Some(&ann.token),
        Some(&json!({"content": "over"})),
    );
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = c.call(
        "POST",
        "/rooms",
        Some(&ann.token),
        Some(&json!({"name": "over-too"})),
    );
    assert_eq!(r.status, 429);
    // Another user is not held back.
    post_message(&mut c, &bob.token, &room, "free");
    // Next second: twenty REST posts use it up, and the socket's next send is refused.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut stored = 0;
    for i in 0..20 {
        let r = c.call(
            "POST",
            &format!("/rooms/{room}/messages"),
            Some(&ann.token),
            Some(&json!({"content": format!("m{i}")})),
        );
        if r.status == 201 {
            stored += 1;
        }
    }
    assert!(
        stored >= 19,
        "{stored} of 20 posts in one second were stored"
    );
    ws.send(
        "send_message",
        json!({"room_id": room, "content": "x", "client_msg_id": "over"}),
    );
    let e = ws.expect("error");
    assert_eq!(e["code"], "rate_limited", "{e}");
}
