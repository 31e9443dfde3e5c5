//! The upload route, `POST /rooms/:id/files`: the body is the file itself, or a
//! `multipart/form-data` form with one file part (as a browser's form sends it). Either
//! way it is streamed to the worker that stores it as it arrives (`http/intake.rs`) and
//! decoded there ([`Raw`], [`Form`] with `http/multipart.rs`): never held whole, never
//! parsed on an event loop.

use crate::base::error::ApiError;
use crate::chat::files::{self, Limits, Source};
use crate::chat::thumbs;
use crate::http::intake::Intake;
use crate::http::multipart::{self, Found, Malformed, Reader};
use crate::http::parse::query_param;
use crate::http::routes::{Req, Routed};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

/// The body is not the form its `Content-Type` says.
fn malformed(m: Malformed) -> ApiError {
    ApiError::BadRequest("multipart_invalid", m.0.into())
}

/// `POST /rooms/:id/files[?name=...]`: 201 with the stored file. The body's size was
/// bounded by `files.max_bytes` from its `Content-Length` before any of it was read
/// (413 otherwise); the job runs on the upload workers (`uploadq`: it lasts as long as
/// the client takes to send, and as the node's upload budget makes it wait). The name
/// is `?name=`, else a form's `filename`.
pub fn upload(r: &Req, id: &str) -> Result<Routed, ApiError> {
    let (who, room) = r.caller_in(id)?;
    let cfg = &r.ctx.cfg.files;
    // This node's count first: a burst is refused without a database round trip; the
    // worker then counts the upload across the cluster.
    r.ctx
        .uploads
        .hit(&who.user_id.to_string(), cfg.uploads_per_minute)
        .map_err(ApiError::RateLimited)?;
    let limits = Limits::from_config(cfg);
    let name = query_param(&r.head.query, "name");
    let form = match r.head.headers.content_type.as_deref() {
        Some(t) => multipart::boundary(t).transpose().map_err(malformed)?,
        None => None,
    };
    let size = r.head.body_len;
    // Only a body-less request comes without an intake: `upload` asks for access, then
    // refuses the empty file.
    let intake = r.intake.take();
    let wait = Duration::from_secs(r.ctx.cfg.http.idle_timeout_secs);
    let budget = r.ctx.upload_budget.clone();
    r.job(&r.ctx.uploadq, 201, move |w, ctx| {
        let mut src: Box<dyn Source> = match form {
            Some(boundary) => Box::new(Form {
                body: Body { intake, wait },
                reader: Reader::new(&boundary),
                query_name: name,
                name: None,
                files: 0,
                pending: VecDeque::new(),
                ended: false,
            }),
            None => Box::new(Raw {
                body: Body { intake, wait },
                size,
                left: size,
                name,
            }),
        };
        let f = files::upload(w, &who, room, limits, &budget, &mut *src)?;
        // On this worker, after the commit: an image that yields no thumbnail is still
        // stored, as a plain file.
        Ok(thumbs::make(w, f, ctx.cfg.files.thumbnail_px))
    })
}

/// The request body as the worker takes it.
struct Body {
    intake: Option<Intake>,
    wait: Duration,
}

impl Body {
    /// The next piece; `None` once the body is whole.
    fn next(&self) -> Result<Option<Vec<u8>>, ApiError> {
        match &self.intake {
            Some(i) => i.next(self.wait).map_err(|e| files::incomplete(&e)),
            None => Ok(None),
        }
    }
}

/// A body that is the file: `Content-Length` bytes.
struct Raw {
    body: Body,
    size: usize,
    left: usize,
    name: Option<String>,
}

impl Source for Raw {
    fn next(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        if self.left == 0 {
            return Ok(None);
        }
        match self.body.next()? {
            Some(piece) => {
                self.left = self.left.saturating_sub(piece.len());
                Ok(Some(piece))
            }
            None => Err(files::incomplete(&io::ErrorKind::UnexpectedEof.into())),
        }
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn size(&self) -> Option<u64> {
        Some(self.size as u64)
    }
}

/// A `multipart/form-data` body: the bytes of its one file part.
struct Form {
    body: Body,
    reader: Reader,
    query_name: Option<String>,
    /// The file part's `filename`.
    name: Option<String>,
    /// File parts met.
    files: u32,
    /// File bytes decoded and not yet taken.
    pending: VecDeque<Vec<u8>>,
    /// The body was read to its end.
    ended: bool,
}

impl Source for Form {
    fn next(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        loop {
            if let Some(d) = self.pending.pop_front() {
                return Ok(Some(d));
            }
            if self.ended {
                return Ok(None);
            }
            let mut found = Vec::new();
            match self.body.next()? {
                Some(piece) => self.reader.feed(&piece, &mut found).map_err(malformed)?,
                None => {
                    self.reader.finish().map_err(malformed)?;
                    if self.files == 0 {
                        return Err(ApiError::BadRequest(
                            "multipart_no_file",
                            "the form has no file part (a part with a filename)".into(),
                        ));
                    }
                    self.ended = true;
                }
            }
            for f in found {
                match f {
                    Found::File(n) => {
                        self.files += 1;
                        if self.files > 1 {
                            return Err(ApiError::BadRequest(
                                "multipart_many_files",
                                "the form has more than one file part: upload one file per request"
                                    .into(),
                            ));
                        }
                        self.name = Some(n);
                    }
                    Found::Data(d) => self.pending.push_back(d),
                    Found::End => {}
                }
            }
        }
    }

    fn name(&self) -> Option<&str> {
        self.query_name.as_deref().or(self.name.as_deref())
    }

    fn size(&self) -> Option<u64> {
        None
    }
}
