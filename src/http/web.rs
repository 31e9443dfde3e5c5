//! The files the binary serves besides the API: the client library (`/chatd.js`, its
//! TypeScript declarations and package.json, always) and the web app (`/` and its
//! modules, unless `http.web_app = false`). Embedded at build time from `src/web/`.

use crate::base::config::HttpConfig;
use crate::http::response::Response;

/// Every embedded file: (URL path, bytes).
const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web.rs"));

/// Served even when the web app is turned off: what client authors need.
const LIBRARY: &[&str] = &["/chatd.js", "/chatd.d.ts", "/package.json"];

/// The app's Content-Security-Policy: its own scripts, styles and connections only (a
/// page's own origin covers its WebSocket too), plus the origins of `connect` (an API
/// served elsewhere, `http.connect_origins`) with their WebSocket form; no inline
/// script, no plugin, no framing. A script injected into the page cannot send what it
/// reads to another host. Images may also be `blob:` URLs: uploaded pictures are
/// fetched with the bearer token (an `<img>` cannot send it) and shown from one.
pub fn csp(connect: &[String]) -> String {
    let mut sources = String::from("'self'");
    for origin in connect {
        let socket = origin
            .strip_prefix("https://")
            .map(|h| format!("wss://{h}"))
            .or_else(|| origin.strip_prefix("http://").map(|h| format!("ws://{h}")));
        sources.push(' ');
        sources.push_str(origin);
        if let Some(s) = socket {
            sources.push(' ');
            sources.push_str(&s);
        }
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src {sources}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("ts") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The embedded file at `path` (`/` is the app's index), if it is served.
pub fn asset(path: &str, cfg: &HttpConfig) -> Option<Response> {
    let path = if path == "/" { "/index.html" } else { path };
    if !cfg.web_app && !LIBRARY.contains(&path) {
        return None;
    }
    let (_, bytes) = FILES.iter().find(|(p, _)| *p == path)?;
    let ctype = content_type(path);
    let mut resp = Response::raw(200, ctype, bytes.to_vec())
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Cache-Control", "no-cache");
    if ctype.starts_with("text/html") {
        resp = resp
            .with_header("Content-Security-Policy", csp(&cfg.connect_origins))
            .with_header("X-Frame-Options", "DENY")
            .with_header("Referrer-Policy", "no-referrer");
    }
    Some(resp)
}

/// The URL paths of every embedded file.
pub fn paths() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(p, _)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_switch() {
        let on = HttpConfig::default();
        let off = HttpConfig {
            web_app: false,
            ..HttpConfig::default()
        };
        assert_eq!(content_type("/a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert!(asset("/nope.js", &on).is_none());
        assert!(asset("/../Cargo.toml", &on).is_none());
        if paths().any(|p| p == "/index.html") {
            let r = asset("/", &on).unwrap();
            assert!(
                r.headers
                    .iter()
                    .any(|(n, _)| *n == "Content-Security-Policy")
            );
            assert!(asset("/", &off).is_none());
        }
    }

    #[test]
    fn images_may_come_from_blobs_scripts_may_not() {
        let policy = csp(&[]);
        assert!(policy.contains("img-src 'self' data: blob:;"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
    }

    #[test]
    fn the_service_worker_is_served_at_the_root_as_a_script() {
        let on = HttpConfig::default();
        // At the root: a worker's scope is at most its own path, and the app is all of `/`.
        let r = asset("/sw.js", &on).expect("src/web/sw.js is embedded");
        assert_eq!(r.content_type, "text/javascript; charset=utf-8");
        let off = HttpConfig {
            web_app: false,
            ..HttpConfig::default()
        };
        assert!(asset("/sw.js", &off).is_none());
    }

    #[test]
    fn connections_go_to_the_own_origin_and_configured_ones() {
        assert!(csp(&[]).contains("connect-src 'self';"));
        let api = csp(&["https://api.example".into(), "http://10.0.0.1:4000".into()]);
        assert!(
            api.contains(
                "connect-src 'self' https://api.example wss://api.example \
                 http://10.0.0.1:4000 ws://10.0.0.1:4000;"
            ),
            "{api}"
        );
    }
}
