//! The conversation routes: room settings and deletion, invitations, moderation,
//! roles, direct rooms, read marks, and the caller's rooms and invitations.

use crate::base::error::{ApiError, USER_NOT_FOUND, check};
use crate::chat::direct;
use crate::chat::invites;
use crate::chat::levels::{self, Level};
use crate::chat::mentions;
use crate::chat::moderation::{self, Action, Patch};
use crate::chat::reads::{self, Mark};
use crate::chat::rooms::Role;
use crate::http::body::Body;
use crate::http::messages::page_limit;
use crate::http::parse::query_param;
use crate::http::response::Response;
use crate::http::routes::{Req, Routed};
use serde_json::json;
use uuid::Uuid;

fn success() -> serde_json::Value {
    json!({ "success": true })
}

fn user_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| crate::base::error::USER_NOT_FOUND)
}

/// `PATCH /rooms/:id`
pub fn update(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let body = r.body.take();
    r.job(&r.ctx.db, 200, move |w, _| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let patch = Patch {
            name: b.opt_str("name", &mut errs),
            description: b
                .has("description")
                .then(|| b.opt_str("description", &mut errs)),
            visibility: b.opt_str("visibility", &mut errs),
            receipts: b.opt_bool("receipts", &mut errs),
            retention_days: b
                .has("retention_days")
                .then(|| b.opt_i64("retention_days", &mut errs)),
            members_can_pin: b.opt_bool("members_can_pin", &mut errs),
            slow_mode_secs: b.opt_i64("slow_mode_secs", &mut errs),
        };
        errs.extend(patch.problems());
        check(errs)?;
        moderation::update(w, &who, room, patch)
    })
}

/// `DELETE /rooms/:id`
pub fn delete(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        moderation::delete(w, &who, room)?;
        Ok(success())
    })
}

/// `POST /rooms/:id/invites {user_id}`
pub fn invite(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let body = r.body.take();
    r.job(&r.ctx.db, 201, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let user = b.req_uuid("user_id", &mut errs);
        check(errs)?;
        let per_hour = ctx.cfg.limits.invites_per_user_per_hour;
        moderation::invite(w, &who, room, user, per_hour)?;
        Ok(success())
    })
}

/// `POST /rooms/:id/members/:user_id/{kick,ban,unban,mute,unmute}`
pub fn act(r: &Req, id: &str, user: &str, action: Action) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let user = user_id(user)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        moderation::act(w, &who, room, user, action)?;
        Ok(success())
    })
}

/// `PUT /rooms/:id/members/:user_id/role {role}`
pub fn set_role(r: &Req, id: &str, user: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let user = user_id(user)?;
    let body = r.body.take();
    r.job(&r.ctx.db, 200, move |w, _| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let role = b.req_str("role", &mut errs);
        let role = match Role::parse(&role) {
            Some(r @ (Role::Admin | Role::Member)) => r,
            _ => {
                errs.push("role must be admin or member".into());
                Role::Member
            }
        };
        check(errs)?;
        moderation::set_role(w, &who, room, user, role)?;
        Ok(success())
    })
}

/// `PUT /rooms/:id/notifications {level}` (`all`, `mentions`, `none`) or the older
/// `{muted}` (`none` / `all`; `level` wins when both are given): the caller's
/// notification level in the room.
pub fn notifications(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let body = r.body.take();
    r.job(&r.ctx.db, 200, move |w, _| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let muted = b.opt_bool("muted", &mut errs);
        let named = b.opt_str("level", &mut errs);
        // `level` wins over the older `muted` when a client sends both.
        let level = match (&named, muted) {
            (Some(l), _) => Level::parse(l),
            (None, Some(m)) => Some(Level::from_muted(m)),
            (None, None) => None,
        };
        if level.is_none() && errs.is_empty() {
            errs.push("level must be all, mentions or none (or muted a boolean)".into());
        }
        check(errs)?;
        let level = level.unwrap_or(Level::All);
        levels::set(w, &who, room, level)?;
        Ok(json!({
            "room_id": room,
            "notifications_muted": level == Level::None,
            "notification_level": level,
        }))
    })
}

/// `POST /dm {user_id}`: 201 when the room was created, 200 when it existed.
pub fn open_direct(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let body = r.body.take();
    r.job_status(&r.ctx.db, move |w, _| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let user = b.req_uuid("user_id", &mut errs);
        check(errs)?;
        let (room, created) = direct::open(w, &who, user)?;
        Ok((if created { 201 } else { 200 }, room))
    })
}

/// `POST /rooms/:id/read {seq}`: answered once the batched mark is stored.
pub fn mark_read(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let seq = b.req_count("seq", &mut errs);
    check(errs)?;
    let reply = r.reply.clone();
    r.ctx.reads.mark(Mark {
        room,
        user: who.user_id,
        seq,
        reply: Some(Box::new(move |res| {
            reply.arm().send(match res {
                Ok(last) => Response::json(200, &json!({ "room_id": room, "last_read_seq": last })),
                Err(e) => Response::from_error(&e),
            })
        })),
        quiet: false,
    });
    Ok(Routed::Pending)
}

/// `GET /me/rooms?cursor=&limit=`
pub fn my_rooms(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let limit = page_limit(r)?;
    let cursor = query_param(&r.head.query, "cursor").filter(|c| !c.is_empty());
    r.job(&r.ctx.db, 200, move |w, ctx| {
        let above = i64::from(ctx.cfg.notifications.mentions_only_above_members);
        reads::my_rooms(w, &who, cursor.as_deref(), limit, above)
    })
}

/// `GET /me/mentions?cursor=&limit=`: a page `{mentions, next_cursor}`, newest first.
pub fn my_mentions(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let limit = page_limit(r)?;
    let cursor = query_param(&r.head.query, "cursor").filter(|c| !c.is_empty());
    r.job(&r.ctx.db, 200, move |w, _| {
        mentions::mine(w, &who, cursor.as_deref(), limit)
    })
}

/// `GET /me/invites?cursor=&limit=`: a page `{invites, next_cursor}`; without either
/// parameter the first 100 as a bare array, the shape clients of 0.1 read.
pub fn my_invites(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let paged = ["cursor", "limit"]
        .iter()
        .any(|p| query_param(&r.head.query, p).is_some());
    if !paged {
        return r.job(&r.ctx.db, 200, move |w, _| {
            invites::mine(w, &who, None, 100).map(|page| page.invites)
        });
    }
    let limit = page_limit(r)?;
    let cursor = query_param(&r.head.query, "cursor").filter(|c| !c.is_empty());
    r.job(&r.ctx.db, 200, move |w, _| {
        invites::mine(w, &who, cursor.as_deref(), limit)
    })
}

/// `DELETE /me/invites/:room_id`: decline.
pub fn decline(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        invites::decline(w, &who, room)?;
        Ok(success())
    })
}

/// `GET /rooms/:id/invites?cursor=&limit=`
pub fn room_invites(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let limit = page_limit(r)?;
    let cursor = query_param(&r.head.query, "cursor").filter(|c| !c.is_empty());
    r.job(&r.ctx.db, 200, move |w, _| {
        invites::pending(w, &who, room, cursor.as_deref(), limit)
    })
}

/// `DELETE /rooms/:id/invites/:user_id`: revoke.
pub fn revoke(r: &Req, id: &str, user: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let user = Uuid::parse_str(user).map_err(|_| USER_NOT_FOUND)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        invites::revoke(w, &who, room, user)?;
        Ok(success())
    })
}
