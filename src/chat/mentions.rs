//! Mentions: `@username` of a member and `@room` in a message's text. The text is
//! parsed where the message is checked (no I/O; a text without `@` costs one byte
//! scan); the names are resolved against the room's members in the transaction that
//! stores the message (`pg/writer.rs`) or its edit ([`edited`]), by one statement run
//! only for messages that name someone (`pg/mentions.rs`). Also the caller's mentions
//! across its rooms (`GET /me/mentions`).

use crate::base::access;
use crate::base::error::{ApiError, invalid};
use crate::base::model::{Identity, Message};
use crate::base::names::case_key;
use crate::pg::mentions::{self, Named, Pending};
use crate::pg::messages::{self, message_columns};
use crate::pg::pool::Worker;
use postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

/// Most distinct names one message may mention (further ones are plain text).
pub const MAX_NAMES: usize = 50;

/// Characters a mention's name runs over: those of usernames but the space.
fn name_char(c: char) -> bool {
    c.is_alphanumeric()
        || unicode_normalization::char::is_combining_mark(c)
        || matches!(c, '_' | '-' | '.' | '\'')
}

/// The mentions `content` holds, or `None` when it holds none (most messages: one scan
/// for `@`). An `@` counts at the start or after a character that cannot be in a name
/// (so `a@b.example` is no mention); the name runs over letters, digits and `_ - . '`;
/// trailing `. ' -` (sentence punctuation) are also tried without. `@room` (any case) is
/// the whole room. Names are case-folded as usernames' keys are.
pub fn parse(content: &str, room_max_members: i64) -> Option<Named> {
    if !content.contains('@') {
        return None;
    }
    let mut named = Named {
        room_max_members,
        ..Named::default()
    };
    let mut prev: Option<char> = None;
    let mut it = content.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let starts = c == '@' && !prev.is_some_and(name_char);
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &content[i + 1..];
        let end = rest.find(|c: char| !name_char(c)).unwrap_or(rest.len());
        let token = &rest[..end];
        let trimmed = token.trim_end_matches(['.', '\'', '-']);
        if trimmed.eq_ignore_ascii_case("room") {
            named.room = true;
        } else {
            for t in [token, trimmed] {
                let key = case_key(t);
                let short = t.chars().count() < 3;
                if !short && named.keys.len() < MAX_NAMES && !named.keys.contains(&key) {
                    named.keys.push(key);
                }
            }
        }
        // The name's characters are not `@` starts of their own.
        while it.peek().is_some_and(|&(j, _)| j <= i + end) {
            prev = it.next().map(|(_, c)| c);
        }
    }
    (named.room || !named.keys.is_empty()).then_some(named)
}

/// After an edit by `who` (its membership `m`) of message `target` in `room` to
/// `content`: the mentions the new text adds, at the edit entry's seq `seq` (the room is
/// locked: the caller knows it). Names already mentioned notify nobody again and none
/// is removed. Returns the message's mentions afterwards when they changed, as the edit
/// entry's `data`.
pub fn edited(
    tx: &mut impl GenericClient,
    m: access::Membership,
    room: Uuid,
    target: i64,
    who: Uuid,
    content: &str,
    room_max_members: i64,
) -> Result<Option<serde_json::Value>, ApiError> {
    let Some(named) = parse(content, room_max_members) else {
        return Ok(None);
    };
    let row = tx.query_one(
        "SELECT last_seq + 1, member_count FROM rooms WHERE id = $1",
        &[&room],
    )?;
    let members: i32 = row.get(1);
    let room_allowed =
        named.room && access::may_mention_room(m, i64::from(members), named.room_max_members);
    let pending = [Pending {
        room,
        message_id: target,
        seq: row.get(0),
        sender: who,
        named: &named,
        room_allowed,
    }];
    let resolved = mentions::resolve(tx, mentions::SQL, &pending)?;
    Ok(resolved.get(&target).map(|(ids, everyone)| {
        let mut data = serde_json::json!({ "mentions": ids });
        if *everyone {
            data["mentions_room"] = serde_json::Value::Bool(true);
        }
        data
    }))
}

/// One mention of the caller, as `GET /me/mentions` lists it.
#[derive(Debug, Serialize)]
pub struct Mention {
    /// The mentioning message, as history shows it now.
    pub message: Message,
    /// The room's name.
    pub room_name: String,
    /// After the caller's read mark in the room.
    pub unread: bool,
}

/// A page of mentions, newest first.
#[derive(Debug, Serialize)]
pub struct Mentions {
    /// The mentions.
    pub mentions: Vec<Mention>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The caller's mentions in rooms it is a member of now, newest first (by message id,
/// which grows with time): a page of the caller's rows of `mentions` walked backwards
/// on its primary key (the cursor a bound of the key, not an `OR`, so the index holds
/// it), then each message by id. A deleted or expired message leaves a row with null
/// message columns: skipped, but it counts for the page (the cursor goes on past it).
const MINE_SQL: &str = concat!(
    "WITH page AS (
       SELECT n.message_id, n.room_id, n.seq > rm.last_read_seq AS unread
       FROM mentions n
       JOIN room_members rm ON rm.room_id = n.room_id AND rm.user_id = n.user_id
       WHERE n.user_id = $1 AND n.message_id < coalesce($2::int8, 9223372036854775807)
       ORDER BY n.message_id DESC LIMIT $3)
     SELECT p.message_id, r.name, p.unread, m.*
     FROM page p JOIN rooms r ON r.id = p.room_id
     LEFT JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE id = p.message_id AND deleted_at IS NULL) m ON true
     ORDER BY p.message_id DESC"
);

/// `who`'s mentions, newest first, `limit` a page after `cursor` (a message id this
/// route returned).
pub fn mine(
    w: &mut Worker,
    who: &Identity,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Mentions, ApiError> {
    let before: Option<i64> = match cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("cursor must be a next_cursor this route returned"))?,
        ),
    };
    let (c, st) = w.prepared(MINE_SQL)?;
    let rows = c.query(&st, &[&who.user_id, &before, &limit])?;
    let mut out = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in &rows {
        last = Some(r.get::<_, i64>(0));
        if r.get::<_, Option<i64>>(3).is_none() {
            continue;
        }
        out.push(Mention {
            room_name: r.get(1),
            unread: r.get(2),
            message: messages::from_row_at(r, 3)?,
        });
    }
    let next_cursor = last
        .filter(|_| rows.len() as i64 == limit)
        .map(|id| id.to_string());
    Ok(Mentions {
        mentions: out,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> (Vec<String>, bool) {
        parse(s, 20).map_or((vec![], false), |n| (n.keys, n.room))
    }

    #[test]
    fn finds_names_and_room_and_skips_addresses() {
        assert_eq!(parse("no mention here", 20), None);
        assert_eq!(
            keys("hi @Bob, and @alice."),
            (vec!["bob".into(), "alice.".into(), "alice".into()], false)
        );
        assert_eq!(keys("mail me at bob@example.com"), (vec![], false));
        assert_eq!(keys("@ROOM please"), (vec![], true));
        assert_eq!(keys("@@bob @x"), (vec!["bob".into()], false));
        assert_eq!(keys("(@Ångström)"), (vec!["ångström".into()], false));
        let many: String = (0..80).map(|i| format!("@user{i} ")).collect();
        assert_eq!(keys(&many).0.len(), MAX_NAMES);
    }
}
