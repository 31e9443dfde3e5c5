//! The settings every node of a cluster must share. A node applies them on its own
//! (retention deletes by its period, edits are allowed within its window, tokens are
//! checked with its secrets), so two nodes with different values run two policies on one
//! database: a node with `retention.max_age_days = 1` deletes what the others keep. Each
//! is recorded in the database (`settings`) by the first node, and a node whose value
//! differs from the recorded one while other nodes run is refused at start-up; with no
//! node running, its value becomes the recorded one (docs/OPERATIONS.md, section 3.14).

use crate::base::config::Config;
use sha2::{Digest, Sha256};

/// One setting every node must share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSetting {
    /// Its key in the `settings` table.
    pub stored: &'static str,
    /// The configuration key it comes from (named when nodes disagree).
    pub key: &'static str,
    /// This node's value; a secret's keyed fingerprint, never the secret.
    pub value: String,
    /// Whether the value is a fingerprint (never printed).
    pub secret: bool,
}

/// The shared settings of `cfg` with this node's values. Secrets are included unless
/// `generated` (development mode's per-process secrets, which no other node has).
pub fn shared(cfg: &Config, generated: bool) -> Vec<ClusterSetting> {
    let plain = |stored, key, value: String| ClusterSetting {
        stored,
        key,
        value,
        secret: false,
    };
    let mut out = vec![
        plain(
            "notify_shards",
            "database.notify_shards",
            cfg.database.notify_shards.to_string(),
        ),
        plain(
            "search_language",
            "messages.search_language",
            cfg.messages.search_language.clone(),
        ),
        plain(
            "retention.max_age_days",
            "retention.max_age_days",
            cfg.retention.max_age_days.to_string(),
        ),
        plain(
            "messages.edit_window_secs",
            "messages.edit_window_secs",
            cfg.messages.edit_window_secs.to_string(),
        ),
        plain(
            "messages.max_reactions",
            "messages.max_reactions",
            cfg.messages.max_reactions.to_string(),
        ),
        plain(
            "messages.max_attachments",
            "messages.max_attachments",
            cfg.messages.max_attachments.to_string(),
        ),
        plain(
            "messages.max_pins",
            "messages.max_pins",
            cfg.messages.max_pins.to_string(),
        ),
        plain(
            "auth.access_ttl_secs",
            "auth.access_ttl_secs",
            cfg.auth.access_ttl_secs.to_string(),
        ),
        plain(
            "auth.refresh_grace_secs",
            "auth.refresh_grace_secs",
            cfg.auth.refresh_grace_secs.to_string(),
        ),
        plain(
            "rooms.receipts_max_members",
            "rooms.receipts_max_members",
            cfg.rooms.receipts_max_members.to_string(),
        ),
        plain(
            "presence.heartbeat_secs",
            "presence.heartbeat_secs",
            cfg.presence.heartbeat_secs.to_string(),
        ),
        plain(
            "presence.node_timeout_secs",
            "presence.node_timeout_secs",
            cfg.presence.node_timeout_secs.to_string(),
        ),
        plain(
            "push.window",
            "push.grace_secs, push.window_secs",
            format!("{}/{}", cfg.push.grace_secs, cfg.push.window_secs),
        ),
    ];
    out.push(webhooks(cfg));
    // The key browsers subscribed with: another one on a node would make every push it
    // sends refused. A development node's key is kept in .local/ (not compared).
    if !cfg.push.vapid_private_key.is_empty() {
        out.push(ClusterSetting {
            stored: "push.vapid_private_key",
            key: "push.vapid_private_key",
            value: fingerprint(cfg.push.vapid_private_key.trim()),
            secret: true,
        });
    }
    // The key of signed file URLs: a node with another would refuse the URLs the others
    // sign. Without one it is derived from auth.access_secret (compared below), and a
    // node with one and a node without differ too.
    let url = &cfg.files.url_secret;
    out.push(ClusterSetting {
        stored: "files.url_secret",
        key: "files.url_secret",
        value: if url.is_empty() {
            "derived".into()
        } else {
            fingerprint(url)
        },
        secret: !url.is_empty(),
    });
    if !generated {
        for (stored, secret) in [
            ("auth.access_secret", &cfg.auth.access_secret),
            ("auth.refresh_secret", &cfg.auth.refresh_secret),
        ] {
            out.push(ClusterSetting {
                stored,
                key: stored,
                value: fingerprint(secret),
                secret: true,
            });
        }
    }
    out
}

/// The `[[webhooks]]` endpoints: a node with other endpoints would forget the others'
/// cursors at start-up and take events of another set. A fingerprint, since it covers
/// the secrets; `none` when there is no endpoint.
fn webhooks(cfg: &Config) -> ClusterSetting {
    let (value, secret) = if cfg.webhooks.is_empty() {
        ("none".to_string(), false)
    } else {
        let all: Vec<String> = cfg
            .webhooks
            .iter()
            .map(|h| {
                let mut events = h.events.clone();
                events.sort();
                format!(
                    "{}\n{}\n{}\n{}\n{}/{}/{}/{}",
                    h.id(),
                    h.url,
                    h.secret,
                    events.join(","),
                    h.timeout_ms,
                    h.max_attempts,
                    h.max_age_hours,
                    h.concurrency
                )
            })
            .collect();
        (fingerprint(&all.join("\n\n")), true)
    };
    ClusterSetting {
        stored: "webhooks",
        key: "webhooks",
        value,
        secret,
    }
}

/// A secret's keyed fingerprint: HMAC-SHA-256 keyed with the secret over a fixed label,
/// hex. Equal secrets give equal fingerprints; the fingerprint gives nothing a token
/// signed with the secret does not already give.
pub fn fingerprint(secret: &str) -> String {
    hmac_sha256(secret.as_bytes(), b"chatd cluster secret fingerprint v1")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fingerprinted_not_stored() {
        let mut cfg = Config::default();
        cfg.auth.access_secret = "an-access-secret-0123456789abcdef".into();
        cfg.auth.refresh_secret = "a-refresh-secret-0123456789abcdef".into();
        let all = shared(&cfg, false);
        let access = all.iter().find(|s| s.key == "auth.access_secret").unwrap();
        assert!(access.secret && !access.value.contains("access"));
        assert_eq!(access.value.len(), 64);
        assert_eq!(access.value, fingerprint(&cfg.auth.access_secret));
        assert_ne!(access.value, fingerprint("another"));
        assert!(shared(&cfg, true).iter().all(|s| !s.secret));
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
