//! Access tokens (JWT HS256, algorithm pinned) and opaque refresh tokens stored as hashes.

use crate::base::model::{Identity, now_secs};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Username (immutable, saves a lookup per message).
    pub username: String,
    /// Session id: lets a revoked session be recognised.
    pub sid: Uuid,
    /// Token kind; always "access".
    pub typ: String,
    /// Issued at (seconds).
    pub iat: u64,
    /// Expiry (seconds).
    pub exp: u64,
}

/// Signs and checks tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    refresh_secret: Vec<u8>,
    /// Access token lifetime in seconds.
    pub access_ttl: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_ttl: u64,
}

impl TokenKeys {
    /// Builds the keys from the two secrets.
    pub fn new(
        access_secret: &[u8],
        refresh_secret: &[u8],
        access_ttl: u64,
        refresh_ttl: u64,
    ) -> Result<TokenKeys, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let bad = |e: jsonwebtoken::errors::Error| format!("invalid access secret: {e}");
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(access_secret).map_err(bad)?,
            decoding: DecodingKey::from_secret(access_secret).map_err(bad)?,
            validation,
            refresh_secret: refresh_secret.to_vec(),
            access_ttl,
            refresh_ttl,
        })
    }

    /// Issues an access token.
    pub fn issue_access(&self, user_id: Uuid, username: &str, session_id: Uuid) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user_id,
            username: username.to_string(),
            sid: session_id,
            typ: "access".into(),
            iat: now,
            exp: now + self.access_ttl,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Verifies an access token: signature, algorithm, expiry, kind.
    pub fn verify_access(&self, token: &str) -> Option<Identity> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        if c.typ != "access" {
            return None;
        }
        Some(Identity {
            user_id: c.sub,
            username: c.username,
            session_id: c.sid,
        })
    }

    /// A new opaque refresh token (256 random bits, hex).
    pub fn new_refresh(&self) -> String {
        let bytes: [u8; 32] = rand::random();
        hex(&bytes)
    }

    /// The token that replaces `token` when it is rotated: derived (keyed hash), so that
    /// a retried rotation answers the same successor; unguessable without the secret.
    pub fn successor(&self, token: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.refresh_secret);
        h.update(b"\0successor\0");
        h.update(token.as_bytes());
        hex(&h.finalize())
    }

    /// The stored form of a refresh token: keyed hash, so a database leak gives nothing usable.
    pub fn refresh_hash(&self, token: &str) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(&self.refresh_secret);
        h.update(token.as_bytes());
        h.finalize().to_vec()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random secret for development mode.
pub fn random_secret() -> Vec<u8> {
    let bytes: [u8; 32] = rand::random();
    bytes.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"access-secret", b"refresh-secret", 60, 600).unwrap()
    }

    #[test]
    fn roundtrip() {
        let k = keys();
        let (u, s) = (Uuid::now_v7(), Uuid::now_v7());
        let t = k.issue_access(u, "alice", s);
        let id = k.verify_access(&t).unwrap();
        assert_eq!(
            (id.user_id, id.session_id, id.username.as_str()),
            (u, s, "alice")
        );
    }

    #[test]
    fn refuses_forgeries() {
        let k = keys();
        let t = k.issue_access(Uuid::now_v7(), "a", Uuid::now_v7());
        let other = TokenKeys::new(b"other", b"r", 60, 600).unwrap();
        assert!(other.verify_access(&t).is_none(), "wrong key");
        // alg: none with the same claims.
        let claims = t.split('.').nth(1).unwrap();
        let none_hdr = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(k.verify_access(&format!("{none_hdr}.{claims}.")).is_none());
        let hs512 = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"HS512","typ":"JWT"}"#);
        assert!(
            k.verify_access(&format!(
                "{hs512}.{claims}.{}",
                t.split('.').nth(2).unwrap()
            ))
            .is_none()
        );
        // Expired.
        let past = Claims {
            sub: Uuid::now_v7(),
            username: "a".into(),
            sid: Uuid::now_v7(),
            typ: "access".into(),
            iat: 1,
            exp: 2,
        };
        let old = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &past, &k.encoding).unwrap();
        assert!(k.verify_access(&old).is_none());
        // A refresh token is not an access token.
        assert!(k.verify_access(&k.new_refresh()).is_none());
    }

    #[test]
    fn refresh_tokens_are_long_and_hashed() {
        let k = keys();
        let t = k.new_refresh();
        assert_eq!(t.len(), 64);
        assert_ne!(k.refresh_hash(&t), t.as_bytes());
        assert_eq!(k.refresh_hash(&t), k.refresh_hash(&t));
        let next = k.successor(&t);
        assert_eq!(next.len(), 64);
        assert_eq!(next, k.successor(&t));
        assert_ne!(next, k.successor(&k.new_refresh()));
        assert_ne!(k.refresh_hash(&next), k.refresh_hash(&t));
    }
}
