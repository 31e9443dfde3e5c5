//! Messages after send (run on worker threads): edits, deletions and reactions. Each is
//! an entry of the room's stream with its own seq, and the changed message's row is
//! updated in the same transaction, so a client replaying the stream and one reading
//! history end in the same state. A retry with the same `client_msg_id` applies once.

use crate::base::error::{ApiError, FORBIDDEN, MESSAGE_NOT_FOUND, MUTED, invalid};
use crate::base::model::{Identity, Kind, Message, iso};
use crate::chat::messages::check_content;
use crate::chat::rooms::{Role, Standing};
use crate::pg::messages::{self, Entry, message_columns};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// A change to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New content.
    Edit(String),
    /// Remove the content, keep a tombstone.
    Delete,
    /// Add the caller's reaction.
    React(String),
    /// Remove the caller's reaction.
    Unreact(String),
}

/// The rules a change is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// How long after sending an author may edit (`None`: always).
    pub edit_window: Option<Duration>,
    /// Most distinct emoji on one message.
    pub max_reactions: usize,
}

/// Whether `s` is one short emoji: a single grapheme cluster of at most 32 bytes made of
/// emoji code points, modifiers, joiners, variation selectors and keycaps.
pub fn valid_emoji(s: &str) -> bool {
    use unicode_segmentation::UnicodeSegmentation;
    let emoji = |c: char| {
        matches!(c as u32,
            0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF
            | 0x2190..=0x21FF | 0x25A0..=0x25FF | 0x2934..=0x2935 | 0x3030 | 0x303D
            | 0x3297 | 0x3299 | 0xA9 | 0xAE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x24C2)
    };
    let joiner = |c: char| {
        matches!(
            c as u32,
            0x200D | 0xFE0F | 0xFE0E | 0x20E3 | 0xE0020..=0xE007F
        )
    };
    let keycap_base = |c: char| c.is_ascii_digit() || c == '#' || c == '*';
    !s.is_empty()
        && s.len() <= 32
        && s.graphemes(true).count() == 1
        && s.chars().any(|c| emoji(c) || c == '\u{20E3}')
        && s.chars().all(|c| emoji(c) || joiner(c) || keycap_base(c))
}

/// The target message, locked: its author, whether deleted, when sent, its reactions.
struct Target {
    author: Uuid,
    deleted: bool,
    sent: DateTime<Utc>,
    content: String,
    reactions: Option<serde_json::Value>,
}

fn lock_target(c: &mut impl GenericClient, room: Uuid, id: i64) -> Result<Target, ApiError> {
    let row = c.query_opt(
        "SELECT user_id, deleted_at IS NOT NULL, created_at, content, reactions FROM messages
         WHERE id = $1 AND room_id = $2 AND kind = 'message' FOR UPDATE",
        &[&id, &room],
    )?;
    let Some(r) = row else {
        return Err(MESSAGE_NOT_FOUND);
    };
    Ok(Target {
        author: r.get(0),
        deleted: r.get(1),
        sent: r.get(2),
        content: r.get(3),
        reactions: r.get(4),
    })
}

/// The entry a retry with the same key already made, if any.
fn already(
    c: &mut impl GenericClient,
    room: Uuid,
    user: Uuid,
    key: Option<&str>,
) -> Result<Option<Message>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE room_id = $1 AND user_id = $2 AND client_msg_id = $3"
    );
    match c.query_opt(sql, &[&room, &user, &key])? {
        Some(r) => Ok(Some(messages::from_row(&r)?)),
        None => Ok(None),
    }
}

/// Applies a change to message `target` of `room`; returns the stream entry recording
/// it. Edits: the author only, within the edit window, not of a deleted message.
/// Deletions: the author, or a room admin or owner. Reactions: any member not muted.
pub fn apply(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    target: i64,
    change: Change,
    client_msg_id: Option<&str>,
    rules: Rules,
) -> Result<Message, ApiError> {
    if let Change::Edit(content) = &change {
        check_content(content)?;
    }
    if let Change::React(e) | Change::Unreact(e) = &change
        && !valid_emoji(e)
    {
        return Err(invalid("emoji must be one emoji"));
    }
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let role = Standing::lock(&mut tx, room, who.user_id)?.member()?;
    if let Some(m) = already(&mut tx, room, who.user_id, client_msg_id)? {
        return Ok(m);
    }
    let muted = tx
        .query_one(
            "SELECT muted FROM room_members WHERE room_id = $1 AND user_id = $2",
            &[&room, &who.user_id],
        )?
        .get::<_, bool>(0);
    let t = lock_target(&mut tx, room, target)?;
    if t.deleted {
        return Err(match change {
            Change::Edit(_) => ApiError::Conflict("message_deleted", "The message was deleted"),
            _ => MESSAGE_NOT_FOUND,
        });
    }
    let mut entry = Entry {
        room,
        user: who.user_id,
        username: &who.username,
        target: Some(target),
        client_msg_id,
        ..Default::default()
    };
    let data;
    match &change {
        Change::Edit(content) => {
            if t.author != who.user_id {
                return Err(FORBIDDEN);
            }
            if muted {
                return Err(MUTED);
            }
            if rules.edit_window.is_some_and(|w| {
                Utc::now()
                    .signed_duration_since(t.sent)
                    .to_std()
                    .unwrap_or_default()
                    > w
            }) {
                return Err(ApiError::Forbidden(
                    "edit_window_passed",
                    "The time to edit this message has passed",
                ));
            }
            tx.execute(
                "INSERT INTO message_edits (message_id, room_id, version, content, edited_at)
                 SELECT $1, $2, coalesce(max(version), 0) + 1, $3, now()
                 FROM message_edits WHERE room_id = $2 AND message_id = $1",
                &[&target, &room, &t.content],
            )?;
            tx.execute(
                "UPDATE messages SET content = $2, edited_at = now() WHERE id = $1",
                &[&target, content],
            )?;
            entry.kind = Kind::MessageEdited;
            entry.content = content;
        }
        Change::Delete => {
            if t.author != who.user_id && role == Role::Member {
                return Err(FORBIDDEN);
            }
            // The content leaves storage: the message, its earlier versions, and the
            // edit entries that carried it.
            tx.execute(
                "UPDATE messages SET content = '', deleted_at = now(), attachments = NULL,
                        reactions = NULL WHERE id = $1",
                &[&target],
            )?;
            tx.execute(
                "UPDATE messages SET content = '' WHERE target_id = $1 AND room_id = $2
                   AND kind = 'message_edited'",
                &[&target, &room],
            )?;
            tx.execute(
                "DELETE FROM message_edits WHERE room_id = $2 AND message_id = $1",
                &[&target, &room],
            )?;
            tx.execute(
                "DELETE FROM message_reactions WHERE room_id = $2 AND message_id = $1",
                &[&target, &room],
            )?;
            // Its words leave the search index now, not when the indexer gets there.
            tx.execute(
                "DELETE FROM message_search WHERE room_id = $1 AND message_id = $2",
                &[&room, &target],
            )?;
            entry.kind = Kind::MessageDeleted;
        }
        Change::React(emoji) => {
            if muted {
                return Err(MUTED);
            }
            let counts = t.reactions.as_ref().and_then(|v| v.as_object());
            let known = counts.is_some_and(|m| m.contains_key(emoji.as_str()));
            if !known && counts.map_or(0, |m| m.len()) >= rules.max_reactions {
                return Err(ApiError::BadRequest(
                    "too_many_reactions",
                    format!(
                        "at most {} different reactions per message",
                        rules.max_reactions
                    ),
                ));
            }
            let n = tx.execute(
                "INSERT INTO message_reactions (message_id, user_id, emoji, room_id)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&target, &who.user_id, emoji, &room],
            )?;
            if n == 0 {
                return Err(ApiError::Conflict(
                    "already_reacted",
                    "You already reacted with this emoji",
                ));
            }
            tx.execute(
                "UPDATE messages SET reactions = jsonb_set(coalesce(reactions, '{}'), ARRAY[$2],
                        to_jsonb(coalesce((reactions ->> $2)::int, 0) + 1)) WHERE id = $1",
                &[&target, emoji],
            )?;
            data = json!({ "emoji": emoji });
            entry.kind = Kind::ReactionAdded;
            entry.data = Some(&data);
        }
        Change::Unreact(emoji) => {
            let n = tx.execute(
                "DELETE FROM message_reactions
                 WHERE room_id = $4 AND message_id = $1 AND user_id = $2 AND emoji = $3",
                &[&target, &who.user_id, emoji, &room],
            )?;
            if n == 0 {
                return Err(ApiError::Conflict(
                    "not_reacted",
                    "You have no such reaction on this message",
                ));
            }
            tx.execute(
                "UPDATE messages SET reactions = CASE
                     WHEN (reactions ->> $2)::int <= 1 THEN nullif(reactions - $2, '{}')
                     ELSE jsonb_set(reactions, ARRAY[$2], to_jsonb((reactions ->> $2)::int - 1))
                 END WHERE id = $1",
                &[&target, emoji],
            )?;
            let d = json!({ "emoji": emoji });
            let m = messages::append_entry(
                &mut tx,
                &Entry {
                    kind: Kind::ReactionRemoved,
                    data: Some(&d),
                    ..entry
                },
            )?;
            tx.commit()?;
            return Ok(m);
        }
    }
    let m = messages::append_entry(&mut tx, &entry)?;
    tx.commit()?;
    Ok(m)
}

/// An earlier version of an edited message.
#[derive(Debug, Serialize)]
pub struct Version {
    /// 1 for the original, then each edit.
    pub version: i32,
    /// The content it had.
    pub content: String,
    /// When it was replaced.
    pub replaced_at: String,
}

/// The earlier versions of a message, oldest first (members only).
pub fn versions(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    id: i64,
) -> Result<Vec<Version>, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id)?.member()?;
    lock_target(&mut tx, room, id)?;
    let rows = tx.query(
        "SELECT version, content, edited_at FROM message_edits
         WHERE room_id = $2 AND message_id = $1 ORDER BY version",
        &[&id, &room],
    )?;
    Ok(rows
        .iter()
        .map(|r| Version {
            version: r.get(0),
            content: r.get(1),
            replaced_at: iso(r.get(2)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_are_single_short_emoji() {
        for ok in ["👍", "❤️", "👩‍👩‍👧", "🇫🇷", "👍🏽", "1️⃣", "✅"]
        {
            assert!(valid_emoji(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "ok",
            "👍👍",
            "1",
            "<b>",
            " 👍",
            "\u{0}",
            "👍 ",
            &"👍".repeat(9),
        ] {
            assert!(!valid_emoji(bad), "{bad:?}");
        }
    }
}
