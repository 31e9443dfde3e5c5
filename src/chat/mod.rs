//! Chat domain: one use case per operation (sending, edits, rooms and membership,
//! moderation, direct rooms, read state), each a check step (its permission asked of
//! `base::access`) then a do step, called alike by every transport; and presence,
//! history pages, search and its indexer, retention, the batched membership checks and
//! the history cache. Returns values and errors; imports only base and pg.

pub mod admin;
pub mod blocks;
pub mod direct;
pub mod edits;
pub mod erase;
pub mod export;
pub mod file_links;
pub mod files;
pub mod heads;
pub mod history;
pub mod indexer;
pub mod invites;
pub mod levels;
pub mod mates;
pub mod mentions;
pub mod messages;
pub mod moderation;
pub mod ownership;
pub mod pages;
pub mod pins;
pub mod presence;
pub mod reads;
pub mod reports;
pub mod restrictions;
pub mod retention;
pub mod review;
pub mod rooms;
pub mod search;
pub mod send;
pub mod thumbs;
