//! The sweeper of unattached files: an upload that no message attached within
//! `files.unattached_ttl_hours` is deleted with its chunks (by their foreign key).
//!
//! A thread on every node wakes every `files.sweep_interval_secs`; the one that takes
//! the advisory lock makes the pass while the others skip it (as retention does). A
//! pass deletes expired files in transactions of at most [`BATCH`] files, pausing
//! between them. The candidates are locked `FOR UPDATE SKIP LOCKED`: a file the message
//! writer is attaching at that moment (it locks the files it claims) is skipped, and a
//! file attached since the pass looked is rechecked when locked and kept. An upload in
//! progress is not visible to the pass at all (its row is uncommitted). The pass also
//! drops the per-minute upload counts of past minutes (`upload_windows`).

use crate::pg::pool::Pool;
use postgres::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Arbitrary constant naming the sweepers' advisory lock ("chatd_fs").
const LOCK_KEY: i64 = 0x6368_6174_645f_6673;
/// Most files deleted per transaction (a 25 MiB file is 100 chunk rows).
pub const BATCH: i64 = 100;

/// Deletes up to `$2` files unattached for `$1` seconds; the number deleted.
const SWEEP_SQL: &str = "WITH gone AS (
        DELETE FROM files WHERE attached_message_id IS NULL AND id IN (
            SELECT id FROM files
            WHERE attached_message_id IS NULL
              AND created_at < now() - make_interval(secs => $1)
            ORDER BY created_at LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*) FROM gone";
/// The upload counts of minutes that are over.
const WINDOWS_SQL: &str =
    "DELETE FROM upload_windows WHERE window_start < date_trunc('minute', now())";

/// The sweeper's settings and the node's state it needs.
pub struct SweepThread {
    /// How long an unattached file is kept (`None`: forever; the pass then only drops
    /// old upload counts).
    pub ttl: Option<Duration>,
    /// Between two passes.
    pub every: Duration,
    /// Between two transactions of a pass.
    pub pause: Duration,
    /// The node's pool (one connection while a pass runs).
    pub pool: Pool,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// Runs passes until `stop`.
pub fn run(t: SweepThread) {
    let mut next = Instant::now() + t.every.min(Duration::from_secs(5));
    while !t.stop.load(Ordering::Acquire) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        next = Instant::now() + t.every;
        let Ok(mut conn) = t.pool.get() else {
            continue;
        };
        match pass(&t, &mut conn) {
            Ok(0) => {}
            Ok(n) => log::info!("files: deleted {n} uploads never attached to a message"),
            Err(e) => log::warn!("unattached files pass failed: {e}"),
        }
    }
}

/// One pass, when this node gets the lock; the number of files deleted.
pub fn pass(t: &SweepThread, c: &mut Client) -> Result<u64, postgres::Error> {
    let locked: bool = c
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])?
        .get(0);
    if !locked {
        return Ok(0);
    }
    let result = sweep(t, c);
    // Unlocked even when the pass failed (the connection goes back to the pool).
    let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    let n = result?;
    unlock?;
    Ok(n)
}

fn sweep(t: &SweepThread, c: &mut Client) -> Result<u64, postgres::Error> {
    c.execute(WINDOWS_SQL, &[])?;
    let Some(ttl) = t.ttl.map(|d| d.as_secs_f64()) else {
        return Ok(0);
    };
    let mut total = 0;
    while !t.stop.load(Ordering::Acquire) {
        let n: i64 = c.query_one(SWEEP_SQL, &[&ttl, &BATCH])?.get(0);
        total += n as u64;
        if n < BATCH {
            break;
        }
        std::thread::sleep(t.pause);
    }
    Ok(total)
}
