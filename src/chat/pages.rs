//! History pages (`GET /rooms/:id/messages`), read in batches.
//!
//! Every page needs the reader's membership and the room's head seq from PostgreSQL.
//! Requests wait in one queue, and whichever query worker picks up the queue answers
//! all of them with a single statement (as the writers do for messages), then takes
//! each page from the history cache or, on a miss, from the messages table. Under load
//! one round trip serves many requests; alone, a request costs what it did before.

use crate::auth::tokens::Identity;
use crate::chat::history::{self, HistoryCache, Json};
use crate::chat::messages;
use crate::chat::rooms::{NOT_MEMBER, ROOM_NOT_FOUND};
use crate::error::ApiError;
use crate::http::response::Response;
use crate::pg::pool::Worker;
use crate::shared::Shared;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// Most requests answered by one statement.
const BATCH: usize = 256;
/// Most requests waiting; more are refused with 503 like a full job queue.
const QUEUE: usize = 4096;

/// For each `(room, user)` pair, in order: the room's head seq (null when there is no
/// such room) and whether the user is a member.
pub const HEADS_SQL: &str = "SELECT r.last_seq,
        EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = q.r AND m.user_id = q.u)
    FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS q(r, u, i)
    LEFT JOIN rooms r ON r.id = q.r
    ORDER BY q.i";

/// One history request.
pub struct PageReq {
    /// Reader.
    pub who: Identity,
    /// Room.
    pub room: Uuid,
    /// Only messages with `seq < cursor`.
    pub cursor: Option<i64>,
    /// Page size (1..=100).
    pub limit: i64,
    /// Takes the answer to the client.
    pub reply: Box<dyn FnOnce(Response) + Send>,
}

/// The queue of history requests and whether a worker has been asked to drain it.
pub struct Pages {
    tx: Sender<PageReq>,
    rx: Receiver<PageReq>,
    scheduled: AtomicBool,
}

impl Default for Pages {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        Pages {
            tx,
            rx,
            scheduled: AtomicBool::new(false),
        }
    }
}

/// Queues a request; the first one since the last drain schedules a drain on the
/// query workers.
pub fn submit(shared: &Arc<Shared>, req: PageReq) {
    let pages = &shared.pages;
    if let Err(e) = pages.tx.try_send(req) {
        let (TrySendError::Full(req) | TrySendError::Disconnected(req)) = e;
        (req.reply)(ApiError::Unavailable.response());
        return;
    }
    if pages.scheduled.swap(true, Ordering::AcqRel) {
        return;
    }
    let s = shared.clone();
    if shared.db.submit(Box::new(move |w| drain(w, &s))).is_err() {
        // No worker will come: whatever waits now was left to this drain; answer it.
        pages.scheduled.store(false, Ordering::Release);
        for req in pages.rx.try_iter() {
            (req.reply)(ApiError::Unavailable.response());
        }
    }
}

/// Answers the waiting requests, [`BATCH`] per statement. Requests that arrive once it
/// started schedule the next drain, which another worker may run at the same time.
fn drain(w: &mut Worker, shared: &Shared) {
    loop {
        shared.pages.scheduled.store(false, Ordering::Release);
        let batch: Vec<PageReq> = shared.pages.rx.try_iter().take(BATCH).collect();
        let full = batch.len() == BATCH;
        answer(w, &shared.history, batch);
        // A full batch may have left requests that counted on this drain.
        if !full {
            return;
        }
    }
}

fn answer(w: &mut Worker, cache: &HistoryCache, batch: Vec<PageReq>) {
    if batch.is_empty() {
        return;
    }
    let heads = match heads(w, &batch) {
        Ok(h) => h,
        Err(e) => {
            for req in batch {
                (req.reply)(e.response());
            }
            return;
        }
    };
    for (req, head) in batch.into_iter().zip(heads) {
        let resp = match head {
            None => ROOM_NOT_FOUND.response(),
            Some((_, false)) => NOT_MEMBER.response(),
            Some((seq, true)) => page(w, cache, &req, seq).unwrap_or_else(|e| e.response()),
        };
        (req.reply)(resp);
    }
}

/// Per request: the room's head seq and membership, or `None` when there is no room.
fn heads(w: &mut Worker, batch: &[PageReq]) -> Result<Vec<Option<(i64, bool)>>, ApiError> {
    let rooms: Vec<Uuid> = batch.iter().map(|r| r.room).collect();
    let users: Vec<Uuid> = batch.iter().map(|r| r.who.user_id).collect();
    let (c, st) = w.prepared(HEADS_SQL)?;
    let rows = c.query(&st, &[&rooms, &users])?;
    if rows.len() != batch.len() {
        return Err(ApiError::Internal);
    }
    rows.iter()
        .map(|r| {
            let seq: Option<i64> = r.try_get(0)?;
            let member: bool = r.try_get(1)?;
            Ok(seq.map(|s| (s, member)))
        })
        .collect::<Result<_, postgres::Error>>()
        .map_err(ApiError::from)
}

/// The page for a member, given the room's head seq: seqs are gapless, so it is
/// exactly the seqs `lo ..= top`, from the cache when it holds them all.
fn page(
    w: &mut Worker,
    cache: &HistoryCache,
    req: &PageReq,
    head: i64,
) -> Result<Response, ApiError> {
    let top = req.cursor.map_or(head, |c| head.min(c - 1));
    let lo = (top - req.limit + 1).max(1);
    if top < 1 {
        return Ok(body(&[], req.limit, lo));
    }
    if let Some(page) = cache.page(req.room, lo, top) {
        w.metrics()
            .history_cache_hits
            .fetch_add(1, Ordering::Relaxed);
        return Ok(body(&page, req.limit, lo));
    }
    w.metrics()
        .history_cache_misses
        .fetch_add(1, Ordering::Relaxed);
    let (c, st) = w.prepared(messages::RANGE_SQL)?;
    let rows = messages::range(c, &st, req.room, lo - 1, top, req.limit)?;
    let mut json: Vec<Json> = rows.iter().map(history::encode).collect();
    // Anything but exactly `lo ..= top` is served as read, not cached.
    if rows.len() as i64 == top - lo + 1 && rows.iter().zip(lo..).all(|(m, s)| m.seq == s) {
        cache.fill(req.room, lo, &json);
    }
    json.reverse();
    Ok(body(&json, req.limit, rows.first().map_or(lo, |m| m.seq)))
}

/// `{messages, next_cursor}` from serialised messages, newest first; `oldest` is the
/// last one's seq, the cursor of the next page when this one is full.
fn body(page: &[Json], limit: i64, oldest: i64) -> Response {
    let mut body = Vec::with_capacity(40 + page.iter().map(|m| m.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"messages\":[");
    for (i, m) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(m);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    if page.len() as i64 == limit {
        body.extend_from_slice(oldest.to_string().as_bytes());
    } else {
        body.extend_from_slice(b"null");
    }
    body.push(b'}');
    Response::raw(200, "application/json; charset=utf-8", body)
}
