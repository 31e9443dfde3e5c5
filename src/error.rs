//! Error kinds and their one mapping to HTTP statuses and WebSocket `error` codes.

use crate::http::response::Response;

/// No such room (REST, WebSocket and the writer say it the same way).
pub const ROOM_NOT_FOUND: ApiError = ApiError::NotFound("room_not_found", "Room not found");
/// The caller is not a member of the room.
pub const NOT_MEMBER: ApiError = ApiError::Forbidden("not_member", "Not a member of this room");

/// Everything a request or event can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Field validation failures (400, `validation_failed`), one line per field.
    #[error("{}", .0.join("; "))]
    Validation(Vec<String>),
    /// Other bad input (400).
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// Missing or bad credentials (401).
    #[error("{1}")]
    Unauthorized(&'static str, &'static str),
    /// Authenticated but not allowed (403).
    #[error("{1}")]
    Forbidden(&'static str, &'static str),
    /// No such thing (404).
    #[error("{1}")]
    NotFound(&'static str, &'static str),
    /// Already exists (409).
    #[error("{1}")]
    Conflict(&'static str, &'static str),
    /// Too large (413 over HTTP, `message_too_long` over WebSocket).
    #[error("{0}")]
    TooLarge(&'static str),
    /// Too many attempts (429), retry after the given seconds.
    #[error("too many requests")]
    RateLimited(u64),
    /// The database or a queue is unavailable (503).
    #[error("service unavailable")]
    Unavailable,
    /// A bug or an unexpected database error (500); details are logged, not sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(..) => 400,
            ApiError::Unauthorized(..) => 401,
            ApiError::Forbidden(..) => 403,
            ApiError::NotFound(..) => 404,
            ApiError::Conflict(..) => 409,
            ApiError::TooLarge(_) => 413,
            ApiError::RateLimited(_) => 429,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    /// Stable machine code (HTTP `code` field and WebSocket `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadRequest(c, _)
            | ApiError::Unauthorized(c, _)
            | ApiError::Forbidden(c, _)
            | ApiError::NotFound(c, _)
            | ApiError::Conflict(c, _) => c,
            ApiError::TooLarge(_) => "message_too_long",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// The HTTP answer.
    pub fn response(&self) -> Response {
        let status = self.status();
        let resp = match self {
            ApiError::Validation(msgs) => Response::errors(status, self.code(), msgs.clone()),
            ApiError::TooLarge(m) => Response::error(status, "payload_too_large", m),
            other => Response::error(status, other.code(), &other.to_string()),
        };
        match self {
            ApiError::RateLimited(secs) => resp.with_header("Retry-After", secs.to_string()),
            ApiError::Unavailable => resp.with_header("Retry-After", "1"),
            _ => resp,
        }
    }
}

impl From<postgres::Error> for ApiError {
    fn from(e: postgres::Error) -> ApiError {
        db_error(&e)
    }
}

/// Classifies a database error: a lost connection is `Unavailable`, anything else a bug.
pub fn db_error(e: &postgres::Error) -> ApiError {
    if e.is_closed() || e.code().is_none() {
        log::warn!("database unavailable: {e}");
        ApiError::Unavailable
    } else if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED)
        || e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE)
        || e.code() == Some(&postgres::error::SqlState::ADMIN_SHUTDOWN)
    {
        log::warn!("database busy: {e}");
        ApiError::Unavailable
    } else {
        log::error!("database error: {e}");
        ApiError::Internal
    }
}

/// True when a database error is a unique violation (409 material).
pub fn is_unique_violation(e: &postgres::Error, constraint: &str) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
        && e.as_db_error()
            .and_then(|d| d.constraint())
            .is_some_and(|c| c == constraint)
}
