//! API keys of the product's backend (`[[api_keys]]`): a bearer token on `/admin/...` is
//! one of them when its SHA-256 is configured. Checked without I/O, in constant time
//! per configured key.

use crate::base::config::ApiKeyConfig;
use sha2::{Digest, Sha256};

/// The configured keys, by digest.
#[derive(Debug, Default)]
pub struct ApiKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl ApiKeys {
    /// The keys of a validated configuration (an entry that does not decode is skipped;
    /// validation refuses it before this runs).
    pub fn from_config(cfg: &[ApiKeyConfig]) -> ApiKeys {
        let keys = cfg
            .iter()
            .filter_map(|k| Some((k.name.clone(), decode_hex(&k.key_sha256)?)))
            .collect();
        ApiKeys { keys }
    }

    /// True when no key is configured (the server API is off).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key `token` is, if any.
    pub fn check(&self, token: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, d) in &self.keys {
            // Every key is compared, and every byte of it.
            let diff = d.iter().zip(&digest).fold(0u8, |a, (x, y)| a | (x ^ y));
            if diff == 0 {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_known_by_its_digest() {
        let digest = "8b11ff3a6b1af1d4a08fd8d1d1cf3ebf0a1b3d02c47c5eb3c9b83fde5c8aeb7b";
        let real: [u8; 32] = Sha256::digest(b"secret-key").into();
        let hex: String = real.iter().map(|b| format!("{b:02x}")).collect();
        let keys = ApiKeys::from_config(&[
            ApiKeyConfig {
                name: "other".into(),
                key_sha256: digest.into(),
            },
            ApiKeyConfig {
                name: "backend".into(),
                key_sha256: hex.to_uppercase(),
            },
        ]);
        assert_eq!(keys.check("secret-key"), Some("backend"));
        assert_eq!(keys.check("secret-key "), None);
        assert_eq!(keys.check(""), None);
        assert!(ApiKeys::default().is_empty());
    }
}
