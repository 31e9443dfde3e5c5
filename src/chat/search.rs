//! Finding messages: threads (the replies to one message) and full-text search in a
//! room or across the caller's rooms (PostgreSQL text search over `message_search`, a
//! GIN-indexed tsvector per live message that [`crate::chat::indexer`] keeps current
//! off the send path; every hit is joined to its live row, so a deleted message is
//! never found).

use crate::base::error::{ApiError, MESSAGE_NOT_FOUND, invalid};
use crate::base::model::{Identity, Message};
use crate::chat::rooms::require_member;
use crate::pg::messages::{self, message_columns};
use crate::pg::pool::Worker;
use postgres::{Client, Statement};
use serde::Serialize;
use std::time::Duration;
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

/// Matches of `$3` (in text search configuration `$2`) in the rooms of user `$1` (only
/// room `$4` when not null), best first, after cursor `($5, $6)`, at most `$7`; the
/// message columns, then the rank.
const SEARCH_SQL: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", rank FROM (
        SELECT m.*, ts_rank(s.search, q) AS rank
        FROM message_search s
        JOIN messages m ON m.id = s.message_id AND m.room_id = s.room_id
        JOIN room_members rm ON rm.room_id = s.room_id AND rm.user_id = $1,
             plainto_tsquery($2::text::regconfig, $3) q
        WHERE s.search @@ q AND ($4::uuid IS NULL OR s.room_id = $4)
          AND m.kind = 'message' AND m.deleted_at IS NULL) hits
     WHERE $5::real IS NULL OR (rank, id) < ($5, $6)
     ORDER BY rank DESC, id DESC LIMIT $7"
);

/// A search's parameters, in [`SEARCH_SQL`]'s order.
type Params<'a> = (
    Uuid,
    &'a str,
    &'a str,
    Option<Uuid>,
    Option<f32>,
    Option<i64>,
    i64,
);

fn run(
    c: &mut Client,
    st: &Statement,
    p: &Params<'_>,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    c.query(st, &[&p.0, &p.1, &p.2, &p.3, &p.4, &p.5, &p.6])
}

/// Times a standby is asked whether it has replayed the primary's position, and the
/// pause between asks: a standby streaming normally is a few milliseconds behind.
const STANDBY_TRIES: u32 = 5;
const STANDBY_PAUSE: Duration = Duration::from_millis(2);

/// The search run on a standby once it has replayed everything the primary had
/// committed when the search began (so memberships and messages are as fresh as the
/// primary's); `None` when there is no standby or it stays behind.
fn on_standby(w: &mut Worker, p: &Params<'_>) -> Option<Vec<postgres::Row>> {
    w.replica()?;
    let lsn: String = w
        .client()
        .ok()?
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .ok()?
        .get(0);
    w.replica()?
        .read(SEARCH_SQL, |c, st| {
            for i in 0..STANDBY_TRIES {
                // NULL on a server that is not in recovery: the primary itself.
                let caught_up: bool = c
                    .query_one(
                        "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, true)",
                        &[&lsn],
                    )?
                    .get(0);
                if caught_up {
                    return run(c, st, p).map(Some);
                }
                if i + 1 < STANDBY_TRIES {
                    std::thread::sleep(STANDBY_PAUSE);
                }
            }
            Ok(None)
        })
        .ok()
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
    let params = (who.user_id, language, q, room, rank, id, limit);
    let rows = match on_standby(w, &params) {
        Some(rows) => rows,
        None => {
            let (c, st) = w.prepared(SEARCH_SQL)?;
            run(c, &st, &params)?
        }
    };
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
