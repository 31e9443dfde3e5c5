//! Answers given on the spot: health, readiness, metrics, CORS preflight, 405, and the
//! checks in front of an upgrade or a login.

use crate::base::config::Config;
use crate::base::error::ApiError;
use crate::base::model::Identity;
use crate::http::context::HttpCtx;
use crate::http::parse::{Head, query_param};
use crate::http::response::Response;
use crate::http::routes::Routed;
use std::net::IpAddr;

/// 405 with the methods the path allows.
pub fn method_not_allowed(allow: &'static str) -> Response {
    Response::error(405, "method_not_allowed", "Method not allowed").with_header("Allow", allow)
}

/// CORS preflight, answered the permissive way clients of this API expect.
pub fn preflight(_cfg: &Config, head: &Head) -> Response {
    let mut r = Response::raw(204, "text/plain", Vec::new())
        .with_header(
            "Access-Control-Allow-Methods",
            "GET,HEAD,PUT,PATCH,POST,DELETE",
        )
        .with_header("Access-Control-Max-Age", "600");
    if let Some(h) = &head.headers.ac_request_headers {
        r = r.with_header("Access-Control-Allow-Headers", h.clone());
    }
    r
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

/// `GET /metrics`.
pub fn metrics(ctx: &HttpCtx) -> Routed {
    Routed::Now(Response::raw(
        200,
        "text/plain; version=0.0.4",
        ctx.metrics.render(&ctx.status.snapshot()).into_bytes(),
    ))
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The caller: the bearer token, or (WebSocket upgrades only, browsers cannot set
/// headers there) the `token` query parameter.
pub fn authenticate(ctx: &HttpCtx, head: &Head, query_too: bool) -> Result<Identity, ApiError> {
    let from_query = query_too
        .then(|| query_param(&head.query, "token"))
        .flatten()
        .filter(|t| !t.is_empty());
    let token = from_query.or_else(|| {
        head.headers
            .authorization
            .as_deref()
            .and_then(bearer)
            .map(str::to_string)
    });
    let Some(token) = token else {
        let what = if query_too {
            "Missing token"
        } else {
            "Missing bearer token"
        };
        return Err(ApiError::Unauthorized("unauthorized", what));
    };
    ctx.auth.authenticate(&token).ok_or(ApiError::Unauthorized(
        "invalid_token",
        "Invalid or expired token",
    ))
}

/// `GET /ws`: a valid token and a valid upgrade request.
pub fn upgrade(ctx: &HttpCtx, head: &Head) -> Result<Routed, ApiError> {
    let who = authenticate(ctx, head, true)?;
    if let Err(resp) = crate::http::upgrade::check(head) {
        return Ok(Routed::Now(resp));
    }
    Ok(Routed::Upgrade(who))
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

/// Login attempts are limited per address and per account, before any hashing.
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
        ctx.logins
            .hit(
                &format!("acct:{}", email.to_lowercase()),
                l.login_per_account_per_min,
            )
            .map_err(ApiError::RateLimited)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
