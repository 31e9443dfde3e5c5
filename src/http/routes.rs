//! Routing: each request is answered at once (cheap, no I/O) or becomes a job for a
//! worker whose answer comes back to the loop through [`ReplyTo`].

use crate::base::error::{ApiError, ROOM_NOT_FOUND};
use crate::base::model::Identity;
use crate::chat::moderation::Action;
use crate::http::api;
use crate::http::context::{HttpCtx, ReplyTo};
use crate::http::conversations as conv;
use crate::http::messages as msgs;
use crate::http::ops;
use crate::http::parse::{Head, Method, query_param};
use crate::http::response::Response;
use crate::pg::pool::{Job, JobQueue, Worker};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// What the loop does with a request.
pub enum Routed {
    /// Answer now.
    Now(Response),
    /// A worker will answer through the loop's channel.
    Pending,
    /// Upgrade to a WebSocket for this caller.
    Upgrade(Identity),
    /// Upgrade to the echo socket (conformance tests only).
    UpgradeEcho,
}

impl From<Result<Routed, ApiError>> for Routed {
    fn from(r: Result<Routed, ApiError>) -> Routed {
        r.unwrap_or_else(|e| Routed::Now(Response::from_error(&e)))
    }
}

/// One request as the handlers see it.
pub struct Req<'a> {
    /// The node's handles.
    pub ctx: &'a Arc<HttpCtx>,
    /// The parsed head.
    pub head: &'a Head,
    /// The body, taken by the handler that reads it.
    pub body: Cell<Vec<u8>>,
    /// The peer address.
    pub peer: IpAddr,
    /// Where a worker's answer goes.
    pub reply: &'a ReplyTo,
}

impl Req<'_> {
    /// The caller, from `Authorization: Bearer`.
    pub fn caller(&self) -> Result<Identity, ApiError> {
        ops::authenticate(self.ctx, self.head, false)
    }

    /// The caller and the room named by path segment `id`.
    pub fn caller_in(&self, id: &str) -> Result<(Identity, Uuid), ApiError> {
        let who = self.caller()?;
        let room = Uuid::parse_str(id).map_err(|_| ROOM_NOT_FOUND)?;
        Ok((who, room))
    }

    /// Queues `f` on `queue`; its answer (or error) goes back to the client.
    pub fn job<T: serde::Serialize>(
        &self,
        queue: &JobQueue,
        status: u16,
        f: impl FnOnce(&mut Worker, &HttpCtx) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<Routed, ApiError> {
        self.job_status(queue, move |w, ctx| f(w, ctx).map(|v| (status, v)))
    }

    /// Like [`Req::job`], with the success status chosen by `f`.
    pub fn job_status<T: serde::Serialize>(
        &self,
        queue: &JobQueue,
        f: impl FnOnce(&mut Worker, &HttpCtx) -> Result<(u16, T), ApiError> + Send + 'static,
    ) -> Result<Routed, ApiError> {
        let (ctx, reply) = (self.ctx.clone(), self.reply.clone());
        let job: Job = Box::new(move |w| {
            let reply = reply.arm();
            let resp = match f(w, &ctx) {
                Ok((status, v)) => Response::json(status, &v),
                Err(e) => Response::from_error(&e),
            };
            reply.send(resp);
        });
        queue.submit(job)?;
        Ok(Routed::Pending)
    }
}

/// The route label used in metrics, and how to serve the request.
pub fn dispatch(
    ctx: &Arc<HttpCtx>,
    head: &Head,
    body: Vec<u8>,
    peer: IpAddr,
    reply: &ReplyTo,
) -> (&'static str, Routed) {
    let r = Req {
        ctx,
        head,
        body: Cell::new(body),
        peer,
        reply,
    };
    let segs: Vec<&str> = head.path.trim_matches('/').split('/').collect();
    if head.method == Method::Options {
        return ("OPTIONS", Routed::Now(ops::preflight(&ctx.cfg, head)));
    }
    // HEAD is served as GET (the loop drops the body), except for the upgrade.
    let m = match head.method {
        Method::Head => Method::Get,
        other => other,
    };
    use Method::{Delete, Get, Patch, Post, Put};
    let now = |resp: Response| Routed::Now(resp);
    let routed: Option<(&'static str, Routed)> = match (m, segs.as_slice()) {
        (Get, ["health"]) => Some((
            "GET /health",
            now(Response::json(200, &serde_json::json!({"status": "ok"}))),
        )),
        (Get, ["ready"]) => Some(("GET /ready", ops::ready(ctx))),
        (Get, ["metrics"]) => Some(("GET /metrics", ops::metrics(ctx))),
        (Get, ["openapi.json"]) => Some((
            "GET /openapi.json",
            now(Response::raw(
                200,
                "application/json",
                OPENAPI.as_bytes().to_vec(),
            )),
        )),
        (Get, ["asyncapi.json"]) => Some((
            "GET /asyncapi.json",
            now(Response::raw(
                200,
                "application/json",
                ASYNCAPI.as_bytes().to_vec(),
            )),
        )),
        (Get, ["ws"]) if head.method == Method::Get => {
            Some(("GET /ws", ops::upgrade(ctx, head).into()))
        }
        (Get, ["echo"]) if ctx.cfg.websocket.echo_endpoint => Some((
            "GET /echo",
            match crate::http::upgrade::check(head) {
                Ok(()) => Routed::UpgradeEcho,
                Err(resp) => Routed::Now(resp),
            },
        )),
        (Post, ["auth", "register"]) => Some(("POST /auth/register", api::register(&r).into())),
        (Post, ["auth", "login"]) => Some(("POST /auth/login", api::login(&r).into())),
        (Post, ["auth", "refresh"]) => Some(("POST /auth/refresh", api::refresh(&r).into())),
        (Post, ["auth", "logout"]) => Some(("POST /auth/logout", api::logout(&r).into())),
        (Get, ["rooms"]) => Some(("GET /rooms", api::list_rooms(&r).into())),
        (Post, ["rooms"]) => Some(("POST /rooms", api::create_room(&r).into())),
        (Get, ["rooms", id]) => Some(("GET /rooms/:id", api::get_room(&r, id).into())),
        (Patch, ["rooms", id]) => Some(("PATCH /rooms/:id", conv::update(&r, id).into())),
        (Delete, ["rooms", id]) => Some(("DELETE /rooms/:id", conv::delete(&r, id).into())),
        (Post, ["rooms", id, "join"]) => {
            Some(("POST /rooms/:id/join", api::join_room(&r, id).into()))
        }
        (Post, ["rooms", id, "leave"]) => {
            Some(("POST /rooms/:id/leave", api::leave_room(&r, id).into()))
        }
        (Get, ["rooms", id, "members"]) => {
            Some(("GET /rooms/:id/members", api::members(&r, id).into()))
        }
        (Get, ["rooms", id, "messages"]) => {
            Some(("GET /rooms/:id/messages", msgs::history(&r, id).into()))
        }
        (Post, ["rooms", id, "messages"]) => {
            Some(("POST /rooms/:id/messages", msgs::post(&r, id).into()))
        }
        (Patch, ["rooms", id, "messages", mid]) => Some((
            "PATCH /rooms/:id/messages/:message_id",
            msgs::edit(&r, id, mid).into(),
        )),
        (Delete, ["rooms", id, "messages", mid]) => Some((
            "DELETE /rooms/:id/messages/:message_id",
            msgs::delete(&r, id, mid).into(),
        )),
        (Get, ["rooms", id, "messages", mid, "edits"]) => Some((
            "GET /rooms/:id/messages/:message_id/edits",
            msgs::versions(&r, id, mid).into(),
        )),
        (Put, ["rooms", id, "messages", mid, "reactions", emoji]) => Some((
            "PUT /rooms/:id/messages/:message_id/reactions/:emoji",
            msgs::reaction(&r, id, mid, emoji, true).into(),
        )),
        (Delete, ["rooms", id, "messages", mid, "reactions", emoji]) => Some((
            "DELETE /rooms/:id/messages/:message_id/reactions/:emoji",
            msgs::reaction(&r, id, mid, emoji, false).into(),
        )),
        (Get, ["rooms", id, "search"]) => {
            Some(("GET /rooms/:id/search", msgs::search(&r, Some(id)).into()))
        }
        (Get, ["me", "search"]) => Some(("GET /me/search", msgs::search(&r, None).into())),
        (Post, ["rooms", id, "invites"]) => {
            Some(("POST /rooms/:id/invites", conv::invite(&r, id).into()))
        }
        (Post, ["rooms", id, "read"]) => {
            Some(("POST /rooms/:id/read", conv::mark_read(&r, id).into()))
        }
        (Put, ["rooms", id, "notifications"]) => Some((
            "PUT /rooms/:id/notifications",
            conv::notifications(&r, id).into(),
        )),
        (Post, ["rooms", id, "members", user, action]) => Action::parse(action).map(|a| {
            (
                "POST /rooms/:id/members/:user_id/:action",
                conv::act(&r, id, user, a).into(),
            )
        }),
        (Put, ["rooms", id, "members", user, "role"]) => Some((
            "PUT /rooms/:id/members/:user_id/role",
            conv::set_role(&r, id, user).into(),
        )),
        (Post, ["dm"]) => Some(("POST /dm", conv::open_direct(&r).into())),
        (Get, ["me", "rooms"]) => Some(("GET /me/rooms", conv::my_rooms(&r).into())),
        (Get, ["me", "invites"]) => Some(("GET /me/invites", conv::my_invites(&r).into())),
        _ => None,
    };
    if let Some(routed) = routed {
        return routed;
    }
    if let Some(allow) = allowed(&segs) {
        return ("other", Routed::Now(ops::method_not_allowed(allow)));
    }
    let asset = (m == Get)
        .then(|| crate::http::web::asset(&head.path, ctx.cfg.http.web_app))
        .flatten();
    let resp = asset.unwrap_or_else(|| {
        Response::from_error(&ApiError::NotFound("not_found", "Cannot find this route"))
    });
    ("other", Routed::Now(resp))
}

/// The methods a known path allows (for 405), or `None` for an unknown path.
fn allowed(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        ["health"] | ["ready"] | ["metrics"] | ["openapi.json"] | ["asyncapi.json"] => "GET, HEAD",
        ["ws"] => "GET",
        ["auth", "register" | "login" | "refresh" | "logout"] => "POST",
        ["rooms"] => "GET, HEAD, POST",
        ["rooms", _] => "GET, HEAD, PATCH, DELETE",
        ["rooms", _, "join" | "leave" | "invites" | "read"] => "POST",
        ["rooms", _, "members"] => "GET, HEAD",
        ["rooms", _, "messages"] => "GET, HEAD, POST",
        ["rooms", _, "messages", _] => "PATCH, DELETE",
        ["rooms", _, "messages", _, "edits"] | ["rooms", _, "search"] => "GET, HEAD",
        ["rooms", _, "messages", _, "reactions", _] => "PUT, DELETE",
        ["me", "search"] => "GET, HEAD",
        ["rooms", _, "notifications"] => "PUT",
        [
            "rooms",
            _,
            "members",
            _,
            "kick" | "ban" | "unban" | "mute" | "unmute",
        ] => "POST",
        ["rooms", _, "members", _, "role"] => "PUT",
        ["dm"] => "POST",
        ["me", "rooms" | "invites"] => "GET, HEAD",
        _ => return None,
    })
}

/// A query parameter parsed as a number, `None` when absent or empty, `bad` when it is
/// not a number that passes `valid`.
pub fn number_param(
    head: &Head,
    name: &str,
    valid: impl Fn(i64) -> bool,
    bad: impl FnOnce() -> ApiError,
) -> Result<Option<i64>, ApiError> {
    match query_param(&head.query, name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if valid(n) => Ok(Some(n)),
            _ => Err(bad()),
        },
    }
}

/// Every (method, path) served, as written in the OpenAPI document (a test keeps both true).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/asyncapi.json"),
    ("GET", "/ws"),
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("GET", "/rooms"),
    ("POST", "/rooms"),
    ("GET", "/rooms/{id}"),
    ("POST", "/rooms/{id}/join"),
    ("POST", "/rooms/{id}/leave"),
    ("GET", "/rooms/{id}/members"),
    ("GET", "/rooms/{id}/messages"),
    ("POST", "/rooms/{id}/messages"),
    ("PATCH", "/rooms/{id}"),
    ("DELETE", "/rooms/{id}"),
    ("POST", "/rooms/{id}/invites"),
    ("POST", "/rooms/{id}/read"),
    ("PUT", "/rooms/{id}/notifications"),
    ("POST", "/rooms/{id}/members/{user_id}/kick"),
    ("POST", "/rooms/{id}/members/{user_id}/ban"),
    ("POST", "/rooms/{id}/members/{user_id}/unban"),
    ("POST", "/rooms/{id}/members/{user_id}/mute"),
    ("POST", "/rooms/{id}/members/{user_id}/unmute"),
    ("PUT", "/rooms/{id}/members/{user_id}/role"),
    ("POST", "/dm"),
    ("GET", "/me/rooms"),
    ("GET", "/me/invites"),
    ("PATCH", "/rooms/{id}/messages/{message_id}"),
    ("DELETE", "/rooms/{id}/messages/{message_id}"),
    ("GET", "/rooms/{id}/messages/{message_id}/edits"),
    ("PUT", "/rooms/{id}/messages/{message_id}/reactions/{emoji}"),
    (
        "DELETE",
        "/rooms/{id}/messages/{message_id}/reactions/{emoji}",
    ),
    ("GET", "/rooms/{id}/search"),
    ("GET", "/me/search"),
];

/// The OpenAPI description served at /openapi.json.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The AsyncAPI description of the WebSocket protocol served at /asyncapi.json.
pub const ASYNCAPI: &str = include_str!("asyncapi.json");
