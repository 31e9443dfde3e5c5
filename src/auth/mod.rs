//! Authentication: password hashing, tokens, and the /auth handlers.

pub mod handlers;
pub mod password;
pub mod tokens;
