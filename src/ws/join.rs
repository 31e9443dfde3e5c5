//! Joining a room: the membership check, `history`, and bringing a socket from its own
//! position up to the room's live stream without a gap or a duplicate.

use crate::chat::heads;
use crate::chat::messages::{self, Message};
use crate::chat::presence::PresenceOp;
use crate::error::ApiError;
use crate::net::event_loop::EventLoop;
use crate::ws::deliver::chunks;
use crate::ws::events;
use crate::ws::session::FETCH_PAGE;
use crate::ws::{JoinData, LoopEvent, Sub};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// Most rooms one socket may be in.
const MAX_ROOMS_PER_SOCKET: usize = 256;
/// Most messages in a `history` frame.
const HISTORY_PAGE: i64 = 100;
/// The `history` frame's data, serialised straight from the messages.
#[derive(serde::Serialize)]
struct History<'a> {
    room_id: Uuid,
    messages: &'a [Arc<Message>],
    next_cursor: i64,
    has_more: bool,
}

impl EventLoop {
    /// `join_room`: subscribes at once (so nothing committed after the check is missed),
    /// then checks membership and reads history on a worker.
    pub(crate) fn join(&mut self, k: usize, room: Uuid, last_seen: Option<i64>) {
        let join_id = self.next_id;
        self.next_id += 1;
        let Some(ws) = self.ws_parts(k) else { return };
        let sock = ws.id;
        let user = ws.who.user_id;
        match ws.sub(room) {
            Some(s) => {
                s.joining = true;
                s.join_id = join_id;
            }
            None => {
                if ws.subs.len() >= MAX_ROOMS_PER_SOCKET {
                    let e = ApiError::BadRequest(
                        "invalid_payload",
                        format!("at most {MAX_ROOMS_PER_SOCKET} rooms per socket"),
                    );
                    return self.send_error(k, &e);
                }
                ws.subs.push(Sub {
                    room,
                    delivered: 0,
                    joining: true,
                    catching_up: false,
                    join_id,
                    present: false,
                    typing_since: None,
                });
            }
        }
        // Subscribe before checking: every notification committed after the check then
        // reaches this loop, and the registry sorts out what history already covered.
        if self.rooms.subscribe(room, k) {
            self.shared.gain_interest(room);
        }
        self.publish_loop_stats();
        let loop_idx = self.idx;
        let shared = self.shared.clone();
        // Membership and the room's position come from the batched checks; history, when
        // asked for, is read on the same worker right after.
        let then: heads::Then = Box::new(move |head| {
            let result = head.and_then(|(w, room_seq)| {
                let history = match last_seen {
                    Some(after) => {
                        let mut rows =
                            messages::range_on(w, room, after, i64::MAX, HISTORY_PAGE + 1)?;
                        let more = rows.len() as i64 > HISTORY_PAGE;
                        rows.truncate(HISTORY_PAGE as usize);
                        Some((rows, more, after))
                    }
                    None => None,
                };
                Ok(JoinData { room_seq, history })
            });
            shared.to_loop(
                loop_idx,
                LoopEvent::Joined {
                    key: k,
                    sock,
                    room,
                    join_id,
                    result,
                },
            );
        });
        heads::check(&self.shared, room, user, then);
    }

    /// A refused join: the subscription is undone and the socket told why.
    pub(crate) fn fail_join(&mut self, k: usize, room: Uuid, e: &ApiError) {
        if let Some(ws) = self.ws_parts(k) {
            let who = ws.who.clone();
            if let Some(pos) = ws.subs.iter().position(|s| s.room == room) {
                let s = ws.subs.swap_remove(pos);
                self.release_sub(k, &who, &s);
            }
        }
        self.send_error(k, e);
    }

    /// The join's answer: position the socket, send `history` and `joined_room`, catch up.
    pub(crate) fn on_joined(
        &mut self,
        k: usize,
        sock: u64,
        room: Uuid,
        join_id: u64,
        result: Result<JoinData, ApiError>,
    ) {
        let Some(ws) = self.ws_parts(k) else { return };
        if ws.id != sock || ws.sub(room).map(|s| s.join_id) != Some(join_id) {
            return; // the socket left, closed, or joined again since
        }
        let data = match result {
            Ok(d) => d,
            Err(e) => return self.fail_join(k, room, &e),
        };
        let who = ws.who.clone();
        if let Some(gap) = self.rooms.init_seq(room, data.room_seq) {
            self.fetch_room(room, gap);
        }
        let mut frames = Vec::new();
        let Some(ws) = self.ws_parts(k) else { return };
        let Some(sub) = ws.sub(room) else { return };
        sub.joining = false;
        match data.history {
            Some((msgs, has_more, after)) => {
                // A client claiming more than exists starts from what exists.
                sub.delivered = msgs
                    .last()
                    .map(|m| m.seq)
                    .unwrap_or(after.min(data.room_seq));
                frames.push(events::encode(
                    "history",
                    &History {
                        room_id: room,
                        messages: &msgs,
                        next_cursor: sub.delivered,
                        has_more,
                    },
                ));
            }
            None => sub.delivered = data.room_seq,
        }
        let newly_present = !sub.present;
        sub.present = true;
        frames.push(events::encode("joined_room", &json!({ "room_id": room })));
        for f in frames {
            self.send_owned(k, f);
        }
        if newly_present {
            self.shared.presence.send(PresenceOp::join(room, &who));
        }
        self.reconcile(k, room);
    }

    /// Brings a socket from its own position up to the room's live position, from the
    /// recent buffer when it has the rows, else from the database.
    pub(crate) fn reconcile(&mut self, k: usize, room: Uuid) {
        let Some(room_seq) = self.rooms.rooms.get(&room).and_then(|r| r.seq) else {
            return;
        };
        let Some(ws) = self.ws_parts(k) else { return };
        let sock = ws.id;
        let Some(sub) = ws.sub(room) else { return };
        if sub.joining || sub.catching_up || sub.delivered >= room_seq {
            return;
        }
        let after = sub.delivered;
        if let Some(msgs) = self.rooms.recent_range(room, after, room_seq) {
            if let Some(sub) = self.ws_parts(k).and_then(|ws| ws.sub(room)) {
                sub.delivered = room_seq;
            }
            for chunk in chunks(&msgs) {
                self.send_owned(k, events::encode("new_message_batch", chunk));
            }
            return;
        }
        if let Some(sub) = self.ws_parts(k).and_then(|ws| ws.sub(room)) {
            sub.catching_up = true;
        }
        let loop_idx = self.idx;
        let shared = self.shared.clone();
        let job: crate::pg::pool::Job = Box::new(move |w| {
            let result = messages::range_on(w, room, after, room_seq, FETCH_PAGE);
            shared.to_loop(
                loop_idx,
                LoopEvent::CatchUp {
                    key: k,
                    sock,
                    room,
                    result,
                },
            );
        });
        if self.shared.db.submit(job).is_err() {
            // Cannot catch this socket up now; closing it lets the client retry later.
            self.ws_close(k, 1013, "server busy: reconnect with last_seen_seq");
        }
    }

    /// Rows for a socket behind its room: send them, then check again.
    pub(crate) fn on_catch_up(
        &mut self,
        k: usize,
        sock: u64,
        room: Uuid,
        result: Result<Vec<Arc<Message>>, ApiError>,
    ) {
        let Some(ws) = self.ws_parts(k) else { return };
        if ws.id != sock {
            return;
        }
        let Some(sub) = ws.sub(room) else { return };
        sub.catching_up = false;
        let rows = match result {
            Ok(r) => r,
            Err(_) => return self.ws_close(k, 1013, "server busy: reconnect with last_seen_seq"),
        };
        let fresh: Vec<Arc<Message>> = rows.into_iter().filter(|m| m.seq > sub.delivered).collect();
        if let Some(last) = fresh.last() {
            sub.delivered = last.seq;
            for chunk in chunks(&fresh) {
                self.send_owned(k, events::encode("new_message_batch", chunk));
            }
        }
        self.reconcile(k, room);
    }
}
