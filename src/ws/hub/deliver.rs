//! Live delivery: rooms' fetches when a gap shows, one shared frame per room per turn,
//! ephemeral room events and kicks.

use super::{FETCH_PAGE, Hub};
use crate::base::error::ApiError;
use crate::base::model::Message;
use crate::pg::notify::ReadMark;
use crate::ws::codec::text_frame;
use crate::ws::events;
use crate::ws::registry::Gap;
use crate::ws::{LoopEvent, Sockets};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use uuid::Uuid;

impl Hub {
    /// Queues an ephemeral event (presence, typing, joins) on the room's joined sockets.
    pub(super) fn room_event(
        &mut self,
        room: Uuid,
        except: Option<Uuid>,
        frame: Arc<[u8]>,
        socks: &mut impl Sockets,
    ) {
        for &k in self.rooms.subs(room) {
            socks.with(k, |s, t| {
                if Some(s.who.user_id) != except && s.sub(room).is_some_and(|s| !s.joining) {
                    t.send_shared(frame.clone());
                }
            });
        }
    }

    /// A user lost membership (or, with no user, the room is gone): their sockets leave
    /// the room and are told why.
    pub(super) fn kick(
        &mut self,
        room: Uuid,
        user: Option<Uuid>,
        reason: &str,
        socks: &mut impl Sockets,
    ) {
        if !self.rooms.has(room) {
            return;
        }
        let frame = events::encode("left_room", &json!({ "room_id": room, "reason": reason }));
        for k in self.rooms.subs(room).to_vec() {
            if user.is_some() && socks.with(k, |s, _| Some(s.who.user_id) == user) != Some(true) {
                continue;
            }
            if self.leave(k, room, socks) {
                self.send_owned(socks, k, frame.clone());
            }
        }
    }

    /// Read marks: each user's sockets on this loop get `read_state`; the room's other
    /// joined sockets get `receipt` where the room sends receipts.
    pub(super) fn reads(&mut self, marks: &[ReadMark], socks: &mut impl Sockets) {
        for m in marks {
            let keys = self.users.keys(m.user);
            if m.own && !keys.is_empty() {
                let frame: Arc<[u8]> = Arc::from(text_frame(&events::encode(
                    "read_state",
                    &json!({ "room_id": m.room, "last_read_seq": m.seq }),
                )));
                for &k in keys {
                    socks.with(k, |_, t| t.send_shared(frame.clone()));
                }
            }
            if m.receipt && self.rooms.has(m.room) {
                let frame: Arc<[u8]> = Arc::from(text_frame(&events::encode(
                    "receipt",
                    &json!({ "room_id": m.room, "user_id": m.user, "seq": m.seq }),
                )));
                self.room_event(m.room, Some(m.user), frame, socks);
            }
        }
    }

    /// A gap fetch came back: apply it, and fetch again while there is more.
    pub(super) fn on_room_fetched(
        &mut self,
        room: Uuid,
        after: i64,
        result: Result<(Vec<Arc<Message>>, bool), ApiError>,
    ) {
        match result {
            Ok((rows, full)) => {
                let gap = self.rooms.fetched(room, &rows);
                let seq = self.rooms.seq(room);
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
        }
    }

    /// Marks the room as fetching (live messages wait) and fetches the gap.
    pub(super) fn fetch_room(&mut self, room: Uuid, gap: Gap) {
        self.ctx.metrics.gap_fetches.fetch_add(1, Relaxed);
        self.rooms.hold(room);
        self.submit_fetch(room, gap);
    }

    /// Asks a worker for the room's rows in the gap; the answer comes back as `RoomFetched`.
    pub(super) fn submit_fetch(&mut self, room: Uuid, gap: Gap) {
        let mailbox = self.mailbox.clone();
        let reply = move |rows: Result<Vec<Arc<Message>>, ApiError>| {
            mailbox.post(LoopEvent::RoomFetched {
                room,
                after: gap.after,
                result: rows.map(|rows| {
                    let full = rows.len() as i64 == FETCH_PAGE;
                    (rows, full)
                }),
            })
        };
        let store = &self.ctx.store;
        if store
            .range(room, gap.after, gap.upto, FETCH_PAGE, Box::new(reply))
            .is_err()
        {
            self.retry_fetch(room, gap.after);
        }
    }

    /// A gap fetch failed (database down, queue full): try again on a later sweep; the
    /// room's live messages wait meanwhile, so nothing is delivered out of order.
    pub(super) fn retry_fetch(&mut self, room: Uuid, after: i64) {
        if self.rooms.has(room) {
            self.retries.later(room, after, Instant::now());
        }
    }

    /// Submits the retries that are due.
    pub(super) fn retry_due(&mut self, now: Instant) {
        for (room, after) in self.retries.take_due(now) {
            if self.rooms.has(room) {
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

    /// Fans out the rooms whose held messages are due (adaptive batching: a quiet
    /// room's message goes out at once, a busy room's at most once per window): one
    /// frame per room (per chunk of a large batch), encoded once and shared by every
    /// socket of the room on this loop.
    pub(super) fn flush(&mut self, socks: &mut impl Sockets) {
        if !self.rooms.has_outbox() {
            return;
        }
        let window = Duration::from_millis(self.ctx.cfg.coalesce_ms);
        for (room, msgs) in self.rooms.due(Instant::now(), window) {
            for chunk in chunks(&msgs) {
                self.fan_out(room, chunk, socks);
            }
        }
    }

    /// Queues one contiguous run of a room's messages on each subscribed socket.
    fn fan_out(&mut self, room: Uuid, msgs: &[Arc<Message>], socks: &mut impl Sockets) {
        let (Some(first), Some(last)) = (msgs.first().map(|m| m.seq), msgs.last().map(|m| m.seq))
        else {
            return;
        };
        if !self.rooms.has(room) {
            return;
        }
        let frame: Arc<[u8]> = Arc::from(text_frame(&events::live(msgs)));
        let mut delivered = 0u64;
        for &k in self.rooms.subs(room) {
            socks.with(k, |s, t| {
                let Some(sub) = s.sub(room) else { return };
                if sub.joining || sub.delivered >= last || sub.delivered < first - 1 {
                    // Joining, already has these, or behind and catching up by itself.
                    return;
                }
                if sub.delivered == first - 1 {
                    t.send_shared(frame.clone());
                    delivered += msgs.len() as u64;
                } else {
                    let tail: Vec<Arc<Message>> = msgs
                        .iter()
                        .filter(|m| m.seq > sub.delivered)
                        .cloned()
                        .collect();
                    delivered += tail.len() as u64;
                    t.send(text_frame(&events::live(&tail)));
                }
                sub.delivered = last;
            });
        }
        self.ctx.metrics.deliveries.fetch_add(delivered, Relaxed);
        self.ctx.metrics.ws_frames_out.fetch_add(1, Relaxed);
    }
}

/// Most content bytes in one live frame: a large batch goes out as several frames.
const MAX_FRAME_CONTENT: usize = 256 * 1024;

/// Splits a batch into runs whose content stays under [`MAX_FRAME_CONTENT`].
pub(super) fn chunks(msgs: &[Arc<Message>]) -> Vec<&[Arc<Message>]> {
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
