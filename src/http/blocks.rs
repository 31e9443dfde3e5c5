//! The block routes: `POST /me/blocks {user_id}`, `DELETE /me/blocks/:user_id` and
//! `GET /me/blocks?cursor=&limit=`, each a job running `chat::blocks`.

use crate::base::error::{ApiError, USER_NOT_FOUND, check};
use crate::chat::blocks;
use crate::http::body::Body;
use crate::http::messages::page_limit;
use crate::http::parse::query_param;
use crate::http::routes::{Req, Routed};
use serde_json::json;
use uuid::Uuid;

/// `POST /me/blocks {user_id}`: 201 the block, 200 when it already stood.
pub fn block(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let body = r.body.take();
    r.job_status(&r.ctx.db, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let user = b.req_uuid("user_id", &mut errs);
        check(errs)?;
        let max = ctx.cfg.limits.max_blocks_per_user;
        let (block, fresh) = blocks::block(w, &who, user, max)?;
        Ok((if fresh { 201 } else { 200 }, block))
    })
}

/// `DELETE /me/blocks/:user_id`: `{success, unblocked}` (none is fine).
pub fn unblock(r: &Req, user: &str) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let user = Uuid::parse_str(user).map_err(|_| USER_NOT_FOUND)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        let unblocked = blocks::unblock(w, &who, user)?;
        Ok(json!({ "success": true, "unblocked": unblocked }))
    })
}

/// `GET /me/blocks?cursor=&limit=`: a page `{blocks, next_cursor}`, newest first.
pub fn list(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let limit = page_limit(r)?;
    let cursor = query_param(&r.head.query, "cursor").filter(|c| !c.is_empty());
    r.job(&r.ctx.db, 200, move |w, _| {
        blocks::list(w, &who, cursor.as_deref(), limit)
    })
}
