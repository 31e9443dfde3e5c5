//! Messages: their wire shape, history reads, and validation of what clients send.

use crate::error::ApiError;
pub use crate::message_columns as columns;
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::Client;
use postgres::ToStatement;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// Most characters in a message.
pub const MAX_CONTENT_CHARS: usize = 65536;
/// Most characters in a `client_msg_id`.
pub const MAX_CLIENT_MSG_ID: usize = 64;

/// A stored message, as clients see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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

/// Columns of `messages` in the order `from_row` reads them.
#[macro_export]
#[doc(hidden)]
macro_rules! message_columns {
    () => {
        "id, seq, room_id, user_id, username, content, created_at, client_msg_id"
    };
}
/// Columns of `messages` in the order `from_row` reads them.
pub const COLUMNS: &str = crate::message_columns!();

/// Messages of a room with `$2 < seq <= $3`, ascending, at most `$4`.
pub const RANGE_SQL: &str = concat!(
    "SELECT ",
    crate::message_columns!(),
    " FROM messages WHERE room_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
);

/// Builds a message from a row selected with [`COLUMNS`].
pub fn from_row(row: &postgres::Row) -> Result<Message, postgres::Error> {
    Ok(Message {
        id: row.try_get(0)?,
        seq: row.try_get(1)?,
        room_id: row.try_get(2)?,
        user_id: row.try_get(3)?,
        username: row.try_get(4)?,
        content: row.try_get(5)?,
        created_at: iso(row.try_get(6)?),
        client_msg_id: row.try_get(7)?,
    })
}

/// Messages of a room with `after < seq <= upto`, ascending, at most `limit`
/// (`q` is [`RANGE_SQL`], as text or prepared).
pub fn range<T: ToStatement + ?Sized>(
    c: &mut Client,
    q: &T,
    room: Uuid,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<Message>, postgres::Error> {
    c.query(q, &[&room, &after, &upto, &limit])?
        .iter()
        .map(from_row)
        .collect()
}

/// Range fetch on a worker, with the prepared statement.
pub fn range_on(
    w: &mut Worker,
    room: Uuid,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<Arc<Message>>, ApiError> {
    let (c, st) = w.prepared(RANGE_SQL)?;
    Ok(range(c, &st, room, after, upto, limit)?
        .into_iter()
        .map(Arc::new)
        .collect())
}

/// Checks message content; counts characters, not bytes.
pub fn check_content(content: &str) -> Result<(), ApiError> {
    if content.is_empty() {
        return Err(ApiError::Validation(vec![
            "content must not be empty".into(),
        ]));
    }
    // Cheap upper bound first: a string of at most N bytes has at most N chars.
    if content.len() > MAX_CONTENT_CHARS && content.chars().count() > MAX_CONTENT_CHARS {
        return Err(ApiError::TooLarge(
            "content must be at most 65536 characters",
        ));
    }
    Ok(())
}

/// Checks a client-chosen idempotency key.
pub fn check_client_msg_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID {
        return Err(ApiError::BadRequest(
            "invalid_payload",
            "client_msg_id must be 1 to 64 characters".into(),
        ));
    }
    Ok(())
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
    }
}
