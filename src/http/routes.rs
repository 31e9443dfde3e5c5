//! Routing: each request is answered at once (cheap, no I/O) or becomes a job for a
//! worker whose answer comes back to the loop through [`ReplyTo`].

use crate::base::error::{ApiError, ROOM_NOT_FOUND};
use crate::base::model::Identity;
use crate::http::api;
use crate::http::context::{HttpCtx, ReplyTo};
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
        let (ctx, reply) = (self.ctx.clone(), self.reply.clone());
        let job: Job = Box::new(move |w| {
            let reply = reply.arm();
            let resp = match f(w, &ctx) {
                Ok(v) => Response::json(status, &v),
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
    let m = head.method;
    if m == Method::Options {
        return ("OPTIONS", Routed::Now(ops::preflight(&ctx.cfg, head)));
    }
    let get = matches!(m, Method::Get | Method::Head);
    let post = m == Method::Post;
    // The embedded web app and client library (src/web); no API path is among them.
    if get && let Some(resp) = crate::http::web::asset(&head.path, ctx.cfg.http.web_app) {
        return ("GET /<web file>", Routed::Now(resp));
    }
    // (label, allowed methods, whether the method is one of them, handler)
    let (label, allow, ok, handler): (&str, &str, bool, &dyn Fn() -> Routed) = match segs.as_slice()
    {
        ["health"] => ("GET /health", "GET, HEAD", get, &|| {
            Routed::Now(Response::json(200, &serde_json::json!({"status": "ok"})))
        }),
        ["ready"] => ("GET /ready", "GET, HEAD", get, &|| ops::ready(ctx)),
        ["metrics"] => ("GET /metrics", "GET, HEAD", get, &|| ops::metrics(ctx)),
        ["openapi.json"] => ("GET /openapi.json", "GET, HEAD", get, &|| {
            Routed::Now(Response::raw(
                200,
                "application/json",
                OPENAPI.as_bytes().to_vec(),
            ))
        }),
        ["ws"] => ("GET /ws", "GET", m == Method::Get, &|| {
            ops::upgrade(ctx, head).into()
        }),
        ["echo"] if ctx.cfg.websocket.echo_endpoint => {
            (
                "GET /echo",
                "GET",
                true,
                &|| match crate::http::upgrade::check(head) {
                    Ok(()) => Routed::UpgradeEcho,
                    Err(resp) => Routed::Now(resp),
                },
            )
        }
        ["auth", "register"] => ("POST /auth/register", "POST", post, &|| {
            api::register(&r).into()
        }),
        ["auth", "login"] => ("POST /auth/login", "POST", post, &|| api::login(&r).into()),
        ["auth", "refresh"] => ("POST /auth/refresh", "POST", post, &|| {
            api::refresh(&r).into()
        }),
        ["auth", "logout"] => ("POST /auth/logout", "POST", post, &|| {
            api::logout(&r).into()
        }),
        ["rooms"] if get => ("GET /rooms", "GET, HEAD, POST", true, &|| {
            api::list_rooms(&r).into()
        }),
        ["rooms"] => ("POST /rooms", "GET, HEAD, POST", post, &|| {
            api::create_room(&r).into()
        }),
        ["rooms", id] => ("GET /rooms/:id", "GET, HEAD", get, &|| {
            api::get_room(&r, id).into()
        }),
        ["rooms", id, "join"] => ("POST /rooms/:id/join", "POST", post, &|| {
            api::join_room(&r, id).into()
        }),
        ["rooms", id, "leave"] => ("POST /rooms/:id/leave", "POST", post, &|| {
            api::leave_room(&r, id).into()
        }),
        ["rooms", id, "members"] => ("GET /rooms/:id/members", "GET, HEAD", get, &|| {
            api::members(&r, id).into()
        }),
        ["rooms", id, "messages"] if get => {
            ("GET /rooms/:id/messages", "GET, HEAD, POST", true, &|| {
                api::history(&r, id).into()
            })
        }
        ["rooms", id, "messages"] => ("POST /rooms/:id/messages", "GET, HEAD, POST", post, &|| {
            api::post_message(&r, id).into()
        }),
        _ => ("other", "", true, &|| {
            Routed::Now(Response::from_error(&ApiError::NotFound(
                "not_found",
                "Cannot find this route",
            )))
        }),
    };
    if !ok {
        return (label, Routed::Now(ops::method_not_allowed(allow)));
    }
    (label, handler())
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
];

/// The OpenAPI description served at /openapi.json.
pub const OPENAPI: &str = include_str!("openapi.json");
