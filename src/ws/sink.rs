//! Where the listener's notifications go on this node, beside the interest table it
//! routes by: revocations to the authenticator and every loop, message batches to the
//! history cache and to the loops that have the room, room events framed once for those
//! loops, profile changes to the profiles thread.

use crate::auth::Auth;
use crate::base::model::Message;
use crate::chat::history::{self, HistoryCache};
use crate::pg::listener::Sink;
use crate::pg::notify::Event;
use crate::ws::codec::text_frame;
use crate::ws::interest::Loops;
use crate::ws::{Interest, LiveBatch, LoopEvent, Mailbox, Profiles, events};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// The listener's sink on this node.
pub struct NodeSink {
    /// The event loops.
    pub loops: Vec<Arc<dyn Mailbox>>,
    /// Which loops have which rooms.
    pub interest: Arc<Interest>,
    /// History pages' cache, kept current by the notifications.
    pub history: Arc<HistoryCache>,
    /// Revoked sessions are recorded here.
    pub auth: Arc<Auth>,
    /// Readiness: the listener is connected.
    pub listener_up: Arc<AtomicBool>,
    /// The profiles thread (`user_updated`).
    pub profiles: Profiles,
}

impl NodeSink {
    fn post(&self, to: Loops, mut ev: impl FnMut() -> LoopEvent) {
        for l in to.iter() {
            if let Some(h) = self.loops.get(l) {
                h.post(ev());
            }
        }
    }

    fn broadcast(&self, mut ev: impl FnMut() -> LoopEvent) {
        for h in &self.loops {
            h.post(ev());
        }
    }
}

impl Sink for NodeSink {
    fn wants(&self, room: Uuid) -> bool {
        self.history.holds(room) || self.interest.has(room)
    }

    fn messages(&self, room: Uuid, msgs: Vec<Arc<Message>>) {
        // An edit, a deletion, a reaction or a reply changes an earlier message's row:
        // the cached copies of the room's messages are stale.
        let changes = msgs
            .iter()
            .any(|m| m.kind.changes_earlier() || m.reply_to.is_some());
        if changes {
            self.history.invalidate(room);
        }
        // A writer's batch is one contiguous seq range; anything else is not cached.
        let contiguous = msgs.windows(2).all(|p| p[1].seq == p[0].seq + 1);
        if contiguous
            && !changes
            && self.history.holds(room)
            && let Some(first) = msgs.first()
        {
            let json: Vec<_> = msgs.iter().map(|m| history::encode(m)).collect();
            self.history.extend(room, first.seq, &json);
        }
        let to = self.interest.loops(room);
        if to.is_empty() {
            return;
        }
        let batch = Arc::new(LiveBatch { room, msgs });
        self.post(to, || LoopEvent::Live(batch.clone()));
    }

    fn event(&self, event: Event) {
        match event {
            Event::Revoke { sessions } => {
                self.auth.mark_revoked(&sessions);
                let ids = Arc::new(sessions);
                self.broadcast(|| LoopEvent::Revoke(ids.clone()));
            }
            Event::Room {
                room,
                except,
                event,
            } => {
                let to = self.interest.loops(room);
                if to.is_empty() {
                    return;
                }
                let frame: Arc<[u8]> = Arc::from(text_frame(&events::room_event(&event)));
                self.post(to, || LoopEvent::RoomEvent {
                    room,
                    except,
                    frame: frame.clone(),
                });
            }
            Event::Kick { room, user, reason } => {
                let reason: Arc<str> = Arc::from(reason.as_deref().unwrap_or("left"));
                self.post(self.interest.loops(room), || LoopEvent::Kick {
                    room,
                    user,
                    reason: reason.clone(),
                })
            }
            Event::Gone { room } => self.post(self.interest.loops(room), || LoopEvent::Gone(room)),
            // A user's sockets may be on any loop, whatever rooms they joined.
            Event::Reads { marks } => {
                let marks = Arc::new(marks);
                self.broadcast(|| LoopEvent::Reads(marks.clone()));
            }
            Event::User { user, data } => {
                let frame: Arc<[u8]> = Arc::from(text_frame(&events::encode("membership", &data)));
                self.broadcast(|| LoopEvent::User {
                    user,
                    frame: frame.clone(),
                });
            }
            // Who shares a room with the user is read off this thread.
            Event::Profile { user } => self.profiles.changed(user),
        }
    }

    fn resync(&self) {
        self.broadcast(|| LoopEvent::Resync);
    }

    fn connected(&self, up: bool) {
        self.listener_up.store(up, Ordering::Release);
    }

    fn wanted_shards(&self) -> u64 {
        self.interest.wanted()
    }

    fn listening(&self, shards: u64) {
        if self.interest.set_active(shards) != 0 {
            // Joins waiting for these shards may check now.
            self.broadcast(|| LoopEvent::ShardsReady);
        }
    }
}
