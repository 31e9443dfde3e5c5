//! Error kinds: a status number and a stable code per kind. The protocol adapters map
//! them to their answers (http/response.rs, ws/events.rs); nothing here knows HTTP.

/// No such room (REST, WebSocket and the writer say it the same way).
pub const ROOM_NOT_FOUND: ApiError = ApiError::NotFound("room_not_found", "Room not found");
/// The caller is not a member of the room.
pub const NOT_MEMBER: ApiError = ApiError::Forbidden("not_member", "Not a member of this room");

/// The caller may not do this (a role it lacks, a rule of the room).
pub const FORBIDDEN: ApiError =
    ApiError::Forbidden("forbidden", "Not allowed in this room for your role");
/// The caller is banned from the room.
pub const BANNED: ApiError = ApiError::Forbidden("banned", "Banned from this room");
/// The caller is muted in the room: it may read, not send.
pub const MUTED: ApiError = ApiError::Forbidden("muted", "Muted in this room");
/// No such message in the room (or it was deleted).
pub const MESSAGE_NOT_FOUND: ApiError =
    ApiError::NotFound("message_not_found", "Message not found in this room");
/// A `client_msg_id` the caller already used for another operation (a send, or a change
/// of another kind or of another message): a retry key names one operation only.
pub const CLIENT_MSG_ID_REUSED: ApiError = ApiError::Conflict(
    "client_msg_id_reused",
    "This client_msg_id was already used for another operation",
);
/// A block stands between the caller and the user it acts towards (either way for a
/// direct room; the one it would invite blocked it). Says nothing more, on purpose.
pub const BLOCKED: ApiError = ApiError::Forbidden("blocked", "Not allowed with this user");
/// No such user.
pub const USER_NOT_FOUND: ApiError = ApiError::NotFound("user_not_found", "User not found");

/// A request that makes no sense as asked (acting on yourself, a wrong kind of room).
pub fn invalid(msg: &str) -> ApiError {
    ApiError::BadRequest("invalid_payload", msg.to_string())
}

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
    /// A storage quota would be exceeded (413, `quota_exceeded`): what it is.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Too many attempts (429), retry after the given seconds.
    #[error("too many requests")]
    RateLimited(u64),
    /// The room's slow mode holds the sender back for this many more milliseconds (429,
    /// `slow_mode`; the HTTP answer's `Retry-After` is in whole seconds, rounded up).
    #[error("Slow mode: wait before sending another message in this room")]
    SlowMode(u64),
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
            ApiError::TooLarge(_) | ApiError::QuotaExceeded(_) => 413,
            ApiError::RateLimited(_) | ApiError::SlowMode(_) => 429,
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
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::SlowMode(_) => "slow_mode",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// Milliseconds to wait before asking again, for the errors that say it.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ApiError::SlowMode(ms) => Some(*ms),
            _ => None,
        }
    }

    /// The human-readable message (validation lines joined).
    pub fn message(&self) -> String {
        match self {
            ApiError::Validation(m) => m.join("; "),
            other => other.to_string(),
        }
    }
}

/// Fails with every validation line of `errs` when there is one.
pub fn check(errs: Vec<String>) -> Result<(), ApiError> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errs))
    }
}
