//! The report routes: `POST /rooms/:id/messages/:message_id/report`,
//! `GET /rooms/:id/reports?status=open|all` and
//! `POST /rooms/:id/reports/:report_id/resolve`, each a job running `chat::reports`;
//! and the server API's `GET /admin/reports` and `POST /admin/reports/:report_id/resolve`
//! (routed by `http/admin.rs` once the API key is checked).

use crate::base::error::{ApiError, MESSAGE_NOT_FOUND, check};
use crate::chat::messages::Rules;
use crate::chat::reports::{self, REASONS, Resolution, Scope, check_note};
use crate::http::body::Body;
use crate::http::messages::page_limit;
use crate::http::parse::query_param;
use crate::http::routes::{Req, Routed};
use crate::pg::audit::Actor;
use serde_json::json;
use uuid::Uuid;

/// `POST /rooms/:id/messages/:message_id/report {reason, note?}`: 201 `{id, status}`.
pub fn report(r: &Req, id: &str, mid: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let target: i64 = mid.parse().map_err(|_| MESSAGE_NOT_FOUND)?;
    let b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let reason = b.req_str("reason", &mut errs);
    let note = b.opt_str("note", &mut errs);
    if errs.is_empty() && !REASONS.contains(&reason.as_str()) {
        errs.push("reason must be spam, abuse or other".into());
    }
    if let Err(e) = check_note(&note) {
        errs.push(e);
    }
    check(errs)?;
    r.job(&r.ctx.db, 201, move |w, _| {
        let id = reports::report(w, &who, room, target, &reason, note)?;
        Ok(json!({ "id": id, "status": "open" }))
    })
}

/// `GET /rooms/:id/reports?status=open|all` (open by default): `{reports}`.
pub fn list(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let open = open_only(r)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        Ok(json!({ "reports": reports::list(w, &who, room, open)? }))
    })
}

/// `POST /rooms/:id/reports/:report_id/resolve {action, note?}`: the resolved report.
pub fn resolve(r: &Req, id: &str, report: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    // An id that is no uuid finds no report, once the room has been checked.
    let report = Uuid::parse_str(report).ok();
    let (action, note) = resolution(r)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        let rules = Rules::from_config(&ctx.cfg.messages);
        reports::resolve(w, &Scope::Room(who, room), report, action, note, rules)
    })
}

/// The body of a resolution: `{action, note?}`.
fn resolution(r: &Req) -> Result<(Resolution, Option<String>), ApiError> {
    let b = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let action = b.req_str("action", &mut errs);
    let note = b.opt_str("note", &mut errs);
    let action = Resolution::parse(&action);
    if errs.is_empty() && action.is_none() {
        errs.push("action must be dismiss, delete_message, mute, kick or ban".into());
    }
    if let Err(e) = check_note(&note) {
        errs.push(e);
    }
    check(errs)?;
    Ok((action.ok_or(ApiError::Internal)?, note))
}

/// `status=open|all` (open by default).
fn open_only(r: &Req) -> Result<bool, ApiError> {
    match query_param(&r.head.query, "status").as_deref() {
        None | Some("") | Some("open") => Ok(true),
        Some("all") => Ok(false),
        Some(_) => Err(ApiError::Validation(vec![
            "status must be open or all".into(),
        ])),
    }
}

/// `GET /admin/reports?status=open|all&cursor=&limit=` (API key): every room's reports,
/// oldest first, `{reports, next_cursor}`.
pub fn admin_list(r: &Req, _: &[&str], _: Actor) -> Result<Routed, ApiError> {
    let open = open_only(r)?;
    let limit = page_limit(r)?;
    let cursor = query_param(&r.head.query, "cursor").filter(|c| !c.is_empty());
    r.job(&r.ctx.db, 200, move |w, _| {
        reports::list_all(w, open, cursor.as_deref(), limit)
    })
}

/// `POST /admin/reports/:report_id/resolve {action, note?}` (API key): the resolved
/// report; the action done as the key.
pub fn admin_resolve(r: &Req, rest: &[&str], key: Actor) -> Result<Routed, ApiError> {
    let report = Uuid::parse_str(rest[1]).ok();
    let (action, note) = resolution(r)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        let rules = Rules::from_config(&ctx.cfg.messages);
        reports::resolve(w, &Scope::Server(key), report, action, note, rules)
    })
}
