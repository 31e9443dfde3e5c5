//! The server API for the product's backend: `/admin/...`, with an API key
//! (`[[api_keys]]`) as the bearer token. A user's token there is 403, anything else
//! 401, before any path or body is looked at (so nothing tells a non-admin whether a
//! user or room exists). The handlers translate requests into the use cases of
//! `auth::admin` and `chat::admin` (and the send use case, `Sender::submit`, for a message posted as a user).

use crate::auth::admin::{self as accounts, NewUser};
use crate::base::error::{ApiError, USER_NOT_FOUND, check};
use crate::base::model::{Message, Role};
use crate::chat::admin as rooms;
use crate::chat::export;
use crate::chat::messages::Rules;
use crate::chat::rooms::NewRoom;
use crate::chat::send::{self, Draft};
use crate::http::body::Body;
use crate::http::caller::Bearer;
use crate::http::dead;
use crate::http::ops::bearer;
use crate::http::parse::Method;
use crate::http::reports;
use crate::http::response::Response;
use crate::http::routes::{Req, Routed, number_param};
use crate::http::stream;
use crate::pg::audit::Actor;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// The API key of the request, as the audit log names it.
fn key(r: &Req) -> Result<Actor, ApiError> {
    let token = r.head.headers.authorization.as_deref().and_then(bearer);
    let Some(token) = token else {
        return Err(ApiError::Unauthorized(
            "unauthorized",
            "Missing bearer token (an API key)",
        ));
    };
    if let Some(name) = r.ctx.auth.api_keys.check(token) {
        return Ok(Actor::key(name));
    }
    if matches!(r.bearer, Bearer::Known(_) | Bearer::FirstUse) {
        return Err(ApiError::Forbidden(
            "forbidden",
            "The server API takes an API key, not a user's token",
        ));
    }
    Err(ApiError::Unauthorized("invalid_token", "Invalid API key"))
}

fn uuid(s: &str, not_found: ApiError) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| not_found)
}

fn room_id(s: &str) -> Result<Uuid, ApiError> {
    uuid(s, crate::base::error::ROOM_NOT_FOUND)
}

/// A uuid field of a body: `None` when absent or null.
fn opt_uuid(b: &Body, name: &str, errs: &mut Vec<String>) -> Option<Uuid> {
    let s = b.opt_str(name, errs)?;
    match Uuid::parse_str(&s) {
        Ok(u) => Some(u),
        Err(_) => {
            errs.push(format!("{name} must be a user id (uuid)"));
            None
        }
    }
}

/// A route of the server API: the request, its path after `/admin`, the key.
type Handler = fn(&Req, &[&str], Actor) -> Result<Routed, ApiError>;

/// Serves `/admin/<rest>`; `None` for a path the server API does not have.
pub fn route(r: &Req, m: Method, rest: &[&str]) -> Option<(&'static str, Routed)> {
    use Method::{Delete, Get, Post};
    let served: (&'static str, Handler) = match (m, rest) {
        (Get, ["audit"]) => ("GET /admin/audit", audit),
        (Post, ["users"]) => ("POST /admin/users", create_user),
        (Post, ["users", _, "tokens"]) => ("POST /admin/users/:id/tokens", tokens),
        (Post, ["users", _, "deactivate"]) => ("POST /admin/users/:id/deactivate", deactivate),
        (Post, ["users", _, "reactivate"]) => ("POST /admin/users/:id/reactivate", reactivate),
        (Delete, ["users", _]) => ("DELETE /admin/users/:id", delete_user),
        (Get, ["users", _, "export"]) => ("GET /admin/users/:id/export", export_user),
        (Get, ["rooms", _, "export"]) => ("GET /admin/rooms/:id/export", export_room),
        (Post, ["rooms"]) => ("POST /admin/rooms", create_room),
        (Post, ["rooms", _, "members"]) => ("POST /admin/rooms/:id/members", add_member),
        (Delete, ["rooms", _, "members", _]) => {
            ("DELETE /admin/rooms/:id/members/:user_id", remove_member)
        }
        (Post, ["rooms", _, "messages"]) => ("POST /admin/rooms/:id/messages", post),
        (Get, ["reports"]) => ("GET /admin/reports", reports::admin_list),
        (Post, ["reports", _, "resolve"]) => (
            "POST /admin/reports/:report_id/resolve",
            reports::admin_resolve,
        ),
        (Get, ["webhooks", "dead"]) => ("GET /admin/webhooks/dead", dead::list),
        (Post, ["webhooks", "dead", _, "retry"]) => {
            ("POST /admin/webhooks/dead/:id/retry", dead::retry)
        }
        _ => return None,
    };
    let (label, handler) = served;
    let routed = key(r).and_then(|actor| handler(r, rest, actor));
    Some((label, routed.into()))
}

/// The methods a path of the server API allows (for 405).
pub fn allowed(rest: &[&str]) -> Option<&'static str> {
    Some(match rest {
        ["audit"] => "GET, HEAD",
        ["users"] | ["rooms"] => "POST",
        ["users", _] => "DELETE",
        ["users", _, "tokens" | "deactivate" | "reactivate"] => "POST",
        ["rooms", _, "members" | "messages"] => "POST",
        ["rooms", _, "members", _] => "DELETE",
        ["webhooks", "dead"] => "GET, HEAD",
        ["users" | "rooms", _, "export"] => "GET, HEAD",
        ["webhooks", "dead", _, "retry"] => "POST",
        ["reports"] => "GET, HEAD",
        ["reports", _, "resolve"] => "POST",
        _ => return None,
    })
}

/// `GET /admin/audit?cursor=&limit=`
fn audit(r: &Req, _: &[&str], _: Actor) -> Result<Routed, ApiError> {
    let bad = |what: &str| ApiError::BadRequest("invalid_payload", what.to_string());
    let limit = number_param(
        r.head,
        "limit",
        |n| (1..=500).contains(&n),
        || bad("limit must be 1 to 500"),
    )?
    .unwrap_or(100);
    let cursor = number_param(
        r.head,
        "cursor",
        |n| n > 0,
        || bad("cursor must be a cursor this route returned"),
    )?;
    r.job(&r.ctx.db, 200, move |w, _| {
        rooms::audit_page(w, cursor, limit)
    })
}

/// `POST /admin/users {username, email?, display_name?, external_id?}`
fn create_user(r: &Req, _: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let u = NewUser {
        username: b.req_str("username", &mut errs),
        email: b.opt_str("email", &mut errs),
        display_name: b.opt_str("display_name", &mut errs),
        external_id: b.opt_str("external_id", &mut errs),
    };
    check(errs)?;
    let ext = &r.ctx.cfg.auth.external;
    let issuer = ext.enabled().then(|| ext.issuer.clone());
    r.job(&r.ctx.db, 201, move |w, _| {
        accounts::create_user(w, &actor, issuer.as_deref(), u)
    })
}

/// `POST /admin/users/:id/tokens`
fn tokens(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let user = uuid(rest[1], USER_NOT_FOUND)?;
    r.job(&r.ctx.db, 201, move |w, ctx| {
        accounts::tokens(w, &ctx.auth, &actor, user)
    })
}

/// `POST /admin/users/:id/deactivate`
fn deactivate(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let user = uuid(rest[1], USER_NOT_FOUND)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        accounts::deactivate(w, &ctx.auth, &actor, user)
    })
}

/// `POST /admin/users/:id/reactivate`
fn reactivate(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let user = uuid(rest[1], USER_NOT_FOUND)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        accounts::reactivate(w, &actor, user)
    })
}

/// `DELETE /admin/users/:id?erase=true|false`: 202, the deletion goes on in the
/// background (PROTOCOL.md §13).
fn delete_user(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let user = uuid(rest[1], USER_NOT_FOUND)?;
    let erase = match crate::http::parse::query_param(&r.head.query, "erase").as_deref() {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid_payload",
                "erase must be true or false".into(),
            ));
        }
    };
    r.job(&r.ctx.db, 202, move |w, ctx| {
        accounts::delete_user(w, &ctx.auth, &actor, user, erase)
    })
}

/// NDJSON, streamed (`http/stream.rs`).
const NDJSON: &str = "application/x-ndjson";

/// `GET /admin/users/:id/export`: the profile, memberships and messages, as NDJSON.
fn export_user(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let user = uuid(rest[1], USER_NOT_FOUND)?;
    stream::respond(
        &r.ctx.exports,
        r.ctx,
        r.reply,
        NDJSON,
        move |w| export::user(w, &actor, user),
        |w, e, out| e.write(w, out),
    )
}

/// `GET /admin/rooms/:id/export`: the room's whole stream in seq order, as NDJSON.
fn export_room(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let room = room_id(rest[1])?;
    stream::respond(
        &r.ctx.exports,
        r.ctx,
        r.reply,
        NDJSON,
        move |w| export::room(w, &actor, room),
        |w, e, out| e.write(w, out),
    )
}

/// `POST /admin/rooms {name, visibility, owner_id, member_ids[], description?}`
fn create_room(r: &Req, _: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let new = NewRoom {
        name: b.req_str("name", &mut errs),
        description: b.opt_str("description", &mut errs),
        visibility: b.opt_str("visibility", &mut errs),
    };
    let owner = opt_uuid(&b, "owner_id", &mut errs);
    if owner.is_none() && !errs.iter().any(|e| e.starts_with("owner_id")) {
        errs.push("owner_id is required".into());
    }
    let mut members = Vec::new();
    match b.get("member_ids") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ids)) => {
            for id in ids {
                match id.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    Some(u) => members.push(u),
                    None => {
                        errs.push("member_ids must hold user ids (uuids)".into());
                        break;
                    }
                }
            }
        }
        Some(_) => errs.push("member_ids must be an array of user ids".into()),
    }
    errs.extend(new.problems());
    check(errs)?;
    let owner = owner.ok_or(ApiError::Internal)?;
    r.job(&r.ctx.db, 201, move |w, _| {
        rooms::create_room(w, &actor, owner, new, members)
    })
}

/// `POST /admin/rooms/:id/members {user_id, role?}`
fn add_member(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let room = room_id(rest[1])?;
    let b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let user = opt_uuid(&b, "user_id", &mut errs);
    if user.is_none() && errs.is_empty() {
        errs.push("user_id is required".into());
    }
    let role = match b.opt_str("role", &mut errs).as_deref() {
        None => Some(Role::Member),
        Some(s) => match Role::parse(s) {
            Some(role @ (Role::Member | Role::Admin)) => Some(role),
            _ => {
                errs.push("role must be member or admin".into());
                None
            }
        },
    };
    check(errs)?;
    let (user, role) = user.zip(role).ok_or(ApiError::Internal)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        rooms::add_member(w, &actor, room, user, role)?;
        Ok(json!({"success": true}))
    })
}

/// `DELETE /admin/rooms/:id/members/:user_id`
fn remove_member(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let room = room_id(rest[1])?;
    let user = uuid(rest[3], USER_NOT_FOUND)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        rooms::remove_member(w, &actor, room, user)?;
        Ok(json!({"success": true}))
    })
}

/// `POST /admin/rooms/:id/messages {user_id?, content, client_msg_id?}`: as the user
/// (through the room's writer, like its own send: it must be a member, not muted), or a
/// system entry when `user_id` is absent.
fn post(r: &Req, rest: &[&str], actor: Actor) -> Result<Routed, ApiError> {
    let room = room_id(rest[1])?;
    let mut b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let user = opt_uuid(&b, "user_id", &mut errs);
    let content = b.req_str("content", &mut errs);
    let client_msg_id = b.opt_str("client_msg_id", &mut errs);
    check(errs)?;
    let draft = Draft {
        room,
        content,
        client_msg_id,
        reply_to: None,
        attachments: b.take("attachments"),
    };
    let draft = send::check(draft, &Rules::from_config(&r.ctx.cfg.messages))?;
    let Some(user) = user else {
        return r.job_status(&r.ctx.db, move |w, _| {
            let (m, fresh) = rooms::post_notice(
                w,
                &actor,
                room,
                &draft.content,
                draft.client_msg_id.as_deref(),
            )?;
            Ok((if fresh { 201 } else { 200 }, m))
        });
    };
    let (ctx, reply) = (r.ctx.clone(), r.reply.clone());
    let job: crate::pg::pool::Job = Box::new(move |w| {
        let reply = reply.arm();
        let author = match rooms::author(w, user) {
            Ok(a) => a,
            Err(e) => return reply.send(Response::from_error(&e)),
        };
        let db = ctx.db.clone();
        let answer = move |result: Result<Arc<Message>, ApiError>| match result {
            Ok(m) => {
                // The audit row follows the writer's commit, on a worker.
                let _ = db.submit(Box::new(move |w| {
                    if let Err(e) = rooms::record_post(w, &actor, &m) {
                        log::error!("audit of a message posted by the server API: {e}");
                    }
                    reply.send(Response::json(201, &*m));
                }));
            }
            Err(e) => reply.send(Response::from_error(&e)),
        };
        if ctx.sender.submit_by_key(author, draft, answer).is_err() {
            // The reply was dropped with the job: its Replier answers 500; say 503.
            log::warn!("writer full for a message posted by the server API");
        }
    });
    r.ctx.db.submit(job)?;
    Ok(Routed::Pending)
}
