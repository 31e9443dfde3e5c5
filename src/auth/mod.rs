//! Authentication: password hashing, tokens, revoked sessions, account operations, the
//! product's identity provider (external tokens and their users), profiles and the
//! user directory. Domain layer: returns values and errors; imports only base and pg.

pub mod accounts;
pub mod admin;
pub mod external;
pub mod jwks;
pub mod keys;
pub mod password;
pub mod recent;
pub mod tokens;
pub mod users;

use crate::base::model::{Identity, now_secs};
use external::{Caller, External};
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
    /// The product's identity provider, when `[auth.external]` is set.
    pub external: Option<External>,
    /// The product backend's API keys (`[[api_keys]]`).
    pub api_keys: keys::ApiKeys,
}

impl Auth {
    /// An authenticator with no revoked session known yet.
    pub fn new(keys: TokenKeys, hasher: Hasher, refresh_grace: std::time::Duration) -> Auth {
        Auth {
            keys,
            hasher,
            refresh_grace,
            revoked: RwLock::new(HashMap::new()),
            external: None,
            api_keys: keys::ApiKeys::default(),
        }
    }

    /// The same, also taking the product backend's API keys on `/admin/...`.
    pub fn with_api_keys(mut self, keys: keys::ApiKeys) -> Auth {
        self.api_keys = keys;
        self
    }

    /// The same, also accepting the tokens of the product's identity provider.
    pub fn with_external(mut self, external: External) -> Auth {
        self.external = Some(external);
        self
    }

    /// Verifies one of chatd's own access tokens and that its session was not revoked
    /// (requests and upgrades use [`Auth::caller`], which takes the provider's too).
    pub fn authenticate(&self, token: &str) -> Option<Identity> {
        self.unrevoked(self.keys.verify_access(token)?)
    }

    /// Who a bearer token names, without I/O (safe on an event loop): chatd's own token,
    /// or the provider's token of a user this node knows; else an
    /// [`external::Unresolved`] caller for [`external::resolve`] on a worker. `None`
    /// when the token is refused.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        if let Some(id) = self.keys.verify_access(token) {
            return self.unrevoked(id).map(Caller::Known);
        }
        match self.external.as_ref()?.caller(token)? {
            Caller::Known(id) => self.unrevoked(id).map(Caller::Known),
            pending => Some(pending),
        }
    }

    /// The identity, unless its session was revoked.
    fn unrevoked(&self, id: Identity) -> Option<Identity> {
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
        if let Some(e) = &self.external {
            e.forget_sessions(sessions);
        }
    }
}
