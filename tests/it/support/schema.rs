//! Requests made from /openapi.json and /asyncapi.json: sample values for a schema and
//! the route table's paths filled with ids, for the tests that cover every route.

use serde_json::{Value, json};

/// `v`, or what its local `$ref` points to (followed until it is not a reference).
pub fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v["$ref"].as_str() {
        v = doc
            .pointer(r.strip_prefix('#').expect("a local $ref"))
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    v
}

/// Values that pass the schema's type and format, for the fields around the one under
/// test (`ids`: what a uuid, a room id or a message id stands for here).
pub fn sample(doc: &Value, schema: &Value, ids: &Ids) -> Value {
    let s = resolve(doc, schema);
    if let Some(e) = s["enum"].as_array().and_then(|e| e.first()) {
        return e.clone();
    }
    // One of several forms (an attachment as a link or as an uploaded file): the first.
    if let Some(first) = s["oneOf"].as_array().and_then(|f| f.first()) {
        return sample(doc, first, ids);
    }
    let ty = match &s["type"] {
        Value::Array(t) => t
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        t => t.clone(),
    };
    match ty.as_str() {
        Some("object") => {
            let mut out = serde_json::Map::new();
            for (k, v) in s["properties"].as_object().into_iter().flatten() {
                let v = match k.as_str() {
                    "room_id" => json!(ids.room),
                    "user_id" => json!(ids.user),
                    "message_id" | "reply_to" => json!(ids.message),
                    "url" | "avatar_url" => json!("https://files.example/a.png"),
                    "mime" => json!("image/png"),
                    "emoji" => json!("👍"),
                    _ => sample(doc, v, ids),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Some("array") => json!([sample(doc, &s["items"], ids)]),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("string") => match s["format"].as_str() {
            Some("uuid") => json!(ids.user),
            Some("email") => json!(format!("nul{}@example.com", ids.message)),
            _ if s["pattern"]
                .as_str()
                .is_some_and(|p| p.contains("[hH][tT]")) =>
            {
                json!("https://files.example/a.png")
            }
            _ if s["pattern"].is_string() => json!("image/png"),
            _ => json!("sample-text-0123"),
        },
        _ => Value::Null,
    }
}

/// The ids a request needs to reach its handler.
pub struct Ids {
    pub room: String,
    pub user: String,
    pub message: i64,
}

/// `path` of the route table with the ids in place of its parameters.
pub fn fill(path: &str, ids: &Ids) -> String {
    path.replace("{id}", &ids.room)
        .replace("{user_id}", &ids.user)
        .replace("{message_id}", &ids.message.to_string())
        .replace("{emoji}", "%F0%9F%91%8D")
}
