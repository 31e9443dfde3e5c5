//! One HTTP/1.1 connection's state: the bytes received and not yet served, where the
//! connection stands (serving, waiting for a worker, closing), and the rules that frame
//! requests out of the buffer: pipelining, the per-turn budget, the bound on answers the
//! peer has not taken, and the timeouts. Pure over bytes and instants (no socket, no
//! route); `driver.rs` runs it against the loop's transport and the routes.

use crate::base::session::Admission;
use crate::http::intake::{self, IntakeSender, Offer};
use crate::http::parse::{self, Head, Limits, Method, ParseError};
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
    /// The body of upload `req` goes to its worker as it arrives (`http/intake.rs`):
    /// `left` bytes are still to come; `held` is a chunk the worker's full channel did
    /// not take (nothing more is read until it does). Then `Waiting` for the answer.
    Uploading {
        /// Request id the answer and the worker's wakes carry.
        req: u64,
        /// The request it answers.
        exchange: Box<Exchange>,
        /// Body bytes not yet read.
        left: usize,
        /// Where the chunks go.
        sink: IntakeSender,
        /// A chunk read and not yet taken.
        held: Option<Vec<u8>>,
    },
    /// The last answer is queued: nothing more is read or served.
    Closing,
}

/// Where an upload's body stands after the session moved what it could.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// More is to come: from the socket, or once the worker takes what it holds.
    More,
    /// The whole body went to the worker, or the worker stopped taking it: the
    /// connection waits for the answer.
    Sent,
    /// The peer closed or failed before the body was complete: close the connection
    /// (the worker sees an abandoned body and rolls back).
    Broken,
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
    /// The head of an upload (`parse::is_upload`): its body is streamed to a worker
    /// ([`HttpSession::upload`], [`HttpSession::feed`]) rather than buffered.
    Upload(Head),
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
        if head.body_len > 0 && head.method == Method::Post && parse::is_upload_path(&head.path) {
            self.inbuf.drain(..head.head_len);
            self.head_started = None;
            return Step::Upload(head);
        }
        let total = head.head_len + head.body_len;
        let Some(body) = self.inbuf.get(head.head_len..total).map(<[u8]>::to_vec) else {
            return self.incomplete();
        };
        self.inbuf.drain(..total);
        self.head_started = None;
        Step::Request(head, body)
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
    /// waits for it (already answered with an error, or the slot was reused). An answer
    /// to an upload whose body is not all read (a refusal) closes the connection.
    pub fn answered(&mut self, req: u64) -> Option<Exchange> {
        match &self.phase {
            Phase::Waiting { req: r, .. } | Phase::Uploading { req: r, .. } if *r == req => {}
            _ => return None,
        }
        match std::mem::replace(&mut self.phase, Phase::Serving) {
            Phase::Waiting { exchange, .. } => Some(*exchange),
            Phase::Uploading { exchange, .. } => Some(Exchange {
                keep_alive: false,
                ..*exchange
            }),
            _ => None,
        }
    }

    /// The worker of upload `req` takes its body from `sink`: `left` bytes, the first of
    /// them already in the buffer.
    pub fn upload(&mut self, req: u64, exchange: Exchange, left: usize, sink: IntakeSender) {
        self.phase = Phase::Uploading {
            req,
            exchange: Box::new(exchange),
            left,
            sink,
            held: None,
        };
    }

    /// Whether the connection streams the body of upload `req` (any upload when `None`).
    pub fn uploading(&self, req: Option<u64>) -> bool {
        matches!(&self.phase, Phase::Uploading { req: r, .. } if req.is_none_or(|q| q == *r))
    }

    /// Moves the upload's body to its worker, from the buffer first, then from the
    /// socket, [`intake::CHUNK_BYTES`] at a time, until the worker's channel is full,
    /// the socket has nothing more, or the body is all sent.
    pub fn feed<R: Read + ?Sized>(&mut self, r: &mut R) -> Fed {
        loop {
            let Phase::Uploading {
                left, sink, held, ..
            } = &mut self.phase
            else {
                return Fed::More;
            };
            if let Some(chunk) = held.take() {
                match sink.offer(chunk) {
                    Offer::Taken => {}
                    Offer::Full(chunk) => {
                        *held = Some(chunk);
                        return Fed::More;
                    }
                    Offer::Gone => return self.upload_sent(false),
                }
            }
            if *left == 0 {
                return self.upload_sent(true);
            }
            let want = (*left).min(intake::CHUNK_BYTES);
            let chunk = if self.inbuf.is_empty() {
                let mut buf = vec![0u8; want];
                match r.read(&mut buf) {
                    Ok(0) => return Fed::Broken,
                    Ok(n) => {
                        buf.truncate(n);
                        self.last_read = Instant::now();
                        buf
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fed::More,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Fed::Broken,
                }
            } else {
                let n = want.min(self.inbuf.len());
                self.inbuf.drain(..n).collect()
            };
            *left -= chunk.len();
            *held = Some(chunk);
        }
    }

    /// The upload's body went to its worker (`complete`), or the worker stopped taking
    /// it: the connection waits for the answer (which closes it when the body was not
    /// all read).
    fn upload_sent(&mut self, complete: bool) -> Fed {
        if let Phase::Uploading {
            req,
            exchange,
            sink,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Closing)
        {
            let mut exchange = *exchange;
            if complete {
                sink.complete();
            } else {
                exchange.keep_alive = false;
            }
            self.wait_for(req, exchange);
        }
        Fed::Sent
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
        if let Phase::Uploading { held: None, .. } = self.phase {
            // An upload whose peer stopped sending (while the worker holds the body
            // back, the wait is the node's, not the peer's).
            let idle = now.saturating_duration_since(self.last_read) > idle_timeout;
            return idle.then_some(Expiry::Idle);
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
        max_upload_bytes: 1 << 20,
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

    /// The loop side of an upload's wakes, counted.
    #[derive(Default)]
    struct Wakes(std::sync::Mutex<usize>);

    impl crate::http::context::Replies for Wakes {
        fn post(&self, _: crate::http::context::HttpEvent) {
            *self.0.lock().unwrap() += 1;
        }
    }

    /// A keep-alive request's exchange.
    fn kept() -> Exchange {
        Exchange {
            keep_alive: true,
            ..Exchange::invalid(Instant::now())
        }
    }

    #[test]
    fn an_upload_body_goes_to_the_worker_as_it_comes_and_waits_for_it() {
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut head = format!(
            "POST /rooms/r/files HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        head.extend_from_slice(&body[..500]);
        let mut s = session_with(&head, false);
        let Step::Upload(h) = s.next(0, 0, &L) else {
            panic!("an upload is streamed")
        };
        assert_eq!(h.body_len, body.len());
        let wakes = std::sync::Arc::new(Wakes::default());
        let (sink, intake) = intake::channel(crate::http::context::ReplyTo {
            to: wakes.clone(),
            key: 1,
            req: 7,
        });
        s.upload(7, kept(), h.body_len, sink);
        let mut peer = Peer {
            chunks: body[500..].chunks(1000).map(<[u8]>::to_vec).collect(),
            eof: false,
        };
        // The worker takes nothing: the channel fills, one chunk is held, no more is read.
        assert_eq!(s.feed(&mut peer), Fed::More);
        assert_eq!(peer.chunks.len(), 20 - intake::CHANNEL_CHUNKS);
        assert_eq!(*wakes.0.lock().unwrap(), 0);
        let t = Duration::from_millis(10);
        let mut got = intake.next(t).unwrap().unwrap();
        assert_eq!(*wakes.0.lock().unwrap(), 1, "the take wakes the loop");
        // Woken, the loop reads on; the worker takes everything until the end.
        loop {
            let fed = s.feed(&mut peer);
            while let Ok(Some(c)) = intake.next(t) {
                got.extend(c);
            }
            if fed == Fed::Sent {
                break;
            }
        }
        assert_eq!(intake.next(t).unwrap(), None, "complete");
        assert!(got == body);
        assert!(matches!(s.phase, Phase::Waiting { req: 7, .. }));
        assert!(s.answered(7).unwrap().keep_alive, "the body was all read");
    }

    #[test]
    fn an_upload_the_worker_refuses_closes_after_its_answer() {
        let mut s = session_with(
            b"POST /rooms/r/files HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345",
            false,
        );
        let Step::Upload(h) = s.next(0, 0, &L) else {
            panic!("an upload is streamed")
        };
        let (sink, intake) = intake::channel(crate::http::context::ReplyTo {
            to: std::sync::Arc::new(Wakes::default()),
            key: 1,
            req: 3,
        });
        s.upload(3, kept(), h.body_len, sink);
        // Refused before the body: the answer comes while the body is still arriving.
        drop(intake);
        let ex = s.answered(3).expect("it answers the upload");
        assert!(!ex.keep_alive, "the rest of the body is never read");
        // A peer that leaves mid-body breaks the upload.
        let mut s = session_with(
            b"POST /rooms/r/files HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345",
            true,
        );
        let Step::Upload(h) = s.next(0, 0, &L) else {
            panic!("an upload is streamed")
        };
        let (sink, _intake) = intake::channel(crate::http::context::ReplyTo {
            to: std::sync::Arc::new(Wakes::default()),
            key: 1,
            req: 4,
        });
        s.upload(4, Exchange::invalid(Instant::now()), h.body_len, sink);
        let mut gone = Peer {
            chunks: vec![],
            eof: true,
        };
        assert_eq!(s.feed(&mut gone), Fed::Broken);
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
