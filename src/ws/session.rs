//! The WebSocket half of an event loop: reading frames, handling client events,
//! fanning out live messages, catching sockets up, and closing them cleanly.

use crate::auth::tokens::Identity;
use crate::chat::fanout::Gap;
use crate::chat::messages::{self, Message};
use crate::chat::presence::PresenceOp;
use crate::error::ApiError;
use crate::http::parse::Head;
use crate::net::conn::State;
use crate::net::event_loop::EventLoop;
use crate::pg::writer::WriteJob;
use crate::shared::LoopMsg;
use crate::ws::codec::{WsIo, text_frame};
use crate::ws::events::{self, ClientEvent};
use crate::ws::{LoopEvent, Sub, WsConn, handshake};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error as WsError, Message as WsMessage};
use uuid::Uuid;

/// Most rows per catch-up or gap fetch.
pub(crate) const FETCH_PAGE: i64 = 1000;
/// A typing indicator not refreshed for this long is turned off.
const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
/// Typing starts relayed at most this often per socket and room.
const TYPING_MIN_INTERVAL: Duration = Duration::from_secs(1);

impl EventLoop {
    /// Completes the upgrade: answers 101 and moves the connection to the WebSocket state.
    pub fn upgrade(&mut self, k: usize, head: &Head, who: Identity, echo: bool) {
        let ws_cfg = &self.shared.cfg.websocket;
        let config = WebSocketConfig::default()
            .read_buffer_size(ws_cfg.read_buffer_bytes)
            .write_buffer_size(0)
            .max_write_buffer_size(ws_cfg.max_outbound_bytes)
            .max_message_size(Some(ws_cfg.max_message_bytes))
            .max_frame_size(Some(ws_cfg.max_message_bytes));
        let id = self.next_id;
        self.next_id += 1;
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let State::Http(h) = &mut conn.state else {
            return;
        };
        let leftover = std::mem::take(&mut h.inbuf);
        conn.out.push_owned(handshake::accept_response(head));
        let ctx = if leftover.is_empty() {
            WebSocketContext::new(Role::Server, Some(config))
        } else {
            WebSocketContext::from_partially_read(leftover, Role::Server, Some(config))
        };
        let now = Instant::now();
        conn.state = State::Ws(Box::new(WsConn {
            ctx,
            who,
            id,
            subs: Vec::new(),
            ping_sent: None,
            last_ping: now,
            paused: false,
            window: (now, 0),
            echo,
        }));
        self.shared.metrics.websockets.fetch_add(1, Relaxed);
        self.mark_dirty(k);
        self.ws_readable(k);
    }

    /// Reads and handles every complete frame available.
    pub fn ws_readable(&mut self, k: usize) {
        let bound = self.shared.cfg.websocket.max_outbound_bytes;
        loop {
            let Some(conn) = self.conns.get_mut(k) else {
                return;
            };
            if conn.closing {
                return;
            }
            let State::Ws(ws) = &mut conn.state else {
                return;
            };
            // Backpressure: a client that does not read its answers is not read either.
            if conn.out.len() > bound / 2 {
                ws.paused = true;
                return;
            }
            let mut io = WsIo {
                sock: &mut conn.sock,
                out: &mut conn.out,
                read_bytes: 0,
            };
            let res = ws.ctx.read(&mut io);
            if io.read_bytes > 0 {
                conn.last_read = Instant::now();
            }
            match res {
                Ok(WsMessage::Text(t)) if ws.echo => {
                    conn.out.push_owned(text_frame(t.as_bytes()));
                    self.mark_dirty(k);
                }
                Ok(WsMessage::Binary(b)) if ws.echo => {
                    conn.out.push_owned(crate::ws::codec::binary_frame(&b));
                    self.mark_dirty(k);
                }
                Ok(WsMessage::Text(t)) => {
                    self.mark_dirty(k);
                    self.ws_event(k, t.as_str());
                }
                Ok(WsMessage::Binary(_)) => {
                    self.send_error(
                        k,
                        &ApiError::BadRequest(
                            "invalid_payload",
                            "binary frames are not supported; send JSON text frames".into(),
                        ),
                    );
                }
                Ok(WsMessage::Pong(_)) => ws.ping_sent = None,
                Ok(WsMessage::Ping(_)) | Ok(WsMessage::Frame(_)) => self.mark_dirty(k),
                Ok(WsMessage::Close(_)) => {
                    // tungstenite holds the closing reply until its next write: flush it
                    // into our queue, send it, then end.
                    let mut io = WsIo {
                        sock: &mut conn.sock,
                        out: &mut conn.out,
                        read_bytes: 0,
                    };
                    let _ = ws.ctx.flush(&mut io);
                    conn.close_soon();
                    self.mark_dirty(k);
                    return;
                }
                Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.mark_dirty(k);
                    return;
                }
                Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(WsError::Capacity(_)) => return self.ws_close(k, 1009, "message too big"),
                Err(WsError::Utf8(_)) => return self.ws_close(k, 1007, "invalid UTF-8"),
                Err(WsError::Protocol(_)) => return self.ws_close(k, 1002, "protocol error"),
                Err(_) => return self.drop_conn(k),
            }
        }
    }

    /// Called when a socket's queue drained: resumes reading if it was paused.
    pub fn ws_resume(&mut self, k: usize) {
        if let Some(conn) = self.conns.get_mut(k)
            && let State::Ws(ws) = &mut conn.state
            && ws.paused
        {
            ws.paused = false;
            self.ws_readable(k);
        }
    }

    /// Sends a close frame with `code`, then closes once it is written.
    pub fn ws_close(&mut self, k: usize, code: u16, reason: &str) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let State::Ws(ws) = &mut conn.state else {
            return;
        };
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let mut io = WsIo {
            sock: &mut conn.sock,
            out: &mut conn.out,
            read_bytes: 0,
        };
        let _ = ws.ctx.close(&mut io, Some(frame));
        let _ = ws.ctx.flush(&mut io);
        conn.close_soon();
        self.mark_dirty(k);
    }

    /// Clean-up when a WebSocket ends, however it ends.
    pub fn ws_closed(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let State::Ws(ws) = &mut conn.state else {
            return;
        };
        let subs = std::mem::take(&mut ws.subs);
        let who = ws.who.clone();
        for s in subs {
            self.release_sub(k, &who, &s);
        }
        self.shared.metrics.websockets.fetch_sub(1, Relaxed);
    }

    /// Undoes one subscription: registry, interest, typing and presence.
    pub(crate) fn release_sub(&mut self, k: usize, who: &Identity, s: &Sub) {
        if self.rooms.unsubscribe(s.room, k) {
            self.shared.lose_interest(s.room);
        }
        if s.typing_since.is_some() {
            self.relay_typing(who, s.room, false);
        }
        if s.present {
            self.shared.presence.send(PresenceOp::leave(s.room, who));
        }
        self.publish_loop_stats();
    }

    /// Publishes this loop's room and subscription counts for /metrics (O(1): the
    /// registry keeps both as it changes).
    pub(crate) fn publish_loop_stats(&self) {
        if let Some(s) = self.shared.loop_stats.get(self.idx)
            && let Ok(mut v) = s.write()
        {
            *v = (self.rooms.rooms.len(), self.rooms.subscriptions);
        }
    }

    /// Queues bytes for one socket (not shared).
    pub(crate) fn send_owned(&mut self, k: usize, payload: Vec<u8>) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        conn.out.push_owned(text_frame(&payload));
        self.shared.metrics.ws_frames_out.fetch_add(1, Relaxed);
        self.mark_dirty(k);
    }

    /// Sends an `error` event.
    pub(crate) fn send_error(&mut self, k: usize, e: &ApiError) {
        self.send_owned(k, events::error(e));
    }

    /// After the end-of-turn write, which the socket could not take whole: a client that
    /// leaves more than the bound unread is a slow consumer. (Judged after writing, not
    /// while queueing: one turn's burst is mostly shared frames, and a client that reads
    /// fast drains it.)
    pub fn ws_backlogged(&mut self, k: usize) {
        let bound = self.shared.cfg.websocket.max_outbound_bytes;
        if self.conns.get(k).is_some_and(|c| c.out.backlog() > bound) {
            self.slow_close(k);
        }
    }

    /// Closes a slow consumer with 1013 rather than skipping messages for it.
    pub(crate) fn slow_close(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        if !conn.closing {
            self.shared
                .metrics
                .slow_consumer_closes
                .fetch_add(1, Relaxed);
            // What is queued cannot reach a client that stopped reading: drop it so
            // memory stays bounded, and tell the client to reconnect and catch up.
            conn.out.clear();
            self.ws_close(k, 1013, "slow consumer: reconnect with last_seen_seq");
        }
    }

    fn rate_limited(&mut self, k: usize) -> bool {
        let max = self.shared.cfg.websocket.max_events_per_sec;
        let Some(Some(ws)) = self.conns.get_mut(k).map(|c| match &mut c.state {
            State::Ws(ws) => Some(ws),
            _ => None,
        }) else {
            return true;
        };
        if max == 0 {
            return false;
        }
        let now = Instant::now();
        if now.duration_since(ws.window.0) >= Duration::from_secs(1) {
            ws.window = (now, 0);
        }
        ws.window.1 += 1;
        ws.window.1 > max
    }

    /// The WebSocket state of connection `k`, if it is one.
    pub(crate) fn ws_parts(&mut self, k: usize) -> Option<&mut WsConn> {
        match &mut self.conns.get_mut(k)?.state {
            State::Ws(ws) => Some(ws),
            _ => None,
        }
    }

    /// Handles one client text frame.
    fn ws_event(&mut self, k: usize, text: &str) {
        let ev = match events::decode(text) {
            Ok(ev) => ev,
            Err(e) => return self.send_error(k, &e),
        };
        match ev {
            ClientEvent::Ping(data) => self.send_owned(k, events::encode("pong", &data)),
            ClientEvent::JoinRoom {
                room_id,
                last_seen_seq,
            } => self.join(k, room_id, last_seen_seq),
            ClientEvent::LeaveRoom { room_id } => {
                let Some(ws) = self.ws_parts(k) else { return };
                let who = ws.who.clone();
                if let Some(pos) = ws.subs.iter().position(|s| s.room == room_id) {
                    let s = ws.subs.swap_remove(pos);
                    self.release_sub(k, &who, &s);
                }
                self.send_owned(
                    k,
                    events::encode("left_room", &json!({ "room_id": room_id })),
                );
            }
            ClientEvent::SendMessage {
                room_id,
                content,
                client_msg_id,
            } => {
                if self.rate_limited(k) {
                    let e = ApiError::RateLimited(1);
                    return self.send_owned(k, error_with_cmid(&e, client_msg_id.as_deref()));
                }
                self.send_message(k, room_id, content, client_msg_id);
            }
            ClientEvent::Typing { room_id, typing } => {
                if self.rate_limited(k) {
                    return self.send_error(k, &ApiError::RateLimited(1));
                }
                self.typing(k, room_id, typing);
            }
        }
    }

    fn send_message(
        &mut self,
        k: usize,
        room: Uuid,
        content: String,
        client_msg_id: Option<String>,
    ) {
        let Some(ws) = self.ws_parts(k) else { return };
        let (sock, who) = (ws.id, ws.who.clone());
        let handle = self.shared.clone();
        let loop_idx = self.idx;
        let cmid = client_msg_id.clone();
        let job = WriteJob {
            room_id: room,
            user_id: who.user_id,
            username: who.username,
            content,
            client_msg_id,
            reply: Box::new(move |result| {
                handle.loops[loop_idx].send(LoopMsg::Ws(LoopEvent::Sent {
                    key: k,
                    sock,
                    client_msg_id: cmid,
                    result,
                }));
            }),
        };
        if let Err(job) = self.shared.writers.submit(job) {
            let cmid = job.client_msg_id.clone();
            // Dropping the job drops its reply closure without calling it.
            drop(job);
            self.send_owned(k, error_with_cmid(&ApiError::Unavailable, cmid.as_deref()));
        }
    }

    fn on_sent(
        &mut self,
        k: usize,
        sock: u64,
        cmid: Option<String>,
        result: Result<Arc<Message>, ApiError>,
    ) {
        if self.ws_parts(k).map(|ws| ws.id) != Some(sock) {
            return;
        }
        match (result, cmid) {
            (Ok(m), Some(c)) => {
                let ack = json!({ "client_msg_id": c, "id": m.id, "seq": m.seq, "room_id": m.room_id, "created_at": m.created_at });
                self.send_owned(k, events::encode("message_ack", &ack));
            }
            (Ok(_), None) => {}
            (Err(e), cmid) => self.send_owned(k, error_with_cmid(&e, cmid.as_deref())),
        }
    }

    fn typing(&mut self, k: usize, room: Uuid, typing: bool) {
        let now = Instant::now();
        let Some(ws) = self.ws_parts(k) else { return };
        let who = ws.who.clone();
        let Some(sub) = ws.sub(room).filter(|s| !s.joining) else {
            return self.send_error(
                k,
                &ApiError::Forbidden("not_member", "Join the room before typing in it"),
            );
        };
        let relay = if typing {
            let due = sub
                .typing_since
                .is_none_or(|t| now.duration_since(t) >= TYPING_MIN_INTERVAL);
            if due {
                sub.typing_since = Some(now);
            }
            due
        } else {
            sub.typing_since.take().is_some()
        };
        if relay {
            self.relay_typing(&who, room, typing);
        }
    }

    fn relay_typing(&self, who: &Identity, room: Uuid, typing: bool) {
        let data = json!({
            "user_id": who.user_id, "room_id": room, "username": who.username,
            "typing": typing, "started_at": messages::iso(chrono::Utc::now()),
        });
        crate::chat::presence::publish(&self.shared, room, Some(who.user_id), "typing", data);
    }

    /// Handles a message from another thread.
    pub fn on_ws_event(&mut self, ev: LoopEvent) {
        match ev {
            LoopEvent::Joined {
                key,
                sock,
                room,
                join_id,
                result,
            } => self.on_joined(key, sock, room, join_id, result),
            LoopEvent::Sent {
                key,
                sock,
                client_msg_id,
                result,
            } => self.on_sent(key, sock, client_msg_id, result),
            LoopEvent::CatchUp {
                key,
                sock,
                room,
                result,
            } => self.on_catch_up(key, sock, room, result),
            LoopEvent::RoomFetched {
                room,
                after,
                result,
            } => match result {
                Ok((rows, full)) => {
                    let gap = self.rooms.fetched(room, &rows);
                    let seq = self.rooms.rooms.get(&room).and_then(|r| r.seq);
                    match (gap, seq) {
                        (Some(g), _) => self.fetch_room(room, g),
                        (None, Some(s)) if full => self.fetch_room(
                            room,
                            Gap {
                                after: s,
                                upto: i64::MAX,
                            },
                        ),
                        _ => {}
                    }
                }
                Err(_) => self.retry_fetch(room, after),
            },
            LoopEvent::Live(batch) => {
                if let Some(gap) = self.rooms.live(batch.room, &batch.msgs) {
                    self.fetch_room(batch.room, gap);
                }
            }
            LoopEvent::RoomEvent {
                room,
                except,
                frame,
            } => self.room_event(room, except, frame),
            LoopEvent::Kick { room, user } => self.kick(room, user),
            LoopEvent::Revoke(ids) => {
                let doomed: Vec<usize> = self
                    .conns
                    .iter()
                    .filter_map(|(k, c)| match &c.state {
                        State::Ws(ws) if ids.contains(&ws.who.session_id) => Some(k),
                        _ => None,
                    })
                    .collect();
                for k in doomed {
                    self.ws_close(k, 1008, "session revoked");
                }
            }
            LoopEvent::Resync => {
                for (room, gap) in self.rooms.resync() {
                    self.submit_fetch(room, gap);
                }
            }
        }
    }

    /// Pings, dead peers, stale typing indicators, fetch retries.
    pub fn ws_sweep(&mut self, now: Instant) {
        let interval = Duration::from_secs(self.shared.cfg.websocket.ping_interval_secs);
        let mut dead = Vec::new();
        let mut ping = Vec::new();
        let mut stale_typing = Vec::new();
        for (k, conn) in self.conns.iter_mut() {
            let State::Ws(ws) = &mut conn.state else {
                continue;
            };
            if now.duration_since(ws.last_ping) >= interval {
                if ws.ping_sent.is_some() {
                    dead.push(k);
                    continue;
                }
                ws.last_ping = now;
                ws.ping_sent = Some(now);
                ping.push(k);
            }
            for s in ws.subs.iter_mut() {
                if s.typing_since
                    .is_some_and(|t| now.duration_since(t) >= TYPING_TIMEOUT)
                {
                    s.typing_since = None;
                    stale_typing.push((ws.who.clone(), s.room));
                }
            }
        }
        for k in dead {
            self.drop_conn(k);
        }
        for k in ping {
            if let Some(conn) = self.conns.get_mut(k)
                && let State::Ws(ws) = &mut conn.state
            {
                let mut io = WsIo {
                    sock: &mut conn.sock,
                    out: &mut conn.out,
                    read_bytes: 0,
                };
                let _ = ws.ctx.write(&mut io, WsMessage::Ping(Vec::new().into()));
                let _ = ws.ctx.flush(&mut io);
            }
            self.mark_dirty(k);
        }
        for (who, room) in stale_typing {
            self.relay_typing(&who, room, false);
        }
        let due: Vec<(Uuid, i64)> = {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retry)
                .into_iter()
                .partition(|r| r.2 <= now);
            self.retry = later;
            due.into_iter()
                .map(|(room, after, _)| (room, after))
                .collect()
        };
        for (room, after) in due {
            if self.rooms.rooms.contains_key(&room) {
                self.submit_fetch(
                    room,
                    Gap {
                        after,
                        upto: i64::MAX,
                    },
                );
            }
        }
    }
}

/// An `error` event that names the `client_msg_id` it answers, when there was one.
pub(crate) fn error_with_cmid(e: &ApiError, cmid: Option<&str>) -> Vec<u8> {
    let message = match e {
        ApiError::Validation(m) => m.join("; "),
        other => other.to_string(),
    };
    let mut data = json!({ "message": message, "code": e.code() });
    if let Some(c) = cmid {
        data["client_msg_id"] = json!(c);
    }
    events::encode("error", &data)
}
