//! Finding messages: threads (the replies to one message) and full-text search in a
//! room or across the caller's rooms (PostgreSQL text search over `message_search`, a
//! GIN-indexed tsvector per live message that [`crate::chat::indexer`] keeps current
//! off the send path; every hit is joined to its live row, so a deleted message is
//! never found).

use crate::base::access::Action;
use crate::base::error::{ApiError, MESSAGE_NOT_FOUND, invalid};
use crate::base::model::{Identity, Message};
use crate::base::text;
use crate::chat::rooms::require;
use crate::pg::messages::{self, message_columns};
use crate::pg::pool::Worker;
use postgres::Client;
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
    require(c, room, who.user_id, Action::Thread)?;
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

/// A search cursor: the id of the last candidate of the page before.
fn parse_cursor(c: &str) -> Result<i64, ApiError> {
    c.parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| invalid("cursor must be a next_cursor this route returned"))
}

/// The newest matches of `$2` (text search configuration `$1`) with an id below `$3`, at
/// most `$4`, in the rooms the `FROM` clause names; each joined to its live row (null
/// when the row is gone, so that a page's length still says whether more may follow).
///
/// Newest first rather than best first: the page is found by walking the matches from
/// the newest backwards (`message_search_recent`) when the word is common, or from the
/// word's posting list when it is rare, so that a common word costs no more than a rare
/// one (ranking every match of a word in half the messages took seconds). Each search is
/// planned for its own word (a statement of its own, never a cached generic plan).
macro_rules! search_sql {
    ($rooms:literal) => {
        concat!(
            "SELECT s.message_id, m.* FROM (SELECT s.room_id, s.message_id
                FROM message_search s WHERE ",
            $rooms,
            " AND s.search @@ plainto_tsquery($1::text::regconfig, $2)
                AND s.message_id < $3 ORDER BY s.message_id DESC LIMIT $4) s
             LEFT JOIN LATERAL (SELECT ",
            message_columns!(),
            " FROM messages WHERE id = s.message_id AND room_id = s.room_id
                AND kind = 'message' AND deleted_at IS NULL) m ON true
             ORDER BY s.message_id DESC"
        )
    };
}

/// [`search_sql!`] in room `$5`.
const ROOM_SQL: &str = search_sql!("s.room_id = $5");
/// [`search_sql!`] in rooms `$5`, the caller's: passed as the list itself so that each
/// search is planned knowing how many rooms it spans (a planner that guessed a user's
/// room count from the average chose, for a member of 1,000 rooms, a plan of seconds).
const MINE_SQL: &str = search_sql!("s.room_id = ANY($5)");

/// The rooms user `$1` belongs to.
const MY_ROOMS_SQL: &str =
    "SELECT coalesce(array_agg(room_id), '{}') FROM room_members WHERE user_id = $1";

/// A search's parameters, in [`search_sql!`]'s order: language, words, below this id,
/// limit; then the room, or the user whose rooms are searched.
type Params<'a> = (&'a str, &'a str, i64, i64, Scope);

/// Where a search looks.
#[derive(Clone, Copy)]
enum Scope {
    Room(Uuid),
    Mine(Uuid),
}

fn run(c: &mut Client, p: &Params<'_>) -> Result<Vec<postgres::Row>, postgres::Error> {
    match p.4 {
        Scope::Room(room) => c.query(ROOM_SQL, &[&p.0, &p.1, &p.2, &p.3, &room]),
        Scope::Mine(user) => {
            let rooms: Vec<Uuid> = c.query_one(MY_ROOMS_SQL, &[&user])?.get(0);
            c.query(MINE_SQL, &[&p.0, &p.1, &p.2, &p.3, &rooms])
        }
    }
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
        .read(MY_ROOMS_SQL, |c, _| {
            for i in 0..STANDBY_TRIES {
                // NULL on a server that is not in recovery: the primary itself.
                let caught_up: bool = c
                    .query_one(
                        "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, true)",
                        &[&lsn],
                    )?
                    .get(0);
                if caught_up {
                    return run(c, p).map(Some);
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
/// newest first, in pages; membership is checked on every row.
pub fn search(
    w: &mut Worker,
    who: &Identity,
    room: Option<Uuid>,
    q: &str,
    language: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Found, ApiError> {
    text::query(q, 200).map_err(|e| ApiError::Validation(vec![e]))?;
    let below = cursor.map(parse_cursor).transpose()?.unwrap_or(i64::MAX);
    let c = w.client()?;
    if let Some(room) = room {
        require(c, room, who.user_id, Action::Search)?;
    }
    let scope = match room {
        Some(room) => Scope::Room(room),
        None => Scope::Mine(who.user_id),
    };
    let params = (language, q, below, limit, scope);
    let rows = match on_standby(w, &params) {
        Some(rows) => rows,
        None => run(w.client()?, &params)?,
    };
    let mut msgs = Vec::with_capacity(rows.len());
    for r in &rows {
        // A candidate whose row is gone (deleted between indexing and now) is skipped;
        // it still counts towards the page, so the cursor passes it.
        if r.get::<_, Option<i64>>(1).is_some() {
            msgs.push(messages::from_row_at(r, 1)?);
        }
    }
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.get::<_, i64>(0).to_string()))
        .flatten();
    Ok(Found {
        messages: msgs,
        next_cursor,
    })
}
