//! Moderation (run on worker threads): invitations, kicks, bans, mutes, roles, room
//! settings and deletion. Each runs with the room row locked, checks the caller's role,
//! and records what matters to history in the room's stream.

use crate::base::error::{ApiError, BANNED, FORBIDDEN, NOT_MEMBER, ROOM_NOT_FOUND, invalid};
use crate::base::model::Identity;
use crate::chat::rooms::{
    self, Role, Room, Standing, Visibility, check_description, check_name, not_self, system,
};
use crate::pg::is_unique_violation;
use crate::pg::notify::{self, Event, MembershipData, UserRef};
use crate::pg::pool::Worker;
use postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

/// What an admin may do to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove from the room.
    Kick,
    /// Remove and keep out until unbanned.
    Ban,
    /// Let back in.
    Unban,
    /// Read only.
    Mute,
    /// Send again.
    Unmute,
}

impl Action {
    /// Parses the last path segment of `/rooms/:id/members/:user_id/<action>`.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "kick" => Action::Kick,
            "ban" => Action::Ban,
            "unban" => Action::Unban,
            "mute" => Action::Mute,
            "unmute" => Action::Unmute,
            _ => return None,
        })
    }

    fn verb(self) -> &'static str {
        match self {
            Action::Kick => "kick",
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::Mute => "mute",
            Action::Unmute => "unmute",
        }
    }
}

/// The caller's role, which must be at least admin.
fn admin(s: &Standing) -> Result<Role, ApiError> {
    match s.member()? {
        Role::Member => Err(FORBIDDEN),
        r => Ok(r),
    }
}

/// A target's role in the room, if a member.
fn role_of(c: &mut impl GenericClient, room: Uuid, user: Uuid) -> Result<Option<Role>, ApiError> {
    Ok(c.query_opt(
        "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2",
        &[&room, &user],
    )?
    .and_then(|r| Role::parse(r.get(0))))
}

/// Invites a user to a room (idempotent); in a private room only an invitation lets
/// a user join. Banned users cannot be invited until unbanned.
pub fn invite(w: &mut Worker, who: &Identity, room: Uuid, user: Uuid) -> Result<(), ApiError> {
    not_self(who, user, "invite")?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id)?;
    if s.visibility == Visibility::Direct {
        return Err(invalid("a direct room takes no other member"));
    }
    admin(&s)?;
    rooms::user(&mut tx, user)?;
    let banned = tx
        .query_opt(
            "SELECT 1 FROM room_bans WHERE room_id = $1 AND user_id = $2",
            &[&room, &user],
        )?
        .is_some();
    if banned {
        return Err(BANNED);
    }
    if role_of(&mut tx, room, user)?.is_none() {
        let fresh = tx.execute(
            "INSERT INTO room_invites (room_id, user_id, invited_by) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&room, &user, &who.user_id],
        )? == 1;
        if fresh {
            let shown = rooms::get_locked(&mut tx, room)?;
            let mut change = membership(room, who, "invited");
            change.room = serde_json::to_value(&shown).ok();
            tell(&mut tx, user, change)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A `membership` change made by `who` in `room`, for the user it concerns.
pub(crate) fn membership(room: Uuid, who: &Identity, change: &str) -> MembershipData {
    MembershipData {
        room_id: room,
        change: change.to_string(),
        by: UserRef {
            id: who.user_id,
            username: who.username.clone(),
        },
        role: None,
        muted: None,
        room: None,
    }
}

/// Tells `user`'s sockets on every node of `change` when the transaction commits.
pub(crate) fn tell(
    c: &mut impl GenericClient,
    user: Uuid,
    change: MembershipData,
) -> Result<(), ApiError> {
    Ok(notify::publish(c, &[Event::User { user, data: change }])?)
}

/// Kicks, bans, unbans, mutes or unmutes a member. Owners and admins may; an admin
/// acts on members only, the owner on admins too; nobody on the owner or themselves.
pub fn act(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    user: Uuid,
    action: Action,
) -> Result<(), ApiError> {
    not_self(who, user, action.verb())?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id)?;
    if s.visibility == Visibility::Direct {
        return Err(FORBIDDEN);
    }
    let mine = admin(&s)?;
    let (user, name) = rooms::user(&mut tx, user)?;
    let theirs = role_of(&mut tx, room, user)?;
    if theirs.is_some_and(|r| r >= mine) {
        return Err(FORBIDDEN);
    }
    match action {
        Action::Kick => {
            if theirs.is_none() {
                return Err(NOT_MEMBER);
            }
            rooms::remove_member(&mut tx, room, who, (user, &name), "kicked")?;
        }
        Action::Ban => {
            tx.execute(
                "INSERT INTO room_bans (room_id, user_id, banned_by) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&room, &user, &who.user_id],
            )?;
            tx.execute(
                "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
                &[&room, &user],
            )?;
            if !rooms::remove_member(&mut tx, room, who, (user, &name), "banned")? {
                system(&mut tx, room, who, "banned", Some((user, &name)), json!({}))?;
            }
        }
        Action::Unban => {
            tx.execute(
                "DELETE FROM room_bans WHERE room_id = $1 AND user_id = $2",
                &[&room, &user],
            )?;
        }
        Action::Mute | Action::Unmute => {
            if theirs.is_none() {
                return Err(NOT_MEMBER);
            }
            let muted = action == Action::Mute;
            let moved = tx.execute(
                "UPDATE room_members SET muted = $3
                 WHERE room_id = $1 AND user_id = $2 AND muted <> $3",
                &[&room, &user, &muted],
            )? == 1;
            if moved {
                let mut change = membership(room, who, "muted");
                change.muted = Some(muted);
                tell(&mut tx, user, change)?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Promotes a member to admin or demotes an admin (owner only).
pub fn set_role(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), ApiError> {
    if role == Role::Owner {
        return Err(invalid("role must be admin or member"));
    }
    if who.user_id == user {
        return Err(invalid("the owner's role cannot change"));
    }
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id)?;
    if s.member()? != Role::Owner {
        return Err(FORBIDDEN);
    }
    rooms::user(&mut tx, user)?;
    if role_of(&mut tx, room, user)?.is_none() {
        return Err(NOT_MEMBER);
    }
    let moved = tx.execute(
        "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2 AND role <> $3",
        &[&room, &user, &role.as_str()],
    )? == 1;
    if moved {
        let mut change = membership(room, who, "role");
        change.role = Some(role.as_str().to_string());
        tell(&mut tx, user, change)?;
    }
    tx.commit()?;
    Ok(())
}

/// Changes to a room's settings (absent fields stay).
pub struct Patch {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New visibility: `public` or `private`.
    pub visibility: Option<String>,
    /// Read receipts on or off.
    pub receipts: Option<bool>,
    /// Days messages are kept (`Some(None)`: the server's default; 0: forever).
    pub retention_days: Option<Option<i64>>,
}

impl Patch {
    /// Every rule the request breaks, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(Err(e)) = self.name.as_deref().map(check_name) {
            errs.push(e);
        }
        if let Some(Err(e)) = self.description.as_ref().map(check_description) {
            errs.push(e);
        }
        if let Some(v) = self.visibility.as_deref()
            && !matches!(v, "public" | "private")
        {
            errs.push("visibility must be public or private".into());
        }
        if let Some(Some(d)) = self.retention_days
            && !(0..=36500).contains(&d)
        {
            errs.push("retention_days must be null or 0 to 36500 (0 keeps forever)".into());
        }
        errs
    }
}

/// Changes name, description, visibility, receipts or retention (owners and admins); a
/// rename, a visibility change and a retention change are recorded in the stream.
pub fn update(w: &mut Worker, who: &Identity, room: Uuid, p: Patch) -> Result<Room, ApiError> {
    crate::base::error::check(p.problems())?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id)?;
    if s.visibility == Visibility::Direct {
        return Err(invalid("a direct room has no settings"));
    }
    admin(&s)?;
    let current = rooms::get_locked(&mut tx, room)?;
    if let Some(name) = &p.name {
        let name = name.trim().to_string();
        if name != current.name {
            let r = tx.execute("UPDATE rooms SET name = $2 WHERE id = $1", &[&room, &name]);
            match r {
                Err(e) if is_unique_violation(&e, "rooms_public_name_key") => {
                    return Err(ApiError::Conflict(
                        "room_name_taken",
                        "Room name already taken",
                    ));
                }
                other => other?,
            };
            system(&mut tx, room, who, "renamed", None, json!({"name": name}))?;
        }
    }
    if let Some(d) = &p.description {
        tx.execute(
            "UPDATE rooms SET description = $2 WHERE id = $1",
            &[&room, d],
        )?;
    }
    if let Some(r) = p.receipts {
        tx.execute("UPDATE rooms SET receipts = $2 WHERE id = $1", &[&room, &r])?;
    }
    if let Some(days) = p.retention_days {
        let days = days.map(|d| d as i32);
        if days != current.retention_days {
            tx.execute(
                "UPDATE rooms SET retention_days = $2 WHERE id = $1",
                &[&room, &days],
            )?;
            system(
                &mut tx,
                room,
                who,
                "retention",
                None,
                json!({"retention_days": days}),
            )?;
        }
    }
    if let Some(v) = p.visibility.as_deref()
        && v != current.visibility.as_str()
    {
        let r = tx.execute(
            "UPDATE rooms SET visibility = $2 WHERE id = $1",
            &[&room, &v],
        );
        match r {
            Err(e) if is_unique_violation(&e, "rooms_public_name_key") => {
                return Err(ApiError::Conflict(
                    "room_name_taken",
                    "A public room already has this name",
                ));
            }
            other => other?,
        };
        system(
            &mut tx,
            room,
            who,
            "visibility",
            None,
            json!({"visibility": v}),
        )?;
    }
    let updated = rooms::get_locked(&mut tx, room)?;
    tx.commit()?;
    Ok(updated)
}

/// Deletes a room with its messages (owner only); every socket in it, on every node,
/// leaves it.
pub fn delete(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id)?;
    if s.member()? != Role::Owner {
        return Err(FORBIDDEN);
    }
    tx.execute("DELETE FROM message_search WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM search_progress WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM message_edits WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM message_reactions WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM messages WHERE room_id = $1", &[&room])?;
    tx.execute("DELETE FROM presence WHERE room_id = $1", &[&room])?;
    let n = tx.execute("DELETE FROM rooms WHERE id = $1", &[&room])?;
    if n == 0 {
        return Err(ROOM_NOT_FOUND);
    }
    notify::publish(&mut tx, &[Event::Gone { room }])?;
    tx.commit()?;
    Ok(())
}
