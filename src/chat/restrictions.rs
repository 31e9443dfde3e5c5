//! Mutes and bans (run on worker threads inside moderation's transactions): they belong
//! to the (room, user) pair in `room_restrictions`, not to a membership, so leaving and
//! joining again lifts neither, and each remembers who set it (an admin lifts no
//! restriction the owner set: `Action::Lift`).

use crate::base::error::ApiError;
use crate::base::model::{Identity, Role};
use postgres::GenericClient;
use uuid::Uuid;

/// A restriction of a user in a room, apart from any membership.
#[derive(Clone, Copy)]
pub enum Restriction {
    /// Reads, cannot send.
    Mute,
    /// Kept out of the room.
    Ban,
}

impl Restriction {
    /// Sets it (set by `$3`); one row moved when it was not set.
    fn set_sql(self) -> &'static str {
        match self {
            Restriction::Mute => {
                "INSERT INTO room_restrictions (room_id, user_id, muted, muted_by)
                 VALUES ($1, $2, true, $3)
                 ON CONFLICT (room_id, user_id) DO UPDATE
                   SET muted = true, muted_by = $3, set_at = now()
                   WHERE NOT room_restrictions.muted"
            }
            Restriction::Ban => {
                "INSERT INTO room_restrictions (room_id, user_id, banned, banned_by)
                 VALUES ($1, $2, true, $3)
                 ON CONFLICT (room_id, user_id) DO UPDATE
                   SET banned = true, banned_by = $3, set_at = now()
                   WHERE NOT room_restrictions.banned"
            }
        }
    }

    /// Lifts it: the row goes when nothing else is set (the table's CHECK), else the
    /// flag is cleared; one row moved when it was set.
    fn lift_sql(self) -> &'static str {
        match self {
            Restriction::Mute => {
                "WITH gone AS (
                   DELETE FROM room_restrictions
                   WHERE room_id = $1 AND user_id = $2 AND muted AND NOT banned RETURNING 1),
                 kept AS (
                   UPDATE room_restrictions SET muted = false, muted_by = NULL
                   WHERE room_id = $1 AND user_id = $2 AND muted AND banned RETURNING 1)
                 SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM kept)"
            }
            Restriction::Ban => {
                "WITH gone AS (
                   DELETE FROM room_restrictions
                   WHERE room_id = $1 AND user_id = $2 AND banned AND NOT muted RETURNING 1),
                 kept AS (
                   UPDATE room_restrictions SET banned = false, banned_by = NULL
                   WHERE room_id = $1 AND user_id = $2 AND banned AND muted RETURNING 1)
                 SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM kept)"
            }
        }
    }

    /// The role now of whoever set it (no row: not set, or its setter is not a member).
    fn setter_sql(self) -> &'static str {
        match self {
            Restriction::Mute => {
                "SELECT s.role FROM room_restrictions x
                 JOIN room_members s ON s.room_id = x.room_id AND s.user_id = x.muted_by
                 WHERE x.room_id = $1 AND x.user_id = $2 AND x.muted"
            }
            Restriction::Ban => {
                "SELECT s.role FROM room_restrictions x
                 JOIN room_members s ON s.room_id = x.room_id AND s.user_id = x.banned_by
                 WHERE x.room_id = $1 AND x.user_id = $2 AND x.banned"
            }
        }
    }
}

/// The role now of whoever set `user`'s restriction `r` in `room` (`None`: not set, or
/// its setter is no longer a member).
pub fn setter(
    tx: &mut impl GenericClient,
    room: Uuid,
    user: Uuid,
    r: Restriction,
) -> Result<Option<Role>, ApiError> {
    let row = tx.query_opt(r.setter_sql(), &[&room, &user])?;
    Ok(row.and_then(|r| Role::parse(r.get(0))))
}

/// Sets or lifts restriction `r` of `user` in `room`: restrictions live apart from the
/// membership, so leaving and joining again lifts neither. Whether it moved.
pub fn restrict(
    tx: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
    user: Uuid,
    r: Restriction,
    on: bool,
) -> Result<bool, ApiError> {
    if on {
        // The server API has no account (the nil id): its restriction has no setter, so
        // that any admin may lift it, as one set by a user who is gone.
        let by = Some(who.user_id).filter(|id| !id.is_nil());
        Ok(tx.execute(r.set_sql(), &[&room, &user, &by])? == 1)
    } else {
        let n: i64 = tx.query_one(r.lift_sql(), &[&room, &user])?.get(0);
        Ok(n == 1)
    }
}
