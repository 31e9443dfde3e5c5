//! One HTTP/1.1 connection's state: the bytes received and not yet served, where the
//! connection stands (serving, waiting for a worker, closing), and the rules that frame
//! requests out of the buffer: pipelining, the per-turn budget, the bound on answers the
//! peer has not taken, and the timeouts. Pure over bytes and instants (no socket, no
//! route); `driver.rs` runs it against the loop's transport and the routes.

use crate::base::session::Admission;
use crate::http::parse::{self, Head, Limits, ParseError};
use crate::http::stream::BodyReader;
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Answers queued for one HTTP connection before its further pipelined requests wait
/// (a client that pipelines and never reads cannot grow the node's memory).
const MAX_HTTP_QUEUED: usize = 256 * 1024;
/// Requests served from one connection's buffer per loop turn; the rest wait for the
/// next turn, after the other connections had theirs.
const HTTP_BUDGET: usize = 32;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// What an answer needs to know about the request it answers.
#[derive(Debug)]
pub struct Exchange {
    /// Origin header, reflected for CORS.
    pub origin: Option<String>,
    /// Keep the connection after answering.
    pub keep_alive: bool,
    /// HEAD request: send no body.
    pub head_only: bool,
    /// Route label for metrics.
    pub route: &'static str,
    /// When the request was complete.
    pub started: Instant,
}

impl Exchange {
    /// A request that could not be served at all (unparseable, too slow): answered
    /// without CORS, then the connection closes.
    pub fn invalid(now: Instant) -> Exchange {
        Exchange {
            origin: None,
            keep_alive: false,
            head_only: false,
            route: "invalid",
            started: now,
        }
    }
}

/// Where a connection stands.
///
/// A streamed request body (an upload of tens of MiB, sent to storage chunk by chunk)
/// would be one more phase, `Streaming { req, left, waiting }`, entered when a route
/// accepts a head whose body is not read into the buffer: `readable` moves at most one
/// chunk from the socket to a worker and, while `waiting` for storage to take it, reads
/// nothing more (the socket is edge-triggered, so unread bytes simply stay in the kernel
/// and TCP's window holds the client back); the worker's answer arrives as an
/// `HttpEvent` like a reply, clears `waiting` and returns `Outcome::Again`, which makes
/// the loop read the connection again on its next turn. When `left` reaches zero the
/// phase becomes `Waiting` for the final answer. Neither the loop nor the outcome set
/// changes for it.
#[derive(Debug)]
pub enum Phase {
    /// Over its address's connection limit: refused (429) on its first turn.
    Refused,
    /// Reading requests and answering those served on the spot.
    Serving,
    /// Request `req` is with a worker; later pipelined requests wait in the buffer.
    Waiting {
        /// Request id the answer must carry.
        req: u64,
        /// The request it answers (boxed: every connection's state, a WebSocket's too,
        /// is as large as its largest phase).
        exchange: Box<Exchange>,
    },
    /// The answer to request `req` is being streamed (`http/stream.rs`): its chunks
    /// come from `body`; later pipelined requests wait in the buffer.
    Streaming {
        /// Request id the chunks' wakes carry.
        req: u64,
        /// The request it answers.
        exchange: Box<Exchange>,
        /// Where the chunks come from.
        body: BodyReader,
    },
    /// The last answer is queued: nothing more is read or served.
    Closing,
}

/// What the buffer yields next.
// A return value moved once per request: boxing the head would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing to serve until more bytes come, a worker answers or the peer reads.
    Wait,
    /// This turn's budget is spent and requests remain: serve them next turn.
    Again,
    /// The peer closed its side and nothing is left to answer.
    Close,
    /// The bytes are not a request this server serves: answer the error, then close.
    Invalid(ParseError),
    /// A complete request: its head and body.
    Request(Head, Vec<u8>),
}

/// Why the sweep ends a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A request head started and did not complete in time: answer 408, then close.
    HeadTimeout,
    /// Idle too long, or answers wait that the peer does not take: drop it.
    Idle,
}

/// One HTTP connection.
#[derive(Debug)]
pub struct HttpSession {
    /// Where it stands.
    pub phase: Phase,
    /// Bytes received and not yet served.
    inbuf: Vec<u8>,
    /// When the first byte of the current request head arrived.
    head_started: Option<Instant>,
    /// Last time bytes arrived.
    last_read: Instant,
    /// The peer closed its side; answer what is in flight, then close.
    peer_closed: bool,
    /// Serving stopped because the answers queued for the peer passed the bound.
    paused: bool,
    /// Bytes of the request at the front of the buffer, once its head is parsed and its
    /// body is still arriving (0 otherwise): reading goes on up to it.
    want: usize,
}

impl HttpSession {
    /// A new connection, admitted or over its address's limit.
    pub fn new(admission: Admission, now: Instant) -> HttpSession {
        HttpSession {
            phase: match admission {
                Admission::Admitted => Phase::Serving,
                Admission::OverAddressLimit => Phase::Refused,
            },
            inbuf: Vec::new(),
            head_started: None,
            last_read: now,
            peer_closed: false,
            paused: false,
            want: 0,
        }
    }

    /// Reads what the socket holds, stopping at `cap` buffered bytes: a pipelining
    /// client waits until it was answered.
    pub fn fill<R: Read + ?Sized>(&mut self, r: &mut R, cap: usize) {
        let mut buf = [0u8; READ_CHUNK];
        while self.inbuf.len() < cap {
            match r.read(&mut buf) {
                Ok(0) => {
                    self.peer_closed = true;
                    break;
                }
                Ok(n) => {
                    self.inbuf
                        .extend_from_slice(buf.get(..n).unwrap_or_default());
                    self.last_read = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.peer_closed = true;
                    self.inbuf.clear();
                    break;
                }
            }
        }
    }

    /// The next request in the buffer, served in order, one at a time (`served`
    /// requests were served this turn; `queued` bytes of answers wait for the peer).
    pub fn next(&mut self, queued: usize, served: usize, limits: &Limits) -> Step {
        if !matches!(self.phase, Phase::Serving) {
            return Step::Wait;
        }
        if queued >= MAX_HTTP_QUEUED && !self.inbuf.is_empty() {
            // Resumed by `resume` once the peer took its answers.
            self.paused = true;
            return Step::Wait;
        }
        if served == HTTP_BUDGET && !self.inbuf.is_empty() {
            return Step::Again;
        }
        if self.inbuf.is_empty() {
            self.head_started = None;
            return self.wait_or_close();
        }
        let head = match parse::parse_head(&self.inbuf, limits) {
            Ok(Some(head)) => head,
            Ok(None) => return self.incomplete(),
            Err(e) => {
                self.inbuf = Vec::new();
                return Step::Invalid(e);
            }
        };
        let total = head.head_len + head.body_len;
        if total == self.inbuf.len() && head.body_len > 0 {
            // The body ends the buffer (always so for an upload): moved, not copied.
            let mut body = std::mem::take(&mut self.inbuf);
            body.drain(..head.head_len);
            self.head_started = None;
            self.want = 0;
            return Step::Request(head, body);
        }
        let Some(body) = self.inbuf.get(head.head_len..total).map(<[u8]>::to_vec) else {
            self.want = total;
            if head.body_len > limits.max_body_bytes {
                // An upload, whose size `parse_head` allowed: its body may take longer
                // than a head may (the idle timeout still ends a peer that stops
                // sending), and its buffer is sized once.
                self.inbuf
                    .reserve_exact(total.saturating_sub(self.inbuf.len()));
                self.head_started = None;
                return self.wait_or_close();
            }
            return self.incomplete();
        };
        self.inbuf.drain(..total);
        self.head_started = None;
        self.want = 0;
        Step::Request(head, body)
    }

    /// Bytes to buffer before reading pauses: `cap`, or the whole of an upload whose
    /// head arrived.
    pub fn read_cap(&self, cap: usize) -> usize {
        cap.max(self.want)
    }

    /// A request is partly here: its head's clock runs.
    fn incomplete(&mut self) -> Step {
        self.head_started.get_or_insert_with(Instant::now);
        self.wait_or_close()
    }

    fn wait_or_close(&mut self) -> Step {
        if self.peer_closed {
            self.phase = Phase::Closing;
            Step::Close
        } else {
            Step::Wait
        }
    }

    /// A worker serves request `req`; later requests wait for its answer.
    pub fn wait_for(&mut self, req: u64, exchange: Exchange) {
        self.phase = Phase::Waiting {
            req,
            exchange: Box::new(exchange),
        };
    }

    /// The answer to `req` arrived: what it answers, unless the connection no longer
    /// waits for it (already answered with an error, or the slot was reused).
    pub fn answered(&mut self, req: u64) -> Option<Exchange> {
        match &self.phase {
            Phase::Waiting { req: r, .. } if *r == req => {}
            _ => return None,
        }
        match std::mem::replace(&mut self.phase, Phase::Serving) {
            Phase::Waiting { exchange, .. } => Some(*exchange),
            _ => None,
        }
    }

    /// The head of request `req`'s streamed answer is queued: chunks follow from `body`.
    pub fn stream(&mut self, req: u64, exchange: Exchange, body: BodyReader) {
        self.phase = Phase::Streaming {
            req,
            exchange: Box::new(exchange),
            body,
        };
    }

    /// The streamed body being sent, when it answers `req` (any request when `None`).
    pub fn body(&mut self, req: Option<u64>) -> Option<&mut BodyReader> {
        match &mut self.phase {
            Phase::Streaming { req: r, body, .. } if req.is_none_or(|q| q == *r) => Some(body),
            _ => None,
        }
    }

    /// The streamed body is complete: serving resumes; what it answered.
    pub fn streamed(&mut self) -> Option<Exchange> {
        if !matches!(self.phase, Phase::Streaming { .. }) {
            return None;
        }
        match std::mem::replace(&mut self.phase, Phase::Serving) {
            Phase::Streaming { exchange, .. } => Some(*exchange),
            _ => None,
        }
    }

    /// The peer took its answers: true when serving had paused for it.
    pub fn resume(&mut self) -> bool {
        std::mem::take(&mut self.paused)
    }

    /// Nothing more is read or served; the connection closes once its queue is written.
    pub fn close(&mut self) {
        self.phase = Phase::Closing;
    }

    /// Forgets what was buffered (a request that will never be served).
    pub fn clear(&mut self) {
        self.inbuf = Vec::new();
    }

    /// The bytes received behind the last request (an upgrade hands them on).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.inbuf)
    }

    /// Whether the sweep ends this connection: `queued` bytes of answers wait, the peer
    /// last took bytes at `last_write`.
    pub fn expiry(
        &self,
        now: Instant,
        queued: usize,
        last_write: Instant,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<Expiry> {
        if queued > 0 && now.saturating_duration_since(last_write) > idle_timeout {
            // Answers wait and the peer takes none of them.
            return Some(Expiry::Idle);
        }
        if !matches!(self.phase, Phase::Serving) {
            return None;
        }
        if self
            .head_started
            .is_some_and(|t| now.saturating_duration_since(t) > header_timeout)
        {
            Some(Expiry::HeadTimeout)
        } else if queued == 0 && now.saturating_duration_since(self.last_read) > idle_timeout {
            Some(Expiry::Idle)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_header_bytes: 1024,
        max_headers: 16,
        max_body_bytes: 1024,
        max_upload_bytes: 4096,
    };

    /// A socket that yields its chunks one read at a time, then would block (or ends).
    struct Peer {
        chunks: Vec<Vec<u8>>,
        eof: bool,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.chunks.is_empty() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let c = self.chunks.remove(0);
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    fn session_with(bytes: &[u8], eof: bool) -> HttpSession {
        let mut s = HttpSession::new(Admission::Admitted, Instant::now());
        let mut p = Peer {
            chunks: vec![bytes.to_vec()],
            eof,
        };
        s.fill(&mut p, 4096);
        s
    }

    fn path(step: Step) -> String {
        match step {
            Step::Request(head, _) => head.path,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn pipelined_requests_wait_for_the_worker_in_order() {
        let mut s = session_with(
            b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\n\r\n",
            false,
        );
        assert_eq!(path(s.next(0, 0, &L)), "/a");
        s.wait_for(7, Exchange::invalid(Instant::now()));
        assert_eq!(s.next(0, 1, &L), Step::Wait);
        assert!(s.answered(6).is_none(), "an answer to another request");
        assert!(s.answered(7).is_some());
        match s.next(0, 0, &L) {
            Step::Request(head, body) => {
                assert_eq!((head.path, body), ("/b".into(), b"hi".to_vec()))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(path(s.next(0, 1, &L)), "/c");
        assert_eq!(s.next(0, 2, &L), Step::Wait);
        assert!(s.answered(7).is_none(), "answered once");
    }

    #[test]
    fn the_budget_and_the_queue_bound_stop_serving() {
        let mut s = session_with(&b"GET /x HTTP/1.1\r\n\r\n".repeat(40), false);
        for served in 0..HTTP_BUDGET {
            assert_eq!(path(s.next(0, served, &L)), "/x");
        }
        assert_eq!(s.next(0, HTTP_BUDGET, &L), Step::Again);
        // A peer that does not read its answers is not served either, until it does.
        assert_eq!(s.next(MAX_HTTP_QUEUED, 0, &L), Step::Wait);
        assert!(s.resume());
        assert!(!s.resume());
        assert_eq!(path(s.next(0, 0, &L)), "/x");
    }

    #[test]
    fn a_peer_that_closed_is_closed_once_answered() {
        let mut s = session_with(b"GET /a HTTP/1.1\r\n\r\nGET /b HT", true);
        assert_eq!(path(s.next(0, 0, &L)), "/a");
        assert_eq!(s.next(0, 1, &L), Step::Close);
        assert!(matches!(s.phase, Phase::Closing));
        assert_eq!(s.next(0, 0, &L), Step::Wait);
    }

    #[test]
    fn errors_and_refusals() {
        let mut s = session_with(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n", false);
        assert_eq!(s.next(0, 0, &L), Step::Invalid(ParseError::Malformed));
        let mut s = session_with(b"GET / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", false);
        assert_eq!(s.next(0, 0, &L), Step::Invalid(ParseError::BodyTooLarge));
        let mut s = HttpSession::new(Admission::OverAddressLimit, Instant::now());
        assert!(matches!(s.phase, Phase::Refused));
        assert_eq!(
            s.next(0, 0, &L),
            Step::Wait,
            "a refused connection is never served"
        );
    }

    #[test]
    fn reading_stops_at_the_cap() {
        let mut s = HttpSession::new(Admission::Admitted, Instant::now());
        let mut p = Peer {
            chunks: vec![vec![b'a'; 100]; 5],
            eof: false,
        };
        s.fill(&mut p, 250);
        assert_eq!((s.inbuf.len(), p.chunks.len()), (300, 2));
    }

    #[test]
    fn timeouts() {
        let t0 = Instant::now();
        let (head, idle) = (Duration::from_secs(5), Duration::from_secs(60));
        let mut s = session_with(b"GET / HTTP/1.1\r\nHost:", false);
        assert_eq!(s.next(0, 0, &L), Step::Wait);
        let later = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(s.expiry(later(1), 0, t0, head, idle), None);
        assert_eq!(
            s.expiry(later(6), 0, t0, head, idle),
            Some(Expiry::HeadTimeout)
        );
        // Answers the peer does not take, for the idle timeout: dropped, whatever else.
        assert_eq!(s.expiry(later(61), 10, t0, head, idle), Some(Expiry::Idle));
        // Idle keep-alive: dropped once nothing is queued.
        let s = HttpSession::new(Admission::Admitted, t0);
        assert_eq!(s.expiry(later(30), 0, t0, head, idle), None);
        assert_eq!(s.expiry(later(61), 0, t0, head, idle), Some(Expiry::Idle));
        assert_eq!(s.expiry(later(61), 10, later(60), head, idle), None);
        // A request with a worker is not timed out, however long the worker takes.
        let mut s = session_with(b"GET / HTTP/1.1\r\n\r\n", false);
        assert!(matches!(s.next(0, 0, &L), Step::Request(..)));
        s.wait_for(1, Exchange::invalid(t0));
        assert_eq!(s.expiry(later(61), 0, t0, head, idle), None);
    }
}
