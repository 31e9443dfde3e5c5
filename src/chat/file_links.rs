//! Signed download URLs, for what cannot send a bearer token (`<img src>`, `<a download>`):
//! `/files/<id>?u=<user>&exp=<unix seconds>&sig=<base64url HMAC-SHA-256 of
//! "<id>.<user>.<exp>">`, and the same query on `/files/<id>/thumbnail`.
//!
//! A signature only says who asked for the URL and until when; it grants nothing by
//! itself. A request carrying one is checked (the MAC in constant time, then the
//! expiry) and then served as a download by its signer, whose access is asked as it
//! is NOW (`files::open`, `Action::Download`): a signer kicked, banned or deactivated,
//! or a room deleted, since the URL was made refuses it at once.
//!
//! The key is `files.url_secret`, or without one a key derived from `auth.access_secret`
//! (HMAC of a fixed label): both are shared by every node of a cluster (base/shared.rs),
//! and development keeps its secrets in `.local/` (deploy/run.sh), so a URL made on one
//! node opens on another and outlives a restart.

use crate::base::access::Action;
use crate::base::config::Config;
use crate::base::error::ApiError;
use crate::base::model::{Identity, iso};
use crate::chat::files::{self, FILE_NOT_FOUND, File};
use crate::chat::rooms;
use crate::pg::pool::Worker;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

/// A signature that does not match its file, user and expiry (or is missing or malformed).
pub const INVALID_SIGNATURE: ApiError =
    ApiError::Forbidden("invalid_signature", "This URL's signature is not valid");
/// A signed URL past its expiry.
pub const URL_EXPIRED: ApiError =
    ApiError::Forbidden("url_expired", "This URL has expired: ask for a new one");
/// The signer's account is deactivated or being deleted.
pub const SIGNER_INACTIVE: ApiError = ApiError::Forbidden(
    "signer_inactive",
    "The account this URL was made for can no longer download",
);

/// The key that signs and checks URLs.
pub struct UrlKey([u8; 32]);

impl UrlKey {
    /// The node's key: `files.url_secret`, else derived from `auth.access_secret`.
    pub fn from_config(cfg: &Config) -> UrlKey {
        let configured = &cfg.files.url_secret;
        let (key, label): (&[u8], &[u8]) = if configured.is_empty() {
            (
                cfg.auth.access_secret.as_bytes(),
                b"chatd signed file urls v1",
            )
        } else {
            (
                configured.as_bytes(),
                b"chatd signed file urls v1 (configured)",
            )
        };
        UrlKey(mac(key, label))
    }

    /// The signature (base64url, no padding) of `file` for `user` until `exp`.
    pub fn sign(&self, file: Uuid, user: Uuid, exp: i64) -> String {
        B64.encode(mac(&self.0, message(file, user, exp).as_bytes()))
    }

    /// Checks a signed request's query: the signer when the signature is this key's
    /// for `file` and the URL has not expired at `now` (unix seconds).
    pub fn verify(
        &self,
        file: Uuid,
        user: &str,
        exp: &str,
        sig: &str,
        now: i64,
    ) -> Result<Uuid, ApiError> {
        let user = Uuid::parse_str(user).map_err(|_| INVALID_SIGNATURE)?;
        let exp: i64 =
            (!exp.is_empty() && exp.len() <= 19 && exp.bytes().all(|b| b.is_ascii_digit()))
                .then(|| exp.parse().ok())
                .flatten()
                .ok_or(INVALID_SIGNATURE)?;
        let sig = B64.decode(sig).map_err(|_| INVALID_SIGNATURE)?;
        let mut m =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).map_err(|_| INVALID_SIGNATURE)?;
        m.update(message(file, user, exp).as_bytes());
        // Constant time: nothing about the right signature leaks from how fast a wrong
        // one is refused.
        m.verify_slice(&sig).map_err(|_| INVALID_SIGNATURE)?;
        if exp < now {
            return Err(URL_EXPIRED);
        }
        Ok(user)
    }
}

/// What is signed.
fn message(file: Uuid, user: Uuid, exp: i64) -> String {
    format!("{file}.{user}.{exp}")
}

/// HMAC-SHA-256 of `msg` under `key`.
fn mac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// `GET /rooms/:id/files/:file_id/url`'s answer.
#[derive(Debug, Serialize)]
pub struct Links {
    /// The file's signed URL (a path: `/files/<id>?u=..&exp=..&sig=..`).
    pub url: String,
    /// Its thumbnail's, when it has one.
    pub thumbnail_url: Option<String>,
    /// When both stop working.
    pub expires_at: String,
}

/// The signed URLs of `file` of `room` for `who`, valid `ttl_secs` from `now`: the room
/// is asked first (as every route under a room: one hiding itself is `room_not_found`),
/// then the file as a download (`files::open`); a file of another room is
/// `file_not_found`.
pub fn links(
    w: &mut Worker,
    key: &UrlKey,
    who: &Identity,
    room: Uuid,
    file: Uuid,
    now: DateTime<Utc>,
    ttl_secs: i64,
) -> Result<Links, ApiError> {
    rooms::require(w.client()?, room, who.user_id, Action::Download)?;
    let f = files::open(w, who, file)?;
    if f.room_id != room {
        return Err(FILE_NOT_FOUND);
    }
    Ok(signed(key, &f, who.user_id, now, ttl_secs))
}

/// The URLs of `f` signed for `user`.
fn signed(key: &UrlKey, f: &File, user: Uuid, now: DateTime<Utc>, ttl_secs: i64) -> Links {
    let exp = now.timestamp() + ttl_secs;
    let query = format!("u={user}&exp={exp}&sig={}", key.sign(f.id, user, exp));
    let at = DateTime::<Utc>::from_timestamp(exp, 0).unwrap_or(now);
    Links {
        url: format!("/files/{}?{query}", f.id),
        thumbnail_url: f
            .has_thumbnail
            .then(|| format!("/files/{}/thumbnail?{query}", f.id)),
        expires_at: iso(at),
    }
}

/// Who reads a file: the bearer token's caller, or the signer of a signed URL.
#[derive(Clone, Debug)]
pub enum Reader {
    /// A caller with a token.
    Caller(Identity),
    /// The user a verified signature names.
    Signer(Uuid),
}

impl Reader {
    /// The reader as a download's identity: a signer is read from `users` (an account
    /// deactivated or being deleted is `signer_inactive`).
    pub fn identity(self, w: &mut Worker) -> Result<Identity, ApiError> {
        match self {
            Reader::Caller(who) => Ok(who),
            Reader::Signer(user) => {
                let row = w.client()?.query_opt(
                    "SELECT username, deactivated_at IS NULL AND deleting_at IS NULL
                     FROM users WHERE id = $1",
                    &[&user],
                )?;
                match row {
                    Some(r) if r.get::<_, bool>(1) => Ok(Identity {
                        user_id: user,
                        username: r.get(0),
                        // Not a session: a signed URL stands for none.
                        session_id: Uuid::nil(),
                    }),
                    _ => Err(SIGNER_INACTIVE),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UrlKey {
        let mut cfg = Config::default();
        cfg.auth.access_secret = "test-access-secret-0123456789abcdef".into();
        UrlKey::from_config(&cfg)
    }

    #[test]
    fn a_signature_opens_its_file_for_its_user_until_it_expires() {
        let k = key();
        let (f, u) = (Uuid::now_v7(), Uuid::now_v7());
        let sig = k.sign(f, u, 1000);
        assert_eq!(sig.len(), 43, "32 bytes, base64url without padding");
        let us = u.to_string();
        assert_eq!(k.verify(f, &us, "1000", &sig, 999).unwrap(), u);
        assert_eq!(k.verify(f, &us, "1000", &sig, 1000).unwrap(), u);
        let code = |r: Result<Uuid, ApiError>| r.unwrap_err().code().to_string();
        assert_eq!(code(k.verify(f, &us, "1000", &sig, 1001)), "url_expired");
        assert_eq!(code(k.verify(f, &us, "1001", &sig, 0)), "invalid_signature");
        assert_eq!(
            code(k.verify(Uuid::now_v7(), &us, "1000", &sig, 0)),
            "invalid_signature"
        );
        let other = Uuid::now_v7().to_string();
        assert_eq!(
            code(k.verify(f, &other, "1000", &sig, 0)),
            "invalid_signature"
        );
        let mut bad = sig.clone().into_bytes();
        bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(code(k.verify(f, &us, "1000", &bad, 0)), "invalid_signature");
        for (exp, s) in [("", &sig), ("+1000", &sig), ("1000", &"!!".to_string())] {
            assert_eq!(code(k.verify(f, &us, exp, s, 0)), "invalid_signature");
        }
        let mut cfg = Config::default();
        cfg.auth.access_secret = "test-access-secret-0123456789abcdef".into();
        cfg.files.url_secret = "another-secret-0123456789abcdef-0123".into();
        let configured = UrlKey::from_config(&cfg);
        assert_eq!(
            code(configured.verify(f, &us, "1000", &sig, 0)),
            "invalid_signature",
            "url_secret replaces the derived key"
        );
    }
}
