//! Client events: join, leave, send, change, typing, mark read, ping; the rate limit;
//! and the answer to a send or change.

use super::Hub;
use crate::base::error::ApiError;
use crate::base::model::Message;
use crate::chat::edits::Change;
use crate::chat::reads::Mark;
use crate::chat::send::Draft;
use crate::ws::events::{self, ClientEvent};
use crate::ws::{LoopEvent, Outcome, Sockets};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Typing starts are relayed at most this often per socket and room.
const TYPING_MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Hub {
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
                // The same rate binds the user across its sockets and REST.
                s.window.1 > max || self.ctx.per_user.hit(s.who.user_id, max).is_err()
            })
            .unwrap_or(true)
    }

    /// Handles one client text frame; `Some` when the connection must end.
    pub(super) fn client_event(
        &mut self,
        k: usize,
        text: &str,
        socks: &mut impl Sockets,
    ) -> Option<Outcome> {
        let ev = match events::decode(text, &self.ctx.rules) {
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
                let draft = Draft {
                    room: room_id,
                    content,
                    client_msg_id,
                    reply_to,
                    attachments,
                };
                self.send_message(k, draft, socks);
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
            Some(Some(user)) => self.ctx.store.mark(Mark {
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

    /// `send_message`, checked when decoded: handed to the send use case, whose outcome
    /// comes back to this loop as `Sent`.
    fn send_message(&mut self, k: usize, draft: Draft, socks: &mut impl Sockets) {
        let Some((sock, who)) = socks.with(k, |s, _| (s.id, s.who.clone())) else {
            return;
        };
        let mailbox = self.mailbox.clone();
        let cmid = draft.client_msg_id.clone();
        let reply = move |result| {
            mailbox.post(LoopEvent::Sent {
                key: k,
                sock,
                client_msg_id: cmid,
                result,
            });
        };
        if let Err(refused) = self.ctx.store.send(who, draft, Box::new(reply)) {
            let e = events::error(&ApiError::Unavailable, refused.client_msg_id.as_deref());
            self.send_owned(socks, k, e);
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
        let cmid = client_msg_id.clone();
        let reply = move |result| {
            mailbox.post(LoopEvent::Sent {
                key: k,
                sock,
                client_msg_id: cmid,
                result,
            })
        };
        let store = &self.ctx.store;
        if store
            .change(who, room, target, change, client_msg_id, Box::new(reply))
            .is_err()
        {
            self.send_error(socks, k, &ApiError::Unavailable);
        }
    }

    pub(super) fn on_sent(
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
            Some(Some((who, true))) => self.ctx.store.typing(&who, room, typing),
            Some(Some((_, false))) => {}
            Some(None) => self.send_error(
                socks,
                k,
                &ApiError::Forbidden("not_member", "Join the room before typing in it"),
            ),
            None => {}
        }
    }
}
