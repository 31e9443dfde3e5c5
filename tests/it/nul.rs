//! U+0000, which PostgreSQL text cannot store, in every client string: every string field
//! of every REST body (from the route table and /openapi.json's request schemas), every
//! string field of every WebSocket event (from `CLIENT_EVENTS` and /asyncapi.json), every
//! query parameter and the one free-text path parameter. A new route, event or field is
//! covered without touching this file.

use crate::support::schema::{Ids, fill, resolve, sample};
use crate::support::*;
use chatd::http::routes::ROUTES;
use chatd::ws::events::CLIENT_EVENTS;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const NUL: &str = "a\u{0}b";

/// Every path (keys and array indexes) to a string leaf of `schema`.
fn string_leaves(doc: &Value, schema: &Value, at: Vec<Value>, out: &mut Vec<Vec<Value>>) {
    let s = resolve(doc, schema);
    let types: Vec<&str> = match &s["type"] {
        Value::Array(t) => t.iter().filter_map(Value::as_str).collect(),
        Value::String(t) => vec![t.as_str()],
        _ => vec![],
    };
    if types.contains(&"string") {
        out.push(at.clone());
    }
    if types.contains(&"object") {
        for (k, v) in s["properties"].as_object().into_iter().flatten() {
            let mut p = at.clone();
            p.push(json!(k));
            string_leaves(doc, v, p, out);
        }
    }
    if types.contains(&"array") {
        let mut p = at;
        p.push(json!(0));
        string_leaves(doc, &s["items"], p, out);
    }
}

/// `v` with the leaf at `path` set to `leaf`.
fn with_leaf(mut v: Value, path: &[Value], leaf: &str) -> Value {
    let mut cur = &mut v;
    for step in path {
        cur = match step {
            Value::String(k) => &mut cur[k.as_str()],
            Value::Number(i) => &mut cur[i.as_u64().unwrap() as usize],
            _ => unreachable!(),
        };
    }
    *cur = json!(leaf);
    v
}

/// Every string field of every REST body and of every WebSocket event, one at a time,
/// holding U+0000: refused with `invalid_payload` naming the field, and nothing stored.
/// Fails if a string escapes the edge check: shown by letting strings of 3 bytes or less
/// through `http::body::has_nul` ("POST /auth/register email: 400 validation_failed",
/// where invalid_payload was due).
#[test]
fn a_nul_in_any_string_field_of_any_body_or_event_is_refused_naming_it() {
    let db = TestDb::new();
    // The server API's routes are reached with an API key.
    let node = start_with(&db, crate::admin::with_key);
    let a = node.addr();
    let owner = register(&a, "nulo");
    let other = register(&a, "nulx");
    let room = create_room(&a, &owner.token);
    join_room(&a, &other.token, &room);
    let mut h = Http::connect(&a);
    let message = post_message(&mut h, &owner.token, &room, "hello")["id"]
        .as_i64()
        .unwrap();
    let ids = Ids {
        room: room.clone(),
        user: other.id.clone(),
        message,
    };
    let (_, openapi) = request(&a, "GET", "/openapi.json", None, None);
    let mut fields = 0;
    for (method, path) in ROUTES {
        let op = &openapi["paths"][*path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in /openapi.json");
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if !schema.is_object() {
            continue;
        }
        let mut leaves = Vec::new();
        string_leaves(&openapi, schema, Vec::new(), &mut leaves);
        for leaf in leaves {
            let name: Vec<String> = leaf
                .iter()
                .map(|s| s.as_str().map_or(s.to_string(), str::to_string))
                .collect();
            let body = with_leaf(sample(&openapi, schema, &ids), &leaf, NUL);
            let token = match path.starts_with("/admin/") {
                true => crate::admin::KEY,
                false => owner.token.as_str(),
            };
            let (s, b) = request(&a, method, &fill(path, &ids), Some(token), Some(&body));
            assert_eq!(
                (s, b["code"].as_str()),
                (400, Some("invalid_payload")),
                "{method} {path} {}: {s} {b}",
                name.join(".")
            );
            let top = name[0].as_str();
            assert!(
                b["message"].to_string().contains(top),
                "{method} {path}: the answer names {top}: {b}"
            );
            fields += 1;
        }
    }
    assert!(
        fields >= 20,
        "only {fields} string fields in the request bodies"
    );

    // The free-text path parameter.
    let (s, b) = request(
        &a,
        "PUT",
        &format!("/rooms/{room}/messages/{message}/reactions/%00"),
        Some(&owner.token),
        None,
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_payload")),
        "{b}"
    );

    // Every event: the socket is joined and a member, so only the NUL can refuse it.
    let (_, asyncapi) = request(&a, "GET", "/asyncapi.json", None, None);
    let mut w = Ws::connect(&a, &owner.token);
    w.join(&room, None);
    w.drain(Duration::from_millis(200));
    let mut events = 0;
    for name in CLIENT_EVENTS {
        let m = resolve(&asyncapi, &asyncapi["components"]["messages"][*name]);
        let data = &resolve(&asyncapi, &m["payload"])["properties"]["data"];
        let mut leaves = Vec::new();
        string_leaves(&asyncapi, data, Vec::new(), &mut leaves);
        for leaf in leaves {
            let field = leaf
                .iter()
                .map(|s| s.as_str().map_or(s.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(".");
            let data = with_leaf(sample(&asyncapi, data, &ids), &leaf, NUL);
            w.send(name, data.clone());
            let e = w.expect_next("error");
            assert_eq!(e["code"], "invalid_payload", "{name} {field}: {e}");
            let top = leaf[0].as_str().unwrap();
            assert!(
                e["message"].as_str().unwrap_or("").contains(top),
                "{name}: the error names {top}: {e}"
            );
            events += 1;
        }
    }
    assert!(events >= 15, "only {events} string fields in the events");
    // Nothing was stored but the one message, and nothing failed inside.
    let rows: i64 = db
        .client()
        .query_one("SELECT count(*) FROM messages WHERE kind <> 'system'", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    let m = &node.handle.metrics;
    assert_eq!(
        (m.job_panics.load(Relaxed), m.http_500.load(Relaxed)),
        (0, 0)
    );
}

/// U+0000 (`%00`) in every query parameter of every route the route table serves: never a
/// 500, never an ERROR line in the log; the search text answers 400 `validation_failed`.
/// Fails without the check of the search text: shown by removing the `'\0'` test from
/// `chat::search::check_query` ("GET /me/search q=%00: 500").
#[test]
fn a_nul_in_a_query_string_never_reaches_the_database() {
    let db = TestDb::new();
    let log = std::env::temp_dir().join(format!("chatd-nul-{}.log", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&log).unwrap();
    let mut p = Process::start_with(&db, "nul-1", "info", file.into(), None);
    let a = p.addr.clone();
    let u = register(&a, "nulq");
    let room = create_room(&a, &u.token);
    let mut h = Http::connect(&a);
    let message = post_message(&mut h, &u.token, &room, "hello")["id"]
        .as_i64()
        .unwrap();
    let ids = Ids {
        room: room.clone(),
        user: u.id.clone(),
        message,
    };
    let (_, openapi) = request(&a, "GET", "/openapi.json", None, None);
    let mut tried = 0;
    for (method, path) in ROUTES {
        let op = &openapi["paths"][*path][method.to_lowercase()];
        let params: Vec<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&openapi, p))
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        for param in params {
            for value in ["%00", "a%00b", "fox%00"] {
                let target = format!("{}?{param}={value}", fill(path, &ids));
                let body = (*method == "POST").then(|| json!({}));
                let (s, b) = request(&a, method, &target, Some(&u.token), body.as_ref());
                assert!(
                    s != 500 && s < 500,
                    "{method} {path} {param}={value}: {s} {b}"
                );
                if param == "q" {
                    assert_eq!(
                        (s, b["code"].as_str()),
                        (400, Some("validation_failed")),
                        "{method} {path} {param}={value}: {b}"
                    );
                }
                tried += 1;
            }
        }
    }
    assert!(tried >= 30, "only {tried} query parameters tried");
    assert_eq!(p.terminate(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "ERROR lines in the log: {errors:#?}");
}
