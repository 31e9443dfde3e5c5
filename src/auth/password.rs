//! Password hashing with argon2id; runs only on the auth worker threads.
//!
//! Each thread hashes in a work area of its own that it keeps (`argon2_memory_kib`,
//! 19 MiB by default): the memory is allocated once per thread instead of per hash.
//! Freed per hash, glibc kept such blocks in its arenas anyway (a node sat at ~200 MB
//! after a burst of logins) and a fresh block costs its page faults on every hash.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;

thread_local! {
    /// This thread's argon2 work area, grown to the largest cost it has hashed with.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 with `params` into `out`, in this thread's work area.
fn hash_into(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let n = params.block_count();
        if blocks.len() < n {
            blocks.resize(n, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..n])
    })
}

/// A configured argon2id hasher.
#[derive(Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    params: Params,
    /// A real hash of a random password, verified against when the account does not
    /// exist so that login takes as long for an unknown email as for a wrong password.
    dummy: String,
}

impl Hasher {
    /// Builds a hasher with the given cost.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Hasher, String> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut h = Hasher {
            argon,
            params,
            dummy: String::new(),
        };
        h.dummy = h.hash(&uuid::Uuid::new_v4().to_string())?;
        // This thread is not an auth worker: give its work area back.
        BLOCKS.with(|b| *b.borrow_mut() = Vec::new());
        Ok(h)
    }

    /// Hashes a password into a PHC string.
    pub fn hash(&self, password: &str) -> Result<String, String> {
        let salt = Salt::generate();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        hash_into(
            &self.argon,
            &self.params,
            password.as_bytes(),
            &salt,
            &mut out,
        )
        .map_err(|e| format!("argon2: {e}"))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| format!("argon2: {e}"))?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| format!("argon2: {e}"))?),
        };
        Ok(phc.to_string())
    }

    /// Checks a password against a stored hash (or the dummy when there is none).
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let hash = stored.unwrap_or(&self.dummy);
        let ok = matches(password, hash).unwrap_or(false);
        ok && stored.is_some()
    }
}

/// Whether `password` hashes to the stored PHC string, with the algorithm, version and
/// cost recorded in it (hashes made under an older configuration still verify); `None`
/// when the string is not a usable argon2 hash.
fn matches(password: &str, stored: &str) -> Option<bool> {
    let phc = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).ok()?;
    let version = match phc.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&phc).ok()?;
    let (salt, expected) = (phc.salt.as_ref()?, phc.hash.as_ref()?);
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    hash_into(&argon, &params, password.as_bytes(), salt, &mut out).ok()?;
    // Output's equality is constant-time.
    Some(Output::new(&out).ok()? == *expected)
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
        assert!(!h.verify("correct horse", Some("not a hash")));
    }

    #[test]
    fn hashes_agree_with_the_argon2_crate() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let h = Hasher::new(2048, 2, 1).unwrap();
        // Ours verify with the crate's own verifier...
        let ours = h.hash("s3cret").unwrap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2048, 2, 1, None).unwrap(),
        );
        assert!(reference.verify_password(b"s3cret", ours.as_str()).is_ok());
        assert!(
            reference
                .verify_password(b"s3cret!", ours.as_str())
                .is_err()
        );
        // ...and the crate's verify with ours, also under other costs than the hasher's.
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"other")
        .unwrap()
        .to_string();
        assert!(h.verify("other", Some(&theirs)));
        assert!(!h.verify("others", Some(&theirs)));
        // Each thread reuses its work area across costs.
        assert!(h.verify("s3cret", Some(&ours)));
    }
}
