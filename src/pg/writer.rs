//! The batched write path: a writer takes every queued message it can, and stores the
//! batch in one transaction (room rows locked in a fixed order, one seq range per room,
//! one multi-row INSERT, the messages inline in as few NOTIFY payloads per room as they
//! fit, one commit). A quiet room's plain message alone in a batch takes one round trip
//! instead ([`one`]).

use crate::base::access::{self, Action, Membership, RoomSettings};
use crate::base::error::{ApiError, CLIENT_MSG_ID_REUSED, MESSAGE_NOT_FOUND, ROOM_NOT_FOUND};
use crate::base::metrics::Metrics;
use crate::base::model::{Kind, Message, iso};
use crate::pg::files;
use crate::pg::mentions::{self, Named, Pending, Resolved};
use crate::pg::messages::{self, message_columns};
use crate::pg::notify::{Batch, shard_channel, shard_of};
use crate::pg::pool::{Pool, Worker, next_job};
use crate::pg::{db_error, is_unique_violation};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use postgres::Statement;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use uuid::Uuid;

mod one;

/// Where a stored message (or its error) is reported.
pub type WriteReply = Box<dyn FnOnce(Result<Arc<Message>, ApiError>) + Send>;

/// One message to store.
pub struct WriteJob {
    /// Target room.
    pub room_id: Uuid,
    /// Author.
    pub user_id: Uuid,
    /// Author's name.
    pub username: String,
    /// Text (already validated).
    pub content: String,
    /// Idempotency key.
    pub client_msg_id: Option<String>,
    /// What only some messages have (a reply's target, attachments).
    pub extra: Option<Box<Extra>>,
    /// Posted by the server API as the user: no slow mode holds it.
    pub by_key: bool,
    /// Called once with the outcome, after commit.
    pub reply: WriteReply,
}

/// The parts of a message most have not: kept out of line, and stored by a statement
/// of their own only in batches that have them.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// The message this one replies to (must be of the same room).
    pub reply_to: Option<i64>,
    /// Attachment metadata (already validated).
    pub attachments: Option<serde_json::Value>,
    /// The `@` names of its text (resolved against the room's members when stored).
    pub mentions: Option<Named>,
}

/// Senders to the writer threads; a room always maps to the same writer.
#[derive(Clone)]
pub struct Writers {
    txs: Vec<Sender<WriteJob>>,
    metrics: Arc<Metrics>,
    inflight: Arc<AtomicUsize>,
}

impl Writers {
    /// Starts `n` writer threads, notifying on `shards` channels.
    pub fn start(
        n: usize,
        batch: usize,
        shards: u16,
        bound: usize,
        pool: &Pool,
        metrics: &Arc<Metrics>,
        stop: &Arc<AtomicBool>,
    ) -> (Writers, Vec<std::thread::JoinHandle<()>>) {
        let mut txs = Vec::new();
        let mut handles = Vec::new();
        let inflight = Arc::new(AtomicUsize::new(0));
        for i in 0..n {
            let (tx, rx) = crossbeam_channel::bounded::<WriteJob>(bound);
            txs.push(tx);
            let mut worker = Worker::new(pool.clone(), metrics.clone());
            let (stop, inflight) = (stop.clone(), inflight.clone());
            let h = std::thread::Builder::new()
                .name(format!("writer-{i}"))
                .spawn(move || run(&rx, &mut worker, batch, shards, &stop, &inflight))
                .unwrap_or_else(|e| panic!("cannot spawn writer thread: {e}"));
            handles.push(h);
        }
        (
            Writers {
                txs,
                metrics: metrics.clone(),
                inflight,
            },
            handles,
        )
    }

    /// Messages accepted and not yet answered (queued or being stored).
    pub fn in_flight(&self) -> usize {
        self.inflight.load(Relaxed)
    }

    /// Queues a message without blocking; the job comes back (boxed: the rare path)
    /// when its writer is full.
    pub fn submit(&self, job: WriteJob) -> Result<(), Box<WriteJob>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        job.room_id.hash(&mut h);
        let idx = (h.finish() % self.txs.len() as u64) as usize;
        self.inflight.fetch_add(1, Relaxed);
        match self.txs[idx].try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(j)) | Err(TrySendError::Disconnected(j)) => {
                self.inflight.fetch_sub(1, Relaxed);
                self.metrics.jobs_rejected.fetch_add(1, Relaxed);
                Err(Box::new(j))
            }
        }
    }

    /// Messages waiting, per writer.
    pub fn queue_lengths(&self) -> Vec<usize> {
        self.txs.iter().map(|t| t.len()).collect()
    }
}

fn run(
    rx: &Receiver<WriteJob>,
    worker: &mut Worker,
    batch_size: usize,
    shards: u16,
    stop: &AtomicBool,
    inflight: &AtomicUsize,
) {
    while let Some(first) = next_job(rx, stop) {
        let mut batch = vec![first];
        while batch.len() < batch_size {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let n = batch.len();
        // A quiet room's plain message alone: one round trip, unless it needs the
        // batched path after all.
        let batch = match batch.pop() {
            Some(job) if n == 1 && one::eligible(&job) => one::store(worker, job, shards)
                .map(|job| vec![job])
                .unwrap_or_default(),
            Some(job) => {
                batch.push(job);
                batch
            }
            None => batch,
        };
        if !batch.is_empty() {
            store_batch(worker, batch, shards);
        }
        inflight.fetch_sub(n, Relaxed);
    }
}

/// Outcome of one job inside a batch.
enum Slot {
    Failed(ApiError),
    /// Already stored by an earlier send with the same client_msg_id.
    Existing(Arc<Message>),
    /// Same key as an earlier job of this batch (index).
    SameAs(usize),
    /// New: gets a seq.
    New,
}

/// Locks the rooms in id order and reads which of `$2` are members (with their role and
/// mute), in one round trip: one row per (room, member of the batch), or (room, null)
/// for a room without one; with the room's visibility and slow mode and, for a member
/// of a direct room only, whether a block parts it from the other member (either way:
/// two primary-key probes; the other member is its direct key without the sender's id).
/// (No invitation or ban: the send rule answers those users like anyone outside.) Last,
/// the room's member count (who may mention the whole room).
const LOCK_SQL: &str = "SELECT r.id, m.user_id, x.muted, r.visibility, m.role, r.slow_mode_secs,
       CASE WHEN r.visibility = 'direct' AND m.user_id IS NOT NULL THEN EXISTS (
         SELECT 1 FROM (SELECT replace(replace(r.direct_key, m.user_id::text, ''), ':', '')::uuid
                        AS peer) p
         JOIN user_blocks b ON (b.user_id = m.user_id AND b.blocked_id = p.peer)
                            OR (b.user_id = p.peer AND b.blocked_id = m.user_id))
       ELSE false END, r.member_count
     FROM rooms r
     LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = ANY($2)
     LEFT JOIN room_restrictions x ON x.room_id = r.id AND x.user_id = m.user_id
     WHERE r.id = ANY($1) ORDER BY r.id FOR UPDATE OF r";
/// Reserves each room's seq range and inserts the messages in one statement: message `k`
/// (1-based, in arrival order within its room) of those that pass gets the room's old
/// last seq + its rank among them. A message marked held (`$7`: a member's first of the
/// batch in a room with slow mode on) passes only when the member's last message is
/// older than the room's slow mode, and moves its `last_sent_at`. The check is here and
/// not in [`LOCK_SQL`]: this statement starts after the room's lock is held, so it sees
/// the `last_sent_at` of the transaction (of any node) that held the lock before; a held
/// message that does not pass takes no seq. Returns (room, k, seq, id, created_at, null)
/// per stored message and (room, k, null, null, null, milliseconds left) per refused one.
const STORE_SQL: &str = "WITH m AS (
       SELECT * FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::text[],
                            $6::text[], $7::bool[])
            AS m(room_id, k, user_id, username, content, cmid, held)),
     w AS (
       SELECT m.room_id, m.user_id, ceil(1000 * extract(epoch FROM
                rm.last_sent_at + r.slow_mode_secs * interval '1 second' - clock_timestamp()
              ))::int8 AS wait
       FROM m JOIN rooms r ON r.id = m.room_id
       JOIN room_members rm ON rm.room_id = m.room_id AND rm.user_id = m.user_id
       WHERE m.held AND rm.last_sent_at IS NOT NULL),
     go AS (
       SELECT m.*, row_number() OVER (PARTITION BY m.room_id ORDER BY m.k) AS rank
       FROM m LEFT JOIN w ON w.room_id = m.room_id AND w.user_id = m.user_id
       WHERE w.wait IS NULL OR w.wait <= 0),
     s AS (
       UPDATE rooms SET last_seq = rooms.last_seq + v.n, last_activity_at = now()
       FROM (SELECT room_id, count(*) AS n FROM go GROUP BY room_id) v
       WHERE rooms.id = v.room_id
       RETURNING rooms.id, rooms.last_seq - v.n AS base),
     ins AS (
       INSERT INTO messages (room_id, seq, user_id, username, content, client_msg_id)
       SELECT go.room_id, s.base + go.rank, go.user_id, go.username, go.content, go.cmid
       FROM go JOIN s ON s.id = go.room_id
       RETURNING room_id, seq, id, created_at),
     slow AS (
       UPDATE room_members SET last_sent_at = now() FROM go
       WHERE go.held AND room_members.room_id = go.room_id
         AND room_members.user_id = go.user_id)
     SELECT go.room_id, go.k, ins.seq, ins.id, ins.created_at, NULL::int8
     FROM ins JOIN s ON s.id = ins.room_id
     JOIN go ON go.room_id = ins.room_id AND go.rank = ins.seq - s.base
     UNION ALL
     SELECT m.room_id, m.k, NULL, NULL, NULL, w.wait
     FROM m JOIN w ON w.room_id = m.room_id AND w.user_id = m.user_id
     WHERE m.held AND w.wait > 0";
/// [`STORE_SQL`] for a batch in which no message is held by slow mode (most batches):
/// each room's seq range reserved and the messages inserted in one statement of two
/// steps, so that a room without slow mode pays nothing for it. Returns (room, k, seq,
/// id, created_at) per message.
const PLAIN_STORE_SQL: &str = "WITH s AS (
       UPDATE rooms SET last_seq = rooms.last_seq + v.n, last_activity_at = now()
       FROM unnest($1::uuid[], $2::int8[]) AS v(id, n)
       WHERE rooms.id = v.id
       RETURNING rooms.id, rooms.last_seq - v.n AS base),
     ins AS (
       INSERT INTO messages (room_id, seq, user_id, username, content, client_msg_id)
       SELECT m.room_id, s.base + m.k, m.user_id, m.username, m.content, m.cmid
       FROM unnest($3::uuid[], $4::int8[], $5::uuid[], $6::text[], $7::text[], $8::text[])
            AS m(room_id, k, user_id, username, content, cmid)
       JOIN s ON s.id = m.room_id
       RETURNING room_id, seq, id, created_at)
     SELECT ins.room_id, ins.seq - s.base, ins.seq, ins.id, ins.created_at
     FROM ins JOIN s ON s.id = ins.room_id";
/// Sets the replies' targets and the attachments of the batch's messages that have
/// them (by room and seq), and moves each replied-to message's reply count.
const EXTRA_SQL: &str = "WITH x AS (
       SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::jsonb[])
            AS x(room_id, seq, reply_to, attachments)),
     upd AS (
       UPDATE messages m SET reply_to = x.reply_to, attachments = x.attachments
       FROM x WHERE m.room_id = x.room_id AND m.seq = x.seq RETURNING m.reply_to)
     UPDATE messages r SET reply_count = r.reply_count + c.n, last_reply_at = now()
     FROM (SELECT reply_to, count(*)::int AS n FROM upd WHERE reply_to IS NOT NULL
           GROUP BY reply_to) c
     WHERE r.id = c.reply_to";
/// Which of `$2` are live messages of room `$1`-paired ids: (id, room).
const TARGETS_SQL: &str = "SELECT id, room_id FROM messages
     WHERE id = ANY($1) AND kind = 'message' AND deleted_at IS NULL";
const NOTIFY_SQL: &str = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS x(c, p)";
/// Messages already stored under the batch's (room, user, client_msg_id) keys. A plain
/// join on the unique index (rather than `IN (SELECT ... unnest)`): PostgreSQL plans it
/// several times faster and runs it without hashing the keys first. Columns in the
/// order `messages::from_row` reads them.
/// (The key columns are named r, u, c so that the message columns need no qualifier.)
const DEDUP_SQL: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(r, u, c)
     JOIN messages m ON m.room_id = k.r AND m.user_id = k.u AND m.client_msg_id = k.c"
);

fn store_batch(worker: &mut Worker, jobs: Vec<WriteJob>, shards: u16) {
    let started = std::time::Instant::now();
    let outcomes = store_isolating(worker, &jobs, shards);
    let metrics = worker.metrics();
    metrics
        .write_seconds
        .observe(started.elapsed().as_secs_f64());
    let stored = outcomes.iter().filter(|o| o.1).count();
    if stored > 0 {
        metrics.write_batch_size.observe(stored as f64);
        metrics.messages_stored.fetch_add(stored as u64, Relaxed);
    }
    for (job, (outcome, _)) in jobs.into_iter().zip(outcomes) {
        (job.reply)(outcome);
    }
}

/// Why a transaction did not store its batch.
enum Failed {
    /// PostgreSQL refused something in it (a row, a constraint): worth splitting.
    Refused(postgres::Error),
    /// No database, or a lost connection: the same for every message.
    Unavailable(ApiError),
}

/// Stores `jobs` in one transaction. When PostgreSQL refuses it, each half is stored on
/// its own, and so on down to single messages: a row PostgreSQL refuses fails alone
/// and never takes other users' messages with it. Halves are stored in order, so a
/// room's messages keep their order.
fn store_isolating(worker: &mut Worker, jobs: &[WriteJob], shards: u16) -> Vec<Outcome> {
    let e = match store(worker, jobs, shards) {
        Ok(outcomes) => return outcomes,
        Err(Failed::Refused(_)) if jobs.len() > 1 => {
            let (left, right) = jobs.split_at(jobs.len() / 2);
            let mut outcomes = store_isolating(worker, left, shards);
            outcomes.extend(store_isolating(worker, right, shards));
            return outcomes;
        }
        Err(Failed::Refused(e)) => db_error(&e),
        Err(Failed::Unavailable(e)) => e,
    };
    worker.metrics().write_failures.fetch_add(1, Relaxed);
    jobs.iter().map(|_| (Err(e.clone()), false)).collect()
}

/// One attempt at storing `jobs` in one transaction.
fn store(worker: &mut Worker, jobs: &[WriteJob], shards: u16) -> Result<Vec<Outcome>, Failed> {
    let (client, st) = worker
        .prepared_all([
            LOCK_SQL,
            STORE_SQL,
            NOTIFY_SQL,
            DEDUP_SQL,
            EXTRA_SQL,
            TARGETS_SQL,
            PLAIN_STORE_SQL,
            mentions::SQL,
        ])
        .map_err(Failed::Unavailable)?;
    // A concurrent node may store the same client_msg_id between our check and our
    // insert; the unique index then fails the batch and one retry resolves it.
    let result = match try_store(client, &st, jobs, shards) {
        Err(e) if is_unique_violation(&e, "messages_client_msg_idx") => {
            try_store(client, &st, jobs, shards)
        }
        other => other,
    };
    result.map_err(|e| {
        if e.is_closed() || e.code().is_none() {
            Failed::Unavailable(db_error(&e))
        } else {
            Failed::Refused(e)
        }
    })
}

type Outcome = (Result<Arc<Message>, ApiError>, bool);

fn try_store(
    c: &mut postgres::Client,
    st: &[Statement; 8],
    jobs: &[WriteJob],
    shards: u16,
) -> Result<Vec<Outcome>, postgres::Error> {
    let mut tx = c.transaction()?;
    let mut rooms: Vec<Uuid> = jobs.iter().map(|j| j.room_id).collect();
    rooms.sort();
    rooms.dedup();
    // Lock the rooms in id order: two writers (or nodes) never deadlock on them, and
    // everything below sees the rows committed by whoever held the lock before us.
    let users: Vec<Uuid> = jobs.iter().map(|j| j.user_id).collect();
    // Room -> its settings; (room, member) -> membership. Each job is then decided by
    // the access rule, like every other action in a room.
    let mut existing: HashMap<Uuid, RoomSettings> = HashMap::new();
    let mut members: HashMap<(Uuid, Uuid), Membership> = HashMap::new();
    let mut blocked: std::collections::HashSet<(Uuid, Uuid)> = Default::default();
    let mut slow = Slow::default();
    let mut sizes: HashMap<Uuid, i32> = HashMap::new();
    for row in tx.query(&st[0], &[&rooms, &users])? {
        let room: Uuid = row.get(0);
        existing.insert(room, RoomSettings::from_row(row.get(3)));
        sizes.insert(room, row.get(7));
        let secs: i32 = row.get(5);
        if secs > 0 {
            slow.secs.insert(room, secs);
        }
        if let Some(user) = row.get::<_, Option<Uuid>>(1) {
            let m = Membership::from_row(row.get(4), row.get(2), false, false);
            members.insert((room, user), m);
            if row.get::<_, bool>(6) {
                blocked.insert((room, user));
            }
        }
    }
    let mut slots: Vec<Slot> = jobs
        .iter()
        .map(|j| {
            let Some(room) = existing.get(&j.room_id) else {
                return Slot::Failed(ROOM_NOT_FOUND);
            };
            let m = members
                .get(&(j.room_id, j.user_id))
                .copied()
                .unwrap_or(Membership::None);
            let room = room.with_blocked(blocked.contains(&(j.room_id, j.user_id)));
            match access::check(m, room, Action::Send) {
                Ok(()) => Slot::New,
                Err(e) => Slot::Failed(e),
            }
        })
        .collect();
    resolve_duplicates(&mut tx, &st[3], jobs, &mut slots)?;
    check_reply_targets(&mut tx, &st[5], jobs, &mut slots)?;
    // Each message's attachments as stored: its `{file_id}` items completed with the
    // files they attach (refused when a file is not the sender's to attach here).
    let attachments = claim_files(&mut tx, jobs, &mut slots)?;
    // Last, so that a retry of a stored message gets it back and a refused reply does
    // not count as the member's message.
    let held = slow.apply(jobs, &members, &mut slots);

    // One seq range per room, in arrival order within the room: message k of a room
    // gets the room's old last seq + k.
    let mut counts: HashMap<Uuid, i64> = HashMap::new();
    let mut ks = vec![0i64; jobs.len()];
    let (mut c_room, mut c_k, mut c_user, mut c_name, mut c_text, mut c_cmid) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut c_held = vec![];
    for (i, (j, s)) in jobs.iter().zip(&slots).enumerate() {
        if matches!(s, Slot::New) {
            let n = counts.entry(j.room_id).or_insert(0);
            *n += 1;
            ks[i] = *n;
            c_room.push(j.room_id);
            c_k.push(*n);
            c_user.push(j.user_id);
            c_name.push(j.username.as_str());
            c_text.push(j.content.as_str());
            c_cmid.push(j.client_msg_id.as_deref());
            c_held.push(held[i]);
        }
    }
    // (room, k) -> (seq, id, created_at); (room, k) -> milliseconds a held sender waits.
    let mut stored: HashMap<(Uuid, i64), (i64, i64, String)> = HashMap::new();
    let mut waits: HashMap<(Uuid, i64), i64> = HashMap::new();
    if !c_room.is_empty() && !c_held.contains(&true) {
        let (ids, ns): (Vec<Uuid>, Vec<i64>) = counts.iter().map(|(k, v)| (*k, *v)).unzip();
        let params: [&(dyn postgres::types::ToSql + Sync); 8] =
            [&ids, &ns, &c_room, &c_k, &c_user, &c_name, &c_text, &c_cmid];
        for row in tx.query(&st[6], &params)? {
            stored.insert(
                (row.get(0), row.get(1)),
                (row.get(2), row.get(3), iso(row.get(4))),
            );
        }
    } else if !c_room.is_empty() {
        for row in tx.query(
            &st[1],
            &[&c_room, &c_k, &c_user, &c_name, &c_text, &c_cmid, &c_held],
        )? {
            let key = (row.get(0), row.get(1));
            match row.get::<_, Option<i64>>(2) {
                Some(seq) => {
                    stored.insert(key, (seq, row.get(3), iso(row.get(4))));
                }
                None => {
                    waits.insert(key, row.get::<_, Option<i64>>(5).unwrap_or(1));
                }
            }
        }
    }
    store_extras(&mut tx, &st[4], jobs, &slots, &ks, &stored, &attachments)?;
    let mentioned = store_mentions(
        &mut tx, &st[7], jobs, &slots, &ks, &stored, &members, &sizes,
    )?;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(jobs.len());
    let mut per_room: HashMap<Uuid, Vec<Arc<Message>>> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        let outcome = match &slots[i] {
            Slot::Failed(e) => (Err(e.clone()), false),
            Slot::Existing(m) => (Ok(m.clone()), false),
            Slot::SameAs(k) => (outcomes[*k].0.clone(), false),
            Slot::New => match stored.get(&(j.room_id, ks[i])) {
                Some((seq, id, at)) => {
                    let (named, everyone) = mentioned.get(id).cloned().unwrap_or_default();
                    let m = Arc::new(Message {
                        id: *id,
                        seq: *seq,
                        room_id: j.room_id,
                        user_id: j.user_id,
                        username: j.username.clone(),
                        content: j.content.clone(),
                        created_at: at.clone(),
                        client_msg_id: j.client_msg_id.clone(),
                        reply_to: j.extra.as_ref().and_then(|x| x.reply_to),
                        attachments: attachments[i].clone(),
                        mentions: (!named.is_empty()).then_some(named),
                        mentions_room: everyone,
                        ..Default::default()
                    });
                    per_room.entry(j.room_id).or_default().push(m.clone());
                    (Ok(m), true)
                }
                None => match waits.get(&(j.room_id, ks[i])) {
                    Some(&ms) => (Err(ApiError::SlowMode(ms.max(1) as u64)), false),
                    None => (Err(ApiError::Internal), false),
                },
            },
        };
        outcomes.push(outcome);
    }
    let (channels, payloads): (Vec<String>, Vec<String>) = per_room
        .iter()
        .flat_map(|(room, msgs)| {
            let channel = shard_channel(shard_of(*room, shards), shards);
            Batch::payloads(msgs)
                .into_iter()
                .map(move |p| (channel.clone(), p))
        })
        .unzip();
    if !payloads.is_empty() {
        tx.execute(&st[2], &[&channels, &payloads])?;
    }
    tx.commit()?;
    Ok(outcomes)
}

/// The rooms of a batch with slow mode on.
#[derive(Default)]
struct Slow {
    /// Room -> its slow mode (only rooms with it on).
    secs: HashMap<Uuid, i32>,
}

impl Slow {
    /// Marks as held a slowed member's first message of the batch in a room with slow
    /// mode on ([`STORE_SQL`] checks its wait), and refuses with `slow_mode` any later
    /// one of the same member and room in the batch (the first starts a new wait, or is
    /// itself too early). Returns, per job, whether it is held.
    fn apply(
        &self,
        jobs: &[WriteJob],
        members: &HashMap<(Uuid, Uuid), Membership>,
        slots: &mut [Slot],
    ) -> Vec<bool> {
        let mut held = vec![false; jobs.len()];
        if self.secs.is_empty() {
            return held;
        }
        let mut first: std::collections::HashSet<(Uuid, Uuid)> = Default::default();
        for (i, j) in jobs.iter().enumerate() {
            let Some(&secs) = self.secs.get(&j.room_id) else {
                continue;
            };
            let key = (j.room_id, j.user_id);
            let m = members.get(&key).copied().unwrap_or(Membership::None);
            if j.by_key || !matches!(slots[i], Slot::New) || !access::slowed(m) {
                continue;
            }
            if first.insert(key) {
                held[i] = true;
            } else {
                slots[i] = Slot::Failed(ApiError::SlowMode(u64::from(secs.unsigned_abs()) * 1000));
            }
        }
        held
    }
}

/// Refuses replies to a message that is not a live message of the same room (one
/// statement, only for batches that have replies).
fn check_reply_targets(
    tx: &mut postgres::Transaction<'_>,
    targets: &Statement,
    jobs: &[WriteJob],
    slots: &mut [Slot],
) -> Result<(), postgres::Error> {
    let asked: Vec<i64> = jobs
        .iter()
        .zip(slots.iter())
        .filter(|(_, s)| matches!(s, Slot::New))
        .filter_map(|(j, _)| j.extra.as_ref().and_then(|x| x.reply_to))
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let found: HashMap<i64, Uuid> = tx
        .query(targets, &[&asked])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (j, s) in jobs.iter().zip(slots.iter_mut()) {
        if let (Slot::New, Some(to)) = (&*s, j.extra.as_ref().and_then(|x| x.reply_to))
            && found.get(&to) != Some(&j.room_id)
        {
            *s = Slot::Failed(MESSAGE_NOT_FOUND);
        }
    }
    Ok(())
}

/// Checks the files the batch's new messages attach ([`files::claim`]: one statement,
/// only for batches that name files), refusing the messages that may not; returns each
/// message's attachments as they are stored.
fn claim_files(
    tx: &mut postgres::Transaction<'_>,
    jobs: &[WriteJob],
    slots: &mut [Slot],
) -> Result<Vec<Option<serde_json::Value>>, postgres::Error> {
    let given = |j: &WriteJob| j.extra.as_ref().and_then(|x| x.attachments.clone());
    let asks: Vec<_> = jobs
        .iter()
        .zip(slots.iter())
        .map(|(j, s)| {
            let a = j.extra.as_ref().and_then(|x| x.attachments.as_ref());
            let named = match s {
                Slot::New => files::named(a),
                _ => Vec::new(),
            };
            (j.room_id, j.user_id, named, a)
        })
        .collect();
    if asks.iter().all(|a| a.2.is_empty()) {
        return Ok(jobs.iter().map(given).collect());
    }
    let verdicts = files::claim(tx, &asks)?;
    let mut out = Vec::with_capacity(jobs.len());
    for ((j, s), v) in jobs.iter().zip(slots.iter_mut()).zip(verdicts) {
        out.push(match v {
            Ok(Some(completed)) => Some(completed),
            Ok(None) => given(j),
            Err(e) => {
                *s = Slot::Failed(e);
                None
            }
        });
    }
    Ok(out)
}

/// Stores the replies' targets and attachments of the batch's new messages that have
/// them, the replied-to messages' counts (one statement, only when there are any), and
/// which message each attached file now belongs to.
fn store_extras(
    tx: &mut postgres::Transaction<'_>,
    extra: &Statement,
    jobs: &[WriteJob],
    slots: &[Slot],
    ks: &[i64],
    stored: &HashMap<(Uuid, i64), (i64, i64, String)>,
    attachments: &[Option<serde_json::Value>],
) -> Result<(), postgres::Error> {
    let (mut rooms, mut seqs, mut replies, mut kept) = (vec![], vec![], vec![], vec![]);
    let mut attached = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let (Slot::New, Some(x)) = (&slots[i], j.extra.as_ref()) else {
            continue;
        };
        if let Some((seq, id, _)) = stored.get(&(j.room_id, ks[i])) {
            rooms.push(j.room_id);
            seqs.push(*seq);
            replies.push(x.reply_to);
            kept.push(attachments[i].clone());
            attached.extend(
                files::named(attachments[i].as_ref())
                    .into_iter()
                    .map(|f| (f, *id)),
            );
        }
    }
    if !rooms.is_empty() {
        tx.execute(extra, &[&rooms, &seqs, &replies, &kept])?;
    }
    files::attach(tx, &attached)
}

/// Resolves the mentions of the batch's new messages that name someone (one statement,
/// only when there are any): `@room` counts when the sender may mention the whole room
/// (asked of the access rule with its membership and the room's size).
#[allow(clippy::too_many_arguments)]
fn store_mentions(
    tx: &mut postgres::Transaction<'_>,
    st: &Statement,
    jobs: &[WriteJob],
    slots: &[Slot],
    ks: &[i64],
    stored: &HashMap<(Uuid, i64), (i64, i64, String)>,
    members: &HashMap<(Uuid, Uuid), Membership>,
    sizes: &HashMap<Uuid, i32>,
) -> Result<Resolved, postgres::Error> {
    let mut pending = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let (Slot::New, Some(named)) = (
            &slots[i],
            j.extra.as_ref().and_then(|x| x.mentions.as_ref()),
        ) else {
            continue;
        };
        let Some((seq, id, _)) = stored.get(&(j.room_id, ks[i])) else {
            continue;
        };
        let m = members
            .get(&(j.room_id, j.user_id))
            .copied()
            .unwrap_or(Membership::None);
        let size = i64::from(sizes.get(&j.room_id).copied().unwrap_or(0));
        pending.push(Pending {
            room: j.room_id,
            message_id: *id,
            seq: *seq,
            sender: j.user_id,
            named,
            room_allowed: named.room && access::may_mention_room(m, size, named.room_max_members),
        });
    }
    if pending.is_empty() {
        return Ok(Resolved::new());
    }
    mentions::resolve(tx, st, &pending)
}

/// Answers jobs whose (room, user, client_msg_id) is already stored, or repeated in the batch.
fn resolve_duplicates(
    tx: &mut postgres::Transaction<'_>,
    dedup: &Statement,
    jobs: &[WriteJob],
    slots: &mut [Slot],
) -> Result<(), postgres::Error> {
    let keyed: Vec<usize> = (0..jobs.len())
        .filter(|&i| matches!(slots[i], Slot::New) && jobs[i].client_msg_id.is_some())
        .collect();
    if keyed.is_empty() {
        return Ok(());
    }
    let rooms: Vec<Uuid> = keyed.iter().map(|&i| jobs[i].room_id).collect();
    let users: Vec<Uuid> = keyed.iter().map(|&i| jobs[i].user_id).collect();
    let cmids: Vec<&str> = keyed
        .iter()
        .map(|&i| jobs[i].client_msg_id.as_deref().unwrap_or_default())
        .collect();
    let mut found: HashMap<(Uuid, Uuid, String), Arc<Message>> = HashMap::new();
    for row in tx.query(dedup, &[&rooms, &users, &cmids])? {
        let m = messages::from_row(&row)?;
        let key = (
            m.room_id,
            m.user_id,
            m.client_msg_id.clone().unwrap_or_default(),
        );
        found.insert(key, Arc::new(m));
    }
    let mut first_in_batch: HashMap<(Uuid, Uuid, &str), usize> = HashMap::new();
    for &i in &keyed {
        let j = &jobs[i];
        let cmid = j.client_msg_id.as_deref().unwrap_or_default();
        if let Some(m) = found.get(&(j.room_id, j.user_id, cmid.to_string())) {
            // The key of an edit, deletion or reaction names that change, not a send.
            slots[i] = match m.kind {
                Kind::Message => Slot::Existing(m.clone()),
                _ => Slot::Failed(CLIENT_MSG_ID_REUSED),
            };
        } else if let Some(&k) = first_in_batch.get(&(j.room_id, j.user_id, cmid)) {
            slots[i] = Slot::SameAs(k);
        } else {
            first_in_batch.insert((j.room_id, j.user_id, cmid), i);
        }
    }
    Ok(())
}
