//! The identity provider's public keys, from its JWKS document.
//!
//! Fetched with a blocking client on a thread of their own (never an event loop): at
//! start, every refresh interval, and when a token names a `kid` not held (at most once
//! per `min_refetch`, so random kids cannot make chatd hammer the provider). Keys are
//! kept by (issuer, kid), never by kid alone, each with the algorithms it may verify:
//! the configured set narrowed by the key's own type, curve and declared `alg`. A
//! shared secret (`kty: oct`) in a public document is never trusted. A failed fetch
//! keeps the keys last fetched.

use crate::base::metrics::Metrics;
use crossbeam_channel::{Receiver, Sender};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Largest JWKS document read.
const MAX_DOCUMENT_BYTES: u64 = 1 << 20;
/// Most workers waiting for a fetch at once; a request beyond it is refused at once.
const MAX_WAITERS: usize = 4;

/// A verification key and the checks that go with it (its algorithms pinned).
pub struct Key {
    /// The key.
    pub decoding: DecodingKey,
    /// Issuer, audience, times, and the algorithms this key may verify.
    pub validation: Validation,
}

/// Keys by issuer, then kid.
type KeyMap = HashMap<String, HashMap<String, Arc<Key>>>;

/// What a token's kid finds.
pub enum Lookup {
    /// The key.
    Found(Arc<Key>),
    /// Not held; a fetch is under way: wait (on a worker) for the generation after this one.
    Fetching(u64),
    /// Not held, and fetching again is not allowed yet.
    Unknown,
}

struct State {
    /// Fetches completed (successful or not).
    generation: u64,
    in_flight: bool,
    last_start: Option<Instant>,
}

/// The key set of one JWKS URL and the means to fetch it again.
pub struct Jwks {
    url: String,
    issuer: String,
    allowed: Vec<Algorithm>,
    base: Validation,
    keys: RwLock<Arc<KeyMap>>,
    /// Bumped each time the keys are replaced.
    replaced: AtomicU64,
    state: Mutex<State>,
    fetched: Condvar,
    wake: Sender<()>,
    waiting: AtomicUsize,
    min_refetch: Duration,
    refresh: Duration,
    agent: ureq::Agent,
    metrics: Arc<Metrics>,
}

/// How a [`Jwks`] fetches.
pub struct JwksConfig {
    /// The document's URL.
    pub url: String,
    /// The issuer whose keys these are.
    pub issuer: String,
    /// Algorithms accepted at all.
    pub allowed: Vec<Algorithm>,
    /// Claims checks shared by every key (the algorithms are set per key).
    pub base: Validation,
    /// Least time between two fetches.
    pub min_refetch: Duration,
    /// Fetch again this often.
    pub refresh: Duration,
    /// Time allowed for one fetch.
    pub timeout: Duration,
}

impl Jwks {
    /// A key set holding no key yet, and the receiving end of its fetch requests (for [`Jwks::run`]).
    pub fn new(cfg: JwksConfig, metrics: Arc<Metrics>) -> (Arc<Jwks>, Receiver<()>) {
        let (wake, rx) = crossbeam_channel::bounded(1);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .max_redirects(0)
            .http_status_as_error(true)
            .user_agent(concat!("chatd/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let jwks = Jwks {
            url: cfg.url,
            issuer: cfg.issuer,
            allowed: cfg.allowed,
            base: cfg.base,
            keys: RwLock::new(Arc::new(HashMap::new())),
            replaced: AtomicU64::new(0),
            state: Mutex::new(State {
                generation: 0,
                in_flight: false,
                last_start: None,
            }),
            fetched: Condvar::new(),
            wake,
            waiting: AtomicUsize::new(0),
            min_refetch: cfg.min_refetch,
            refresh: cfg.refresh,
            agent,
            metrics,
        };
        (Arc::new(jwks), rx)
    }

    /// The key `kid` of `issuer` (cheap, never blocks on I/O: safe on an event loop).
    /// When it is not held, asks the fetch thread for the document again unless that
    /// was done less than `min_refetch` ago.
    pub fn lookup(&self, issuer: &str, kid: &str) -> Lookup {
        let held = self
            .keys
            .read()
            .ok()
            .and_then(|k| k.get(issuer).and_then(|m| m.get(kid)).cloned());
        if let Some(key) = held {
            return Lookup::Found(key);
        }
        if issuer != self.issuer {
            return Lookup::Unknown;
        }
        let Ok(mut st) = self.state.lock() else {
            return Lookup::Unknown;
        };
        if st.in_flight {
            return Lookup::Fetching(st.generation);
        }
        if st
            .last_start
            .is_none_or(|t| t.elapsed() >= self.min_refetch)
        {
            st.in_flight = true;
            st.last_start = Some(Instant::now());
            // A request already queued does the same work.
            let _ = self.wake.try_send(());
            return Lookup::Fetching(st.generation);
        }
        drop(st);
        self.refused();
        Lookup::Unknown
    }

    /// How many times the keys were replaced: what was verified under an older set is
    /// verified again.
    pub fn generation(&self) -> u64 {
        self.replaced.load(Ordering::Acquire)
    }

    /// Counts a token refused for want of its key.
    pub fn refused(&self) {
        self.metrics
            .identity
            .jwks_unknown_kid
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Waits (on a worker, never a loop) until the fetch after generation `after` has
    /// ended, at most `max`; returns at once when too many already wait.
    pub fn wait(&self, after: u64, max: Duration) {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITERS {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let deadline = Instant::now() + max;
        if let Ok(mut st) = self.state.lock() {
            while st.generation <= after && st.in_flight {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.fetched.wait_timeout(st, left) {
                    Ok((s, _)) => st = s,
                    Err(_) => break,
                }
            }
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Fetches the document now and keeps its keys (or, on failure, the keys held).
    /// Blocking: the fetch thread and start-up only.
    pub fn fetch_now(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.in_flight = true;
            st.last_start = Some(Instant::now());
        }
        let m = &self.metrics.identity;
        m.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch() {
            Ok(map) => {
                let n: usize = map.values().map(HashMap::len).sum();
                m.jwks_keys.store(n as u64, Ordering::Relaxed);
                if let Ok(mut k) = self.keys.write() {
                    *k = Arc::new(map);
                }
                self.replaced.fetch_add(1, Ordering::AcqRel);
                log::debug!("JWKS {}: {n} keys", self.url);
            }
            Err(e) => {
                m.jwks_failures.fetch_add(1, Ordering::Relaxed);
                log::warn!("JWKS {}: {e}; keeping the keys last fetched", self.url);
            }
        }
        if let Ok(mut st) = self.state.lock() {
            st.generation += 1;
            st.in_flight = false;
        }
        self.fetched.notify_all();
    }

    fn fetch(&self) -> Result<KeyMap, String> {
        let mut resp = self
            .agent
            .get(&self.url)
            .header("accept", "application/json")
            .call()
            .map_err(|e| e.to_string())?;
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT_BYTES)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let keys = parse(&text, &self.allowed, &self.base)?;
        if keys.is_empty() {
            return Err("no usable signing key in the document".into());
        }
        Ok(HashMap::from([(self.issuer.clone(), keys)]))
    }

    /// The fetch thread: a fetch on each request from [`Jwks::lookup`] and every
    /// refresh interval, until `stop`.
    pub fn run(self: Arc<Self>, rx: Receiver<()>, stop: Arc<AtomicBool>) {
        let tick = Duration::from_millis(250);
        let mut last = Instant::now();
        while !stop.load(Ordering::Acquire) {
            match rx.recv_timeout(tick) {
                Ok(()) => {}
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if last.elapsed() < self.refresh {
                        continue;
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
            self.fetch_now();
            last = Instant::now();
        }
    }
}

/// The usable signing keys of a JWKS document by kid (a key without `kid` under ""),
/// each allowed the algorithms of `allowed` that its type, curve and declared `alg`
/// permit. Keys of other types, for encryption, or that do not parse are skipped.
pub fn parse(
    text: &str,
    allowed: &[Algorithm],
    base: &Validation,
) -> Result<HashMap<String, Arc<Key>>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut out = HashMap::new();
    for v in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(v) else {
            continue;
        };
        if let Some((kid, key)) = key(&jwk, allowed, base) {
            out.entry(kid).or_insert_with(|| Arc::new(key));
        }
    }
    Ok(out)
}

fn key(jwk: &Jwk, allowed: &[Algorithm], base: &Validation) -> Option<(String, Key)> {
    use Algorithm::*;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[ES256],
            EllipticCurve::P384 => &[ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[EdDSA],
        _ => &[],
    };
    let mut algorithms: Vec<Algorithm> = allowed
        .iter()
        .filter(|a| family.contains(a))
        .copied()
        .collect();
    if let Some(declared) = jwk.common.key_algorithm {
        let declared: Algorithm = declared.to_string().parse().ok()?;
        algorithms.retain(|a| *a == declared);
    }
    if algorithms.is_empty() {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    let mut validation = base.clone();
    validation.algorithms = algorithms;
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    Some((
        kid,
        Key {
            decoding,
            validation,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn algs(doc: serde_json::Value, allowed: &[Algorithm]) -> Vec<(String, Vec<Algorithm>)> {
        let mut v: Vec<_> = parse(
            &doc.to_string(),
            allowed,
            &Validation::new(Algorithm::RS256),
        )
        .unwrap()
        .into_iter()
        .map(|(k, key)| (k, key.validation.algorithms.clone()))
        .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn keys_get_only_the_algorithms_their_type_allows() {
        // A 2048-bit modulus is not needed to parse: any base64url value will do.
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "r-ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "e", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "kid": "d", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "weird", "kid": "w"},
            {"kty": "RSA", "kid": "bad-alg", "alg": "RSA-OAEP", "n": n, "e": "AQAB"},
        ]});
        use Algorithm::*;
        assert_eq!(
            algs(doc.clone(), &[RS256, ES256, EdDSA, HS256]),
            vec![
                ("d".into(), vec![EdDSA]),
                ("e".into(), vec![ES256]),
                ("r".into(), vec![RS256]),
            ]
        );
        assert_eq!(
            algs(doc, &[RS256, PS256]),
            vec![
                ("r".into(), vec![RS256, PS256]),
                ("r-ps".into(), vec![PS256])
            ]
        );
        assert!(parse("{}", &[RS256], &Validation::new(RS256)).is_err());
        assert!(parse("not json", &[RS256], &Validation::new(RS256)).is_err());
    }
}
