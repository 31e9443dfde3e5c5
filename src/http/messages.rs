//! The message routes: history pages and threads, posting, edits, deletions,
//! reactions, earlier versions, and search.

use crate::base::error::{ApiError, check};
use crate::chat::edits::{self, Change, Rules};
use crate::chat::messages;
use crate::chat::pages::{self, PageReq};
use crate::chat::reads::Mark;
use crate::chat::search;
use crate::http::body::Body;
use crate::http::context::HttpCtx;
use crate::http::parse::{percent_decode, query_param};
use crate::http::response::Response;
use crate::http::routes::{Req, Routed, number_param};
use crate::pg::writer::{Extra, WriteJob};
use std::time::Duration;

fn rules(ctx: &HttpCtx) -> Rules {
    let m = &ctx.cfg.messages;
    Rules {
        edit_window: (m.edit_window_secs > 0).then(|| Duration::from_secs(m.edit_window_secs)),
        max_reactions: m.max_reactions,
    }
}

fn limit(r: &Req) -> Result<i64, ApiError> {
    Ok(number_param(
        r.head,
        "limit",
        |n| (1..=100).contains(&n),
        || ApiError::Validation(vec!["limit must be an integer from 1 to 100".into()]),
    )?
    .unwrap_or(50))
}

fn message_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| crate::base::error::MESSAGE_NOT_FOUND)
}

/// `GET /rooms/:id/messages?cursor=&limit=` (and `?thread=<root id>`)
pub fn history(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let cursor = number_param(
        r.head,
        "cursor",
        |n| n >= 1,
        || ApiError::BadRequest("invalid_cursor", "cursor must be a positive integer".into()),
    )?;
    let limit = limit(r)?;
    if let Some(root) = number_param(
        r.head,
        "thread",
        |n| n >= 1,
        || ApiError::BadRequest("invalid_payload", "thread must be a message id".into()),
    )? {
        return r.job(&r.ctx.db, 200, move |w, _| {
            search::thread(w, &who, room, root, cursor, limit)
        });
    }
    let reply = r.reply.clone();
    pages::submit(
        &r.ctx.heads,
        &r.ctx.history,
        PageReq {
            user: who.user_id,
            room,
            cursor,
            limit,
            reply: Box::new(move |page| {
                reply.arm().send(match page {
                    Ok(body) => Response::raw(200, "application/json; charset=utf-8", body),
                    Err(e) => Response::from_error(&e),
                })
            }),
        },
    );
    Ok(Routed::Pending)
}

/// `POST /rooms/:id/messages {content, reply_to?, attachments?}`
pub fn post(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let body = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let content = body.req_str("content", &mut errs);
    let reply_to = body.opt_i64("reply_to", &mut errs);
    check(errs)?;
    messages::check_content(&content)?;
    let attachments = match body.get("attachments") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(messages::check_attachments(
            v,
            r.ctx.cfg.messages.max_attachments,
        )?),
    };
    let reply = r.reply.clone();
    let reads = r.ctx.reads.clone();
    let job = WriteJob {
        room_id: room,
        user_id: who.user_id,
        username: who.username,
        content,
        client_msg_id: None,
        extra: (reply_to.is_some() || attachments.is_some()).then(|| {
            Box::new(Extra {
                reply_to,
                attachments,
            })
        }),
        reply: Box::new(move |res| {
            if let Ok(m) = &res {
                reads.mark(Mark {
                    room: m.room_id,
                    user: m.user_id,
                    seq: m.seq,
                    reply: None,
                    quiet: true,
                });
            }
            reply.arm().send(match res {
                Ok(m) => Response::json(201, &*m),
                Err(e) => Response::from_error(&e),
            })
        }),
    };
    match r.ctx.writers.submit(job) {
        Ok(()) => Ok(Routed::Pending),
        Err(_) => Err(ApiError::Unavailable),
    }
}

fn change(r: &Req, id: &str, mid: &str, change: Change) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let target = message_id(mid)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        edits::apply(w, &who, room, target, change, None, rules(ctx))
    })
}

/// `PATCH /rooms/:id/messages/:message_id {content}`
pub fn edit(r: &Req, id: &str, mid: &str) -> Result<Routed, ApiError> {
    let body = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let content = body.req_str("content", &mut errs);
    check(errs)?;
    change(r, id, mid, Change::Edit(content))
}

/// `DELETE /rooms/:id/messages/:message_id`
pub fn delete(r: &Req, id: &str, mid: &str) -> Result<Routed, ApiError> {
    change(r, id, mid, Change::Delete)
}

/// `PUT` / `DELETE /rooms/:id/messages/:message_id/reactions/:emoji`
pub fn reaction(r: &Req, id: &str, mid: &str, emoji: &str, add: bool) -> Result<Routed, ApiError> {
    let emoji = percent_decode(emoji).unwrap_or_default();
    change(
        r,
        id,
        mid,
        if add {
            Change::React(emoji)
        } else {
            Change::Unreact(emoji)
        },
    )
}

/// `GET /rooms/:id/messages/:message_id/edits`
pub fn versions(r: &Req, id: &str, mid: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let target = message_id(mid)?;
    r.job(&r.ctx.db, 200, move |w, _| {
        edits::versions(w, &who, room, target)
    })
}

/// `GET /rooms/:id/search?q=` and, with no room, `GET /me/search?q=`
pub fn search(r: &Req, id: Option<&str>) -> Result<Routed, ApiError> {
    let (who, room) = match id {
        Some(id) => {
            let (who, room) = r.caller_in(id)?;
            (who, Some(room))
        }
        None => (r.caller()?, None),
    };
    let q = query_param(&r.head.query, "q").unwrap_or_default();
    let cursor = query_param(&r.head.query, "cursor").filter(|c| !c.is_empty());
    let limit = limit(r)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        search::search(
            w,
            &who,
            room,
            &q,
            &ctx.cfg.messages.search_language,
            cursor.as_deref(),
            limit,
        )
    })
}
