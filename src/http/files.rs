//! The download routes, `GET /files/:id` and `GET /files/:id/thumbnail` (streamed from
//! the database in chunks, `http/stream.rs`; by token or signed URL). The upload route
//! is `http/upload.rs`.
//!
//! Downloads are served so that a file can never act as a page of this origin: the type
//! is the one detected at upload, `X-Content-Type-Options: nosniff` keeps the browser
//! from guessing another, `Content-Security-Policy: sandbox; default-src 'none'` strips
//! a document of script and origin should a browser render it anyway, and only images
//! are `inline`; everything else is an `attachment` (saved, not shown).

use crate::base::error::ApiError;
use crate::chat::files::{self, File};
use crate::http::file_links;
use crate::http::response::Response;
use crate::http::routes::{Req, Routed};
use crate::http::stream::{self, Opened};

/// What `Range` asks of a file of `size` bytes (`size` > 0).
#[derive(Debug, PartialEq, Eq)]
pub enum Span {
    /// The whole file (no range, several ranges, or one this server does not read).
    Whole,
    /// Bytes `.0..=.1`.
    Part(u64, u64),
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

/// Reads a `Range` header: one `bytes=a-b`, `bytes=a-` or `bytes=-n` range.
pub fn span(range: Option<&str>, size: u64) -> Span {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Span::Whole;
    };
    if spec.contains(',') {
        return Span::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Span::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let last = size - 1;
    match (num(a), num(b)) {
        (Some(a), _) if a > last => Span::Unsatisfiable,
        (Some(a), Some(b)) if b >= a => Span::Part(a, b.min(last)),
        (Some(a), None) if b.is_empty() => Span::Part(a, last),
        (None, Some(n)) if a.is_empty() && n > 0 => Span::Part(size - n.min(size), last),
        (None, Some(0)) if a.is_empty() => Span::Unsatisfiable,
        _ => Span::Whole,
    }
}

/// The `Content-Disposition` of a file: images inline, everything else a download,
/// its name percent-encoded (RFC 8187) with a plain ASCII fallback.
pub fn disposition(f: &File) -> String {
    let kind = if files::inline(f.mime) {
        "inline"
    } else {
        "attachment"
    };
    let mut encoded = String::new();
    for b in f.name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let plain: String = f
        .name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{kind}; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

/// The headers every answer about a file carries.
fn common(resp: Response, f: &File) -> Response {
    resp.with_header("ETag", format!("\"{}\"", f.sha256))
        .with_header("Cache-Control", "private")
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Content-Security-Policy", "sandbox; default-src 'none'")
        .with_header("Accept-Ranges", "bytes")
}

/// Whether `If-None-Match` names the file's version.
fn not_modified(if_none_match: Option<&str>, f: &File) -> bool {
    if_none_match.is_some_and(|v| {
        v.split(',').any(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag.trim_matches('"') == f.sha256
        })
    })
}

/// `GET /files/:id`: the file's bytes (or the range asked), for members of its room.
/// Or, with a signed URL's query (`http/file_links.rs`), for its signer without a token.
pub fn download(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (reader, file) = file_links::reader(r, id)?;
    let range = r.head.headers.range.clone();
    let if_none_match = r.head.headers.if_none_match.clone();
    let open = move |w: &mut crate::pg::pool::Worker| {
        let who = reader.identity(w)?;
        let f = files::open(w, &who, file)?;
        if not_modified(if_none_match.as_deref(), &f) {
            return Ok(Opened::Whole(common(
                Response::raw(304, f.mime, Vec::new()),
                &f,
            )));
        }
        let size = f.size as u64;
        let (status, from, to) = match span(range.as_deref(), size) {
            Span::Whole => (200, 0, size - 1),
            Span::Part(a, b) => (206, a, b),
            Span::Unsatisfiable => {
                let resp = Response::error(416, "range_not_satisfiable", "Range not satisfiable")
                    .with_header("Content-Range", format!("bytes */{size}"));
                return Ok(Opened::Whole(common(resp, &f)));
            }
        };
        let mut head = common(Response::raw(status, f.mime, Vec::new()), &f)
            .with_header("Content-Disposition", disposition(&f));
        if status == 206 {
            head = head.with_header("Content-Range", format!("bytes {from}-{to}/{size}"));
        }
        Ok(Opened::Stream(head, (f, from, to)))
    };
    stream::respond_with(
        &r.ctx.exports,
        r.ctx,
        r.reply,
        open,
        |w, (f, from, to), out| files::write_range(w, &f, from, to, out),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn ranges() {
        assert_eq!(span(None, 10), Span::Whole);
        assert_eq!(span(Some("bytes=2-5"), 10), Span::Part(2, 5));
        assert_eq!(span(Some("bytes=2-50"), 10), Span::Part(2, 9));
        assert_eq!(span(Some("bytes=7-"), 10), Span::Part(7, 9));
        assert_eq!(span(Some("bytes=-3"), 10), Span::Part(7, 9));
        assert_eq!(span(Some("bytes=-30"), 10), Span::Part(0, 9));
        assert_eq!(span(Some("bytes=10-"), 10), Span::Unsatisfiable);
        assert_eq!(span(Some("bytes=-0"), 10), Span::Unsatisfiable);
        assert_eq!(span(Some("bytes=0-1,4-5"), 10), Span::Whole);
        assert_eq!(span(Some("bytes=5-2"), 10), Span::Whole);
        assert_eq!(span(Some("items=0-1"), 10), Span::Whole);
        assert_eq!(span(Some("bytes=+1-2"), 10), Span::Whole);
    }

    #[test]
    fn dispositions() {
        let f = |name: &str, mime: &'static str| File {
            id: Uuid::nil(),
            room_id: Uuid::nil(),
            uploader_id: Uuid::nil(),
            name: name.into(),
            mime,
            size: 1,
            sha256: String::new(),
            width: None,
            height: None,
            has_thumbnail: false,
            created_at: String::new(),
        };
        assert_eq!(
            disposition(&f("a b.png", "image/png")),
            "inline; filename=\"a b.png\"; filename*=UTF-8''a%20b.png"
        );
        assert_eq!(
            disposition(&f("é\".html", "application/octet-stream")),
            "attachment; filename=\"__.html\"; filename*=UTF-8''%C3%A9%22.html"
        );
    }
}
