//! The dispatcher of one endpoint: a coordinator thread that holds the endpoint's lock,
//! reads what is due and keeps the cursors, and `concurrency` sender threads that make
//! the requests (blocking HTTP, never on an event loop).
//!
//! The coordinator keeps, per room with work, a lane: the room's cursor (every entry up
//! to `done` is taken), the entries read after it that the endpoint takes, and whether
//! one is in flight. A lane has at most one request in flight, so a room's events leave
//! in seq order; lanes of different rooms go out in parallel, and a lane waiting for a
//! retry holds no sender. Cursors are written back every [`FLUSH`] (and before the lock
//! is let go on shutdown): a node killed in between sends those events again, with the
//! same ids (at least once).

use super::event;
use super::send;
use crate::base::config::WebhookConfig;
use crate::base::metrics::EndpointMetrics;
use crate::pg::messages::{from_row, message_columns};
use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use postgres::Client;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The first key of the endpoints' advisory locks ("chwh"); the second is from the
/// endpoint's name.
const LOCK_CLASS: i32 = 0x6368_7768;
/// Time between looks for new entries.
const SCAN: Duration = Duration::from_millis(50);
/// Time between writes of the cursors.
const FLUSH: Duration = Duration::from_millis(200);
/// Most entries read per room per look.
const READ_AHEAD: i64 = 256;
/// Most rooms looked at per look.
const ROOMS_PER_SCAN: i64 = 2000;
/// Most events of one room handed to a sender at once (sent one after the other, each
/// its own request): a sender keeps a room while it has events, instead of a round trip
/// through the coordinator per event.
const MAX_BATCH: usize = 32;
/// Most rooms with work held in memory per endpoint.
const MAX_LANES: usize = 10_000;
/// Most events read ahead per endpoint (over all its rooms).
const MAX_QUEUED: usize = 20_000;
/// Longest wait before a retry.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Rooms with entries after the endpoint's cursor: id, last seq, cursor, attempts, first
/// failure, milliseconds until the next attempt.
const DUE_SQL: &str =
    "SELECT r.id, r.last_seq, coalesce(c.delivered_seq, 0), coalesce(c.attempts, 0),
        c.first_failed_at, (extract(epoch FROM c.next_at - now()) * 1000)::bigint
    FROM rooms r LEFT JOIN webhook_cursors c ON c.endpoint = $1 AND c.room_id = r.id
    WHERE r.last_seq > coalesce(c.delivered_seq, 0) AND (c.next_at IS NULL OR c.next_at <= now())
    LIMIT $2";

/// Entries of room `$1[i]` with `$2[i] < seq <= $3[i]`, by room then seq.
const READ_SQL: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS q(r, f, t)
      JOIN messages ON room_id = q.r AND seq > q.f AND seq <= q.t ORDER BY room_id, seq"
);

/// The cursors of the lanes that moved.
const FLUSH_SQL: &str = "INSERT INTO webhook_cursors
        (endpoint, room_id, delivered_seq, attempts, first_failed_at, next_at)
    SELECT $1, q.r, q.d, q.a, q.f, now() + q.n * interval '1 millisecond'
    FROM unnest($2::uuid[], $3::bigint[], $4::int[], $5::timestamptz[], $6::bigint[])
        AS q(r, d, a, f, n)
    ON CONFLICT (endpoint, room_id) DO UPDATE SET
        delivered_seq = greatest(webhook_cursors.delivered_seq, EXCLUDED.delivered_seq),
        attempts = EXCLUDED.attempts, first_failed_at = EXCLUDED.first_failed_at,
        next_at = EXCLUDED.next_at";

/// The next outbox event due.
const OUTBOX_SQL: &str =
    "SELECT id, event_id, type, body, attempts, first_failed_at FROM webhook_outbox
    WHERE endpoint = $1 AND (next_at IS NULL OR next_at <= now()) ORDER BY id LIMIT 1";

/// What one endpoint's dispatcher needs.
pub struct DispatchThread {
    /// The endpoint.
    pub hook: WebhookConfig,
    /// The database (the coordinator's own connection holds the endpoint's lock).
    pub db_url: String,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// The endpoint's counters.
    pub metrics: Arc<EndpointMetrics>,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// Which lane a request belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum LaneKey {
    Room(Uuid),
    /// An outbox row.
    Outbox(i64),
}

/// Events of one lane for a sender: `(id, body)` in the lane's order, one request each.
struct Job {
    lane: LaneKey,
    events: Vec<(Arc<str>, Arc<str>)>,
}

/// A sender's answer: the first `delivered` events of the job were delivered; `result`
/// is the failure of the next one, which ended the job (`Ok`: every event went).
struct Done {
    lane: LaneKey,
    delivered: usize,
    result: Result<(), String>,
}

/// An event read from a room's stream, waiting for its turn.
struct Pending {
    seq: i64,
    id: Arc<str>,
    kind: &'static str,
    body: Arc<str>,
    created: Option<DateTime<Utc>>,
}

/// A room's state at the endpoint.
#[derive(Default)]
struct Lane {
    /// Every entry up to here is taken.
    done: i64,
    /// Entries read up to here.
    read: i64,
    /// The room's last seq at the last look.
    last: i64,
    queue: VecDeque<Pending>,
    /// A sender has the first `sending` events of `queue`.
    busy: bool,
    sending: usize,
    /// In flight from before the lock was lost: its answer only frees the lane.
    stale: bool,
    attempts: i32,
    first_failed: Option<DateTime<Utc>>,
    next_at: Option<Instant>,
    dirty: bool,
}

impl Lane {
    /// The event after `done` was taken (delivered or dead): move past it and every
    /// entry before the next one.
    fn advance(&mut self) {
        self.queue.pop_front();
        self.done = self.queue.front().map_or(self.read, |p| p.seq - 1);
        self.attempts = 0;
        self.first_failed = None;
        self.next_at = None;
        self.dirty = true;
    }
}

/// The endpoint's lock: two keys, the second from its name.
fn lock_key(name: &str) -> i32 {
    let h = Sha256::digest(name.as_bytes());
    i32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// The wait before attempt `n + 1` after `n` failures: `base` doubled per failure, up to
/// an hour, times a random factor in [0.5, 1.5) so that retries of many rooms spread.
pub fn backoff(base: Duration, n: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << n.saturating_sub(1).min(20));
    let jitter = 0.5 + rand::random::<f64>();
    exp.min(MAX_BACKOFF).mul_f64(jitter)
}

/// Runs the endpoint's dispatcher until `stop`.
pub fn run(t: DispatchThread) {
    let (jobs_tx, jobs_rx) = bounded::<Job>(t.hook.concurrency);
    let (done_tx, done_rx) = unbounded::<Done>();
    let key: Arc<[u8]> = t.hook.key().into();
    let mut senders = Vec::new();
    for i in 0..t.hook.concurrency {
        // An agent per sender: its own keep-alive connection, no pool shared (and
        // locked) between the senders.
        let agent = send::agent(Duration::from_millis(t.hook.timeout_ms));
        let (rx, tx) = (jobs_rx.clone(), done_tx.clone());
        let (url, key) = (t.hook.url.clone(), key.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("webhook-{i}"))
            .spawn(move || sender(rx, tx, agent, url, key));
        match spawned {
            Ok(h) => senders.push(h),
            Err(e) => log::error!("webhook sender thread: {e}"),
        }
    }
    drop(jobs_rx);
    let mut c = Coordinator {
        t: &t,
        jobs: jobs_tx,
        done: done_rx,
        lanes: HashMap::new(),
        outbox: None,
        in_flight: 0,
        capacity: senders.len(),
        turn: 0,
    };
    c.run();
    drop(c);
    for h in senders {
        let _ = h.join();
    }
}

/// A sender thread: one request at a time, a job's events in order, stopping at the
/// first that fails (the rest wait for it), until the coordinator goes.
fn sender(
    jobs: Receiver<Job>,
    done: Sender<Done>,
    agent: ureq::Agent,
    url: String,
    key: Arc<[u8]>,
) {
    while let Ok(j) = jobs.recv() {
        let mut delivered = 0;
        let mut result = Ok(());
        for (id, body) in &j.events {
            result = send::post(&agent, &url, &key, id, body);
            if result.is_err() {
                break;
            }
            delivered += 1;
        }
        let answer = Done {
            lane: j.lane,
            delivered,
            result,
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}

/// The outbox event taken. One about a room (a room created, a dead room event sent
/// again) shares that room's lane: it waits while the room has a request in flight, and
/// the room gets none while it is taken, so a room never has two requests in flight.
struct OutboxEvent {
    row: i64,
    attempts: i32,
    first: Option<DateTime<Utc>>,
    room: Option<Uuid>,
    /// `None` once handed to a sender.
    job: Option<(Arc<str>, Arc<str>)>,
}

struct Coordinator<'a> {
    t: &'a DispatchThread,
    jobs: Sender<Job>,
    done: Receiver<Done>,
    lanes: HashMap<Uuid, Lane>,
    /// The outbox event taken, in flight or waiting for its room's lane.
    outbox: Option<OutboxEvent>,
    in_flight: usize,
    capacity: usize,
    /// Turns of [`Coordinator::read`], to rotate which room is read first.
    turn: usize,
}

impl Coordinator<'_> {
    fn run(&mut self) {
        let name = self.t.hook.id().to_string();
        while !self.t.stop.load(Relaxed) {
            let Some(mut db) = self.connect() else {
                self.wait_out(Duration::from_secs(1));
                continue;
            };
            log::info!("webhook endpoint {name}: this node dispatches");
            if let Err(e) = self.work(&mut db) {
                log::warn!("webhook endpoint {name}: {e}");
            }
            // The lock goes with the connection; what is in flight finishes, its lane
            // starts over from the database.
            for l in self.lanes.values_mut() {
                l.stale = l.busy;
            }
            self.lanes.retain(|_, l| l.busy);
            // Not sent yet: taken again from the database.
            if self.outbox.as_ref().is_some_and(|o| o.job.is_some()) {
                self.outbox = None;
            }
        }
        // Let the senders finish what they took.
        while self.in_flight > 0 {
            match self.done.recv_timeout(Duration::from_secs(1)) {
                Ok(_) => self.in_flight -= 1,
                Err(_) => break,
            }
        }
    }

    /// A connection holding the endpoint's lock, or `None` (another node has it, or the
    /// database is away).
    fn connect(&mut self) -> Option<Client> {
        let mut db =
            crate::pg::connect_named(&self.t.db_url, self.t.connect_timeout, "chatd-webhooks")
                .ok()?;
        let key = lock_key(self.t.hook.id());
        let row = db
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_CLASS, &key])
            .ok()?;
        row.get::<_, bool>(0).then_some(db)
    }

    /// Waits `d` while taking the senders' answers (without a database nothing is
    /// recorded: those events are sent again).
    fn wait_out(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.t.stop.load(Relaxed) {
            if let Ok(done) = self.done.recv_timeout(Duration::from_millis(50)) {
                self.in_flight -= 1;
                self.forget(done.lane);
            }
        }
    }

    /// Frees a lane whose answer cannot be recorded.
    fn forget(&mut self, lane: LaneKey) {
        match lane {
            LaneKey::Room(r) => {
                if let Some(l) = self.lanes.get_mut(&r) {
                    l.busy = false;
                    l.sending = 0;
                    if l.stale {
                        self.lanes.remove(&r);
                    }
                }
            }
            LaneKey::Outbox(_) => self.outbox = None,
        }
    }

    /// Dispatches while the connection lasts.
    fn work(&mut self, db: &mut Client) -> Result<(), postgres::Error> {
        let mut last_scan = Instant::now() - SCAN;
        let mut last_flush = Instant::now();
        while !self.t.stop.load(Relaxed) {
            let wait = SCAN.saturating_sub(last_scan.elapsed());
            if let Ok(done) = self.done.recv_timeout(wait) {
                self.answered(db, done)?;
                while let Ok(more) = self.done.try_recv() {
                    self.answered(db, more)?;
                }
            }
            if last_scan.elapsed() >= SCAN {
                last_scan = Instant::now();
                self.scan(db)?;
                self.read(db)?;
                self.outbox(db)?;
            }
            self.dispatch();
            if last_flush.elapsed() >= FLUSH {
                last_flush = Instant::now();
                self.flush(db)?;
            }
        }
        self.flush(db)
    }

    /// Records a sender's answer.
    fn answered(&mut self, db: &mut Client, d: Done) -> Result<(), postgres::Error> {
        self.in_flight -= 1;
        let m = &self.t.metrics;
        match d.lane {
            LaneKey::Outbox(row) => self.outbox_answered(db, row, d.result),
            LaneKey::Room(room) => {
                let Some(l) = self.lanes.get_mut(&room) else {
                    return Ok(());
                };
                l.busy = false;
                l.sending = 0;
                if l.stale {
                    self.lanes.remove(&room);
                    return Ok(());
                }
                m.delivered.fetch_add(d.delivered as u64, Relaxed);
                for _ in 0..d.delivered {
                    l.advance();
                }
                match d.result {
                    Ok(()) => {}
                    Err(e) => {
                        m.failed.fetch_add(1, Relaxed);
                        l.attempts += 1;
                        let first = *l.first_failed.get_or_insert_with(Utc::now);
                        if expired(&self.t.hook, l.attempts, first) {
                            if let Some(p) = l.queue.front() {
                                let dead = (room, p.seq, &*p.id, p.kind, &*p.body);
                                bury(db, self.t.hook.id(), dead, l.attempts, &e, first)?;
                                m.dead.fetch_add(1, Relaxed);
                            }
                            l.advance();
                        } else {
                            let wait = backoff(retry_base(&self.t.hook), l.attempts as u32);
                            l.next_at = Some(Instant::now() + wait);
                            l.dirty = true;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn outbox_answered(
        &mut self,
        db: &mut Client,
        row: i64,
        result: Result<(), String>,
    ) -> Result<(), postgres::Error> {
        let Some(OutboxEvent {
            attempts, first, ..
        }) = self.outbox.take()
        else {
            return Ok(());
        };
        let m = &self.t.metrics;
        let Err(e) = result else {
            m.delivered.fetch_add(1, Relaxed);
            db.execute("DELETE FROM webhook_outbox WHERE id = $1", &[&row])?;
            return Ok(());
        };
        m.failed.fetch_add(1, Relaxed);
        let attempts = attempts + 1;
        let first = first.unwrap_or_else(Utc::now);
        if expired(&self.t.hook, attempts, first) {
            m.dead.fetch_add(1, Relaxed);
            let mut tx = db.transaction()?;
            tx.execute(
                "INSERT INTO webhook_dead (endpoint, event_id, type, body, attempts, last_error,
                                           first_failed_at)
                 SELECT endpoint, event_id, type, body, $2, $3, $4 FROM webhook_outbox WHERE id = $1",
                &[&row, &attempts, &e, &first],
            )?;
            tx.execute("DELETE FROM webhook_outbox WHERE id = $1", &[&row])?;
            return tx.commit();
        }
        let wait = backoff(retry_base(&self.t.hook), attempts as u32).as_millis() as i64;
        db.execute(
            "UPDATE webhook_outbox SET attempts = $2, first_failed_at = $3,
                 next_at = now() + $4::bigint * interval '1 millisecond' WHERE id = $1",
            &[&row, &attempts, &first, &wait],
        )?;
        Ok(())
    }

    /// Finds the rooms with entries after the endpoint's cursor.
    fn scan(&mut self, db: &mut Client) -> Result<(), postgres::Error> {
        let rows = db.query(DUE_SQL, &[&self.t.hook.id(), &ROOMS_PER_SCAN])?;
        let mut backlog = 0i64;
        for r in &rows {
            let (room, last, done): (Uuid, i64, i64) = (r.get(0), r.get(1), r.get(2));
            if self.lanes.len() >= MAX_LANES && !self.lanes.contains_key(&room) {
                backlog += last - done;
                continue;
            }
            let l = self.lanes.entry(room).or_insert_with(|| Lane {
                done,
                read: done,
                attempts: r.get(3),
                first_failed: r.get(4),
                next_at: r
                    .get::<_, Option<i64>>(5)
                    .filter(|ms| *ms > 0)
                    .map(|ms| Instant::now() + Duration::from_millis(ms as u64)),
                ..Lane::default()
            });
            if l.stale {
                continue;
            }
            l.last = l.last.max(last);
            backlog += l.last - l.done;
        }
        let m = &self.t.metrics;
        m.backlog.store(backlog.max(0) as u64, Relaxed);
        let oldest = self
            .lanes
            .values()
            .filter_map(|l| l.queue.front().and_then(|p| p.created))
            .min();
        let lag = oldest.map_or(0, |t| {
            Utc::now().signed_duration_since(t).num_milliseconds()
        });
        m.lag_ms.store(lag.max(0) as u64, Relaxed);
        Ok(())
    }

    /// Reads the next entries of every lane that has nothing queued.
    fn read(&mut self, db: &mut Client) -> Result<(), postgres::Error> {
        let (mut rooms, mut from, mut to) = (Vec::new(), Vec::new(), Vec::new());
        let queued: usize = self.lanes.values().map(|l| l.queue.len()).sum();
        let mut budget = MAX_QUEUED.saturating_sub(queued) as i64;
        let mut wanting: Vec<Uuid> = self
            .lanes
            .iter()
            .filter(|(_, l)| !l.stale && l.queue.len() <= l.sending && l.read < l.last)
            .map(|(room, _)| *room)
            .collect();
        // Another room first each time: under the budget, no room is always last.
        if !wanting.is_empty() {
            self.turn = self.turn.wrapping_add(1);
            let k = self.turn % wanting.len();
            wanting.rotate_left(k);
        }
        for room in wanting {
            if budget < READ_AHEAD {
                break;
            }
            let Some(l) = self.lanes.get(&room) else {
                continue;
            };
            budget -= READ_AHEAD;
            rooms.push(room);
            from.push(l.read);
            to.push(l.last.min(l.read + READ_AHEAD));
        }
        if rooms.is_empty() {
            return Ok(());
        }
        let rows = db.query(READ_SQL, &[&rooms, &from, &to])?;
        for row in &rows {
            let m = from_row(row)?;
            let Some(l) = self.lanes.get_mut(&m.room_id) else {
                continue;
            };
            let Some(kind) = event::type_of(&m).filter(|k| self.t.hook.wants(k)) else {
                continue;
            };
            let (id, body) = event::room_event(&m, kind);
            let created = DateTime::parse_from_rfc3339(&m.created_at)
                .ok()
                .map(|t| t.with_timezone(&Utc));
            l.queue.push_back(Pending {
                seq: m.seq,
                id: id.into(),
                kind,
                body: body.into(),
                created,
            });
        }
        for (room, upto) in rooms.iter().zip(&to) {
            if let Some(l) = self.lanes.get_mut(room) {
                l.read = *upto;
                if l.queue.is_empty() && !l.busy && l.done < l.read {
                    l.done = l.read;
                    l.dirty = true;
                }
            }
        }
        Ok(())
    }

    /// Takes the next outbox event when none is taken.
    fn outbox(&mut self, db: &mut Client) -> Result<(), postgres::Error> {
        if self.outbox.is_some() || self.in_flight >= self.capacity {
            return Ok(());
        }
        let Some(r) = db.query_opt(OUTBOX_SQL, &[&self.t.hook.id()])? else {
            return Ok(());
        };
        let (row, id, body): (i64, String, String) = (r.get(0), r.get(1), r.get(3));
        let room = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("room_id")?.as_str()?.parse().ok());
        self.outbox = Some(OutboxEvent {
            row,
            attempts: r.get(4),
            first: r.get(5),
            room,
            job: Some((id.into(), body.into())),
        });
        self.send_outbox();
        Ok(())
    }

    /// Hands the outbox event taken to a sender, unless its room has a request in
    /// flight (it goes when that one is answered).
    fn send_outbox(&mut self) {
        if self.in_flight >= self.capacity {
            return;
        }
        let Some(o) = self.outbox.as_mut() else {
            return;
        };
        let room_busy = o
            .room
            .and_then(|r| self.lanes.get(&r))
            .is_some_and(|l| l.busy);
        if room_busy {
            return;
        }
        let Some(events) = o.job.take() else {
            return;
        };
        let job = Job {
            lane: LaneKey::Outbox(o.row),
            events: vec![events.clone()],
        };
        if self.jobs.try_send(job).is_ok() {
            self.in_flight += 1;
        } else {
            o.job = Some(events);
        }
    }

    /// Hands due events to free senders, one per lane at most, oldest event first (so
    /// that no room waits behind others that always have more).
    fn dispatch(&mut self) {
        self.send_outbox();
        if self.in_flight >= self.capacity {
            return;
        }
        let now = Instant::now();
        let outbox_room = self.outbox.as_ref().and_then(|o| o.room);
        let mut due: Vec<(Option<DateTime<Utc>>, Uuid)> = self
            .lanes
            .iter()
            .filter(|(room, _)| Some(**room) != outbox_room)
            .filter(|(_, l)| !l.busy && !l.stale && l.next_at.is_none_or(|t| t <= now))
            .filter_map(|(room, l)| l.queue.front().map(|p| (p.created, *room)))
            .collect();
        due.sort_unstable();
        for (_, room) in due {
            if self.in_flight >= self.capacity {
                return;
            }
            let Some(l) = self.lanes.get_mut(&room) else {
                continue;
            };
            if l.queue.is_empty() {
                continue;
            }
            let events: Vec<_> = l
                .queue
                .iter()
                .take(MAX_BATCH)
                .map(|p| (p.id.clone(), p.body.clone()))
                .collect();
            let n = events.len();
            let job = Job {
                lane: LaneKey::Room(room),
                events,
            };
            if self.jobs.try_send(job).is_ok() {
                l.busy = true;
                l.sending = n;
                self.in_flight += 1;
            }
        }
    }

    /// Writes the cursors that moved; forgets lanes with nothing left.
    fn flush(&mut self, db: &mut Client) -> Result<(), postgres::Error> {
        let (mut rooms, mut done, mut attempts, mut first, mut next) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let now = Instant::now();
        for (room, l) in &self.lanes {
            if l.dirty && !l.stale {
                rooms.push(*room);
                done.push(l.done);
                attempts.push(l.attempts);
                first.push(l.first_failed);
                next.push(
                    l.next_at
                        .map(|t| t.saturating_duration_since(now).as_millis() as i64),
                );
            }
        }
        if !rooms.is_empty() {
            let name = self.t.hook.id();
            db.execute(FLUSH_SQL, &[&name, &rooms, &done, &attempts, &first, &next])?;
            for room in &rooms {
                if let Some(l) = self.lanes.get_mut(room) {
                    l.dirty = false;
                }
            }
        }
        self.lanes.retain(|_, l| {
            l.busy || l.dirty || !l.queue.is_empty() || l.next_at.is_some() || l.done < l.last
        });
        Ok(())
    }
}

/// The wait before the first retry.
fn retry_base(h: &WebhookConfig) -> Duration {
    Duration::from_millis(h.retry_base_ms)
}

/// Whether an event that failed `attempts` times, first at `first`, is dead.
fn expired(h: &WebhookConfig, attempts: i32, first: DateTime<Utc>) -> bool {
    let age = Utc::now().signed_duration_since(first);
    (h.max_attempts > 0 && attempts as u32 >= h.max_attempts)
        || age.num_seconds() >= (h.max_age_hours * 3600) as i64
}

/// Records a dead room event.
fn bury(
    db: &mut Client,
    endpoint: &str,
    (room, seq, id, kind, body): (Uuid, i64, &str, &str, &str),
    attempts: i32,
    error: &str,
    first: DateTime<Utc>,
) -> Result<(), postgres::Error> {
    db.execute(
        "INSERT INTO webhook_dead (endpoint, event_id, type, room_id, seq, body, attempts,
                                   last_error, first_failed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &endpoint, &id, &kind, &room, &seq, &body, &attempts, &error, &first,
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        let base = Duration::from_secs(1);
        for _ in 0..100 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_millis(500) && first < Duration::from_millis(1500));
            let fourth = backoff(base, 4);
            assert!(fourth >= Duration::from_secs(4) && fourth < Duration::from_secs(12));
            assert!(backoff(base, 40) < Duration::from_secs(5400));
        }
    }
}
