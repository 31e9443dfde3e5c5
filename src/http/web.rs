//! The files the binary serves besides the API: the client library (`/chatd.js`, its
//! TypeScript declarations and package.json, always) and the web app (`/` and its
//! modules, unless `http.web_app = false`). Embedded at build time from `src/web/`.

use crate::http::response::Response;

/// Every embedded file: (URL path, bytes).
const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web.rs"));

/// Served even when the web app is turned off: what client authors need.
const LIBRARY: &[&str] = &["/chatd.js", "/chatd.d.ts", "/package.json"];

/// The app's Content-Security-Policy: its own scripts, styles and sockets only; no
/// inline script, no plugin, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

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
pub fn asset(path: &str, app: bool) -> Option<Response> {
    let path = if path == "/" { "/index.html" } else { path };
    if !app && !LIBRARY.contains(&path) {
        return None;
    }
    let (_, bytes) = FILES.iter().find(|(p, _)| *p == path)?;
    let ctype = content_type(path);
    let mut resp = Response::raw(200, ctype, bytes.to_vec())
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Cache-Control", "no-cache");
    if ctype.starts_with("text/html") {
        resp = resp
            .with_header("Content-Security-Policy", CSP)
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
        assert_eq!(content_type("/a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert!(asset("/nope.js", true).is_none());
        assert!(asset("/../Cargo.toml", true).is_none());
        if paths().any(|p| p == "/index.html") {
            let r = asset("/", true).unwrap();
            assert!(
                r.headers
                    .iter()
                    .any(|(n, _)| *n == "Content-Security-Policy")
            );
            assert!(asset("/", false).is_none());
        }
    }
}
