//! Password hashing with argon2id; runs only on the auth worker threads.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// A configured argon2id hasher.
#[derive(Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    /// A real hash of a random password, verified against when the account does not
    /// exist so that login takes as long for an unknown email as for a wrong password.
    dummy: String,
}

impl Hasher {
    /// Builds a hasher with the given cost.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Hasher, String> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut h = Hasher {
            argon,
            dummy: String::new(),
        };
        h.dummy = h.hash(&uuid::Uuid::new_v4().to_string())?;
        Ok(h)
    }

    /// Hashes a password into a PHC string.
    pub fn hash(&self, password: &str) -> Result<String, String> {
        self.argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| format!("argon2: {e}"))
    }

    /// Checks a password against a stored hash (or the dummy when there is none).
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let hash = stored.unwrap_or(&self.dummy);
        let ok = self
            .argon
            .verify_password(password.as_bytes(), hash)
            .is_ok();
        ok && stored.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = Hasher::new(1024, 1, 1).unwrap();
        let stored = h.hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(h.verify("correct horse", Some(&stored)));
        assert!(!h.verify("wrong horse", Some(&stored)));
        assert!(!h.verify("correct horse", None));
    }
}
