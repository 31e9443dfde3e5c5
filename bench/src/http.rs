//! A tiny blocking HTTP/1.1 client with keep-alive, enough for provisioning over the
//! REST API (JSON bodies with Content-Length; chatd never answers chunked).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One keep-alive connection to a server; reconnects transparently when dropped.
pub struct Http {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// A response: status and body.
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (Null when not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Http {
    /// A client for `host:port` (connects lazily).
    pub fn new(addr: &str) -> Http {
        Http {
            addr: addr.to_string(),
            stream: None,
            buf: Vec::new(),
        }
    }

    /// Sends one request and reads its answer; one retry on a fresh connection when
    /// a kept-alive one turns out to be closed by the server.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<Resp, String> {
        let reused = self.stream.is_some();
        match self.try_call(method, path, token, body) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.stream = None;
                self.try_call(method, path, token, body)
            }
            Err(e) => Err(e),
        }
    }

    fn try_call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<Resp, String> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).map_err(|e| format!("{}: {e}", self.addr))?;
            s.set_read_timeout(Some(Duration::from_secs(60))).ok();
            s.set_nodelay(true).ok();
            self.stream = Some(s);
            self.buf.clear();
        }
        let body = body.unwrap_or("");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(t) = token {
            req.push_str("Authorization: Bearer ");
            req.push_str(t);
            req.push_str("\r\n");
        }
        if method == "POST" || !body.is_empty() {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        let res = self.exchange(req.as_bytes());
        if res.is_err() {
            self.stream = None;
        }
        res
    }

    fn exchange(&mut self, req: &[u8]) -> Result<Resp, String> {
        let s = self.stream.as_mut().ok_or("not connected")?;
        s.write_all(req).map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 8192];
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) =
                resp.parse(&self.buf).map_err(|e| e.to_string())?
            {
                let mut len = 0usize;
                let mut close = false;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        len = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or("bad content-length")?;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                let status = resp.code.unwrap_or(0);
                while self.buf.len() < head + len {
                    let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("connection closed mid-body".into());
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let body = self.buf[head..head + len].to_vec();
                self.buf.drain(..head + len);
                if close {
                    self.stream = None;
                }
                return Ok(Resp { status, body });
            }
            let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
