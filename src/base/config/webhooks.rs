//! `[[webhooks]]`: the endpoints the operator sends events to,
//! and how the dead-letter routes are guarded until API keys exist.

use super::{ConfigError, invalid, range};
use crate::base::text::http_url;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Every event type an endpoint may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "message.created",
    "message.edited",
    "message.deleted",
    "reaction.added",
    "reaction.removed",
    "message.pinned",
    "message.unpinned",
    "member.joined",
    "member.left",
    "member.kicked",
    "member.banned",
    "member.muted",
    "member.role_changed",
    "room.created",
    "room.updated",
    "room.deleted",
    "user.created",
    "user.updated",
    "user.deactivated",
    "report.created",
    "notification.offline",
];

/// One `[[webhooks]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The endpoint's name: its identity in the database (cursors, outbox, dead
    /// letters) and in metrics; empty means the URL.
    pub name: String,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// The signing secret: `whsec_<base64>` (Standard Webhooks) or any other string,
    /// whose bytes are then the key.
    pub secret: String,
    /// Event types sent (`["*"]`: all).
    pub events: Vec<String>,
    /// Time allowed for one request, milliseconds.
    pub timeout_ms: u64,
    /// Attempts of one event before it is dead (0: only `max_age_hours` decides).
    pub max_attempts: u32,
    /// An event still failing this long after its first failure is dead.
    pub max_age_hours: u64,
    /// Requests in flight at once (each to a different room).
    pub concurrency: usize,
    /// Wait before the first retry, milliseconds; doubled for each further one (with
    /// jitter), up to an hour.
    pub retry_base_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            name: String::new(),
            url: String::new(),
            secret: String::new(),
            events: vec!["*".into()],
            timeout_ms: 5000,
            max_attempts: 0,
            max_age_hours: 24,
            concurrency: 4,
            retry_base_ms: 1000,
        }
    }
}

impl WebhookConfig {
    /// The endpoint's name (the URL when none is set).
    pub fn id(&self) -> &str {
        if self.name.is_empty() {
            &self.url
        } else {
            &self.name
        }
    }

    /// The HMAC key: the base64-decoded part after `whsec_`, else the secret's bytes.
    pub fn key(&self) -> Vec<u8> {
        match self.secret.strip_prefix("whsec_") {
            Some(b64) => STANDARD.decode(b64).unwrap_or_default(),
            None => self.secret.as_bytes().to_vec(),
        }
    }

    /// Whether events of type `t` go to this endpoint.
    pub fn wants(&self, t: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == t)
    }
}

/// Checks every endpoint and that names are unique.
pub fn validate(hooks: &[WebhookConfig]) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    for h in hooks {
        http_url("webhooks.url", &h.url, 2048).map_err(|e| invalid("webhooks.url", e))?;
        if h.name.chars().count() > 200 || h.name.chars().any(char::is_control) {
            return Err(invalid(
                "webhooks.name",
                "at most 200 characters, no control characters",
            ));
        }
        if !names.insert(h.id().to_string()) {
            return Err(invalid(
                "webhooks.name",
                format!("`{}` names two endpoints (set distinct names)", h.id()),
            ));
        }
        match h.secret.strip_prefix("whsec_") {
            Some(b64) => match STANDARD.decode(b64) {
                Ok(k) if k.len() >= 24 => {}
                Ok(_) => {
                    return Err(invalid(
                        "webhooks.secret",
                        "a whsec_ secret must hold at least 24 bytes (Standard Webhooks)",
                    ));
                }
                Err(_) => {
                    return Err(invalid(
                        "webhooks.secret",
                        "after whsec_ comes the key in standard base64",
                    ));
                }
            },
            None if h.secret.len() < 16 => {
                return Err(invalid(
                    "webhooks.secret",
                    "at least 16 bytes (or whsec_<base64> as Standard Webhooks generates)",
                ));
            }
            None => {}
        }
        if h.events.is_empty() {
            return Err(invalid("webhooks.events", "list event types, or [\"*\"]"));
        }
        for e in &h.events {
            if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
                return Err(invalid(
                    "webhooks.events",
                    format!("`{e}` is not an event type ({})", EVENT_TYPES.join(", ")),
                ));
            }
        }
        range("webhooks.timeout_ms", h.timeout_ms, 100, 60_000)?;
        range("webhooks.max_age_hours", h.max_age_hours, 1, 24 * 30)?;
        range("webhooks.max_attempts", h.max_attempts, 0, 1000)?;
        range("webhooks.concurrency", h.concurrency, 1, 64)?;
        range("webhooks.retry_base_ms", h.retry_base_ms, 10, 600_000)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, secret: &str) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn webhook_urls_secrets_and_events_are_checked() {
        let ok = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(validate(&[hook("https://example.com/hook", ok)]).is_ok());
        assert!(validate(&[hook("http://127.0.0.1:9/x", "raw-secret-0123456789")]).is_ok());
        for (url, secret) in [
            ("ftp://example.com/", ok),
            ("https://user@example.com/", ok),
            ("https://example.com/", "whsec_%%%"),
            ("https://example.com/", "whsec_c2hvcnQ="),
            ("https://example.com/", "short"),
        ] {
            assert!(validate(&[hook(url, secret)]).is_err(), "{url} {secret}");
        }
        let mut bad = hook("https://example.com/", ok);
        bad.events = vec!["message.sent".into()];
        assert!(validate(&[bad]).is_err());
        let two = [
            hook("https://a.example/", ok),
            hook("https://a.example/", ok),
        ];
        assert!(validate(&two).is_err());
        assert_eq!(hook("https://a.example/", ok).key().len(), 24);
        assert_eq!(hook("https://a.example/", "raw").key(), b"raw");
    }
}
