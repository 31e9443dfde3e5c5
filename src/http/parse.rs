//! HTTP/1.1 request parsing over a byte slice (httparse), with the server's limits.

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Largest body of an upload (`POST /rooms/:id/files`, see [`is_upload`]).
    pub max_upload_bytes: usize,
}

/// Whether a request is a file upload, whose body may be as large as the `[files]`
/// limit rather than the JSON bodies' `http.max_body_bytes`, and is streamed to a
/// worker rather than buffered (`http/intake.rs`).
pub fn is_upload(method: &str, path: &str) -> bool {
    method == "POST" && is_upload_path(path)
}

/// Whether `path` is the upload route's, `/rooms/:id/files`.
pub fn is_upload_path(path: &str) -> bool {
    let mut segs = path.trim_matches('/').split('/');
    segs.next() == Some("rooms")
        && segs.next().is_some_and(|id| !id.is_empty())
        && segs.next() == Some("files")
        && segs.next().is_none()
}

/// Why a request cannot be served; each maps to one status.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// 400
    #[error("malformed request")]
    Malformed,
    /// 431
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// 413
    #[error("payload too large")]
    BodyTooLarge,
    /// 411: chunked or otherwise unsized bodies are refused.
    #[error("a Content-Length body is required")]
    LengthRequired,
    /// 505
    #[error("HTTP version not supported")]
    Version,
}

/// HTTP methods the server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// Anything else.
    Other,
}

impl Method {
    fn from(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// The headers the server acts on (the rest are ignored).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers {
    /// `Authorization`
    pub authorization: Option<String>,
    /// `Origin`
    pub origin: Option<String>,
    /// `Upgrade`
    pub upgrade: Option<String>,
    /// `Connection`
    pub connection: Option<String>,
    /// `Sec-WebSocket-Key`
    pub ws_key: Option<String>,
    /// `Sec-WebSocket-Version`
    pub ws_version: Option<String>,
    /// `Access-Control-Request-Headers`
    pub ac_request_headers: Option<String>,
    /// `X-Forwarded-For` (last address: the one our proxy appended)
    pub forwarded_for: Option<String>,
    /// `Cookie`, every such header joined with `; `; a value that is not UTF-8 is left
    /// out (a cookie is only ever a credential we may do without, never a 400).
    pub cookie: Option<String>,
    /// `X-Chatd-Refresh-Cookie: 1`: the client keeps its refresh token in the cookie.
    pub refresh_cookie: bool,
    /// `Range` (file downloads).
    pub range: Option<String>,
    /// `If-None-Match` (file downloads).
    pub if_none_match: Option<String>,
    /// `Expect: 100-continue`: the client waits for an interim answer before the body.
    pub expect_continue: bool,
    /// `Content-Type` (uploads: a raw file or `multipart/form-data`).
    pub content_type: Option<String>,
}

/// A complete request head, with the body's length.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// Method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Query string without `?` (may be empty).
    pub query: String,
    /// HTTP/1.x minor version.
    pub minor: u8,
    /// Interesting headers.
    pub headers: Headers,
    /// Bytes of the head, including the blank line.
    pub head_len: usize,
    /// Content-Length (0 when absent).
    pub body_len: usize,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

/// Parses a request head from the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, ParseError> {
    let mut storage = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut storage);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Err(ParseError::HeadersTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadersTooLarge),
        // httparse knows HTTP/1.0 and 1.1 only: any other version is one we do not speak.
        Err(httparse::Error::Version) => return Err(ParseError::Version),
        Err(_) => return Err(ParseError::Malformed),
    };
    if head_len > limits.max_header_bytes {
        return Err(ParseError::HeadersTooLarge);
    }
    let minor = req.version.ok_or(ParseError::Malformed)?;
    if minor > 1 {
        return Err(ParseError::Version);
    }
    let target = req.path.ok_or(ParseError::Malformed)?;
    if !target.starts_with('/') {
        return Err(ParseError::Malformed);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut headers = Headers::default();
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep = false;
    for h in req.headers.iter() {
        let value = || -> Result<String, ParseError> {
            std::str::from_utf8(h.value)
                .map(|s| s.trim().to_string())
                .map_err(|_| ParseError::Malformed)
        };
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // RFC 9110: 1*DIGIT. Rust's parse also takes a leading '+', which a lenient
            // proxy in front of us might read differently (request smuggling).
            let v = value()?;
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Malformed);
            }
            let v: usize = v.parse().map_err(|_| ParseError::Malformed)?;
            if content_length.is_some_and(|old| old != v) {
                return Err(ParseError::Malformed);
            }
            content_length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("authorization") {
            headers.authorization = Some(value()?);
        } else if name.eq_ignore_ascii_case("origin") {
            headers.origin = Some(value()?);
        } else if name.eq_ignore_ascii_case("upgrade") {
            headers.upgrade = Some(value()?);
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value()?;
            for token in v.split(',') {
                let t = token.trim();
                conn_close |= t.eq_ignore_ascii_case("close");
                conn_keep |= t.eq_ignore_ascii_case("keep-alive");
            }
            headers.connection = Some(v);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            headers.ws_key = Some(value()?);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            headers.ws_version = Some(value()?);
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            headers.ac_request_headers = Some(value()?);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            // The last entry is the one the proxy in front of us added; earlier ones come
            // from the client and prove nothing.
            headers.forwarded_for = value()?.rsplit(',').next().map(|s| s.trim().to_string());
        } else if name.eq_ignore_ascii_case("cookie") {
            if let Ok(v) = std::str::from_utf8(h.value) {
                let joined = match headers.cookie.take() {
                    Some(before) => format!("{before}; {v}"),
                    None => v.to_string(),
                };
                headers.cookie = Some(joined);
            }
        } else if name.eq_ignore_ascii_case("range") {
            headers.range = Some(value()?);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            headers.if_none_match = Some(value()?);
        } else if name.eq_ignore_ascii_case("expect") {
            headers.expect_continue = value()?.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("content-type") {
            headers.content_type = Some(value()?);
        } else if name.eq_ignore_ascii_case("x-chatd-refresh-cookie") {
            headers.refresh_cookie = h.value.trim_ascii() == b"1";
        }
    }
    // A body framed any way but Content-Length is refused: with both, it would be
    // ambiguous (request smuggling); without a length we cannot bound it up front.
    if chunked {
        return Err(if content_length.is_some() {
            ParseError::Malformed
        } else {
            ParseError::LengthRequired
        });
    }
    let body_len = content_length.unwrap_or(0);
    let method = req.method.ok_or(ParseError::Malformed)?;
    let max_body = if is_upload(method, &path) {
        limits.max_upload_bytes
    } else {
        limits.max_body_bytes
    };
    if body_len > max_body {
        return Err(ParseError::BodyTooLarge);
    }
    let keep_alive = if minor == 0 { conn_keep } else { !conn_close };
    Ok(Some(Head {
        method: Method::from(method),
        path,
        query,
        minor,
        headers,
        head_len,
        body_len,
        keep_alive,
    }))
}

/// Decodes `%XX` and `+` in a query component.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded value of the first `name=` parameter of a query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_header_bytes: 256,
        max_headers: 8,
        max_body_bytes: 100,
        max_upload_bytes: 100,
    };

    #[test]
    fn parses_a_full_head() {
        let r = b"POST /rooms?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nAuthorization: Bearer t\r\n\r\nhello";
        let h = parse_head(r, &L).unwrap().unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/rooms", "x=1"));
        assert_eq!(h.body_len, 5);
        assert_eq!(h.head_len, r.len() - 5);
        assert_eq!(h.headers.authorization.as_deref(), Some("Bearer t"));
        assert!(h.keep_alive);
    }

    #[test]
    fn partial_then_limits() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHo", &L), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(300));
        assert_eq!(
            parse_head(big.as_bytes(), &L).unwrap_err(),
            ParseError::HeadersTooLarge
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(9));
        assert_eq!(
            parse_head(many.as_bytes(), &L).unwrap_err(),
            ParseError::HeadersTooLarge
        );
    }

    #[test]
    fn body_rules() {
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_head(chunked, &L).unwrap_err(),
            ParseError::LengthRequired
        );
        let both = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse_head(both, &L).unwrap_err(), ParseError::Malformed);
        let big = b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
        assert_eq!(parse_head(big, &L).unwrap_err(), ParseError::BodyTooLarge);
        let lying = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse_head(lying, &L).unwrap_err(), ParseError::Malformed);
        for signed in ["+2", "-0", " 2 2", "0x2", "2.0"] {
            let req = format!("POST / HTTP/1.1\r\nContent-Length: {signed}\r\n\r\nab");
            assert_eq!(
                parse_head(req.as_bytes(), &L).unwrap_err(),
                ParseError::Malformed,
                "{signed}"
            );
        }
        let twice = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_head(twice, &L).unwrap_err(), ParseError::Malformed);
    }

    #[test]
    fn malformed_and_versions() {
        assert_eq!(
            parse_head(b"\x00\x01 / HTTP/1.1\r\n\r\n", &L).unwrap_err(),
            ParseError::Malformed
        );
        assert_eq!(
            parse_head(b"GET x HTTP/1.1\r\n\r\n", &L).unwrap_err(),
            ParseError::Malformed
        );
        for v in ["HTTP/1.2", "HTTP/2.0", "HTTP/3.0"] {
            let req = format!("GET /health {v}\r\n\r\n");
            assert_eq!(
                parse_head(req.as_bytes(), &L).unwrap_err(),
                ParseError::Version
            );
        }
        let h10 = parse_head(b"GET / HTTP/1.0\r\n\r\n", &L).unwrap().unwrap();
        assert!(!h10.keep_alive);
        let close = parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &L)
            .unwrap()
            .unwrap();
        assert!(!close.keep_alive);
    }

    #[test]
    fn cookies_are_joined_and_bad_bytes_left_out() {
        let r = b"POST /auth/refresh HTTP/1.1\r\nCookie: a=1\r\nCookie: chatd_refresh=x\r\nCookie: \xff=\xfe\r\nX-Chatd-Refresh-Cookie: 1\r\n\r\n";
        let h = parse_head(r, &L).unwrap().unwrap();
        assert_eq!(h.headers.cookie.as_deref(), Some("a=1; chatd_refresh=x"));
        assert!(h.headers.refresh_cookie);
        let r = b"POST / HTTP/1.1\r\nX-Chatd-Refresh-Cookie: yes\r\n\r\n";
        assert!(!parse_head(r, &L).unwrap().unwrap().headers.refresh_cookie);
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_param("a=1&token=x%2By+z", "token").as_deref(),
            Some("x+y z")
        );
        assert_eq!(query_param("a=1", "b"), None);
        assert_eq!(query_param("a=%zz", "a"), None);
    }
}
