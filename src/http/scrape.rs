//! The metrics listener: `GET /metrics` for Prometheus on an address of its own
//! (`[metrics] listen`), never on the public port, with a bearer token when
//! `[metrics] token` is set. Metrics tell queue depths, connection counts and error
//! rates: an operator's business, not a client's.
//!
//! One thread serves one scrape at a time, blocking, with short timeouts: scrapers are
//! few and the address is the operators', so a slow peer delays only the next scrape.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_HEAD: usize = 8192;

/// Serves scrapes on `listener` until `stop`; `render` makes the exposition text.
pub fn serve(
    listener: TcpListener,
    token: String,
    render: impl Fn() -> String,
    stop: Arc<AtomicBool>,
) {
    // Non-blocking accepts, polled: the thread notices `stop` within 100 ms.
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("metrics listener: {e}");
        return;
    }
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((sock, _)) => {
                if let Err(e) = answer(sock, &token, &render) {
                    log::debug!("metrics scrape: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                log::debug!("metrics accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request head from `sock` and answers it; the connection then closes.
fn answer(mut sock: TcpStream, token: &str, render: &impl Fn() -> String) -> std::io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf)?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = respond(&head, token, render);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        _ => "Not Found",
    };
    let ctype = if status == 200 {
        "text/plain; version=0.0.4"
    } else {
        "text/plain; charset=utf-8"
    };
    let auth = if status == 401 {
        "WWW-Authenticate: Bearer\r\n"
    } else {
        ""
    };
    write!(
        sock,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         {auth}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    sock.write_all(body.as_bytes())
}

/// The status and body for a request head.
fn respond(head: &[u8], token: &str, render: &impl Fn() -> String) -> (u16, String) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return (400, "bad request\n".into());
    }
    let path = req.path.unwrap_or("").split('?').next().unwrap_or("");
    if path != "/metrics" {
        return (404, "only /metrics is served here\n".into());
    }
    if req.method != Some("GET") {
        return (405, "GET only\n".into());
    }
    if !token.is_empty() {
        let given = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !given.is_some_and(|t| same(t.as_bytes(), token.as_bytes())) {
            return (401, "a bearer token is required\n".into());
        }
    }
    (200, render())
}

/// Equal bytes, compared in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metrics_with_the_token() {
        let render = || "chatd_up 1\n".to_string();
        let get = |path: &str, auth: &str| {
            let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
            respond(head.as_bytes(), "0123456789abcdef", &render).0
        };
        assert_eq!(get("/metrics", ""), 401);
        assert_eq!(get("/metrics", "Authorization: Bearer nope\r\n"), 401);
        assert_eq!(
            get("/metrics", "Authorization: Bearer 0123456789abcdef\r\n"),
            200
        );
        assert_eq!(
            get("/health", "Authorization: Bearer 0123456789abcdef\r\n"),
            404
        );
        let open = respond(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", "", &render);
        assert_eq!(open, (200, "chatd_up 1\n".into()));
        assert_eq!(
            respond(b"POST /metrics HTTP/1.1\r\n\r\n", "", &render).0,
            405
        );
        assert_eq!(respond(b"\x00\x01\r\n\r\n", "", &render).0, 400);
    }
}
