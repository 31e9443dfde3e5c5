//! Who is calling: the bearer token's verdict, reached once per request before routing
//! (on the loop, without I/O), and the first request of an external user this node has
//! not met, which a worker resolves before its route runs.
//!
//! A route asks [`crate::http::routes::Req::caller`] as it always did. When the verdict
//! is "first use", that call fails and marks the request; [`first_use`] then queues one
//! job that finds or creates the user (`auth::external::resolve`) and runs the same
//! route again on the worker with the caller known. The route never knows the
//! difference; its own job (or writer, or batched check) follows as usual. Later
//! requests of that user find it in memory and never take this path.

use crate::auth::external::{Caller, INVALID_TOKEN, Unresolved, resolve};
use crate::base::error::ApiError;
use crate::base::model::Identity;
use crate::http::context::{HttpCtx, ReplyTo};
use crate::http::intake::Intake;
use crate::http::ops::bearer;
use crate::http::parse::Head;
use crate::http::response::Response;
use crate::http::routes::{Req, Routed, route};
use crate::pg::pool::Job;
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What the `Authorization` header says about the caller.
#[derive(Debug)]
pub enum Bearer {
    /// No bearer token.
    Absent,
    /// A token refused (its answer).
    Refused(ApiError),
    /// A caller known without I/O.
    Known(Identity),
    /// A valid external token whose user a worker must resolve first.
    FirstUse,
}

impl Bearer {
    /// The caller, or the answer to a request without one.
    pub fn identity(&self) -> Result<Identity, ApiError> {
        match self {
            Bearer::Absent => Err(ApiError::Unauthorized(
                "unauthorized",
                "Missing bearer token",
            )),
            Bearer::Refused(e) => Err(e.clone()),
            Bearer::Known(id) => Ok(id.clone()),
            // Never answered: the request goes to a worker instead (see `first_use`).
            Bearer::FirstUse => Err(ApiError::Unavailable),
        }
    }
}

/// The verdict on the request's bearer token, with the unresolved caller of a first use.
pub fn verdict(ctx: &HttpCtx, head: &Head) -> (Bearer, Option<Unresolved>) {
    let Some(token) = head.headers.authorization.as_deref().and_then(bearer) else {
        return (Bearer::Absent, None);
    };
    match ctx.auth.caller(token) {
        None => (Bearer::Refused(INVALID_TOKEN), None),
        Some(Caller::Known(id)) => (Bearer::Known(id), None),
        Some(Caller::Unresolved(u)) => (Bearer::FirstUse, Some(u)),
    }
}

/// Queues the first WebSocket upgrade of an external caller: resolve its user, then the
/// loop answers 101 (or the refusal) on the connection that waits.
pub fn first_upgrade(ctx: &HttpCtx, head: &Head, reply: &ReplyTo, who: Unresolved) -> Routed {
    let (auth, head, reply) = (ctx.auth.clone(), head.clone(), reply.clone());
    let job: Job = Box::new(move |w| {
        let reply = reply.arm();
        match resolve(w, &auth, who) {
            Ok(id) => reply.upgrade(id, head),
            Err(e) => reply.send(Response::from_error(&e)),
        }
    });
    match ctx.db.submit(job) {
        Ok(()) => Routed::Pending,
        Err(e) => Routed::Now(Response::from_error(&e)),
    }
}

/// Queues the first request of an external caller: resolve its user, then route the
/// request again on the worker with the caller known.
pub fn first_use(
    ctx: &Arc<HttpCtx>,
    head: &Head,
    body: Vec<u8>,
    intake: Option<Intake>,
    peer: IpAddr,
    reply: &ReplyTo,
    who: Unresolved,
) -> Routed {
    let (ctx2, head, reply) = (ctx.clone(), head.clone(), reply.clone());
    let job: Job = Box::new(move |w| {
        let resolved =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| resolve(w, &ctx2.auth, who)));
        let id = match resolved {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => return reply.arm().send(Response::from_error(&e)),
            Err(_) => {
                w.metrics().job_panics.fetch_add(1, Ordering::Relaxed);
                log::error!("resolving an external caller panicked");
                return reply.arm().send(Response::from_error(&ApiError::Internal));
            }
        };
        let r = Req {
            ctx: &ctx2,
            head: &head,
            body: Cell::new(body),
            intake: Cell::new(intake),
            peer,
            reply: &reply,
            bearer: Bearer::Known(id),
            defer: Cell::new(false),
        };
        match route(&r).1 {
            Routed::Now(resp) => reply.clone().arm().send(resp),
            Routed::Pending => {}
            // Upgrades never take this path (they resolve their caller in `first_upgrade`).
            Routed::Upgrade(_) | Routed::UpgradeEcho => reply
                .clone()
                .arm()
                .send(Response::from_error(&ApiError::Internal)),
        }
    });
    match ctx.db.submit(job) {
        Ok(()) => Routed::Pending,
        Err(e) => Routed::Now(Response::from_error(&e)),
    }
}
