//! Joining a room: the membership check, `history`, and bringing a socket from its own
//! position up to the room's live stream without a gap or a duplicate.

use super::deliver::chunks;
use super::{FETCH_PAGE, Hub};
use crate::base::error::ApiError;
use crate::base::model::Message;
use crate::chat::presence::PresenceOp;
use crate::ws::codec::text_frame;
use crate::ws::events;
use crate::ws::joins::PendingJoin;
use crate::ws::session::Sub;
use crate::ws::store::HISTORY_PAGE;
use crate::ws::{JoinData, JoinHistory, LoopEvent, Outcomes, Sockets};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use uuid::Uuid;

/// Most rooms one socket may be in (a protocol limit, docs/PROTOCOL.md).
const MAX_ROOMS_PER_SOCKET: usize = 256;
/// The `history` frame's data, serialised straight from the messages.
#[derive(serde::Serialize)]
struct History<'a> {
    room_id: Uuid,
    messages: &'a [Arc<Message>],
    next_cursor: i64,
    has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seq: Option<i64>,
}

/// A frame of its own.
fn shared(payload: &[u8]) -> Arc<[u8]> {
    Arc::from(text_frame(payload))
}

/// The frames of a join's read: the `history` page of its first [`HISTORY_PAGE`]
/// messages, then the rest as `new_message_batch` frames.
fn missed_frames(room: Uuid, h: &JoinHistory) -> Vec<Arc<[u8]>> {
    let (page, rest) = h.rows.split_at(h.rows.len().min(HISTORY_PAGE as usize));
    let mut frames = vec![shared(&events::encode(
        "history",
        &History {
            room_id: room,
            messages: page,
            next_cursor: page.last().map_or(h.after, |m| m.seq),
            has_more: !rest.is_empty() || h.more,
            first_seq: h.horizon,
        },
    ))];
    for chunk in chunks(rest) {
        frames.push(shared(&events::encode("new_message_batch", chunk)));
    }
    frames
}

impl Hub {
    /// `join_room`: subscribes at once (so nothing committed after the check is missed),
    /// then checks membership and reads history on a worker.
    pub(super) fn join(
        &mut self,
        k: usize,
        room: Uuid,
        last_seen: Option<i64>,
        socks: &mut impl Sockets,
    ) {
        // Already in the room and asking for nothing older: the socket keeps its place in
        // the stream (re-checking would restart it at the room's head and skip what
        // arrived meanwhile).
        let live = socks.with(k, |s, _| s.sub(room).is_some_and(|sub| !sub.joining));
        if live == Some(true) && last_seen.is_none() {
            return self.send_owned(
                socks,
                k,
                events::encode("joined_room", &json!({ "room_id": room })),
            );
        }
        let join_id = self.next_id();
        let joined = socks.with(k, |s, _| {
            let (sock, user) = (s.id, s.who.user_id);
            let full = s.subs.len() >= MAX_ROOMS_PER_SOCKET;
            match s.sub(room) {
                Some(sub) => {
                    sub.joining = true;
                    sub.join_id = join_id;
                }
                None if full => return None,
                None => s.subs.push(Sub::joining(room, join_id)),
            }
            Some((sock, user))
        });
        let (sock, user) = match joined {
            Some(Some(v)) => v,
            Some(None) => {
                let e = ApiError::BadRequest(
                    "invalid_payload",
                    format!("at most {MAX_ROOMS_PER_SOCKET} rooms per socket"),
                );
                return self.send_error(socks, k, &e);
            }
            None => return,
        };
        // Subscribe before checking: every notification committed after the check then
        // reaches this loop, and the registry sorts out what history already covered.
        if self.rooms.subscribe(room, k) {
            self.ctx.interest.gain(room, self.idx);
        }
        self.publish_stats();
        let pending = PendingJoin {
            key: k,
            sock,
            user,
            room,
            join_id,
            last_seen,
        };
        // The node must hear the room's notifications before the check, or what commits
        // between the check and the LISTEN would never arrive: wait for the shard.
        if self.ctx.interest.shard_active(room) {
            self.check_join(pending);
        } else {
            self.waiting.hold(pending);
        }
    }

    /// The listener LISTENs to more shards: the joins waiting for them go on.
    pub(super) fn shards_ready(&mut self) {
        let interest = &self.ctx.interest;
        let ready = self.waiting.take_ready(|room| interest.shard_active(room));
        for p in ready {
            self.check_join(p);
        }
    }

    /// Checks membership and reads the join's history on a worker.
    fn check_join(&mut self, p: PendingJoin) {
        let PendingJoin {
            key: k,
            sock,
            user,
            room,
            join_id,
            last_seen,
        } = p;
        let mailbox = self.mailbox.clone();
        let reply = move |result| {
            mailbox.post(LoopEvent::Joined {
                key: k,
                sock,
                room,
                join_id,
                result,
            })
        };
        self.ctx
            .store
            .check_join(room, user, last_seen, Box::new(reply));
    }

    /// The join's answer: position the socket, send `history` and `joined_room`, catch up.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_joined(
        &mut self,
        k: usize,
        sock: u64,
        room: Uuid,
        join_id: u64,
        result: Result<JoinData, ApiError>,
        socks: &mut impl Sockets,
        out: &mut Outcomes,
    ) {
        let current = socks.with(k, |s, _| {
            s.id == sock && s.sub(room).map(|s| s.join_id) == Some(join_id)
        });
        if current != Some(true) {
            return; // the socket left, closed, or joined again since
        }
        let data = match result {
            Ok(d) => d,
            Err(e) => {
                // A refused join: the subscription is undone and the socket told why.
                self.leave(k, room, socks);
                return self.send_error(socks, k, &e);
            }
        };
        if let Some(gap) = self.rooms.init_seq(room, data.room_seq) {
            self.fetch_room(room, gap);
        }
        let done = socks.with(k, |s, _| {
            let who = s.who.clone();
            let sub = s.sub(room)?;
            sub.joining = false;
            // Frames before `joined_room` (the history page), and after it (the rest of
            // what was missed, as catch-up batches).
            let (mut before, mut after) = (Vec::new(), Vec::new());
            match &data.history {
                Some(h) if !h.rows.is_empty() => {
                    sub.delivered = h.reach().unwrap_or(h.after);
                    // Encoded once per read, whichever socket of the read comes first.
                    let frames = h.frames.get_or_init(|| missed_frames(room, h));
                    if let Some((page, rest)) = frames.split_first() {
                        before.push(page.clone());
                        after.extend(rest.iter().cloned());
                    }
                }
                Some(h) => {
                    // A client claiming more than exists starts from what exists; one
                    // behind the retention horizon, from the horizon.
                    let from = h.horizon.map_or(h.after, |f| h.after.max(f - 1));
                    sub.delivered = from.min(data.room_seq);
                    before.push(shared(&events::encode(
                        "history",
                        &History {
                            room_id: room,
                            messages: &[],
                            next_cursor: sub.delivered,
                            has_more: h.more,
                            first_seq: h.horizon,
                        },
                    )));
                }
                None => sub.delivered = data.room_seq,
            }
            let newly_present = !sub.present;
            sub.present = true;
            before.push(shared(&events::encode(
                "joined_room",
                &json!({ "room_id": room }),
            )));
            before.append(&mut after);
            Some((who, newly_present, before))
        });
        let Some(Some((who, newly_present, frames))) = done else {
            return;
        };
        for f in frames {
            if socks.with(k, |_, t| t.send_shared(f)).is_some() {
                self.ctx.metrics.ws_frames_out.fetch_add(1, Relaxed);
            }
        }
        if newly_present {
            self.ctx.store.presence(PresenceOp::join(room, &who));
        }
        self.reconcile(k, room, socks, out);
    }

    /// Brings a socket from its own position up to the room's live position, from the
    /// recent buffer when it has the rows, else from the database.
    fn reconcile(&mut self, k: usize, room: Uuid, socks: &mut impl Sockets, out: &mut Outcomes) {
        let Some(room_seq) = self.rooms.seq(room) else {
            return;
        };
        let behind = socks.with(k, |s, _| {
            let sock = s.id;
            let sub = s.sub(room)?;
            if sub.joining || sub.catching_up || sub.delivered >= room_seq {
                return None;
            }
            Some((sock, sub.delivered))
        });
        let Some(Some((sock, after))) = behind else {
            return;
        };
        if let Some(msgs) = self.rooms.recent_range(room, after, room_seq) {
            socks.with(k, |s, _| {
                if let Some(sub) = s.sub(room) {
                    sub.delivered = room_seq;
                }
            });
            for chunk in chunks(&msgs) {
                self.send_owned(socks, k, events::encode("new_message_batch", chunk));
            }
            return;
        }
        socks.with(k, |s, _| {
            if let Some(sub) = s.sub(room) {
                sub.catching_up = true;
            }
        });
        let mailbox = self.mailbox.clone();
        let reply = move |rows: Result<Vec<Arc<Message>>, ApiError>| {
            // The rows bring the socket to the last one, or to the top of the range
            // when retention removed every row of it.
            let result = rows.map(|rows| {
                let reached = rows.last().map_or(room_seq, |m| m.seq);
                (rows, reached)
            });
            mailbox.post(LoopEvent::CatchUp {
                key: k,
                sock,
                room,
                result,
            });
        };
        let store = &self.ctx.store;
        if store
            .range(room, after, room_seq, FETCH_PAGE, Box::new(reply))
            .is_err()
        {
            // Cannot catch this socket up now; closing it lets the client retry later.
            out.push((
                k,
                self.close(k, socks, 1013, "server busy: reconnect with last_seen_seq"),
            ));
        }
    }

    /// Rows for a socket behind its room: send them, then check again.
    pub(super) fn on_catch_up(
        &mut self,
        k: usize,
        sock: u64,
        room: Uuid,
        result: Result<(Vec<Arc<Message>>, i64), ApiError>,
        socks: &mut impl Sockets,
        out: &mut Outcomes,
    ) {
        let fresh = socks.with(k, |s, _| {
            if s.id != sock {
                return None;
            }
            let sub = s.sub(room)?;
            sub.catching_up = false;
            let (rows, reached) = match &result {
                Ok(r) => r,
                Err(_) => return Some(Err(())),
            };
            let fresh: Vec<Arc<Message>> = rows
                .iter()
                .filter(|m| m.seq > sub.delivered)
                .cloned()
                .collect();
            // Past rows retention removed meanwhile too: nothing of them remains to send.
            sub.delivered = sub.delivered.max(*reached);
            Some(Ok(fresh))
        });
        match fresh {
            Some(Some(Ok(fresh))) => {
                for chunk in chunks(&fresh) {
                    self.send_owned(socks, k, events::encode("new_message_batch", chunk));
                }
                self.reconcile(k, room, socks, out);
            }
            Some(Some(Err(()))) => out.push((
                k,
                self.close(k, socks, 1013, "server busy: reconnect with last_seen_seq"),
            )),
            _ => {}
        }
    }
}
