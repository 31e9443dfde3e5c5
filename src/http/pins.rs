//! The pin routes: `PUT` / `DELETE /rooms/:id/pins/:message_id` and
//! `GET /rooms/:id/pins`, each a job running the use case of `chat::pins`.

use crate::base::error::{ApiError, MESSAGE_NOT_FOUND};
use crate::chat::pins;
use crate::http::routes::{Req, Routed};
use serde_json::json;

fn message_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| MESSAGE_NOT_FOUND)
}

/// `PUT /rooms/:id/pins/:message_id`: the pin (200 whether new or already there).
pub fn pin(r: &Req, id: &str, mid: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let target = message_id(mid)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        pins::pin(w, &who, room, target, ctx.cfg.messages.max_pins)
    })
}

/// `DELETE /rooms/:id/pins/:message_id`: `{success, unpinned}` (`unpinned` false when
/// the message was not pinned).
pub fn unpin(r: &Req, id: &str, mid: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let target = message_id(mid)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        let unpinned = pins::unpin(w, &who, room, target)?;
        Ok(json!({ "success": true, "unpinned": unpinned }))
    })
}

/// `GET /rooms/:id/pins`: `{pins: [...]}`, newest first.
pub fn list(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        let pins = pins::list(w, &who, room, ctx.cfg.messages.max_pins)?;
        Ok(json!({ "pins": pins }))
    })
}
