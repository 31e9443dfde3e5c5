//! The WebSocket opening handshake (RFC 6455 §4.2): an HTTP exchange, checked and
//! answered here; the connection then belongs to ws/.

use crate::http::parse::Head;
use crate::http::response::Response;

/// Checks that a request is a valid WebSocket upgrade; the error is the HTTP answer.
pub fn check(head: &Head) -> Result<(), Response> {
    let h = &head.headers;
    let upgrade = h
        .upgrade
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let connection = h.connection.as_deref().is_some_and(|c| {
        c.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    if !upgrade || !connection {
        return Err(
            Response::error(426, "upgrade_required", "Expected a WebSocket upgrade")
                .with_header("Upgrade", "websocket"),
        );
    }
    if h.ws_version.as_deref() != Some("13") {
        return Err(
            Response::error(400, "bad_request", "Sec-WebSocket-Version must be 13")
                .with_header("Sec-WebSocket-Version", "13"),
        );
    }
    let key_ok = h.ws_key.as_deref().is_some_and(valid_key);
    if !key_ok {
        return Err(Response::error(
            400,
            "bad_request",
            "Missing or invalid Sec-WebSocket-Key",
        ));
    }
    Ok(())
}

/// RFC 6455 §4.1: the key is 16 bytes in base64, i.e. 22 base64 characters whose last
/// one carries 2 bits (so it is one of `AQgw`), then `==`.
fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    b.len() == 24
        && k.ends_with("==")
        && b[..22].iter().all(b64)
        && matches!(b[21], b'A' | b'Q' | b'g' | b'w')
}

/// The `101 Switching Protocols` answer for a checked request.
pub fn accept_response(head: &Head) -> Vec<u8> {
    let key = head.headers.ws_key.as_deref().unwrap_or_default();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{Limits, parse_head};

    const L: Limits = Limits {
        max_header_bytes: 4096,
        max_headers: 32,
        max_body_bytes: 10,
        max_upload_bytes: 10,
    };

    #[test]
    fn rfc_example_key() {
        let req = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let head = parse_head(req, &L).unwrap().unwrap();
        assert!(check(&head).is_ok());
        let resp = String::from_utf8(accept_response(&head)).unwrap();
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn keys_must_be_16_bytes_of_base64() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            "!!!!!!!!!!!!!!!!!!!!!!==",
            "dGhlIHNhbXBsZSBub25jZR==",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25j ZQ==",
            "",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_plain_get() {
        let head = parse_head(b"GET /ws HTTP/1.1\r\n\r\n", &L)
            .unwrap()
            .unwrap();
        assert_eq!(check(&head).unwrap_err().status, 426);
    }
}
