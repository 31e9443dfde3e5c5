//! `[[api_keys]]`: the keys of the product's backend on `/admin/...`. Only the SHA-256
//! of each key is configured, so the file holds nothing that opens the API.

use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};

/// One `[[api_keys]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key (named as the actor in the audit log).
    pub name: String,
    /// The SHA-256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub key_sha256: String,
}

/// Names present, short and printable, unique; digests 64 hex digits, unique.
pub fn validate(keys: &[ApiKeyConfig]) -> Result<(), ConfigError> {
    for (i, k) in keys.iter().enumerate() {
        let printable = k.name.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if k.name.trim().is_empty() || k.name.len() > 64 || !printable {
            return Err(invalid(
                "api_keys.name",
                format!("entry {}: 1 to 64 printable ASCII characters", i + 1),
            ));
        }
        let hex = k.key_sha256.len() == 64 && k.key_sha256.chars().all(|c| c.is_ascii_hexdigit());
        if !hex {
            return Err(invalid(
                "api_keys.key_sha256",
                format!("{}: the key's SHA-256 as 64 hex digits", k.name),
            ));
        }
        let earlier = &keys[..i];
        if earlier.iter().any(|e| e.name == k.name) {
            return Err(invalid(
                "api_keys.name",
                format!("{} is listed twice", k.name),
            ));
        }
        if earlier
            .iter()
            .any(|e| e.key_sha256.eq_ignore_ascii_case(&k.key_sha256))
        {
            return Err(invalid(
                "api_keys.key_sha256",
                format!("{}: the same key as another entry", k.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, digest: &str) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            key_sha256: digest.into(),
        }
    }

    #[test]
    fn names_and_digests_are_checked() {
        let d = "a".repeat(64);
        assert!(validate(&[key("backend", &d)]).is_ok());
        assert!(validate(&[key("", &d)]).is_err());
        assert!(validate(&[key("b", "abc")]).is_err());
        assert!(validate(&[key("b", &"g".repeat(64))]).is_err());
        assert!(validate(&[key("b", &d), key("b", &"b".repeat(64))]).is_err());
        assert!(validate(&[key("b", &d), key("c", &d.to_uppercase())]).is_err());
    }
}
