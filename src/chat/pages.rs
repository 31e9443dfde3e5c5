//! History pages (`GET /rooms/:id/messages`).
//!
//! The membership and head-seq check goes through the batched checks of
//! [`crate::chat::heads`]; seqs are gapless, so the page is then exactly a known range
//! of seqs, served from the history cache when it holds them all and otherwise read
//! from the messages table, on a standby when one has replayed the room up to that
//! head (and cached).

use crate::base::access::Action;
use crate::base::error::ApiError;
use crate::chat::heads::{Heads, Pos};
use crate::chat::history::{self, Generation, HistoryCache, Json};
use crate::pg::messages;
use crate::pg::pool::Worker;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use uuid::Uuid;

/// The largest page a client may ask for: history, threads, search and `GET /me/rooms`
/// (a protocol limit, docs/PROTOCOL.md section 1).
pub const MAX_PAGE: i64 = 100;
/// The page size when the client names none.
pub const DEFAULT_PAGE: i64 = 50;

/// One history request.
pub struct PageReq {
    /// Reader.
    pub user: Uuid,
    /// Room.
    pub room: Uuid,
    /// Only messages with `seq < cursor`.
    pub cursor: Option<i64>,
    /// Page size (1 to [`MAX_PAGE`]).
    pub limit: i64,
    /// Takes the answer (a JSON body) to the client.
    pub reply: Box<dyn FnOnce(Result<Vec<u8>, ApiError>) + Send>,
}

/// Answers a history request once its check comes back.
pub fn submit(heads: &Arc<Heads>, cache: &Arc<HistoryCache>, req: PageReq) {
    let cache = cache.clone();
    let (room, user) = (req.room, req.user);
    // Taken before the check: every change this node has seen by now committed before
    // the head the check reads, so rows that reach that head (from the primary or a
    // standby) include it, and a fill is dropped if another change shows up meanwhile.
    let at = cache.generation(room);
    heads.check(
        room,
        user,
        Action::ReadHistory,
        Box::new(move |head| {
            let page = head.and_then(|(w, pos)| page(w, &cache, &req, pos, at));
            (req.reply)(page);
        }),
    );
}

/// The page for a member, given the room's position: seqs are gapless, so it is
/// exactly the seqs `lo ..= top` (none below the retention horizon `pos.first`), from
/// the cache when it holds them all.
fn page(
    w: &mut Worker,
    cache: &HistoryCache,
    req: &PageReq,
    pos: Pos,
    at: Generation,
) -> Result<Vec<u8>, ApiError> {
    let head = pos.last;
    let top = req.cursor.map_or(head, |c| head.min(c - 1));
    let wanted = top - req.limit + 1;
    let lo = wanted.max(pos.first).max(1);
    let shape = Shape {
        limit: req.limit,
        horizon: (wanted < pos.first && pos.first > 1).then_some(pos.first),
    };
    if top < lo {
        let horizon = (pos.first > 1 && top >= 1).then_some(pos.first);
        return Ok(body(&[], Shape { horizon, ..shape }, lo, None));
    }
    if let Some(page) = cache.page(req.room, lo, top, head) {
        w.metrics()
            .history_cache_hits
            .fetch_add(1, Ordering::Relaxed);
        let mine = my_reactions(w, req, &page, lo, top)?;
        return Ok(body(&page, shape, lo, mine));
    }
    w.metrics()
        .history_cache_misses
        .fetch_add(1, Ordering::Relaxed);
    let rows = messages::range_on(w, req.room, lo - 1, top, req.limit, head)?;
    let mut json: Vec<Json> = rows.iter().map(|m| history::encode(m)).collect();
    // Anything but exactly `lo ..= top` is served as read, not cached.
    if rows.len() as i64 == top - lo + 1 && rows.iter().zip(lo..).all(|(m, s)| m.seq == s) {
        cache.fill(req.room, lo, &json, at);
    }
    json.reverse();
    let mine = my_reactions(w, req, &json, lo, top)?;
    // Rows missing below the first one returned were removed since the check (seqs are
    // gapless otherwise): the horizon moved up to it.
    let oldest = rows.first().map_or(top + 1, |m| m.seq);
    let shape = if oldest > lo {
        Shape {
            horizon: Some(oldest),
            ..shape
        }
    } else {
        shape
    };
    Ok(body(&json, shape, oldest.min(top), mine))
}

/// What a page's body says besides its messages.
#[derive(Clone, Copy)]
struct Shape {
    /// The page size asked for.
    limit: i64,
    /// Set when the page reaches the retention horizon: the oldest seq still stored.
    horizon: Option<i64>,
}

/// The reader's own reactions on the page's messages, `{"<message id>": [emoji]}`, read
/// only when some message of the page has reactions (the cached JSON is the same for
/// every reader; this part is not).
fn my_reactions(
    w: &mut Worker,
    req: &PageReq,
    page: &[Json],
    lo: i64,
    top: i64,
) -> Result<Option<serde_json::Value>, ApiError> {
    let reacted = |j: &Json| j.windows(12).any(|w| w == b"\"reactions\":");
    if !page.iter().any(reacted) {
        return Ok(None);
    }
    let rows = w.client()?.query(
        "SELECT m.id, r.emoji FROM message_reactions r JOIN messages m ON m.room_id = r.room_id AND m.id = r.message_id
         WHERE m.room_id = $1 AND m.seq BETWEEN $2 AND $3 AND r.user_id = $4
         ORDER BY m.id, r.created_at",
        &[&req.room, &lo, &top, &req.user],
    )?;
    let mut mine = serde_json::Map::new();
    for r in rows {
        let id: i64 = r.get(0);
        let emoji: String = r.get(1);
        if let Some(list) = mine
            .entry(id.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            .as_array_mut()
        {
            list.push(emoji.into());
        }
    }
    Ok(Some(serde_json::Value::Object(mine)))
}

/// `{messages, next_cursor, first_seq?, my_reactions?}` from serialised messages, newest
/// first; `oldest` is the last one's seq, the cursor of the next page when this one is
/// full and older messages remain.
fn body(page: &[Json], shape: Shape, oldest: i64, mine: Option<serde_json::Value>) -> Vec<u8> {
    let mut body = Vec::with_capacity(40 + page.iter().map(|m| m.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"messages\":[");
    for (i, m) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(m);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    if page.len() as i64 == shape.limit && shape.horizon.is_none() && oldest > 1 {
        body.extend_from_slice(oldest.to_string().as_bytes());
    } else {
        body.extend_from_slice(b"null");
    }
    if let Some(first) = shape.horizon {
        body.extend_from_slice(b",\"first_seq\":");
        body.extend_from_slice(first.to_string().as_bytes());
    }
    if let Some(mine) = mine {
        body.extend_from_slice(b",\"my_reactions\":");
        body.extend_from_slice(mine.to_string().as_bytes());
    }
    body.push(b'}');
    body
}
