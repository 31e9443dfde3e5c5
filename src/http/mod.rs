//! HTTP/1.1: parsing, responses, request bodies and routing.

pub mod body;
pub mod parse;
pub mod response;
pub mod routes;
