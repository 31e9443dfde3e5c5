//! What an entry of a room's stream is as a webhook event: its type, stable id and
//! body. `data` is the entry exactly as the WebSocket stream and history carry it.

use crate::base::model::{Kind, Message};
use crate::pg::outbox;
use serde_json::Value;
use uuid::Uuid;

/// The event type of a stream entry (`None`: an entry no event stands for).
pub fn type_of(m: &Message) -> Option<&'static str> {
    Some(match m.kind {
        Kind::Message => "message.created",
        Kind::MessageEdited => "message.edited",
        Kind::MessageDeleted => "message.deleted",
        Kind::ReactionAdded => "reaction.added",
        Kind::ReactionRemoved => "reaction.removed",
        Kind::MessagePinned => "message.pinned",
        Kind::MessageUnpinned => "message.unpinned",
        Kind::System => {
            let what = m.data.as_ref().and_then(|d| d.get("type"));
            match what.and_then(Value::as_str)? {
                "joined" => "member.joined",
                "left" => "member.left",
                "kicked" => "member.kicked",
                "banned" => "member.banned",
                "renamed" | "visibility" | "retention" | "slow_mode" => "room.updated",
                _ => return None,
            }
        }
    })
}

/// The id of the event of entry `seq` of `room`: the same for every endpoint and every
/// attempt (receivers use it as the idempotency key).
pub fn room_event_id(room: Uuid, seq: i64) -> String {
    format!("evt_{}_{seq}", room.simple())
}

/// The id and body of the event of entry `m` of type `kind`.
pub fn room_event(m: &Message, kind: &str) -> (String, String) {
    let id = room_event_id(m.room_id, m.seq);
    let data = serde_json::to_value(m).unwrap_or(Value::Null);
    let body = outbox::body(&id, kind, &m.created_at, Some((m.room_id, m.seq)), &data);
    (id, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_become_events_with_the_stream_shape() {
        let room = Uuid::now_v7();
        let mut m = Message {
            id: 7,
            seq: 3,
            room_id: room,
            content: "hi".into(),
            created_at: "2026-01-02T03:04:05.000Z".into(),
            ..Message::default()
        };
        assert_eq!(type_of(&m), Some("message.created"));
        let (id, body) = room_event(&m, "message.created");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], json!(id));
        assert_eq!(v["seq"], json!(3));
        assert_eq!(v["room_id"], json!(room));
        assert_eq!(v["data"], serde_json::to_value(&m).unwrap());
        m.kind = Kind::System;
        m.data = Some(json!({"type": "kicked"}));
        assert_eq!(type_of(&m), Some("member.kicked"));
        m.data = Some(json!({"type": "something new"}));
        assert_eq!(type_of(&m), None);
    }
}
