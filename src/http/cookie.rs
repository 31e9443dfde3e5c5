//! The refresh cookie of browser clients (PROTOCOL.md 3.1): a client that sends
//! `X-Chatd-Refresh-Cookie: 1` to register, login or refresh gets its refresh token as an
//! HttpOnly cookie scoped to `/auth` instead of in the JSON body, so no script of the page
//! can read it; a refresh without a body token then reads it from the cookie.

use crate::base::config::Config;
use crate::http::parse::Head;

/// The cookie's name.
pub const NAME: &str = "chatd_refresh";

/// The opt-in request header (value `1`).
pub const HEADER: &str = "X-Chatd-Refresh-Cookie";

/// Longest cookie value taken (a refresh token is 64 hex digits).
const MAX_VALUE: usize = 256;

/// The refresh token of the request's `Cookie` header, if it holds a well-formed one.
/// Several cookies, spaces around them, quotes around the value and other cookies'
/// malformed pairs are allowed; a `chatd_refresh` value outside the cookie octets
/// (RFC 6265 4.1.1), empty or too long counts as absent.
pub fn token(head: &Head) -> Option<String> {
    parse(head.headers.cookie.as_deref()?)
}

fn parse(header: &str) -> Option<String> {
    header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == NAME)
        .find_map(|(_, value)| {
            let v = value.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            let octet = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\');
            (!v.is_empty() && v.len() <= MAX_VALUE && v.bytes().all(octet)).then(|| v.to_string())
        })
}

/// Whether the request opted in to the cookie.
pub fn wanted(head: &Head) -> bool {
    head.headers.refresh_cookie
}

/// The `Set-Cookie` value carrying `token`, living as long as the session's refresh token.
pub fn set(cfg: &Config, token: &str) -> String {
    attributes(cfg, token, cfg.auth.refresh_ttl_secs)
}

/// The `Set-Cookie` value that makes the browser forget the cookie.
pub fn clear(cfg: &Config) -> String {
    attributes(cfg, "", 0)
}

fn attributes(cfg: &Config, value: &str, max_age: u64) -> String {
    // Path=/auth: sent to /auth/refresh and /auth/logout only, never with the API's other
    // requests. SameSite=Strict: never sent by a request another site starts.
    let secure = if cfg.http.refresh_cookie_secure {
        "; Secure"
    } else {
        ""
    };
    format!("{NAME}={value}; HttpOnly{secure}; SameSite=Strict; Path=/auth; Max-Age={max_age}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_among_other_cookies() {
        let t = "ab".repeat(32);
        for header in [
            format!("chatd_refresh={t}"),
            format!("a=1; chatd_refresh={t}; b=2"),
            format!("a=1;chatd_refresh={t}"),
            format!("  chatd_refresh = {t} ;"),
            format!("chatd_refresh=\"{t}\""),
            format!("broken; =x; a==b; chatd_refresh={t}"),
            format!("chatd_refresh=; chatd_refresh={t}"),
        ] {
            assert_eq!(parse(&header).as_deref(), Some(t.as_str()), "{header}");
        }
    }

    #[test]
    fn malformed_values_are_absent() {
        for header in [
            "",
            ";;;",
            "chatd_refresh",
            "chatd_refresh=",
            "chatd_refresh=\"\"",
            "chatd_refresh=a b",
            "chatd_refresh=a\\b",
            "chatd_refresh=a,b",
            "chatd_refresh=\u{e9}t\u{e9}",
            "chatd_refresh=a\u{0}b",
            "Chatd_Refresh=abc",
            "xchatd_refresh=abc",
        ] {
            assert_eq!(parse(header), None, "{header:?}");
        }
        assert_eq!(parse(&format!("chatd_refresh={}", "a".repeat(257))), None);
    }

    #[test]
    fn attributes_are_exact() {
        let mut cfg = Config::default();
        cfg.auth.refresh_ttl_secs = 600;
        assert_eq!(
            set(&cfg, "tok"),
            "chatd_refresh=tok; HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age=600"
        );
        cfg.http.refresh_cookie_secure = false;
        assert_eq!(
            clear(&cfg),
            "chatd_refresh=; HttpOnly; SameSite=Strict; Path=/auth; Max-Age=0"
        );
    }
}
