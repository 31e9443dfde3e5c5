//! Chat domain: rooms, membership and moderation, direct rooms, messages, read state,
//! presence, history pages, search and its indexer, retention, the batched membership checks and the
//! history cache. Returns values and errors; imports only base and pg.

pub mod direct;
pub mod edits;
pub mod heads;
pub mod history;
pub mod indexer;
pub mod messages;
pub mod moderation;
pub mod pages;
pub mod presence;
pub mod reads;
pub mod retention;
pub mod rooms;
pub mod search;
