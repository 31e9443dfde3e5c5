//! The search indexer: keeps `message_search` following the rooms' streams, off the
//! send path.
//!
//! Computing a message's tsvector and inserting it into a GIN index cost more than
//! storing the message, so the writers do not index. Every node runs this thread; the
//! one holding the advisory lock does the work. Each tick it finds rooms whose
//! `last_seq` is past their `search_progress.indexed_seq` and applies their entries in
//! seq order, in one transaction of at most `search_batch` entries: messages are added,
//! an edit re-indexes its message's current content, a deletion removes its message
//! (the deleting transaction already removed it; this also undoes a stale add that
//! raced with it). A room's entries commit in seq order, so once a room is indexed up
//! to `s` the index reflects its stream at `s` or later, and every search joins the
//! live row (a deleted message is never found).
//!
//! Deleting a room's messages (the room itself, or retention's expired prefix) and
//! indexing them exclude each other per room ([`exclude`]): an indexing transaction
//! that read a message a deletion then removed would otherwise commit its search row
//! after the deletion looked for it, and the row would stay for good.
//!
//! While the whole cluster stores more than `search_defer_above` messages a second
//! (measured from the rooms' `last_seq`), indexing waits, for at most
//! `search_max_defer_secs`: a burst of writes is not slowed by indexing, and search
//! catches up when it ends. Below that, while the cluster still writes more than a
//! tenth of it, the indexer works on a backlog at most `search_busy_pct` of the time
//! (it pauses after each batch in proportion to the batch's time): under sustained load
//! search lags behind instead of sends slowing down, and catches up when writes calm.

use crate::base::config::MessagesConfig;
use crate::base::metrics::Metrics;
use crate::pg::pool::Pool;
use postgres::{Client, GenericClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Arbitrary constant naming the indexers' advisory lock ("chatd_sx").
const LOCK_KEY: i64 = 0x6368_6174_645f_7378;
/// Time between ticks while the index is current.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Time between ticks while there is a backlog.
const BUSY_TICK: Duration = Duration::from_millis(50);
/// Most rooms looked at per tick.
const ROOMS_PER_TICK: i64 = 1000;

/// The first key of the rooms' index locks (the two-key advisory locks, a key space of
/// their own); the second is the room's bucket.
const ROOM_LOCK_CLASS: i32 = 0x6373_7872; // "csxr"
/// Buckets the rooms' index locks fall into: an indexing transaction holds at most this
/// many locks however many rooms it covers, and a deletion waits at most for one batch.
const ROOM_LOCK_BUCKETS: u128 = 64;

/// Rooms with entries not indexed yet: id, indexed up to, last seq.
const DUE_SQL: &str = "SELECT r.id, coalesce(p.indexed_seq, 0), r.last_seq
    FROM rooms r LEFT JOIN search_progress p ON p.room_id = r.id
    WHERE r.last_seq > coalesce(p.indexed_seq, 0) LIMIT $1";

/// The ranges to apply: room `$1[i]`, seqs after `$2[i]` up to `$3[i]`.
macro_rules! ranges {
    () => {
        "q AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS q(r, f, t)),
         e AS (SELECT m.* FROM q JOIN messages m ON m.room_id = q.r AND m.seq > q.f AND m.seq <= q.t)"
    };
}

/// What of a message's text is indexed (in configuration `$lang`): the text, without
/// the runs PostgreSQL's parser would make tokens longer than it can index (2,047
/// bytes: it skips each with a NOTICE). A run of 512 characters or more without a space,
/// or without a letter or digit, is no word anyone searches for (511 characters are at
/// most 2,044 bytes). Only a text of 2,047 bytes or more can hold one, so shorter ones
/// cost no regular expression.
macro_rules! indexed {
    ($text:literal, $lang:literal) => {
        concat!(
            "to_tsvector(",
            $lang,
            "::text::regconfig, CASE WHEN octet_length(",
            $text,
            ") < 2047 THEN ",
            $text,
            " ELSE regexp_replace(",
            $text,
            ", '(?:[^[:space:]]{128}){4}[^[:space:]]*|(?:[^[:alnum:]]{128}){4}[^[:alnum:]]*', ' ', 'g') END)"
        )
    };
}

/// New messages of the ranges (`$4` is the text search configuration).
const ADD_SQL: &str = concat!(
    "WITH ",
    ranges!(),
    " INSERT INTO message_search (room_id, message_id, search)
      SELECT room_id, id, ",
    indexed!("content", "$4"),
    " FROM e
      WHERE kind = 'message' AND deleted_at IS NULL
      ON CONFLICT (room_id, message_id) DO NOTHING"
);

/// Messages edited in the ranges, with their current content.
const EDIT_SQL: &str = concat!(
    "WITH ",
    ranges!(),
    " INSERT INTO message_search (room_id, message_id, search)
      SELECT DISTINCT ON (t.id) t.room_id, t.id, ",
    indexed!("t.content", "$4"),
    "
      FROM e JOIN messages t ON t.id = e.target_id AND t.room_id = e.room_id
      WHERE e.kind = 'message_edited' AND t.kind = 'message' AND t.deleted_at IS NULL
      ON CONFLICT (room_id, message_id) DO UPDATE SET search = EXCLUDED.search"
);

/// Messages deleted in the ranges.
const DELETE_SQL: &str = concat!(
    "WITH ",
    ranges!(),
    " DELETE FROM message_search s USING e
      WHERE e.kind = 'message_deleted' AND s.room_id = e.room_id AND s.message_id = e.target_id"
);

/// The rooms' progress (of rooms that still exist: a room deleted before this
/// transaction took its locks leaves no row).
const PROGRESS_SQL: &str = "INSERT INTO search_progress (room_id, indexed_seq)
    SELECT q.r, q.t FROM unnest($1::uuid[], $2::bigint[]) AS q(r, t)
    WHERE EXISTS (SELECT 1 FROM rooms WHERE id = q.r)
    ON CONFLICT (room_id) DO UPDATE
    SET indexed_seq = greatest(search_progress.indexed_seq, EXCLUDED.indexed_seq)";

/// The bucket of `room`'s index lock.
fn bucket(room: Uuid) -> i32 {
    (room.as_u128() % ROOM_LOCK_BUCKETS) as i32
}

/// Keeps the indexer away from `room` until the caller's transaction ends. A transaction
/// that deletes a room's messages or search rows takes it before it reads or deletes
/// anything: an indexing batch in flight commits first (and its rows are then seen and
/// deleted), and a later one starts after the deletion committed (and finds nothing).
pub fn exclude(c: &mut impl GenericClient, room: Uuid) -> Result<(), postgres::Error> {
    c.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&ROOM_LOCK_CLASS, &bucket(room)],
    )?;
    Ok(())
}

/// The indexer's settings and the node's state it needs.
pub struct IndexerThread {
    /// `[messages]` (language, batch, deferral).
    pub cfg: MessagesConfig,
    /// The node's pool (one connection per tick).
    pub pool: Pool,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// The cluster's write rate, from the sum of the rooms' last seqs between ticks.
#[derive(Default)]
struct Rate {
    last: Option<(Instant, i64)>,
    deferred_since: Option<Instant>,
    /// Messages a second at the last tick.
    per_sec: f64,
}

/// Runs ticks until `stop`.
pub fn run(t: IndexerThread) {
    let mut rate = Rate::default();
    let mut next = Instant::now();
    while !t.stop.load(Ordering::Acquire) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(10).min(next - Instant::now()));
            continue;
        }
        let pause = match t.pool.get() {
            Ok(mut c) => tick(&t, &mut c, &mut rate).unwrap_or_else(|e| {
                log::warn!("search indexing failed: {e}");
                IDLE_TICK
            }),
            Err(_) => IDLE_TICK,
        };
        next = Instant::now() + pause;
    }
}

/// One tick; how long to wait before the next.
fn tick(t: &IndexerThread, c: &mut Client, rate: &mut Rate) -> Result<Duration, postgres::Error> {
    let locked: bool = c
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])?
        .get(0);
    if !locked {
        return Ok(IDLE_TICK);
    }
    let result = index(t, c, rate);
    let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    let more = result?;
    unlock?;
    Ok(more)
}

/// Whether to wait: the cluster stores more than `defer_above` messages a second, and
/// indexing has not waited `max_defer` already.
fn defer(t: &IndexerThread, c: &mut Client, rate: &mut Rate) -> Result<bool, postgres::Error> {
    let total: i64 = c
        .query_one("SELECT coalesce(sum(last_seq), 0)::bigint FROM rooms", &[])?
        .get(0);
    let now = Instant::now();
    let per_sec = rate.last.map_or(0.0, |(then, before)| {
        (total - before) as f64 / now.duration_since(then).as_secs_f64().max(0.001)
    });
    rate.last = Some((now, total));
    rate.per_sec = per_sec;
    if t.cfg.search_defer_above == 0 || per_sec <= t.cfg.search_defer_above as f64 {
        rate.deferred_since = None;
        return Ok(false);
    }
    let since = *rate.deferred_since.get_or_insert(now);
    Ok(now.duration_since(since) < Duration::from_secs(t.cfg.search_max_defer_secs))
}

/// The pause after a batch that took `worked`: while the cluster writes more than a
/// tenth of `search_defer_above` messages a second, long enough that the indexer works
/// at most `search_busy_pct` of the time; else the short busy tick (full speed).
fn pace(cfg: &MessagesConfig, per_sec: f64, worked: Duration) -> Duration {
    let pct = cfg.search_busy_pct.clamp(1, 100);
    if pct == 100 || per_sec <= f64::from(cfg.search_defer_above) / 10.0 {
        return BUSY_TICK;
    }
    BUSY_TICK.max(worked * (100 - pct) / pct)
}

fn index(t: &IndexerThread, c: &mut Client, rate: &mut Rate) -> Result<Duration, postgres::Error> {
    if defer(t, c, rate)? {
        return Ok(BUSY_TICK);
    }
    let started = Instant::now();
    let due = c.query(DUE_SQL, &[&ROOMS_PER_TICK])?;
    let budget = t.cfg.search_batch as i64;
    let (mut rooms, mut from, mut to) = (Vec::new(), Vec::new(), Vec::new());
    let (mut taken, mut backlog) = (0i64, 0i64);
    for row in &due {
        let (room, done, last): (Uuid, i64, i64) = (row.get(0), row.get(1), row.get(2));
        backlog += last - done;
        if taken < budget {
            let upto = last.min(done + budget - taken);
            taken += upto - done;
            rooms.push(room);
            from.push(done);
            to.push(upto);
        }
    }
    t.metrics
        .search_backlog
        .store(backlog.max(0) as u64, Ordering::Relaxed);
    if rooms.is_empty() {
        return Ok(IDLE_TICK);
    }
    let lang = t.cfg.search_language.as_str();
    let mut buckets: Vec<i32> = rooms.iter().map(|r| bucket(*r)).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let mut tx = c.transaction()?;
    // Before the first read: every statement below then sees the deletions that
    // committed meanwhile, and none can start until this commits.
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1, b) FROM unnest($2::int[]) AS b",
        &[&ROOM_LOCK_CLASS, &buckets],
    )?;
    let added = tx.execute(ADD_SQL, &[&rooms, &from, &to, &lang])?;
    tx.execute(EDIT_SQL, &[&rooms, &from, &to, &lang])?;
    tx.execute(DELETE_SQL, &[&rooms, &from, &to])?;
    tx.execute(PROGRESS_SQL, &[&rooms, &to])?;
    tx.commit()?;
    t.metrics.search_indexed.fetch_add(added, Ordering::Relaxed);
    if backlog > taken || due.len() as i64 == ROOMS_PER_TICK {
        Ok(pace(&t.cfg, rate.per_sec, started.elapsed()))
    } else {
        Ok(IDLE_TICK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexer_yields_to_sustained_writes_only() {
        let cfg = MessagesConfig::default(); // defer above 5000/s, busy 25 %
        let batch = Duration::from_millis(400);
        // A quiet cluster: catch up at full speed.
        assert_eq!(pace(&cfg, 0.0, batch), BUSY_TICK);
        assert_eq!(pace(&cfg, 500.0, batch), BUSY_TICK);
        // Sustained writes: work a quarter of the time.
        assert_eq!(pace(&cfg, 4000.0, batch), Duration::from_millis(1200));
        assert_eq!(pace(&cfg, 4000.0, Duration::from_millis(1)), BUSY_TICK);
        let all = MessagesConfig {
            search_busy_pct: 100,
            ..MessagesConfig::default()
        };
        assert_eq!(pace(&all, 4000.0, batch), BUSY_TICK);
    }
}
