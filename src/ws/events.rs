//! The JSON event protocol: decoding client frames, encoding server frames.

use crate::base::error::ApiError;
use crate::base::model::Message;
use crate::chat::edits::Change;
use crate::chat::messages::{self, Rules};
use crate::chat::send::{self, Draft};
use crate::pg::notify::RoomEvent;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Every event name [`decode`] accepts from clients (the `publish` messages of /asyncapi.json).
pub const CLIENT_EVENTS: &[&str] = &[
    "join_room",
    "leave_room",
    "send_message",
    "typing_start",
    "typing_stop",
    "ping",
    "mark_read",
    "edit_message",
    "delete_message",
    "react",
    "unreact",
];

/// Every event name the server sends to clients (the `subscribe` messages of /asyncapi.json).
pub const SERVER_EVENTS: &[&str] = &[
    "joined_room",
    "left_room",
    "history",
    "new_message",
    "new_message_batch",
    "message_ack",
    "presence",
    "typing",
    "user_joined",
    "user_left",
    "pong",
    "error",
    "read_state",
    "receipt",
    "membership",
    "user_updated",
];

/// A decoded client event.
#[derive(Debug, PartialEq)]
pub enum ClientEvent {
    /// `join_room`
    JoinRoom {
        /// Room.
        room_id: Uuid,
        /// Last seq the client has; `history` sends what follows.
        last_seen_seq: Option<i64>,
    },
    /// `leave_room`
    LeaveRoom {
        /// Room.
        room_id: Uuid,
    },
    /// `send_message`, checked by [`send::check`].
    SendMessage {
        /// Room.
        room_id: Uuid,
        /// Text.
        content: String,
        /// Idempotency key.
        client_msg_id: Option<String>,
        /// The message it replies to.
        reply_to: Option<i64>,
        /// Attachment metadata (checked, at most `messages.max_attachments`).
        attachments: Option<Value>,
    },
    /// `edit_message`, `delete_message`, `react`, `unreact`
    Change {
        /// Room.
        room_id: Uuid,
        /// The message changed.
        message_id: i64,
        /// What changes.
        change: Change,
        /// Idempotency key.
        client_msg_id: Option<String>,
    },
    /// `typing_start` / `typing_stop`
    Typing {
        /// Room.
        room_id: Uuid,
        /// Start (true) or stop.
        typing: bool,
    },
    /// `ping`, answered with `pong` carrying the same data.
    Ping(Value),
    /// `mark_read`: the user read the room up to `seq`.
    MarkRead {
        /// Room.
        room_id: Uuid,
        /// Read up to here.
        seq: i64,
    },
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest("invalid_payload", msg.into())
}

/// Decodes one text frame; a `send_message` is checked against `rules` (the send use
/// case's check step).
pub fn decode(text: &str, rules: &Rules) -> Result<ClientEvent, ApiError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest("invalid_json", format!("invalid JSON: {e}")))?;
    let Value::Object(mut obj) = v else {
        return Err(ApiError::BadRequest(
            "invalid_json",
            "a frame must be a JSON object".into(),
        ));
    };
    let event = match obj.get("event") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(invalid("missing string field `event`")),
    };
    let mut data = obj.remove("data").unwrap_or(Value::Null);
    match event.as_str() {
        "join_room" => {
            let room_id = room_of(&data)?;
            let last_seen_seq = match data.get("last_seen_seq") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_i64() {
                    Some(n) if n >= 0 => Some(n),
                    _ => {
                        return Err(invalid(
                            "last_seen_seq must be a non-negative integer or null",
                        ));
                    }
                },
            };
            Ok(ClientEvent::JoinRoom {
                room_id,
                last_seen_seq,
            })
        }
        "leave_room" => Ok(ClientEvent::LeaveRoom {
            room_id: room_of(&data)?,
        }),
        "send_message" => {
            let room = room_of(&data)?;
            let mut take = |name: &str| match &mut data {
                Value::Object(o) => o.remove(name),
                _ => None,
            };
            let content = match take("content") {
                Some(Value::String(s)) => s,
                _ => return Err(invalid("content must be a string")),
            };
            let client_msg_id = match take("client_msg_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err(invalid("client_msg_id must be a string")),
            };
            let reply_to = match take("reply_to") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_i64()
                        .ok_or_else(|| invalid("reply_to must be a message id"))?,
                ),
            };
            let draft = Draft {
                room,
                content,
                client_msg_id,
                reply_to,
                attachments: take("attachments"),
            };
            // The send's own check: a frame it refuses carries no client_msg_id.
            let d = send::check(draft, rules).map_err(|e| match e {
                ApiError::Validation(m) => invalid(m.join("; ")),
                other => other,
            })?;
            Ok(ClientEvent::SendMessage {
                room_id: d.room,
                content: d.content,
                client_msg_id: d.client_msg_id,
                reply_to: d.reply_to,
                attachments: d.attachments,
            })
        }
        "edit_message" | "delete_message" | "react" | "unreact" => {
            let room_id = room_of(&data)?;
            let message_id = data
                .get("message_id")
                .and_then(Value::as_i64)
                .ok_or_else(|| invalid("message_id must be a message id"))?;
            let text = |name: &str| match data.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(invalid(format!("{name} must be a string"))),
            };
            let change = match event.as_str() {
                "edit_message" => {
                    let content = text("content")?;
                    messages::check_content(&content).map_err(|e| match e {
                        ApiError::Validation(m) => invalid(m.join("; ")),
                        other => other,
                    })?;
                    Change::Edit(content)
                }
                "delete_message" => Change::Delete,
                "react" => Change::React(text("emoji")?),
                _ => Change::Unreact(text("emoji")?),
            };
            Ok(ClientEvent::Change {
                room_id,
                message_id,
                change,
                client_msg_id: cmid_of(&data)?,
            })
        }
        "typing_start" => Ok(ClientEvent::Typing {
            room_id: room_of(&data)?,
            typing: true,
        }),
        "typing_stop" => Ok(ClientEvent::Typing {
            room_id: room_of(&data)?,
            typing: false,
        }),
        "ping" => Ok(ClientEvent::Ping(data)),
        "mark_read" => Ok(ClientEvent::MarkRead {
            room_id: room_of(&data)?,
            seq: match data.get("seq").and_then(Value::as_i64) {
                Some(n) if n >= 0 => n,
                _ => return Err(invalid("seq must be a non-negative integer")),
            },
        }),
        other => Err(ApiError::BadRequest(
            "unknown_event",
            format!(
                "unknown event `{}`",
                other.chars().take(64).collect::<String>()
            ),
        )),
    }
}

fn cmid_of(data: &Value) -> Result<Option<String>, ApiError> {
    match data.get("client_msg_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            messages::check_client_msg_id(s)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(invalid("client_msg_id must be a string")),
    }
}

fn room_of(data: &Value) -> Result<Uuid, ApiError> {
    match data.get("room_id") {
        Some(Value::String(s)) => Uuid::parse_str(s).map_err(|_| invalid("room_id must be a UUID")),
        _ => Err(invalid("room_id must be a UUID string")),
    }
}

/// `{"event": name, "data": data}` as JSON bytes.
pub fn encode<T: Serialize + ?Sized>(name: &str, data: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Frame<'a, T: ?Sized> {
        event: &'a str,
        data: &'a T,
    }
    serde_json::to_vec(&Frame { event: name, data }).unwrap_or_default()
}

/// The `error` event for an error: the one mapping of error kinds to the socket's
/// answer, naming the `client_msg_id` it answers when there was one.
pub fn error(e: &ApiError, client_msg_id: Option<&str>) -> Vec<u8> {
    let mut data = serde_json::json!({ "message": e.message(), "code": e.code() });
    if let Some(c) = client_msg_id {
        data["client_msg_id"] = serde_json::json!(c);
    }
    if let Some(ms) = e.retry_after_ms() {
        data["retry_after_ms"] = serde_json::json!(ms);
    }
    encode("error", &data)
}

/// `presence` as clients see it: without the node holding the socket (the nodes need it
/// between themselves; to a client it only tells host names and ports).
#[derive(Serialize)]
struct Presence<'a> {
    user_id: Uuid,
    room_id: Uuid,
    last_seen: &'a str,
    username: &'a str,
    status: &'a str,
}

/// An ephemeral room event as clients receive it.
pub fn room_event(e: &RoomEvent) -> Vec<u8> {
    match e {
        RoomEvent::Presence(d) => encode(
            e.name(),
            &Presence {
                user_id: d.user_id,
                room_id: d.room_id,
                last_seen: &d.last_seen,
                username: &d.username,
                status: &d.status,
            },
        ),
        RoomEvent::Typing(d) => encode(e.name(), d),
        RoomEvent::UserJoined(d) | RoomEvent::UserLeft(d) => encode(e.name(), d),
    }
}

/// Live messages: one alone as `new_message`, several as `new_message_batch`.
pub fn live(msgs: &[Arc<Message>]) -> Vec<u8> {
    match msgs {
        [one] => encode("new_message", &**one),
        many => encode("new_message_batch", many),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::config::MessagesConfig;

    /// Decodes with the configuration's default rules.
    fn decode(text: &str) -> Result<ClientEvent, ApiError> {
        super::decode(text, &Rules::from_config(&MessagesConfig::default()))
    }

    const ROOM: &str = "0190b7a4-7c1e-7000-8000-000000000001";

    #[test]
    fn decodes_events() {
        let j = decode(&format!(
            r#"{{"event":"join_room","data":{{"room_id":"{ROOM}","last_seen_seq":5}}}}"#
        ))
        .unwrap();
        assert_eq!(
            j,
            ClientEvent::JoinRoom {
                room_id: ROOM.parse().unwrap(),
                last_seen_seq: Some(5)
            }
        );
        let s = decode(&format!(r#"{{"event":"send_message","data":{{"room_id":"{ROOM}","content":"hi","client_msg_id":"c1"}}}}"#)).unwrap();
        assert!(matches!(s, ClientEvent::SendMessage { ref content, .. } if content == "hi"));
        assert_eq!(
            decode(r#"{"event":"ping","data":{"a":1}}"#).unwrap(),
            ClientEvent::Ping(serde_json::json!({"a":1}))
        );
        assert_eq!(
            decode(&format!(
                r#"{{"event":"mark_read","data":{{"room_id":"{ROOM}","seq":7}}}}"#
            ))
            .unwrap(),
            ClientEvent::MarkRead {
                room_id: ROOM.parse().unwrap(),
                seq: 7
            }
        );
        assert!(
            decode(&format!(
                r#"{{"event":"mark_read","data":{{"room_id":"{ROOM}","seq":-1}}}}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn errors_have_codes() {
        assert_eq!(decode("nope").unwrap_err().code(), "invalid_json");
        assert_eq!(decode("[]").unwrap_err().code(), "invalid_json");
        assert_eq!(
            decode(r#"{"event":"dance"}"#).unwrap_err().code(),
            "unknown_event"
        );
        assert_eq!(
            decode(r#"{"event":"join_room","data":{"room_id":"x"}}"#)
                .unwrap_err()
                .code(),
            "invalid_payload"
        );
        assert_eq!(
            decode(&format!(
                r#"{{"event":"join_room","data":{{"room_id":"{ROOM}","last_seen_seq":-1}}}}"#
            ))
            .unwrap_err()
            .code(),
            "invalid_payload"
        );
        let long = "a".repeat(65537);
        let frame = format!(
            r#"{{"event":"send_message","data":{{"room_id":"{ROOM}","content":"{long}"}}}}"#
        );
        assert_eq!(decode(&frame).unwrap_err().code(), "message_too_long");
        let empty =
            format!(r#"{{"event":"send_message","data":{{"room_id":"{ROOM}","content":""}}}}"#);
        assert_eq!(decode(&empty).unwrap_err().code(), "invalid_payload");
    }

    #[test]
    fn every_client_event_is_known() {
        // Data every client event accepts, and data none does: neither is unknown_event.
        let valid = serde_json::json!({
            "room_id": ROOM, "message_id": 1, "content": "x", "emoji": "👍", "seq": 1,
        });
        for name in CLIENT_EVENTS {
            let frame = serde_json::json!({ "event": name, "data": valid }).to_string();
            assert!(decode(&frame).is_ok(), "{name}: {:?}", decode(&frame));
            for data in [serde_json::json!({}), Value::Null] {
                let frame = serde_json::json!({ "event": name, "data": data }).to_string();
                if let Err(e) = decode(&frame) {
                    assert_ne!(e.code(), "unknown_event", "{name}");
                }
            }
        }
        for name in ["dance", "JOIN_ROOM", "joined_room", ""] {
            let frame = serde_json::json!({ "event": name, "data": valid }).to_string();
            assert_eq!(
                decode(&frame).unwrap_err().code(),
                "unknown_event",
                "{name}"
            );
        }
    }

    #[test]
    fn encodes_live_frames() {
        let m = Arc::new(Message {
            id: 1,
            seq: 1,
            room_id: Uuid::nil(),
            user_id: Uuid::nil(),
            username: "u".into(),
            content: "c".into(),
            created_at: "t".into(),
            client_msg_id: None,
            ..Default::default()
        });
        let one: Value = serde_json::from_slice(&live(std::slice::from_ref(&m))).unwrap();
        assert_eq!(one["event"], "new_message");
        assert_eq!(one["data"]["seq"], 1);
        let two: Value = serde_json::from_slice(&live(&[m.clone(), m])).unwrap();
        assert_eq!(two["event"], "new_message_batch");
        assert_eq!(two["data"].as_array().unwrap().len(), 2);
    }
}
