//! Offline notifications at start: the VAPID key (configured, or in development made
//! once and kept in `.local/`, where run.sh keeps the other development secrets, so a
//! restart keeps the browsers' subscriptions valid) and the notifier thread.

use super::StartError;
use crate::base::config::{Config, Mode};
use crate::base::metrics::Metrics;
use crate::hooks::notifier::{self, NotifierThread};
use crate::hooks::pusher::{self, PusherThread};
use crate::hooks::webpush;
use p256::SecretKey;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a development node keeps the VAPID key it made.
const DEV_KEY_FILE: &str = ".local/vapid-private-key";

/// The VAPID key: `[push] vapid_private_key`; in development without one, the key kept
/// in `.local/` (made on first use); in production without one, none (Web Push off).
pub fn vapid_key(cfg: &Config) -> Result<Option<SecretKey>, StartError> {
    let configured = cfg.push.vapid_private_key.trim();
    if !configured.is_empty() {
        return webpush::key_from_b64(configured)
            .map(Some)
            .map_err(|e| StartError::Config(format!("push.vapid_private_key: {}", e.0)));
    }
    if cfg.mode == Mode::Production {
        log::warn!("push.vapid_private_key is not set: Web Push is off");
        return Ok(None);
    }
    Ok(Some(dev_key(Path::new(DEV_KEY_FILE))))
}

/// The development key kept at `path`, made if there is none. Two nodes starting at
/// once agree: the key is written to a file of its own and linked into place, which
/// fails for the second, which then reads the first's.
fn dev_key(path: &Path) -> SecretKey {
    if let Some(k) = read_key(path) {
        return k;
    }
    let key = webpush::generate_key();
    let made = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, webpush::key_to_b64(&key))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        linked
    })();
    match made {
        Ok(()) => {
            log::info!("development VAPID key written to {}", path.display());
            key
        }
        Err(_) => read_key(path).unwrap_or_else(|| {
            log::warn!(
                "cannot keep a VAPID key in {}: this one lasts until exit",
                path.display()
            );
            key
        }),
    }
}

fn read_key(path: &Path) -> Option<SecretKey> {
    let text = std::fs::read_to_string(path).ok()?;
    webpush::key_from_b64(&text).ok()
}

/// Starts the notifier when there is somewhere to notify (Web Push on, or a webhook
/// endpoint taking `notification.offline`), and with Web Push on the pusher, which
/// makes the requests of the push outbox (every node runs one, whichever node's
/// notifier wrote them).
pub fn start(
    cfg: &Config,
    vapid: Option<SecretKey>,
    metrics: &Arc<Metrics>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, StartError> {
    let webhooks = cfg.webhooks.iter().any(|h| h.wants("notification.offline"));
    let mut threads = Vec::new();
    let connect_timeout = Duration::from_secs(cfg.database.connect_timeout_secs);
    let mut wake = None;
    if let Some(key) = vapid {
        // One nudge waiting is enough: the pusher looks at the whole outbox.
        let (tx, rx) = crossbeam_channel::bounded(1);
        wake = Some(tx);
        let t = PusherThread {
            cfg: cfg.push.clone(),
            key,
            db_url: cfg.database.url.clone(),
            connect_timeout,
            metrics: metrics.push.clone(),
            wake: rx,
            stop: stop.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("pusher".into())
                .spawn(move || pusher::run(t))?,
        );
    }
    if wake.is_none() && !webhooks {
        return Ok(threads);
    }
    let t = NotifierThread {
        cfg: cfg.push.clone(),
        pusher: wake,
        webhooks,
        mentions_only_above: cfg.notifications.mentions_only_above_members,
        db_url: cfg.database.url.clone(),
        connect_timeout,
        stop: stop.clone(),
    };
    threads.push(
        std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || notifier::run(t))?,
    );
    Ok(threads)
}
