//! One WebSocket connection's state: tungstenite's protocol context, who is connected,
//! the rooms it joined and where each stands, and reading frames off its transport.

use crate::base::config::WsConfig;
use crate::base::model::Identity;
use crate::ws::codec::{WsIo, binary_frame, text_frame};
use crate::ws::{Outcome, Transport};
use std::time::Instant;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};
use uuid::Uuid;

/// One room subscription of a socket.
pub struct Sub {
    /// Room.
    pub room: Uuid,
    /// Last seq this socket was sent.
    pub delivered: i64,
    /// The join is being checked; nothing is delivered yet.
    pub joining: bool,
    /// A catch-up fetch is in flight for this socket.
    pub catching_up: bool,
    /// Id of the latest join request (a re-join supersedes the previous one).
    pub join_id: u64,
    /// This subscription counts in the presence table.
    pub present: bool,
    /// Last time a typing start was relayed, while typing.
    pub typing_since: Option<Instant>,
    /// Last time a typing start was relayed at all: starts go out at most once a second
    /// however the client alternates start and stop.
    pub typing_relayed: Option<Instant>,
}

impl Sub {
    /// A subscription being checked.
    pub fn joining(room: Uuid, join_id: u64) -> Sub {
        Sub {
            room,
            delivered: 0,
            joining: true,
            catching_up: false,
            join_id,
            present: false,
            typing_since: None,
            typing_relayed: None,
        }
    }
}

/// What one read from the socket produced.
pub enum Frame {
    /// A client text frame: a JSON event.
    Text(Utf8Bytes),
    /// A binary frame (not part of the protocol).
    Binary,
    /// A control frame or an echoed frame: nothing for the hub.
    Handled,
    /// Nothing more to read now.
    Blocked,
    /// Backpressure: reading paused until the outbound queue drains.
    Paused,
    /// The connection ends.
    End(Outcome),
}

/// A WebSocket connection's state.
pub struct Session {
    ctx: WebSocketContext,
    /// Who is connected.
    pub who: Identity,
    /// Socket id, unique within the loop: replies for a closed socket are recognised.
    pub id: u64,
    /// Room subscriptions.
    pub subs: Vec<Sub>,
    /// A ping is outstanding since then.
    ping_sent: Option<Instant>,
    /// Last ping round started.
    last_ping: Instant,
    /// Reading stopped because the outbound queue is too full (backpressure).
    pub paused: bool,
    /// Start of the current rate-limit window and events counted in it.
    pub window: (Instant, u32),
    /// Echo socket of the conformance endpoint: frames come back as they came.
    echo: bool,
    /// A close frame was queued; nothing more is read or sent.
    closing: bool,
    /// Bytes read from the socket (the hub's per-turn budget reads and resets it).
    pub read_bytes: usize,
}

impl Session {
    /// A session over an upgraded connection; `leftover` holds bytes the client sent
    /// right behind its upgrade request.
    pub fn new(who: Identity, id: u64, echo: bool, cfg: &WsConfig, leftover: Vec<u8>) -> Session {
        let config = WebSocketConfig::default()
            .read_buffer_size(cfg.read_buffer_bytes)
            .write_buffer_size(0)
            .max_write_buffer_size(cfg.max_outbound_bytes)
            .max_message_size(Some(cfg.max_message_bytes))
            .max_frame_size(Some(cfg.max_message_bytes));
        let ctx = if leftover.is_empty() {
            WebSocketContext::new(Role::Server, Some(config))
        } else {
            WebSocketContext::from_partially_read(leftover, Role::Server, Some(config))
        };
        let now = Instant::now();
        Session {
            ctx,
            who,
            id,
            subs: Vec::new(),
            ping_sent: None,
            last_ping: now,
            paused: false,
            window: (now, 0),
            echo,
            closing: false,
            read_bytes: 0,
        }
    }

    /// The subscription to `room`, if any.
    pub fn sub(&mut self, room: Uuid) -> Option<&mut Sub> {
        self.subs.iter_mut().find(|s| s.room == room)
    }

    /// Removes and returns the subscription to `room`.
    pub fn take_sub(&mut self, room: Uuid) -> Option<Sub> {
        let pos = self.subs.iter().position(|s| s.room == room)?;
        Some(self.subs.swap_remove(pos))
    }

    /// True once a close frame was queued.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Reads the next frame. Stops (`Paused`) while more than `bound` bytes wait to be
    /// written: a client that does not read its answers is not read either.
    pub fn read_frame(&mut self, t: &mut dyn Transport, bound: usize) -> Frame {
        loop {
            if self.closing {
                return Frame::Blocked;
            }
            if t.queued() > bound {
                self.paused = true;
                return Frame::Paused;
            }
            let mut io = WsIo::new(&mut *t);
            let res = self.ctx.read(&mut io);
            self.read_bytes += io.read;
            return match res {
                Ok(WsMessage::Text(text)) if self.echo => {
                    t.send(text_frame(text.as_bytes()));
                    Frame::Handled
                }
                Ok(WsMessage::Binary(b)) if self.echo => {
                    t.send(binary_frame(&b));
                    Frame::Handled
                }
                Ok(WsMessage::Text(text)) => Frame::Text(text),
                Ok(WsMessage::Binary(_)) => Frame::Binary,
                Ok(WsMessage::Pong(_)) => {
                    self.ping_sent = None;
                    Frame::Handled
                }
                // tungstenite queued the pong itself.
                Ok(WsMessage::Ping(_)) | Ok(WsMessage::Frame(_)) => Frame::Handled,
                Ok(WsMessage::Close(_)) => {
                    // tungstenite holds the closing reply until its next write: flush it
                    // into the queue, send it, then end.
                    let _ = self.ctx.flush(&mut WsIo::new(t));
                    self.closing = true;
                    Frame::End(Outcome::Close)
                }
                Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Frame::Blocked,
                Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(WsError::Capacity(_)) => Frame::End(self.close(t, 1009, "message too big")),
                Err(WsError::Utf8(_)) => Frame::End(self.close(t, 1007, "invalid UTF-8")),
                Err(WsError::Protocol(_)) => Frame::End(self.close(t, 1002, "protocol error")),
                Err(_) => Frame::End(Outcome::Drop),
            };
        }
    }

    /// Queues a close frame with `code`; the connection closes once it is written.
    pub fn close(&mut self, t: &mut dyn Transport, code: u16, reason: &str) -> Outcome {
        if !self.closing {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_string().into(),
            };
            let mut io = WsIo::new(t);
            let _ = self.ctx.close(&mut io, Some(frame));
            let _ = self.ctx.flush(&mut io);
            self.closing = true;
        }
        Outcome::Close
    }

    /// Heartbeat: a ping every `interval`; `Drop` when the previous one went unanswered.
    pub fn heartbeat(
        &mut self,
        t: &mut dyn Transport,
        now: Instant,
        interval: std::time::Duration,
    ) -> Outcome {
        if now.duration_since(self.last_ping) < interval {
            return Outcome::Continue;
        }
        if self.ping_sent.is_some() {
            return Outcome::Drop;
        }
        self.last_ping = now;
        self.ping_sent = Some(now);
        let mut io = WsIo::new(t);
        let _ = self.ctx.write(&mut io, WsMessage::Ping(Vec::new().into()));
        let _ = self.ctx.flush(&mut io);
        Outcome::Continue
    }
}
