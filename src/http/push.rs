//! The Web Push routes: `GET /push/vapid-public-key`, `POST /me/push-subscriptions` and
//! `DELETE /me/push-subscriptions?endpoint=`, the last two jobs running
//! `hooks::subscriptions`.

use crate::base::error::{ApiError, check};
use crate::hooks::subscriptions::{self, NewSubscription, Rules};
use crate::http::body::Body;
use crate::http::parse::query_param;
use crate::http::response::Response;
use crate::http::routes::{Req, Routed};
use serde_json::json;

/// Web Push is off on this server (production without a VAPID key).
const PUSH_DISABLED: ApiError = ApiError::NotFound("push_disabled", "Web Push is not enabled");

/// `GET /push/vapid-public-key`: `{key}`, the `applicationServerKey` for browsers.
pub fn public_key(r: &Req) -> Result<Routed, ApiError> {
    let key = r.ctx.push_key.as_deref().ok_or(PUSH_DISABLED)?;
    Ok(Routed::Now(Response::json(200, &json!({ "key": key }))))
}

/// `POST /me/push-subscriptions {endpoint, keys: {p256dh, auth}}`: 201 the subscription.
pub fn subscribe(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    if r.ctx.push_key.is_none() {
        return Err(PUSH_DISABLED);
    }
    let body = r.body.take();
    r.job(&r.ctx.db, 201, move |w, ctx| {
        let b = Body::parse(&body)?;
        let mut errs = Vec::new();
        let endpoint = b.req_str("endpoint", &mut errs);
        let keys = b.get("keys");
        let key = |name: &str| keys.and_then(|k| k.get(name)).and_then(|v| v.as_str());
        let (p256dh, auth) = (key("p256dh"), key("auth"));
        if p256dh.is_none() || auth.is_none() {
            errs.push("keys must be {p256dh, auth} (base64url strings)".into());
        }
        check(errs)?;
        let s = NewSubscription {
            endpoint,
            p256dh: p256dh.unwrap_or_default().to_string(),
            auth: auth.unwrap_or_default().to_string(),
        };
        let rules = Rules {
            allow_private: ctx.cfg.push.allow_private_endpoints,
            max_per_user: ctx.cfg.push.max_subscriptions_per_user,
        };
        subscriptions::subscribe(w, &who, s, rules)
    })
}

/// `DELETE /me/push-subscriptions?endpoint=`: 204, whether or not there was one.
pub fn unsubscribe(r: &Req) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let endpoint = query_param(&r.head.query, "endpoint").unwrap_or_default();
    r.job_answer(&r.ctx.db, move |w, _| {
        match subscriptions::unsubscribe(w, &who, &endpoint) {
            Ok(_) => Response::raw(204, "text/plain", Vec::new()),
            Err(e) => Response::from_error(&e),
        }
    })
}
