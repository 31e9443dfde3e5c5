//! The LISTEN thread: one connection of its own (never from the pool, never through a
//! transaction pooler) receives every notification, decodes it, and hands the typed
//! value to the [`Sink`] it was given. It never waits on its consumers, so
//! PostgreSQL's notification queue is always drained.

use crate::base::metrics::Metrics;
use crate::base::model::Message;
use crate::pg::messages;
use crate::pg::notify::{self, EVENTS_CHANNEL, Event, MESSAGES_CHANNEL, Notification};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// Most notifications handled before looking at the stop flag again.
const BATCH: usize = 4096;

/// Where the listener hands what it receives.
pub trait Sink: Send + Sync {
    /// Whether anyone here wants the messages of `room` (asked before a batch that
    /// travelled as a pointer is read from the database).
    fn wants(&self, room: Uuid) -> bool;
    /// A room's newly stored messages, ascending.
    fn messages(&self, room: Uuid, msgs: Vec<Arc<Message>>);
    /// Any other event.
    fn event(&self, event: Event);
    /// The listener is connected and LISTENing again: what committed while it was away
    /// must be fetched before live delivery resumes.
    fn resync(&self);
    /// Whether the listener is connected (readiness).
    fn connected(&self, up: bool);
}

/// What the listener needs to run.
pub struct Listener {
    /// Database URL.
    pub url: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// How far back revocations still matter (the access token lifetime and a margin).
    pub revoked_window: Duration,
    /// Set when the node shuts down.
    pub stop: Arc<AtomicBool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Sessions revoked within `window`: their access tokens may still be unexpired.
pub fn revoked_since(c: &mut Client, window: Duration) -> Result<Vec<Uuid>, postgres::Error> {
    Ok(c.query(
        "SELECT id FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)",
        &[&window.as_secs_f64()],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

impl Listener {
    /// Runs until the node shuts down, reconnecting with backoff.
    pub fn run(self, sink: Arc<dyn Sink>) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        while !self.stop.load(Ordering::Acquire) {
            match self.connect(&*sink) {
                Ok(mut client) => {
                    backoff = Duration::from_millis(100);
                    if !first {
                        self.metrics
                            .listener_reconnects
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    first = false;
                    // LISTEN is active: whatever commits from now on is notified, and the
                    // resync fetches whatever was committed while we were away.
                    sink.resync();
                    sink.connected(true);
                    log::info!("listener connected");
                    if let Err(e) = self.listen_loop(&mut client, &*sink) {
                        log::warn!("listener connection lost: {e}");
                    }
                    sink.connected(false);
                }
                Err(e) => log::warn!("listener cannot connect: {e}"),
            }
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn connect(&self, sink: &dyn Sink) -> Result<Client, postgres::Error> {
        let mut config: postgres::Config = self.url.parse()?;
        config.connect_timeout(self.connect_timeout);
        config.application_name("chatd-listener");
        // Detect a silently dead server instead of waiting forever for notifications.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let mut client = config.connect(NoTls)?;
        client.batch_execute(&format!(
            "LISTEN {MESSAGES_CHANNEL}; LISTEN {EVENTS_CHANNEL};"
        ))?;
        // Sessions revoked while we were away.
        let revoked = revoked_since(&mut client, self.revoked_window)?;
        if !revoked.is_empty() {
            sink.event(Event::Revoke { sessions: revoked });
        }
        Ok(client)
    }

    fn listen_loop(&self, client: &mut Client, sink: &dyn Sink) -> Result<(), postgres::Error> {
        let mut batch = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            {
                let mut notes = client.notifications();
                // `timeout_iter` hides a lost connection as a timeout: check it directly.
                let first = notes.timeout_iter(Duration::from_millis(500)).next()?;
                match first {
                    Some(n) => batch.push(n),
                    None => {
                        drop(notes);
                        if client.is_closed() {
                            return client.batch_execute("SELECT 1");
                        }
                        continue;
                    }
                }
                let mut more = notes.iter();
                while batch.len() < BATCH {
                    match more.next()? {
                        Some(n) => batch.push(n),
                        None => break,
                    }
                }
            }
            for n in batch.drain(..) {
                self.metrics.notifications.fetch_add(1, Ordering::Relaxed);
                match notify::decode(n.channel(), n.payload()) {
                    Some(Notification::Messages(b)) => self.on_batch(client, sink, b)?,
                    Some(Notification::Event(e)) => sink.event(e),
                    None => {}
                }
            }
        }
        Ok(())
    }

    fn on_batch(
        &self,
        client: &mut Client,
        sink: &dyn Sink,
        b: notify::Batch,
    ) -> Result<(), postgres::Error> {
        let lag = chrono::Utc::now().timestamp_micros() - b.at_micros;
        self.metrics
            .listener_lag_seconds
            .observe(lag.max(0) as f64 / 1e6);
        if !sink.wants(b.room) {
            return Ok(());
        }
        let msgs = match b.msgs {
            Some(m) => m,
            // Too large for a payload: resolve the pointer with one query.
            None => messages::range(
                client,
                messages::RANGE_SQL,
                b.room,
                b.first - 1,
                b.last,
                b.last - b.first + 1,
            )?,
        };
        sink.messages(b.room, msgs.into_iter().map(Arc::new).collect());
        Ok(())
    }
}
