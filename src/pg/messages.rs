//! Message rows: the one column list, reading a row into a [`Message`], and the range
//! read that catch-up, gap fetches, history pages and the listener share.

use crate::base::error::ApiError;
use crate::base::model::{Message, iso};
use crate::pg::pool::Worker;
use postgres::{Client, ToStatement};
use std::sync::Arc;
use uuid::Uuid;

/// Columns of `messages` in the order [`from_row`] reads them (a macro so that SQL
/// constants can be built with `concat!`).
macro_rules! message_columns {
    () => {
        "id, seq, room_id, user_id, username, content, created_at, client_msg_id"
    };
}
pub(crate) use message_columns;

/// Messages of a room with `$2 < seq <= $3`, ascending, at most `$4`.
pub const RANGE_SQL: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
);

/// Builds a message from a row selected with [`message_columns!`].
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

/// Range read on a worker, with the prepared statement.
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
