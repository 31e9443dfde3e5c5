//! The HTTP side of one event loop: the `Protocol` the loop drives its HTTP connections
//! through. Frames requests out of each [`HttpSession`], routes them (answered on the
//! spot, or by a worker whose reply comes back as an [`HttpEvent`]), writes the answers
//! (keep-alive, HEAD, CORS), refuses connections over their address's limit (429),
//! answers unparseable requests (400, 411, 413, 431, 505) and slow heads (408), drops
//! idle peers and peers that do not read, and returns the upgrade of a WebSocket request
//! as `Outcome::Upgrade` for the loop to hand the connection to ws/.

use crate::base::error::ApiError;
use crate::base::model::Identity;
use crate::base::session::{Admission, Outcome, Outcomes, Protocol, Sessions, Transport, Upgrade};
use crate::http::context::{HttpCtx, HttpEvent, Replies, ReplyTo};
use crate::http::intake::{self, Intake, IntakeSender};
use crate::http::ops;
use crate::http::parse::{Head, Limits, Method, ParseError};
use crate::http::response::Response;
use crate::http::routes::{self, Routed};
use crate::http::session::{Exchange, Expiry, Fed, HttpSession, Phase, Step};
use crate::http::stream::{BodyReader, Pumped};
use crate::http::upgrade;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The HTTP side of one loop.
pub struct HttpDriver {
    ctx: Arc<HttpCtx>,
    /// This loop's address, where workers' answers go.
    replies: Arc<dyn Replies>,
    limits: Limits,
    /// Request ids, unique within the loop.
    next_req: u64,
    /// The node stops: every answer closes its connection.
    stopping: bool,
}

impl HttpDriver {
    /// The HTTP side of the loop whose address is `replies`.
    pub fn new(ctx: Arc<HttpCtx>, replies: Arc<dyn Replies>) -> HttpDriver {
        let h = &ctx.cfg.http;
        let limits = Limits {
            max_header_bytes: h.max_header_bytes,
            max_headers: h.max_headers,
            max_body_bytes: h.max_body_bytes,
            max_upload_bytes: ctx.cfg.files.max_bytes,
        };
        HttpDriver {
            ctx,
            replies,
            limits,
            next_req: 1,
            stopping: false,
        }
    }

    /// Reads what the socket holds and serves what it completes.
    fn read(&mut self, k: usize, s: &mut HttpSession, t: &mut dyn Transport) -> Outcome {
        match s.phase {
            Phase::Closing => return Outcome::Continue,
            Phase::Refused => return refuse(s, t),
            Phase::Serving
            | Phase::Waiting { .. }
            | Phase::Streaming { .. }
            | Phase::Uploading { .. } => {}
        }
        if s.uploading(None) {
            return feed(s, t);
        }
        s.fill(t, self.limits.max_header_bytes + self.limits.max_body_bytes);
        self.serve(k, s, t)
    }

    /// Serves the complete requests in the buffer, in order, one at a time, while the
    /// answers queued stay under the bound and this turn's budget lasts.
    fn serve(&mut self, k: usize, s: &mut HttpSession, t: &mut dyn Transport) -> Outcome {
        let mut served = 0;
        loop {
            match s.next(t.queued(), served, &self.limits) {
                Step::Wait => return Outcome::Continue,
                Step::Again => return Outcome::Again,
                Step::Close => return Outcome::Close,
                Step::Invalid(e) => {
                    let resp = parse_error_response(&e).closing();
                    return self.respond(s, t, &Exchange::invalid(Instant::now()), resp);
                }
                Step::Request(head, body) => {
                    served += 1;
                    match self.dispatch(k, s, t, head, body, None) {
                        Outcome::Continue => {}
                        other => return other,
                    }
                }
                Step::Upload(head) => {
                    served += 1;
                    let (sink, intake) = intake::channel(ReplyTo {
                        to: self.replies.clone(),
                        key: k,
                        req: self.next_req,
                    });
                    let left = head.body_len;
                    match self.dispatch(k, s, t, head, Vec::new(), Some((intake, sink, left))) {
                        Outcome::Continue => {}
                        other => return other,
                    }
                }
            }
        }
    }

    /// Routes one request: answered now, left with a worker, or upgraded. An upload
    /// comes with its body's channel and length: a route that takes the intake streams
    /// the body to its worker; any other answer closes the connection (the body is not
    /// read).
    fn dispatch(
        &mut self,
        k: usize,
        s: &mut HttpSession,
        t: &mut dyn Transport,
        mut head: Head,
        body: Vec<u8>,
        upload: Option<(Intake, IntakeSender, usize)>,
    ) -> Outcome {
        let req = self.next_req;
        self.next_req += 1;
        let started = Instant::now();
        let reply = ReplyTo {
            to: self.replies.clone(),
            key: k,
            req,
        };
        let (intake, sink) = match upload {
            Some((intake, sink, left)) => (Some(intake), Some((sink, left))),
            None => (None, None),
        };
        let (route, routed, taken) =
            routes::dispatch(&self.ctx, &head, body, intake, t.peer(), &reply);
        let streamed = sink.is_some();
        let exchange = |head: &mut Head| Exchange {
            origin: head.headers.origin.take(),
            // An upload no worker streams leaves its body unread: the answer closes.
            keep_alive: head.keep_alive && (!streamed || taken),
            head_only: head.method == Method::Head,
            route,
            started,
        };
        match (routed, sink) {
            (Routed::Pending, Some((sink, left))) if taken => {
                if head.headers.expect_continue {
                    // curl and other clients wait for this (a second, for curl) before
                    // sending a large body.
                    t.send(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
                }
                s.upload(req, exchange(&mut head), left, sink);
                feed(s, t)
            }
            (Routed::Now(resp), Some(_)) => {
                self.respond(s, t, &exchange(&mut head), resp.closing())
            }
            (Routed::Now(resp), None) => self.respond(s, t, &exchange(&mut head), resp),
            (Routed::Pending, _) => {
                s.wait_for(req, exchange(&mut head));
                Outcome::Continue
            }
            (Routed::Upgrade(who), _) => {
                self.ctx
                    .metrics
                    .record_request(route, 101, started.elapsed().as_secs_f64());
                upgrade_to(s, t, &head, who, false)
            }
            (Routed::UpgradeEcho, _) => {
                let nobody = Identity {
                    user_id: uuid::Uuid::nil(),
                    username: String::new(),
                    session_id: uuid::Uuid::nil(),
                };
                upgrade_to(s, t, &head, nobody, true)
            }
        }
    }

    /// Queues an answer and records it; `Close` when the connection ends with it.
    fn respond(
        &self,
        s: &mut HttpSession,
        t: &mut dyn Transport,
        ex: &Exchange,
        resp: Response,
    ) -> Outcome {
        self.ctx
            .metrics
            .record_request(ex.route, resp.status, ex.started.elapsed().as_secs_f64());
        if resp.status == 500 {
            self.ctx.metrics.http_500.fetch_add(1, Relaxed);
        }
        let keep = ex.keep_alive && !resp.close && !self.stopping;
        let cors = ops::cors_origin(&self.ctx.cfg, ex.origin.as_deref());
        t.send(resp.to_bytes(cors, keep, ex.head_only));
        if keep {
            Outcome::Continue
        } else {
            s.close();
            Outcome::Close
        }
    }
}

impl HttpDriver {
    /// A worker's streamed answer to `req`: the head now, then the chunks as they come.
    fn start_stream(
        &mut self,
        k: usize,
        s: &mut HttpSession,
        t: &mut dyn Transport,
        req: u64,
        resp: Response,
        body: BodyReader,
    ) -> Outcome {
        let Some(ex) = s.answered(req) else {
            // No one waits: dropping the body stops its worker.
            return Outcome::Continue;
        };
        if self.stopping || ex.head_only {
            let resp = if self.stopping {
                Response::from_error(&ApiError::Unavailable).closing()
            } else {
                resp
            };
            return match self.respond(s, t, &ex, resp) {
                Outcome::Continue => self.read(k, s, t),
                other => other,
            };
        }
        self.ctx
            .metrics
            .record_request(ex.route, resp.status, ex.started.elapsed().as_secs_f64());
        let cors = ops::cors_origin(&self.ctx.cfg, ex.origin.as_deref());
        t.send(resp.chunked_head(cors, ex.keep_alive && !resp.close));
        s.stream(req, ex, body);
        self.pump(k, s, t, None)
    }

    /// Moves the ready chunks of the connection's streamed body (of request `req`, any
    /// when `None`) to its queue; at the end, serving resumes or the connection closes.
    fn pump(
        &mut self,
        k: usize,
        s: &mut HttpSession,
        t: &mut dyn Transport,
        req: Option<u64>,
    ) -> Outcome {
        let Some(body) = s.body(req) else {
            return Outcome::Continue;
        };
        match body.pump(t) {
            Pumped::More => Outcome::Continue,
            Pumped::Aborted => {
                // The body is not terminated: closing says it is incomplete.
                s.close();
                Outcome::Close
            }
            Pumped::Done => match s.streamed() {
                Some(ex) if ex.keep_alive && !self.stopping => self.read(k, s, t),
                _ => {
                    s.close();
                    Outcome::Close
                }
            },
        }
    }
}

impl Protocol for HttpDriver {
    type Session = HttpSession;
    type Event = HttpEvent;
    type Open = Admission;

    fn open(&mut self, _k: usize, from: Admission) -> HttpSession {
        HttpSession::new(from, Instant::now())
    }

    fn readable(&mut self, k: usize, conns: &mut impl Sessions<HttpSession>) -> Outcome {
        conns
            .with(k, |s, t| self.read(k, s, t))
            .unwrap_or(Outcome::Continue)
    }

    /// The peer took its answers: more of a streamed body, or the requests that waited.
    fn drained(&mut self, k: usize, conns: &mut impl Sessions<HttpSession>) -> Outcome {
        conns
            .with(k, |s, t| {
                if s.body(None).is_some() {
                    self.pump(k, s, t, None)
                } else if s.resume() {
                    self.read(k, s, t)
                } else {
                    Outcome::Continue
                }
            })
            .unwrap_or(Outcome::Continue)
    }

    /// Answers wait until the peer reads them (bounded by `MAX_HTTP_QUEUED`, then by
    /// the idle timeout).
    fn backlogged(&mut self, _k: usize, _conns: &mut impl Sessions<HttpSession>) -> Outcome {
        Outcome::Continue
    }

    fn on_event(&mut self, ev: HttpEvent, conns: &mut impl Sessions<HttpSession>) -> Outcomes {
        let (key, outcome) = match ev {
            HttpEvent::Reply { key, req, resp } => (
                key,
                conns.with(key, |s, t| {
                    let Some(ex) = s.answered(req) else {
                        return Outcome::Continue;
                    };
                    match self.respond(s, t, &ex, resp) {
                        // Pipelined requests may be waiting, and reading may have paused
                        // at the cap.
                        Outcome::Continue => self.read(key, s, t),
                        other => other,
                    }
                }),
            ),
            HttpEvent::Upgrade {
                key,
                req,
                who,
                head,
            } => (
                key,
                conns.with(key, |s, t| {
                    let Some(ex) = s.answered(req) else {
                        return Outcome::Continue;
                    };
                    if self.stopping {
                        let resp = Response::from_error(&ApiError::Unavailable).closing();
                        return self.respond(s, t, &ex, resp);
                    }
                    self.ctx.metrics.record_request(
                        ex.route,
                        101,
                        ex.started.elapsed().as_secs_f64(),
                    );
                    upgrade_to(s, t, &head, who, false)
                }),
            ),
            HttpEvent::Stream {
                key,
                req,
                resp,
                body,
            } => (
                key,
                conns.with(key, |s, t| self.start_stream(key, s, t, req, resp, body)),
            ),
            HttpEvent::Body { key, req } => {
                (key, conns.with(key, |s, t| self.pump(key, s, t, Some(req))))
            }
            HttpEvent::Intake { key, req } => (
                key,
                conns.with(key, |s, t| {
                    if s.uploading(Some(req)) {
                        feed(s, t)
                    } else {
                        Outcome::Continue
                    }
                }),
            ),
        };
        match outcome {
            Some(Outcome::Continue) | None => Outcomes::new(),
            Some(o) => vec![(key, o)],
        }
    }

    fn end_turn(&mut self, _conns: &mut impl Sessions<HttpSession>) {}

    /// Slow request heads (408), idle keep-alive connections, peers that take no answer.
    fn sweep(&mut self, now: Instant, conns: &mut impl Sessions<HttpSession>) -> Outcomes {
        let header_timeout = Duration::from_millis(self.ctx.cfg.http.header_timeout_ms);
        let idle_timeout = Duration::from_secs(self.ctx.cfg.http.idle_timeout_secs);
        let mut out = Outcomes::new();
        for k in conns.keys() {
            let o = conns.with(k, |s, t| {
                match s.expiry(
                    now,
                    t.queued(),
                    t.last_write(),
                    header_timeout,
                    idle_timeout,
                ) {
                    None => Outcome::Continue,
                    Some(Expiry::Idle) => Outcome::Drop,
                    Some(Expiry::HeadTimeout) => {
                        s.clear();
                        let resp = Response::error(
                            408,
                            "request_timeout",
                            "Request head not received in time",
                        )
                        .closing();
                        self.respond(s, t, &Exchange::invalid(now), resp)
                    }
                }
            });
            if let Some(o) = o
                && o != Outcome::Continue
            {
                out.push((k, o));
            }
        }
        out
    }

    /// Connections with a worker's answer pending close after it; the others now (a
    /// streamed body is cut: its worker stops).
    fn shutdown(&mut self, conns: &mut impl Sessions<HttpSession>) -> Outcomes {
        self.stopping = true;
        let mut out = Outcomes::new();
        for k in conns.keys() {
            let idle = conns.with(k, |s, _| {
                let idle = !matches!(s.phase, Phase::Waiting { .. });
                if idle {
                    s.close();
                }
                idle
            });
            if idle == Some(true) {
                out.push((k, Outcome::Close));
            }
        }
        out
    }

    fn closed(&mut self, _k: usize, _session: HttpSession) {}

    fn deadline(&self) -> Option<Duration> {
        None
    }
}

/// Moves an upload's body on to its worker; a peer that left mid-body is closed.
fn feed(s: &mut HttpSession, t: &mut dyn Transport) -> Outcome {
    match s.feed(t) {
        Fed::More | Fed::Sent => Outcome::Continue,
        Fed::Broken => {
            s.close();
            Outcome::Close
        }
    }
}

/// Over the per-address limit: say so, then close.
fn refuse(s: &mut HttpSession, t: &mut dyn Transport) -> Outcome {
    let resp = Response::from_error(&ApiError::RateLimited(1));
    t.send(resp.to_bytes(None, false, false));
    s.close();
    Outcome::Close
}

/// Completes the upgrade: answers 101 and hands what the WebSocket session starts from
/// to the loop, with the bytes the client sent behind its request.
fn upgrade_to(
    s: &mut HttpSession,
    t: &mut dyn Transport,
    head: &Head,
    who: Identity,
    echo: bool,
) -> Outcome {
    t.send(upgrade::accept_response(head));
    let leftover = s.take_leftover();
    s.close();
    Outcome::Upgrade(Box::new(Upgrade {
        who,
        echo,
        leftover,
    }))
}

fn parse_error_response(e: &ParseError) -> Response {
    let (status, code) = match e {
        ParseError::Malformed => (400, "bad_request"),
        ParseError::HeadersTooLarge => (431, "headers_too_large"),
        ParseError::BodyTooLarge => (413, "payload_too_large"),
        ParseError::LengthRequired => (411, "length_required"),
        ParseError::Version => (505, "http_version_not_supported"),
    };
    Response::error(status, code, &e.to_string())
}
