//! Moderation (run on worker threads): invitations, kicks, bans, mutes, roles, room
//! settings and deletion. Each locks the room row, asks [`access::check`] whether the
//! caller may (before reading the user it acts on, then with that user's standing), and
//! then does the change, recording what matters to history in the room's stream.

use crate::base::access::{self, Action as Permission};
use crate::base::error::{ApiError, invalid};
use crate::base::model::Identity;
use crate::chat::blocks;
use crate::chat::ownership;
use crate::chat::restrictions::{Restriction, restrict, setter};
use crate::chat::rooms::{
    self, Role, Room, Standing, check_description, check_name, not_self, system,
};
use crate::pg::audit::{self, Actor};
use crate::pg::is_unique_violation;
use crate::pg::notify::{self, Event, MembershipData, UserRef};
use crate::pg::outbox;
use crate::pg::pool::Worker;
use postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

/// What an admin may do to a member (the name the routes know it by).
pub use access::Sanction as Action;

/// Invites a user to a room (idempotent); in a private room only an invitation lets
/// a user join. Banned users cannot be invited until unbanned. At most `per_hour`
/// invitations per inviter (0 = unlimited). An invitation works only while its inviter
/// may invite (`rooms::Standing`); inviting again renews one whose inviter lost it.
pub fn invite(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    user: Uuid,
    per_hour: u32,
) -> Result<(), ApiError> {
    not_self(who, user, "invite")?;
    let c = w.client()?;
    rooms::hourly_limit(c, rooms::INVITES_THIS_HOUR_SQL, who.user_id, per_hour)?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id, Permission::Invite(None))?;
    let (user, _, theirs) = rooms::user_in(&mut tx, room, user)?;
    s.allows(Permission::Invite(Some(theirs)))?;
    // Nobody invites a user who blocked them (asked once the room's rules passed, so
    // that it tells only someone who may invite).
    blocks::refuse_if_blocked_by(&mut tx, user, who.user_id)?;
    if theirs.role().is_none() {
        record_invite(&mut tx, who, room, user)?;
    }
    tx.commit()?;
    Ok(())
}

/// Does what [`invite`] allowed for a user who is not a member: the invitation, once,
/// and the user's sockets told of it.
fn record_invite(
    tx: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
    user: Uuid,
) -> Result<(), ApiError> {
    let fresh: bool = tx
        .query_one(
            "INSERT INTO room_invites (room_id, user_id, invited_by) VALUES ($1, $2, $3)
             ON CONFLICT (room_id, user_id) DO UPDATE SET invited_by = EXCLUDED.invited_by
             RETURNING xmax = 0",
            &[&room, &user, &who.user_id],
        )?
        .get(0);
    if fresh {
        let shown = rooms::get_locked(tx, room)?;
        let mut change = membership(room, who, "invited");
        change.room = serde_json::to_value(&shown).ok();
        tell(tx, user, change)?;
    }
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
    let s = Standing::lock(
        &mut tx,
        room,
        who.user_id,
        Permission::Moderate(action, None),
    )?;
    let (user, name, theirs) = rooms::user_in(&mut tx, room, user)?;
    s.allows(Permission::Moderate(action, Some(theirs)))?;
    if let Some(r) = match action {
        Action::Unban => Some(Restriction::Ban),
        Action::Unmute => Some(Restriction::Mute),
        _ => None,
    } {
        s.allows(Permission::Lift(setter(&mut tx, room, user, r)?))?;
    }
    sanction(&mut tx, who, room, (user, &name), action)?;
    let what = format!("room.{}", action.verb());
    audit::record(
        &mut tx,
        &Actor::user(who),
        &what,
        Some(room),
        Some(user),
        json!({}),
    )?;
    tx.commit()?;
    Ok(())
}

/// Does what [`act`] allowed: `user` is a member unless the sanction is a ban or an
/// unban. (Also the do step of a sanction by the server API, `chat/review.rs`.)
pub(crate) fn sanction(
    tx: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
    (user, name): (Uuid, &str),
    action: Action,
) -> Result<(), ApiError> {
    match action {
        Action::Kick => {
            rooms::remove_member(tx, room, who, (user, name), "kicked")?;
        }
        Action::Ban => {
            restrict(tx, who, room, user, Restriction::Ban, true)?;
            tx.execute(
                "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
                &[&room, &user],
            )?;
            if !rooms::remove_member(tx, room, who, (user, name), "banned")? {
                system(tx, room, who, "banned", Some((user, name)), json!({}))?;
            }
        }
        Action::Unban => {
            restrict(tx, who, room, user, Restriction::Ban, false)?;
        }
        Action::Mute | Action::Unmute => {
            let muted = action == Action::Mute;
            let moved = restrict(tx, who, room, user, Restriction::Mute, muted)?;
            if moved {
                let mut change = membership(room, who, "muted");
                change.muted = Some(muted);
                hook(tx, "member.muted", user, &change)?;
                tell(tx, user, change)?;
            }
        }
    }
    Ok(())
}

/// Records webhook event `kind` for a change of `user`'s standing that is no entry of
/// the room's stream: the `membership` data the user's sockets get, with `user_id`.
fn hook(
    tx: &mut impl GenericClient,
    kind: &str,
    user: Uuid,
    change: &MembershipData,
) -> Result<(), ApiError> {
    let mut data = serde_json::to_value(change).unwrap_or_default();
    if let Some(o) = data.as_object_mut() {
        o.insert("user_id".into(), json!(user));
    }
    outbox::record(tx, kind, Some(change.room_id), &data)?;
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
    let s = Standing::lock(&mut tx, room, who.user_id, Permission::SetRole(None))?;
    let (user, _, theirs) = rooms::user_in(&mut tx, room, user)?;
    s.allows(Permission::SetRole(Some(theirs)))?;
    change_role(&mut tx, who, room, user, role)?;
    let data = json!({"role": role.as_str()});
    audit::record(
        &mut tx,
        &Actor::user(who),
        "room.role",
        Some(room),
        Some(user),
        data,
    )?;
    tx.commit()?;
    Ok(())
}

/// Does what [`set_role`] allowed: the member's role, and their sockets told when it
/// moved.
fn change_role(
    tx: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), ApiError> {
    let moved = tx.execute(
        "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2 AND role <> $3",
        &[&room, &user, &role.as_str()],
    )? == 1;
    if moved {
        let mut change = membership(room, who, "role");
        change.role = Some(role.as_str().to_string());
        hook(tx, "member.role_changed", user, &change)?;
        tell(tx, user, change)?;
    }
    Ok(())
}

/// The longest slow mode: an hour between two messages of a member.
pub const MAX_SLOW_MODE_SECS: i64 = 3600;

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
    /// Whether any member may pin and unpin.
    pub members_can_pin: Option<bool>,
    /// Seconds a member waits between two messages (0: off).
    pub slow_mode_secs: Option<i64>,
}

impl Patch {
    /// The fields asked for, as the audit log records them.
    fn audit(&self) -> serde_json::Value {
        let mut d = serde_json::Map::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                d.insert(k.into(), v);
            }
        };
        put("name", self.name.as_ref().map(|v| json!(v)));
        put("description", self.description.as_ref().map(|v| json!(v)));
        put("visibility", self.visibility.as_ref().map(|v| json!(v)));
        put("receipts", self.receipts.map(|v| json!(v)));
        put("retention_days", self.retention_days.map(|v| json!(v)));
        put("members_can_pin", self.members_can_pin.map(|v| json!(v)));
        put("slow_mode_secs", self.slow_mode_secs.map(|v| json!(v)));
        serde_json::Value::Object(d)
    }

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
        if self
            .slow_mode_secs
            .is_some_and(|s| !(0..=MAX_SLOW_MODE_SECS).contains(&s))
        {
            errs.push(format!(
                "slow_mode_secs must be 0 to {MAX_SLOW_MODE_SECS} (0 turns slow mode off)"
            ));
        }
        errs
    }
}

/// Changes name, description, visibility, receipts, retention, who may pin or the slow
/// mode (owners and admins); a rename, a visibility change, a retention change and a
/// slow mode change are recorded in the stream.
pub fn update(w: &mut Worker, who: &Identity, room: Uuid, p: Patch) -> Result<Room, ApiError> {
    crate::base::error::check(p.problems())?;
    let c = w.client()?;
    let mut tx = c.transaction()?;
    let s = Standing::lock(&mut tx, room, who.user_id, Permission::UpdateSettings(None))?;
    let current = rooms::get_locked(&mut tx, room)?;
    s.allows(Permission::UpdateSettings(Some(reach(&current, &p))))?;
    let updated = change_settings(&mut tx, who, room, &p)?;
    audit::record(
        &mut tx,
        &Actor::user(who),
        "room.settings",
        Some(room),
        None,
        p.audit(),
    )?;
    tx.commit()?;
    Ok(updated)
}

/// How far `p` reaches from the room as it is: making it public exposes its history; a
/// retention not provably at least as long as the current one destroys history (0 keeps
/// forever; null follows the server's setting, which this rule does not compare).
fn reach(current: &Room, p: &Patch) -> access::Reach {
    let exposes =
        p.visibility.as_deref() == Some("public") && current.visibility.as_str() != "public";
    let shortens = match (p.retention_days, current.retention_days) {
        (None, _) => false,
        (Some(new), old) if new.map(|d| d as i32) == old => false,
        (Some(Some(0)), _) => false,
        (Some(Some(new)), Some(old)) => old == 0 || new < i64::from(old),
        (Some(_), _) => true,
    };
    match exposes || shortens {
        true => access::Reach::History,
        false => access::Reach::Plain,
    }
}

/// Does what [`update`] allowed; returns the room as it is now.
fn change_settings(
    tx: &mut impl GenericClient,
    who: &Identity,
    room: Uuid,
    p: &Patch,
) -> Result<Room, ApiError> {
    let current = rooms::get_locked(tx, room)?;
    if let Some(name) = &p.name {
        let (name, key) = check_name(name).map_err(|e| ApiError::Validation(vec![e]))?;
        if name != current.name {
            let r = tx.execute(
                "UPDATE rooms SET name = $2, name_key = $3 WHERE id = $1",
                &[&room, &name, &key],
            );
            match r {
                Err(e) if is_unique_violation(&e, "rooms_public_name_key") => {
                    return Err(ApiError::Conflict(
                        "room_name_taken",
                        "Room name already taken",
                    ));
                }
                other => other?,
            };
            system(tx, room, who, "renamed", None, json!({"name": name}))?;
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
    if let Some(on) = p.members_can_pin {
        tx.execute(
            "UPDATE rooms SET members_can_pin = $2 WHERE id = $1",
            &[&room, &on],
        )?;
    }
    if let Some(secs) = p.slow_mode_secs {
        let secs = secs as i32;
        if secs != current.slow_mode_secs {
            tx.execute(
                "UPDATE rooms SET slow_mode_secs = $2 WHERE id = $1",
                &[&room, &secs],
            )?;
            system(
                tx,
                room,
                who,
                "slow_mode",
                None,
                json!({"slow_mode_secs": secs}),
            )?;
        }
    }
    if let Some(days) = p.retention_days {
        let days = days.map(|d| d as i32);
        if days != current.retention_days {
            tx.execute(
                "UPDATE rooms SET retention_days = $2 WHERE id = $1",
                &[&room, &days],
            )?;
            system(
                tx,
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
        system(tx, room, who, "visibility", None, json!({"visibility": v}))?;
    }
    rooms::get_locked(tx, room)
}

/// Deletes a room with its messages (owner only); every socket in it, on every node,
/// leaves it.
pub fn delete(w: &mut Worker, who: &Identity, room: Uuid) -> Result<(), ApiError> {
    let c = w.client()?;
    let mut tx = c.transaction()?;
    Standing::lock(&mut tx, room, who.user_id, Permission::DeleteRoom)?;
    ownership::remove_room(&mut tx, room)?;
    let by = json!({"id": who.user_id, "username": who.username});
    let data = json!({"room_id": room, "by": by});
    outbox::record(&mut tx, "room.deleted", Some(room), &data)?;
    audit::record(
        &mut tx,
        &Actor::user(who),
        "room.delete",
        Some(room),
        None,
        json!({}),
    )?;
    tx.commit()?;
    Ok(())
}
