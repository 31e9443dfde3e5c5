//! Pinned messages (run on worker threads), one use case for every transport. A pin and
//! an unpin are entries of the room's stream (`message_pinned`, `message_unpinned`)
//! with their own seq, written in the transaction that changes `message_pins`, so every
//! node delivers them and a socket catching up replays them. Pinning a pinned message
//! and unpinning one that is not pinned change nothing and append nothing. A deleted
//! message loses its pin in its deletion's transaction ([`forget`]); its
//! `message_deleted` entry is the unpin clients see.

use crate::base::access::Action;
use crate::base::error::{ApiError, MESSAGE_NOT_FOUND};
use crate::base::model::{Identity, Kind, Message, iso};
use crate::chat::rooms::Standing;
use crate::pg::messages::{self, Entry, message_columns};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

/// A pinned message as `GET /rooms/:id/pins` and `PUT .../pins/:message_id` show it.
#[derive(Debug, Serialize)]
pub struct Pin {
    /// The message, as history shows it.
    pub message: Message,
    /// Who pinned it.
    pub pinned_by: Uuid,
    /// When.
    pub pinned_at: String,
}

/// The pins of a room, newest first, with their messages (`$2` at most).
const LIST_SQL: &str = concat!(
    "SELECT p.pinned_by, p.pinned_at, m.* FROM message_pins p
     CROSS JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = p.room_id AND id = p.message_id) m
     WHERE p.room_id = $1 ORDER BY p.pinned_at DESC, p.message_id DESC LIMIT $2"
);

/// Locks the room and reads the caller's standing with the room's `members_can_pin`,
/// then asks the access rule for `Pin`.
fn lock_for_pin(c: &mut impl GenericClient, room: Uuid, user: Uuid) -> Result<Standing, ApiError> {
    // `See` refuses nothing that `Pin` allows; it locks the room for the setting's read.
    let mut s = Standing::lock(c, room, user, Action::See)?;
    let row = c.query_one("SELECT members_can_pin FROM rooms WHERE id = $1", &[&room])?;
    s.room = s.room.with_members_can_pin(row.get(0));
    s.allows(Action::Pin)?;
    Ok(s)
}

/// Fails with `message_not_found` unless `id` is a message of `room` not deleted (system
/// and change entries are not pinnable).
fn require_message(c: &mut impl GenericClient, room: Uuid, id: i64) -> Result<(), ApiError> {
    let found = c.query_opt(
        "SELECT 1 FROM messages WHERE id = $1 AND room_id = $2 AND kind = 'message'
           AND deleted_at IS NULL",
        &[&id, &room],
    )?;
    found.map(drop).ok_or(MESSAGE_NOT_FOUND)
}

/// The pin of message `id`, if pinned.
fn read_pin(c: &mut impl GenericClient, room: Uuid, id: i64) -> Result<Option<Pin>, ApiError> {
    let sql = concat!(
        "SELECT p.pinned_by, p.pinned_at, m.* FROM message_pins p
         CROSS JOIN LATERAL (SELECT ",
        message_columns!(),
        " FROM messages WHERE room_id = p.room_id AND id = p.message_id) m
         WHERE p.room_id = $1 AND p.message_id = $2"
    );
    match c.query_opt(sql, &[&room, &id])? {
        Some(r) => Ok(Some(pin_from_row(&r)?)),
        None => Ok(None),
    }
}

fn pin_from_row(r: &postgres::Row) -> Result<Pin, ApiError> {
    let at: DateTime<Utc> = r.get(1);
    Ok(Pin {
        pinned_by: r.get(0),
        pinned_at: iso(at),
        message: messages::from_row_at(r, 2)?,
    })
}

/// Pins message `id` of `room` (the owner and admins, any member when the room's
/// `members_can_pin` is set): at most `max` pins per room (`too_many_pins`). Returns
/// the pin; pinning a pinned message returns it unchanged and appends nothing.
pub fn pin(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    id: i64,
    max: usize,
) -> Result<Pin, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    lock_for_pin(&mut tx, room, who.user_id)?;
    require_message(&mut tx, room, id)?;
    if let Some(p) = read_pin(&mut tx, room, id)? {
        return Ok(p);
    }
    // The room row is locked: no other pin of this room is counted or added meanwhile.
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM message_pins WHERE room_id = $1",
            &[&room],
        )?
        .get(0);
    if count >= max as i64 {
        return Err(ApiError::BadRequest(
            "too_many_pins",
            format!("a room holds at most {max} pinned messages; unpin one first"),
        ));
    }
    tx.execute(
        "INSERT INTO message_pins (room_id, message_id, pinned_by) VALUES ($1, $2, $3)",
        &[&room, &id, &who.user_id],
    )?;
    record(&mut tx, who, room, id, Kind::MessagePinned)?;
    let p = read_pin(&mut tx, room, id)?.ok_or(ApiError::Internal)?;
    tx.commit()?;
    Ok(p)
}

/// Unpins message `id` of `room` (whoever may pin); returns whether it was pinned (an
/// unpinned message appends nothing).
pub fn unpin(w: &mut Worker, who: &Identity, room: Uuid, id: i64) -> Result<bool, ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    lock_for_pin(&mut tx, room, who.user_id)?;
    require_message(&mut tx, room, id)?;
    if forget(&mut tx, room, id)? {
        record(&mut tx, who, room, id, Kind::MessageUnpinned)?;
        tx.commit()?;
        return Ok(true);
    }
    Ok(false)
}

/// The room's pins, newest first (whoever may read its history).
pub fn list(w: &mut Worker, who: &Identity, room: Uuid, max: usize) -> Result<Vec<Pin>, ApiError> {
    let c = w.client()?;
    crate::chat::rooms::require(c, room, who.user_id, Action::Pins)?;
    let rows = c.query(LIST_SQL, &[&room, &(max as i64)])?;
    rows.iter().map(pin_from_row).collect()
}

/// Removes message `id`'s pin inside the caller's transaction (a deletion's, or an
/// unpin's); returns whether there was one.
pub fn forget(c: &mut impl GenericClient, room: Uuid, id: i64) -> Result<bool, ApiError> {
    let n = c.execute(
        "DELETE FROM message_pins WHERE room_id = $1 AND message_id = $2",
        &[&room, &id],
    )?;
    Ok(n > 0)
}

/// Appends the stream entry of a pin or an unpin.
fn record(
    c: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
    id: i64,
    kind: Kind,
) -> Result<Message, ApiError> {
    let entry = Entry {
        room,
        user: who.user_id,
        username: &who.username,
        content: "",
        kind,
        data: None,
        target: Some(id),
        client_msg_id: None,
    };
    Ok(messages::append_entry(c, &entry)?)
}
