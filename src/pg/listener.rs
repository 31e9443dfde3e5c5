//! The LISTEN thread: one connection of its own (never from the pool, never through a
//! transaction pooler) receives every notification and forwards it to the loops. It
//! never waits on the loops, so PostgreSQL's notification queue is always drained.

use crate::chat::history;
use crate::chat::messages::{self, Message};
use crate::pg::EVENTS_CHANNEL;
use crate::pg::writer::{MESSAGES_CHANNEL, Notice};
use crate::shared::{LoopMsg, Shared};
use crate::ws::codec::text_frame;
use crate::ws::events;
use crate::ws::{LiveBatch, LoopEvent};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use uuid::Uuid;

/// Most notifications handled before looking at the shutdown flag again.
const BATCH: usize = 4096;

/// Runs until the node shuts down, reconnecting with backoff.
pub fn run(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    while !shared.shutting_down.load(Ordering::Acquire) {
        match connect(&shared) {
            Ok(mut client) => {
                backoff = Duration::from_millis(100);
                if !first {
                    shared
                        .metrics
                        .listener_reconnects
                        .fetch_add(1, Ordering::Relaxed);
                }
                first = false;
                // LISTEN is active: whatever commits from now on is notified, and the
                // resync below fetches whatever was committed while we were away.
                broadcast(&shared, || LoopEvent::Resync);
                shared.listener_up.store(true, Ordering::Release);
                log::info!("listener connected");
                if let Err(e) = listen_loop(&shared, &mut client) {
                    log::warn!("listener connection lost: {e}");
                }
                shared.listener_up.store(false, Ordering::Release);
            }
            Err(e) => {
                log::warn!("listener cannot connect: {e}");
            }
        }
        if shared.shutting_down.load(Ordering::Acquire) {
            break;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn connect(shared: &Shared) -> Result<Client, postgres::Error> {
    let mut config: postgres::Config = shared.cfg.database.url.parse()?;
    config.connect_timeout(Duration::from_secs(
        shared.cfg.database.connect_timeout_secs,
    ));
    config.application_name("chatd-listener");
    // Detect a silently dead server instead of waiting forever for notifications.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    let mut client = config.connect(NoTls)?;
    client.batch_execute(&format!(
        "LISTEN {MESSAGES_CHANNEL}; LISTEN {EVENTS_CHANNEL};"
    ))?;
    // Sessions revoked while we were away (or before this node started).
    let ttl = shared.keys.access_ttl as f64 + 5.0;
    let revoked: Vec<Uuid> = client
        .query(
            "SELECT id FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)",
            &[&ttl],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !revoked.is_empty() {
        shared.mark_revoked(&revoked);
        let ids = Arc::new(revoked);
        broadcast(shared, || LoopEvent::Revoke(ids.clone()));
    }
    Ok(client)
}

fn broadcast(shared: &Shared, mut ev: impl FnMut() -> LoopEvent) {
    for l in &shared.loops {
        l.send(LoopMsg::Ws(ev()));
    }
}

fn listen_loop(shared: &Shared, client: &mut Client) -> Result<(), postgres::Error> {
    let mut batch = Vec::new();
    while !shared.shutting_down.load(Ordering::Acquire) {
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
            shared.metrics.notifications.fetch_add(1, Ordering::Relaxed);
            if n.channel() == MESSAGES_CHANNEL {
                on_messages(shared, client, n.payload())?;
            } else {
                on_event(shared, n.payload());
            }
        }
    }
    Ok(())
}

fn on_messages(shared: &Shared, client: &mut Client, payload: &str) -> Result<(), postgres::Error> {
    let Ok(notice) = serde_json::from_str::<Notice>(payload) else {
        log::warn!("ignoring malformed message notification");
        return Ok(());
    };
    let lag = chrono::Utc::now().timestamp_micros() - notice.t;
    shared
        .metrics
        .listener_lag_seconds
        .observe(lag.max(0) as f64 / 1e6);
    let cached = shared.history.holds(notice.r);
    if !cached && !shared.has_interest(notice.r) {
        return Ok(());
    }
    let msgs: Vec<Arc<Message>> = match notice.m {
        Some(m) => m.into_iter().map(Arc::new).collect(),
        // Too large for a payload: resolve the pointer with one query.
        None => messages::range(
            client,
            messages::RANGE_SQL,
            notice.r,
            notice.f - 1,
            notice.l,
            notice.l - notice.f + 1,
        )?
        .into_iter()
        .map(Arc::new)
        .collect(),
    };
    // A writer's batch is one contiguous seq range; anything else is not cached.
    let contiguous = msgs.windows(2).all(|p| p[1].seq == p[0].seq + 1);
    if cached
        && contiguous
        && let Some(first) = msgs.first()
    {
        let json: Vec<_> = msgs.iter().map(|m| history::encode(m)).collect();
        shared.history.extend(notice.r, first.seq, &json);
    }
    if !shared.has_interest(notice.r) {
        return Ok(());
    }
    let batch = Arc::new(LiveBatch {
        room: notice.r,
        msgs,
    });
    broadcast(shared, || LoopEvent::Live(batch.clone()));
    Ok(())
}

fn on_event(shared: &Shared, payload: &str) {
    let Ok(v) = serde_json::from_str::<Value>(payload) else {
        return;
    };
    match v.get("t").and_then(Value::as_str) {
        Some("revoke") => {
            let ids: Vec<Uuid> = v
                .get("s")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().and_then(|s| s.parse().ok()))
                        .collect()
                })
                .unwrap_or_default();
            shared.mark_revoked(&ids);
            let ids = Arc::new(ids);
            broadcast(shared, || LoopEvent::Revoke(ids.clone()));
        }
        Some("room") => {
            let (Some(room), Some(event)) = (
                v.get("r")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Uuid>().ok()),
                v.get("e").and_then(Value::as_str),
            ) else {
                return;
            };
            if !shared.has_interest(room) {
                return;
            }
            let except = v
                .get("x")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            let data = v.get("d").cloned().unwrap_or(Value::Null);
            let frame: Arc<[u8]> = Arc::from(text_frame(&events::encode(event, &data)));
            broadcast(shared, || LoopEvent::RoomEvent {
                room,
                except,
                frame: frame.clone(),
            });
        }
        Some("kick") => {
            let room = v
                .get("r")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            let user = v
                .get("u")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            if let (Some(room), Some(user)) = (room, user) {
                broadcast(shared, || LoopEvent::Kick { room, user });
            }
        }
        _ => {}
    }
}
