//! Answers given on the spot: health, readiness, CORS preflight, 405, and the
//! checks in front of an upgrade or a login.

use crate::auth::external::{Caller, INVALID_TOKEN};
use crate::base::config::Config;
use crate::base::error::ApiError;
use crate::http::context::HttpCtx;
use crate::http::parse::{Head, query_param};
use crate::http::response::Response;
use crate::http::routes::{Req, Routed};
use std::net::IpAddr;

/// 405 with the methods the path allows.
pub fn method_not_allowed(allow: &'static str) -> Response {
    Response::error(405, "method_not_allowed", "Method not allowed").with_header("Allow", allow)
}

/// The `Access-Control-Allow-Origin` value for a request from `origin`: `*` when
/// `http.cors_origins` allows any, the origin itself when it is listed, else none. The
/// opaque origin `null` (sandboxed frames, `file:` pages) is never allowed by name.
pub fn cors_origin<'a>(cfg: &Config, origin: Option<&'a str>) -> Option<&'a str> {
    let origin = origin?;
    let allowed = &cfg.http.cors_origins;
    if allowed.iter().any(|o| o == "*") {
        return Some("*");
    }
    (origin != "null" && allowed.iter().any(|o| o.eq_ignore_ascii_case(origin))).then_some(origin)
}

/// CORS preflight: the methods and the two request headers the API uses, for an
/// allowed origin (the loop adds the origin header).
pub fn preflight(cfg: &Config, head: &Head) -> Response {
    let r = Response::raw(204, "text/plain", Vec::new());
    if cors_origin(cfg, head.headers.origin.as_deref()).is_none() {
        return r;
    }
    r.with_header(
        "Access-Control-Allow-Methods",
        "GET, HEAD, POST, PUT, PATCH, DELETE",
    )
    .with_header(
        "Access-Control-Allow-Headers",
        "authorization, content-type",
    )
    .with_header("Access-Control-Max-Age", "600")
}

/// `GET /ready`.
pub fn ready(ctx: &HttpCtx) -> Routed {
    Routed::Now(if ctx.status.ready() {
        Response::json(200, &serde_json::json!({"status": "ready"}))
    } else {
        Response::json(503, &serde_json::json!({"status": "not ready"}))
            .with_header("Retry-After", "1")
    })
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The upgrade's token: the bearer token, or (browsers cannot set headers there) the
/// `token` query parameter, which wins when both are present.
fn upgrade_token(head: &Head) -> Result<String, ApiError> {
    query_param(&head.query, "token")
        .filter(|t| !t.is_empty())
        .or_else(|| {
            head.headers
                .authorization
                .as_deref()
                .and_then(bearer)
                .map(str::to_string)
        })
        .ok_or(ApiError::Unauthorized("unauthorized", "Missing token"))
}

/// `GET /ws`: a valid token (chatd's own or the identity provider's) and a valid
/// upgrade request. The first upgrade of a provider's user this node has not met waits
/// for a worker to resolve the user, then completes like the others.
pub fn upgrade(r: &Req) -> Result<Routed, ApiError> {
    let (ctx, head) = (r.ctx, r.head);
    let token = upgrade_token(head)?;
    let caller = ctx.auth.caller(&token).ok_or(INVALID_TOKEN)?;
    if let Err(resp) = crate::http::upgrade::check(head) {
        return Ok(Routed::Now(resp));
    }
    match caller {
        Caller::Known(who) => Ok(Routed::Upgrade(who)),
        Caller::Unresolved(who) => Ok(crate::http::caller::first_upgrade(ctx, head, r.reply, who)),
    }
}

/// The client's address: the peer, or the last X-Forwarded-For entry (the address our
/// proxy saw) when the proxy is trusted.
pub fn client_ip(cfg: &Config, head: &Head, peer: IpAddr) -> IpAddr {
    if cfg.limits.trust_forwarded_for
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

/// Login attempts are limited per address, per (account, address) and per account,
/// before any password is checked. The pair limit is the tight one: a guesser from
/// elsewhere does not lock the owner out.
pub fn login_allowed(
    ctx: &HttpCtx,
    head: &Head,
    peer: IpAddr,
    email: Option<&str>,
) -> Result<(), ApiError> {
    let l = &ctx.cfg.limits;
    let ip = client_ip(&ctx.cfg, head, peer);
    ctx.logins
        .hit(&format!("ip:{ip}"), l.login_per_ip_per_min)
        .map_err(ApiError::RateLimited)?;
    if let Some(email) = email {
        let email = email.trim().to_lowercase();
        ctx.logins
            .hit(
                &format!("pair:{ip}:{email}"),
                l.login_per_account_ip_per_min,
            )
            .map_err(ApiError::RateLimited)?;
        ctx.logins
            .hit(&format!("acct:{email}"), l.login_per_account_per_min)
            .map_err(ApiError::RateLimited)?;
    }
    Ok(())
}

/// Registrations are limited per address (each costs a password hash).
pub fn register_allowed(ctx: &HttpCtx, head: &Head, peer: IpAddr) -> Result<(), ApiError> {
    let ip = client_ip(&ctx.cfg, head, peer);
    ctx.logins
        .hit(&format!("reg:{ip}"), ctx.cfg.limits.register_per_ip_per_min)
        .map_err(ApiError::RateLimited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins() {
        let mut cfg = Config::default();
        assert_eq!(cors_origin(&cfg, Some("http://a.example")), Some("*"));
        assert_eq!(cors_origin(&cfg, None), None);
        cfg.http.cors_origins = vec!["https://app.example".into()];
        assert_eq!(
            cors_origin(&cfg, Some("https://app.example")),
            Some("https://app.example")
        );
        assert_eq!(cors_origin(&cfg, Some("https://evil.example")), None);
        assert_eq!(cors_origin(&cfg, Some("null")), None);
        cfg.http.cors_origins = vec!["null".into()];
        assert_eq!(cors_origin(&cfg, Some("null")), None);
        cfg.http.cors_origins.clear();
        assert_eq!(cors_origin(&cfg, Some("https://app.example")), None);
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
