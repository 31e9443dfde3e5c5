//! A member removed from a private room (kicked, banned, or gone by itself) sees nothing
//! of it afterwards: every route of the route table that names the room, every list and
//! search that could name it, every WebSocket event it could send, and the socket that
//! was in the room while the room goes on. Generated from the route and event tables, so
//! a new route or event is covered without touching this file.

use crate::support::schema::{Ids, fill, resolve, sample};
use crate::support::*;
use chatd::http::routes::ROUTES;
use chatd::ws::events::CLIENT_EVENTS;
use serde_json::{Value, json};
use std::time::Duration;

fn call(a: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    request(a, method, path, Some(token), body.as_ref())
}

/// The body /openapi.json describes for `method path`, if it takes one.
fn body_of(openapi: &Value, method: &str, path: &str, ids: &Ids) -> Option<Value> {
    let op = &openapi["paths"][path][method.to_lowercase()];
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    schema.is_object().then(|| sample(openapi, schema, ids))
}

/// The required query parameters of `method path`, filled with a word of the room.
fn query_of(openapi: &Value, method: &str, path: &str) -> String {
    let op = &openapi["paths"][path][method.to_lowercase()];
    let names: Vec<String> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| resolve(openapi, p))
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .filter_map(|p| p["name"].as_str().map(|n| format!("{n}=secret")))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("?{}", names.join("&"))
    }
}

/// Kicked, banned and gone by itself, each from its own private room, with its socket on
/// another node than the owner's: afterwards the room does not exist for it. Fails if any
/// route of a room answers a former member: shown by letting `base::access::check` allow
/// `See` to anyone ("kick: GET /rooms/{id}: 200 {..."name":"secret-kick-2"...}").
#[test]
fn a_removed_member_sees_nothing_of_a_private_room_on_any_route_or_event() {
    let db = TestDb::new();
    let nodes = [start(&db), start(&db)];
    let (a, b) = (nodes[0].addr(), nodes[1].addr());
    let owner = register(&a, "rmown");
    let other = register(&a, "rmoth");
    let (_, openapi) = request(&a, "GET", "/openapi.json", None, None);
    for how in ["kick", "ban", "leave"] {
        let ex = register(&a, &format!("rm{how}"));
        let (s, r) = call(
            &a,
            "POST",
            "/rooms",
            &owner.token,
            Some(json!({"name": format!("secret-{how}"), "visibility": "private"})),
        );
        assert_eq!(s, 201, "{r}");
        let room = r["id"].as_str().unwrap().to_string();
        for u in [&ex, &other] {
            let invite = json!({"user_id": u.id});
            let p = format!("/rooms/{room}/invites");
            assert_eq!(call(&a, "POST", &p, &owner.token, Some(invite)).0, 201);
            let p = format!("/rooms/{room}/join");
            assert_eq!(call(&a, "POST", &p, &u.token, None).0, 201);
        }
        // The member's socket, on the other node, is in the room and hears it.
        let mut w = Ws::connect(&b, &ex.token);
        w.join(&room, None);
        let mut h = Http::connect(&a);
        let before = post_message(&mut h, &owner.token, &room, "secret before")["id"]
            .as_i64()
            .unwrap();
        w.expect_where("new_message", |m| m["id"] == before);
        w.drain(Duration::from_millis(300));

        let (s, r) = match how {
            "leave" => call(&a, "POST", &format!("/rooms/{room}/leave"), &ex.token, None),
            act => {
                let p = format!("/rooms/{room}/members/{}/{act}", ex.id);
                call(&a, "POST", &p, &owner.token, None)
            }
        };
        assert!(s < 300, "{how}: {s} {r}");
        // The removal reaches the socket; nothing of the room follows it.
        let frames = w.drain(Duration::from_millis(500));
        assert!(
            frames.iter().any(|f| f["event"] == "membership"
                || f["event"] == "left_room"
                || (f["event"] == "error" && f["data"]["room_id"] == room.as_str())),
            "{how}: the socket was not told: {frames:?}"
        );

        // The room goes on: messages, typing, edits, reactions, a thread, a rename.
        let mut wo = Ws::connect(&a, &owner.token);
        wo.join(&room, None);
        wo.send(
            "send_message",
            json!({"room_id": room, "content": "secret after", "client_msg_id": format!("{how}1")}),
        );
        let after = wo.expect("message_ack")["id"].as_i64().unwrap();
        wo.send("typing_start", json!({"room_id": room}));
        wo.send(
            "edit_message",
            json!({"room_id": room, "message_id": after, "content": "secret edited", "client_msg_id": format!("{how}2")}),
        );
        wo.send(
            "react",
            json!({"room_id": room, "message_id": after, "emoji": "👍"}),
        );
        wo.send(
            "send_message",
            json!({"room_id": room, "content": "secret thread", "reply_to": after, "client_msg_id": format!("{how}3")}),
        );
        let rename = json!({"name": format!("secret-{how}-2")});
        let p = format!("/rooms/{room}");
        assert_eq!(call(&a, "PATCH", &p, &owner.token, Some(rename)).0, 200);
        w.assert_silent(
            Duration::from_millis(800),
            &format!("{how}: the former member's socket heard the room"),
        );

        // Every route that names the room: as if it did not exist.
        let ids = Ids {
            room: room.clone(),
            user: other.id.clone(),
            message: after,
        };
        let mut tried = 0;
        for (method, path) in ROUTES {
            if !path.starts_with("/rooms/{id}") {
                continue;
            }
            let target = format!("{}{}", fill(path, &ids), query_of(&openapi, method, path));
            let body = body_of(&openapi, method, path, &ids);
            let (s, r) = call(&b, method, &target, &ex.token, body);
            let refused = match (*method, *path) {
                // A banned user learns it is banned only where it asks to come back.
                ("POST", "/rooms/{id}/join") if how == "ban" => {
                    s == 404 || (s == 403 && r["code"] == "banned")
                }
                _ => s == 404 && r["code"] == "room_not_found",
            };
            assert!(refused, "{how}: {method} {path}: {s} {r}");
            assert!(
                !r.to_string().contains("secret"),
                "{how}: {method} {path}: {r}"
            );
            tried += 1;
        }
        assert!(tried >= 23, "only {tried} room routes");
        // Lists and searches that could name it.
        for path in [
            "/rooms",
            "/me/rooms",
            "/me/invites",
            "/me/search?q=secret",
            "/rooms?visibility=private",
        ] {
            let (s, r) = call(&b, "GET", path, &ex.token, None);
            assert!(s == 200 || s == 400, "{how}: GET {path}: {s} {r}");
            let text = r.to_string();
            assert!(
                !text.contains(&room) && !text.contains("secret"),
                "{how}: GET {path}: {r}"
            );
        }
        // Every event the socket could send about the room is refused, none acked.
        let (_, asyncapi) = request(&a, "GET", "/asyncapi.json", None, None);
        for name in CLIENT_EVENTS {
            let m = resolve(&asyncapi, &asyncapi["components"]["messages"][*name]);
            let schema = &resolve(&asyncapi, &m["payload"])["properties"]["data"];
            let data = sample(&asyncapi, schema, &ids);
            if data.get("room_id").is_none() {
                continue;
            }
            w.send(name, data);
            let frames = w.drain(Duration::from_millis(300));
            // Leaving the socket's subscription is answered alike for any room id.
            let refused = |f: &Value| {
                (f["event"] == "error"
                    && ["room_not_found", "not_member", "banned"]
                        .contains(&f["data"]["code"].as_str().unwrap_or("")))
                    || (*name == "leave_room" && f["event"] == "left_room")
            };
            assert!(
                frames.iter().all(refused),
                "{how}: {name} was not refused: {frames:?}"
            );
            if *name != "leave_room" && *name != "typing_stop" {
                assert!(!frames.is_empty(), "{how}: {name} got no answer");
            }
        }
        w.assert_silent(Duration::from_millis(300), "nothing after the refusals");
    }
}
