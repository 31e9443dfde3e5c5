//! Tokens signed by the product's own identity provider (`[auth.external]`).
//!
//! A token is checked on the event loop with no I/O: its key is held (a configured
//! secret or public key, or the JWKS's key for its (issuer, kid)), its algorithm is the
//! key's (never the header's choice alone), and `exp`, `nbf`, `iss` and `aud` are
//! checked with a small leeway. Its user is then found in a bounded in-memory cache by
//! (issuer, `sub`). What needs I/O is left to a worker as an [`Unresolved`] caller: the
//! user's first request on this node (found or created in the database by [`resolve`]),
//! or a token whose key is being fetched.

use crate::auth::Auth;
use crate::auth::jwks::{Jwks, JwksConfig, Key, Lookup};
use crate::auth::recent::Recent;
use crate::auth::users;
use crate::base::config::{ExternalAuthConfig, KeySource};
use crate::base::error::ApiError;
use crate::base::metrics::Metrics;
use crate::base::model::{Identity, now_secs};
use crate::pg::pool::Worker;
use crossbeam_channel::Receiver;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The one answer to any refused token: no detail about which check failed.
pub const INVALID_TOKEN: ApiError =
    ApiError::Unauthorized("invalid_token", "Invalid or expired token");

/// Longest a worker waits for a key being fetched.
const KEY_WAIT: Duration = Duration::from_secs(5);

/// What a verified external token says about its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalClaims {
    /// `iss`
    pub issuer: String,
    /// `sub`
    pub subject: String,
    /// Where a new user's username comes from, in order: the configured claim, `name`, `sub`.
    pub names: Vec<String>,
    /// `name`, a new user's display name.
    pub display_name: Option<String>,
    /// `exp`
    pub expires: u64,
}

/// A caller a worker must finish: find (or create) the user, or first wait for a key.
#[derive(Debug)]
pub enum Unresolved {
    /// A valid token whose user this node has not met (or no longer remembers).
    User(ExternalClaims),
    /// A token naming a key not held yet, being fetched: check it again after the fetch
    /// that follows generation `after`.
    Key {
        /// The token.
        token: String,
        /// The key set's generation when the token arrived.
        after: u64,
    },
}

/// Who a bearer token names, as far as the event loop can tell without I/O.
#[derive(Debug)]
pub enum Caller {
    /// A user known here: chatd's own token, or a remembered external user.
    Known(Identity),
    /// Needs a worker: call [`resolve`] there.
    Unresolved(Unresolved),
}

enum Keys {
    /// A configured secret or public key.
    Fixed(Arc<Key>),
    /// The provider's JWKS.
    Jwks(Arc<Jwks>),
}

/// What a token check found.
enum Checked {
    Claims(ExternalClaims),
    AwaitKey(u64),
}

/// The external provider's keys, claims rules and the users met.
pub struct External {
    issuer: String,
    keys: Keys,
    username_claim: String,
    leeway: u64,
    /// Users met, by (issuer, sub).
    identities: Recent<String, Identity>,
    /// Tokens verified, by their SHA-256: a token seen again costs a hash, not a
    /// signature check (an RSA verification costs far more than chatd's own HMAC).
    verified: Recent<[u8; 32], Verified>,
    /// Counters shared with the node.
    pub metrics: Arc<Metrics>,
}

/// The JWKS to fetch at start and keep fresh on a thread of its own.
pub struct JwksThread {
    /// The key set.
    pub jwks: Arc<Jwks>,
    /// Its fetch requests.
    pub rx: Receiver<()>,
}

impl External {
    /// The provider of `cfg` (which is enabled and valid); with a JWKS, also the thread
    /// to start for it. The error names the key at fault.
    pub fn new(
        cfg: &ExternalAuthConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(External, Option<JwksThread>), String> {
        let mut base = Validation::new(Algorithm::RS256);
        base.leeway = cfg.leeway_secs;
        base.validate_nbf = true;
        base.set_issuer(&[&cfg.issuer]);
        base.set_audience(&[&cfg.audience]);
        base.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        let algorithms = cfg.algorithms();
        let fixed = |decoding: DecodingKey| {
            let mut validation = base.clone();
            validation.algorithms = algorithms.clone();
            Keys::Fixed(Arc::new(Key {
                decoding,
                validation,
            }))
        };
        let mut thread = None;
        let keys = match cfg.source() {
            Some(KeySource::Secret) => fixed(
                DecodingKey::from_secret(cfg.hs256_secret.as_bytes())
                    .map_err(|e| format!("auth.external.hs256_secret: {e}"))?,
            ),
            Some(KeySource::Pem) => {
                let alg = algorithms.first().copied().unwrap_or(Algorithm::RS256);
                fixed(pem_key(alg, cfg.public_key_pem.trim().as_bytes())?)
            }
            Some(KeySource::Jwks) => {
                let (jwks, rx) = Jwks::new(
                    JwksConfig {
                        url: cfg.jwks_url.clone(),
                        issuer: cfg.issuer.clone(),
                        allowed: algorithms,
                        base,
                        min_refetch: Duration::from_secs(cfg.jwks_min_refetch_secs),
                        refresh: Duration::from_secs(cfg.jwks_refresh_secs),
                        timeout: Duration::from_secs(cfg.jwks_timeout_secs),
                    },
                    metrics.clone(),
                );
                thread = Some(JwksThread {
                    jwks: jwks.clone(),
                    rx,
                });
                Keys::Jwks(jwks)
            }
            None => return Err("auth.external: set exactly one key source".into()),
        };
        Ok((
            External {
                issuer: cfg.issuer.clone(),
                keys,
                username_claim: cfg.username_claim.clone(),
                leeway: cfg.leeway_secs,
                identities: Recent::new(cfg.cache_size),
                verified: Recent::new(cfg.cache_size),
                metrics,
            },
            thread,
        ))
    }

    /// The caller of a token, without I/O: `None` when the token is refused.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let keys = self.key_generation();
        if let Some(v) = self.verified.get(&digest)
            && v.keys == keys
            && now_secs() <= v.until
        {
            return Some(Caller::Known(v.identity));
        }
        Some(match self.check(token)? {
            Checked::AwaitKey(after) => Caller::Unresolved(Unresolved::Key {
                token: token.to_string(),
                after,
            }),
            Checked::Claims(c) => match self.identities.get(&user_key(&c.issuer, &c.subject)) {
                Some(id) => {
                    self.verified.put(
                        digest,
                        Verified {
                            identity: id.clone(),
                            until: c.expires.saturating_add(self.leeway),
                            keys,
                        },
                    );
                    Caller::Known(id)
                }
                None => Caller::Unresolved(Unresolved::User(c)),
            },
        })
    }

    /// Changes whenever the keys may have: a verified token is trusted again only
    /// under the keys it was verified with.
    fn key_generation(&self) -> u64 {
        match &self.keys {
            Keys::Fixed(_) => 0,
            Keys::Jwks(j) => j.generation(),
        }
    }

    /// Checks signature, algorithm, times, issuer and audience.
    fn check(&self, token: &str) -> Option<Checked> {
        let key = match &self.keys {
            Keys::Fixed(k) => k.clone(),
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).ok()?;
                let kid = header.kid.as_deref().unwrap_or("");
                match jwks.lookup(&self.issuer, kid) {
                    Lookup::Found(k) => k,
                    // Worth waiting for only when it could be valid: the right issuer
                    // and an asymmetric algorithm (checked again with the key).
                    Lookup::Fetching(after) if self.plausible(token, header.alg) => {
                        return Some(Checked::AwaitKey(after));
                    }
                    Lookup::Fetching(_) | Lookup::Unknown => return None,
                }
            }
        };
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &key.validation)
                .ok()?;
        self.claims(&data.claims).map(Checked::Claims)
    }

    fn plausible(&self, token: &str, alg: Algorithm) -> bool {
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        alg.family() != AlgorithmFamily::Hmac
            && jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(token)
                .is_ok_and(|c| c.iss.as_deref() == Some(self.issuer.as_str()))
    }

    fn claims(&self, m: &Map<String, Value>) -> Option<ExternalClaims> {
        let text = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let issuer = text("iss")?;
        let subject = m.get("sub").and_then(Value::as_str)?.to_string();
        if subject.is_empty() || subject.chars().count() > 255 {
            return None;
        }
        let names = [self.username_claim.as_str(), "name", "sub"]
            .iter()
            .filter_map(|k| text(k))
            .collect();
        Some(ExternalClaims {
            issuer,
            subject,
            names,
            display_name: text("name"),
            expires: m
                .get("exp")
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)))?,
        })
    }

    /// Waits (on a worker) for the fetch after generation `after`.
    fn await_keys(&self, after: u64) {
        if let Keys::Jwks(jwks) = &self.keys {
            jwks.wait(after, KEY_WAIT);
        }
    }

    /// Forgets the users of these sessions: their next request is resolved again.
    pub fn forget_sessions(&self, sessions: &[Uuid]) {
        self.identities
            .retain(|id| !sessions.contains(&id.session_id));
        self.verified
            .retain(|v| !sessions.contains(&v.identity.session_id));
    }
}

/// A token that passed every check, and until when it stays good.
#[derive(Clone)]
struct Verified {
    identity: Identity,
    /// `exp` plus the leeway.
    until: u64,
    /// The key generation it was verified under.
    keys: u64,
}

/// The identity cache's key for (issuer, sub).
fn user_key(issuer: &str, subject: &str) -> String {
    let mut k = String::with_capacity(issuer.len() + subject.len() + 1);
    k.push_str(issuer);
    k.push('\0');
    k.push_str(subject);
    k
}

/// Parses a PEM public key for `alg`.
fn pem_key(alg: Algorithm, pem: &[u8]) -> Result<DecodingKey, String> {
    let key = match alg.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
        AlgorithmFamily::Hmac => return Err("auth.external.algorithm: not for a public key".into()),
    };
    key.map_err(|e| format!("auth.external.public_key_pem: not a {alg:?} public key ({e})"))
}

/// The session id external users are known by: derived from the user id, so every node
/// names it alike and a revocation of it reaches every node's cache.
pub fn session_of(user_id: Uuid) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"chatd external session\0");
    h.update(user_id.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Finishes an [`Unresolved`] caller on a worker: waits for a key being fetched and
/// checks the token again, then finds the user by (issuer, `sub`), creating it on first
/// use, and remembers it so that its next requests need no query.
pub fn resolve(w: &mut Worker, auth: &Auth, u: Unresolved) -> Result<Identity, ApiError> {
    let ext = auth.external.as_ref().ok_or(INVALID_TOKEN)?;
    let claims = match u {
        Unresolved::User(c) => c,
        Unresolved::Key { token, after } => {
            ext.await_keys(after);
            match ext.check(&token) {
                Some(Checked::Claims(c)) => c,
                _ => return Err(INVALID_TOKEN),
            }
        }
    };
    let key = user_key(&claims.issuer, &claims.subject);
    let id = match ext.identities.get(&key) {
        Some(id) => id,
        None => {
            let id = users::external_user(w, &claims)?;
            ext.identities.put(key, id.clone());
            id
        }
    };
    auth.unrevoked(id).ok_or(INVALID_TOKEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn provider(secret: &str) -> External {
        let cfg = ExternalAuthConfig {
            issuer: "https://id.example".into(),
            audience: "chatd".into(),
            hs256_secret: secret.into(),
            ..Default::default()
        };
        External::new(&cfg, Arc::new(Metrics::default())).unwrap().0
    }

    fn token(secret: &str, claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn now() -> u64 {
        crate::base::model::now_secs()
    }

    #[test]
    fn claims_are_checked_and_read() {
        let p = provider("shared-secret");
        let good = json!({"iss": "https://id.example", "aud": "chatd", "sub": "u1",
                          "exp": now() + 60, "preferred_username": "ann", "name": "Ann Lee"});
        let Some(Caller::Unresolved(Unresolved::User(c))) =
            p.caller(&token("shared-secret", good.clone()))
        else {
            panic!("a valid token of an unknown user is unresolved");
        };
        assert_eq!(c.subject, "u1");
        assert_eq!(c.names, vec!["ann", "Ann Lee", "u1"]);
        assert_eq!(c.display_name.as_deref(), Some("Ann Lee"));
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            token("shared-secret", c)
        };
        let refused = [
            token("other-secret", good.clone()),
            with("iss", json!("https://evil.example")),
            with("aud", json!("someone-else")),
            with("exp", json!(now() - 120)),
            with("nbf", json!(now() + 120)),
            with("sub", json!("")),
            with("sub", json!(42)),
        ];
        for t in refused {
            assert!(p.caller(&t).is_none(), "{t}");
        }
        // Within the leeway.
        assert!(p.caller(&with("exp", json!(now() - 5))).is_some());
        // The remembered user needs no worker.
        let id = Identity {
            user_id: Uuid::now_v7(),
            username: "ann".into(),
            session_id: Uuid::now_v7(),
        };
        p.identities
            .put(user_key("https://id.example", "u1"), id.clone());
        let t = token("shared-secret", good);
        for _ in 0..2 {
            let Some(Caller::Known(known)) = p.caller(&t) else {
                panic!("remembered");
            };
            assert_eq!(known, id);
        }
        assert_eq!(p.verified.len(), 1, "seen again: the hash is enough");
        p.forget_sessions(&[id.session_id]);
        assert_eq!(p.identities.len() + p.verified.len(), 0);
        assert!(matches!(p.caller(&t), Some(Caller::Unresolved(_))));
    }

    #[test]
    fn pseudo_sessions_are_stable_per_user() {
        let u = Uuid::now_v7();
        assert_eq!(session_of(u), session_of(u));
        assert_ne!(session_of(u), session_of(Uuid::now_v7()));
        assert_ne!(session_of(u), u);
    }
}
