//! Membership and head-seq checks, answered in batches.
//!
//! A history page and a `join_room` both start by asking PostgreSQL whether the room
//! exists, the user's membership in it and what the room's last seq is; the access rule
//! ([`access::check`]) then decides with what was read. Such checks
//! wait in one queue, and whichever query worker picks up the queue answers all of
//! them with a single statement (as the writers do for messages), then runs each
//! check's continuation on the same worker. Under load one round trip serves many
//! requests; alone, a check costs one round trip as before.

use crate::base::access::{self, Action, Membership, RoomSettings};
use crate::base::error::{ApiError, ROOM_NOT_FOUND};
use crate::base::metrics::Metrics;
use crate::pg::pool::{JobQueue, Worker};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// Most checks answered by one statement.
const BATCH: usize = 256;
/// Most checks waiting; more are refused like a full job queue.
const QUEUE: usize = 8192;

/// For each `(room, user)` pair, in order: the room's last seq (null when there is no
/// such room), its visibility, the user's role and mute (null when not a member), and
/// the room's oldest stored seq. (No invitation or ban: the rules of the stream answer
/// those users like anyone outside.)
pub const HEADS_SQL: &str = "SELECT r.last_seq, r.visibility, m.role, x.muted, r.first_seq
    FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS q(r, u, i)
    LEFT JOIN rooms r ON r.id = q.r
    LEFT JOIN room_members m ON m.room_id = q.r AND m.user_id = q.u
    LEFT JOIN room_restrictions x ON x.room_id = q.r AND x.user_id = q.u
    ORDER BY q.i";

/// A room's stream as a check found it.
#[derive(Clone, Copy, Debug)]
pub struct Pos {
    /// The last seq.
    pub last: i64,
    /// The oldest seq still stored (older ones were removed by retention).
    pub first: i64,
}

/// What a check found: for a member, the worker that answered (for further queries on
/// it) and the room's position; otherwise why not.
pub type Head<'a> = Result<(&'a mut Worker, Pos), ApiError>;

/// Runs with the check's outcome: on the worker that answered it, or on the caller's
/// thread with `unavailable` when no worker can take it.
pub type Then = Box<dyn for<'a> FnOnce(Head<'a>) + Send>;

struct Check {
    room: Uuid,
    user: Uuid,
    action: Action,
    then: Then,
}

/// The queue of checks, whether a worker has been asked to drain it, and the query
/// workers that do.
pub struct Heads {
    tx: Sender<Check>,
    rx: Receiver<Check>,
    scheduled: AtomicBool,
    db: JobQueue,
    metrics: Arc<Metrics>,
}

impl Heads {
    /// Checks answered on the workers of `db`.
    pub fn new(db: JobQueue, metrics: Arc<Metrics>) -> Arc<Heads> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        Arc::new(Heads {
            tx,
            rx,
            scheduled: AtomicBool::new(false),
            db,
            metrics,
        })
    }

    /// Checks that `user` may do `action` (reading the room's stream) in `room`; `then`
    /// gets the room's position, or the refusal, or the database's error. When no
    /// worker can take the check (queues full), `then` gets `unavailable` at once, on
    /// the caller's thread.
    pub fn check(self: &Arc<Heads>, room: Uuid, user: Uuid, action: Action, then: Then) {
        let check = Check {
            room,
            user,
            action,
            then,
        };
        if let Err(e) = self.tx.try_send(check) {
            let (TrySendError::Full(c) | TrySendError::Disconnected(c)) = e;
            self.metrics.jobs_rejected.fetch_add(1, Ordering::Relaxed);
            return (c.then)(Err(ApiError::Unavailable));
        }
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let heads = self.clone();
        if self.db.submit(Box::new(move |w| drain(w, &heads))).is_err() {
            // No worker will come: what waits now was left to this drain.
            self.scheduled.store(false, Ordering::Release);
            for c in self.rx.try_iter() {
                (c.then)(Err(ApiError::Unavailable));
            }
        }
    }
}

/// Answers the waiting checks, [`BATCH`] per statement. Checks that arrive once it
/// started schedule the next drain, which another worker may run at the same time.
fn drain(w: &mut Worker, heads: &Heads) {
    loop {
        heads.scheduled.store(false, Ordering::Release);
        let batch: Vec<Check> = heads.rx.try_iter().take(BATCH).collect();
        let full = batch.len() == BATCH;
        answer(w, batch);
        // A full batch may have left checks that counted on this drain.
        if !full {
            return;
        }
    }
}

fn answer(w: &mut Worker, batch: Vec<Check>) {
    if batch.is_empty() {
        return;
    }
    match query(w, &batch) {
        Ok(heads) => {
            for (c, head) in batch.into_iter().zip(heads) {
                (c.then)(match head {
                    None => Err(ROOM_NOT_FOUND),
                    Some((pos, m, room)) => {
                        access::check(m, room, c.action).map(|()| (&mut *w, pos))
                    }
                });
            }
        }
        Err(e) => {
            for c in batch {
                (c.then)(Err(e.clone()));
            }
        }
    }
}

/// What one check found: the room's position, the user's membership, the room's
/// settings.
type Found = (Pos, Membership, RoomSettings);

/// Per check, what it found, or `None` when there is no room.
fn query(w: &mut Worker, batch: &[Check]) -> Result<Vec<Option<Found>>, ApiError> {
    let rooms: Vec<Uuid> = batch.iter().map(|c| c.room).collect();
    let users: Vec<Uuid> = batch.iter().map(|c| c.user).collect();
    let (c, st) = w.prepared(HEADS_SQL)?;
    let rows = c.query(&st, &[&rooms, &users])?;
    if rows.len() != batch.len() {
        return Err(ApiError::Internal);
    }
    rows.iter()
        .map(|r| {
            let seq: Option<i64> = r.try_get(0)?;
            let visibility: Option<&str> = r.try_get(1)?;
            let role: Option<&str> = r.try_get(2)?;
            let muted: Option<bool> = r.try_get(3)?;
            let first: Option<i64> = r.try_get(4)?;
            Ok(seq.map(|last| {
                let pos = Pos {
                    last,
                    first: first.unwrap_or(1),
                };
                let room = RoomSettings::from_row(visibility.unwrap_or_default());
                (pos, Membership::from_row(role, muted, false, false), room)
            }))
        })
        .collect::<Result<_, postgres::Error>>()
        .map_err(ApiError::from)
}
