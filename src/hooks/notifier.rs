//! The offline notifier: tells members who are not connected about messages they would
//! want to hear of, by Web Push to each of their subscriptions and as the
//! `notification.offline` webhook event.
//!
//! Like the webhook dispatcher it follows every room's durable stream from a cursor
//! (`push_cursors`), one node at a time (a session advisory lock on its own
//! connection), so the send path writes nothing for it. Each new `message` entry adds,
//! in the transaction that moves the cursor, one pending row per member to notify
//! (`push_pending`, per (user, room): the messages since the last push). A row is due
//! `grace_secs` after its first message and no sooner than `window_secs` after the
//! previous push of that (user, room); when due it is taken out, checked again (the
//! member still has no socket, has not read past the messages) and, in one
//! transaction, recorded as pushed, written to the webhook outbox and, one row per
//! subscription of the member, to `push_outbox`, from which any node's `pusher` makes
//! the Web Push requests until the push service takes them: a node killed at any point
//! loses no push (one may be made twice).
//!
//! An edit entry notifies the members its edit newly mentions (their `mentions` rows
//! carry the edit's seq; a member mentioned before keeps the message's seq), as a
//! mention: once, and never for a mention the edit removed.

use crate::base::config::PushConfig;
use crate::pg::outbox;
use crossbeam_channel::Sender;
use postgres::Client;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The first key of the notifier's advisory lock ("chpn"); the second is 0.
const LOCK_CLASS: i32 = 0x6368_706e;
/// Time between looks for new entries and due notifications.
const SCAN: Duration = Duration::from_millis(100);
/// Most entries read per room per look.
const READ_AHEAD: i64 = 256;
/// Most rooms looked at per look.
const ROOMS_PER_SCAN: i64 = 500;
/// Most notifications taken per look.
const DUE_PER_SCAN: i64 = 200;
/// Message ids carried by one notification (the newest; `count` has them all).
const MAX_IDS: usize = 50;
/// Most characters of the preview.
const PREVIEW_CHARS: i32 = 100;

/// Rooms with entries after the notifier's cursor: id, last seq, cursor.
const DUE_ROOMS_SQL: &str = "SELECT r.id, r.last_seq, coalesce(c.seq, 0)
    FROM rooms r LEFT JOIN push_cursors c ON c.room_id = r.id
    WHERE r.last_seq > coalesce(c.seq, 0) LIMIT $1";

/// For the entries of room `$1[i]` with `$2[i] < seq <= $3[i]`: one pending row per member
/// to notify, merged into the row already waiting. A new message makes candidates of
/// every member (by level: `all`, or `mentions` when it mentions them, the room, or the
/// room is direct); an edit only of the members it newly mentions (their `mentions` rows
/// at the edit's seq), as a mention of the edited message. Then for all: not the
/// author, not read, no socket anywhere, not blocking the author, somewhere to notify.
/// `$4` grace, `$5` window (seconds), `$6` the size above which rooms default to
/// mentions only, `$7` whether a webhook takes the event (else only members with
/// subscriptions), `$8` the preview's length.
const COLLECT_SQL: &str = "WITH q AS (
        SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS q(r, f, t)),
    e AS (
        SELECT m.room_id, m.id, m.seq, m.content, m.created_at, m.user_id AS author,
            rm.user_id, (m.mentions_room OR rm.user_id = ANY (m.mentions)) AS mentioned
        FROM q JOIN messages m ON m.room_id = q.r AND m.seq > q.f AND m.seq <= q.t
        JOIN room_members rm ON rm.room_id = m.room_id
        WHERE m.kind = 'message' AND m.deleted_at IS NULL
        UNION ALL
        SELECT m.room_id, m.target_id, m.seq, m.content, m.created_at, m.user_id,
            mn.user_id, true
        FROM q JOIN messages m ON m.room_id = q.r AND m.seq > q.f AND m.seq <= q.t
        JOIN mentions mn ON mn.message_id = m.target_id AND mn.seq = m.seq
                        AND mn.room_id = m.room_id
        WHERE m.kind = 'message_edited' AND m.target_id IS NOT NULL)
    INSERT INTO push_pending (user_id, room_id, message_ids, seqs, preview, due_at)
    SELECT e.user_id, e.room_id, array_agg(e.id ORDER BY e.seq), array_agg(e.seq ORDER BY e.seq),
        (array_agg(left(e.content, $8) ORDER BY e.seq DESC))[1],
        greatest(min(e.created_at) + make_interval(secs => $4),
                 coalesce(max(ps.sent_at), '-infinity'::timestamptz) + make_interval(secs => $5))
    FROM e
    JOIN rooms r ON r.id = e.room_id
    JOIN room_members rm ON rm.room_id = e.room_id AND rm.user_id = e.user_id
    LEFT JOIN push_sent ps ON ps.user_id = e.user_id AND ps.room_id = e.room_id
    WHERE e.created_at > now() - interval '1 day'
      AND e.user_id <> e.author AND rm.last_read_seq < e.seq
      AND (CASE WHEN rm.notifications_muted THEN 'none'
                ELSE coalesce(rm.notification_level,
                     CASE WHEN r.visibility = 'direct' OR r.member_count <= $6::bigint THEN 'all'
                          ELSE 'mentions' END) END)
          = ANY (CASE WHEN r.visibility = 'direct' OR e.mentioned
                      THEN ARRAY['all', 'mentions'] ELSE ARRAY['all'] END)
      AND NOT EXISTS (SELECT 1 FROM presence p WHERE p.user_id = e.user_id)
      AND NOT EXISTS (SELECT 1 FROM user_blocks b
                      WHERE b.user_id = e.user_id AND b.blocked_id = e.author)
      AND ($7 OR EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = e.user_id))
    GROUP BY e.user_id, e.room_id
    ON CONFLICT (user_id, room_id) DO UPDATE SET
        message_ids = push_pending.message_ids || EXCLUDED.message_ids,
        seqs = push_pending.seqs || EXCLUDED.seqs,
        preview = EXCLUDED.preview";

/// Moves the cursors of rooms `$1[i]` to `$2[i]`.
const CURSOR_SQL: &str = "INSERT INTO push_cursors (room_id, seq)
    SELECT * FROM unnest($1::uuid[], $2::bigint[])
    ON CONFLICT (room_id) DO UPDATE SET seq = greatest(push_cursors.seq, EXCLUDED.seq)";

/// Takes the due rows out, with the member's read mark now (null: no longer a member)
/// and whether it has a socket now.
const TAKE_SQL: &str = "WITH due AS (
        DELETE FROM push_pending WHERE (user_id, room_id) IN (
            SELECT user_id, room_id FROM push_pending WHERE due_at <= now()
            ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING user_id, room_id, message_ids, seqs, preview)
    SELECT d.user_id, d.room_id, d.message_ids, d.seqs, d.preview, rm.last_read_seq,
        EXISTS (SELECT 1 FROM presence p WHERE p.user_id = d.user_id)
    FROM due d LEFT JOIN room_members rm ON rm.room_id = d.room_id AND rm.user_id = d.user_id";

/// One push per subscription of user `$1[i]` with payload `$2[i]`, for the pushers.
const OUTBOX_SQL: &str = "INSERT INTO push_outbox (subscription_id, payload)
    SELECT s.id, q.p FROM unnest($1::uuid[], $2::text[]) AS q(u, p)
    JOIN push_subscriptions s ON s.user_id = q.u";

/// Records the push of a (user, room): the start of its next window.
const SENT_SQL: &str = "INSERT INTO push_sent (user_id, room_id, sent_at) VALUES ($1, $2, now())
    ON CONFLICT (user_id, room_id) DO UPDATE SET sent_at = now()";

/// What the notifier needs.
pub struct NotifierThread {
    /// `[push]`.
    pub cfg: PushConfig,
    /// Web Push is on: this node's pusher, woken when pushes are written; `None`: off
    /// (the webhook event still goes).
    pub pusher: Option<Sender<()>>,
    /// Whether a webhook endpoint takes `notification.offline`.
    pub webhooks: bool,
    /// Rooms of more members default to mentions only.
    pub mentions_only_above: u32,
    /// The database (the notifier's own connection holds the lock).
    pub db_url: String,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// A notification taken out of `push_pending` and still wanted.
struct Notice {
    user: Uuid,
    room: Uuid,
    count: usize,
    ids: Vec<i64>,
    preview: String,
}

impl Notice {
    /// The Web Push payload: `{room_id, count, message_ids, preview}`.
    fn payload(&self) -> String {
        json!({"room_id": self.room, "count": self.count, "message_ids": self.ids,
               "preview": self.preview})
        .to_string()
    }
}

/// Runs the notifier until `stop`.
pub fn run(t: NotifierThread) {
    while !t.stop.load(Relaxed) {
        let Some(mut db) = connect(&t) else {
            wait(&t.stop, Duration::from_secs(1));
            continue;
        };
        log::info!("offline notifications: this node sends them");
        if let Err(e) = work(&t, &mut db) {
            log::warn!("offline notifications: {e}");
            wait(&t.stop, Duration::from_secs(1));
        }
    }
}

fn wait(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A connection holding the notifier's lock, or `None` (another node has it, or the
/// database is away).
fn connect(t: &NotifierThread) -> Option<Client> {
    let mut db = crate::pg::connect_named(&t.db_url, t.connect_timeout, "chatd-push").ok()?;
    let row = db
        .query_one("SELECT pg_try_advisory_lock($1, 0)", &[&LOCK_CLASS])
        .ok()?;
    row.get::<_, bool>(0).then_some(db)
}

/// Follows the streams and sends what is due while the connection lasts.
fn work(t: &NotifierThread, db: &mut Client) -> Result<(), postgres::Error> {
    while !t.stop.load(Relaxed) {
        let started = Instant::now();
        collect(t, db)?;
        take(t, db)?;
        std::thread::sleep(SCAN.saturating_sub(started.elapsed()));
    }
    Ok(())
}

/// Reads the new entries of every room and records who is to be notified. With no
/// subscription anywhere and no webhook taking the event, only the cursors move.
fn collect(t: &NotifierThread, db: &mut Client) -> Result<(), postgres::Error> {
    let due = db.query(DUE_ROOMS_SQL, &[&ROOMS_PER_SCAN])?;
    if due.is_empty() {
        return Ok(());
    }
    let (mut rooms, mut from, mut to) = (Vec::new(), Vec::new(), Vec::new());
    for r in &due {
        let (last, f): (i64, i64) = (r.get(1), r.get(2));
        rooms.push(r.get::<_, Uuid>(0));
        from.push(f);
        to.push(last.min(f + READ_AHEAD));
    }
    let mut tx = db.transaction()?;
    let anyone = t.webhooks
        || tx
            .query_one("SELECT EXISTS (SELECT 1 FROM push_subscriptions)", &[])?
            .get::<_, bool>(0);
    if anyone {
        let grace = t.cfg.grace_secs as f64;
        let window = t.cfg.window_secs as f64;
        let above = i64::from(t.mentions_only_above);
        tx.execute(
            COLLECT_SQL,
            &[
                &rooms,
                &from,
                &to,
                &grace,
                &window,
                &above,
                &t.webhooks,
                &PREVIEW_CHARS,
            ],
        )?;
    }
    tx.execute(CURSOR_SQL, &[&rooms, &to])?;
    tx.commit()
}

/// Takes the due notifications and records them: pushed (the next window), the
/// webhook event, and the Web Push requests in `push_outbox`, all in one transaction.
fn take(t: &NotifierThread, db: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = db.transaction()?;
    let rows = tx.query(TAKE_SQL, &[&DUE_PER_SCAN])?;
    let mut notices = Vec::new();
    for r in &rows {
        let (read, online): (Option<i64>, bool) = (r.get(5), r.get(6));
        let Some(read) = read.filter(|_| !online) else {
            continue;
        };
        let (ids, seqs): (Vec<i64>, Vec<i64>) = (r.get(2), r.get(3));
        let mut unread = unread_ids(&ids, &seqs, read);
        if unread.is_empty() {
            continue;
        }
        let count = unread.len();
        if count > MAX_IDS {
            unread.drain(..count - MAX_IDS);
        }
        notices.push(Notice {
            user: r.get(0),
            room: r.get(1),
            count,
            ids: unread,
            preview: r.get(4),
        });
    }
    for n in &notices {
        tx.execute(SENT_SQL, &[&n.user, &n.room])?;
        if t.webhooks {
            let data = json!({"user_id": n.user, "room_id": n.room, "count": n.count,
                              "message_ids": n.ids, "preview": n.preview});
            outbox::record(&mut tx, "notification.offline", Some(n.room), &data)?;
        }
    }
    let mut pushed = 0;
    if t.pusher.is_some() && !notices.is_empty() {
        let users: Vec<Uuid> = notices.iter().map(|n| n.user).collect();
        let payloads: Vec<String> = notices.iter().map(Notice::payload).collect();
        pushed = tx.execute(OUTBOX_SQL, &[&users, &payloads])?;
    }
    tx.commit()?;
    if let (Some(wake), true) = (&t.pusher, pushed > 0) {
        let _ = wake.try_send(());
    }
    Ok(())
}

/// The ids of the entries after the read mark `read`, in seq order, each message once
/// (a message and an edit of it that mentions the member are one notification of it).
fn unread_ids(ids: &[i64], seqs: &[i64], read: i64) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .zip(seqs)
        .filter(|(id, s)| **s > read && seen.insert(**id))
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::unread_ids;

    #[test]
    fn unread_ids_skip_the_read_and_repeat_no_message() {
        assert_eq!(unread_ids(&[1, 2, 3], &[5, 6, 7], 5), vec![2, 3]);
        // Message 1 and then its edit adding a mention (seq 9): once.
        assert_eq!(unread_ids(&[1, 2, 1], &[5, 6, 9], 0), vec![1, 2]);
        assert!(unread_ids(&[1], &[5], 5).is_empty());
    }
}
