//! Message rows: the one column list, reading a row into a [`Message`], and the range
//! read that catch-up, gap fetches, history pages and the listener share.

use crate::base::error::ApiError;
use crate::base::model::{Kind, Message, iso};
use crate::pg::notify::{Batch, shard_channel_sql};
use crate::pg::pool::Worker;
use postgres::{Client, GenericClient, ToStatement};
use std::sync::Arc;
use uuid::Uuid;

/// Columns of `messages` in the order [`from_row`] reads them (a macro so that SQL
/// constants can be built with `concat!`).
macro_rules! message_columns {
    () => {
        "id, seq, room_id, user_id, username, content, created_at, client_msg_id, kind, data, \
         target_id, edited_at, deleted_at, reply_to, reply_count, last_reply_at, attachments, \
         reactions, mentions, mentions_room"
    };
}
pub(crate) use message_columns;

/// How many columns [`message_columns!`] names.
pub const COLUMNS: usize = 20;

/// Messages of a room with `$2 < seq <= $3`, ascending, at most `$4`.
pub const RANGE_SQL: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
);

/// Builds a message from a row selected with [`message_columns!`].
pub fn from_row(row: &postgres::Row) -> Result<Message, postgres::Error> {
    from_row_at(row, 0)
}

/// Builds a message from the columns of [`message_columns!`] starting at `at`.
pub fn from_row_at(row: &postgres::Row, at: usize) -> Result<Message, postgres::Error> {
    Ok(Message {
        id: row.try_get(at)?,
        seq: row.try_get(at + 1)?,
        room_id: row.try_get(at + 2)?,
        user_id: row.try_get(at + 3)?,
        username: row.try_get(at + 4)?,
        content: row.try_get(at + 5)?,
        created_at: iso(row.try_get(at + 6)?),
        client_msg_id: row.try_get(at + 7)?,
        kind: Kind::parse(row.try_get(at + 8)?),
        data: row.try_get(at + 9)?,
        message_id: row.try_get(at + 10)?,
        edited_at: row.try_get::<_, Option<_>>(at + 11)?.map(iso),
        deleted_at: row.try_get::<_, Option<_>>(at + 12)?.map(iso),
        reply_to: row.try_get(at + 13)?,
        reply_count: row
            .try_get::<_, i32>(at + 14)
            .map(|n| (n > 0).then_some(n))?,
        last_reply_at: row.try_get::<_, Option<_>>(at + 15)?.map(iso),
        attachments: row.try_get(at + 16)?,
        reactions: row.try_get(at + 17)?,
        mentions: row
            .try_get::<_, Option<Vec<Uuid>>>(at + 18)?
            .filter(|v| !v.is_empty()),
        mentions_room: row.try_get(at + 19)?,
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

/// [`RANGE_SQL`] on a standby, with the room's `last_seq` read in the same snapshot
/// (first column; the message columns follow, null when the range is empty).
pub const REPLICA_RANGE_SQL: &str = concat!(
    "SELECT r.last_seq, m.* FROM rooms r LEFT JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4) m
      ON true WHERE r.id = $1 ORDER BY m.seq"
);

/// Range read on a worker: from a standby when one is configured and has replayed the
/// room's stream up to `need` (a seq the reader has seen or must see), else from the
/// primary with the prepared statement. See [`crate::pg::replica`].
pub fn range_on(
    w: &mut Worker,
    room: Uuid,
    after: i64,
    upto: i64,
    limit: i64,
    need: i64,
) -> Result<Vec<Arc<Message>>, ApiError> {
    if let Some(r) = w.replica() {
        let read = r.read(REPLICA_RANGE_SQL, |c, st| {
            let rows = c.query(st, &[&room, &after, &upto, &limit])?;
            match rows.first() {
                Some(row) if row.try_get::<_, i64>(0)? >= need => {}
                _ => return Ok(None),
            }
            let mut msgs = Vec::with_capacity(rows.len());
            for row in &rows {
                if row.try_get::<_, Option<i64>>(1)?.is_some() {
                    msgs.push(Arc::new(from_row_at(row, 1)?));
                }
            }
            Ok(Some(msgs))
        });
        if let Ok(msgs) = read {
            return Ok(msgs);
        }
    }
    let (c, st) = w.prepared(RANGE_SQL)?;
    Ok(range(c, &st, room, after, upto, limit)?
        .into_iter()
        .map(Arc::new)
        .collect())
}

/// A stream entry appended outside the batched writer (a system entry, an edit, a
/// deletion, a reaction).
#[derive(Default)]
pub struct Entry<'a> {
    /// Room.
    pub room: Uuid,
    /// Author.
    pub user: Uuid,
    /// Author's name.
    pub username: &'a str,
    /// Text (a system entry's line, an edit's new content, else empty).
    pub content: &'a str,
    /// What it is.
    pub kind: Kind,
    /// A system entry's payload, a reaction's `{emoji}`.
    pub data: Option<&'a serde_json::Value>,
    /// The message it changes.
    pub target: Option<i64>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<&'a str>,
}

/// Appends one entry to a room's stream inside the caller's transaction: the room's
/// next seq (the room row stays locked until commit, so the writers' seqs and these
/// never collide), the row, and its notification (delivered at commit), exactly like a
/// writer's batch of one. An edit or deletion entry carries its time. The author has
/// read their own entry: a member's read mark moves up to it.
pub fn append_entry(c: &mut impl GenericClient, e: &Entry<'_>) -> Result<Message, postgres::Error> {
    const SQL: &str = concat!(
        "WITH s AS (UPDATE rooms SET last_seq = last_seq + 1,
                      last_activity_at = CASE WHEN $5 = 'message' THEN now()
                                              ELSE last_activity_at END
                    WHERE id = $1 RETURNING last_seq),
              seen AS (UPDATE room_members SET last_read_seq = (SELECT last_seq FROM s)
                       WHERE room_id = $1 AND user_id = $2
                         AND last_read_seq < (SELECT last_seq FROM s))
         INSERT INTO messages (room_id, seq, user_id, username, content, kind, data, target_id,
                               client_msg_id, edited_at, deleted_at)
         SELECT $1, s.last_seq, $2, $3, $4, $5, $6, $7, $8,
                CASE WHEN $5 = 'message_edited' THEN now() END,
                CASE WHEN $5 = 'message_deleted' THEN now() END
         FROM s RETURNING ",
        message_columns!()
    );
    let row = c.query_one(
        SQL,
        &[
            &e.room,
            &e.user,
            &e.username,
            &e.content,
            &e.kind.as_str(),
            &e.data,
            &e.target,
            &e.client_msg_id,
        ],
    )?;
    let m = from_row(&row)?;
    let payload = Batch::payload(&[Arc::new(m.clone())]);
    const NOTIFY: &str = concat!("SELECT pg_notify(", shard_channel_sql!(), ", $2)");
    c.execute(NOTIFY, &[&e.room, &payload])?;
    Ok(m)
}

/// Appends a system entry (see [`append_entry`]).
pub fn append(
    c: &mut impl GenericClient,
    room: Uuid,
    user: Uuid,
    username: &str,
    content: &str,
    kind: Kind,
    data: Option<&serde_json::Value>,
) -> Result<Message, postgres::Error> {
    append_entry(
        c,
        &Entry {
            room,
            user,
            username,
            content,
            kind,
            data,
            ..Default::default()
        },
    )
}
