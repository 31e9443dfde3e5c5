//! HTTP responses: JSON bodies, the error shape clients expect, CORS, serialisation.

use crate::base::error::ApiError;
use serde::Serialize;
use std::io::Write;

/// A response before serialisation.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content type of `body`.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    /// A JSON response.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::raw(status, "application/json; charset=utf-8", body),
            Err(_) => Response::error(500, "internal", "Internal server error"),
        }
    }

    /// A response with a ready body.
    pub fn raw(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    /// The error shape: `{statusCode, message, error, code}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::error_value(status, code, serde_json::Value::from(message))
    }

    /// An error whose `message` is a list (validation failures).
    pub fn errors(status: u16, code: &str, messages: Vec<String>) -> Response {
        Response::error_value(status, code, serde_json::Value::from(messages))
    }

    fn error_value(status: u16, code: &str, message: serde_json::Value) -> Response {
        let body = serde_json::json!({
            "statusCode": status,
            "message": message,
            "error": reason(status),
            "code": code,
        });
        Response::json(status, &body)
    }

    /// The answer to an error: the one mapping of error kinds to HTTP.
    pub fn from_error(e: &ApiError) -> Response {
        let status = e.status();
        let resp = match e {
            ApiError::Validation(msgs) => Response::errors(status, e.code(), msgs.clone()),
            ApiError::TooLarge(m) => Response::error(status, "payload_too_large", m),
            ApiError::SlowMode(ms) => {
                let body = serde_json::json!({
                    "statusCode": status,
                    "message": e.to_string(),
                    "error": reason(status),
                    "code": e.code(),
                    "retry_after_ms": ms,
                });
                Response::json(status, &body)
            }
            other => Response::error(status, other.code(), &other.to_string()),
        };
        match e {
            ApiError::RateLimited(secs) => resp.with_header("Retry-After", secs.to_string()),
            ApiError::SlowMode(ms) => {
                resp.with_header("Retry-After", ms.div_ceil(1000).to_string())
            }
            ApiError::Unavailable => resp.with_header("Retry-After", "1"),
            _ => resp,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Marks the connection to be closed after this response.
    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// Serialises status line, headers and body. `cors` is the allowed origin to name
    /// (see `ops::cors_origin`); `head_only` drops the body (HEAD).
    pub fn to_bytes(&self, cors: Option<&str>, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(192 + self.body.len());
        let length = format!("Content-Length: {}", self.body.len());
        self.write_head(&mut out, &length, cors, keep_alive);
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// The status line and headers of an answer whose body follows in chunks
    /// (`http/stream.rs`): `Transfer-Encoding: chunked` instead of a length.
    pub fn chunked_head(&self, cors: Option<&str>, keep_alive: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        self.write_head(&mut out, "Transfer-Encoding: chunked", cors, keep_alive);
        out
    }

    fn write_head(&self, out: &mut Vec<u8>, framing: &str, cors: Option<&str>, keep_alive: bool) {
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n{framing}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
        );
        if let Some(o) = cors {
            // No credentials: the API authenticates by bearer token. The one cookie, the
            // web app's refresh cookie, is for pages of the server's own origin only.
            let _ = write!(out, "Access-Control-Allow-Origin: {o}\r\n");
            if o != "*" {
                out.extend_from_slice(b"Vary: Origin\r\n");
            }
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if !keep_alive || self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The reason phrase, also the `error` field of error bodies.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape_and_cors() {
        let r = Response::error(401, "invalid_credentials", "Invalid credentials");
        let text = String::from_utf8(r.to_bytes(Some("http://x"), true, false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(text.contains("Access-Control-Allow-Origin: http://x\r\nVary: Origin\r\n"));
        assert!(!text.contains("Credentials"));
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["statusCode"], 401);
        assert_eq!(body["error"], "Unauthorized");
        assert_eq!(body["code"], "invalid_credentials");
    }

    #[test]
    fn head_has_length_but_no_body() {
        let r = Response::json(200, &serde_json::json!({"status": "ok"}));
        let text = String::from_utf8(r.to_bytes(None, false, true)).unwrap();
        assert!(text.contains("Content-Length: 15\r\n") && text.contains("Connection: close"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
