//! Web Push on the wire: the payload encrypted for one subscription (RFC 8291,
//! `aes128gcm` of RFC 8188 in a single record), the VAPID authorization (RFC 8292, an
//! ES256 JWT) and the request to the push service (RFC 8030). Pure functions but
//! [`send`], which runs on the notifier's sender threads, never on an event loop.

use aes_gcm::Aes128Gcm;
use aes_gcm::aead::Nonce;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::{PublicKey, SecretKey};
use sha2::Sha256;
use std::io::Read;
use std::time::Duration;

/// The record size written in the header: one record holds any payload we send.
const RECORD_SIZE: u32 = 4096;
/// Most bytes of a payload (RFC 8030 guarantees 4096 for the whole encrypted body).
pub const MAX_PAYLOAD: usize = 3000;
/// Length of an uncompressed P-256 point (0x04 || x || y).
pub const POINT_LEN: usize = 65;
/// Length of a subscription's auth secret.
pub const AUTH_LEN: usize = 16;

/// Why a payload could not be sealed or opened.
#[derive(Debug, PartialEq, Eq)]
pub struct CryptoError(pub &'static str);

/// A fresh random P-256 private key (32 bytes), as kept in configuration.
pub fn generate_key() -> SecretKey {
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(k) = SecretKey::from_slice(&bytes) {
            return k;
        }
    }
}

/// A private key from its base64url form (32 bytes).
pub fn key_from_b64(s: &str) -> Result<SecretKey, CryptoError> {
    let raw = B64
        .decode(s.trim().trim_end_matches('='))
        .map_err(|_| CryptoError("not base64url"))?;
    SecretKey::from_slice(&raw).map_err(|_| CryptoError("not a P-256 private key"))
}

/// The base64url form of a private key.
pub fn key_to_b64(k: &SecretKey) -> String {
    B64.encode(k.to_bytes())
}

/// The uncompressed point of a key's public half (what browsers take as
/// `applicationServerKey`, and the `k=` of the VAPID header).
pub fn public_point(k: &SecretKey) -> Vec<u8> {
    k.public_key().to_sec1_bytes().into_vec()
}

/// The public point of a key in base64url (`GET /push/vapid-public-key`).
pub fn public_b64(k: &SecretKey) -> String {
    B64.encode(public_point(k))
}

/// HKDF-SHA-256 expand of `prk`-keyed material into `N` bytes.
fn expand<const N: usize>(h: &Hkdf<Sha256>, info: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    // N is at most 32 here, far below HKDF's limit of 255 * 32: never fails.
    let _ = h.expand(info, &mut out);
    out
}

/// The content key and nonce of RFC 8291 section 3.4, from the ECDH secret, the
/// subscription's auth secret, both public points and the salt.
fn derive(
    ecdh: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> ([u8; 16], [u8; 12]) {
    let mut key_info = Vec::with_capacity(14 + 2 * POINT_LEN);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let ikm: [u8; 32] = expand(&Hkdf::<Sha256>::new(Some(auth), ecdh), &key_info);
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let cek = expand(&prk, b"Content-Encoding: aes128gcm\0");
    let nonce = expand(&prk, b"Content-Encoding: nonce\0");
    (cek, nonce)
}

/// Encrypts `plaintext` for the subscription (`ua_public`, `auth`) with the sender's
/// ephemeral key `as_key` and `salt`: the whole `aes128gcm` body (header with the
/// sender's point as key id, then one record ending with the delimiter 0x02).
pub fn encrypt_with(
    plaintext: &[u8],
    ua_public: &[u8],
    auth: &[u8],
    as_key: &SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, CryptoError> {
    if auth.len() != AUTH_LEN {
        return Err(CryptoError("auth secret is not 16 bytes"));
    }
    let ua = PublicKey::from_sec1_bytes(ua_public).map_err(|_| CryptoError("bad p256dh"))?;
    let as_public = public_point(as_key);
    let shared = p256::ecdh::diffie_hellman(as_key.to_nonzero_scalar(), ua.as_affine());
    let (cek, nonce) = derive(
        shared.raw_secret_bytes().as_slice(),
        auth,
        ua_public,
        &as_public,
        salt,
    );
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| CryptoError("key length"))?;
    let nonce = Nonce::<Aes128Gcm>::from(nonce);
    let sealed = cipher
        .encrypt(&nonce, record.as_slice())
        .map_err(|_| CryptoError("encryption failed"))?;
    let mut body = Vec::with_capacity(21 + as_public.len() + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// Encrypts `plaintext` for a subscription with a fresh ephemeral key and salt.
pub fn encrypt(plaintext: &[u8], ua_public: &[u8], auth: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let salt: [u8; 16] = rand::random();
    encrypt_with(plaintext, ua_public, auth, &generate_key(), &salt)
}

/// The user agent's side: opens an `aes128gcm` body with the subscription's private
/// key and auth secret (single record, as [`encrypt`] writes). Used by the tests'
/// push service; checked against the RFC's example like [`encrypt_with`].
pub fn decrypt(body: &[u8], ua_key: &SecretKey, auth: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let short = CryptoError("body too short");
    let salt = body.get(..16).ok_or(CryptoError("body too short"))?;
    let idlen = *body.get(20).ok_or(short)? as usize;
    let as_public = body
        .get(21..21 + idlen)
        .ok_or(CryptoError("body too short"))?;
    let sealed = &body[21 + idlen..];
    let rs = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    if sealed.len() > rs {
        return Err(CryptoError("more than one record"));
    }
    let peer = PublicKey::from_sec1_bytes(as_public).map_err(|_| CryptoError("bad key id"))?;
    let shared = p256::ecdh::diffie_hellman(ua_key.to_nonzero_scalar(), peer.as_affine());
    let ua_public = public_point(ua_key);
    let (cek, nonce) = derive(
        shared.raw_secret_bytes().as_slice(),
        auth,
        &ua_public,
        as_public,
        salt,
    );
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| CryptoError("key length"))?;
    let nonce = Nonce::<Aes128Gcm>::from(nonce);
    let mut plain = cipher
        .decrypt(&nonce, sealed)
        .map_err(|_| CryptoError("authentication failed"))?;
    // Padding is zeros after the delimiter; the last record's delimiter is 0x02.
    while plain.last() == Some(&0) {
        plain.pop();
    }
    match plain.pop() {
        Some(2) => Ok(plain),
        _ => Err(CryptoError("no last-record delimiter")),
    }
}

/// The origin (`scheme://host[:port]`) of a URL: the `aud` of its VAPID token.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// The `Authorization` value of RFC 8292: `vapid t=<ES256 JWT>, k=<public point>`, the
/// token for the endpoint's origin, valid `ttl_secs` (at most a day) from `now`.
pub fn vapid_header(
    key: &SecretKey,
    endpoint: &str,
    subject: &str,
    now: u64,
    ttl_secs: u64,
) -> String {
    let aud = origin(endpoint).unwrap_or_default();
    let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = serde_json::json!({"aud": aud, "exp": now + ttl_secs.min(86_400), "sub": subject});
    let claims = B64.encode(claims.to_string());
    let input = format!("{header}.{claims}");
    let sig: Signature = SigningKey::from(key.clone()).sign(input.as_bytes());
    let k = B64.encode(public_point(key));
    format!("vapid t={input}.{}, k={k}", B64.encode(sig.to_bytes()))
}

/// How a push service answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: accepted.
    Accepted,
    /// 404 or 410: the subscription is gone for good.
    Gone,
    /// 5xx, 429, a timeout or a connection error: worth another attempt, no sooner
    /// than the service's `Retry-After` when it gave one.
    Retry(String, Option<Duration>),
    /// Any other answer (400, 401, 403, 413, ...): the same push would be refused again.
    Refused(String),
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 section 10.2.3).
pub fn retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// POSTs an encrypted body to a subscription's endpoint with the VAPID header.
pub fn send(
    agent: &ureq::Agent,
    endpoint: &str,
    authorization: &str,
    body: &[u8],
    ttl_secs: u64,
    urgency: &str,
) -> Outcome {
    let sent = agent
        .post(endpoint)
        .header("authorization", authorization)
        .header("content-encoding", "aes128gcm")
        .header("content-type", "application/octet-stream")
        .header("ttl", ttl_secs.to_string())
        .header("urgency", urgency)
        .send(body);
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(e.to_string(), None),
    };
    let status = resp.status().as_u16();
    let after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, chrono::Utc::now()));
    let mut sink = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(64 << 10)
        .read_to_end(&mut sink);
    match status {
        200..=299 => Outcome::Accepted,
        404 | 410 => Outcome::Gone,
        429 | 500..=599 => Outcome::Retry(format!("answered {status}"), after),
        s => Outcome::Refused(format!("answered {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    // RFC 8291 section 5 (and Appendix A): the example's keys, salt and message.
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const MESSAGE: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn encrypt_gives_the_rfc_8291_example_message() {
        let as_key = key_from_b64(AS_PRIVATE).unwrap();
        assert_eq!(public_point(&as_key), b(AS_PUBLIC));
        let salt: [u8; 16] = b(SALT).try_into().unwrap();
        let body = encrypt_with(PLAINTEXT, &b(UA_PUBLIC), &b(AUTH), &as_key, &salt).unwrap();
        assert_eq!(B64.encode(&body), MESSAGE);
    }

    #[test]
    fn decrypt_opens_the_rfc_8291_example_message() {
        let ua = key_from_b64(UA_PRIVATE).unwrap();
        assert_eq!(public_point(&ua), b(UA_PUBLIC));
        assert_eq!(decrypt(&b(MESSAGE), &ua, &b(AUTH)).unwrap(), PLAINTEXT);
        // One flipped bit of the record fails authentication.
        let mut bad = b(MESSAGE);
        *bad.last_mut().unwrap() ^= 1;
        assert!(decrypt(&bad, &ua, &b(AUTH)).is_err());
        // So does another auth secret.
        assert!(decrypt(&b(MESSAGE), &ua, &[0u8; 16]).is_err());
    }

    #[test]
    fn fresh_encryptions_round_trip() {
        let ua = generate_key();
        let auth: [u8; 16] = rand::random();
        let body = encrypt(b"{\"count\":2}", &public_point(&ua), &auth).unwrap();
        assert_eq!(decrypt(&body, &ua, &auth).unwrap(), b"{\"count\":2}");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn vapid_token_is_es256_for_the_origin() {
        use p256::ecdsa::VerifyingKey;
        use p256::ecdsa::signature::Verifier;
        let key = generate_key();
        let h = vapid_header(
            &key,
            "https://Push.Example.net:8443/p/abc?x=1",
            "mailto:ops@example.com",
            1000,
            99_999,
        );
        let rest = h.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        assert_eq!(b(k), public_point(&key));
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let vk = VerifyingKey::from_sec1_bytes(&b(k)).unwrap();
        let sig = Signature::from_slice(&b(sig)).unwrap();
        vk.verify(input.as_bytes(), &sig).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&b(input.split_once('.').unwrap().1)).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["exp"], 1000 + 86_400);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
    }
}
