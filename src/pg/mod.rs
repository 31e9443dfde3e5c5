//! PostgreSQL: the pool and job queues, migrations, the batched writer, the LISTEN
//! thread, message rows, and the typed notifications that travel between nodes.
//! Imports only the base layer.

pub mod audit;
pub mod files;
pub mod listener;
pub mod mentions;
pub mod messages;
pub mod migrate;
pub mod notify;
pub mod outbox;
pub mod pool;
pub mod replica;
pub mod writer;

use crate::base::error::ApiError;
use postgres::{Client, NoTls};

/// `config.connect(NoTls)` for a thread's own connection (listener, webhooks, push).
/// The driver builds a runtime per connection and unwraps its creation, which panics
/// when the process is out of file descriptors: that becomes an error here, so the
/// thread waits and retries instead of dying.
pub fn connect_own(config: &postgres::Config) -> Result<Client, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.connect(NoTls))) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("the connection could not be opened (out of file descriptors?)".into()),
    }
}

/// A thread's own connection to `url` ([`connect_own`]) named `app` in
/// `pg_stat_activity`, with keepalives so that a silently dead server is noticed
/// instead of waited on forever.
pub fn connect_named(url: &str, timeout: std::time::Duration, app: &str) -> Result<Client, String> {
    let mut config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(timeout);
    config.application_name(app);
    config.keepalives(true);
    config.keepalives_idle(std::time::Duration::from_secs(10));
    connect_own(&config)
}

impl From<postgres::Error> for ApiError {
    fn from(e: postgres::Error) -> ApiError {
        db_error(&e)
    }
}

/// Classifies a database error: a lost connection is `Unavailable`, anything else a bug.
pub fn db_error(e: &postgres::Error) -> ApiError {
    use postgres::error::SqlState;
    if e.is_closed() || e.code().is_none() {
        log::warn!("database unavailable: {e}");
        ApiError::Unavailable
    } else if [
        SqlState::QUERY_CANCELED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::ADMIN_SHUTDOWN,
    ]
    .iter()
    .any(|s| e.code() == Some(s))
    {
        log::warn!("database busy: {e}");
        ApiError::Unavailable
    } else {
        match e.as_db_error() {
            Some(db) => log::error!(
                "database error: {} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            ),
            None => log::error!("database error: {e}"),
        }
        ApiError::Internal
    }
}

/// True when a database error is a unique violation of `constraint` (409 material).
pub fn is_unique_violation(e: &postgres::Error, constraint: &str) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
        && e.as_db_error()
            .and_then(|d| d.constraint())
            .is_some_and(|c| c == constraint)
}
