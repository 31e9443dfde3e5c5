//! The message routes: history pages and threads, posting, edits, deletions,
//! reactions, earlier versions, and search.

use crate::base::error::{ApiError, check};
use crate::base::model::Message;
use crate::chat::edits::{self, Change};
use crate::chat::messages::Rules;
use crate::chat::pages::{self, DEFAULT_PAGE, MAX_PAGE, PageReq};
use crate::chat::search;
use crate::chat::send::{self, Draft};
use crate::http::body::Body;
use crate::http::parse::{percent_decode, query_param};
use crate::http::response::Response;
use crate::http::routes::{Req, Routed, number_param};
use std::sync::Arc;

/// The `limit` query parameter of a paged read: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when
/// absent.
pub fn page_limit(r: &Req) -> Result<i64, ApiError> {
    Ok(number_param(
        r.head,
        "limit",
        |n| (1..=MAX_PAGE).contains(&n),
        || {
            ApiError::Validation(vec![format!(
                "limit must be an integer from 1 to {MAX_PAGE}"
            )])
        },
    )?
    .unwrap_or(DEFAULT_PAGE))
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
    let limit = page_limit(r)?;
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

/// `POST /rooms/:id/messages {content, reply_to?, attachments?}`: the send use case;
/// answered 201 with the stored message.
pub fn post(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.spend(&who)?;
    let mut body = Body::parse(&r.body.take())?;
    let mut errs = Vec::new();
    let content = body.req_str("content", &mut errs);
    let reply_to = body.opt_i64("reply_to", &mut errs);
    check(errs)?;
    let draft = Draft {
        room,
        content,
        client_msg_id: None,
        reply_to,
        attachments: body.take("attachments"),
    };
    let draft = send::check(draft, &Rules::from_config(&r.ctx.cfg.messages))?;
    let reply = r.reply.clone();
    let answer = move |result: Result<Arc<Message>, ApiError>| {
        reply.arm().send(match result {
            Ok(m) => Response::json(201, &*m),
            Err(e) => Response::from_error(&e),
        })
    };
    match r.ctx.sender.submit(who, draft, answer) {
        Ok(()) => Ok(Routed::Pending),
        Err(_) => Err(ApiError::Unavailable),
    }
}

fn change(r: &Req, id: &str, mid: &str, change: Change) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    r.spend(&who)?;
    let target = message_id(mid)?;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        let rules =
            Rules::from_config(&ctx.cfg.messages).with_notifications(&ctx.cfg.notifications);
        edits::apply(w, &who, room, target, change, None, rules)
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
    let limit = page_limit(r)?;
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
