//! The WebSocket side of one event loop: client events (join, leave, send, typing,
//! ping), rate limits, closing, heartbeats, and the loop's room registry. Joining and
//! catch-up live in `join.rs`, live delivery in `deliver.rs`.

use crate::base::config::{MessagesConfig, WsConfig};
use crate::base::error::ApiError;
use crate::base::metrics::Metrics;
use crate::base::model::{Identity, Message};
use crate::chat::edits::{self, Change, Rules};
use crate::chat::heads::Heads;
use crate::chat::presence::{self, Presence, PresenceOp};
use crate::chat::reads::{Mark, Reads};
use crate::pg::pool::JobQueue;
use crate::pg::writer::{Extra, WriteJob, Writers};
use crate::ws::codec::text_frame;
use crate::ws::events::{self, ClientEvent};
use crate::ws::registry::Registry;
use crate::ws::session::{Frame, Session, Sub};
use crate::ws::{Interest, LoopEvent, Mailbox, Outcome, Outcomes, Sockets};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most rows per catch-up or gap fetch.
pub(crate) const FETCH_PAGE: i64 = 1000;
/// A typing indicator not refreshed for this long is turned off.
const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
/// Typing starts relayed at most this often per socket and room.
const TYPING_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Most frames, and bytes, read from one socket per loop turn, so that one busy client
/// cannot keep its loop from everyone else; the rest waits for the next turn.
const READ_BUDGET: usize = 64;
const READ_BUDGET_BYTES: usize = 256 * 1024;

/// What WebSocket sessions need from the node.
pub struct WsCtx {
    /// `[websocket]` settings.
    pub cfg: WsConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Message writers.
    pub writers: Writers,
    /// Query workers (catch-up and gap fetches, typing notifications).
    pub db: JobQueue,
    /// Batched membership checks.
    pub heads: Arc<Heads>,
    /// The presence thread.
    pub presence: Presence,
    /// Which loops have which rooms.
    pub interest: Arc<Interest>,
    /// The read-marks thread.
    pub reads: Reads,
    /// `[messages]` settings.
    pub messages: MessagesConfig,
}

impl WsCtx {
    /// The rules edits and reactions are checked against.
    pub fn rules(&self) -> Rules {
        Rules {
            edit_window: (self.messages.edit_window_secs > 0)
                .then(|| Duration::from_secs(self.messages.edit_window_secs)),
            max_reactions: self.messages.max_reactions,
        }
    }
}

/// The WebSocket side of one loop.
pub struct Hub {
    pub(crate) ctx: Arc<WsCtx>,
    /// This loop's index.
    pub(crate) idx: usize,
    /// This loop's mailbox, for answers from workers.
    pub(crate) mailbox: Arc<dyn Mailbox>,
    /// Rooms with joined sockets on this loop.
    pub(crate) rooms: Registry,
    /// Gap fetches to retry: (room, after, not before).
    pub(crate) retry: Vec<(Uuid, i64, Instant)>,
    /// Socket and join ids, unique within the loop.
    next_id: u64,
    /// Each user's WebSocket connections on this loop (read state goes to all of them).
    pub(crate) users: HashMap<Uuid, Vec<usize>>,
    /// Joins waiting for their room's notification shard.
    pub(crate) waiting: Vec<crate::ws::join::PendingJoin>,
}

impl Hub {
    /// The hub of loop `idx`.
    pub fn new(ctx: Arc<WsCtx>, idx: usize, mailbox: Arc<dyn Mailbox>) -> Hub {
        Hub {
            ctx,
            idx,
            mailbox,
            rooms: Registry::default(),
            retry: Vec::new(),
            next_id: 1,
            users: HashMap::new(),
            waiting: Vec::new(),
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A session for connection `k`, just upgraded (`leftover`: bytes sent behind the
    /// upgrade request).
    pub fn session(&mut self, k: usize, who: Identity, echo: bool, leftover: Vec<u8>) -> Session {
        self.ctx.metrics.websockets.fetch_add(1, Relaxed);
        if !echo {
            self.users.entry(who.user_id).or_default().push(k);
        }
        let id = self.next_id();
        Session::new(who, id, echo, &self.ctx.cfg, leftover)
    }

    /// The socket is readable: reads and handles frames, up to this turn's budget.
    pub fn readable(&mut self, k: usize, socks: &mut impl Sockets) -> Outcome {
        let bound = self.ctx.cfg.max_outbound_bytes / 2;
        socks.with(k, |s, _| s.read_bytes = 0);
        for _ in 0..READ_BUDGET {
            let Some(frame) = socks.with(k, |s, t| s.read_frame(t, bound)) else {
                return Outcome::Continue;
            };
            match frame {
                Frame::Text(text) => {
                    if let Some(o) = self.client_event(k, text.as_str(), socks) {
                        return o;
                    }
                }
                Frame::Binary => self.send_error(
                    socks,
                    k,
                    &ApiError::BadRequest(
                        "invalid_payload",
                        "binary frames are not supported; send JSON text frames".into(),
                    ),
                ),
                Frame::Handled => {}
                Frame::Blocked | Frame::Paused => return Outcome::Continue,
                Frame::End(o) => return o,
            }
            if socks.with(k, |s, _| s.read_bytes) > Some(READ_BUDGET_BYTES) {
                return Outcome::Again;
            }
        }
        Outcome::Again
    }

    /// The socket's queue drained: resumes reading if backpressure had paused it.
    pub fn drained(&mut self, k: usize, socks: &mut impl Sockets) -> Outcome {
        let paused = socks.with(k, |s, _| std::mem::take(&mut s.paused));
        if paused == Some(true) {
            self.readable(k, socks)
        } else {
            Outcome::Continue
        }
    }

    /// After the end-of-turn write, which the socket could not take whole: a client that
    /// leaves more than the bound unread is a slow consumer. (Judged after writing, not
    /// while queueing: one turn's burst is mostly shared frames, and a client that reads
    /// fast drains it.)
    pub fn backlogged(&mut self, k: usize, socks: &mut impl Sockets) -> Outcome {
        let bound = self.ctx.cfg.max_outbound_bytes;
        match socks.with(k, |_, t| t.backlog() > bound) {
            Some(true) => self.slow_close(k, socks),
            _ => Outcome::Continue,
        }
    }

    /// Closes a slow consumer with 1013 rather than skipping messages for it.
    pub(crate) fn slow_close(&mut self, k: usize, socks: &mut impl Sockets) -> Outcome {
        let metrics = &self.ctx.metrics;
        socks
            .with(k, |s, t| {
                if s.closing() {
                    return Outcome::Continue;
                }
                metrics.slow_consumer_closes.fetch_add(1, Relaxed);
                // What is queued cannot reach a client that stopped reading: drop it so
                // memory stays bounded, and tell the client to reconnect and catch up.
                t.discard();
                s.close(t, 1013, "slow consumer: reconnect with last_seen_seq")
            })
            .unwrap_or(Outcome::Continue)
    }

    /// Sends a close frame with `code`; the loop closes the connection once it is written.
    pub fn close(
        &mut self,
        k: usize,
        socks: &mut impl Sockets,
        code: u16,
        reason: &str,
    ) -> Outcome {
        socks
            .with(k, |s, t| s.close(t, code, reason))
            .unwrap_or(Outcome::Continue)
    }

    /// Clean-up when a WebSocket ends, however it ends; called once, before the loop
    /// forgets the connection.
    pub fn closed(&mut self, k: usize, session: &mut Session) {
        if let Some(keys) = self.users.get_mut(&session.who.user_id) {
            keys.retain(|&x| x != k);
            if keys.is_empty() {
                self.users.remove(&session.who.user_id);
            }
        }
        let subs = std::mem::take(&mut session.subs);
        for s in subs {
            self.release_sub(k, &session.who, &s);
        }
        self.ctx.metrics.websockets.fetch_sub(1, Relaxed);
    }

    /// Undoes one subscription: registry, interest, typing and presence.
    pub(crate) fn release_sub(&mut self, k: usize, who: &Identity, s: &Sub) {
        if self.rooms.unsubscribe(s.room, k) {
            self.ctx.interest.lose(s.room, self.idx);
        }
        if s.typing_since.is_some() {
            presence::typing(&self.ctx.db, who, s.room, false);
        }
        if s.present {
            self.ctx.presence.send(PresenceOp::leave(s.room, who));
        }
        self.publish_stats();
    }

    /// Removes `k`'s subscription to `room`, if any; true when there was one.
    pub(crate) fn leave(&mut self, k: usize, room: Uuid, socks: &mut impl Sockets) -> bool {
        let Some((who, Some(sub))) = socks.with(k, |s, _| (s.who.clone(), s.take_sub(room))) else {
            return false;
        };
        self.release_sub(k, &who, &sub);
        true
    }

    /// Publishes this loop's room and subscription counts for /metrics (O(1): the
    /// registry keeps both as it changes).
    pub(crate) fn publish_stats(&self) {
        self.ctx
            .interest
            .set_stats(self.idx, self.rooms.rooms.len(), self.rooms.subscriptions);
    }

    /// How long the loop may sleep before the hub needs it (a busy room's batching
    /// window ends).
    pub fn deadline(&self) -> Option<Duration> {
        let window = Duration::from_millis(self.ctx.cfg.coalesce_ms);
        self.rooms
            .next_due(window)
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Queues an event for one socket (not shared).
    pub(crate) fn send_owned(&self, socks: &mut impl Sockets, k: usize, payload: Vec<u8>) {
        if socks.with(k, |_, t| t.send(text_frame(&payload))).is_some() {
            self.ctx.metrics.ws_frames_out.fetch_add(1, Relaxed);
        }
    }

    /// Sends an `error` event.
    pub(crate) fn send_error(&self, socks: &mut impl Sockets, k: usize, e: &ApiError) {
        self.send_owned(socks, k, events::error(e, None));
    }

    fn rate_limited(&self, k: usize, socks: &mut impl Sockets) -> bool {
        let max = self.ctx.cfg.max_events_per_sec;
        if max == 0 {
            return false;
        }
        socks
            .with(k, |s, _| {
                let now = Instant::now();
                if now.duration_since(s.window.0) >= Duration::from_secs(1) {
                    s.window = (now, 0);
                }
                s.window.1 += 1;
                s.window.1 > max
            })
            .unwrap_or(true)
    }

    /// Handles one client text frame; `Some` when the connection must end.
    fn client_event(&mut self, k: usize, text: &str, socks: &mut impl Sockets) -> Option<Outcome> {
        let ev = match events::decode(text) {
            Ok(ev) => ev,
            Err(e) => {
                self.send_error(socks, k, &e);
                return None;
            }
        };
        match ev {
            ClientEvent::Ping(data) => self.send_owned(socks, k, events::encode("pong", &data)),
            ClientEvent::JoinRoom {
                room_id,
                last_seen_seq,
            } => self.join(k, room_id, last_seen_seq, socks),
            ClientEvent::LeaveRoom { room_id } => {
                self.leave(k, room_id, socks);
                self.send_owned(
                    socks,
                    k,
                    events::encode("left_room", &json!({ "room_id": room_id })),
                );
            }
            ClientEvent::SendMessage {
                room_id,
                content,
                client_msg_id,
                reply_to,
                attachments,
            } => {
                if self.rate_limited(k, socks) {
                    let e = ApiError::RateLimited(1);
                    self.send_owned(socks, k, events::error(&e, client_msg_id.as_deref()));
                    return None;
                }
                let max = self.ctx.messages.max_attachments;
                if attachments
                    .as_ref()
                    .and_then(|a| a.as_array())
                    .is_some_and(|a| a.len() > max)
                {
                    let e = ApiError::BadRequest(
                        "invalid_payload",
                        format!("at most {max} attachments per message"),
                    );
                    self.send_owned(socks, k, events::error(&e, client_msg_id.as_deref()));
                    return None;
                }
                let extra = (reply_to.is_some() || attachments.is_some()).then(|| {
                    Box::new(Extra {
                        reply_to,
                        attachments,
                    })
                });
                self.send_message(k, room_id, content, client_msg_id, extra, socks);
            }
            ClientEvent::Change {
                room_id,
                message_id,
                change,
                client_msg_id,
            } => {
                if self.rate_limited(k, socks) {
                    let e = ApiError::RateLimited(1);
                    self.send_owned(socks, k, events::error(&e, client_msg_id.as_deref()));
                    return None;
                }
                self.change(k, room_id, message_id, change, client_msg_id, socks);
            }
            ClientEvent::Typing { room_id, typing } => {
                if self.rate_limited(k, socks) {
                    self.send_error(socks, k, &ApiError::RateLimited(1));
                    return None;
                }
                self.typing(k, room_id, typing, socks);
            }
            ClientEvent::MarkRead { room_id, seq } => self.mark_read(k, room_id, seq, socks),
        }
        None
    }

    /// `mark_read`: queued for the batched read marks; the user's sockets (this one
    /// included) learn the result as `read_state`.
    fn mark_read(&mut self, k: usize, room: Uuid, seq: i64, socks: &mut impl Sockets) {
        let user = socks.with(k, |s, _| {
            let user = s.who.user_id;
            s.sub(room).filter(|sub| !sub.joining).map(|_| user)
        });
        match user {
            Some(Some(user)) => self.ctx.reads.mark(Mark {
                room,
                user,
                seq,
                reply: None,
                quiet: false,
            }),
            Some(None) => self.send_error(
                socks,
                k,
                &ApiError::Forbidden("not_member", "Join the room before marking it read"),
            ),
            None => {}
        }
    }

    fn send_message(
        &mut self,
        k: usize,
        room: Uuid,
        content: String,
        client_msg_id: Option<String>,
        extra: Option<Box<Extra>>,
        socks: &mut impl Sockets,
    ) {
        let Some((sock, who)) = socks.with(k, |s, _| (s.id, s.who.clone())) else {
            return;
        };
        let mailbox = self.mailbox.clone();
        let cmid = client_msg_id.clone();
        let job = WriteJob {
            room_id: room,
            user_id: who.user_id,
            username: who.username,
            content,
            client_msg_id,
            extra,
            reply: Box::new(move |result| {
                mailbox.post(LoopEvent::Sent {
                    key: k,
                    sock,
                    client_msg_id: cmid,
                    result,
                });
            }),
        };
        if let Err(job) = self.ctx.writers.submit(job) {
            let cmid = job.client_msg_id.clone();
            // Dropping the job drops its reply closure without calling it.
            drop(job);
            self.send_owned(
                socks,
                k,
                events::error(&ApiError::Unavailable, cmid.as_deref()),
            );
        }
    }

    /// An edit, deletion or reaction: applied on a query worker; the entry it makes
    /// reaches every socket of the room like a message, and this socket gets its ack.
    fn change(
        &mut self,
        k: usize,
        room: Uuid,
        target: i64,
        change: Change,
        client_msg_id: Option<String>,
        socks: &mut impl Sockets,
    ) {
        let Some((sock, who)) = socks.with(k, |s, _| (s.id, s.who.clone())) else {
            return;
        };
        let mailbox = self.mailbox.clone();
        let rules = self.ctx.rules();
        let job: crate::pg::pool::Job = Box::new(move |w| {
            let result = edits::apply(
                w,
                &who,
                room,
                target,
                change,
                client_msg_id.as_deref(),
                rules,
            )
            .map(Arc::new);
            mailbox.post(LoopEvent::Sent {
                key: k,
                sock,
                client_msg_id,
                result,
            });
        });
        if self.ctx.db.submit(job).is_err() {
            self.send_error(socks, k, &ApiError::Unavailable);
        }
    }

    fn on_sent(
        &mut self,
        k: usize,
        sock: u64,
        cmid: Option<String>,
        result: Result<Arc<Message>, ApiError>,
        socks: &mut impl Sockets,
    ) {
        if socks.with(k, |s, _| s.id) != Some(sock) {
            return;
        }
        if let Ok(m) = &result {
            self.ctx.reads.mark(Mark {
                room: m.room_id,
                user: m.user_id,
                seq: m.seq,
                reply: None,
                quiet: true,
            });
        }
        match (result, cmid) {
            (Ok(m), Some(c)) => {
                let ack = json!({ "client_msg_id": c, "id": m.id, "seq": m.seq, "room_id": m.room_id, "created_at": m.created_at });
                self.send_owned(socks, k, events::encode("message_ack", &ack));
            }
            (Ok(_), None) => {}
            (Err(e), cmid) => self.send_owned(socks, k, events::error(&e, cmid.as_deref())),
        }
    }

    fn typing(&mut self, k: usize, room: Uuid, typing: bool, socks: &mut impl Sockets) {
        let now = Instant::now();
        let relay = socks.with(k, |s, _| {
            let who = s.who.clone();
            let sub = s.sub(room).filter(|s| !s.joining)?;
            let relay = if typing {
                let due = sub
                    .typing_relayed
                    .is_none_or(|t| now.duration_since(t) >= TYPING_MIN_INTERVAL);
                if due {
                    sub.typing_since = Some(now);
                    sub.typing_relayed = Some(now);
                }
                due
            } else {
                sub.typing_since.take().is_some()
            };
            Some((who, relay))
        });
        match relay {
            Some(Some((who, true))) => presence::typing(&self.ctx.db, &who, room, typing),
            Some(Some((_, false))) => {}
            Some(None) => self.send_error(
                socks,
                k,
                &ApiError::Forbidden("not_member", "Join the room before typing in it"),
            ),
            None => {}
        }
    }

    /// Handles a message from another thread.
    pub fn on_event(&mut self, ev: LoopEvent, socks: &mut impl Sockets) -> Outcomes {
        let mut out = Outcomes::new();
        match ev {
            LoopEvent::Joined {
                key,
                sock,
                room,
                join_id,
                result,
            } => self.on_joined(key, sock, room, join_id, result, socks, &mut out),
            LoopEvent::Sent {
                key,
                sock,
                client_msg_id,
                result,
            } => self.on_sent(key, sock, client_msg_id, result, socks),
            LoopEvent::CatchUp {
                key,
                sock,
                room,
                result,
            } => self.on_catch_up(key, sock, room, result, socks, &mut out),
            LoopEvent::RoomFetched {
                room,
                after,
                result,
            } => self.on_room_fetched(room, after, result),
            LoopEvent::Live(batch) => {
                if let Some(gap) = self.rooms.live(batch.room, &batch.msgs) {
                    self.fetch_room(batch.room, gap);
                }
            }
            LoopEvent::RoomEvent {
                room,
                except,
                frame,
            } => self.room_event(room, except, frame, socks),
            LoopEvent::Kick { room, user, reason } => self.kick(room, Some(user), &reason, socks),
            LoopEvent::Gone(room) => self.kick(room, None, "deleted", socks),
            LoopEvent::Reads(marks) => self.reads(&marks, socks),
            LoopEvent::User { user, frame } => {
                for &k in self.users.get(&user).map_or(&[][..], Vec::as_slice) {
                    socks.with(k, |_, t| t.send_shared(frame.clone()));
                }
            }
            LoopEvent::Revoke(ids) => {
                for k in socks.keys() {
                    let revoked = socks.with(k, |s, _| ids.contains(&s.who.session_id));
                    if revoked == Some(true) {
                        out.push((k, self.close(k, socks, 1008, "session revoked")));
                    }
                }
            }
            LoopEvent::ShardsReady => self.shards_ready(),
            LoopEvent::Resync => {
                for (room, gap) in self.rooms.resync() {
                    self.submit_fetch(room, gap);
                }
            }
        }
        out
    }

    /// Pings, dead peers, stale typing indicators, fetch retries.
    pub fn sweep(&mut self, now: Instant, socks: &mut impl Sockets) -> Outcomes {
        let interval = Duration::from_secs(self.ctx.cfg.ping_interval_secs);
        let mut out = Outcomes::new();
        for k in socks.keys() {
            let stale = socks.with(k, |s, t| {
                let o = s.heartbeat(t, now, interval);
                let who = s.who.clone();
                if o != Outcome::Continue {
                    return (o, who, Vec::new());
                }
                let stale: Vec<Uuid> = s
                    .subs
                    .iter_mut()
                    .filter(|sub| {
                        sub.typing_since
                            .is_some_and(|t| now.duration_since(t) >= TYPING_TIMEOUT)
                    })
                    .map(|sub| {
                        sub.typing_since = None;
                        sub.room
                    })
                    .collect();
                (o, who, stale)
            });
            let Some((o, who, stale)) = stale else {
                continue;
            };
            if o != Outcome::Continue {
                out.push((k, o));
                continue;
            }
            for room in stale {
                presence::typing(&self.ctx.db, &who, room, false);
            }
        }
        self.retry_due(now);
        out
    }
}
