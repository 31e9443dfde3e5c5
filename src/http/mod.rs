//! HTTP/1.1: connections as sessions of the event loop (`driver.rs`, `session.rs`),
//! parsing, request bodies, responses (the one place an error becomes an HTTP answer),
//! routes and their handlers, the WebSocket opening handshake, and the embedded web app
//! and client library.
//! Protocol adapter: imports base, pg and the domain; never ws/ or net/. The loop drives
//! it through `base/session.rs`'s interface, as it drives ws/.

pub mod admin;
pub mod api;
pub mod blocks;
pub mod body;
pub mod caller;
pub mod context;
pub mod conversations;
pub mod cookie;
pub mod dead;
pub mod driver;
pub mod file_links;
pub mod files;
pub mod intake;
pub mod messages;
pub mod multipart;
pub mod ops;
pub mod parse;
pub mod pins;
pub mod push;
pub mod reports;
pub mod response;
pub mod routes;
pub mod scrape;
pub mod session;
pub mod stream;
pub mod upgrade;
pub mod upload;
pub mod users;
pub mod web;
