//! Who shares a room with a user: the members of any room the user is a member of (an
//! invitation is not membership). They are told when the user's profile changes.

use crate::base::error::ApiError;
use crate::pg::pool::Worker;
use uuid::Uuid;

/// The users who share a room with `user`, `user` among them, each once. One query on
/// the membership indexes: the user's rooms (`room_members_user_idx`), then each room's
/// members (the primary key); its cost is the number of memberships it reads.
pub fn of(w: &mut Worker, user: Uuid) -> Result<Vec<Uuid>, ApiError> {
    let (c, st) = w.prepared(
        "SELECT $1::uuid UNION
         SELECT o.user_id FROM room_members m
         JOIN room_members o ON o.room_id = m.room_id
         WHERE m.user_id = $1",
    )?;
    let rows = c.query(&st, &[&user])?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
