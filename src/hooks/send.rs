//! One delivery attempt: the Standard Webhooks signature and the POST. Runs on an
//! endpoint's sender threads, never on an event loop.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Most bytes of a receiver's answer read (the rest is dropped with the connection).
const MAX_ANSWER_BYTES: u64 = 64 << 10;

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with `key`.
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        // HMAC takes keys of any length: never reached.
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// An HTTP client for one sender thread: its timeout, no redirects, statuses as values,
/// and its one keep-alive connection. (One agent shared by the senders kept at most 3
/// idle connections per host: with more senders than that, most requests opened a new
/// connection, with a TCP handshake, a resolver thread and the receiver's accept.)
pub fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_idle_connections(1)
        .max_idle_connections_per_host(1)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("chatd-webhooks/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        CachedResolver::default(),
    )
}

/// How long a resolved address of the endpoint is used before it is looked up again.
const RESOLVE_TTL: Duration = Duration::from_secs(30);

/// ureq resolves the host before every request, even one that goes on a kept
/// connection, and with a timeout it does so on a thread of its own: a thread started
/// per event. This keeps the last answer for [`RESOLVE_TTL`].
#[derive(Debug, Default)]
struct CachedResolver {
    inner: DefaultResolver,
    last: Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        if let Ok(last) = self.last.lock()
            && let Some((k, at, addrs)) = &*last
            && *k == key
            && at.elapsed() < RESOLVE_TTL
        {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((key, Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }
}

/// POSTs `body` as event `id`, signed now; `Err` says why it did not count as
/// delivered (any answer but 2xx, a timeout, a connection error).
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    key: &[u8],
    id: &str,
    body: &str,
) -> Result<(), String> {
    let ts = crate::base::model::now_secs();
    let resp = agent
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature(key, id, ts, body))
        .send(body)
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // Read the answer so that the connection can carry the next request.
    let mut sink = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut sink);
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
