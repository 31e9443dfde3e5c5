//! Presence: one thread per node keeps the `presence` rows of its sockets (in order, in
//! batches), heartbeats the node, removes the rows of nodes that stopped, and announces
//! users online/offline. Ephemeral room events travel by NOTIFY alone.

use crate::base::access::Action;
use crate::base::model::{Identity, now_iso};
use crate::pg::notify::{self, Event, PresenceData, RoomEvent, TypingData, WhoData};
use crate::pg::pool::{JobQueue, Worker};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use postgres::GenericClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A socket entering or leaving a room on this node.
pub struct PresenceOp {
    room: Uuid,
    user: Uuid,
    username: String,
    join: bool,
}

impl PresenceOp {
    /// A socket of `who` joined `room`.
    pub fn join(room: Uuid, who: &Identity) -> PresenceOp {
        PresenceOp {
            room,
            user: who.user_id,
            username: who.username.clone(),
            join: true,
        }
    }

    /// A socket of `who` left `room`.
    pub fn leave(room: Uuid, who: &Identity) -> PresenceOp {
        PresenceOp {
            room,
            user: who.user_id,
            username: who.username.clone(),
            join: false,
        }
    }
}

/// The sending side of the presence thread.
#[derive(Clone)]
pub struct Presence {
    tx: Sender<PresenceOp>,
}

impl Presence {
    /// A channel to the presence thread; the receiver goes to [`run`].
    pub fn channel() -> (Presence, Receiver<PresenceOp>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Presence { tx }, rx)
    }

    /// Queues an operation (never blocks).
    pub fn send(&self, op: PresenceOp) {
        let _ = self.tx.send(op);
    }
}

/// Relays a typing start or stop to the room's other members on every node. Ephemeral:
/// under overload an indicator may be dropped, never a message. A start is relayed only
/// where the caller may send (`Action::Typing`: a muted member's is dropped; the socket
/// already joined the room, so this is the one rule its join did not decide).
pub fn typing(db: &JobQueue, who: &Identity, room: Uuid, typing: bool) {
    let event = Event::Room {
        room,
        except: Some(who.user_id),
        event: RoomEvent::Typing(TypingData {
            user_id: who.user_id,
            room_id: room,
            username: who.username.clone(),
            typing,
            started_at: now_iso(),
        }),
    };
    let user = who.user_id;
    let job: crate::pg::pool::Job = Box::new(move |w| {
        let Ok(c) = w.client() else {
            return;
        };
        if typing && crate::chat::rooms::require(c, room, user, Action::Typing).is_err() {
            return;
        }
        if let Err(e) = notify::publish(c, &[event]) {
            log::debug!("event not published: {e}");
        }
    });
    let _ = db.submit(job);
}

fn announce(
    c: &mut impl GenericClient,
    node: &str,
    room: Uuid,
    user: Uuid,
    username: &str,
    online: bool,
) -> Result<(), postgres::Error> {
    let presence = PresenceData {
        user_id: user,
        room_id: room,
        node_id: node.to_string(),
        last_seen: now_iso(),
        username: username.to_string(),
        status: if online { "online" } else { "offline" }.into(),
    };
    let who = WhoData {
        user_id: user,
        room_id: room,
        username: username.to_string(),
    };
    let room_event = |event| Event::Room {
        room,
        except: None,
        event,
    };
    notify::publish(
        c,
        &[
            room_event(RoomEvent::Presence(presence)),
            room_event(if online {
                RoomEvent::UserJoined(who)
            } else {
                RoomEvent::UserLeft(who)
            }),
        ],
    )
}

/// Applies a batch of operations in one transaction, in order.
fn apply(c: &mut postgres::Client, node: &str, ops: &[PresenceOp]) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    for op in ops {
        if op.join {
            let sockets: i32 = tx
                .query_one(
                    "INSERT INTO presence (node_id, room_id, user_id, username) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (node_id, room_id, user_id)
                     DO UPDATE SET sockets = presence.sockets + 1, last_seen = now()
                     RETURNING sockets",
                    &[&node, &op.room, &op.user, &op.username],
                )?
                .get(0);
            if sockets == 1 && others(&mut tx, node, op.room, op.user)? == 0 {
                announce(&mut tx, node, op.room, op.user, &op.username, true)?;
            }
        } else {
            let left = tx.query_opt(
                "UPDATE presence SET sockets = sockets - 1, last_seen = now()
                 WHERE node_id = $1 AND room_id = $2 AND user_id = $3 RETURNING sockets",
                &[&node, &op.room, &op.user],
            )?;
            if left.map(|r| r.get::<_, i32>(0)) == Some(0) {
                tx.execute(
                    "DELETE FROM presence WHERE node_id = $1 AND room_id = $2 AND user_id = $3 AND sockets <= 0",
                    &[&node, &op.room, &op.user],
                )?;
                if others(&mut tx, node, op.room, op.user)? == 0 {
                    announce(&mut tx, node, op.room, op.user, &op.username, false)?;
                }
            }
        }
    }
    tx.commit()
}

fn others(
    c: &mut impl GenericClient,
    node: &str,
    room: Uuid,
    user: Uuid,
) -> Result<i64, postgres::Error> {
    Ok(c.query_one(
        "SELECT count(*) FROM presence WHERE room_id = $1 AND user_id = $2 AND node_id <> $3",
        &[&room, &user, &node],
    )?
    .get(0))
}

/// Removes the rows of `node` (dead, or this node at start and stop) and announces
/// offline every user it leaves with no socket anywhere.
pub fn clear_node(c: &mut postgres::Client, node: &str) -> Result<usize, postgres::Error> {
    let mut tx = c.transaction()?;
    let rows = tx.query(
        "DELETE FROM presence WHERE node_id = $1 RETURNING room_id, user_id, username",
        &[&node],
    )?;
    for r in &rows {
        let (room, user, name): (Uuid, Uuid, String) = (r.get(0), r.get(1), r.get(2));
        if others(&mut tx, node, room, user)? == 0 {
            announce(&mut tx, node, room, user, &name, false)?;
        }
    }
    tx.commit()?;
    Ok(rows.len())
}

/// Takes `node` for this process: true unless a node of that id heartbeated within
/// `fresh` (it runs: two nodes under one id would clear each other's presence rows).
pub fn claim_node(
    c: &mut postgres::Client,
    node: &str,
    fresh: Duration,
) -> Result<bool, postgres::Error> {
    let row = c.query_opt(
        "INSERT INTO nodes (node_id) VALUES ($1)
         ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), started_at = now()
         WHERE nodes.heartbeat_at < now() - make_interval(secs => $2)
         RETURNING 1",
        &[&node, &fresh.as_secs_f64()],
    )?;
    Ok(row.is_some())
}

fn heartbeat(
    c: &mut postgres::Client,
    node: &str,
    timeout: Duration,
) -> Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO nodes (node_id) VALUES ($1)
         ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()",
        &[&node],
    )?;
    let dead = c.query(
        "DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(secs => $1) AND node_id <> $2 RETURNING node_id",
        &[&timeout.as_secs_f64(), &node],
    )?;
    for r in dead {
        let id: String = r.get(0);
        let n = clear_node(c, &id)?;
        log::warn!("node {id} stopped heartbeating: removed {n} presence rows");
    }
    // Rows of nodes that vanished without ever heartbeating here (crash before the
    // first beat, or rows left from an old run) go the same way.
    let orphans = c.query(
        "SELECT DISTINCT p.node_id FROM presence p LEFT JOIN nodes n ON n.node_id = p.node_id WHERE n.node_id IS NULL",
        &[],
    )?;
    for r in orphans {
        let id: String = r.get(0);
        clear_node(c, &id)?;
    }
    Ok(())
}

/// What the presence thread needs.
pub struct PresenceThread {
    /// This node's id in presence rows.
    pub node_id: String,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Age after which another node's rows are removed.
    pub node_timeout: Duration,
    /// Set when the node shuts down.
    pub stop: Arc<AtomicBool>,
    /// Set while heartbeats reach the database (readiness).
    pub db_ok: Arc<AtomicBool>,
}

/// The presence thread: applies operations in arrival order and heartbeats.
pub fn run(t: PresenceThread, rx: Receiver<PresenceOp>, mut worker: Worker) {
    let node = t.node_id.clone();
    let (period, timeout) = (t.heartbeat, t.node_timeout);
    let mut next_beat = Instant::now();
    let mut cleared_self = false;
    let mut backlog: Vec<PresenceOp> = Vec::new();
    loop {
        if t.stop.load(Ordering::Acquire) && rx.is_empty() && backlog.is_empty() {
            break;
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + period;
            let ok = match worker.client() {
                Ok(c) => {
                    // Rows left by an earlier run under this node id are stale.
                    if !cleared_self {
                        cleared_self = clear_node(c, &node).is_ok();
                    }
                    heartbeat(c, &node, timeout)
                        .map_err(|e| log::warn!("heartbeat failed: {e}"))
                        .is_ok()
                }
                Err(_) => false,
            };
            t.db_ok.store(ok, Ordering::Release);
        }
        let wait = next_beat
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        match rx.recv_timeout(wait) {
            Ok(op) => backlog.push(op),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(op) = rx.try_recv() {
            backlog.push(op);
            if backlog.len() >= 1000 {
                break;
            }
        }
        if backlog.is_empty() {
            continue;
        }
        let result = worker.client().map_err(|_| ()).and_then(|c| {
            apply(c, &node, &backlog).map_err(|e| log::warn!("presence update failed: {e}"))
        });
        match result {
            Ok(()) => backlog.clear(),
            // Keep the operations (in order) and retry after a pause; bounded so a long
            // outage cannot grow memory without limit (the rows are rebuilt by clients
            // rejoining after the outage anyway).
            Err(()) => {
                // Shutting down with the database away: the rows are cleared by the
                // other nodes once our heartbeat stops, so give up rather than hang.
                if backlog.len() > 100_000 || t.stop.load(Ordering::Acquire) {
                    backlog.clear();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    if let Ok(c) = worker.client() {
        let _ = clear_node(c, &node);
        let _ = c.execute("DELETE FROM nodes WHERE node_id = $1", &[&node]);
    }
}
