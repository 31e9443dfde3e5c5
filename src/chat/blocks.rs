//! Blocking (run on worker threads): a user blocks another, privately. The blocked user
//! can no longer open a direct room with the blocker, send into their direct room or
//! invite the blocker; the blocker cannot send into that direct room either while the
//! block stands (both sides are refused `blocked`, so neither learns who blocked whom).
//! Nothing tells the blocked user that a block was made or lifted. Rooms both share are
//! unchanged: messages stay and keep their author.
//!
//! The send path never asks this module: the writer reads the block with the room's
//! lock (`pg/writer.rs`), in the statement it runs anyway.

use crate::base::error::{ApiError, BLOCKED, USER_NOT_FOUND, invalid};
use crate::base::model::{Identity, iso};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

/// A blocked user as `GET /me/blocks` lists it.
#[derive(Debug, Serialize)]
pub struct Blocked {
    /// The blocked user's id.
    pub user_id: Uuid,
    /// Its username.
    pub username: String,
    /// Its display name, if any.
    pub display_name: Option<String>,
    /// When it was blocked.
    pub created_at: String,
}

/// A page of blocked users, newest first.
#[derive(Debug, Serialize)]
pub struct Blocks {
    /// The blocked users.
    pub blocks: Vec<Blocked>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Whether either of `a` and `b` blocked the other (one statement, two key probes).
const EITHER_SQL: &str = "SELECT EXISTS (SELECT 1 FROM user_blocks
     WHERE (user_id = $1 AND blocked_id = $2) OR (user_id = $2 AND blocked_id = $1))";

/// Refuses with `blocked` when either of `a` and `b` blocked the other.
pub fn refuse_between(c: &mut impl GenericClient, a: Uuid, b: Uuid) -> Result<(), ApiError> {
    match c.query_one(EITHER_SQL, &[&a, &b])?.get(0) {
        true => Err(BLOCKED),
        false => Ok(()),
    }
}

/// Refuses with `blocked` when `blocker` blocked `user`.
pub fn refuse_if_blocked_by(
    c: &mut impl GenericClient,
    blocker: Uuid,
    user: Uuid,
) -> Result<(), ApiError> {
    let row = c.query_opt(
        "SELECT 1 FROM user_blocks WHERE user_id = $1 AND blocked_id = $2",
        &[&blocker, &user],
    )?;
    match row {
        Some(_) => Err(BLOCKED),
        None => Ok(()),
    }
}

/// Blocks `user` for `who` (at most `max` blocks per user: `too_many_blocks`). Returns
/// the block and whether it is new (blocking again changes nothing).
pub fn block(
    w: &mut Worker,
    who: &Identity,
    user: Uuid,
    max: u32,
) -> Result<(Blocked, bool), ApiError> {
    if user == who.user_id {
        return Err(invalid("you cannot block yourself"));
    }
    let c = w.client()?;
    let mut tx = c.transaction()?;
    // The blocker's row, locked: concurrent blocks of one user are counted one by one.
    tx.query_opt(
        "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
        &[&who.user_id],
    )?;
    let row = tx.query_opt(
        "SELECT u.id, u.username, u.display_name, b.created_at FROM users u
         LEFT JOIN user_blocks b ON b.user_id = $1 AND b.blocked_id = u.id
         WHERE u.id = $2",
        &[&who.user_id, &user],
    )?;
    let row = row.ok_or(USER_NOT_FOUND)?;
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(3) {
        return Ok((blocked(&row, at), false));
    }
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM user_blocks WHERE user_id = $1",
            &[&who.user_id],
        )?
        .get(0);
    if n >= i64::from(max) {
        return Err(ApiError::BadRequest(
            "too_many_blocks",
            format!("at most {max} blocked users: unblock one first"),
        ));
    }
    let at: DateTime<Utc> = tx
        .query_one(
            "INSERT INTO user_blocks (user_id, blocked_id) VALUES ($1, $2) RETURNING created_at",
            &[&who.user_id, &user],
        )?
        .get(0);
    tx.commit()?;
    Ok((blocked(&row, at), true))
}

fn blocked(row: &postgres::Row, at: DateTime<Utc>) -> Blocked {
    Blocked {
        user_id: row.get(0),
        username: row.get(1),
        display_name: row.get(2),
        created_at: iso(at),
    }
}

/// Lifts `who`'s block of `user`; whether there was one (none is fine).
pub fn unblock(w: &mut Worker, who: &Identity, user: Uuid) -> Result<bool, ApiError> {
    let n = w.client()?.execute(
        "DELETE FROM user_blocks WHERE user_id = $1 AND blocked_id = $2",
        &[&who.user_id, &user],
    )?;
    Ok(n == 1)
}

/// `who`'s blocked users, newest first, `limit` a page: one statement on the blocker's
/// index.
pub fn list(
    w: &mut Worker,
    who: &Identity,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Blocks, ApiError> {
    let (at, id) = parse_cursor(cursor)?;
    let rows = w.client()?.query(
        "SELECT u.id, u.username, u.display_name, b.created_at
         FROM user_blocks b JOIN users u ON u.id = b.blocked_id
         WHERE b.user_id = $1
           AND ($2::timestamptz IS NULL OR (b.created_at, b.blocked_id) < ($2, $3))
         ORDER BY b.created_at DESC, b.blocked_id DESC LIMIT $4",
        &[&who.user_id, &at, &id, &limit],
    )?;
    let mut last = None;
    let blocks: Vec<Blocked> = rows
        .iter()
        .map(|r| {
            let at: DateTime<Utc> = r.get(3);
            last = Some((at, r.get::<_, Uuid>(0)));
            blocked(r, at)
        })
        .collect();
    let next_cursor = last
        .filter(|_| blocks.len() as i64 == limit)
        .map(|(at, id)| format!("{}_{id}", at.timestamp_micros()));
    Ok(Blocks {
        blocks,
        next_cursor,
    })
}

/// Parses a cursor of these pages: `<created µs>_<user id>`.
fn parse_cursor(c: Option<&str>) -> Result<(Option<DateTime<Utc>>, Option<Uuid>), ApiError> {
    let Some(c) = c else {
        return Ok((None, None));
    };
    let bad = || invalid("cursor must be a next_cursor this route returned");
    let (t, id) = c.split_once('_').ok_or_else(bad)?;
    let at = t
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((Some(at), Some(Uuid::parse_str(id).map_err(|_| bad())?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        let (at, got) = parse_cursor(Some(&format!("1767225600000000_{id}"))).unwrap();
        assert_eq!(
            (at.unwrap().timestamp_micros(), got),
            (1_767_225_600_000_000, Some(id))
        );
        assert!(parse_cursor(Some("x")).is_err());
        assert!(parse_cursor(None).unwrap().0.is_none());
    }
}
