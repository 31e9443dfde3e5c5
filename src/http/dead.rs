//! The webhook dead-letter routes of the server API: `GET /admin/webhooks/dead`,
//! `POST /admin/webhooks/dead/:id/retry` (an API key, checked by `http::admin`).

use crate::base::error::ApiError;
use crate::hooks::dead::{self, DEAD_NOT_FOUND};
use crate::http::routes::{Req, Routed, number_param};
use crate::pg::audit::Actor;
use serde_json::json;

/// `GET /admin/webhooks/dead?after=&limit=`
pub fn list(r: &Req, _: &[&str], _: Actor) -> Result<Routed, ApiError> {
    let bad = |what: &'static str| move || ApiError::Validation(vec![what.to_string()]);
    let after = number_param(
        r.head,
        "after",
        |n| n >= 0,
        bad("after must be a dead event id"),
    )?;
    let limit = number_param(
        r.head,
        "limit",
        |n| (1..=500).contains(&n),
        bad("limit must be 1..500"),
    )?;
    let (after, limit) = (after.unwrap_or(0), limit.unwrap_or(100));
    r.job(&r.ctx.db, 200, move |w, _| {
        let events = dead::list(w, after, limit)?;
        let next = (events.len() as i64 == limit).then(|| events.last().map(|e| e.id));
        Ok(json!({"events": events, "next_after": next.flatten()}))
    })
}

/// `POST /admin/webhooks/dead/:id/retry`
pub fn retry(r: &Req, rest: &[&str], _: Actor) -> Result<Routed, ApiError> {
    let id: i64 = rest[2].parse().map_err(|_| DEAD_NOT_FOUND)?;
    r.job(&r.ctx.db, 202, move |w, _| {
        dead::retry(w, id)?;
        Ok(json!({"retried": id}))
    })
}
