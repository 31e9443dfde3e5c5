//! The LISTEN thread: one connection of its own (never from the pool, never through a
//! transaction pooler) receives every notification, decodes it, and hands the typed
//! value to the [`Sink`] it was given. It never waits on its consumers, so
//! PostgreSQL's notification queue is always drained.

use crate::base::metrics::Metrics;
use crate::base::model::Message;
use crate::pg::messages;
use crate::pg::notify::{self, EVENTS_CHANNEL, Event, Notification, shard_channel};
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
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
    /// The message shards wanted here (a bit per shard).
    fn wanted_shards(&self) -> u64;
    /// The shards now LISTENed to (after the LISTEN took effect).
    fn listening(&self, shards: u64);
}

/// A shard no room needs any more is dropped after this long (rooms come and go).
const UNLISTEN_AFTER: Duration = Duration::from_secs(30);
/// How often the listener looks at the wanted shards when no notification wakes it.
const TICK: Duration = Duration::from_millis(20);

/// The shards LISTENed to on the current connection.
struct Shards {
    listening: u64,
    unwanted_since: [Option<Instant>; 64],
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
    /// Message notification shards of the cluster.
    pub shards: u16,
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

    fn connect(&self, sink: &dyn Sink) -> Result<Client, String> {
        let mut client = super::connect_named(&self.url, self.connect_timeout, "chatd-listener")?;
        client
            .batch_execute(&format!("LISTEN {EVENTS_CHANNEL};"))
            .map_err(|e| e.to_string())?;
        // Sessions revoked while we were away.
        let revoked = revoked_since(&mut client, self.revoked_window).map_err(|e| e.to_string())?;
        if !revoked.is_empty() {
            sink.event(Event::Revoke { sessions: revoked });
        }
        Ok(client)
    }

    /// LISTENs to the shards wanted now and drops those unwanted for a while; tells the
    /// sink the set once the LISTENs took effect.
    fn sync_shards(
        &self,
        client: &mut Client,
        sink: &dyn Sink,
        s: &mut Shards,
    ) -> Result<(), postgres::Error> {
        let wanted = sink.wanted_shards();
        let add = wanted & !s.listening;
        let mut drop_mask = 0u64;
        let now = Instant::now();
        for i in 0..u32::from(self.shards.min(64)) {
            let bit = 1u64 << i;
            let slot = &mut s.unwanted_since[i as usize];
            if wanted & bit != 0 || s.listening & bit == 0 {
                *slot = None;
            } else if slot.get_or_insert(now).elapsed() >= UNLISTEN_AFTER {
                drop_mask |= bit;
                *slot = None;
            }
        }
        if add | drop_mask == 0 {
            return Ok(());
        }
        let mut sql = String::new();
        for i in 0..self.shards.min(64) {
            let channel = shard_channel(i, self.shards);
            if add & (1 << i) != 0 {
                sql.push_str(&format!("LISTEN {channel};"));
            } else if drop_mask & (1 << i) != 0 {
                sql.push_str(&format!("UNLISTEN {channel};"));
            }
        }
        client.batch_execute(&sql)?;
        s.listening = (s.listening | add) & !drop_mask;
        self.metrics
            .listened_shards
            .store(u64::from(s.listening.count_ones()), Ordering::Relaxed);
        sink.listening(s.listening);
        Ok(())
    }

    fn listen_loop(&self, client: &mut Client, sink: &dyn Sink) -> Result<(), postgres::Error> {
        let mut batch = Vec::new();
        let mut shards = Shards {
            listening: 0,
            unwanted_since: [None; 64],
        };
        // Once the shards of our rooms are LISTENed, whatever commits from then on is
        // notified, and the resync fetches whatever was committed while we were away.
        self.sync_shards(client, sink, &mut shards)?;
        sink.resync();
        while !self.stop.load(Ordering::Acquire) {
            self.sync_shards(client, sink, &mut shards)?;
            {
                let mut notes = client.notifications();
                // `timeout_iter` hides a lost connection as a timeout: check it directly.
                let first = notes.timeout_iter(TICK).next()?;
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
