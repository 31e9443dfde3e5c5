//! Socket events of a driver thread: readiness, reading and decoding frames, and
//! what happens when a socket is set up, fails, is lost or reconnects.

use crate::client::State;
use crate::driver::{Driver, Phase, Tk};
use crate::plan::Role;
use crate::stats::Live;
use crate::util::now_us;
use crate::ws;
use std::io::{self, Read};

/// Wait before retrying a failed reconnect.
const RETRY_US: u64 = 200_000;
/// Longest a churn cycle may take.
const CYCLE_US: u64 = 10_000_000;

impl Driver {
    /// Drops the socket of `slot`, keeping the open-socket gauge right.
    pub(crate) fn close_socket(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if matches!(c.state, State::Open | State::Closing) {
            Live::sub(&self.ctx.live.open, 1);
        }
        c.drop_socket();
    }

    /// A readiness event for the socket of `slot` (ignored when it is stale).
    pub(crate) fn on_event(
        &mut self,
        slot: usize,
        generation: u32,
        readable: bool,
        writable: bool,
    ) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.generation != generation || c.sock.is_none() {
            return;
        }
        if c.state == State::Connecting {
            match c.connect_done() {
                Ok(true) => c.state = State::Upgrading,
                Ok(false) => return,
                Err(_) => return self.on_lost(slot, None),
            }
        }
        if writable || self.conns[slot].state == State::Upgrading {
            self.flush(slot);
        }
        if readable {
            self.on_readable(slot);
        }
    }

    /// Writes queued bytes; a write error counts as the server closing the socket.
    pub(crate) fn flush(&mut self, slot: usize) {
        match self.conns[slot].flush() {
            Ok(n) => self.stats.c.bytes_out += n as u64,
            Err(_) => self.on_lost(slot, None),
        }
    }

    /// Reads until the kernel has nothing more, handing complete frames on.
    pub(crate) fn on_readable(&mut self, slot: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let generation = self.conns[slot].generation;
        loop {
            let c = &mut self.conns[slot];
            if c.generation != generation {
                break;
            }
            let Some(sock) = c.sock.as_mut() else { break };
            match sock.read(&mut scratch) {
                Ok(0) => {
                    self.on_lost(slot, None);
                    break;
                }
                Ok(n) => {
                    self.stats.c.bytes_in += n as u64;
                    let mut pending = std::mem::take(&mut self.conns[slot].rbuf);
                    if pending.is_empty() {
                        let used = self.consume(slot, &scratch[..n]);
                        pending.extend_from_slice(&scratch[used..n]);
                    } else {
                        pending.extend_from_slice(&scratch[..n]);
                        let used = self.consume(slot, &pending);
                        pending.drain(..used);
                    }
                    let c = &mut self.conns[slot];
                    if c.generation != generation || c.sock.is_none() {
                        break;
                    }
                    c.rbuf = pending;
                    c.trim_rbuf();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.on_lost(slot, None);
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Handles the bytes in `data`; returns how many were used (the rest is an
    /// incomplete frame to keep).
    pub(crate) fn consume(&mut self, slot: usize, data: &[u8]) -> usize {
        let generation = self.conns[slot].generation;
        let mut at = 0;
        if self.conns[slot].state == State::Upgrading {
            match ws::parse_upgrade_response(data) {
                Ok(None) => return 0,
                Ok(Some((101, n))) => {
                    at = n;
                    self.on_upgraded(slot);
                }
                Ok(Some((status, _))) => {
                    let code = format!("http_{status}");
                    *self.stats.error_codes.entry(code).or_default() += 1;
                    self.on_lost(slot, Some(0));
                    return data.len();
                }
                Err(_) => {
                    self.on_lost(slot, Some(0));
                    return data.len();
                }
            }
        }
        while at < data.len() {
            let c = &self.conns[slot];
            if c.generation != generation || c.sock.is_none() {
                return data.len();
            }
            match ws::decode_frame(&data[at..]) {
                Ok(None) => break,
                Ok(Some((f, used))) => {
                    at += used;
                    self.stats.c.frames_in += 1;
                    self.on_frame(slot, f);
                }
                Err(e) => {
                    // Broken framing from the server: a bad frame; the stream cannot
                    // be read further, so the socket is dropped and reconnects.
                    let head = data[at..data.len().min(at + 16)].to_vec();
                    self.bad_frame(slot, e, &head);
                    self.drop_and_reconnect(slot);
                    return data.len();
                }
            }
        }
        at
    }

    /// One WebSocket frame: text goes to the role logic, control frames are answered.
    pub(crate) fn on_frame(&mut self, slot: usize, f: ws::Frame<'_>) {
        match f.opcode {
            ws::OP_TEXT if f.fin && self.conns[slot].frag.is_empty() => {
                self.on_text(slot, f.payload)
            }
            ws::OP_TEXT | ws::OP_CONT => {
                self.conns[slot].frag.extend_from_slice(f.payload);
                if f.fin {
                    let msg = std::mem::take(&mut self.conns[slot].frag);
                    self.on_text(slot, &msg);
                }
            }
            ws::OP_PING => {
                self.conns[slot].queue(ws::OP_PONG, f.payload, &mut self.rng);
                self.flush(slot);
            }
            ws::OP_CLOSE => {
                let code = ws::close_code(f.payload);
                if self.conns[slot].state == State::Closing {
                    self.on_closed_by_us(slot);
                } else {
                    // Answer the close as the RFC asks, then treat it as a server close.
                    let echo = code.to_be_bytes();
                    self.conns[slot].queue(ws::OP_CLOSE, &echo, &mut self.rng);
                    let _ = self.conns[slot].flush();
                    self.on_lost(slot, Some(code));
                }
            }
            _ => {}
        }
    }

    /// Setup of `slot` failed: count it by the step it reached and leave it out.
    pub(crate) fn fail_setup(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.settled {
            return;
        }
        match c.state {
            State::Down | State::Connecting => self.stats.c.connect_failed += 1,
            State::Upgrading => self.stats.c.upgrade_failed += 1,
            State::Open | State::Closing => self.stats.c.join_failed += 1,
        }
        c.settled = true;
        c.dead = true;
        self.connecting -= 1;
        self.settled += 1;
        Live::add(&self.ctx.live.errors, 1);
        self.close_socket(slot);
    }

    /// Setup of `slot` finished.
    pub(crate) fn settle_ok(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if !c.settled {
            c.settled = true;
            self.connecting -= 1;
            self.settled += 1;
            self.setup_ok += 1;
        }
    }

    /// A setup step or churn cycle took too long.
    pub(crate) fn on_timeout(&mut self, slot: usize) {
        let c = &self.conns[slot];
        if c.spec.role == Role::Churner {
            if c.state != State::Down {
                self.stats.c.cycles_failed += 1;
                self.close_socket(slot);
            }
        } else if !c.settled {
            self.fail_setup(slot);
        }
    }

    /// The socket ended without us asking: a close frame (`Some(code)`), a refused
    /// upgrade (`Some(0)`), EOF or an error (`None`). Setup fails, a churn cycle
    /// fails, anything else reconnects.
    pub(crate) fn on_lost(&mut self, slot: usize, code: Option<u16>) {
        let c = &self.conns[slot];
        if c.state == State::Closing {
            return self.on_closed_by_us(slot);
        }
        if !c.settled {
            return self.fail_setup(slot);
        }
        if matches!(c.state, State::Connecting | State::Upgrading) {
            self.stats.c.reconnect_failed += 1;
            *self
                .stats
                .error_codes
                .entry("reconnect_failed".into())
                .or_default() += 1;
        } else {
            let code = code.unwrap_or(0);
            *self.stats.close_codes.entry(code).or_default() += 1;
            self.stats.c.server_closed += 1;
            let (id, phase) = (c.spec.id, self.phase);
            self.stats.sample(|| {
                format!("socket {id}: closed by the server (code {code}; 0 = no close frame) in phase {phase:?}")
            });
        }
        Live::add(&self.ctx.live.errors, 1);
        self.drop_and_reconnect(slot);
    }

    /// Drops the socket of a set-up slot and reconnects it (a churn slot's cycle fails
    /// instead). Sends in flight on it count as unacked.
    pub(crate) fn drop_and_reconnect(&mut self, slot: usize) {
        let c = &self.conns[slot];
        if !c.settled {
            return self.fail_setup(slot);
        }
        if c.spec.role == Role::Churner {
            self.stats.c.cycles_failed += 1;
            return self.close_socket(slot);
        }
        // A lost socket reconnects at once; a failed reconnect waits a little, so a
        // server that is down is not hammered.
        let failed_attempt = matches!(c.state, State::Connecting | State::Upgrading);
        self.close_socket(slot);
        if self.phase < Phase::Done {
            let c = &mut self.conns[slot];
            self.stats.c.unacked += u64::from(c.inflight);
            self.stats.unacked_by_room[c.spec.room as usize] += u64::from(c.inflight);
            c.inflight = 0;
            if failed_attempt {
                let g = c.generation;
                self.timer(now_us() + RETRY_US, slot, g, Tk::Reconnect);
            } else {
                self.reconnect(slot);
            }
        }
    }

    /// Our close was answered: a churn cycle is complete.
    pub(crate) fn on_closed_by_us(&mut self, slot: usize) {
        let c = &self.conns[slot];
        if c.spec.role == Role::Churner {
            let us = now_us().saturating_sub(c.t0);
            self.stats.cycle.record(us);
            self.stats.c.cycles += 1;
            Live::add(&self.ctx.live.cycles, 1);
        }
        self.close_socket(slot);
    }

    /// Opens a fresh socket for a socket that was dropped or closed.
    pub(crate) fn reconnect(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.state != State::Down {
            return;
        }
        // Timed from the first attempt to the rejoin (retries included), and counted
        // once per outage.
        c.reconnected = true;
        if c.t_reconnect == 0 {
            c.t_reconnect = now_us();
            self.stats.c.reconnects += 1;
            Live::add(&self.ctx.live.reconnects, 1);
        }
        if self.connect(slot).is_err() {
            self.close_socket(slot);
            let g = self.conns[slot].generation;
            self.timer(now_us() + RETRY_US, slot, g, Tk::Reconnect);
        }
    }

    /// Starts a churn cycle on an idle churn slot.
    pub(crate) fn start_cycle(&mut self, slot: usize) {
        let now = now_us();
        self.conns[slot].t0 = now;
        if self.connect(slot).is_err() {
            self.stats.c.cycles_failed += 1;
            return self.close_socket(slot);
        }
        let g = self.conns[slot].generation;
        self.timer(now + CYCLE_US, slot, g, Tk::Timeout);
    }
}
