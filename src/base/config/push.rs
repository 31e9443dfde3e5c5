//! `[push]`: Web Push to members who are offline (and the `notification.offline`
//! webhook event, which needs no key).

use super::{ConfigError, Mode, invalid, range};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// `[push]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// The VAPID private key (RFC 8292): a P-256 scalar, 32 bytes base64url. Empty in
    /// development: one is made and kept in `.local/vapid-private-key`; empty in
    /// production: Web Push is off (the webhook event still goes).
    pub vapid_private_key: String,
    /// Who runs this server, for push services to reach: `mailto:` or `https:`.
    pub subject: String,
    /// A member is notified once it has had no socket for this long after a message.
    pub grace_secs: u64,
    /// At most one push per (member, room) in this window; messages in between are
    /// sent together in the next.
    pub window_secs: u64,
    /// Accept subscription endpoints over http and on loopback or private addresses
    /// (tests and closed networks only: otherwise a client could make the server
    /// request its internal services).
    pub allow_private_endpoints: bool,
    /// Most subscriptions per user (browsers and devices).
    pub max_subscriptions_per_user: u32,
    /// Time allowed for one request to a push service, milliseconds.
    pub timeout_ms: u64,
    /// A push the push service has not accepted this long after its notification was
    /// due is given up (counted in `chatd_push_dropped_total`); also its `TTL`.
    pub max_age_hours: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            vapid_private_key: String::new(),
            subject: "mailto:admin@localhost".into(),
            grace_secs: 10,
            window_secs: 60,
            allow_private_endpoints: false,
            max_subscriptions_per_user: 10,
            timeout_ms: 10_000,
            max_age_hours: 24,
        }
    }
}

impl PushConfig {
    /// Checks the keys.
    pub fn validate(&self, mode: Mode) -> Result<(), ConfigError> {
        let key = self.vapid_private_key.trim().trim_end_matches('=');
        if !key.is_empty() && URL_SAFE_NO_PAD.decode(key).map(|k| k.len()) != Ok(32) {
            return Err(invalid(
                "push.vapid_private_key",
                "must be 32 bytes in base64url (a P-256 private key; see OPERATIONS.md)",
            ));
        }
        if !(self.subject.starts_with("mailto:") || self.subject.starts_with("https://")) {
            return Err(invalid(
                "push.subject",
                "must start with mailto: or https://",
            ));
        }
        if mode == Mode::Production
            && self.subject == PushConfig::default().subject
            && !key.is_empty()
        {
            return Err(invalid(
                "push.subject",
                "production mode needs a contact push services can reach",
            ));
        }
        range("push.grace_secs", self.grace_secs, 0, 3600)?;
        range("push.window_secs", self.window_secs, 0, 86_400)?;
        range(
            "push.max_subscriptions_per_user",
            self.max_subscriptions_per_user,
            1,
            100,
        )?;
        range("push.max_age_hours", self.max_age_hours, 1, 24 * 28)?;
        range("push.timeout_ms", self.timeout_ms, 100, 120_000)
    }
}
