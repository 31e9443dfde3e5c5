//! `user_updated`: a user's profile change reaches the sockets of everyone who shares a
//! room with them, on every node, at most once a second per user.
//!
//! A change travels between nodes as `Event::Profile` (the user's id only); each node's
//! listener hands it to this node's profiles thread, which coalesces per user: the
//! change of a user quiet for a second goes out at once, and the changes that follow
//! within the second after an event go out together when that second ends. Each event
//! reads the profile as it is then (so the last state always arrives: a change
//! committed after the read sends another event) and who shares a room with the user,
//! on a query worker: never on an event loop, never on the listener's connection. The
//! frame, built once, goes to every loop, which sends it to its sockets of those users.

use crate::auth::users;
use crate::base::error::USER_NOT_FOUND;
use crate::chat::mates;
use crate::pg::pool::JobQueue;
use crate::ws::codec::text_frame;
use crate::ws::{LoopEvent, Mailbox, events};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Least time between two events about one user on this node (also the retry delay of
/// an event that could not be made).
pub const EVERY: Duration = Duration::from_secs(1);
/// The thread looks at `stop` at least this often.
const TICK: Duration = Duration::from_millis(200);

/// What reaches the profiles thread.
pub enum Msg {
    /// The user's profile changed.
    Changed(Uuid),
    /// The event about the user went out (true) or could not be made (false).
    Done(Uuid, bool),
}

/// Where the listener hands profile changes.
#[derive(Clone)]
pub struct Profiles {
    tx: Sender<Msg>,
}

impl Profiles {
    /// The handle and the thread's end of its channel.
    pub fn channel() -> (Profiles, Receiver<Msg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Profiles { tx }, rx)
    }

    /// `user`'s profile changed (never blocks).
    pub fn changed(&self, user: Uuid) {
        let _ = self.tx.send(Msg::Changed(user));
    }
}

/// One user's state in the [`Coalescer`].
#[derive(Default)]
struct Slot {
    /// When the last event went out (or failed).
    last: Option<Instant>,
    /// A change not yet sent.
    pending: bool,
    /// An event is being made (one at a time per user, so they arrive in order).
    busy: bool,
}

/// Per-user coalescing of profile changes (pure: the thread feeds it the time).
#[derive(Default)]
pub struct Coalescer {
    users: HashMap<Uuid, Slot>,
}

impl Coalescer {
    /// `user`'s profile changed.
    pub fn changed(&mut self, user: Uuid) {
        self.users.entry(user).or_default().pending = true;
    }

    /// The users whose event is to be made now: a change waits, none is being made, and
    /// the last event went out at least [`EVERY`] ago. Users quiet for that long are
    /// forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Uuid> {
        let mut out = Vec::new();
        for (&user, s) in self.users.iter_mut() {
            if s.pending && !s.busy && s.last.is_none_or(|l| now >= l + EVERY) {
                s.pending = false;
                s.busy = true;
                out.push(user);
            }
        }
        self.users
            .retain(|_, s| s.pending || s.busy || s.last.is_some_and(|l| now < l + EVERY));
        out
    }

    /// The event about `user` went out at `now` (`sent`), or could not be made: the
    /// change waits another [`EVERY`] and is tried again.
    pub fn done(&mut self, user: Uuid, sent: bool, now: Instant) {
        if let Some(s) = self.users.get_mut(&user) {
            s.busy = false;
            s.last = Some(now);
            s.pending |= !sent;
        }
    }

    /// When the next waiting change falls due, if one waits.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.users
            .values()
            .filter(|s| s.pending && !s.busy)
            .map(|s| s.last.map_or(now, |l| l + EVERY))
            .min()
    }
}

/// What the profiles thread needs.
pub struct ProfilesThread {
    /// Query workers (the profile and who shares a room are read there).
    pub db: JobQueue,
    /// The event loops.
    pub loops: Vec<Arc<dyn Mailbox>>,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// The profiles thread: coalesces changes and has each event made on a query worker.
pub fn run(t: ProfilesThread, handle: Profiles, rx: Receiver<Msg>) {
    let mut c = Coalescer::default();
    while !t.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        for user in c.due(now) {
            if !submit(&t, &handle, user) {
                c.done(user, false, now);
            }
        }
        let wait = c
            .next_due(now)
            .map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
        match rx.recv_timeout(wait) {
            Ok(m) => {
                for m in std::iter::once(m).chain(rx.try_iter()) {
                    match m {
                        Msg::Changed(user) => c.changed(user),
                        Msg::Done(user, sent) => c.done(user, sent, Instant::now()),
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Queues the making of `user`'s event; false when the queue is full.
fn submit(t: &ProfilesThread, handle: &Profiles, user: Uuid) -> bool {
    let loops = t.loops.clone();
    let done = handle.tx.clone();
    let job = Box::new(move |w: &mut crate::pg::pool::Worker| {
        let sent = match users::profile(w, user) {
            // Gone (deleted meanwhile): nothing to tell.
            Err(e) if e.code() == USER_NOT_FOUND.code() => true,
            Err(e) => {
                log::warn!("user_updated for {user}: {e}");
                false
            }
            Ok(profile) => match mates::of(w, user) {
                Ok(mates) => {
                    let data = serde_json::json!({ "user": profile });
                    let frame: Arc<[u8]> =
                        Arc::from(text_frame(&events::encode("user_updated", &data)));
                    let users: Arc<HashSet<Uuid>> = Arc::new(mates.into_iter().collect());
                    for l in &loops {
                        l.post(LoopEvent::Users {
                            users: users.clone(),
                            frame: frame.clone(),
                        });
                    }
                    true
                }
                Err(e) => {
                    log::warn!("user_updated for {user}: {e}");
                    false
                }
            },
        };
        let _ = done.send(Msg::Done(user, sent));
    });
    t.db.submit(job).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_user_goes_out_at_once_then_once_a_second_with_nothing_lost() {
        let (ann, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut c = Coalescer::default();
        assert!(c.due(t0).is_empty());
        c.changed(ann);
        assert_eq!(c.next_due(t0), Some(t0));
        assert_eq!(c.due(t0), vec![ann]);
        // While it is being made, and for a second after it went out, changes wait.
        c.changed(ann);
        assert!(c.due(ms(10)).is_empty());
        assert_eq!(c.next_due(ms(10)), None, "nothing before the event is done");
        c.done(ann, true, ms(20));
        c.changed(ann);
        c.changed(ann);
        assert!(c.due(ms(500)).is_empty());
        assert_eq!(c.next_due(ms(500)), Some(ms(1020)));
        // Another user is not held by the first.
        c.changed(bob);
        assert_eq!(c.due(ms(500)), vec![bob]);
        // The waiting changes go out as one, a second after the last event.
        assert_eq!(c.due(ms(1020)), vec![ann]);
        assert!(c.due(ms(1021)).is_empty());
        // A failed event is tried again a second later.
        c.done(ann, false, ms(1100));
        assert!(c.due(ms(1500)).is_empty());
        assert_eq!(c.due(ms(2100)), vec![ann]);
        c.done(ann, true, ms(2110));
        c.done(bob, true, ms(510));
        // Quiet users are forgotten; a change then goes out at once.
        assert!(c.due(ms(5000)).is_empty());
        assert!(c.users.is_empty());
        c.changed(ann);
        assert_eq!(c.due(ms(5001)), vec![ann]);
    }
}
