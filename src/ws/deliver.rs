//! Live delivery: rooms' fetches when a gap shows, one shared frame per room per turn,
//! and ephemeral room events.

use crate::chat::fanout::Gap;
use crate::chat::messages::{self, Message};
use crate::net::conn::State;
use crate::net::event_loop::EventLoop;
use crate::ws::LoopEvent;
use crate::ws::codec::text_frame;
use crate::ws::events;
use crate::ws::session::FETCH_PAGE;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use uuid::Uuid;

impl EventLoop {
    /// Queues an ephemeral event (presence, typing, joins) on the room's joined sockets.
    pub(crate) fn room_event(&mut self, room: Uuid, except: Option<Uuid>, frame: Arc<[u8]>) {
        let Some(r) = self.rooms.rooms.get_mut(&room) else {
            return;
        };
        // Borrowed out of the registry (nothing below touches it) instead of copied.
        let subs = std::mem::take(&mut r.subs);
        for &k in &subs {
            let Some(conn) = self.conns.get_mut(k) else {
                continue;
            };
            let State::Ws(ws) = &mut conn.state else {
                continue;
            };
            if Some(ws.who.user_id) == except || ws.sub(room).is_none_or(|s| s.joining) {
                continue;
            }
            conn.out.push_shared(frame.clone());
            self.mark_dirty(k);
        }
        if let Some(r) = self.rooms.rooms.get_mut(&room) {
            r.subs = subs;
        }
    }

    /// A user lost membership: their sockets leave the room and are told so.
    pub(crate) fn kick(&mut self, room: Uuid, user: Uuid) {
        let Some(r) = self.rooms.rooms.get(&room) else {
            return;
        };
        for k in r.subs.clone() {
            let Some(ws) = self.ws_parts(k) else { continue };
            if ws.who.user_id != user {
                continue;
            }
            let who = ws.who.clone();
            if let Some(pos) = ws.subs.iter().position(|s| s.room == room) {
                let s = ws.subs.swap_remove(pos);
                self.release_sub(k, &who, &s);
                self.send_owned(k, events::encode("left_room", &json!({ "room_id": room })));
            }
        }
    }

    /// Marks the room as fetching (live messages wait) and fetches the gap.
    pub(crate) fn fetch_room(&mut self, room: Uuid, gap: Gap) {
        self.shared.metrics.gap_fetches.fetch_add(1, Relaxed);
        if let Some(r) = self.rooms.rooms.get_mut(&room) {
            r.fetching = true;
        }
        self.submit_fetch(room, gap);
    }

    /// Asks a worker for the room's rows in the gap; the answer comes back as `RoomFetched`.
    pub(crate) fn submit_fetch(&mut self, room: Uuid, gap: Gap) {
        let loop_idx = self.idx;
        let shared = self.shared.clone();
        let job: crate::pg::pool::Job = Box::new(move |w| {
            let result = messages::range_on(w, room, gap.after, gap.upto, FETCH_PAGE).map(|rows| {
                let full = rows.len() as i64 == FETCH_PAGE;
                (rows, full)
            });
            shared.to_loop(
                loop_idx,
                LoopEvent::RoomFetched {
                    room,
                    after: gap.after,
                    result,
                },
            );
        });
        if self.shared.db.submit(job).is_err() {
            self.retry_fetch(room, gap.after);
        }
    }

    /// A gap fetch failed (database down, queue full): try again on a later sweep; the
    /// room's live messages wait meanwhile, so nothing is delivered out of order.
    pub(crate) fn retry_fetch(&mut self, room: Uuid, after: i64) {
        if self.rooms.rooms.contains_key(&room) {
            self.retry
                .push((room, after, Instant::now() + Duration::from_millis(500)));
        }
    }

    /// Fans out what the rooms accepted this turn: one frame per room (per chunk of a
    /// large batch), encoded once and shared by every socket of the room on this loop.
    pub fn rooms_flush(&mut self) {
        if self.rooms.dirty.is_empty() {
            return;
        }
        let window = Duration::from_millis(self.shared.cfg.websocket.coalesce_ms);
        let now = Instant::now();
        let dirty = std::mem::take(&mut self.rooms.dirty);
        for room in dirty {
            let Some(r) = self.rooms.rooms.get_mut(&room) else {
                continue;
            };
            if r.held_since.is_some_and(|t| now.duration_since(t) < window) {
                self.rooms.dirty.push(room);
                continue;
            }
            r.held_since = None;
            let msgs = std::mem::take(&mut r.outbox);
            // Borrowed out of the registry (fan-out does not touch it) instead of copied.
            let subs = std::mem::take(&mut r.subs);
            for chunk in chunks(&msgs) {
                self.fan_out(room, &subs, chunk);
            }
            if let Some(r) = self.rooms.rooms.get_mut(&room) {
                r.subs = subs;
            }
        }
    }

    /// Queues one contiguous run of a room's messages on each subscribed socket.
    pub(crate) fn fan_out(&mut self, room: Uuid, subs: &[usize], msgs: &[Arc<Message>]) {
        let (Some(first), Some(last)) = (msgs.first().map(|m| m.seq), msgs.last().map(|m| m.seq))
        else {
            return;
        };
        let frame: Arc<[u8]> = Arc::from(text_frame(&events::live(msgs)));
        let mut delivered = 0u64;
        for &k in subs {
            let Some(conn) = self.conns.get_mut(k) else {
                continue;
            };
            let State::Ws(ws) = &mut conn.state else {
                continue;
            };
            let Some(sub) = ws.sub(room) else { continue };
            if sub.joining || sub.delivered >= last || sub.delivered < first - 1 {
                // Joining, already has these, or behind and catching up by itself.
                continue;
            }
            if sub.delivered == first - 1 {
                conn.out.push_shared(frame.clone());
                delivered += msgs.len() as u64;
            } else {
                let tail: Vec<Arc<Message>> = msgs
                    .iter()
                    .filter(|m| m.seq > sub.delivered)
                    .cloned()
                    .collect();
                delivered += tail.len() as u64;
                conn.out.push_owned(text_frame(&events::live(&tail)));
            }
            sub.delivered = last;
            self.mark_dirty(k);
        }
        self.shared.metrics.deliveries.fetch_add(delivered, Relaxed);
        self.shared.metrics.ws_frames_out.fetch_add(1, Relaxed);
    }
}

/// Most content bytes in one live frame: a large batch goes out as several frames.
const MAX_FRAME_CONTENT: usize = 256 * 1024;

/// Splits a batch into runs whose content stays under [`MAX_FRAME_CONTENT`].
pub(crate) fn chunks(msgs: &[Arc<Message>]) -> Vec<&[Arc<Message>]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, m) in msgs.iter().enumerate() {
        let len = m.content.len() + 200;
        if i > start && size + len > MAX_FRAME_CONTENT {
            out.push(&msgs[start..i]);
            start = i;
            size = 0;
        }
        size += len;
    }
    if start < msgs.len() {
        out.push(&msgs[start..]);
    }
    out
}
