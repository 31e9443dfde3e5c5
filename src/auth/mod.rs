//! Authentication: password hashing, tokens, revoked sessions, and account operations.
//! Domain layer: returns values and errors; imports only base and pg.

pub mod accounts;
pub mod password;
pub mod tokens;

use crate::base::model::{Identity, now_secs};
use password::Hasher;
use std::collections::HashMap;
use std::sync::RwLock;
use tokens::TokenKeys;
use uuid::Uuid;

/// What authentication needs on every request: the keys, the hasher, and the sessions
/// revoked while their access tokens may still be unexpired.
pub struct Auth {
    /// Token keys.
    pub keys: TokenKeys,
    /// Password hasher (used on auth workers only).
    pub hasher: Hasher,
    /// How long a just-rotated refresh token still answers with its successor.
    pub refresh_grace: std::time::Duration,
    /// Revoked session ids with the time (s) after which their tokens are expired anyway.
    revoked: RwLock<HashMap<Uuid, u64>>,
}

impl Auth {
    /// An authenticator with no revoked session known yet.
    pub fn new(keys: TokenKeys, hasher: Hasher, refresh_grace: std::time::Duration) -> Auth {
        Auth {
            keys,
            hasher,
            refresh_grace,
            revoked: RwLock::new(HashMap::new()),
        }
    }

    /// Verifies an access token and that its session was not revoked.
    pub fn authenticate(&self, token: &str) -> Option<Identity> {
        let id = self.keys.verify_access(token)?;
        let revoked = self
            .revoked
            .read()
            .map(|r| r.contains_key(&id.session_id))
            .unwrap_or(true);
        (!revoked).then_some(id)
    }

    /// Records revoked sessions (other nodes learn it through a notification).
    pub fn mark_revoked(&self, sessions: &[Uuid]) {
        let now = now_secs();
        let until = now + self.keys.access_ttl + 5;
        if let Ok(mut r) = self.revoked.write() {
            r.retain(|_, t| *t > now);
            for s in sessions {
                r.insert(*s, until);
            }
        }
    }
}
