//! Storing an upload, whatever the transport's body looks like (a raw file, a
//! multipart form): the bytes come from a [`Source`] as they arrive, and the file row
//! and its chunks are one transaction, so a file is whole or absent (a client that
//! leaves, a node that dies, a refusal: the transaction rolls back and nothing is left).
//!
//! Limits ([`Limits`], from `[files]`):
//! - uploads per user per minute, counted in PostgreSQL (`upload_windows`, one upsert
//!   before the upload starts) so that the limit holds across the cluster;
//! - the uploader's and the room's quotas (bytes of stored files). Checked three times:
//!   before any byte is read when the size is known (a raw body's `Content-Length`), as
//!   the bytes arrive (a multipart body: refused as soon as the file passes what was
//!   left), and last under a transaction-scoped advisory lock per uploader and per room
//!   taken just before the commit. Uploads of the same user or room therefore pass
//!   that last check one at a time, each seeing the others' committed files (the lock is
//!   released after the commit is visible), so the committed total never exceeds a
//!   quota, however many uploads run at once; the earlier checks only refuse sooner.

use super::{CHUNK_BYTES, File, check_upload, dimensions, from_row, sniff};
use crate::base::access::Action;
use crate::base::budget::Budget;
use crate::base::config::FilesConfig;
use crate::base::error::ApiError;
use crate::base::model::Identity;
use crate::chat::rooms;
use crate::pg::files::file_columns;
use crate::pg::pool::Worker;
use sha2::{Digest, Sha256};
use std::io;
use uuid::Uuid;

/// Where an upload's bytes come from: the transport's request body, decoded.
pub trait Source {
    /// The next bytes of the file; `None` at its end. An error abandons the upload.
    fn next(&mut self) -> Result<Option<Vec<u8>>, ApiError>;
    /// The name the client gave the file, once known (after the first [`Source::next`]).
    fn name(&self) -> Option<&str>;
    /// The file's size when it is known before its bytes (a raw body's length).
    fn size(&self) -> Option<u64>;
}

/// The limits of uploads (`[files]`; 0 = none).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of stored files per uploader.
    pub user_quota: u64,
    /// Bytes of stored files per room.
    pub room_quota: u64,
    /// Uploads started per user per minute, across the cluster.
    pub per_minute: u32,
}

impl Limits {
    /// The limits of `[files]`.
    pub fn from_config(c: &FilesConfig) -> Limits {
        Limits {
            user_quota: c.user_quota_bytes,
            room_quota: c.room_quota_bytes,
            per_minute: c.uploads_per_minute,
        }
    }

    fn quotas(&self) -> bool {
        self.user_quota > 0 || self.room_quota > 0
    }
}

/// The body ended, failed or stalled before it was whole.
pub fn incomplete(e: &io::Error) -> ApiError {
    log::debug!("an upload stopped: {e}");
    ApiError::BadRequest(
        "upload_incomplete",
        "the body ended before its Content-Length".into(),
    )
}

fn empty() -> ApiError {
    ApiError::BadRequest(
        "invalid_payload",
        "the request body (the file) must not be empty".into(),
    )
}

/// Counts an upload in its user's current minute: the count and the seconds left.
const RATE_SQL: &str = "INSERT INTO upload_windows AS u (user_id, window_start, n)
    VALUES ($1, date_trunc('minute', now()), 1)
    ON CONFLICT (user_id) DO UPDATE SET
        n = CASE WHEN u.window_start = excluded.window_start THEN u.n + 1 ELSE 1 END,
        window_start = excluded.window_start
    RETURNING n, ceil(extract(epoch FROM u.window_start + interval '1 minute' - now()))::int8";
/// The bytes stored by uploader `$1` and in room `$2` (this transaction's file included).
const USAGE_SQL: &str = "SELECT
    (SELECT coalesce(sum(size), 0)::int8 FROM files WHERE uploader_id = $1),
    (SELECT coalesce(sum(size), 0)::int8 FROM files WHERE room_id = $2)";
/// The quota locks: uploader `$1`'s, room `$2`'s (two-key advisory locks, a key space of
/// their own; a hash collision only makes two uploads wait for each other).
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(1667786357, hashtext($1::uuid::text)),
    pg_advisory_xact_lock(1667786354, hashtext($2::uuid::text))";
/// The row of an upload, inserted once its name is known.
const INSERT_SQL: &str = "INSERT INTO files (id, room_id, uploader_id, name, mime, size, sha256)
    VALUES ($1, $2, $3, $4, 'application/octet-stream', $5, '')";
/// Completes an upload's row once its bytes are stored.
const FINISH_SQL: &str = concat!(
    "UPDATE files SET size = $2, mime = $3, sha256 = $4, width = $5, height = $6 WHERE id = $1 RETURNING ",
    file_columns!()
);

/// Refuses a user's upload past `per_minute` in the current minute (every node counts
/// in the same row).
fn rate(w: &mut Worker, user: Uuid, per_minute: u32) -> Result<(), ApiError> {
    let row = w.client()?.query_one(RATE_SQL, &[&user])?;
    let (n, left): (i32, i64) = (row.get(0), row.get(1));
    if n as i64 > per_minute as i64 {
        return Err(ApiError::RateLimited(left.clamp(1, 60) as u64));
    }
    Ok(())
}

/// Bytes the quotas leave for this upload once `user` and `room` stored what they did.
fn headroom(l: &Limits, user: i64, room: i64) -> u64 {
    let left =
        |quota: u64, used: i64| (quota > 0).then(|| quota.saturating_sub(used.max(0) as u64));
    let (u, r) = (left(l.user_quota, user), left(l.room_quota, room));
    u.unwrap_or(u64::MAX).min(r.unwrap_or(u64::MAX))
}

/// The refusal of an upload of `size` bytes past a quota.
fn over(l: &Limits, user: i64, room: i64, size: u64) -> ApiError {
    let past =
        |quota: u64, used: i64| quota > 0 && (used.max(0) as u64).saturating_add(size) > quota;
    let msg = if past(l.user_quota, user) {
        format!(
            "this file would take your stored files past your quota of {} bytes ({} used)",
            l.user_quota, user
        )
    } else {
        format!(
            "this file would take the room's stored files past its quota of {} bytes ({} used)",
            l.room_quota, room
        )
    };
    ApiError::QuotaExceeded(msg)
}

/// The chunks of an upload stored so far.
#[derive(Default)]
struct Stored {
    /// Chunks stored.
    n: i32,
    /// The type and an image's size, read from the first chunk.
    kind: Option<(&'static str, Option<(u32, u32)>)>,
}

impl Stored {
    /// Stores `chunk` as the next one, and empties it.
    fn store(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
        insert: &postgres::Statement,
        budget: &Budget,
        id: Uuid,
        chunk: &mut Vec<u8>,
    ) -> Result<(), ApiError> {
        if self.kind.is_none() {
            let mime = sniff(chunk);
            self.kind = Some((mime, dimensions(mime, chunk)));
        }
        // Waits here (a worker) for the node's upload budget; meanwhile the transport
        // stops reading this body, and the client is held back by TCP.
        budget.take(chunk.len());
        tx.execute(insert, &[&id, &self.n, &*chunk])?;
        self.n += 1;
        chunk.clear();
        Ok(())
    }
}

/// Stores a file of `room` uploaded by `who` (a member allowed to send), its bytes
/// taken from `src` as they arrive, within `limits`. The file row and its chunks are
/// one transaction: a file is whole or absent. The type and an image's size are read
/// from the first chunk. Each chunk is written once `budget` (the node's, shared by its
/// uploads) allows its bytes.
pub fn upload(
    w: &mut Worker,
    who: &Identity,
    room: Uuid,
    limits: Limits,
    budget: &Budget,
    src: &mut dyn Source,
) -> Result<File, ApiError> {
    if limits.per_minute > 0 {
        rate(w, who.user_id, limits.per_minute)?;
    }
    let id = Uuid::now_v7();
    let mut tx = w.client()?.transaction()?;
    // Asked before a byte is taken: a refused upload's body is never read.
    rooms::require(&mut tx, room, who.user_id, Action::Upload)?;
    let size = src.size();
    if size == Some(0) {
        return Err(empty());
    }
    let mut left = u64::MAX;
    if limits.quotas() {
        let row = tx.query_one(USAGE_SQL, &[&who.user_id, &room])?;
        let (user, in_room): (i64, i64) = (row.get(0), row.get(1));
        left = headroom(&limits, user, in_room);
        if let Some(size) = size.filter(|s| *s > left) {
            return Err(over(&limits, user, in_room, size));
        }
    }
    let Some(mut piece) = src.next()? else {
        return Err(empty());
    };
    let name = check_upload(src.name());
    tx.execute(
        INSERT_SQL,
        &[&id, &room, &who.user_id, &name, &(size.unwrap_or(0) as i64)],
    )?;
    let insert = tx.prepare("INSERT INTO file_chunks (file_id, n, data) VALUES ($1, $2, $3)")?;
    let mut hash = Sha256::new();
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    let mut stored = Stored::default();
    let mut total = 0u64;
    loop {
        total += piece.len() as u64;
        if size.is_some_and(|s| total > s) {
            return Err(incomplete(&io::ErrorKind::InvalidData.into()));
        }
        if total > left {
            // Known now: the rest of the body is never read (the answer closes the
            // connection) and the transaction rolls back.
            let row = tx.query_one(USAGE_SQL, &[&who.user_id, &room])?;
            return Err(over(&limits, row.get(0), row.get(1), total));
        }
        hash.update(&piece);
        let mut rest = piece.as_slice();
        while !rest.is_empty() {
            let take = (CHUNK_BYTES - chunk.len()).min(rest.len());
            chunk.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if chunk.len() == CHUNK_BYTES {
                stored.store(&mut tx, &insert, budget, id, &mut chunk)?;
            }
        }
        match src.next()? {
            Some(p) => piece = p,
            None => break,
        }
    }
    if size.is_some_and(|s| total != s) {
        return Err(incomplete(&io::ErrorKind::UnexpectedEof.into()));
    }
    if total == 0 {
        return Err(empty());
    }
    if !chunk.is_empty() {
        stored.store(&mut tx, &insert, budget, id, &mut chunk)?;
    }
    let (mime, dims) = stored.kind.unwrap_or(("application/octet-stream", None));
    let sha256: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let (width, height) = match dims {
        Some((w, h)) => (Some(w as i32), Some(h as i32)),
        None => (None, None),
    };
    let row = tx.query_one(
        FINISH_SQL,
        &[&id, &(total as i64), &mime, &sha256, &width, &height],
    )?;
    if limits.quotas() {
        // The last word, one upload of this user or room at a time (see the module).
        tx.execute(LOCK_SQL, &[&who.user_id, &room])?;
        let usage = tx.query_one(USAGE_SQL, &[&who.user_id, &room])?;
        let (user, in_room): (i64, i64) = (usage.get(0), usage.get(1));
        // The sums include this file: compare what was there before it.
        let t = total as i64;
        if headroom(&limits, user - t, in_room - t) < total {
            return Err(over(&limits, user - t, in_room - t, total));
        }
    }
    tx.commit()?;
    Ok(from_row(&row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_the_smaller_of_what_the_quotas_leave() {
        let l = Limits {
            user_quota: 100,
            room_quota: 1000,
            per_minute: 0,
        };
        assert_eq!(headroom(&l, 30, 0), 70);
        assert_eq!(headroom(&l, 0, 950), 50);
        assert_eq!(headroom(&l, 200, 0), 0);
        let none = Limits {
            user_quota: 0,
            room_quota: 0,
            per_minute: 0,
        };
        assert_eq!(headroom(&none, 1 << 40, 1 << 40), u64::MAX);
        assert!(
            over(&l, 90, 0, 20)
                .to_string()
                .contains("your quota of 100")
        );
        assert!(over(&l, 0, 990, 20).to_string().contains("room's"));
        assert_eq!(over(&l, 0, 990, 20).code(), "quota_exceeded");
        assert_eq!(over(&l, 0, 990, 20).status(), 413);
    }
}
