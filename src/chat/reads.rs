//! Read state: members' read marks, batched like messages on a thread of their own
//! (one statement per batch, marks only move forward, clamped to the room's last seq),
//! the `read_state` and `receipt` events they cause (receipts coalesced per member and
//! room), and the reads that show unread counts: `GET /me/rooms`, `GET /me/invites`.

use crate::base::access::{self, Action, Membership, RoomSettings};
use crate::base::error::{ApiError, ROOM_NOT_FOUND, invalid};
use crate::base::model::{Identity, Message, iso};
use crate::chat::direct::Peer;
use crate::chat::levels::Level;
use crate::chat::rooms::{ROOM_COLUMNS, Role, Room, room_columns};
use crate::pg::messages::{self, message_columns};
use crate::pg::notify::{self, ReadMark};
use crate::pg::pool::Worker;
use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most marks stored by one statement.
const BATCH: usize = 5000;
/// Most marks waiting for the thread; more are refused as `unavailable`.
const QUEUE: usize = 65536;

/// Where a mark's outcome goes: the member's read position after it, or why not.
pub type MarkReply = Box<dyn FnOnce(Result<i64, ApiError>) + Send>;

/// A member marks a room read up to `seq`.
pub struct Mark {
    /// Room.
    pub room: Uuid,
    /// Member.
    pub user: Uuid,
    /// Read up to here.
    pub seq: i64,
    /// Told the outcome, when someone waits for it.
    pub reply: Option<MarkReply>,
    /// Implied by the member's own message: stored without `read_state` or receipts
    /// (the sender knows its seq from the answer to its send).
    pub quiet: bool,
}

/// The sending side of the read-marks thread.
#[derive(Clone)]
pub struct Reads {
    tx: Sender<Mark>,
}

impl Reads {
    /// A channel to the thread; the receiver goes to [`run`].
    pub fn channel() -> (Reads, Receiver<Mark>) {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        (Reads { tx }, rx)
    }

    /// Queues a mark without blocking; a full queue answers `unavailable`.
    pub fn mark(&self, m: Mark) {
        if let Err(e) = self.tx.try_send(m) {
            let (TrySendError::Full(m) | TrySendError::Disconnected(m)) = e;
            if let Some(reply) = m.reply {
                reply(Err(ApiError::Unavailable));
            }
        }
    }
}

/// What the read-marks thread needs.
pub struct ReadsThread {
    /// Receipts only in rooms of at most this many members.
    pub receipts_max_members: u32,
    /// At most one receipt per member and room per window.
    pub window: Duration,
    /// Set when the node shuts down.
    pub stop: Arc<AtomicBool>,
}

/// Moves each (room, user) of the batch to `min(seq, room's last seq)` when that is
/// further than it was. Per mark: the position after, whether it moved, whether the
/// room sends receipts, whether the room exists, its visibility, and the user's role and
/// mute (null when not a member).
const MARK_SQL: &str = "WITH v AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[]) AS v(room, usr, seq)),
     upd AS (
        UPDATE room_members m SET last_read_seq = LEAST(v.seq, r.last_seq)
        FROM v JOIN rooms r ON r.id = v.room
        WHERE m.room_id = v.room AND m.user_id = v.usr
          AND m.last_read_seq < LEAST(v.seq, r.last_seq)
        RETURNING m.room_id, m.user_id, m.last_read_seq)
     SELECT v.room, v.usr, COALESCE(upd.last_read_seq, m.last_read_seq, 0),
            upd.room_id IS NOT NULL,
            COALESCE(r.receipts AND r.member_count <= $4, false),
            r.id IS NOT NULL, r.visibility, m.role, x.muted
     FROM v LEFT JOIN upd ON upd.room_id = v.room AND upd.user_id = v.usr
            LEFT JOIN room_members m ON m.room_id = v.room AND m.user_id = v.usr
            LEFT JOIN room_restrictions x ON x.room_id = v.room AND x.user_id = v.usr
            LEFT JOIN rooms r ON r.id = v.room";

/// Receipts held back by the window: (room, user) -> last sent, and the furthest mark
/// waiting to go when the window ends.
#[derive(Default)]
struct Receipts {
    sent: HashMap<(Uuid, Uuid), Instant>,
    pending: HashMap<(Uuid, Uuid), i64>,
}

impl Receipts {
    /// Whether a receipt for `key` may go now; if not, keeps `seq` for later.
    fn due(&mut self, key: (Uuid, Uuid), seq: i64, now: Instant, window: Duration) -> bool {
        match self.sent.get(&key) {
            Some(t) if now.duration_since(*t) < window => {
                self.pending.insert(key, seq);
                false
            }
            _ => {
                self.sent.insert(key, now);
                self.pending.remove(&key);
                true
            }
        }
    }

    /// The held receipts whose window has ended.
    fn flush(&mut self, now: Instant, window: Duration) -> Vec<ReadMark> {
        let due: Vec<(Uuid, Uuid)> = self
            .pending
            .keys()
            .filter(|k| {
                self.sent
                    .get(k)
                    .is_none_or(|t| now.duration_since(*t) >= window)
            })
            .copied()
            .collect();
        let mut out = Vec::new();
        for k in due {
            if let Some(seq) = self.pending.remove(&k) {
                self.sent.insert(k, now);
                out.push(ReadMark {
                    room: k.0,
                    user: k.1,
                    seq,
                    own: false,
                    receipt: true,
                });
            }
        }
        if self.sent.len() > 100_000 {
            self.sent.retain(|_, t| now.duration_since(*t) < window);
        }
        out
    }

    /// When the next held receipt is due.
    fn next(&self, window: Duration) -> Option<Instant> {
        self.pending
            .keys()
            .filter_map(|k| self.sent.get(k))
            .map(|t| *t + window)
            .min()
    }
}

/// How long the quiet marks implied by sent messages gather before they are stored: a
/// member sending many messages costs one row update per this period, not one per
/// write batch.
const QUIET_EVERY: Duration = Duration::from_secs(1);

/// How long marks gather after the first of a batch: a mark's answer waits at most
/// this much longer, and the database sees a few batches a second, not one per mark.
const GATHER: Duration = Duration::from_millis(20);

/// The read-marks thread: stores marks in batches and publishes what they change.
pub fn run(t: ReadsThread, rx: Receiver<Mark>, mut worker: Worker) {
    let mut receipts = Receipts::default();
    // Quiet marks held until `quiet_due`: the furthest per (room, user).
    let mut quiet: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    let mut quiet_due = Instant::now() + QUIET_EVERY;
    loop {
        let now = Instant::now();
        let wait = receipts
            .next(t.window)
            .map_or(Duration::from_millis(200), |d| {
                d.saturating_duration_since(now)
            })
            .min(Duration::from_millis(200));
        let mut batch = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(m) => {
                batch.push(m);
                // Gather what follows for a moment: at 10,000 marks a second, one
                // transaction (and one NOTIFY) per GATHER instead of one per few marks.
                let until = Instant::now() + GATHER;
                while batch.len() < BATCH {
                    match rx.recv_deadline(until) {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        batch.extend(rx.try_iter().take(BATCH - batch.len()));
        batch.retain(|m| {
            if !m.quiet || m.reply.is_some() {
                return true;
            }
            let e = quiet.entry((m.room, m.user)).or_insert(m.seq);
            *e = (*e).max(m.seq);
            false
        });
        let now = Instant::now();
        let stopping = t.stop.load(Ordering::Acquire);
        if now >= quiet_due || stopping || quiet.len() >= BATCH {
            quiet_due = now + QUIET_EVERY;
            batch.extend(quiet.drain().map(|((room, user), seq)| Mark {
                room,
                user,
                seq,
                reply: None,
                quiet: true,
            }));
        }
        let held = receipts.flush(now, t.window);
        if batch.is_empty() && held.is_empty() {
            if stopping && quiet.is_empty() {
                return;
            }
            continue;
        }
        store(&t, &mut worker, batch, held, &mut receipts);
    }
}

fn store(
    t: &ReadsThread,
    worker: &mut Worker,
    batch: Vec<Mark>,
    held: Vec<ReadMark>,
    receipts: &mut Receipts,
) {
    // One row per (room, user): the furthest mark; every mark's reply waits on it.
    let mut keys: HashMap<(Uuid, Uuid), (i64, Vec<MarkReply>)> = HashMap::new();
    // Keys with at least one mark that is not quiet: their moves are announced.
    let mut loud = std::collections::HashSet::new();
    for m in batch {
        let e = keys.entry((m.room, m.user)).or_insert((0, Vec::new()));
        e.0 = e.0.max(m.seq);
        e.1.extend(m.reply);
        if !m.quiet {
            loud.insert((m.room, m.user));
        }
    }
    let (mut rooms, mut users, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
    for ((r, u), (s, _)) in &keys {
        rooms.push(*r);
        users.push(*u);
        seqs.push(*s);
    }
    let max_members = t.receipts_max_members as i32;
    let result = (|| -> Result<Vec<postgres::Row>, ApiError> {
        let c = worker.client()?;
        let mut tx = c.transaction()?;
        let rows = if rooms.is_empty() {
            Vec::new()
        } else {
            tx.query(MARK_SQL, &[&rooms, &users, &seqs, &max_members])?
        };
        let now = Instant::now();
        let mut events = held.clone();
        for r in &rows {
            let (room, user, seq, moved, rc): (Uuid, Uuid, i64, bool, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            if moved && loud.contains(&(room, user)) {
                let receipt = rc && receipts.due((room, user), seq, now, t.window);
                events.push(ReadMark {
                    room,
                    user,
                    seq,
                    own: true,
                    receipt,
                });
            }
        }
        notify::publish(&mut tx, &notify::reads(&events))?;
        tx.commit()?;
        Ok(rows)
    })();
    match result {
        Ok(rows) => {
            for r in rows {
                let key: (Uuid, Uuid) = (r.get(0), r.get(1));
                let seq: i64 = r.get(2);
                let outcome = match r.get::<_, Option<&str>>(6) {
                    Some(visibility) if r.get::<_, bool>(5) => {
                        let m = Membership::from_row(r.get(7), r.get(8), false, false);
                        access::check(m, RoomSettings::from_row(visibility), Action::MarkRead)
                            .map(|()| seq)
                    }
                    _ => Err(ROOM_NOT_FOUND),
                };
                if let Some((_, replies)) = keys.remove(&key) {
                    for reply in replies {
                        reply(outcome.clone());
                    }
                }
            }
        }
        Err(e) => {
            for (_, (_, replies)) in keys {
                for reply in replies {
                    reply(Err(e.clone()));
                }
            }
        }
    }
}

/// One of the caller's rooms with its read state.
#[derive(Debug, Serialize)]
pub struct MyRoom {
    /// The room.
    #[serde(flatten)]
    pub room: Room,
    /// The caller's role.
    pub role: Role,
    /// The room's last seq.
    pub last_seq: i64,
    /// The caller's last read seq.
    pub last_read_seq: i64,
    /// Messages (kind `message`, deleted ones too) of others after the caller's mark, at most
    /// 100: reactions, edits, deletions and system entries never count.
    pub unread: i64,
    /// The caller is muted here.
    pub muted: bool,
    /// The caller silenced the room's notifications (`notification_level` is `none`).
    pub notifications_muted: bool,
    /// What the caller is notified of here: its choice, else the default.
    pub notification_level: Level,
    /// Mentions of the caller after its read mark, at most 100.
    pub mentions: i64,
    /// When the room last got a message (other entries do not move it).
    pub last_activity_at: String,
    /// The newest message or system entry, if any.
    pub last_message: Option<Message>,
    /// For a direct room, the other member.
    pub other_user: Option<Peer>,
    /// Open reports of the room (at most 100), for its owner and admins only: absent for
    /// a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reports: Option<i64>,
}

/// A page of the caller's rooms.
#[derive(Debug, Serialize)]
pub struct MyRooms {
    /// Rooms, most recent activity first.
    pub rooms: Vec<MyRoom>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The most unread messages counted per room (a client shows more as "99+"): the count
/// reads at most this many index entries of a room.
macro_rules! unread_cap {
    () => {
        "100"
    };
}

/// The page's rooms are chosen first (`mine` reads every membership to sort by
/// activity); everything else is looked up for those rooms only. The caller's mute is a
/// lateral probe of `room_restrictions`' key after the limit: as an `EXISTS` in `mine`
/// it ran before the limit, where the planner, weighing a probe per membership against
/// one scan, hashed every muted pair of the table on each call (20,000 mutes in the
/// table: 4 times slower). `LIMIT 1` keeps the lateral from being flattened into a join
/// that could be hashed the same way.
const ME_ROOMS_SQL: &str = concat!(
    "WITH mine AS (
        SELECT ",
    room_columns!(),
    ", r.last_seq, r.last_activity_at, m.role, m.last_read_seq, m.notifications_muted,
        m.notification_level, r.member_count
        FROM room_members m JOIN rooms r ON r.id = m.room_id
        WHERE m.user_id = $1
          AND ($2::timestamptz IS NULL OR (r.last_activity_at, r.id) < ($2, $3))
        ORDER BY r.last_activity_at DESC, r.id DESC LIMIT $4)
     SELECT ",
    room_columns!(),
    ", r.last_seq, r.last_activity_at, r.role, r.last_read_seq, COALESCE(rx.muted, false),
        r.notifications_muted, r.notification_level, r.member_count, lm.*,
        ou.id, ou.username, ou.display_name, un.n, rp.n, mn.n
     FROM mine r
     LEFT JOIN LATERAL (SELECT x.muted FROM room_restrictions x
        WHERE x.room_id = r.id AND x.user_id = $1 LIMIT 1) rx ON true
     LEFT JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = r.id AND kind IN ('message', 'system')
        ORDER BY seq DESC LIMIT 1) lm ON true
     LEFT JOIN LATERAL (SELECT u.id, u.username, u.display_name
        FROM room_members o JOIN users u ON u.id = o.user_id
        WHERE r.visibility = 'direct' AND o.room_id = r.id AND o.user_id <> $1 LIMIT 1) ou ON true
     LEFT JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM messages u
        WHERE u.room_id = r.id AND u.seq > r.last_read_seq AND u.kind = 'message'
          AND u.user_id <> $1
        LIMIT ",
    unread_cap!(),
    ") x) un ON true
     LEFT JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM message_reports p
        WHERE r.role IN ('owner', 'admin') AND p.room_id = r.id AND p.resolved_at IS NULL
        LIMIT ",
    unread_cap!(),
    ") x) rp ON r.role IN ('owner', 'admin')
     LEFT JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM mentions x
        WHERE x.user_id = $1 AND x.room_id = r.id AND x.seq > r.last_read_seq
          AND x.seq >= r.first_seq
        LIMIT ",
    unread_cap!(),
    ") x) mn ON true
     ORDER BY r.last_activity_at DESC, r.id DESC"
);

/// Where the other user's columns start in a `/me/rooms` row: after the room, its read
/// state (8) and the last message's columns.
const PEER_AT: usize = ROOM_COLUMNS + 8 + messages::COLUMNS;

/// Parses a `/me/rooms` cursor: `<activity µs>_<room id>`.
fn parse_cursor(c: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || invalid("cursor must be a next_cursor this route returned");
    let (t, id) = c.split_once('_').ok_or_else(bad)?;
    let micros: i64 = t.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// The caller's rooms, most recent activity first, each with its last message and
/// unread count: one statement per page. Rooms of more than `mentions_above` members
/// default to the `mentions` notification level.
pub fn my_rooms(
    w: &mut Worker,
    who: &Identity,
    cursor: Option<&str>,
    limit: i64,
    mentions_above: i64,
) -> Result<MyRooms, ApiError> {
    let (at, id) = match cursor {
        Some(c) => {
            let (a, i) = parse_cursor(c)?;
            (Some(a), Some(i))
        }
        None => (None, None),
    };
    let (c, st) = w.prepared(ME_ROOMS_SQL)?;
    let rows = c.query(&st, &[&who.user_id, &at, &id, &limit])?;
    // Columns: the room (ROOM_COLUMNS), last_seq, last_activity_at, role, last_read_seq,
    // muted, notifications_muted, notification_level, member_count, then the message (all
    // null without one), then the peer, unread, reports, mentions.
    const R: usize = ROOM_COLUMNS;
    let mut out = Vec::with_capacity(rows.len());
    let mut last_key = None;
    for r in &rows {
        let room = Room::from_row(r);
        let last_seq: i64 = r.get(R);
        let activity: DateTime<Utc> = r.get(R + 1);
        let last_read_seq: i64 = r.get(R + 3);
        let last_message = match r.get::<_, Option<i64>>(R + 8) {
            Some(_) => Some(messages::from_row_at(r, R + 8)?),
            None => None,
        };
        let other_user = r.get::<_, Option<Uuid>>(PEER_AT).map(|id| Peer {
            id,
            username: r.get(PEER_AT + 1),
            display_name: r.get(PEER_AT + 2),
        });
        last_key = Some(format!("{}_{}", activity.timestamp_micros(), room.id));
        let notifications_muted: bool = r.get(R + 5);
        let notification_level = Level::effective(
            r.get(R + 6),
            notifications_muted,
            room.visibility,
            i64::from(r.get::<_, i32>(R + 7)),
            mentions_above,
        );
        out.push(MyRoom {
            room,
            role: Role::parse(r.get(R + 2)).unwrap_or(Role::Member),
            last_seq,
            last_read_seq,
            unread: r.get(PEER_AT + 3),
            reports: r.get(PEER_AT + 4),
            muted: r.get(R + 4),
            notifications_muted,
            notification_level,
            mentions: r.get(PEER_AT + 5),
            last_activity_at: iso(activity),
            last_message,
            other_user,
        });
    }
    let next_cursor = if out.len() as i64 == limit {
        last_key
    } else {
        None
    };
    Ok(MyRooms {
        rooms: out,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_coalesced_per_window() {
        let mut r = Receipts::default();
        let w = Duration::from_millis(1000);
        let k = (Uuid::nil(), Uuid::max());
        let t0 = Instant::now();
        assert!(r.due(k, 1, t0, w));
        assert!(!r.due(k, 2, t0 + Duration::from_millis(10), w));
        assert!(!r.due(k, 5, t0 + Duration::from_millis(20), w));
        assert!(r.flush(t0 + Duration::from_millis(500), w).is_empty());
        assert_eq!(r.next(w), Some(t0 + w));
        let held = r.flush(t0 + w, w);
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].seq, held[0].own, held[0].receipt),
            (5, false, true)
        );
        assert!(r.flush(t0 + w * 3, w).is_empty());
    }

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        let (at, got) = parse_cursor(&format!("1767225600000000_{id}")).unwrap();
        assert_eq!((at.timestamp_micros(), got), (1_767_225_600_000_000, id));
        assert!(parse_cursor("x").is_err());
        assert!(parse_cursor("1_notauuid").is_err());
    }
}
