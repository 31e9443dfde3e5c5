//! Routing: each request is answered at once (cheap, no I/O) or becomes a job for a
//! worker whose answer comes back to the loop through [`ReplyTo`].

use crate::base::error::{ApiError, ROOM_NOT_FOUND};
use crate::base::model::Identity;
use crate::chat::moderation::Action;
use crate::http::admin;
use crate::http::api;
use crate::http::blocks;
use crate::http::caller::{self, Bearer};
use crate::http::context::{HttpCtx, ReplyTo};
use crate::http::conversations as conv;
use crate::http::file_links;
use crate::http::files;
use crate::http::intake::Intake;
use crate::http::messages as msgs;
use crate::http::ops;
use crate::http::parse::{Head, Method, query_param};
use crate::http::pins;
use crate::http::push;
use crate::http::reports;
use crate::http::response::Response;
use crate::http::upload;
use crate::http::users;
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
    /// An upload's body, streamed to the worker that takes it (`http/intake.rs`);
    /// `body` is then empty.
    pub intake: Cell<Option<Intake>>,
    /// The peer address.
    pub peer: IpAddr,
    /// Where a worker's answer goes.
    pub reply: &'a ReplyTo,
    /// The bearer token's verdict, reached once before routing.
    pub bearer: Bearer,
    /// Set when the route asked for a caller a worker must resolve first.
    pub defer: Cell<bool>,
}

impl Req<'_> {
    /// The caller, from `Authorization: Bearer`.
    pub fn caller(&self) -> Result<Identity, ApiError> {
        if matches!(self.bearer, Bearer::FirstUse) {
            self.defer.set(true);
        }
        self.bearer.identity()
    }

    /// Counts one write of `who` against the per-user event rate it shares with its
    /// sockets (`websocket.max_events_per_sec`): 429 with `Retry-After` beyond it.
    pub fn spend(&self, who: &Identity) -> Result<(), ApiError> {
        let max = self.ctx.cfg.websocket.max_events_per_sec;
        self.ctx
            .per_user
            .hit(who.user_id, max)
            .map_err(ApiError::RateLimited)
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
        self.job_answer(queue, move |w, ctx| match f(w, ctx) {
            Ok((status, v)) => Response::json(status, &v),
            Err(e) => Response::from_error(&e),
        })
    }

    /// Like [`Req::job`], with the whole answer built by `f` (for headers such as
    /// `Set-Cookie`).
    pub fn job_answer(
        &self,
        queue: &JobQueue,
        f: impl FnOnce(&mut Worker, &HttpCtx) -> Response + Send + 'static,
    ) -> Result<Routed, ApiError> {
        let (ctx, reply) = (self.ctx.clone(), self.reply.clone());
        let job: Job = Box::new(move |w| {
            let reply = reply.arm();
            reply.send(f(w, &ctx));
        });
        queue.submit(job)?;
        Ok(Routed::Pending)
    }
}

/// The route label used in metrics, how to serve the request, and whether a worker
/// took the upload's `intake` (streaming its body).
pub fn dispatch(
    ctx: &Arc<HttpCtx>,
    head: &Head,
    body: Vec<u8>,
    intake: Option<Intake>,
    peer: IpAddr,
    reply: &ReplyTo,
) -> (&'static str, Routed, bool) {
    let (bearer, first_use) = caller::verdict(ctx, head);
    // Kept only for a first use: its route runs again on a worker.
    let spare = first_use.as_ref().map(|_| body.clone());
    let offered = intake.is_some();
    let r = Req {
        ctx,
        head,
        body: Cell::new(body),
        intake: Cell::new(intake),
        peer,
        reply,
        bearer,
        defer: Cell::new(false),
    };
    let (label, routed) = route(&r);
    let left = r.intake.take();
    match (r.defer.get(), first_use, spare) {
        (true, Some(who), Some(body)) => {
            // The route runs again on the worker, with the upload's body if it has one.
            let routed = caller::first_use(ctx, head, body, left, peer, reply, who);
            (label, routed, offered)
        }
        _ => (label, routed, offered && left.is_none()),
    }
}

/// The route label and how to serve the request, for a request whose caller is settled.
pub fn route(r: &Req) -> (&'static str, Routed) {
    let (ctx, head) = (r.ctx, r.head);
    let segs: Vec<&str> = head.path.trim_matches('/').split('/').collect();
    if head.method == Method::Options {
        return ("OPTIONS", Routed::Now(ops::preflight(&ctx.cfg, head)));
    }
    // HEAD is served as GET (the loop drops the body), except for the upgrade.
    let m = match head.method {
        Method::Head => Method::Get,
        other => other,
    };
    // The token comes first (PROTOCOL §3): a route of the bearer API answers a missing or
    // refused token before it reads a path id, the query or the body, so what it says
    // never depends on input the caller was not allowed to send.
    // A signed file URL stands for its token (checked by its route).
    let signed = file_links::is_signed(&segs, head);
    if let (true, Bearer::Absent | Bearer::Refused(_)) = (needs_bearer(&segs) && !signed, &r.bearer)
    {
        let e = r.bearer.identity().err().unwrap_or(ApiError::Internal);
        return ("other", Routed::Now(Response::from_error(&e)));
    }
    use Method::{Delete, Get, Patch, Post, Put};
    let now = |resp: Response| Routed::Now(resp);
    let routed: Option<(&'static str, Routed)> = match (m, segs.as_slice()) {
        (Get, ["health"]) => Some((
            "GET /health",
            now(Response::json(200, &serde_json::json!({"status": "ok"}))),
        )),
        (Get, ["ready"]) => Some(("GET /ready", ops::ready(ctx))),
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
        (Get, ["ws"]) if head.method == Method::Get => Some(("GET /ws", ops::upgrade(r).into())),
        (Get, ["echo"]) if ctx.cfg.websocket.echo_endpoint => Some((
            "GET /echo",
            match crate::http::upgrade::check(head) {
                Ok(()) => Routed::UpgradeEcho,
                Err(resp) => Routed::Now(resp),
            },
        )),
        (Post, ["auth", "register"]) => Some(("POST /auth/register", api::register(r).into())),
        (Post, ["auth", "login"]) => Some(("POST /auth/login", api::login(r).into())),
        (Post, ["auth", "refresh"]) => Some(("POST /auth/refresh", api::refresh(r).into())),
        (Post, ["auth", "logout"]) => Some(("POST /auth/logout", api::logout(r).into())),
        (Get, ["rooms"]) => Some(("GET /rooms", api::list_rooms(r).into())),
        (Post, ["rooms"]) => Some(("POST /rooms", api::create_room(r).into())),
        (Get, ["rooms", id]) => Some(("GET /rooms/:id", api::get_room(r, id).into())),
        (Patch, ["rooms", id]) => Some(("PATCH /rooms/:id", conv::update(r, id).into())),
        (Delete, ["rooms", id]) => Some(("DELETE /rooms/:id", conv::delete(r, id).into())),
        (Post, ["rooms", id, "join"]) => {
            Some(("POST /rooms/:id/join", api::join_room(r, id).into()))
        }
        (Post, ["rooms", id, "leave"]) => {
            Some(("POST /rooms/:id/leave", api::leave_room(r, id).into()))
        }
        (Get, ["rooms", id, "members"]) => {
            Some(("GET /rooms/:id/members", api::members(r, id).into()))
        }
        (Get, ["rooms", id, "messages"]) => {
            Some(("GET /rooms/:id/messages", msgs::history(r, id).into()))
        }
        (Post, ["rooms", id, "messages"]) => {
            Some(("POST /rooms/:id/messages", msgs::post(r, id).into()))
        }
        (Patch, ["rooms", id, "messages", mid]) => Some((
            "PATCH /rooms/:id/messages/:message_id",
            msgs::edit(r, id, mid).into(),
        )),
        (Delete, ["rooms", id, "messages", mid]) => Some((
            "DELETE /rooms/:id/messages/:message_id",
            msgs::delete(r, id, mid).into(),
        )),
        (Get, ["rooms", id, "messages", mid, "edits"]) => Some((
            "GET /rooms/:id/messages/:message_id/edits",
            msgs::versions(r, id, mid).into(),
        )),
        (Put, ["rooms", id, "messages", mid, "reactions", emoji]) => Some((
            "PUT /rooms/:id/messages/:message_id/reactions/:emoji",
            msgs::reaction(r, id, mid, emoji, true).into(),
        )),
        (Delete, ["rooms", id, "messages", mid, "reactions", emoji]) => Some((
            "DELETE /rooms/:id/messages/:message_id/reactions/:emoji",
            msgs::reaction(r, id, mid, emoji, false).into(),
        )),
        (Post, ["rooms", id, "files"]) => {
            Some(("POST /rooms/:id/files", upload::upload(r, id).into()))
        }
        (Get, ["files", id]) => Some(("GET /files/:id", files::download(r, id).into())),
        (Get, ["files", id, "thumbnail"]) => Some((
            "GET /files/:id/thumbnail",
            file_links::thumbnail(r, id).into(),
        )),
        (Get, ["rooms", id, "files", file, "url"]) => Some((
            "GET /rooms/:id/files/:file_id/url",
            file_links::url(r, id, file).into(),
        )),
        (Get, ["rooms", id, "pins"]) => Some(("GET /rooms/:id/pins", pins::list(r, id).into())),
        (Put, ["rooms", id, "pins", mid]) => Some((
            "PUT /rooms/:id/pins/:message_id",
            pins::pin(r, id, mid).into(),
        )),
        (Delete, ["rooms", id, "pins", mid]) => Some((
            "DELETE /rooms/:id/pins/:message_id",
            pins::unpin(r, id, mid).into(),
        )),
        (Post, ["rooms", id, "messages", mid, "report"]) => Some((
            "POST /rooms/:id/messages/:message_id/report",
            reports::report(r, id, mid).into(),
        )),
        (Get, ["rooms", id, "reports"]) => {
            Some(("GET /rooms/:id/reports", reports::list(r, id).into()))
        }
        (Post, ["rooms", id, "reports", report, "resolve"]) => Some((
            "POST /rooms/:id/reports/:report_id/resolve",
            reports::resolve(r, id, report).into(),
        )),
        (Get, ["rooms", id, "search"]) => {
            Some(("GET /rooms/:id/search", msgs::search(r, Some(id)).into()))
        }
        (Get, ["me", "search"]) => Some(("GET /me/search", msgs::search(r, None).into())),
        (Post, ["rooms", id, "invites"]) => {
            Some(("POST /rooms/:id/invites", conv::invite(r, id).into()))
        }
        (Get, ["rooms", id, "invites"]) => {
            Some(("GET /rooms/:id/invites", conv::room_invites(r, id).into()))
        }
        (Delete, ["rooms", id, "invites", user]) => Some((
            "DELETE /rooms/:id/invites/:user_id",
            conv::revoke(r, id, user).into(),
        )),
        (Delete, ["me", "invites", id]) => {
            Some(("DELETE /me/invites/:room_id", conv::decline(r, id).into()))
        }
        (Post, ["rooms", id, "read"]) => {
            Some(("POST /rooms/:id/read", conv::mark_read(r, id).into()))
        }
        (Put, ["rooms", id, "notifications"]) => Some((
            "PUT /rooms/:id/notifications",
            conv::notifications(r, id).into(),
        )),
        (Post, ["rooms", id, "members", user, action]) => Action::parse(action).map(|a| {
            (
                "POST /rooms/:id/members/:user_id/:action",
                conv::act(r, id, user, a).into(),
            )
        }),
        (Put, ["rooms", id, "members", user, "role"]) => Some((
            "PUT /rooms/:id/members/:user_id/role",
            conv::set_role(r, id, user).into(),
        )),
        (Post, ["dm"]) => Some(("POST /dm", conv::open_direct(r).into())),
        (Get, ["me", "rooms"]) => Some(("GET /me/rooms", conv::my_rooms(r).into())),
        (Get, ["me", "invites"]) => Some(("GET /me/invites", conv::my_invites(r).into())),
        (Get, ["me", "mentions"]) => Some(("GET /me/mentions", conv::my_mentions(r).into())),
        (Post, ["me", "blocks"]) => Some(("POST /me/blocks", blocks::block(r).into())),
        (Get, ["me", "blocks"]) => Some(("GET /me/blocks", blocks::list(r).into())),
        (Delete, ["me", "blocks", user]) => Some((
            "DELETE /me/blocks/:user_id",
            blocks::unblock(r, user).into(),
        )),
        (Get, ["push", "vapid-public-key"]) => {
            Some(("GET /push/vapid-public-key", push::public_key(r).into()))
        }
        (Post, ["me", "push-subscriptions"]) => {
            Some(("POST /me/push-subscriptions", push::subscribe(r).into()))
        }
        (Delete, ["me", "push-subscriptions"]) => {
            Some(("DELETE /me/push-subscriptions", push::unsubscribe(r).into()))
        }
        (Get, ["me"]) => Some(("GET /me", users::me(r).into())),
        (Patch, ["me"]) => Some(("PATCH /me", users::update_me(r).into())),
        (Get, ["users"]) => Some(("GET /users", users::search(r).into())),
        (Get, ["users", id]) => Some(("GET /users/:id", users::profile(r, id).into())),
        (m, ["admin", rest @ ..]) => admin::route(r, m, rest),
        _ => None,
    };
    if let Some(routed) = routed {
        return routed;
    }
    if let Some(allow) = allowed(&segs) {
        return ("other", Routed::Now(ops::method_not_allowed(allow)));
    }
    let asset = (m == Get)
        .then(|| crate::http::web::asset(&head.path, &ctx.cfg.http))
        .flatten();
    let resp = asset.unwrap_or_else(|| {
        Response::from_error(&ApiError::NotFound("not_found", "Cannot find this route"))
    });
    ("other", Routed::Now(resp))
}

/// Whether a known path is one of the bearer API's: everything under `/rooms`, `/me`,
/// `/dm`, `/users` and `/files`, and `/auth/logout`.
fn needs_bearer(segs: &[&str]) -> bool {
    allowed(segs).is_some()
        && matches!(
            segs,
            ["rooms" | "me" | "dm" | "users" | "files", ..] | ["auth", "logout"]
        )
}

/// The methods a known path allows (for 405), or `None` for an unknown path.
fn allowed(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        ["health"] | ["ready"] | ["openapi.json"] | ["asyncapi.json"] => "GET, HEAD",
        ["ws"] => "GET",
        ["auth", "register" | "login" | "refresh" | "logout"] => "POST",
        ["rooms"] => "GET, HEAD, POST",
        ["rooms", _] => "GET, HEAD, PATCH, DELETE",
        ["rooms", _, "join" | "leave" | "read"] => "POST",
        ["rooms", _, "invites"] => "GET, HEAD, POST",
        ["rooms", _, "invites", _] | ["me", "invites", _] | ["me", "blocks", _] => "DELETE",
        ["me", "blocks"] => "GET, HEAD, POST",
        ["rooms", _, "members"] => "GET, HEAD",
        ["rooms", _, "messages"] => "GET, HEAD, POST",
        ["rooms", _, "messages", _] => "PATCH, DELETE",
        ["rooms", _, "messages", _, "edits"] | ["rooms", _, "search"] => "GET, HEAD",
        ["rooms", _, "messages", _, "reactions", _] => "PUT, DELETE",
        ["me", "search"] => "GET, HEAD",
        ["rooms", _, "files"] => "POST",
        ["files", _] | ["files", _, "thumbnail"] => "GET, HEAD",
        ["rooms", _, "files", _, "url"] => "GET, HEAD",
        ["rooms", _, "pins"] => "GET, HEAD",
        ["rooms", _, "pins", _] => "PUT, DELETE",
        ["rooms", _, "messages", _, "report"] | ["rooms", _, "reports", _, "resolve"] => "POST",
        ["rooms", _, "reports"] => "GET, HEAD",
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
        ["me", "rooms" | "invites" | "mentions"] => "GET, HEAD",
        ["me"] => "GET, HEAD, PATCH",
        ["me", "push-subscriptions"] => "POST, DELETE",
        ["push", "vapid-public-key"] => "GET, HEAD",
        ["users"] | ["users", _] => "GET, HEAD",
        ["admin", rest @ ..] => return admin::allowed(rest),
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
    ("GET", "/rooms/{id}/invites"),
    ("DELETE", "/rooms/{id}/invites/{user_id}"),
    ("DELETE", "/me/invites/{room_id}"),
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
    ("GET", "/me/mentions"),
    ("GET", "/me/invites"),
    ("POST", "/me/blocks"),
    ("GET", "/me/blocks"),
    ("DELETE", "/me/blocks/{user_id}"),
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
    ("POST", "/rooms/{id}/files"),
    ("GET", "/files/{id}"),
    ("GET", "/files/{id}/thumbnail"),
    ("GET", "/rooms/{id}/files/{file_id}/url"),
    ("GET", "/rooms/{id}/pins"),
    ("PUT", "/rooms/{id}/pins/{message_id}"),
    ("DELETE", "/rooms/{id}/pins/{message_id}"),
    ("POST", "/rooms/{id}/messages/{message_id}/report"),
    ("GET", "/rooms/{id}/reports"),
    ("POST", "/rooms/{id}/reports/{report_id}/resolve"),
    ("GET", "/me"),
    ("PATCH", "/me"),
    ("GET", "/push/vapid-public-key"),
    ("POST", "/me/push-subscriptions"),
    ("DELETE", "/me/push-subscriptions"),
    ("GET", "/users"),
    ("GET", "/users/{id}"),
    ("GET", "/admin/webhooks/dead"),
    ("POST", "/admin/webhooks/dead/{id}/retry"),
    ("GET", "/admin/audit"),
    ("POST", "/admin/users"),
    ("DELETE", "/admin/users/{id}"),
    ("GET", "/admin/users/{id}/export"),
    ("GET", "/admin/rooms/{id}/export"),
    ("POST", "/admin/users/{id}/tokens"),
    ("POST", "/admin/users/{id}/deactivate"),
    ("POST", "/admin/users/{id}/reactivate"),
    ("POST", "/admin/rooms"),
    ("POST", "/admin/rooms/{id}/members"),
    ("DELETE", "/admin/rooms/{id}/members/{user_id}"),
    ("POST", "/admin/rooms/{id}/messages"),
    ("GET", "/admin/reports"),
    ("POST", "/admin/reports/{report_id}/resolve"),
];

/// The OpenAPI description served at /openapi.json.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The AsyncAPI description of the WebSocket protocol served at /asyncapi.json.
pub const ASYNCAPI: &str = include_str!("asyncapi.json");
