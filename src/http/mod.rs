//! HTTP/1.1: parsing, request bodies, responses (the one place an error becomes an
//! HTTP answer), routes and their handlers, the WebSocket opening handshake, and the
//! embedded web app and client library.
//! Protocol adapter: imports base, pg and the domain; never ws/ or net/.

pub mod api;
pub mod body;
pub mod context;
pub mod conversations;
pub mod messages;
pub mod ops;
pub mod parse;
pub mod response;
pub mod routes;
pub mod upgrade;
pub mod web;
