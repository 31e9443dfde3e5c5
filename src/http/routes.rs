//! Routing: each request is answered at once (cheap, no I/O) or becomes a job for a
//! worker whose answer comes back to the loop through its channel.

use crate::auth::handlers as auth;
use crate::auth::tokens::{Identity, bearer};
use crate::chat::messages::{self, Message};
use crate::chat::pages::{self, PageReq};
use crate::chat::rooms;
use crate::error::{ApiError, ROOM_NOT_FOUND};
use crate::http::body::Body;
use crate::http::parse::{Head, Method, query_param};
use crate::http::response::Response;
use crate::pg::pool::{Job, JobQueue, Worker};
use crate::pg::writer::WriteJob;
use crate::shared::{LoopMsg, Shared};
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

/// Sends a worker's answer back to the loop that owns the connection. Dropped without
/// answering (a panicking job), it answers 500 so the client is never left hanging.
pub struct Replier {
    shared: Arc<Shared>,
    loop_idx: usize,
    key: usize,
    req: u64,
    sent: bool,
}

impl Replier {
    /// A replier for request `req` on connection `key` of loop `loop_idx`.
    pub fn new(shared: Arc<Shared>, loop_idx: usize, key: usize, req: u64) -> Replier {
        Replier {
            shared,
            loop_idx,
            key,
            req,
            sent: false,
        }
    }

    /// Delivers the answer.
    pub fn send(mut self, resp: Response) {
        self.deliver(resp);
    }

    fn deliver(&mut self, resp: Response) {
        self.sent = true;
        if let Some(l) = self.shared.loops.get(self.loop_idx) {
            l.send(LoopMsg::Http {
                key: self.key,
                req: self.req,
                resp,
            });
        }
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        if !self.sent {
            self.deliver(ApiError::Internal.response());
        }
    }
}

/// The client's address: the peer, or the last X-Forwarded-For entry (the address our
/// proxy saw) when the proxy is trusted.
pub fn client_ip(shared: &Shared, head: &Head, peer: IpAddr) -> IpAddr {
    if shared.cfg.limits.trust_forwarded_for
        && let Some(ip) = head
            .headers
            .forwarded_for
            .as_deref()
            .and_then(|s| s.parse().ok())
    {
        return ip;
    }
    peer
}

/// Login attempts are limited per address and per account, before any hashing.
fn login_allowed(shared: &Shared, head: &Head, peer: IpAddr, body: &[u8]) -> Result<(), ApiError> {
    let l = &shared.cfg.limits;
    let ip = client_ip(shared, head, peer);
    shared
        .logins
        .hit(&format!("ip:{ip}"), l.login_per_ip_per_min)
        .map_err(ApiError::RateLimited)?;
    let email = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("email")
                .and_then(|e| e.as_str())
                .map(str::to_lowercase)
        });
    if let Some(email) = email {
        shared
            .logins
            .hit(&format!("acct:{email}"), l.login_per_account_per_min)
            .map_err(ApiError::RateLimited)?;
    }
    Ok(())
}

/// The route label used in metrics, and how to serve the request.
pub fn dispatch(
    shared: &Arc<Shared>,
    head: &Head,
    body: Vec<u8>,
    peer: IpAddr,
    reply: Replier,
) -> (&'static str, Routed) {
    let segs: Vec<&str> = head.path.trim_matches('/').split('/').collect();
    let m = head.method;
    if m == Method::Options {
        return ("OPTIONS", Routed::Now(preflight(head)));
    }
    let get = matches!(m, Method::Get | Method::Head);
    let post = m == Method::Post;
    macro_rules! allow {
        ($ok:expr, $label:expr, $allow:expr, $body:expr) => {
            if $ok {
                ($label, $body)
            } else {
                ($label, Routed::Now(method_not_allowed($allow)))
            }
        };
    }
    match segs.as_slice() {
        ["health"] => allow!(
            get,
            "GET /health",
            "GET, HEAD",
            Routed::Now(Response::json(200, &serde_json::json!({"status": "ok"})))
        ),
        ["ready"] => allow!(get, "GET /ready", "GET, HEAD", Routed::Now(ready(shared))),
        ["metrics"] => allow!(
            get,
            "GET /metrics",
            "GET, HEAD",
            Routed::Now(metrics(shared))
        ),
        ["openapi.json"] => allow!(
            get,
            "GET /openapi.json",
            "GET, HEAD",
            Routed::Now(Response::raw(
                200,
                "application/json",
                OPENAPI.as_bytes().to_vec()
            ))
        ),
        ["ws"] => allow!(m == Method::Get, "GET /ws", "GET", upgrade(shared, head)),
        ["echo"] if shared.cfg.websocket.echo_endpoint => (
            "GET /echo",
            match crate::ws::handshake::check(head) {
                Ok(()) => Routed::UpgradeEcho,
                Err(resp) => Routed::Now(resp),
            },
        ),
        ["auth", "register"] => allow!(
            post,
            "POST /auth/register",
            "POST",
            job(&shared.auth, shared, reply, move |w, s| auth::register(
                w, s, &body
            ))
        ),
        ["auth", "login"] => allow!(
            post,
            "POST /auth/login",
            "POST",
            match login_allowed(shared, head, peer, &body) {
                Ok(()) => job(&shared.auth, shared, reply, move |w, s| auth::login(
                    w, s, &body
                )),
                Err(e) => Routed::Now(e.response()),
            }
        ),
        ["auth", "refresh"] => allow!(
            post,
            "POST /auth/refresh",
            "POST",
            job(&shared.db, shared, reply, move |w, s| auth::refresh(
                w, s, &body
            ))
        ),
        ["auth", "logout"] => allow!(
            post,
            "POST /auth/logout",
            "POST",
            authed(shared, head, |who| job(
                &shared.db,
                shared,
                reply,
                move |w, s| auth::logout(w, s, &who, &body)
            ))
        ),
        ["rooms"] if get => (
            "GET /rooms",
            authed(shared, head, |_| {
                job(&shared.db, shared, reply, |w, _| rooms::list(w))
            }),
        ),
        ["rooms"] => allow!(
            post,
            "POST /rooms",
            "GET, HEAD, POST",
            authed(shared, head, |who| job(
                &shared.db,
                shared,
                reply,
                move |w, _| rooms::create(w, &who, &body)
            ))
        ),
        ["rooms", id] => allow!(
            get,
            "GET /rooms/:id",
            "GET, HEAD",
            room_job(shared, head, id, reply, |w, _, room| rooms::get(w, room))
        ),
        ["rooms", id, "join"] => allow!(
            post,
            "POST /rooms/:id/join",
            "POST",
            room_job(shared, head, id, reply, rooms::join)
        ),
        ["rooms", id, "leave"] => allow!(
            post,
            "POST /rooms/:id/leave",
            "POST",
            room_job(shared, head, id, reply, rooms::leave)
        ),
        ["rooms", id, "members"] => allow!(
            get,
            "GET /rooms/:id/members",
            "GET, HEAD",
            room_job(shared, head, id, reply, rooms::members)
        ),
        ["rooms", id, "messages"] if get => (
            "GET /rooms/:id/messages",
            room_route(shared, head, id, |who, room| {
                history(shared, head, who, room, reply)
            }),
        ),
        ["rooms", id, "messages"] => allow!(
            post,
            "POST /rooms/:id/messages",
            "GET, HEAD, POST",
            room_route(shared, head, id, |who, room| post_message(
                shared, who, room, &body, reply
            ))
        ),
        _ => (
            "other",
            Routed::Now(ApiError::NotFound("not_found", "Cannot find this route").response()),
        ),
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    Response::error(405, "method_not_allowed", "Method not allowed").with_header("Allow", allow)
}

/// CORS preflight, answered the permissive way clients of this API expect.
fn preflight(head: &Head) -> Response {
    let mut r = Response::raw(204, "text/plain", Vec::new())
        .with_header(
            "Access-Control-Allow-Methods",
            "GET,HEAD,PUT,PATCH,POST,DELETE",
        )
        .with_header("Access-Control-Max-Age", "600");
    if let Some(h) = &head.headers.ac_request_headers {
        r = r.with_header("Access-Control-Allow-Headers", h.clone());
    }
    r
}

fn ready(shared: &Shared) -> Response {
    if shared.ready() {
        Response::json(200, &serde_json::json!({"status": "ready"}))
    } else {
        Response::json(503, &serde_json::json!({"status": "not ready"}))
            .with_header("Retry-After", "1")
    }
}

fn metrics(shared: &Shared) -> Response {
    let state = shared.pool.state();
    let mut queues = vec![
        (shared.db.name().to_string(), shared.db.len()),
        (shared.auth.name().to_string(), shared.auth.len()),
    ];
    for (i, n) in shared.writers.queue_lengths().into_iter().enumerate() {
        queues.push((format!("writer-{i}"), n));
    }
    for (i, l) in shared.loops.iter().enumerate() {
        queues.push((format!("loop-{i}"), l.len()));
    }
    let snap = crate::metrics::Snapshot {
        pool_connections: state.connections,
        pool_idle: state.idle_connections,
        queues,
        loops: shared
            .loop_stats
            .iter()
            .map(|s| s.read().map(|v| *v).unwrap_or_default())
            .collect(),
        listener_up: shared
            .listener_up
            .load(std::sync::atomic::Ordering::Relaxed),
        history_cache_bytes: shared.history.bytes(),
    };
    Response::raw(
        200,
        "text/plain; version=0.0.4",
        shared.metrics.render(&snap).into_bytes(),
    )
}

/// The caller's identity from `Authorization: Bearer`.
fn identity(shared: &Shared, head: &Head) -> Result<Identity, ApiError> {
    let token = head
        .headers
        .authorization
        .as_deref()
        .and_then(bearer)
        .ok_or(ApiError::Unauthorized(
            "unauthorized",
            "Missing bearer token",
        ))?;
    shared.authenticate(token).ok_or(ApiError::Unauthorized(
        "invalid_token",
        "Invalid or expired token",
    ))
}

fn authed(shared: &Shared, head: &Head, f: impl FnOnce(Identity) -> Routed) -> Routed {
    match identity(shared, head) {
        Ok(who) => f(who),
        Err(e) => Routed::Now(e.response()),
    }
}

fn room_route(
    shared: &Shared,
    head: &Head,
    id: &str,
    f: impl FnOnce(Identity, Uuid) -> Routed,
) -> Routed {
    authed(shared, head, |who| match Uuid::parse_str(id) {
        Ok(room) => f(who, room),
        Err(_) => Routed::Now(ROOM_NOT_FOUND.response()),
    })
}

/// A room route answered by a query worker: `f` gets the caller and the room id.
fn room_job(
    shared: &Arc<Shared>,
    head: &Head,
    id: &str,
    reply: Replier,
    f: impl FnOnce(&mut Worker, &Identity, Uuid) -> Result<Response, ApiError> + Send + 'static,
) -> Routed {
    room_route(shared, head, id, |who, room| {
        job(&shared.db, shared, reply, move |w, _| f(w, &who, room))
    })
}

/// Queues `f` on `queue`; its answer (or error) goes back through `reply`.
fn job(
    queue: &JobQueue,
    shared: &Arc<Shared>,
    reply: Replier,
    f: impl FnOnce(&mut Worker, &Shared) -> Result<Response, ApiError> + Send + 'static,
) -> Routed {
    let s = shared.clone();
    let job: Job = Box::new(move |w| {
        let resp = f(w, &s).unwrap_or_else(|e| e.response());
        reply.send(resp);
    });
    match queue.submit(job) {
        Ok(()) => Routed::Pending,
        Err(e) => Routed::Now(e.response()),
    }
}

fn history(shared: &Arc<Shared>, head: &Head, who: Identity, room: Uuid, reply: Replier) -> Routed {
    let cursor = match query_param(&head.query, "cursor") {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) => match c.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Routed::Now(
                    ApiError::BadRequest(
                        "invalid_cursor",
                        "cursor must be a positive integer".into(),
                    )
                    .response(),
                );
            }
        },
    };
    let limit = match query_param(&head.query, "limit") {
        None => 50,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Routed::Now(
                    ApiError::Validation(vec!["limit must be an integer from 1 to 100".into()])
                        .response(),
                );
            }
        },
    };
    pages::submit(
        shared,
        PageReq {
            user: who.user_id,
            room,
            cursor,
            limit,
            reply: Box::new(move |resp| reply.send(resp)),
        },
    );
    Routed::Pending
}

fn post_message(
    shared: &Arc<Shared>,
    who: Identity,
    room: Uuid,
    body: &[u8],
    reply: Replier,
) -> Routed {
    let content = match parse_content(body) {
        Ok(c) => c,
        Err(e) => return Routed::Now(e.response()),
    };
    let job = WriteJob {
        room_id: room,
        user_id: who.user_id,
        username: who.username,
        content,
        client_msg_id: None,
        reply: Box::new(move |res: Result<Arc<Message>, ApiError>| match res {
            Ok(m) => reply.send(Response::json(201, &*m)),
            Err(e) => reply.send(e.response()),
        }),
    };
    match shared.writers.submit(job) {
        Ok(()) => Routed::Pending,
        // The job comes back and drops; its replier's late 500 carries a request id the
        // loop no longer waits for, so only this 503 is sent.
        Err(_) => Routed::Now(ApiError::Unavailable.response()),
    }
}

fn parse_content(body: &[u8]) -> Result<String, ApiError> {
    let body = Body::parse(body)?;
    let mut errs = Vec::new();
    let content = body.req_str("content", &mut errs);
    crate::http::body::finish(errs)?;
    messages::check_content(&content)?;
    Ok(content)
}

fn upgrade(shared: &Shared, head: &Head) -> Routed {
    let token = query_param(&head.query, "token")
        .filter(|t| !t.is_empty())
        .or_else(|| {
            head.headers
                .authorization
                .as_deref()
                .and_then(bearer)
                .map(str::to_string)
        });
    let Some(token) = token else {
        return Routed::Now(ApiError::Unauthorized("unauthorized", "Missing token").response());
    };
    let Some(who) = shared.authenticate(&token) else {
        return Routed::Now(
            ApiError::Unauthorized("invalid_token", "Invalid or expired token").response(),
        );
    };
    if let Err(e) = crate::ws::handshake::check(head) {
        return Routed::Now(e);
    }
    Routed::Upgrade(who)
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
