//! `GET /files/:id/thumbnail`, `GET /rooms/:id/files/:file_id/url` (signed URLs) and
//! who reads a file: the bearer token's caller, or the signer of a signed URL
//! (`chat/file_links.rs`), which needs no token.

use crate::base::error::{ApiError, ROOM_NOT_FOUND};
use crate::chat::file_links::{self, Reader, UrlKey};
use crate::chat::files::{self, FILE_NOT_FOUND};
use crate::chat::thumbs;
use crate::http::parse::{Head, query_param};
use crate::http::response::Response;
use crate::http::routes::{Req, Routed};
use uuid::Uuid;

/// Whether the request is a signed one for a file path: `/files/:id` or
/// `/files/:id/thumbnail` with `sig` in the query. Such a request needs no token (a
/// browser's `<img>` sends none), and a token it carries anyway is not read.
pub fn is_signed(segs: &[&str], head: &Head) -> bool {
    matches!(segs, ["files", _] | ["files", _, "thumbnail"])
        && query_param(&head.query, "sig").is_some()
}

/// Who reads file `id` (path segment): a signed request's signer once the signature
/// and expiry are checked (`invalid_signature`, `url_expired`), else the caller.
pub fn reader(r: &Req, id: &str) -> Result<(Reader, Uuid), ApiError> {
    let Some(sig) = query_param(&r.head.query, "sig") else {
        let who = r.caller()?;
        let file = Uuid::parse_str(id).map_err(|_| FILE_NOT_FOUND)?;
        return Ok((Reader::Caller(who), file));
    };
    let file = Uuid::parse_str(id).map_err(|_| file_links::INVALID_SIGNATURE)?;
    let q = |name| query_param(&r.head.query, name).unwrap_or_default();
    let key = UrlKey::from_config(&r.ctx.cfg);
    let now = chrono::Utc::now().timestamp();
    let user = key.verify(file, &q("u"), &q("exp"), &sig, now)?;
    Ok((Reader::Signer(user), file))
}

/// Whether `If-None-Match` names `tag` (without its quotes).
fn matches(if_none_match: Option<&str>, tag: &str) -> bool {
    if_none_match.is_some_and(|v| {
        v.split(',').any(|t| {
            let t = t.trim();
            let t = t.strip_prefix("W/").unwrap_or(t);
            t == "*" || t.trim_matches('"') == tag
        })
    })
}

/// `GET /files/:id/thumbnail`: the thumbnail of an image (JPEG or PNG), for whoever
/// may download the file; 404 `thumbnail_not_found` when it has none. Served inline
/// with the same headers as the file (a private cache, nosniff, a sandboxing CSP); its
/// ETag is the file's sum with a suffix (a thumbnail is made once per file).
pub fn thumbnail(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (reader, file) = reader(r, id)?;
    let if_none_match = r.head.headers.if_none_match.clone();
    r.job_answer(&r.ctx.db, move |w, _| {
        let found = reader
            .identity(w)
            .and_then(|who| files::open(w, &who, file))
            .and_then(|f| thumbs::read(w, &f).map(|t| (f, t)));
        let (f, (mime, bytes)) = match found {
            Ok(v) => v,
            Err(e) => return Response::from_error(&e),
        };
        let tag = format!("{}.thumbnail", f.sha256);
        let resp = if matches(if_none_match.as_deref(), &tag) {
            Response::raw(304, mime, Vec::new())
        } else {
            Response::raw(200, mime, bytes)
        };
        resp.with_header("ETag", format!("\"{tag}\""))
            .with_header("Cache-Control", "private")
            .with_header("X-Content-Type-Options", "nosniff")
            .with_header("Content-Security-Policy", "sandbox; default-src 'none'")
            .with_header("Content-Disposition", "inline")
    })
}

/// `GET /rooms/:id/files/:file_id/url`: signed URLs of the file and its thumbnail for
/// the caller, valid `files.url_ttl_minutes`, for a member who may download it.
pub fn url(r: &Req, room: &str, file: &str) -> Result<Routed, ApiError> {
    let who = r.caller()?;
    let room = Uuid::parse_str(room).map_err(|_| ROOM_NOT_FOUND)?;
    // An id that is none is answered after the room (a room hiding itself says only
    // `room_not_found`): no file has the nil id.
    let file = Uuid::parse_str(file).unwrap_or(Uuid::nil());
    let ttl = i64::from(r.ctx.cfg.files.url_ttl_minutes) * 60;
    r.job(&r.ctx.db, 200, move |w, ctx| {
        let key = UrlKey::from_config(&ctx.cfg);
        file_links::links(w, &key, &who, room, file, chrono::Utc::now(), ttl)
    })
}
