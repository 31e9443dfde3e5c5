//! What every layer talks about: who is calling, what a message is, who may see a room
//! and what a member's role is, and how times look on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The authenticated caller of a request or socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub user_id: Uuid,
    /// Username.
    pub username: String,
    /// Session id.
    pub session_id: Uuid,
}

/// What a stream entry is.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A chat message.
    #[default]
    Message,
    /// A membership change or a room setting, with a structured payload in `data`.
    System,
    /// A message's new content (`message_id`, `content`, `edited_at`).
    MessageEdited,
    /// A message deleted (`message_id`, `deleted_at`).
    MessageDeleted,
    /// A reaction added to a message (`message_id`, `data.emoji`).
    ReactionAdded,
    /// A reaction removed from a message (`message_id`, `data.emoji`).
    ReactionRemoved,
    /// A message pinned (`message_id`; `user_id` pinned it).
    MessagePinned,
    /// A message unpinned (`message_id`; `user_id` unpinned it).
    MessageUnpinned,
}

impl Kind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::System => "system",
            Kind::MessageEdited => "message_edited",
            Kind::MessageDeleted => "message_deleted",
            Kind::ReactionAdded => "reaction_added",
            Kind::ReactionRemoved => "reaction_removed",
            Kind::MessagePinned => "message_pinned",
            Kind::MessageUnpinned => "message_unpinned",
        }
    }

    /// The kind stored under `name` (unknown names read as messages).
    pub fn parse(name: &str) -> Kind {
        match name {
            "system" => Kind::System,
            "message_edited" => Kind::MessageEdited,
            "message_deleted" => Kind::MessageDeleted,
            "reaction_added" => Kind::ReactionAdded,
            "reaction_removed" => Kind::ReactionRemoved,
            "message_pinned" => Kind::MessagePinned,
            "message_unpinned" => Kind::MessageUnpinned,
            _ => Kind::Message,
        }
    }

    /// Whether an entry of this kind changes an earlier message's row (so copies of
    /// that row made before it are stale; a pin is not part of the message's row).
    pub fn changes_earlier(self) -> bool {
        !matches!(
            self,
            Kind::Message | Kind::System | Kind::MessagePinned | Kind::MessageUnpinned
        )
    }
}

/// Who may see a room: anyone when public; members (and, for a private room, invited
/// users) otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed and joinable by anyone.
    Public,
    /// Listed and readable by members only; joined by invitation.
    Private,
    /// A conversation of exactly two users.
    Direct,
}

impl Visibility {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            "direct" => Some(Visibility::Direct),
            _ => None,
        }
    }
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A member.
    Member,
    /// May invite, kick, ban, mute, and change the room.
    Admin,
    /// The creator: an admin who may also promote, demote and delete.
    Owner,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// A stored stream entry (a message, or a system entry), as clients see it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// Row id (bigint).
    pub id: i64,
    /// Per-room gapless sequence number.
    pub seq: i64,
    /// Room.
    pub room_id: Uuid,
    /// Author.
    pub user_id: Uuid,
    /// Author's username.
    pub username: String,
    /// Text.
    pub content: String,
    /// Commit time, ISO-8601 UTC with milliseconds.
    pub created_at: String,
    /// The sender's idempotency key, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// What the entry is.
    #[serde(default)]
    pub kind: Kind,
    /// A system entry's payload; a reaction entry's `{emoji}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// On an edit, deletion or reaction entry: the message it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// On a message: when it was last edited; on an edit entry: when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// On a message: when it was deleted (its content is gone); on a deletion entry: when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// The message this one replies to (same room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<i64>,
    /// On a thread's root: how many replies it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_count: Option<i32>,
    /// On a thread's root: when the last reply came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<String>,
    /// `[{url, name, mime, size}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<serde_json::Value>,
    /// Aggregated reactions: `{"<emoji>": count}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactions: Option<serde_json::Value>,
    /// Members mentioned by name (`@username`), never the sender nor a user who blocked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<Uuid>>,
    /// The message mentions the whole room (`@room`, when the sender may).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_room: bool,
}

/// Formats a timestamp the way clients expect: `2026-03-18T07:02:30.123Z`.
/// Written by hand: chrono's `format` re-parses its pattern on every call, and this
/// runs for every message of every history page.
pub fn iso(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let mut s = String::with_capacity(24);
    let d = |s: &mut String, v: u32, width: usize| {
        let mut buf = [b'0'; 4];
        let mut v = v;
        for i in (0..width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        s.push_str(std::str::from_utf8(&buf[..width]).unwrap_or("0"));
    };
    d(&mut s, t.year().clamp(0, 9999) as u32, 4);
    s.push('-');
    d(&mut s, t.month(), 2);
    s.push('-');
    d(&mut s, t.day(), 2);
    s.push('T');
    d(&mut s, t.hour(), 2);
    s.push(':');
    d(&mut s, t.minute(), 2);
    s.push(':');
    d(&mut s, t.second(), 2);
    s.push('.');
    d(&mut s, (t.nanosecond() / 1_000_000).min(999), 3);
    s.push('Z');
    s
}

/// The current time in the wire format.
pub fn now_iso() -> String {
    iso(Utc::now())
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_millis_and_z() {
        for (input, want) in [
            ("2026-03-18T07:02:30.123456Z", "2026-03-18T07:02:30.123Z"),
            ("0999-12-31T23:59:59.999999Z", "0999-12-31T23:59:59.999Z"),
            ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000Z"),
        ] {
            let t = DateTime::parse_from_rfc3339(input)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(iso(t), want);
            assert_eq!(iso(t), t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        }
    }
}
