//! What each role does with the server's events and its timers: receivers check
//! every message's seq and latency, senders send and count acks, typers type,
//! reconnectors drop and rejoin, churners cycle.

use crate::client::State;
use crate::driver::{Driver, Phase, Tk};
use crate::plan::Role;
use crate::stats::Live;
use crate::track::Seen;
use crate::util::now_us;
use crate::ws;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::Ordering;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MsgIn<'a> {
    seq: u64,
    #[serde(borrow)]
    room_id: Cow<'a, str>,
    #[serde(borrow)]
    content: Cow<'a, str>,
    /// `message`, or `system` for an entry recording a membership change (it takes a
    /// seq of the room's stream but is no one's send).
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HistoryIn<'a> {
    #[serde(borrow)]
    messages: Vec<MsgIn<'a>>,
    #[serde(default)]
    has_more: Option<bool>,
}

#[derive(Deserialize)]
struct AckIn<'a> {
    #[serde(borrow, default)]
    client_msg_id: Option<Cow<'a, str>>,
    seq: u64,
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

#[derive(Deserialize)]
struct TypingIn<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    room_id: Cow<'a, str>,
    typing: bool,
}

/// Least time between two typing starts of one typer: the server's one-a-second
/// throttle, with a margin for the jitter of timers and the network.
const TYPING_START_GAP_US: u64 = 1_250_000;

/// The send time a sender wrote at the start of a message's content (`t=<unix µs> `).
pub fn sent_time(content: &str) -> Option<u64> {
    let rest = content.strip_prefix("t=")?;
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The send time at the end of a client_msg_id (`<socket>-<n>-<unix µs>`).
pub fn ack_time(client_msg_id: &str) -> Option<u64> {
    client_msg_id.rsplit('-').next()?.parse().ok()
}

impl Driver {
    /// The upgrade succeeded.
    pub(crate) fn on_upgraded(&mut self, slot: usize) {
        let now = now_us();
        Live::add(&self.ctx.live.open, 1);
        let c = &mut self.conns[slot];
        c.state = State::Open;
        if !c.settled {
            // Setup connects and churn connects (churn slots never settle).
            self.stats.connect.record(now.saturating_sub(c.t0));
            if c.spec.role != Role::Churner {
                self.stats.c.connected += 1;
            }
        }
        match c.spec.role {
            Role::Sender { .. } => {
                if !c.settled {
                    self.settle_ok(slot);
                } else {
                    c.t_reconnect = 0;
                    if self.phase == Phase::Run {
                        self.fill_window(slot);
                    }
                }
            }
            Role::Receiver | Role::Reconnector | Role::Stormer => {
                // A fresh room is empty when receivers first join, so tracking starts at
                // 0; a rejoin asks for everything after the last seq seen.
                let last = c.settled.then_some(c.track.last);
                self.send_join(slot, last);
            }
            Role::Typer | Role::Churner => self.send_join(slot, None),
        }
    }

    /// Sends `join_room`, with `last_seen_seq` on a rejoin.
    fn send_join(&mut self, slot: usize, last_seen: Option<u64>) {
        let room = &self.plan.rooms[self.conns[slot].spec.room as usize];
        self.tmp.clear();
        match last_seen {
            Some(s) => write!(
                self.tmp,
                r#"{{"event":"join_room","data":{{"room_id":"{room}","last_seen_seq":{s}}}}}"#
            ),
            None => write!(
                self.tmp,
                r#"{{"event":"join_room","data":{{"room_id":"{room}"}}}}"#
            ),
        }
        .expect("write to Vec");
        // Set first: a failed write drops the socket, which clears it again.
        self.conns[slot].t_join = now_us();
        self.send_tmp(slot);
    }

    /// Queues `self.tmp` as a text frame and writes it.
    fn send_tmp(&mut self, slot: usize) {
        let tmp = std::mem::take(&mut self.tmp);
        self.conns[slot].queue(ws::OP_TEXT, &tmp, &mut self.rng);
        self.tmp = tmp;
        self.flush(slot);
    }

    /// A frame that could not be understood: a server fault, counted and sampled.
    pub(crate) fn bad_frame(&mut self, slot: usize, why: &str, payload: &[u8]) {
        self.stats.c.bad_frames += 1;
        Live::add(&self.ctx.live.errors, 1);
        let id = self.conns[slot].spec.id;
        let head = String::from_utf8_lossy(&payload[..payload.len().min(120)]).into_owned();
        self.stats
            .sample(|| format!("socket {id}: bad frame ({why}): {head:?}"));
    }

    /// One text frame from the server.
    pub(crate) fn on_text(&mut self, slot: usize, payload: &[u8]) {
        let tracker = crate::driver::is_tracker(&self.conns[slot]);
        if tracker {
            self.stats.c.receiver_data_frames += 1;
        }
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(_) => return self.bad_frame(slot, "not a JSON event", payload),
        };
        if tracker && matches!(&*env.event, "new_message" | "new_message_batch" | "history") {
            self.stats.c.message_frames += 1;
        }
        let data = env.data.map_or("null", |d| d.get());
        let parsed = match &*env.event {
            "new_message" => serde_json::from_str::<MsgIn>(data)
                .map(|m| self.on_messages(slot, std::slice::from_ref(&m), false)),
            "new_message_batch" => serde_json::from_str::<Vec<MsgIn>>(data)
                .map(|ms| self.on_messages(slot, &ms, false)),
            "history" => serde_json::from_str::<HistoryIn>(data).map(|h| {
                self.stats.c.histories += 1;
                if h.has_more == Some(true) {
                    self.stats.c.histories_more += 1;
                }
                self.on_messages(slot, &h.messages, true)
            }),
            "message_ack" => serde_json::from_str::<AckIn>(data).map(|a| self.on_ack(slot, a)),
            "error" => serde_json::from_str::<ErrorIn>(data).map(|e| self.on_error(slot, &e.code)),
            "typing" => serde_json::from_str::<TypingIn>(data).map(|t| self.on_typing(slot, t)),
            "joined_room" => {
                self.on_joined(slot);
                Ok(())
            }
            "presence" | "user_joined" | "user_left" => {
                self.stats.c.presence_recv += 1;
                Ok(())
            }
            // Clients must ignore events they do not know (PROTOCOL.md 1).
            _ => Ok(()),
        };
        if let Err(e) = parsed {
            let why = format!("malformed {}: {e}", env.event);
            self.bad_frame(slot, &why, payload);
        }
    }

    fn on_joined(&mut self, slot: usize) {
        let now = now_us();
        let c = &mut self.conns[slot];
        if c.t_join == 0 {
            return;
        }
        self.stats.join.record(now.saturating_sub(c.t_join));
        if !c.settled && c.spec.role != Role::Churner {
            self.stats.c.joined += 1;
        }
        c.t_join = 0;
        c.joined = true;
        if c.spec.role == Role::Churner {
            let room = &self.plan.rooms[c.spec.room as usize];
            self.tmp.clear();
            write!(
                self.tmp,
                r#"{{"event":"leave_room","data":{{"room_id":"{room}"}}}}"#
            )
            .expect("write to Vec");
            self.send_tmp(slot);
            let c = &mut self.conns[slot];
            c.queue(ws::OP_CLOSE, &1000u16.to_be_bytes(), &mut self.rng);
            c.state = State::Closing;
            self.flush(slot);
        } else if !c.settled {
            self.settle_ok(slot);
        } else if c.t_reconnect > 0 {
            self.stats
                .reconnect
                .record(now.saturating_sub(c.t_reconnect));
            c.t_reconnect = 0;
            // A storm socket that missed nothing is caught up once joined.
            if c.storm_pending {
                self.storm_check(slot, now);
            }
            let c = &mut self.conns[slot];
            if c.spec.role == Role::Reconnector && self.phase == Phase::Run {
                let at = now + self.rng.exp(self.plan.knobs.drop_mean_ms as f64 * 1000.0) as u64;
                let g = c.generation;
                self.timer(at, slot, g, Tk::Drop);
            }
        }
    }

    fn on_messages(&mut self, slot: usize, msgs: &[MsgIn<'_>], history: bool) {
        let c = &mut self.conns[slot];
        if !matches!(
            c.spec.role,
            Role::Receiver | Role::Reconnector | Role::Stormer
        ) {
            // Every socket is checked for messages of rooms it did not join: a sender
            // joins none, a typer or a churner only its own.
            let room = self.plan.rooms[c.spec.room as usize].as_str();
            let sender = matches!(c.spec.role, Role::Sender { .. });
            for m in msgs.iter().filter(|m| sender || m.room_id != room) {
                self.stats.c.wrong_room += 1;
                Live::add(&self.ctx.live.errors, 1);
                let (id, other, role) = (c.spec.id, m.room_id.to_string(), c.spec.role);
                self.stats.sample(|| {
                    format!(
                        "socket {id} ({role:?}): message seq {} of room {other}, not joined",
                        m.seq
                    )
                });
            }
            return;
        }
        let now = now_us();
        let room = self.plan.rooms[c.spec.room as usize].as_str();
        let mut fresh = 0u64;
        let mut max_lat = 0u64;
        let every = self.plan.knobs.interval_ms * 1000;
        let interval = self.stats.interval(self.start_us, every, now);
        // Per-interval latency is that of steady receivers: a rejoiner's catch-up
        // includes its time offline (it is in the overall histogram and `reconnect`).
        let steady = c.spec.role == Role::Receiver;
        for m in msgs {
            if m.room_id != room {
                // A message of a room this socket did not join: the server routed it
                // wrongly. It is not tracked (it would corrupt this room's stream).
                self.stats.c.wrong_room += 1;
                Live::add(&self.ctx.live.errors, 1);
                let (id, other) = (c.spec.id, m.room_id.to_string());
                self.stats.sample(|| {
                    format!(
                        "socket {id}: message seq {} of room {other}, not joined",
                        m.seq
                    )
                });
                continue;
            }
            let system = m.kind.as_deref() == Some("system");
            match c.track.see(m.seq) {
                Seen::New | Seen::Late if system => {
                    // Part of the stream (no gap), not a delivery of a send.
                    self.system_seqs[c.spec.room as usize].push(m.seq);
                }
                Seen::New | Seen::Late => {
                    fresh += 1;
                    if let Some(t) = sent_time(&m.content) {
                        let lat = now.saturating_sub(t);
                        self.stats.latency.record(lat);
                        if let Some(i) = interval.filter(|_| steady) {
                            self.stats.intervals[i].latency.record(lat);
                        }
                        max_lat = max_lat.max(lat);
                    }
                }
                Seen::Duplicate => {}
            }
        }
        if fresh > 0 {
            if let Some(i) = interval {
                self.stats.intervals[i].delivered += fresh;
            }
            self.stats.c.delivered += fresh;
            if history {
                self.stats.c.via_history += fresh;
            }
            if self.stats.first_deliver_us == 0 {
                self.stats.first_deliver_us = now;
            }
            self.stats.last_deliver_us = now;
            Live::add(&self.ctx.live.delivered, fresh);
            self.ctx.live.lat_max.fetch_max(max_lat, Ordering::Relaxed);
        }
        if self.conns[slot].storm_pending {
            self.storm_check(slot, now);
        }
    }

    fn on_ack(&mut self, slot: usize, a: AckIn<'_>) {
        let now = now_us();
        let c = &mut self.conns[slot];
        c.inflight = c.inflight.saturating_sub(1);
        let room = c.spec.room as usize;
        if let Some(t) = a.client_msg_id.as_deref().and_then(ack_time) {
            self.stats.ack.record(now.saturating_sub(t));
        }
        self.room_max[room] = self.room_max[room].max(a.seq);
        self.room_acked[room] += 1;
        self.acked_seqs[room].push(a.seq);
        if let Some(id) = a.client_msg_id.as_deref() {
            self.ack_digests[room] =
                self.ack_digests[room].wrapping_add(crate::checks::ack_digest(a.seq, id));
        }
        self.stats.c.acked += 1;
        self.stats.last_ack_us = now;
        Live::add(&self.ctx.live.acked, 1);
        self.fill_window(slot);
    }

    fn on_error(&mut self, slot: usize, code: &str) {
        self.stats.c.error_frames += 1;
        *self.stats.error_codes.entry(code.to_string()).or_default() += 1;
        Live::add(&self.ctx.live.errors, 1);
        let c = &mut self.conns[slot];
        if c.t_join > 0 && !c.joined {
            // The join was refused.
            c.t_join = 0;
            if !c.settled {
                return self.fail_setup(slot);
            }
            if c.spec.role == Role::Churner {
                self.stats.c.cycles_failed += 1;
                return self.close_socket(slot);
            }
            // A refused rejoin: try again with a fresh socket.
            self.close_socket(slot);
            let g = self.conns[slot].generation;
            return self.timer(now_us() + 200_000, slot, g, Tk::Reconnect);
        }
        if let Role::Sender { .. } = c.spec.role
            && c.inflight > 0
        {
            // The server refused a send (nothing stored); the error frame does not say
            // which one, but only the count matters for the window.
            c.inflight -= 1;
            self.stats.c.send_rejected += 1;
            self.fill_window(slot);
        }
    }

    fn on_typing(&mut self, slot: usize, t: TypingIn<'_>) {
        let now = now_us();
        self.stats.c.typing_recv += 1;
        Live::add(&self.ctx.live.typing, 1);
        let c = &mut self.conns[slot];
        if matches!(
            c.spec.role,
            Role::Receiver | Role::Typer | Role::Reconnector | Role::Stormer
        ) {
            // Only from another user typing in this socket's room.
            let room = c.spec.room as usize;
            let user = self.user_index.get(&*t.user_id).copied();
            match user {
                Some(u)
                    if t.room_id == self.plan.rooms[room]
                        && u != c.spec.user
                        && self.room_typers[room].contains(&u) =>
                {
                    c.typing_event(u, t.typing)
                }
                _ => {
                    self.stats.c.typing_foreign += 1;
                    let id = c.spec.id;
                    let (who, r) = (t.user_id.to_string(), t.room_id.to_string());
                    self.stats.sample(|| {
                        format!("socket {id} (room {room}): typing from user {who} in room {r}")
                    });
                }
            }
        }
        if let Some(&u) = self.user_index.get(&*t.user_id) {
            let v = self.ctx.typing[u as usize].load(Ordering::Relaxed);
            // Only when the sender is in this process and this is its latest event.
            if v != 0 && (v & 1 == 1) == t.typing {
                self.stats.typing.record(now.saturating_sub(v >> 1));
            }
        }
    }

    /// Closed loop: tops the window up.
    fn fill_window(&mut self, slot: usize) {
        let c = &self.conns[slot];
        let Role::Sender {
            interval_us: 0,
            window,
            ..
        } = c.spec.role
        else {
            return;
        };
        if self.phase != Phase::Run || c.state != State::Open {
            return;
        }
        while !self.conns[slot].done && self.conns[slot].inflight < window {
            self.send_one(slot, now_us());
            if self.conns[slot].state != State::Open {
                break;
            }
        }
    }

    /// A sender's timer.
    pub(crate) fn send_tick(&mut self, slot: usize, due: u64) {
        let Role::Sender { interval_us, .. } = self.conns[slot].spec.role else {
            return;
        };
        if interval_us == 0 {
            return self.fill_window(slot);
        }
        let c = &mut self.conns[slot];
        if c.done {
            return;
        }
        if c.state == State::Open {
            self.send_one(slot, due);
        }
        // The schedule does not slip when we fall behind: latency is measured from the
        // planned send time, so a stalled harness or server shows up in the figures.
        let end = self.end_us_or_max();
        let c = &mut self.conns[slot];
        c.due = due + interval_us;
        if !c.done && end > c.due {
            let (at, g) = (c.due, c.generation);
            self.timer(at, slot, g, Tk::Send);
        }
    }

    fn send_one(&mut self, slot: usize, t: u64) {
        let now = now_us();
        let c = &mut self.conns[slot];
        let Role::Sender { count, .. } = c.spec.role else {
            return;
        };
        let (id, n) = (c.spec.id, c.n);
        let room = &self.plan.rooms[c.spec.room as usize];
        let head = format!("t={t} s={id} n={n} ");
        let pad = self.plan.knobs.size.saturating_sub(head.len());
        self.tmp.clear();
        write!(
            self.tmp,
            r#"{{"event":"send_message","data":{{"room_id":"{room}","client_msg_id":"{id}-{n}-{t}","content":"{head}"#
        )
        .expect("write to Vec");
        self.tmp.resize(self.tmp.len() + pad, b'x');
        self.tmp.extend_from_slice(b"\"}}");
        c.n += 1;
        c.inflight += 1;
        if count > 0 && c.n >= count {
            c.done = true;
        }
        self.stats.c.sent += 1;
        let every = self.plan.knobs.interval_ms * 1000;
        if let Some(i) = self.stats.interval(self.start_us, every, now) {
            self.stats.intervals[i].sent += 1;
        }
        self.stats.c.send_lag_max_us = self.stats.c.send_lag_max_us.max(now.saturating_sub(t));
        if self.stats.first_send_us == 0 {
            self.stats.first_send_us = now;
        }
        self.stats.last_send_us = now;
        Live::add(&self.ctx.live.sent, 1);
        self.send_tmp(slot);
    }

    fn end_us_or_max(&self) -> u64 {
        self.run_end().unwrap_or(u64::MAX)
    }

    /// A typer's timer: alternate typing_start and typing_stop. The server relays at
    /// most one start a second per socket and room (and drops the stop of a start it
    /// dropped), so a start goes out only `TYPING_START_GAP_US` after the previous one
    /// was written; until then the tick is skipped. Every event written is then due
    /// at every watcher, which the typing check relies on.
    pub(crate) fn typing_tick(&mut self, slot: usize, due: u64) {
        let now = now_us();
        let interval = self.plan.knobs.typing_interval_ms.max(1) * 1000;
        let c = &mut self.conns[slot];
        let start = c.n.is_multiple_of(2);
        let too_soon = start && c.last_start_us > 0 && now < c.last_start_us + TYPING_START_GAP_US;
        if c.state == State::Open && c.joined && !too_soon {
            if start {
                c.last_start_us = now;
            }
            let room_idx = c.spec.room as usize;
            let room = &self.plan.rooms[room_idx];
            let ev = if start { "typing_start" } else { "typing_stop" };
            self.ctx.typing[c.spec.user as usize]
                .store(now << 1 | u64::from(start), Ordering::Relaxed);
            c.n += 1;
            self.tmp.clear();
            write!(
                self.tmp,
                r#"{{"event":"{ev}","data":{{"room_id":"{room}"}}}}"#
            )
            .expect("write to Vec");
            self.stats.c.typing_sent += 1;
            self.stats.typing_sent_by_room[room_idx] += 1;
            self.send_tmp(slot);
        }
        let next = due + interval;
        if next < self.end_us_or_max() {
            let g = self.conns[slot].generation;
            self.timer(next, slot, g, Tk::Typing);
        }
    }

    /// A reconnecting receiver's timer: drop the socket (half the time with a close
    /// frame, half the time abruptly) and reconnect with `last_seen_seq`.
    pub(crate) fn planned_drop(&mut self, slot: usize) {
        if self.conns[slot].spec.role == Role::Stormer {
            return self.storm_drop(slot);
        }
        let c = &mut self.conns[slot];
        if c.state != State::Open || !c.joined {
            // Still reconnecting from an earlier drop: try again later.
            let (at, g) = (now_us() + 100_000, c.generation);
            return self.timer(at, slot, g, Tk::Drop);
        }
        if self.rng.below(2) == 0 {
            c.queue(ws::OP_CLOSE, &1000u16.to_be_bytes(), &mut self.rng);
            let _ = c.flush();
        }
        c.t_reconnect = 0;
        self.close_socket(slot);
        let offline = self.plan.knobs.offline_ms * 1000;
        if offline == 0 {
            self.reconnect(slot);
        } else {
            // Stay away for a while so the rejoin has to catch up on a backlog (more
            // than one history page when the stream is fast enough).
            let at = now_us() + self.rng.below(offline);
            let g = self.conns[slot].generation;
            self.timer(at, slot, g, Tk::Reconnect);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_embedded_times() {
        assert_eq!(sent_time("t=123 s=4 n=5 xxx"), Some(123));
        assert_eq!(sent_time("t=99"), Some(99));
        assert_eq!(sent_time("hello"), None);
        assert_eq!(
            ack_time("12-3-1700000000000000"),
            Some(1_700_000_000_000_000)
        );
        assert_eq!(ack_time("nope"), None);
    }
}
