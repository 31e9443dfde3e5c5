//! Chat domain: rooms, messages, presence, history pages, the batched membership checks
//! and the history cache. Returns values and errors; imports only base and pg.

pub mod heads;
pub mod history;
pub mod messages;
pub mod pages;
pub mod presence;
pub mod rooms;
