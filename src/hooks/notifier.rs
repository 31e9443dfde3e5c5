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
//! transaction, recorded as pushed and written to the webhook outbox. The Web Push
//! requests go after that commit on sender threads (blocking HTTP, never on an event
//! loop): a node killed in between loses those pushes, never sends one twice.

use super::webpush::{self, Outcome};
use crate::base::config::PushConfig;
use crate::pg::outbox;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use p256::SecretKey;
use postgres::Client;
use serde_json::json;
use std::collections::HashMap;
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
/// Requests to push services in flight at once.
const SENDERS: usize = 2;
/// How long a push service keeps an undelivered push (the `TTL` header), seconds.
const PUSH_TTL: u64 = 24 * 3600;

/// Rooms with entries after the notifier's cursor: id, last seq, cursor.
const DUE_ROOMS_SQL: &str = "SELECT r.id, r.last_seq, coalesce(c.seq, 0)
    FROM rooms r LEFT JOIN push_cursors c ON c.room_id = r.id
    WHERE r.last_seq > coalesce(c.seq, 0) LIMIT $1";

/// For the messages of room `$1[i]` with `$2[i] < seq <= $3[i]`: one pending row per member to
/// notify (level, not the sender, not read, no socket anywhere, not blocking the
/// sender, with somewhere to notify), merged into the row already waiting. `$4` grace,
/// `$5` window (seconds), `$6` the size above which rooms default to mentions only,
/// `$7` whether a webhook takes the event (else only members with subscriptions).
const COLLECT_SQL: &str =
    "INSERT INTO push_pending (user_id, room_id, message_ids, seqs, preview, due_at)
    SELECT rm.user_id, m.room_id, array_agg(m.id ORDER BY m.seq), array_agg(m.seq ORDER BY m.seq),
        (array_agg(left(m.content, $8) ORDER BY m.seq DESC))[1],
        greatest(min(m.created_at) + make_interval(secs => $4),
                 coalesce(max(ps.sent_at), '-infinity'::timestamptz) + make_interval(secs => $5))
    FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS q(r, f, t)
    JOIN messages m ON m.room_id = q.r AND m.seq > q.f AND m.seq <= q.t
    JOIN rooms r ON r.id = m.room_id
    JOIN room_members rm ON rm.room_id = m.room_id
    LEFT JOIN push_sent ps ON ps.user_id = rm.user_id AND ps.room_id = m.room_id
    WHERE m.kind = 'message'
      AND m.deleted_at IS NULL AND m.created_at > now() - interval '1 day'
      AND rm.user_id <> m.user_id AND rm.last_read_seq < m.seq
      AND (CASE WHEN rm.notifications_muted THEN 'none'
                ELSE coalesce(rm.notification_level,
                     CASE WHEN r.visibility = 'direct' OR r.member_count <= $6::bigint THEN 'all'
                          ELSE 'mentions' END) END)
          = ANY (CASE WHEN r.visibility = 'direct' OR m.mentions_room
                          OR rm.user_id = ANY (m.mentions)
                      THEN ARRAY['all', 'mentions'] ELSE ARRAY['all'] END)
      AND NOT EXISTS (SELECT 1 FROM presence p WHERE p.user_id = rm.user_id)
      AND NOT EXISTS (SELECT 1 FROM user_blocks b
                      WHERE b.user_id = rm.user_id AND b.blocked_id = m.user_id)
      AND ($7 OR EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = rm.user_id))
    GROUP BY rm.user_id, m.room_id
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

/// Records the push of a (user, room): the start of its next window.
const SENT_SQL: &str = "INSERT INTO push_sent (user_id, room_id, sent_at) VALUES ($1, $2, now())
    ON CONFLICT (user_id, room_id) DO UPDATE SET sent_at = now()";

/// What the notifier needs.
pub struct NotifierThread {
    /// `[push]`.
    pub cfg: PushConfig,
    /// The VAPID key; `None`: Web Push is off (the webhook event still goes).
    pub vapid: Option<SecretKey>,
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

/// One Web Push request.
struct PushJob {
    subscription: i64,
    endpoint: String,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
    payload: Arc<str>,
}

/// A subscription as read: id, endpoint, p256dh, auth.
type Sub = (i64, String, Vec<u8>, Vec<u8>);

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
    let (jobs_tx, jobs_rx) = bounded::<PushJob>(1024);
    let (gone_tx, gone_rx) = unbounded::<i64>();
    let mut senders = Vec::new();
    if let Some(key) = &t.vapid {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(t.cfg.timeout_ms)))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("chatd-push/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        for i in 0..SENDERS {
            let (rx, gone, agent) = (jobs_rx.clone(), gone_tx.clone(), agent.clone());
            let (key, subject) = (key.clone(), t.cfg.subject.clone());
            let private = t.cfg.allow_private_endpoints;
            let spawned = std::thread::Builder::new()
                .name(format!("push-{i}"))
                .spawn(move || sender(rx, gone, agent, (key, subject), private));
            match spawned {
                Ok(h) => senders.push(h),
                Err(e) => log::error!("push sender thread: {e}"),
            }
        }
    }
    drop((jobs_rx, gone_tx));
    while !t.stop.load(Relaxed) {
        let Some(mut db) = connect(&t) else {
            wait(&t.stop, Duration::from_secs(1));
            continue;
        };
        log::info!("offline notifications: this node sends them");
        if let Err(e) = work(&t, &mut db, &jobs_tx, &gone_rx) {
            log::warn!("offline notifications: {e}");
            wait(&t.stop, Duration::from_secs(1));
        }
    }
    drop(jobs_tx);
    for h in senders {
        let _ = h.join();
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
    let mut config: postgres::Config = t.db_url.parse().ok()?;
    config.connect_timeout(t.connect_timeout);
    config.application_name("chatd-push");
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    let mut db = crate::pg::connect_own(&config).ok()?;
    let row = db
        .query_one("SELECT pg_try_advisory_lock($1, 0)", &[&LOCK_CLASS])
        .ok()?;
    row.get::<_, bool>(0).then_some(db)
}

/// Follows the streams and sends what is due while the connection lasts.
fn work(
    t: &NotifierThread,
    db: &mut Client,
    jobs: &Sender<PushJob>,
    gone: &Receiver<i64>,
) -> Result<(), postgres::Error> {
    while !t.stop.load(Relaxed) {
        let started = Instant::now();
        collect(t, db)?;
        take(t, db, jobs)?;
        while let Ok(sub) = gone.try_recv() {
            db.execute("DELETE FROM push_subscriptions WHERE id = $1", &[&sub])?;
        }
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

/// Takes the due notifications, records them (pushed, and the webhook event) and
/// hands their Web Push requests to the senders.
fn take(
    t: &NotifierThread,
    db: &mut Client,
    jobs: &Sender<PushJob>,
) -> Result<(), postgres::Error> {
    let mut tx = db.transaction()?;
    let rows = tx.query(TAKE_SQL, &[&DUE_PER_SCAN])?;
    let mut notices = Vec::new();
    for r in &rows {
        let (read, online): (Option<i64>, bool) = (r.get(5), r.get(6));
        let Some(read) = read.filter(|_| !online) else {
            continue;
        };
        let (ids, seqs): (Vec<i64>, Vec<i64>) = (r.get(2), r.get(3));
        let mut unread: Vec<i64> = ids
            .iter()
            .zip(&seqs)
            .filter(|(_, s)| **s > read)
            .map(|(id, _)| *id)
            .collect();
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
    let mut subs: HashMap<Uuid, Vec<Sub>> = HashMap::new();
    if t.vapid.is_some() && !notices.is_empty() {
        let users: Vec<Uuid> = notices.iter().map(|n| n.user).collect();
        let rows = tx.query(
            "SELECT user_id, id, endpoint, p256dh, auth FROM push_subscriptions
             WHERE user_id = ANY($1)",
            &[&users],
        )?;
        for r in rows {
            subs.entry(r.get(0))
                .or_default()
                .push((r.get(1), r.get(2), r.get(3), r.get(4)));
        }
    }
    tx.commit()?;
    for n in &notices {
        let payload: Arc<str> = n.payload().into();
        for (id, endpoint, p256dh, auth) in subs.get(&n.user).into_iter().flatten() {
            let job = PushJob {
                subscription: *id,
                endpoint: endpoint.clone(),
                p256dh: p256dh.clone(),
                auth: auth.clone(),
                payload: payload.clone(),
            };
            if jobs.try_send(job).is_err() {
                log::warn!("push senders overloaded: a notification was dropped");
            }
        }
    }
    Ok(())
}

/// A sender thread: one push at a time until the notifier goes.
fn sender(
    jobs: Receiver<PushJob>,
    gone: Sender<i64>,
    agent: ureq::Agent,
    (key, subject): (SecretKey, String),
    allow_private: bool,
) {
    while let Ok(j) = jobs.recv() {
        // The host is checked again: a name that resolved to a public address when the
        // subscription was made may point inside the network now.
        if let Err(e) = super::subscriptions::check_endpoint(&j.endpoint, allow_private) {
            log::info!("push to subscription {}: {e}", j.subscription);
            continue;
        }
        let body = match webpush::encrypt(j.payload.as_bytes(), &j.p256dh, &j.auth) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("push subscription {}: {e:?}", j.subscription);
                continue;
            }
        };
        let now = crate::base::model::now_secs();
        let auth = webpush::vapid_header(&key, &j.endpoint, &subject, now, 12 * 3600);
        match webpush::send(&agent, &j.endpoint, &auth, &body, PUSH_TTL, "normal") {
            Outcome::Accepted => {}
            Outcome::Gone => {
                let _ = gone.send(j.subscription);
            }
            Outcome::Failed(e) => log::info!("push to subscription {}: {e}", j.subscription),
        }
    }
}
