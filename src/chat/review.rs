//! What a report's resolution does when the server API resolves it (run on worker
//! threads): the do steps of a deletion and of a sanction, with the API key as the actor
//! (the nil user id and the key's name in the stream, the key in the audit log). As for
//! every action of a key (`chat/admin.rs`), no room role is asked, and the room's own
//! rules hold: a direct room has no sanctions, nobody acts on the owner, a kick or a
//! mute needs a member.

use crate::base::access::{Membership, Sanction};
use crate::base::error::{ApiError, FORBIDDEN, MESSAGE_NOT_FOUND, NOT_MEMBER, ROOM_NOT_FOUND};
use crate::base::model::Role;
use crate::chat::admin::as_identity;
use crate::chat::edits::{Change, undo_as};
use crate::chat::moderation;
use crate::chat::rooms;
use crate::pg::audit::{self, Actor};
use crate::pg::pool::Worker;
use postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

/// Locks the room's row; its visibility.
fn lock(c: &mut impl GenericClient, room: Uuid) -> Result<String, ApiError> {
    c.query_opt(
        "SELECT visibility FROM rooms WHERE id = $1 FOR UPDATE",
        &[&room],
    )?
    .map(|r| r.get(0))
    .ok_or(ROOM_NOT_FOUND)
}

/// Deletes message `id` of `room` as the key (a `message_deleted` entry, as a
/// moderator's deletion), audited `message.delete`.
pub fn delete(w: &mut Worker, key: &Actor, room: Uuid, id: i64) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    lock(&mut tx, room)?;
    let author: Uuid = tx
        .query_opt(
            "SELECT user_id FROM messages WHERE room_id = $1 AND id = $2
               AND kind = 'message' AND deleted_at IS NULL FOR UPDATE",
            &[&room, &id],
        )?
        .ok_or(MESSAGE_NOT_FOUND)?
        .get(0);
    undo_as(&mut tx, &as_identity(key), room, id, &Change::Delete)?;
    let data = json!({"message_id": id});
    audit::record(
        &mut tx,
        key,
        "message.delete",
        Some(room),
        Some(author),
        data,
    )?;
    tx.commit()?;
    Ok(())
}

/// Mutes, kicks or bans `user` in `room` as the key, audited `room.<verb>`.
pub fn sanction(
    w: &mut Worker,
    key: &Actor,
    room: Uuid,
    user: Uuid,
    action: Sanction,
) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    if lock(&mut tx, room)? == "direct" {
        return Err(FORBIDDEN);
    }
    let (user, name, theirs) = rooms::user_in(&mut tx, room, user)?;
    match (theirs, action) {
        (
            Membership::Member {
                role: Role::Owner, ..
            },
            _,
        ) => return Err(FORBIDDEN),
        (Membership::Member { .. }, _) | (_, Sanction::Ban | Sanction::Unban) => {}
        _ => return Err(NOT_MEMBER),
    }
    moderation::sanction(&mut tx, &as_identity(key), room, (user, &name), action)?;
    let what = format!("room.{}", action.verb());
    audit::record(&mut tx, key, &what, Some(room), Some(user), json!({}))?;
    tx.commit()?;
    Ok(())
}
