//! The profile and directory routes: `GET`/`PATCH /me`, `GET /users/:id`, `GET /users?q=`.

use crate::auth::users::{self, ProfileChange};
use crate::base::error::{ApiError, USER_NOT_FOUND, check};
use crate::http::body::Body;
use crate::http::parse::query_param;
use crate::http::routes::{Req, Routed, number_param};
use serde_json::Value;
use uuid::Uuid;

/// `GET /me`
pub fn me(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    r.job(&r.ctx.db, 200, move |w, _| users::me(w, &who))
}

/// A profile field of a `PATCH /me` body: absent (kept), null (cleared) or a string.
fn field(b: &Body, name: &str, errs: &mut Vec<String>) -> Option<Option<String>> {
    match b.get(name) {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => {
            errs.push(format!("{name} must be a string or null"));
            None
        }
    }
}

/// `PATCH /me {display_name?, avatar_url?, status_text?, status_emoji?}`
pub fn update_me(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let change = ProfileChange {
        display_name: field(&b, "display_name", &mut errs),
        avatar_url: field(&b, "avatar_url", &mut errs),
        status_text: field(&b, "status_text", &mut errs),
        status_emoji: field(&b, "status_emoji", &mut errs),
    };
    check(errs)?;
    let change = change.checked()?;
    r.job(&r.ctx.db, 200, move |w, _| {
        users::update_me(w, &who, change)
    })
}

/// `GET /users/:id`
pub fn profile(r: &Req, id: &str) -> Result<Routed, ApiError> {
    r.caller()?;
    let id = Uuid::parse_str(id).map_err(|_| USER_NOT_FOUND)?;
    r.job(&r.ctx.db, 200, move |w, _| users::profile(w, id))
}

/// `GET /users?q=&limit=`
pub fn search(r: &Req) -> Result<Routed, ApiError> {
    r.caller()?;
    let q = query_param(&r.head.query, "q").unwrap_or_default();
    let limit = number_param(
        r.head,
        "limit",
        |n| (1..=50).contains(&n),
        || ApiError::Validation(vec!["limit must be an integer from 1 to 50".into()]),
    )?
    .unwrap_or(20);
    r.job(&r.ctx.db, 200, move |w, _| users::search(w, &q, limit))
}
