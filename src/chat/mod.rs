//! Chat domain: rooms, messages, presence, the per-loop fan-out registry and the
//! history cache.

pub mod fanout;
pub mod heads;
pub mod history;
pub mod messages;
pub mod pages;
pub mod presence;
pub mod rooms;
