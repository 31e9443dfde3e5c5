//! The JSON API's handlers: each reads its request into the domain's types, runs the
//! domain operation on a worker (or hands a message to a writer), and answers JSON.

use crate::auth::accounts::{self, Login, Register, Signed};
use crate::base::config::Config;
use crate::base::error::{ApiError, check};
use crate::chat::rooms::{self, NewRoom};
use crate::http::body::Body;
use crate::http::cookie;
use crate::http::ops;
use crate::http::response::Response;
use crate::http::routes::{Req, Routed};
use serde_json::json;
use uuid::Uuid;

fn success() -> serde_json::Value {
    json!({ "success": true })
}

/// Register, login and refresh exist only while local accounts do.
fn local_accounts(r: &Req) -> Result<(), ApiError> {
    if r.ctx.cfg.auth.local_accounts {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "local_accounts_disabled",
            "Local accounts are disabled on this server: sign in with the product's identity provider",
        ))
    }
}

/// `POST /auth/register`
pub fn register(r: &Req) -> Result<Routed, ApiError> {
    local_accounts(r)?;
    ops::register_allowed(r.ctx, r.head, r.peer)?;
    let body = r.body.take();
    let to_cookie = cookie::wanted(r.head);
    r.job_answer(&r.ctx.authq, move |w, ctx| {
        let done = Body::parse(&body).and_then(|b| {
            let mut errs = Vec::new();
            let reg = Register {
                username: b.req_str("username", &mut errs),
                email: b.req_str("email", &mut errs),
                password: b.req_str("password", &mut errs),
            };
            errs.extend(reg.problems());
            check(errs)?;
            accounts::register(w, &ctx.auth, reg)
        });
        signed(&ctx.cfg, to_cookie, done)
    })
}

/// `POST /auth/login`
pub fn login(r: &Req) -> Result<Routed, ApiError> {
    local_accounts(r)?;
    let body = r.body.take();
    let email = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("email").and_then(|e| e.as_str()).map(str::to_string));
    ops::login_allowed(r.ctx, r.head, r.peer, email.as_deref())?;
    let to_cookie = cookie::wanted(r.head);
    r.job_answer(&r.ctx.authq, move |w, ctx| {
        let done = Body::parse(&body).and_then(|b| {
            let mut errs = Vec::new();
            let login = Login {
                email: b.req_str("email", &mut errs),
                password: b.req_str("password", &mut errs),
                device: b.opt_str("deviceInfo", &mut errs),
            };
            check(errs)?;
            accounts::login(w, &ctx.auth, login)
        });
        signed(&ctx.cfg, to_cookie, done)
    })
}

/// `POST /auth/refresh`
pub fn refresh(r: &Req) -> Result<Routed, ApiError> {
    local_accounts(r)?;
    let body = r.body.take();
    let to_cookie = cookie::wanted(r.head);
    let jar = cookie::token(r.head);
    r.job_answer(&r.ctx.db, move |w, ctx| {
        let (done, from_cookie) = match refresh_token(&body, jar, to_cookie) {
            Ok((token, from_cookie)) => (accounts::refresh(w, &ctx.auth, &token), from_cookie),
            Err(e) => (Err(e), false),
        };
        let resp = signed(&ctx.cfg, to_cookie, done);
        if from_cookie && resp.status == 401 {
            // A cookie that opens no session any more: the browser may stop sending it.
            resp.with_header("Set-Cookie", cookie::clear(&ctx.cfg))
        } else {
            resp
        }
    })
}

/// The refresh token to rotate, and whether it came from the cookie: the body's
/// `refreshToken` when present (the body flow, unchanged), else the refresh cookie, taken
/// only with the opt-in header: a request a page of another site makes can carry the
/// cookie (were SameSite not enough) but cannot set the header without a CORS preflight,
/// which does not allow it.
fn refresh_token(
    body: &[u8],
    jar: Option<String>,
    opted: bool,
) -> Result<(String, bool), ApiError> {
    let b = Body::parse(body)?;
    let mut errs = Vec::new();
    if let Some(token) = b.opt_str("refreshToken", &mut errs) {
        return Ok((token, false));
    }
    check(errs)?;
    match (jar, opted) {
        (Some(token), true) => Ok((token, true)),
        (Some(_), false) => Err(COOKIE_WITHOUT_HEADER),
        (None, true) => Err(NO_REFRESH_TOKEN),
        (None, false) => Err(ApiError::Validation(vec![
            "refreshToken should not be empty".into(),
        ])),
    }
}

const COOKIE_WITHOUT_HEADER: ApiError = ApiError::Unauthorized(
    "refresh_cookie_header_required",
    "A refresh by cookie needs the header X-Chatd-Refresh-Cookie: 1",
);
const NO_REFRESH_TOKEN: ApiError = ApiError::Unauthorized(
    "invalid_token",
    "No refresh token: none in the body and no valid refresh cookie",
);

/// The answer to register, login and refresh: the domain's value as it is, or for a
/// client that opted in to the cookie, its refresh token moved out of the body into
/// `Set-Cookie`, so that no script of the page ever sees it.
fn signed(cfg: &Config, to_cookie: bool, done: Result<Signed, ApiError>) -> Response {
    let signed = match done {
        Ok(s) => s,
        Err(e) => return Response::from_error(&e),
    };
    if !to_cookie {
        return Response::json(201, &signed);
    }
    let Ok(mut body) = serde_json::to_value(&signed) else {
        return Response::from_error(&ApiError::Internal);
    };
    if let Some(tokens) = body.get_mut("tokens").and_then(|t| t.as_object_mut()) {
        tokens.remove("refreshToken");
    }
    Response::json(201, &body).with_header("Set-Cookie", cookie::set(cfg, &signed.tokens.refresh))
}

/// `POST /auth/logout`
pub fn logout(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let body = r.body.take();
    let to_cookie = cookie::wanted(r.head);
    let jar = cookie::token(r.head).filter(|_| to_cookie);
    r.job_answer(&r.ctx.db, move |w, ctx| {
        let done = logout_session(&body)
            .and_then(|session| accounts::logout(w, &ctx.auth, &who, session, jar.as_deref()));
        match done {
            Err(e) => Response::from_error(&e),
            Ok(()) if to_cookie => {
                Response::json(201, &success()).with_header("Set-Cookie", cookie::clear(&ctx.cfg))
            }
            Ok(()) => Response::json(201, &success()),
        }
    })
}

/// The body's `sessionId`: the one session to end (all of the caller's when absent).
fn logout_session(body: &[u8]) -> Result<Option<Uuid>, ApiError> {
    let b = Body::parse(body)?;
    let mut errs = Vec::new();
    let session = b.opt_str("sessionId", &mut errs);
    check(errs)?;
    session
        .map(|s| {
            Uuid::parse_str(&s)
                .map_err(|_| ApiError::Validation(vec!["sessionId must be a UUID".into()]))
        })
        .transpose()
}

/// `GET /rooms`
pub fn list_rooms(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    r.job(&r.ctx.db, 200, move |w, _| rooms::list(w, &who))
}

/// `POST /rooms`
pub fn create_room(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    r.spend(&who)?;
    let body = r.body.take();
    r.job(&r.ctx.db, 201, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let new = NewRoom {
            name: b.req_str("name", &mut errs),
            description: b.opt_str("description", &mut errs),
            visibility: b.opt_str("visibility", &mut errs),
        };
        errs.extend(new.problems());
        check(errs)?;
        rooms::create(w, &who, new, ctx.cfg.limits.rooms_per_user_per_hour)
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
