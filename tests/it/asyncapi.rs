//! The AsyncAPI description of the WebSocket protocol (GET /asyncapi.json,
//! src/http/asyncapi.json) names exactly the events the server decodes and sends: the
//! document against `CLIENT_EVENTS` and `SERVER_EVENTS`, and those lists against the
//! source, so an event the server starts sending or accepting without being documented
//! fails here.

use crate::support::*;
use chatd::ws::events::{CLIENT_EVENTS, SERVER_EVENTS};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn set<S: AsRef<str>>(names: &[S]) -> BTreeSet<String> {
    names.iter().map(|s| s.as_ref().to_string()).collect()
}

/// `v`, or what its local `$ref` (`#/a/b`) points to.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.strip_prefix('#').expect("a local $ref"))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// The names of the messages of operation `op` (`publish`, `subscribe`) of channel /ws,
/// checking that each message's frame schema is `{event: <its name>, data}`.
fn message_names(doc: &Value, op: &str) -> Vec<String> {
    let message = &doc["channels"]["/ws"][op]["message"];
    let list: Vec<&Value> = match message["oneOf"].as_array() {
        Some(all) => all.iter().collect(),
        None => vec![message],
    };
    assert!(!list.is_empty(), "{op} has no message");
    list.into_iter()
        .map(|m| {
            let m = resolve(doc, m);
            let name = m["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{op}: a message without a name: {m}"));
            let payload = resolve(doc, &m["payload"]);
            assert_eq!(
                payload["type"], "object",
                "{name}: the payload is the frame"
            );
            assert_eq!(
                payload["properties"]["event"]["const"], name,
                "{name}: the frame's event is the message's name"
            );
            assert!(
                payload["properties"]["data"].is_object(),
                "{name}: the frame's data has a schema"
            );
            let required = set(&payload["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default());
            assert!(required.contains("event"), "{name}: event is required");
            name.to_string()
        })
        .collect()
}

#[test]
fn asyncapi_is_served_and_names_exactly_the_events() {
    let db = TestDb::new();
    let node = start(&db);
    let a = node.addr();
    let r = raw_request(&a, "GET", "/asyncapi.json", None, None);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    let doc = r.json();
    assert_eq!(doc["asyncapi"], "2.6.0");
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(chatd::http::routes::ASYNCAPI).unwrap()
    );
    let head = raw_request(&a, "HEAD", "/asyncapi.json", None, None);
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        raw_request(&a, "POST", "/asyncapi.json", None, None).header("allow"),
        Some("GET, HEAD")
    );

    // The channel is /ws, authenticated by the token query parameter (or the header).
    let ws = &doc["channels"]["/ws"];
    assert!(ws["bindings"]["ws"]["query"]["properties"]["token"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["token"]["in"], "query");

    let client = message_names(&doc, "publish");
    assert_eq!(client.len(), set(&client).len(), "a client event twice");
    assert_eq!(
        set(&client),
        set(CLIENT_EVENTS),
        "publish (client to server) messages of /asyncapi.json against CLIENT_EVENTS"
    );
    let server = message_names(&doc, "subscribe");
    assert_eq!(server.len(), set(&server).len(), "a server event twice");
    assert_eq!(
        set(&server),
        set(SERVER_EVENTS),
        "subscribe (server to client) messages of /asyncapi.json against SERVER_EVENTS"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without its `#[cfg(test)] mod tests { ... }` (a top-level module closed by
/// the first `}` at the start of a line): tests write client frames and made-up events.
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
        if lines[i] == "#[cfg(test)]" && next.is_some_and(|l| l.starts_with("mod ")) {
            while i < lines.len() && lines[i] != "}" {
                i += 1;
            }
        } else {
            out.push(lines[i]);
        }
        i += 1;
    }
    out.join("\n")
}

/// The string literal starting at `at` after optional whitespace, if any.
fn literal_at(text: &str, at: usize) -> Option<&str> {
    let rest = text[at..].trim_start();
    let body = rest.strip_prefix('"')?;
    let end = body.find('"')?;
    let name = &body[..end];
    (!name.is_empty() && !name.contains('\\')).then_some(name)
}

/// The event names the code sends: `encode("name"` (also with the name on the next
/// line), `"event": "name"`, and `RoomEvent::X(_) => "name"` (RoomEvent::name).
fn sent_events(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in text.match_indices("encode(") {
        names.extend(literal_at(text, i + "encode(".len()));
    }
    for (i, _) in text.match_indices("\"event\"") {
        let rest = text[i + "\"event\"".len()..].trim_start();
        if let Some(after) = rest.strip_prefix(':') {
            names.extend(literal_at(after, 0));
        }
    }
    for line in text.lines().filter(|l| l.contains("RoomEvent::")) {
        if let Some(i) = line.find("=> ") {
            names.extend(literal_at(line, i + 2));
        }
    }
    names.into_iter().map(str::to_string).collect()
}

/// The names `decode` matches on: string literals followed by `=>` or `|` in its body.
fn decoded_events(events_rs: &str) -> BTreeSet<String> {
    let start = events_rs
        .find("pub fn decode(")
        .expect("src/ws/events.rs has decode");
    let len = events_rs[start..]
        .find("\n}\n")
        .expect("decode ends at a `}` line");
    let body = &events_rs[start..start + len];
    let mut names = BTreeSet::new();
    let mut rest = body;
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        let lit = &after[..close];
        let tail = after[close + 1..].trim_start();
        if (tail.starts_with("=>") || (tail.starts_with('|') && !tail.starts_with("||")))
            && !lit.is_empty()
        {
            names.insert(lit.to_string());
        }
        rest = &after[close + 1..];
    }
    names
}

#[test]
fn the_server_sends_exactly_the_listed_events() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        for name in sent_events(&without_tests(&text)) {
            sent.entry(name).or_default().push(rel.clone());
        }
    }
    let listed = set(SERVER_EVENTS);
    let undocumented: Vec<_> = sent.iter().filter(|(n, _)| !listed.contains(*n)).collect();
    assert!(
        undocumented.is_empty(),
        "events sent by the server but missing from SERVER_EVENTS (and from asyncapi.json, \
         docs/PROTOCOL.md): {undocumented:?}"
    );
    let unseen: Vec<_> = listed.iter().filter(|n| !sent.contains_key(*n)).collect();
    assert!(
        unseen.is_empty(),
        "SERVER_EVENTS names events no source line sends (or sends in a way this scan \
         does not see): {unseen:?}"
    );
}

#[test]
fn decode_matches_exactly_the_listed_client_events() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ws/events.rs");
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        decoded_events(&without_tests(&text)),
        set(CLIENT_EVENTS),
        "the event names decode matches on against CLIENT_EVENTS"
    );
}

#[test]
fn the_scans_see_each_pattern() {
    let code = r##"
fn f() {
    let a = events::encode("alpha", &x);
    let b = events::encode(
        "beta",
        &json!({ "room_id": r }),
    );
    let c = json!({"event": "gamma", "data": 1});
    let d = json!({ "event" : "delta" });
    let h = history::encode(m);
    let t = jsonwebtoken::encode(&Header::new(), &c);
}
impl RoomEvent {
    fn name(&self) -> &'static str {
        match self {
            RoomEvent::Presence(_) => "epsilon",
        }
    }
}

#[cfg(test)]
mod tests {
    fn t() {
        decode(r#"{"event":"zeta"}"#);
        encode("eta", &1);
    }
}
"##;
    let found = set(&sent_events(&without_tests(code)));
    assert_eq!(
        found,
        set(&["alpha", "beta", "gamma", "delta", "epsilon"]),
        "{found:?}"
    );
    assert!(set(&sent_events(code)).contains("zeta"));

    let decode = r#"
pub fn decode(text: &str) -> Result<ClientEvent, ApiError> {
    let e = ApiError::BadRequest("invalid_json", "x".into());
    match event.as_str() {
        "one" => Ok(()),
        "two" | "three" => match event.as_str() {
            "two" => 2,
            _ => 3,
        },
        other => Err(other),
    }
}
"#;
    assert_eq!(decoded_events(decode), set(&["one", "two", "three"]));
}
