//! Web Push subscriptions: a user's browsers registered with `POST /me/push-subscriptions`
//! (the `PushSubscription` a browser's `pushManager.subscribe` gives), removed with
//! `DELETE` or when the push service says one is gone (404/410).

use super::webpush::{AUTH_LEN, POINT_LEN};
use crate::base::error::{ApiError, invalid};
use crate::base::model::Identity;
use crate::pg::db_error;
use crate::pg::pool::Worker;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Longest endpoint URL taken.
const MAX_ENDPOINT: usize = 2048;

/// A subscription as the client sends it.
pub struct NewSubscription {
    /// The push service URL for this browser.
    pub endpoint: String,
    /// `keys.p256dh`, base64url.
    pub p256dh: String,
    /// `keys.auth`, base64url.
    pub auth: String,
}

/// What the subscription rules depend on.
#[derive(Clone, Copy)]
pub struct Rules {
    /// Accept http and private addresses.
    pub allow_private: bool,
    /// Most subscriptions per user.
    pub max_per_user: u32,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim().trim_end_matches('=')).ok()
}

/// Whether an address is one a client must not make the server call.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_documentation()
                || v.octets()[0] == 0
                || (v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some_and(|m| private(IpAddr::V4(m)))
        }
    }
}

/// Where an endpoint points: its host (a name or a literal address) and port.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// The host as written (without the brackets of an IPv6 literal).
    pub host: String,
    /// The port (443 for https, 80 for http when none is written).
    pub port: u16,
}

/// Why an endpoint's host gives no address to send to.
#[derive(Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// The name does not resolve now (perhaps later: the push is retried).
    NotFound,
    /// It resolves to a private, loopback or otherwise refused address (the
    /// subscription is removed).
    Refused,
}

/// Checks an endpoint without I/O (it runs on a database worker when subscribing): an
/// https URL (http too when private endpoints are allowed) naming a host, no
/// credentials, a literal address only if public (unless allowed). Names are resolved
/// and checked by the sender at each push ([`resolve`]).
pub fn check_endpoint(endpoint: &str, allow_private: bool) -> Result<Target, ApiError> {
    let bad = |why: &str| ApiError::Validation(vec![format!("endpoint {why}")]);
    if endpoint.len() > MAX_ENDPOINT
        || endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("must be a URL of at most 2048 characters"));
    }
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| bad("must be a URL"))?;
    let port = match scheme {
        "https" => 443,
        "http" if allow_private => 80,
        _ => return Err(bad("must be https")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("must name a host (and no credentials)"));
    }
    let (host, port_text) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("has a bad host"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(bad("must name a host (and no credentials)"));
    }
    let port = match port_text {
        Some(p) => p.parse::<u16>().map_err(|_| bad("has a bad port"))?,
        None => port,
    };
    let target = Target {
        host: host.to_string(),
        port,
    };
    if allow_private {
        return Ok(target);
    }
    let lower = host.to_ascii_lowercase();
    let local = lower == "localhost" || lower.ends_with(".localhost");
    if local || host.parse::<IpAddr>().is_ok_and(private) {
        return Err(bad("must not be a private or loopback address"));
    }
    Ok(target)
}

/// The addresses to send to for `t`: the literal one, or the name resolved (blocking:
/// only the push sender threads call it, and they connect to these addresses alone),
/// every one public unless private endpoints are allowed.
pub fn resolve(t: &Target, allow_private: bool) -> Result<Vec<SocketAddr>, Unreachable> {
    let addrs: Vec<SocketAddr> = match t.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, t.port)],
        Err(_) => (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|_| Unreachable::NotFound)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Unreachable::NotFound);
    }
    if !allow_private && addrs.iter().any(|a| private(a.ip())) {
        return Err(Unreachable::Refused);
    }
    Ok(addrs)
}

/// Records a subscription of the caller (201), or refreshes its keys if the endpoint
/// is already one of the caller's. Refused past the per-user limit.
pub fn subscribe(
    w: &mut Worker,
    who: &Identity,
    s: NewSubscription,
    rules: Rules,
) -> Result<serde_json::Value, ApiError> {
    let mut errs = Vec::new();
    let p256dh = b64(&s.p256dh).unwrap_or_default();
    if p256dh.len() != POINT_LEN
        || p256dh[0] != 4
        || p256::PublicKey::from_sec1_bytes(&p256dh).is_err()
    {
        errs.push("keys.p256dh must be an uncompressed P-256 point (65 bytes, base64url)".into());
    }
    let auth = b64(&s.auth).unwrap_or_default();
    if auth.len() != AUTH_LEN {
        errs.push("keys.auth must be 16 bytes (base64url)".into());
    }
    crate::base::error::check(errs)?;
    // Syntax and literal addresses only: a name is resolved and checked by the sender
    // at each push, never here on a database worker.
    check_endpoint(&s.endpoint, rules.allow_private)?;
    let c = w.client()?;
    let mut tx = c.transaction().map_err(|e| db_error(&e))?;
    // The user's row, locked: two subscribes at once cannot both pass the limit.
    tx.execute(
        "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
        &[&who.user_id],
    )
    .map_err(|e| db_error(&e))?;
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM push_subscriptions WHERE user_id = $1 AND endpoint <> $2",
            &[&who.user_id, &s.endpoint],
        )
        .map_err(|e| db_error(&e))?
        .get(0);
    if count >= i64::from(rules.max_per_user) {
        return Err(ApiError::Conflict(
            "too_many_subscriptions",
            "Too many push subscriptions: remove one first",
        ));
    }
    let row = tx
        .query_one(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, endpoint) DO UPDATE SET p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth
             RETURNING created_at",
            &[&who.user_id, &s.endpoint, &p256dh, &auth],
        )
        .map_err(|e| db_error(&e))?;
    tx.commit().map_err(|e| db_error(&e))?;
    let created: chrono::DateTime<chrono::Utc> = row.get(0);
    Ok(serde_json::json!({
        "endpoint": s.endpoint,
        "created_at": crate::base::model::iso(created),
    }))
}

/// Removes the caller's subscription with this endpoint; whether there was one.
pub fn unsubscribe(w: &mut Worker, who: &Identity, endpoint: &str) -> Result<bool, ApiError> {
    if endpoint.is_empty() || endpoint.contains('\0') {
        return Err(invalid("endpoint is required (a URL)"));
    }
    let n = w
        .client()?
        .execute(
            "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2",
            &[&who.user_id, &endpoint],
        )
        .map_err(|e| db_error(&e))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_public_https() {
        assert!(check_endpoint("https://93.184.215.14/push/1", false).is_ok());
        assert!(check_endpoint("http://93.184.215.14/push/1", false).is_err());
        assert!(check_endpoint("https://127.0.0.1:8443/p", false).is_err());
        assert!(check_endpoint("https://10.1.2.3/p", false).is_err());
        assert!(check_endpoint("https://[::1]/p", false).is_err());
        assert!(check_endpoint("https://[::ffff:192.168.1.1]/p", false).is_err());
        assert!(check_endpoint("https://localhost/p", false).is_err());
        assert!(check_endpoint("https://user@93.184.215.14/p", false).is_err());
        assert!(check_endpoint("ftp://93.184.215.14/p", false).is_err());
        assert!(check_endpoint("http://127.0.0.1:9000/p", true).is_ok());
        // A name is not resolved here (no I/O on a database worker).
        assert_eq!(
            check_endpoint("https://push.example.invalid:8443/p", false).ok(),
            Some(Target {
                host: "push.example.invalid".into(),
                port: 8443
            })
        );
    }

    #[test]
    fn names_are_resolved_and_checked_by_the_sender() {
        let t = |host: &str| Target {
            host: host.into(),
            port: 443,
        };
        assert_eq!(resolve(&t("localhost"), false), Err(Unreachable::Refused));
        assert_eq!(resolve(&t("127.0.0.1"), false), Err(Unreachable::Refused));
        assert_eq!(
            resolve(&t("localhost"), true).map(|a| a.iter().all(|a| a.ip().is_loopback())),
            Ok(true)
        );
        assert_eq!(
            resolve(&t("93.184.215.14"), false),
            Ok(vec!["93.184.215.14:443".parse().unwrap()])
        );
    }
}
