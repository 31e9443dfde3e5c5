//! Messages: validation of what clients send, and the rules from `[messages]` that
//! messages and changes to them are checked against.

use crate::base::config::{MessagesConfig, NotificationsConfig};
use crate::base::error::ApiError;
use crate::base::{names, text};
use std::time::Duration;

/// The limits of `[messages]` that sends, edits and reactions are checked against: built
/// from the configuration here and only here, used by every transport.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// How long after sending an author may edit (`None`: always).
    pub edit_window: Option<Duration>,
    /// Most distinct emoji on one message.
    pub max_reactions: usize,
    /// Most attachments on one message.
    pub max_attachments: usize,
    /// Rooms of at most this many members let any member mention the whole room
    /// (`[notifications] room_mention_max_members`; an edit adding `@room` asks it).
    pub room_mention_max: i64,
}

impl Rules {
    /// The rules `[messages]` sets.
    pub fn from_config(m: &MessagesConfig) -> Rules {
        Rules {
            edit_window: (m.edit_window_secs > 0).then(|| Duration::from_secs(m.edit_window_secs)),
            max_reactions: m.max_reactions,
            max_attachments: m.max_attachments,
            room_mention_max: i64::from(NotificationsConfig::default().room_mention_max_members),
        }
    }

    /// These rules with `[notifications]`' limit on mentioning the whole room.
    pub fn with_notifications(self, n: &NotificationsConfig) -> Rules {
        Rules {
            room_mention_max: i64::from(n.room_mention_max_members),
            ..self
        }
    }
}

/// Most characters in a message (a protocol limit: docs/PROTOCOL.md).
pub const MAX_CONTENT_CHARS: usize = 65536;
/// Most characters in a `client_msg_id` (a protocol limit: docs/PROTOCOL.md).
pub const MAX_CLIENT_MSG_ID: usize = 64;

/// Checks message content; counts characters, not bytes.
pub fn check_content(content: &str) -> Result<(), ApiError> {
    if content.is_empty() {
        return Err(ApiError::Validation(vec![
            "content must not be empty".into(),
        ]));
    }
    if content.contains('\0') {
        return Err(ApiError::BadRequest(
            "invalid_payload",
            "content must not contain the NUL character (\\u0000)".into(),
        ));
    }
    // Cheap upper bound first: a string of at most N bytes has at most N chars.
    if content.len() > MAX_CONTENT_CHARS && content.chars().count() > MAX_CONTENT_CHARS {
        return Err(ApiError::TooLarge(
            "content must be at most 65536 characters",
        ));
    }
    Ok(())
}

/// Checks attachments: uploaded files, `{file_id}`, and links with their metadata,
/// `{url, name, mime, size}`, at most `max` items in all. For links:
/// http(s) URLs of at most 2048 characters with a host and no user information (in
/// `https://bank.example@evil.example/` the host is `evil.example`), names of 1 to 255
/// characters that show what they hold (no control, invisible or direction-changing
/// character: `invoice\u{202e}fdp.exe` shows as `invoiceexe.pdf`), MIME types of the
/// form `type/subtype`, sizes from 0 to 1 TB. Returns each with only its own fields.
pub fn check_attachments(v: &serde_json::Value, max: usize) -> Result<serde_json::Value, ApiError> {
    use serde_json::Value;
    let bad = |m: String| ApiError::BadRequest("invalid_payload", m);
    let Value::Array(items) = v else {
        return Err(bad("attachments must be an array".into()));
    };
    if items.len() > max {
        return Err(bad(format!("at most {max} attachments per message")));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut files = Vec::new();
    for (i, a) in items.iter().enumerate() {
        if let Some(id) = a.get("file_id") {
            // An uploaded file: the writer checks that the sender may attach it here
            // and stores the file's description with the message.
            let id = id
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or_else(|| bad(format!("attachments[{i}].file_id must be a file id")))?;
            if files.contains(&id) {
                return Err(bad(format!("attachments[{i}] names a file already named")));
            }
            files.push(id);
            out.push(serde_json::json!({ "file_id": id }));
            continue;
        }
        let field = |name: &str| a.get(name).and_then(Value::as_str).unwrap_or("");
        let url = field("url");
        text::http_url(&format!("attachments[{i}].url"), url, 2048).map_err(bad)?;
        let name = field("name");
        if !(1..=255).contains(&name.chars().count()) {
            return Err(bad(format!(
                "attachments[{i}].name must be 1 to 255 characters"
            )));
        }
        names::shows(name, &format!("attachments[{i}].name")).map_err(bad)?;
        let mime = field("mime");
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        if mime.len() > 127
            || !mime
                .split_once('/')
                .is_some_and(|(a, b)| token(a) && token(b))
        {
            return Err(bad(format!(
                "attachments[{i}].mime must be a MIME type such as image/png"
            )));
        }
        let size = a.get("size").and_then(Value::as_i64).unwrap_or(-1);
        if !(0..=1_000_000_000_000).contains(&size) {
            return Err(bad(format!("attachments[{i}].size must be a byte count")));
        }
        out.push(serde_json::json!({ "url": url, "name": name, "mime": mime, "size": size }));
    }
    Ok(Value::Array(out))
}

/// Checks a client-chosen idempotency key.
pub fn check_client_msg_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID || id.contains('\0') {
        return Err(ApiError::BadRequest(
            "invalid_payload",
            "client_msg_id must be 1 to 64 characters, without NUL".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_limits_count_chars() {
        assert!(check_content("").is_err());
        assert!(check_content(&"é".repeat(MAX_CONTENT_CHARS)).is_ok());
        let too_long = "a".repeat(MAX_CONTENT_CHARS + 1);
        assert_eq!(
            check_content(&too_long).unwrap_err().code(),
            "message_too_long"
        );
        assert!(check_client_msg_id(&"x".repeat(65)).is_err());
        assert!(check_client_msg_id("abc").is_ok());
        assert_eq!(check_content("a\0b").unwrap_err().code(), "invalid_payload");
        assert!(check_client_msg_id("a\0").is_err());
    }

    #[test]
    fn attachments_are_checked_and_trimmed() {
        let ok = serde_json::json!([{"url": "https://x.example/a.png", "name": "a.png",
            "mime": "image/png", "size": 12, "extra": "dropped"}]);
        let got = check_attachments(&ok, 2).unwrap();
        assert!(got[0].get("extra").is_none());
        let file = serde_json::json!([{"file_id": "00000000-0000-0000-0000-000000000001", "x": 1}]);
        assert_eq!(
            check_attachments(&file, 2).unwrap(),
            serde_json::json!([{"file_id": "00000000-0000-0000-0000-000000000001"}])
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!([{"url": "javascript:alert(1)", "name": "a", "mime": "a/b", "size": 1}]),
            serde_json::json!([{"url": "https://x", "name": "", "mime": "a/b", "size": 1}]),
            serde_json::json!([{"url": "https://x", "name": "a", "mime": "png", "size": 1}]),
            serde_json::json!([{"url": "https://x", "name": "a", "mime": "a/b", "size": -1}]),
            serde_json::json!([1, 2, 3]),
            serde_json::json!([{"file_id": "not-a-uuid"}]),
            serde_json::json!([{"file_id": 7}]),
            serde_json::json!([{"file_id": "00000000-0000-0000-0000-000000000001"},
                {"file_id": "00000000-0000-0000-0000-000000000001"}]),
            serde_json::json!([{"url": "https://x.example/a", "name": "invoice\u{202e}fdp.exe", "mime": "a/b", "size": 1}]),
            serde_json::json!([{"url": "https://x.example/a", "name": "\u{200b}", "mime": "a/b", "size": 1}]),
            serde_json::json!([{"url": "https://bank.example@evil.example/", "name": "a", "mime": "a/b", "size": 1}]),
            serde_json::json!([{"url": "https://evil.example\\@bank.example/", "name": "a", "mime": "a/b", "size": 1}]),
        ] {
            assert!(check_attachments(&bad, 2).is_err(), "{bad}");
        }
    }
}
