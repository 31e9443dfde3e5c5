//! `[auth.external]`: tokens signed by the product's own identity provider, and their
//! checks at start-up.

use super::{ConfigError, Mode, invalid, range};
use crate::base::text::http_url;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::{Deserialize, Serialize};

/// `[auth.external]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalAuthConfig {
    /// The tokens' `iss`; empty turns external tokens off.
    pub issuer: String,
    /// The `aud` the tokens must carry.
    pub audience: String,
    /// Key source 1: the HS256 secret shared with the identity provider.
    pub hs256_secret: String,
    /// Key source 2: the provider's public key (PEM: RSA, EC P-256/P-384 or Ed25519).
    pub public_key_pem: String,
    /// Key source 3: the provider's JWKS document (http or https).
    pub jwks_url: String,
    /// Accepted algorithms: one for a PEM key, the accepted set for a JWKS (a string or a
    /// list; empty: HS256 for a secret, RS256 otherwise). Never taken from a token.
    #[serde(deserialize_with = "super::one_or_many")]
    pub algorithm: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// The claim a new user's username comes from (then `name`, then `sub`).
    pub username_claim: String,
    /// Known external users kept in memory (found with no query).
    pub cache_size: usize,
    /// Least time between two JWKS fetches, seconds (an unknown `kid` fetches again).
    pub jwks_min_refetch_secs: u64,
    /// The JWKS is fetched again this often (removed keys stop being trusted), seconds.
    pub jwks_refresh_secs: u64,
    /// Time allowed for one JWKS fetch, seconds.
    pub jwks_timeout_secs: u64,
}

impl Default for ExternalAuthConfig {
    fn default() -> Self {
        ExternalAuthConfig {
            issuer: String::new(),
            audience: String::new(),
            hs256_secret: String::new(),
            public_key_pem: String::new(),
            jwks_url: String::new(),
            algorithm: Vec::new(),
            leeway_secs: 30,
            username_claim: "preferred_username".into(),
            cache_size: 100_000,
            jwks_min_refetch_secs: 30,
            jwks_refresh_secs: 600,
            jwks_timeout_secs: 5,
        }
    }
}

/// Where the keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `hs256_secret`
    Secret,
    /// `public_key_pem`
    Pem,
    /// `jwks_url`
    Jwks,
}

impl ExternalAuthConfig {
    /// True when external tokens are accepted.
    pub fn enabled(&self) -> bool {
        !self.issuer.is_empty()
    }

    /// The one key source configured.
    pub fn source(&self) -> Option<KeySource> {
        let set = [
            (!self.hs256_secret.is_empty()).then_some(KeySource::Secret),
            (!self.public_key_pem.trim().is_empty()).then_some(KeySource::Pem),
            (!self.jwks_url.is_empty()).then_some(KeySource::Jwks),
        ];
        let mut it = set.into_iter().flatten();
        match (it.next(), it.next()) {
            (Some(s), None) => Some(s),
            _ => None,
        }
    }

    /// The accepted algorithms, defaults applied (valid after [`ExternalAuthConfig::validate`]).
    pub fn algorithms(&self) -> Vec<Algorithm> {
        if self.algorithm.is_empty() {
            return vec![match self.source() {
                Some(KeySource::Secret) => Algorithm::HS256,
                _ => Algorithm::RS256,
            }];
        }
        self.algorithm
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    /// Checks the section; `access_secret` is the node's own token key.
    pub fn validate(&self, mode: Mode, access_secret: &str) -> Result<(), ConfigError> {
        if !self.enabled() {
            let stray = !self.audience.is_empty()
                || !self.hs256_secret.is_empty()
                || !self.public_key_pem.trim().is_empty()
                || !self.jwks_url.is_empty();
            if stray {
                return Err(invalid(
                    "auth.external.issuer",
                    "must be set for the other auth.external keys to take effect",
                ));
            }
            return Ok(());
        }
        if self.audience.is_empty() {
            return Err(invalid(
                "auth.external.audience",
                "must name the audience (`aud`) the identity provider puts in tokens for chatd",
            ));
        }
        let Some(source) = self.source() else {
            return Err(invalid(
                "auth.external",
                "set exactly one of hs256_secret, public_key_pem and jwks_url",
            ));
        };
        let mut algs = Vec::new();
        for name in &self.algorithm {
            match name.parse::<Algorithm>() {
                Ok(a) => algs.push(a),
                Err(_) => {
                    return Err(invalid(
                        "auth.external.algorithm",
                        format!("`{name}` is not a JWS algorithm (RS256, ES256, EdDSA, ...)"),
                    ));
                }
            }
        }
        let hmac = |a: &Algorithm| a.family() == AlgorithmFamily::Hmac;
        match source {
            KeySource::Secret => {
                if algs.iter().any(|a| *a != Algorithm::HS256) {
                    return Err(invalid(
                        "auth.external.algorithm",
                        "a shared secret signs with HS256 only",
                    ));
                }
                if self.hs256_secret == access_secret {
                    return Err(invalid(
                        "auth.external.hs256_secret",
                        "must differ from auth.access_secret: the provider could mint chatd's own tokens",
                    ));
                }
                if mode == Mode::Production && self.hs256_secret.len() < 32 {
                    return Err(invalid(
                        "auth.external.hs256_secret",
                        "production mode needs a secret of at least 32 bytes",
                    ));
                }
            }
            KeySource::Pem => {
                if algs.len() > 1 || algs.iter().any(hmac) {
                    return Err(invalid(
                        "auth.external.algorithm",
                        "a public key verifies one asymmetric algorithm (RS256, ES256, EdDSA, ...)",
                    ));
                }
            }
            KeySource::Jwks => {
                if algs.iter().any(hmac) {
                    return Err(invalid(
                        "auth.external.algorithm",
                        "a JWKS publishes public keys: HS256/384/512 are never accepted from it",
                    ));
                }
                http_url("auth.external.jwks_url", &self.jwks_url, 2048)
                    .map_err(|e| invalid("auth.external.jwks_url", e))?;
                if mode == Mode::Production
                    && !self.jwks_url.to_ascii_lowercase().starts_with("https://")
                {
                    return Err(invalid(
                        "auth.external.jwks_url",
                        "production mode fetches keys over https only",
                    ));
                }
            }
        }
        if self.username_claim.is_empty() {
            return Err(invalid("auth.external.username_claim", "must name a claim"));
        }
        range("auth.external.leeway_secs", self.leeway_secs, 0, 300)?;
        range("auth.external.cache_size", self.cache_size, 1, 10_000_000)?;
        range(
            "auth.external.jwks_min_refetch_secs",
            self.jwks_min_refetch_secs,
            1,
            3600,
        )?;
        range(
            "auth.external.jwks_refresh_secs",
            self.jwks_refresh_secs,
            10,
            86_400 * 7,
        )?;
        range(
            "auth.external.jwks_timeout_secs",
            self.jwks_timeout_secs,
            1,
            60,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> ExternalAuthConfig {
        ExternalAuthConfig {
            issuer: "https://id.example".into(),
            audience: "chatd".into(),
            jwks_url: "https://id.example/.well-known/jwks.json".into(),
            ..Default::default()
        }
    }

    #[test]
    fn one_key_source_and_sane_algorithms() {
        let dev = Mode::Development;
        on().validate(dev, "own").unwrap();
        assert_eq!(on().algorithms(), vec![Algorithm::RS256]);
        let off = ExternalAuthConfig::default();
        off.validate(dev, "own").unwrap();
        for (tweak, key) in [
            (
                (|c: &mut ExternalAuthConfig| c.audience.clear()) as fn(&mut ExternalAuthConfig),
                "audience",
            ),
            (|c| c.hs256_secret = "s".repeat(40), "exactly one"),
            (|c| c.algorithm = vec!["HS256".into()], "algorithm"),
            (|c| c.algorithm = vec!["none".into()], "algorithm"),
            (|c| c.jwks_url = "file:///etc/passwd".into(), "jwks_url"),
            (
                |c| c.jwks_url = "https://u:p@id.example/jwks".into(),
                "jwks_url",
            ),
            (|c| c.leeway_secs = 3600, "leeway"),
            (|c| c.cache_size = 0, "cache_size"),
            (|c| c.issuer.clear(), "issuer"),
        ] {
            let mut c = on();
            tweak(&mut c);
            let err = c.validate(dev, "own").unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let mut c = on();
        c.jwks_url = "http://127.0.0.1:9/jwks".into();
        c.validate(dev, "own").unwrap();
        assert!(
            c.validate(Mode::Production, "own").is_err(),
            "https in production"
        );
        let mut c = on();
        c.jwks_url.clear();
        c.hs256_secret = "own".into();
        assert!(
            c.validate(dev, "own")
                .unwrap_err()
                .to_string()
                .contains("access_secret")
        );
        c.hs256_secret = "shared".into();
        c.validate(dev, "own").unwrap();
        assert_eq!(c.algorithms(), vec![Algorithm::HS256]);
        assert!(c.validate(Mode::Production, "own").is_err(), "short secret");
        c.algorithm = vec!["RS256".into()];
        assert!(c.validate(dev, "own").is_err(), "a secret with RS256");
        let mut c = on();
        c.jwks_url.clear();
        c.public_key_pem = "(a PEM public key)".into();
        c.algorithm = vec!["ES256".into(), "RS256".into()];
        assert!(c.validate(dev, "own").is_err(), "one algorithm per key");
        c.algorithm = vec!["EdDSA".into()];
        c.validate(dev, "own").unwrap();
        assert_eq!(c.algorithms(), vec![Algorithm::EdDSA]);
    }
}
