//! Finding messages: threads (the replies to one message) and full-text search in a
//! room or across the caller's rooms (PostgreSQL text search over a generated tsvector
//! with a GIN index; deleted messages, system and change entries index nothing).

use crate::base::error::{ApiError, MESSAGE_NOT_FOUND, invalid};
use crate::base::model::{Identity, Message};
use crate::chat::rooms::require_member;
use crate::pg::messages::{self, message_columns};
use crate::pg::pool::Worker;
use serde::Serialize;
use uuid::Uuid;

/// A page of messages, newest (or best) first.
#[derive(Debug, Serialize)]
pub struct Found {
    /// The messages.
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The replies to `root` in `room`, newest first, before seq `cursor` (members only).
pub fn thread(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    root: i64,
    cursor: Option<i64>,
    limit: i64,
) -> Result<Found, ApiError> {
    let c = w.client()?;
    require_member(c, room, who.user_id)?;
    let exists = c
        .query_opt(
            "SELECT 1 FROM messages WHERE id = $1 AND room_id = $2 AND kind = 'message'",
            &[&root, &room],
        )?
        .is_some();
    if !exists {
        return Err(MESSAGE_NOT_FOUND);
    }
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE room_id = $1 AND reply_to = $2 AND seq < $3
          ORDER BY seq DESC LIMIT $4"
    );
    let rows = c.query(sql, &[&room, &root, &cursor.unwrap_or(i64::MAX), &limit])?;
    let msgs = rows
        .iter()
        .map(messages::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (msgs.len() as i64 == limit)
        .then(|| msgs.last().map(|m| m.seq.to_string()))
        .flatten();
    Ok(Found {
        messages: msgs,
        next_cursor,
    })
}

/// A search cursor: the last result's rank (as bits, exact) and id.
fn parse_cursor(c: &str) -> Result<(f32, i64), ApiError> {
    let bad = || invalid("cursor must be a next_cursor this route returned");
    let (rank, id) = c.split_once('_').ok_or_else(bad)?;
    let bits = u32::from_str_radix(rank, 16).map_err(|_| bad())?;
    Ok((f32::from_bits(bits), id.parse().map_err(|_| bad())?))
}

/// Checks a query: 1 to 200 characters with something to search for.
fn check_query(q: &str) -> Result<(), ApiError> {
    let n = q.chars().count();
    if !(1..=200).contains(&n) || q.trim().is_empty() {
        return Err(ApiError::Validation(vec![
            "q must be 1 to 200 characters".into(),
        ]));
    }
    Ok(())
}

/// Messages of `room` (or, with none, of every room the caller belongs to) matching `q`,
/// best first, in pages; membership is checked on every row.
pub fn search(
    w: &mut Worker,
    who: &Identity,
    room: Option<Uuid>,
    q: &str,
    language: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Found, ApiError> {
    check_query(q)?;
    let (rank, id) = match cursor {
        Some(c) => {
            let (r, i) = parse_cursor(c)?;
            (Some(r), Some(i))
        }
        None => (None, None),
    };
    let c = w.client()?;
    if let Some(room) = room {
        require_member(c, room, who.user_id)?;
    }
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        ", rank FROM (
            SELECT m.*, ts_rank(m.search, q) AS rank
            FROM messages m
            JOIN room_members rm ON rm.room_id = m.room_id AND rm.user_id = $1,
                 plainto_tsquery($2::text::regconfig, $3) q
            WHERE m.search @@ q AND ($4::uuid IS NULL OR m.room_id = $4)) hits
         WHERE $5::real IS NULL OR (rank, id) < ($5, $6)
         ORDER BY rank DESC, id DESC LIMIT $7"
    );
    let rows = c.query(
        sql,
        &[&who.user_id, &language, &q, &room, &rank, &id, &limit],
    )?;
    let mut last = None;
    let mut msgs = Vec::with_capacity(rows.len());
    for r in &rows {
        let m = messages::from_row(r)?;
        let rank: f32 = r.get(messages::COLUMNS);
        last = Some(format!("{:08x}_{}", rank.to_bits(), m.id));
        msgs.push(m);
    }
    let next_cursor = if msgs.len() as i64 == limit {
        last
    } else {
        None
    };
    Ok(Found {
        messages: msgs,
        next_cursor,
    })
}
