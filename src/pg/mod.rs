//! PostgreSQL: pool and workers, the batched writer, the LISTEN thread, migrations.

pub mod listener;
pub mod migrate;
pub mod pool;
pub mod writer;

/// Channel for ephemeral events (presence, typing, revocations, membership changes).
pub const EVENTS_CHANNEL: &str = "chat_events";
