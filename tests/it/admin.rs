//! The server API for the product's backend (`/admin/...` with an API key): keys and
//! who may use them, accounts created, tokens minted, deactivation closing sockets on
//! two nodes, rooms managed as users would, and the audit log (room moderation by
//! users included, written with the action).

use crate::support::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// The API key of the tests (its SHA-256 is configured by [`with_key`]).
pub const KEY: &str = "backend-key-0123456789abcdef0123456789";

/// The SHA-256 of a key, in hex, as `[[api_keys]]` configures it.
pub fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Configures the test API key, named `backend`.
pub fn with_key(c: &mut chatd::base::config::Config) {
    c.api_keys = vec![chatd::base::config::ApiKeyConfig {
        name: "backend".into(),
        key_sha256: digest(KEY),
    }];
}

fn admin(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, Some(KEY), body)
}

fn new_user(addr: &str, name: &str) -> Value {
    let (s, u) = admin(
        addr,
        "POST",
        "/admin/users",
        Some(&json!({"username": name})),
    );
    assert_eq!(s, 201, "{u}");
    u
}

fn mint(addr: &str, id: &str) -> String {
    let (s, t) = admin(addr, "POST", &format!("/admin/users/{id}/tokens"), None);
    assert_eq!(s, 201, "{t}");
    t["accessToken"].as_str().unwrap().to_string()
}

fn audit(addr: &str, query: &str) -> Value {
    let (s, page) = admin(addr, "GET", &format!("/admin/audit{query}"), None);
    assert_eq!(s, 200, "{page}");
    page
}

fn actions(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

/// Waits for the socket's close frame; its code and how long it took.
fn closed_within(ws: &mut Ws, limit: Duration) -> (Option<u64>, Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = ws.next_within(Duration::from_millis(100))
            && v["event"] == "__close"
        {
            return (v["data"]["code"].as_u64(), start.elapsed());
        }
    }
    (None, start.elapsed())
}

#[test]
fn api_keys_open_the_server_api_and_nothing_else() {
    let db = TestDb::new();
    let node = start_with(&db, with_key);
    let a = node.addr();
    let user = register(&a, "keys");
    assert_eq!(audit(&a, "")["entries"], json!([]));
    // A user's token on /admin is 403, whatever the path, and says nothing of users.
    for path in ["/admin/audit", &format!("/admin/users/{}/tokens", user.id)] {
        let method = if path.ends_with("audit") {
            "GET"
        } else {
            "POST"
        };
        let (s, b) = request(&a, method, path, Some(&user.token), None);
        assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")), "{path}");
    }
    // No token, a wrong key, a user's refresh token: 401.
    for token in [None, Some("not-the-key"), Some(user.refresh.as_str())] {
        let (s, b) = request(&a, "GET", "/admin/audit", token, None);
        assert_eq!(s, 401, "{token:?}: {b}");
    }
    // The key on a user route is 401.
    for (m, p) in [("GET", "/me"), ("GET", "/rooms"), ("POST", "/rooms")] {
        let (s, b) = request(&a, m, p, Some(KEY), Some(&json!({"name": "x"})));
        assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{p}");
    }
    // Unknown method on a known path: 405 with Allow; unknown path: 404.
    let r = raw_request(&a, "GET", "/admin/users", Some(KEY), None);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(admin(&a, "GET", "/admin/nothing", None).0, 404);
    // Bad input names the rule.
    let (s, b) = admin(&a, "POST", "/admin/users", Some(&json!({"username": "a"})));
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("validation_failed")),
        "{b}"
    );
    let (s, b) = admin(&a, "GET", "/admin/audit?limit=0", None);
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_payload")),
        "{b}"
    );
    // Without [[api_keys]] nothing opens the server API.
    let db2 = TestDb::new();
    let plain = start(&db2);
    assert_eq!(admin(&plain.addr(), "GET", "/admin/audit", None).0, 401);
}

#[test]
fn accounts_tokens_and_deactivation_close_sockets_on_both_nodes() {
    let db = TestDb::new();
    let n1 = start_with(&db, with_key);
    let n2 = start_with(&db, with_key);
    let (a, b) = (n1.addr(), n2.addr());

    let u = new_user(&a, "Carol");
    assert_eq!(
        (u["username"].as_str(), u["email"].as_str()),
        (Some("Carol"), None)
    );
    assert_eq!(u["deactivated"], false);
    let id = u["id"].as_str().unwrap().to_string();
    let (s, e) = admin(
        &b,
        "POST",
        "/admin/users",
        Some(&json!({"username": "carol"})),
    );
    assert_eq!((s, e["code"].as_str()), (409, Some("username_taken")));
    let (s, e) = admin(
        &a,
        "POST",
        "/admin/users",
        Some(&json!({"username": "eve", "external_id": "x"})),
    );
    assert_eq!(
        (s, e["code"].as_str()),
        (400, Some("invalid_payload")),
        "needs [auth.external]"
    );
    let missing = uuid::Uuid::now_v7();
    assert_eq!(
        admin(&a, "POST", &format!("/admin/users/{missing}/tokens"), None).0,
        404
    );

    // Minted tokens sign the user in on either node, REST and sockets.
    let t1 = mint(&a, &id);
    let (s, me) = request(&b, "GET", "/me", Some(&t1), None);
    assert_eq!((s, me["username"].as_str()), (200, Some("Carol")));
    let t2 = mint(&b, &id);
    let mut on_a = Ws::connect(&a, &t1);
    let mut on_b = Ws::connect(&b, &t2);
    for ws in [&mut on_a, &mut on_b] {
        ws.send("ping", json!(1));
        ws.expect("pong");
    }
    // A local account with a password, deactivated the same way.
    let local = register(&a, "local");
    let mut local_ws = Ws::connect(&b, &local.token);
    local_ws.send("ping", json!(1));
    local_ws.expect("pong");

    let (s, d) = admin(&b, "POST", &format!("/admin/users/{id}/deactivate"), None);
    assert_eq!((s, d["deactivated"].as_bool()), (200, Some(true)), "{d}");
    for ws in [&mut on_a, &mut on_b] {
        let (code, took) = closed_within(ws, Duration::from_secs(3));
        assert_eq!(code, Some(1008));
        assert!(took < Duration::from_secs(1), "closed after {took:?}");
    }
    for (node, t) in [(&a, &t1), (&b, &t2)] {
        let (s, e) = request(node, "GET", "/me", Some(t), None);
        assert_eq!((s, e["code"].as_str()), (401, Some("invalid_token")));
    }
    let (s, e) = admin(&a, "POST", &format!("/admin/users/{id}/tokens"), None);
    assert_eq!((s, e["code"].as_str()), (403, Some("account_deactivated")));

    admin(
        &a,
        "POST",
        &format!("/admin/users/{}/deactivate", local.id),
        None,
    );
    let (code, took) = closed_within(&mut local_ws, Duration::from_secs(3));
    assert_eq!(code, Some(1008));
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    let login =
        json!({"email": format!("{}@example.com", local.username), "password": "password123"});
    let (s, e) = request(&b, "POST", "/auth/login", None, Some(&login));
    assert_eq!((s, e["code"].as_str()), (403, Some("account_deactivated")));
    let (s, _) = request(
        &a,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": local.refresh})),
    );
    assert_eq!(s, 401);

    // Reactivated: new tokens and logins work again; the old sessions stay revoked.
    let (s, d) = admin(&a, "POST", &format!("/admin/users/{id}/reactivate"), None);
    assert_eq!((s, d["deactivated"].as_bool()), (200, Some(false)));
    let t3 = mint(&b, &id);
    assert_eq!(request(&a, "GET", "/me", Some(&t3), None).0, 200);
    assert_eq!(request(&a, "GET", "/me", Some(&t1), None).0, 401);
    admin(
        &b,
        "POST",
        &format!("/admin/users/{}/reactivate", local.id),
        None,
    );
    assert_eq!(
        request(&b, "POST", "/auth/login", None, Some(&login)).0,
        201
    );

    let page = audit(&b, "");
    assert_eq!(
        actions(&page),
        [
            "user.reactivate",
            "user.tokens",
            "user.reactivate",
            "user.deactivate",
            "user.deactivate",
            "user.tokens",
            "user.tokens",
            "user.create",
        ]
    );
    let newest = &page["entries"][0];
    assert_eq!(
        newest["actor"],
        json!({"kind": "api_key", "id": "backend", "name": "backend"})
    );
    assert_eq!(newest["target_user_id"], json!(local.id));
    assert!(newest["at"].as_str().unwrap().ends_with('Z'));
    // Pages: newest first, the cursor continues where the last page ended.
    let first = audit(&a, "?limit=3");
    assert_eq!(actions(&first), actions(&page)[..3]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = audit(&a, &format!("?limit=10&cursor={cursor}"));
    assert_eq!(actions(&rest), actions(&page)[3..]);
    assert_eq!(rest["next_cursor"], Value::Null);
}

/// The next message of the socket matching `pred` (single or batched frames), within 10 s.
fn next_message(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(v) = ws.next_within(Duration::from_millis(200)) else {
            continue;
        };
        let msgs = match v["event"].as_str() {
            Some("new_message") => vec![v["data"].clone()],
            Some("new_message_batch") => v["data"].as_array().unwrap().clone(),
            Some(e) if e.starts_with("__") => panic!("socket ended: {v}"),
            _ => continue,
        };
        if let Some(m) = msgs.into_iter().find(|m| pred(m)) {
            return m;
        }
    }
    panic!("no matching message within 10 s");
}

#[test]
fn rooms_managed_by_the_backend_behave_as_if_users_did_it_on_every_node() {
    let db = TestDb::new();
    let n1 = start_with(&db, with_key);
    let n2 = start_with(&db, with_key);
    let (a, b) = (n1.addr(), n2.addr());
    let ids: Vec<String> = ["owner", "first", "second", "outsider"]
        .iter()
        .map(|n| {
            new_user(
                &a,
                &format!("{n}_{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
            )["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let (owner, first, second, outsider) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    let body = json!({"name": "Order 1234", "visibility": "private", "owner_id": owner,
                      "member_ids": [first, owner]});
    let (s, room) = admin(&a, "POST", "/admin/rooms", Some(&body));
    assert_eq!(
        (s, room["visibility"].as_str()),
        (201, Some("private")),
        "{room}"
    );
    let rid = room["id"].as_str().unwrap().to_string();
    let (s, e) = admin(
        &a,
        "POST",
        "/admin/rooms",
        Some(&json!({"name": "x", "owner_id": missing()})),
    );
    assert_eq!((s, e["code"].as_str()), (404, Some("user_not_found")));
    let (s, e) = admin(&a, "POST", "/admin/rooms", Some(&json!({"name": "x"})));
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")));

    // The first member's socket on the other node sees what the backend does.
    let first_token = mint(&a, first);
    let mut ws = Ws::connect(&b, &first_token);
    ws.join(&rid, None);
    let (s, _) = admin(
        &a,
        "POST",
        &format!("/admin/rooms/{rid}/members"),
        Some(&json!({"user_id": second, "role": "admin"})),
    );
    assert_eq!(s, 200);
    let joined = next_message(&mut ws, |m| {
        m["kind"] == "system" && m["data"]["user_id"] == json!(second)
    });
    assert_eq!(joined["data"]["type"], "joined");
    let (s, e) = admin(
        &a,
        "POST",
        &format!("/admin/rooms/{rid}/members"),
        Some(&json!({"user_id": second, "role": "owner"})),
    );
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")));

    let (s, m) = admin(
        &a,
        "POST",
        &format!("/admin/rooms/{rid}/messages"),
        Some(&json!({"user_id": second, "content": "hello from the shop"})),
    );
    assert_eq!(
        (s, m["user_id"].as_str()),
        (201, Some(second.as_str())),
        "{m}"
    );
    let seen = next_message(&mut ws, |x| x["content"] == "hello from the shop");
    assert_eq!(seen["seq"], m["seq"]);
    let (s, e) = admin(
        &a,
        "POST",
        &format!("/admin/rooms/{rid}/messages"),
        Some(&json!({"user_id": outsider, "content": "let me in"})),
    );
    assert_eq!((s, e["code"].as_str()), (404, Some("room_not_found")));

    let notice = json!({"content": "Your order shipped", "client_msg_id": "ship-1"});
    let (s, n) = admin(
        &b,
        "POST",
        &format!("/admin/rooms/{rid}/messages"),
        Some(&notice),
    );
    assert_eq!((s, n["kind"].as_str()), (201, Some("system")), "{n}");
    let seen = next_message(&mut ws, |x| x["content"] == "Your order shipped");
    assert_eq!(
        (seen["seq"].clone(), seen["data"]["type"].clone()),
        (n["seq"].clone(), json!("notice"))
    );
    let (s, again) = admin(
        &a,
        "POST",
        &format!("/admin/rooms/{rid}/messages"),
        Some(&notice),
    );
    assert_eq!(
        (s, again["seq"].clone()),
        (200, n["seq"].clone()),
        "a retry stores nothing new"
    );

    let owner_token = mint(&b, owner);
    let (_, members) = request(
        &a,
        "GET",
        &format!("/rooms/{rid}/members"),
        Some(&owner_token),
        None,
    );
    let role_of = |id: &str| {
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == json!(id))
            .map(|m| m["role"].clone())
    };
    assert_eq!(role_of(second), Some(json!("admin")));
    assert_eq!(role_of(owner), Some(json!("owner")));

    // Removed by the backend: the socket on the other node leaves the room.
    let (s, _) = admin(
        &a,
        "DELETE",
        &format!("/admin/rooms/{rid}/members/{first}"),
        None,
    );
    assert_eq!(s, 200);
    let left = ws.expect("left_room");
    assert_eq!(
        (left["room_id"].as_str(), left["reason"].as_str()),
        (Some(rid.as_str()), Some("kicked"))
    );
    let (s, e) = admin(
        &a,
        "DELETE",
        &format!("/admin/rooms/{rid}/members/{first}"),
        None,
    );
    assert_eq!((s, e["code"].as_str()), (404, Some("member_not_found")));
    assert_eq!(
        request(
            &a,
            "GET",
            &format!("/rooms/{rid}/messages"),
            Some(&first_token),
            None
        )
        .0,
        404
    );

    let page = audit(&a, "");
    assert_eq!(
        actions(&page),
        [
            "room.member_remove",
            "user.tokens",
            "room.notice",
            "room.message",
            "room.member_add",
            "user.tokens",
            "room.create",
            "user.create",
            "user.create",
            "user.create",
            "user.create",
        ]
    );
    let removal = &page["entries"][0];
    assert_eq!(
        (
            removal["room_id"].as_str(),
            removal["target_user_id"].as_str()
        ),
        (Some(rid.as_str()), Some(first.as_str()))
    );
}

fn missing() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[test]
fn room_moderation_by_users_is_audited_with_the_action() {
    let db = TestDb::new();
    let node = start_with(&db, with_key);
    let a = node.addr();
    let owner = register(&a, "own");
    let (x, y) = (register(&a, "x"), register(&a, "y"));
    let room = create_room(&a, &owner.token);
    for u in [&x, &y] {
        join_room(&a, &u.token, &room);
    }
    let mut c = Http::connect(&a);
    let msg = post_message(&mut c, &y.token, &room, "spam");
    let r = |m: &str, p: String, t: &str, b: Option<Value>| {
        let (s, body) = request(&a, m, &p, Some(t), b.as_ref());
        assert!(s < 300, "{m} {p}: {s} {body}");
    };
    r(
        "POST",
        format!("/rooms/{room}/members/{}/mute", x.id),
        &owner.token,
        None,
    );
    r(
        "PUT",
        format!("/rooms/{room}/members/{}/role", y.id),
        &owner.token,
        Some(json!({"role": "admin"})),
    );
    r(
        "PUT",
        format!("/rooms/{room}/members/{}/role", y.id),
        &owner.token,
        Some(json!({"role": "member"})),
    );
    r(
        "DELETE",
        format!("/rooms/{room}/messages/{}", msg["id"]),
        &owner.token,
        None,
    );
    r(
        "POST",
        format!("/rooms/{room}/members/{}/kick", x.id),
        &owner.token,
        None,
    );
    r(
        "POST",
        format!("/rooms/{room}/members/{}/ban", y.id),
        &owner.token,
        None,
    );
    r(
        "PATCH",
        format!("/rooms/{room}"),
        &owner.token,
        Some(json!({"name": "renamed room"})),
    );
    // Deleting one's own message, joining, sending: not moderation, not audited.
    let own = post_message(&mut c, &owner.token, &room, "mine");
    r(
        "DELETE",
        format!("/rooms/{room}/messages/{}", own["id"]),
        &owner.token,
        None,
    );
    r("DELETE", format!("/rooms/{room}"), &owner.token, None);
    // A refused moderation leaves no row (the audit row is in the action's transaction).
    let (s, _) = request(
        &a,
        "POST",
        &format!("/rooms/{room}/members/{}/kick", owner.id),
        Some(&x.token),
        None,
    );
    assert!(s >= 400);

    let page = audit(&a, "");
    assert_eq!(
        actions(&page),
        [
            "room.delete",
            "room.settings",
            "room.ban",
            "room.kick",
            "message.delete",
            "room.role",
            "room.role",
            "room.mute"
        ]
    );
    for e in page["entries"].as_array().unwrap() {
        assert_eq!(
            e["actor"],
            json!({"kind": "user", "id": owner.id, "name": owner.username})
        );
        assert_eq!(e["room_id"], json!(room));
    }
    assert_eq!(page["entries"][1]["data"], json!({"name": "renamed room"}));
    assert_eq!(page["entries"][4]["target_user_id"], json!(y.id));
    assert_eq!(page["entries"][4]["data"]["message_id"], msg["id"]);
    assert_eq!(page["entries"][5]["data"], json!({"role": "member"}));
}

/// Polls until the account row is gone (the deletion thread finished), within `limit`.
fn wait_deleted(db: &TestDb, user: &str, limit: Duration) {
    let id: uuid::Uuid = user.parse().unwrap();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let n: i64 = db
            .client()
            .query_one("SELECT count(*) FROM users WHERE id = $1", &[&id])
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the account was not deleted within {limit:?}");
}

#[test]
fn deleting_a_user_erases_its_messages_as_stream_entries_or_keeps_them_unnamed() {
    let db = TestDb::new();
    let n1 = start_with(&db, with_key);
    let n2 = start_with(&db, with_key);
    let (a, b) = (n1.addr(), n2.addr());
    let (gone, kept, other) = (
        register(&a, "gone"),
        register(&a, "kept"),
        register(&a, "oth"),
    );
    let rooms: Vec<String> = (0..2).map(|_| create_room(&a, &other.token)).collect();
    let mut c = Http::connect(&a);
    let mut written = Vec::new();
    for room in &rooms {
        for u in [&gone, &kept] {
            join_room(&a, &u.token, room);
            written.push((
                u.id.clone(),
                post_message(&mut c, &u.token, room, "private words"),
            ));
        }
    }
    let theirs = post_message(&mut c, &other.token, &rooms[0], "react to me");
    let path = format!(
        "/rooms/{}/messages/{}/reactions/%F0%9F%91%8D",
        rooms[0], theirs["id"]
    );
    let (s, r) = request(&a, "PUT", &path, Some(&gone.token), None);
    assert!(s < 300, "{s} {r}");
    let mut ws = Ws::connect(&b, &other.token);
    ws.join(&rooms[0], None);
    let mut user_ws = Ws::connect(&b, &gone.token);
    user_ws.send("ping", json!(1));
    user_ws.expect("pong");

    let (s, e) = admin(
        &a,
        "DELETE",
        &format!("/admin/users/{}?erase=maybe", gone.id),
        None,
    );
    assert_eq!((s, e["code"].as_str()), (400, Some("invalid_payload")));
    let (s, d) = admin(
        &a,
        "DELETE",
        &format!("/admin/users/{}?erase=true", gone.id),
        None,
    );
    assert_eq!(
        (s, d["status"].as_str(), d["erase"].as_bool()),
        (202, Some("deleting"), Some(true))
    );
    assert_eq!(
        closed_within(&mut user_ws, Duration::from_secs(3)).0,
        Some(1008)
    );
    let (s, _) = admin(&b, "DELETE", &format!("/admin/users/{}", kept.id), None);
    assert_eq!(s, 202);
    // The other member's socket on the other node sees the erasure as stream entries.
    let mine = written
        .iter()
        .find(|(u, _)| *u == gone.id)
        .unwrap()
        .1
        .clone();
    let deleted = next_message(&mut ws, |m| {
        m["kind"] == "message_deleted" && m["message_id"] == mine["id"]
    });
    assert_eq!(deleted["room_id"], json!(rooms[0]));
    next_message(&mut ws, |m| {
        m["kind"] == "reaction_removed" && m["message_id"] == theirs["id"]
    });
    next_message(&mut ws, |m| {
        m["kind"] == "system"
            && m["data"]["type"] == "left"
            && m["data"]["user_id"] == json!(gone.id)
    });
    wait_deleted(&db, &gone.id, Duration::from_secs(20));
    wait_deleted(&db, &kept.id, Duration::from_secs(20));

    let mut pg = db.client();
    for (user, m) in &written {
        let id = m["id"].as_i64().unwrap();
        let row = pg
            .query_one(
                "SELECT content, deleted_at IS NOT NULL, username FROM messages WHERE id = $1",
                &[&id],
            )
            .unwrap();
        let (content, deleted, name): (String, bool, String) = (row.get(0), row.get(1), row.get(2));
        if *user == gone.id {
            assert_eq!((content.as_str(), deleted), ("", true), "erased");
        } else {
            assert_eq!(
                (content.as_str(), deleted),
                ("private words", false),
                "kept"
            );
        }
        assert_eq!(name, "deleted user");
    }
    let reactions: i64 = pg
        .query_one("SELECT count(*) FROM message_reactions", &[])
        .unwrap()
        .get(0);
    assert_eq!(reactions, 0);
    let (_, page) = request(
        &a,
        "GET",
        &format!("/rooms/{}/messages", rooms[1]),
        Some(&other.token),
        None,
    );
    let shown: Vec<&Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "message")
        .collect();
    assert!(
        shown
            .iter()
            .any(|m| m["content"] == "private words" && m["username"] == "deleted user"),
        "{page}"
    );
    let (_, members) = request(
        &a,
        "GET",
        &format!("/rooms/{}/members", rooms[1]),
        Some(&other.token),
        None,
    );
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    assert_eq!(actions(&audit(&a, ""))[..2], ["user.delete", "user.delete"]);
    assert_eq!(
        admin(&a, "DELETE", &format!("/admin/users/{}", gone.id), None).0,
        404
    );
}

#[test]
fn an_erasure_interrupted_by_a_node_kill_resumes_on_the_next_node() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("chatd-erase-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("server.toml");
    let base = std::fs::read_to_string(loadtest_config()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{base}\n[[api_keys]]\nname = \"backend\"\nkey_sha256 = \"{}\"\n",
            digest(KEY)
        ),
    )
    .unwrap();
    let start =
        |id: &str| Process::start_with(&db, id, "warn", std::process::Stdio::null(), Some(&cfg));
    let mut first = start("erase-1");
    let a = first.addr.clone();
    let user = register(&a, "many");
    let other = register(&a, "stay");
    let room = create_room(&a, &other.token);
    join_room(&a, &user.token, &room);
    // 4,000 messages of the user, stored as the writer stores them.
    const N: i64 = 4000;
    let room_id: uuid::Uuid = room.parse().unwrap();
    let uid: uuid::Uuid = user.id.parse().unwrap();
    let mut pg = db.client();
    pg.execute(
        "WITH s AS (UPDATE rooms SET last_seq = last_seq + $3 WHERE id = $1 RETURNING last_seq - $3 AS base)
         INSERT INTO messages (room_id, seq, user_id, username, content)
         SELECT $1, s.base + g, $2, 'many', 'secret ' || g FROM s, generate_series(1, $3) g",
        &[&room_id, &uid, &N],
    )
    .unwrap();
    let (s, _) = admin(
        &a,
        "DELETE",
        &format!("/admin/users/{}?erase=true", user.id),
        None,
    );
    assert_eq!(s, 202);
    let erased = |pg: &mut postgres::Client| -> i64 {
        pg.query_one(
            "SELECT count(*) FROM messages WHERE user_id = $1 AND kind = 'message' AND deleted_at IS NOT NULL",
            &[&uid],
        )
        .unwrap()
        .get(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while erased(&mut pg) == 0 {
        assert!(Instant::now() < deadline, "the erasure never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap();
    let _ = first.child.wait();
    let halfway = erased(&mut pg);
    assert!(
        halfway > 0 && halfway < N,
        "killed halfway: {halfway} of {N}"
    );

    let second = start("erase-2");
    wait_deleted(&db, &user.id, Duration::from_secs(60));
    assert_eq!(erased(&mut pg), N, "every message erased");
    let left: i64 = pg
        .query_one(
            "SELECT count(*) FROM messages WHERE user_id = $1 AND content LIKE 'secret%'",
            &[&uid],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // One deletion entry per message: nothing done twice, nothing skipped.
    let row = pg
        .query_one(
            "SELECT count(*), count(DISTINCT target_id) FROM messages
             WHERE room_id = $1 AND kind = 'message_deleted'",
            &[&room_id],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (N, N));
    let (_, page) = request(
        &second.addr,
        "GET",
        &format!("/rooms/{room}/messages?limit=5"),
        Some(&other.token),
        None,
    );
    assert!(
        page["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_deleted_account_leaves_no_file_that_no_kept_message_holds() {
    let db = TestDb::new();
    let node = start_with(&db, with_key);
    let a = node.addr();
    let (gone, kept, other) = (
        register(&a, "fgone"),
        register(&a, "fkept"),
        register(&a, "foth"),
    );
    let room = create_room(&a, &other.token);
    let files = |u: &User| -> (String, String) {
        join_room(&a, &u.token, &room);
        let held = crate::files::uploaded(&a, &u.token, &room, "held.pdf", b"%PDF-1.7 held");
        let loose = crate::files::uploaded(&a, &u.token, &room, "loose.pdf", b"%PDF-1.7 loose");
        let body = json!({"content": "see attached", "attachments": [{"file_id": held["id"]}]});
        let (s, m) = request(
            &a,
            "POST",
            &format!("/rooms/{room}/messages"),
            Some(&u.token),
            Some(&body),
        );
        assert_eq!(s, 201, "{m}");
        let id = |f: &Value| f["id"].as_str().unwrap().to_string();
        (id(&held), id(&loose))
    };
    let (gone_held, gone_loose) = files(&gone);
    let (kept_held, kept_loose) = files(&kept);
    let theirs = crate::files::uploaded(&a, &other.token, &room, "x.pdf", b"%PDF-1.7 x");

    for (user, erase) in [(&gone, "true"), (&kept, "false")] {
        let path = format!("/admin/users/{}?erase={erase}", user.id);
        assert_eq!(admin(&a, "DELETE", &path, None).0, 202);
    }
    wait_deleted(&db, &gone.id, Duration::from_secs(20));
    wait_deleted(&db, &kept.id, Duration::from_secs(20));

    let mut pg = db.client();
    let rows = |pg: &mut postgres::Client, id: &str| -> (i64, i64) {
        let id: uuid::Uuid = id.parse().unwrap();
        let row = pg
            .query_one(
                "SELECT (SELECT count(*) FROM files WHERE id = $1),
                        (SELECT count(*) FROM file_chunks WHERE file_id = $1)",
                &[&id],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    // Erased: its messages went and their files with them; its loose upload too.
    assert_eq!(
        rows(&mut pg, &gone_held),
        (0, 0),
        "erased user's attached file"
    );
    assert_eq!(
        rows(&mut pg, &gone_loose),
        (0, 0),
        "erased user's loose upload"
    );
    // Kept messages keep their files; the loose upload of a deleted account goes.
    assert_eq!(rows(&mut pg, &kept_held).0, 1, "a kept message's file");
    assert!(rows(&mut pg, &kept_held).1 > 0);
    assert_eq!(
        rows(&mut pg, &kept_loose),
        (0, 0),
        "deleted user's loose upload"
    );
    // Another member's upload is untouched.
    assert_eq!(rows(&mut pg, theirs["id"].as_str().unwrap()).0, 1);
}
