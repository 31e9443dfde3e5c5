//! The WebSocket side of one event loop, the `Protocol` the loop drives its WebSocket
//! connections through: opening and closing sessions, reading frames, heartbeats and
//! the loop's events. Client events are handled in `client.rs`, joining and catch-up in
//! `join.rs`, live delivery in `deliver.rs`. The hub's state is its own (these files are
//! its submodules): the room registry, the joins waiting for a shard, the gap fetches to
//! retry and the per-user index each keep theirs behind methods, and everything that
//! reaches the database goes through a [`Store`], so the logic is unit-tested without
//! one (`tests.rs`).

mod client;
mod deliver;
mod join;
#[cfg(test)]
mod tests;

use crate::base::config::WsConfig;
use crate::base::error::ApiError;
use crate::base::metrics::Metrics;
use crate::base::model::Identity;
use crate::base::session::{Protocol, Sessions, Upgrade};
use crate::chat::messages::Rules;
use crate::chat::presence::PresenceOp;
use crate::ws::codec::text_frame;
use crate::ws::events;
use crate::ws::gaps::Retries;
use crate::ws::joins::Waiting;
use crate::ws::registry::Registry;
use crate::ws::session::{Frame, Session, Sub};
use crate::ws::store::Store;
use crate::ws::users::Users;
use crate::ws::{Interest, LoopEvent, Mailbox, Outcome, Outcomes, Sockets};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most rows per catch-up or gap fetch.
const FETCH_PAGE: i64 = 1000;
/// A typing indicator not refreshed for this long is turned off.
const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
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
    /// The database side: writers, query workers, checks, presence, read marks.
    pub store: Arc<dyn Store>,
    /// Which loops have which rooms.
    pub interest: Arc<Interest>,
    /// What sends, edits and reactions are checked against (`[messages]`).
    pub rules: Rules,
    /// Each user's events a second, shared with the HTTP side.
    pub per_user: Arc<crate::base::limits::PerUser>,
}

/// The WebSocket side of one loop.
pub struct Hub {
    ctx: Arc<WsCtx>,
    /// This loop's index.
    idx: usize,
    /// This loop's mailbox, for answers from workers.
    mailbox: Arc<dyn Mailbox>,
    /// Rooms with joined sockets on this loop.
    rooms: Registry,
    /// Gap fetches to retry.
    retries: Retries,
    /// Socket and join ids, unique within the loop.
    next_id: u64,
    /// Each user's WebSocket connections on this loop (read state goes to all of them).
    users: Users,
    /// Joins waiting for their room's notification shard.
    waiting: Waiting,
}

impl Hub {
    /// The hub of loop `idx`.
    pub fn new(ctx: Arc<WsCtx>, idx: usize, mailbox: Arc<dyn Mailbox>) -> Hub {
        Hub {
            ctx,
            idx,
            mailbox,
            rooms: Registry::default(),
            retries: Retries::default(),
            next_id: 1,
            users: Users::default(),
            waiting: Waiting::default(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Closes a slow consumer with 1013 rather than skipping messages for it.
    fn slow_close(&mut self, k: usize, socks: &mut impl Sockets) -> Outcome {
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

    /// Undoes one subscription: registry, interest, typing and presence.
    fn release_sub(&mut self, k: usize, who: &Identity, s: &Sub) {
        if self.rooms.unsubscribe(s.room, k) {
            self.ctx.interest.lose(s.room, self.idx);
        }
        if s.typing_since.is_some() {
            self.ctx.store.typing(who, s.room, false);
        }
        if s.present {
            self.ctx.store.presence(PresenceOp::leave(s.room, who));
        }
        self.publish_stats();
    }

    /// Removes `k`'s subscription to `room`, if any; true when there was one.
    fn leave(&mut self, k: usize, room: Uuid, socks: &mut impl Sockets) -> bool {
        let Some((who, Some(sub))) = socks.with(k, |s, _| (s.who.clone(), s.take_sub(room))) else {
            return false;
        };
        self.release_sub(k, &who, &sub);
        true
    }

    /// Publishes this loop's room and subscription counts for /metrics (O(1): the
    /// registry keeps both as it changes).
    fn publish_stats(&self) {
        let (rooms, subscriptions) = self.rooms.counts();
        self.ctx.interest.set_stats(self.idx, rooms, subscriptions);
    }

    /// Queues an event for one socket (not shared).
    fn send_owned(&self, socks: &mut impl Sockets, k: usize, payload: Vec<u8>) {
        if socks.with(k, |_, t| t.send(text_frame(&payload))).is_some() {
            self.ctx.metrics.ws_frames_out.fetch_add(1, Relaxed);
        }
    }

    /// Sends an `error` event.
    fn send_error(&self, socks: &mut impl Sockets, k: usize, e: &ApiError) {
        self.send_owned(socks, k, events::error(e, None));
    }
}

impl Protocol for Hub {
    type Session = Session;
    type Event = LoopEvent;
    type Open = Upgrade;

    /// A session for connection `k`, just upgraded (`leftover`: bytes sent behind the
    /// upgrade request).
    fn open(&mut self, k: usize, from: Upgrade) -> Session {
        let Upgrade {
            who,
            echo,
            leftover,
        } = from;
        self.ctx.metrics.websockets.fetch_add(1, Relaxed);
        if !echo {
            self.users.add(who.user_id, k);
        }
        let id = self.next_id();
        Session::new(who, id, echo, &self.ctx.cfg, leftover)
    }

    /// The socket is readable: reads and handles frames, up to this turn's budget.
    fn readable(&mut self, k: usize, socks: &mut impl Sessions<Session>) -> Outcome {
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
    fn drained(&mut self, k: usize, socks: &mut impl Sessions<Session>) -> Outcome {
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
    fn backlogged(&mut self, k: usize, socks: &mut impl Sessions<Session>) -> Outcome {
        let bound = self.ctx.cfg.max_outbound_bytes;
        let backlog = socks.with(k, |_, t| t.backlog()).unwrap_or(0);
        let peak = &self.ctx.metrics.ws_backlog_peak;
        peak.fetch_max(backlog as u64, Relaxed);
        if backlog > bound {
            self.slow_close(k, socks)
        } else {
            Outcome::Continue
        }
    }

    /// Clean-up when a WebSocket ends, however it ends; called once, before the loop
    /// forgets the connection.
    fn closed(&mut self, k: usize, mut session: Session) {
        self.users.remove(session.who.user_id, k);
        let subs = std::mem::take(&mut session.subs);
        for s in subs {
            self.release_sub(k, &session.who, &s);
        }
        self.ctx.metrics.websockets.fetch_sub(1, Relaxed);
    }

    /// How long the loop may sleep before the hub needs it (a busy room's batching
    /// window ends).
    fn deadline(&self) -> Option<Duration> {
        let window = Duration::from_millis(self.ctx.cfg.coalesce_ms);
        self.rooms
            .next_due(window)
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Handles a message from another thread.
    fn on_event(&mut self, ev: LoopEvent, socks: &mut impl Sessions<Session>) -> Outcomes {
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
                for &k in self.users.keys(user) {
                    socks.with(k, |_, t| t.send_shared(frame.clone()));
                }
            }
            LoopEvent::Users { users, frame } => {
                for k in self.users.keys_of(&users) {
                    if socks.with(k, |_, t| t.send_shared(frame.clone())).is_some() {
                        self.ctx.metrics.ws_frames_out.fetch_add(1, Relaxed);
                    }
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

    /// Fans out what the turn brought.
    fn end_turn(&mut self, socks: &mut impl Sessions<Session>) {
        self.flush(socks);
    }

    /// Closes every socket with 1001 so that clients move to another node.
    fn shutdown(&mut self, socks: &mut impl Sessions<Session>) -> Outcomes {
        socks
            .keys()
            .into_iter()
            .map(|k| (k, self.close(k, socks, 1001, "server shutting down")))
            .collect()
    }

    /// Pings, dead peers, stale typing indicators, fetch retries.
    fn sweep(&mut self, now: Instant, socks: &mut impl Sessions<Session>) -> Outcomes {
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
                self.ctx.store.typing(&who, room, false);
            }
        }
        self.retry_due(now);
        out
    }
}
