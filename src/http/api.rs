//! The JSON API's handlers: each reads its request into the domain's types, runs the
//! domain operation on a worker (or hands a message to a writer), and answers JSON.

use crate::auth::accounts::{self, Login, Register};
use crate::base::error::{ApiError, check};
use crate::chat::rooms::{self, NewRoom};
use crate::http::body::Body;
use crate::http::ops;
use crate::http::routes::{Req, Routed};
use serde_json::json;
use uuid::Uuid;

fn success() -> serde_json::Value {
    json!({ "success": true })
}

/// `POST /auth/register`
pub fn register(r: &Req) -> Result<Routed, ApiError> {
    ops::register_allowed(r.ctx, r.head, r.peer)?;
    let body = r.body.take();
    r.job(&r.ctx.authq, 201, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let reg = Register {
            username: b.req_str("username", &mut errs),
            email: b.req_str("email", &mut errs),
            password: b.req_str("password", &mut errs),
        };
        errs.extend(reg.problems());
        check(errs)?;
        accounts::register(w, &ctx.auth, reg)
    })
}

/// `POST /auth/login`
pub fn login(r: &Req) -> Result<Routed, ApiError> {
    let body = r.body.take();
    let email = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("email").and_then(|e| e.as_str()).map(str::to_string));
    ops::login_allowed(r.ctx, r.head, r.peer, email.as_deref())?;
    r.job(&r.ctx.authq, 201, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let login = Login {
            email: b.req_str("email", &mut errs),
            password: b.req_str("password", &mut errs),
            device: b.opt_str("deviceInfo", &mut errs),
        };
        check(errs)?;
        accounts::login(w, &ctx.auth, login)
    })
}

/// `POST /auth/refresh`
pub fn refresh(r: &Req) -> Result<Routed, ApiError> {
    let body = r.body.take();
    r.job(&r.ctx.db, 201, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let token = b.req_str("refreshToken", &mut errs);
        check(errs)?;
        accounts::refresh(w, &ctx.auth, &token)
    })
}

/// `POST /auth/logout`
pub fn logout(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let body = r.body.take();
    r.job(&r.ctx.db, 201, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let session = b.opt_str("sessionId", &mut errs);
        check(errs)?;
        let session = match session {
            Some(s) => Some(
                Uuid::parse_str(&s)
                    .map_err(|_| ApiError::Validation(vec!["sessionId must be a UUID".into()]))?,
            ),
            None => None,
        };
        accounts::logout(w, &ctx.auth, &who, session)?;
        Ok(success())
    })
}

/// `GET /rooms`
pub fn list_rooms(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    r.job(&r.ctx.db, 200, move |w, _| rooms::list(w, &who))
}

/// `POST /rooms`
pub fn create_room(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let body = r.body.take();
    r.job(&r.ctx.db, 201, move |w, _| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let new = NewRoom {
            name: b.req_str("name", &mut errs),
            description: b.opt_str("description", &mut errs),
            visibility: b.opt_str("visibility", &mut errs),
        };
        errs.extend(new.problems());
        check(errs)?;
        rooms::create(w, &who, new)
    })
}

/// `GET /rooms/:id`
pub fn get_room(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.job(&r.ctx.db, 200, move |w, _| rooms::get(w, &who, room))
}

/// `POST /rooms/:id/join`
pub fn join_room(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.job(&r.ctx.db, 201, move |w, _| {
        rooms::join(w, &who, room)?;
        Ok(success())
    })
}

/// `POST /rooms/:id/leave`
pub fn leave_room(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.job(&r.ctx.db, 201, move |w, _| {
        rooms::leave(w, &who, room)?;
        Ok(success())
    })
}

/// `GET /rooms/:id/members`
pub fn members(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.job(&r.ctx.db, 200, move |w, _| rooms::members(w, &who, room))
}
