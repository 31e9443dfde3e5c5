//! Retention: deleting messages older than a room's retention period.
//!
//! A room keeps its messages for its own `retention_days`, else for the server's
//! `retention.max_age_days` (0 in either means forever). A thread on every node wakes
//! every `interval_secs`; the one that takes the advisory lock makes the pass while the
//! others skip it. A pass finds the rooms whose oldest stored message has expired (one
//! index probe per room) and deletes each room's expired prefix of seqs in transactions
//! of at most `batch_size` rows, pausing between them, so that writers waiting on a
//! room row or the table's locks wait for one small transaction at most.
//!
//! Each transaction moves the room's `first_seq` past what it deleted. Seqs stay
//! gapless above `first_seq`, so readers tell a removed prefix from a gap: history
//! pages, join history and catch-up start at `first_seq` and say so.

use crate::base::config::RetentionConfig;
use crate::base::metrics::Metrics;
use crate::pg::pool::Pool;
use postgres::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Arbitrary constant naming the deleters' advisory lock ("chatd_rt").
const LOCK_KEY: i64 = 0x6368_6174_645f_7274;
/// Most rooms looked at per pass (the next pass takes the rest).
const ROOMS_PER_PASS: i64 = 10_000;

/// Rooms whose oldest stored message is older than their retention period: id,
/// first_seq and days. `$1` is the server's default.
const DUE_SQL: &str = "SELECT r.id, r.first_seq, coalesce(r.retention_days, $1)
    FROM rooms r
    WHERE coalesce(r.retention_days, $1) > 0
      AND (SELECT m.created_at FROM messages m
           WHERE m.room_id = r.id AND m.seq >= r.first_seq ORDER BY m.seq LIMIT 1)
          < now() - make_interval(days => coalesce(r.retention_days, $1))
    LIMIT $2";

/// The room's next `$4` seqs from `$2`, each with whether it expired (`$3` days).
const PREFIX_SQL: &str = "SELECT seq, created_at < now() - make_interval(days => $3)
    FROM messages WHERE room_id = $1 AND seq >= $2 ORDER BY seq LIMIT $4";

/// Deletes seqs `$2 ..= $3` of room `$1` with their edit history, reactions, pins,
/// mentions and search entries, blanks the later edit entries of the messages it deletes (they carry the
/// message's text, as a deletion blanks them), moves `first_seq` past them, and counts
/// the rows.
const DELETE_SQL: &str = "WITH gone AS (
        DELETE FROM messages WHERE room_id = $1 AND seq BETWEEN $2 AND $3 RETURNING id),
    edited AS (UPDATE messages e SET content = '' FROM gone
        WHERE e.room_id = $1 AND e.kind = 'message_edited' AND e.target_id = gone.id
          AND e.seq > $3 AND e.content <> ''),
    edits AS (DELETE FROM message_edits WHERE room_id = $1 AND message_id IN (SELECT id FROM gone)),
    reactions AS (DELETE FROM message_reactions
        WHERE room_id = $1 AND message_id IN (SELECT id FROM gone)),
    search AS (DELETE FROM message_search WHERE room_id = $1 AND message_id IN (SELECT id FROM gone)),
    pins AS (DELETE FROM message_pins WHERE room_id = $1 AND message_id IN (SELECT id FROM gone)),
    mentioned AS (DELETE FROM mentions WHERE message_id IN (SELECT id FROM gone)),
    horizon AS (UPDATE rooms SET first_seq = $3 + 1 WHERE id = $1 AND first_seq <= $3)
    SELECT count(*) FROM gone";

/// The deleter's settings and the node's state it needs.
pub struct RetentionThread {
    /// `[retention]`.
    pub cfg: RetentionConfig,
    /// The node's pool (one connection while a pass runs).
    pub pool: Pool,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// Runs passes until `stop`.
pub fn run(t: RetentionThread) {
    let every = Duration::from_secs(t.cfg.interval_secs);
    let mut next = Instant::now() + every.min(Duration::from_secs(5));
    while !t.stop.load(Ordering::Acquire) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        next = Instant::now() + every;
        let Ok(mut conn) = t.pool.get() else {
            continue;
        };
        let began = Instant::now();
        match pass(&t, &mut conn) {
            Ok(0) => {}
            Ok(n) => log::info!(
                "retention: deleted {n} expired messages in {:.3} s",
                began.elapsed().as_secs_f64()
            ),
            Err(e) => log::warn!("retention pass failed: {e}"),
        }
    }
}

/// One pass, when this node gets the lock; the number of messages deleted.
pub fn pass(t: &RetentionThread, c: &mut Client) -> Result<u64, postgres::Error> {
    let locked: bool = c
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])?
        .get(0);
    if !locked {
        return Ok(0);
    }
    let result = expire(t, c);
    // Unlocked even when the pass failed (the connection goes back to the pool).
    let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    let n = result?;
    unlock?;
    Ok(n)
}

fn expire(t: &RetentionThread, c: &mut Client) -> Result<u64, postgres::Error> {
    let default = t.cfg.max_age_days as i32;
    let due = c.query(DUE_SQL, &[&default, &ROOMS_PER_PASS])?;
    let mut total = 0;
    for row in due {
        let (room, mut first, days): (Uuid, i64, i32) = (row.get(0), row.get(1), row.get(2));
        loop {
            if t.stop.load(Ordering::Acquire) {
                return Ok(total);
            }
            let Some((n, upto)) = batch(c, room, first, days, t.cfg.batch_size)? else {
                break;
            };
            total += n;
            t.metrics.retention_deleted.fetch_add(n, Ordering::Relaxed);
            first = upto + 1;
            if t.cfg.pause_ms > 0 {
                std::thread::sleep(Duration::from_millis(t.cfg.pause_ms));
            }
        }
    }
    Ok(total)
}

/// Deletes the expired prefix of the room's next `limit` seqs from `first`, in one
/// transaction; the rows deleted and the last seq, or `None` when nothing expired.
fn batch(
    c: &mut Client,
    room: Uuid,
    first: i64,
    days: i32,
    limit: i64,
) -> Result<Option<(u64, i64)>, postgres::Error> {
    let mut tx = c.transaction()?;
    // The indexer must not add search rows for what this deletes after it looked.
    crate::chat::indexer::exclude(&mut tx, room)?;
    let rows = tx.query(PREFIX_SQL, &[&room, &first, &days, &limit])?;
    // Seq order is commit order within a room, so the expired rows are a prefix; a
    // row that is not (a clock that stepped back) ends it.
    let upto = rows
        .iter()
        .take_while(|r| r.get::<_, bool>(1))
        .last()
        .map(|r| r.get::<_, i64>(0));
    let Some(upto) = upto else {
        return Ok(None);
    };
    let n: i64 = tx.query_one(DELETE_SQL, &[&room, &first, &upto])?.get(0);
    tx.commit()?;
    Ok(Some((n as u64, upto)))
}
