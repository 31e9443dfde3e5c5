//! Direct rooms: one room per pair of users, found or created by either of them.

use crate::base::error::{ApiError, invalid};
use crate::base::model::Identity;
use crate::chat::blocks;
use crate::chat::moderation;
use crate::chat::rooms::{self, Room};
use crate::pg::pool::Worker;
use serde::Serialize;
use uuid::Uuid;

/// A direct room with the other user.
#[derive(Debug, Serialize)]
pub struct Direct {
    /// The room.
    #[serde(flatten)]
    pub room: Room,
    /// The other member.
    pub other_user: Peer,
}

/// A user as a direct room names them.
#[derive(Debug, Serialize)]
pub struct Peer {
    /// User id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Display name, if any.
    pub display_name: Option<String>,
}

/// The pair's key: the smaller id first, so both sides name the same room.
fn pair_key(a: Uuid, b: Uuid) -> String {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

/// The direct room of the caller and `user`: created on the first call, the same one
/// after, whoever asks (concurrent first calls from both sides meet on the pair's
/// unique key). A member who left is a member again, with its notification mute and read
/// position as it left them. Refused with `blocked` when either blocked the other.
pub fn open(w: &mut Worker, who: &Identity, user: Uuid) -> Result<(Direct, bool), ApiError> {
    if user == who.user_id {
        return Err(invalid("a direct room needs another user"));
    }
    let key = pair_key(who.user_id, user);
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let (peer, name) = rooms::user(&mut tx, user)?;
    // Neither side of a block opens (or reopens) the pair's room.
    blocks::refuse_between(&mut tx, who.user_id, peer)?;
    let display_name: Option<String> = tx
        .query_one("SELECT display_name FROM users WHERE id = $1", &[&peer])?
        .get(0);
    let created = tx.query_opt(
        "INSERT INTO rooms (id, name, visibility, direct_key, created_by)
         VALUES ($1, $2, 'direct', $2, $3) ON CONFLICT (direct_key) DO NOTHING RETURNING id",
        &[&Uuid::now_v7(), &key, &who.user_id],
    )?;
    let fresh = created.is_some();
    let id: Uuid = match created {
        Some(r) => r.get(0),
        None => tx
            .query_one("SELECT id FROM rooms WHERE direct_key = $1", &[&key])?
            .get(0),
    };
    // A side that left comes back with the settings it left with.
    tx.execute(rooms::ADD_MEMBER_SQL, &[&id, &who.user_id])?;
    let peer_added = tx.execute(rooms::ADD_MEMBER_SQL, &[&id, &peer])? == 1;
    let room = rooms::get_locked(&mut tx, id)?;
    // The other side learns of the conversation now, not on its next list of rooms.
    if peer_added {
        let mut change = moderation::membership(id, who, "direct");
        change.room = serde_json::to_value(&room).ok();
        moderation::tell(&mut tx, peer, change)?;
    }
    tx.commit()?;
    Ok((
        Direct {
            room,
            other_user: Peer {
                id: peer,
                username: name,
                display_name,
            },
        },
        fresh,
    ))
}
