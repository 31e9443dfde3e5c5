//! Who holds a room (run on worker threads inside membership changes): when its owner
//! goes, the room passes to a member who can act (unmuted first, admins first, oldest
//! first; an heir that was muted is unmuted, since nobody acts on the owner); a room its
//! last member leaves is deleted with everything stored of it (a direct room stays, for
//! the other side to open again).

use crate::base::error::{ApiError, ROOM_NOT_FOUND};
use crate::base::model::Identity;
use crate::chat::restrictions::{Restriction, restrict};
use crate::pg::notify::{self, Event, MembershipData, UserRef};
use postgres::GenericClient;
use uuid::Uuid;

/// Makes the heir the owner: unmuted members before muted ones, admins before members,
/// the oldest first. Its id, or `None` when nobody is left.
const HEIR_SQL: &str = "UPDATE room_members SET role = 'owner' WHERE (room_id, user_id) = (
       SELECT m.room_id, m.user_id FROM room_members m
       LEFT JOIN room_restrictions x ON x.room_id = m.room_id AND x.user_id = m.user_id
       WHERE m.room_id = $1
       ORDER BY COALESCE(x.muted, false), m.role = 'admin' DESC, m.joined_at, m.user_id
       LIMIT 1)
     RETURNING user_id";

/// What became of a room its member left.
pub enum After {
    /// Still there (with a new owner when the owner left).
    Kept,
    /// Deleted: nobody was left in it.
    Deleted,
}

/// After `gone_role`'s holder left `room` (by `actor`'s doing): the owner's room passes
/// on, an empty room goes.
pub fn after_leaving(
    tx: &mut impl GenericClient,
    room: Uuid,
    actor: &Identity,
    gone_role: &str,
) -> Result<After, ApiError> {
    if gone_role == "owner"
        && let Some(row) = tx.query_opt(HEIR_SQL, &[&room])?
    {
        let heir: Uuid = row.get(0);
        let unmuted = restrict(tx, actor, room, heir, Restriction::Mute, false)?;
        let data = MembershipData {
            room_id: room,
            change: "role".into(),
            by: UserRef {
                id: actor.user_id,
                username: actor.username.clone(),
            },
            role: Some("owner".into()),
            muted: unmuted.then_some(false),
            room: None,
        };
        notify::publish(tx, &[Event::User { user: heir, data }])?;
        return Ok(After::Kept);
    }
    let empty: bool = tx
        .query_one(
            "SELECT visibility <> 'direct'
                    AND NOT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1)
             FROM rooms WHERE id = $1",
            &[&room],
        )?
        .get(0);
    if empty {
        remove_room(tx, room)?;
        return Ok(After::Deleted);
    }
    Ok(After::Kept)
}

/// Does what `moderation::delete` allowed (or the last member's leaving): the room and everything stored of it, and every socket
/// told it is gone.
pub fn remove_room(tx: &mut impl GenericClient, room: Uuid) -> Result<(), ApiError> {
    crate::chat::indexer::exclude(tx, room)?;
    tx.execute("DELETE FROM message_search WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM search_progress WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM message_edits WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM message_reactions WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM message_pins WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM message_reports WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM messages WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM presence WHERE room_id = $1", &[&room])?;
    let n = tx.execute("DELETE FROM rooms WHERE id = $1", &[&room])?;
    if n == 0 {
        return Err(ROOM_NOT_FOUND);
    }
    notify::publish(tx, &[Event::Gone { room }])?;
    Ok(())
}
