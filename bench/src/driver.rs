//! The mio event loop that drives many connections from one thread: socket readiness,
//! timers, and the run's phases (setup, run, drain, catch-up) in step with the other
//! threads and processes through the coordinator.

use crate::checks;
use crate::client::{Conn, State};
use crate::coord::{Down, PhaseId, SentValue, Up};
use crate::plan::{Plan, Role};
use crate::stats::{Live, Stats};
use crate::util::{Rng, now_us};
use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Read buffer shared by all sockets of a thread: per-socket buffers only ever hold
/// the tail of an incomplete frame.
const SCRATCH: usize = 64 * 1024;
/// Longest a socket may take to connect, upgrade and join during setup.
const SETUP_STEP_US: u64 = 30_000_000;
/// Interval of the O(sockets) checks that decide phase changes.
const CHECK_US: u64 = 50_000;

/// The phases of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connecting and joining every socket.
    Setup,
    /// Waiting for every thread and process to finish setup.
    WaitGo,
    /// Sending.
    Run,
    /// Sending stopped; waiting for outstanding acks.
    Drain,
    /// Waiting for every sender's last acked seq per room.
    WaitSent,
    /// Waiting for receivers to reach those seqs.
    CatchUp,
    /// Finished.
    Done,
}

/// Timer kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tk {
    /// A sender's next send.
    Send,
    /// A typer's next typing event.
    Typing,
    /// A planned drop of a reconnecting receiver.
    Drop,
    /// A setup step or churn cycle took too long.
    Timeout,
    /// Retry a reconnect.
    Reconnect,
    /// Start a churn cycle (not tied to a socket).
    Churn,
    /// The end of the storm: rejoin with `last_seen_seq`.
    StormBack,
}

/// What a driver thread shares with its process.
pub struct Ctx {
    /// To the coordinator.
    pub up: Sender<Up>,
    /// From the coordinator.
    pub down: Receiver<Down>,
    /// Progress counters.
    pub live: Arc<Live>,
    /// Last typing event written per user: `unix_us << 1 | typing`.
    pub typing: Arc<Vec<AtomicU64>>,
}

/// One driver thread's state.
pub struct Driver {
    pub(crate) plan: Plan,
    pub(crate) poll: Poll,
    pub(crate) conns: Vec<Conn>,
    pub(crate) timers: BinaryHeap<Reverse<(u64, u32, u32, Tk)>>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) tmp: Vec<u8>,
    pub(crate) rng: Rng,
    pub(crate) stats: Stats,
    pub(crate) ctx: Ctx,
    pub(crate) servers: Vec<SocketAddr>,
    pub(crate) user_index: HashMap<String, u32>,
    pub(crate) phase: Phase,
    pub(crate) queue: VecDeque<u32>,
    pub(crate) connecting: usize,
    pub(crate) settled: usize,
    pub(crate) setup_total: usize,
    pub(crate) setup_ok: u64,
    pub(crate) start_us: u64,
    pub(crate) end_us: u64,
    pub(crate) deadline: u64,
    pub(crate) next_check: u64,
    pub(crate) room_max: Vec<u64>,
    pub(crate) room_acked: Vec<u64>,
    /// Every seq acked to this driver's senders, per room (checked at the end).
    pub(crate) acked_seqs: Vec<Vec<u64>>,
    /// Per room, the wrapping sum of `checks::ack_digest` over every ack (seq and
    /// client_msg_id): the database must hold exactly those pairs.
    pub(crate) ack_digests: Vec<u64>,
    /// Seqs of system entries (membership changes) seen per room: they excuse holes in
    /// the acked seqs.
    pub(crate) system_seqs: Vec<Vec<u64>>,
    pub(crate) expect: Vec<u64>,
    /// Users typing in each room (from the whole plan): typing events from anyone
    /// else are foreign.
    pub(crate) room_typers: Vec<Vec<u32>>,
    /// Per room, per typing user: (user, starts, stops) sent in the whole run;
    /// known after the Sent barrier.
    pub(crate) typing_expect: Vec<Vec<(u32, u64, u64)>>,
    /// Position in `plan.typers` of each of this driver's typers, by slot.
    pub(crate) typer_pos: HashMap<usize, usize>,
    pub(crate) churners: Vec<u32>,
    pub(crate) churn_cursor: usize,
    pub(crate) churn_every_us: u64,
    /// Rooms with a sender in this driver: where a storm receiver's catch-up target
    /// (its room's highest acked seq at the rejoin) is known.
    pub(crate) storm_rooms: Vec<bool>,
}

fn token(slot: usize, generation: u32) -> Token {
    Token(slot | (generation as usize) << 32)
}

impl Driver {
    /// A driver for `plan` (this thread's share).
    pub fn new(plan: Plan, ctx: Ctx, seed: u64) -> io::Result<Driver> {
        let servers = plan
            .servers
            .iter()
            .map(|s| {
                s.to_socket_addrs()?
                    .find(|a| a.is_ipv4())
                    .ok_or_else(|| io::Error::other(format!("{s}: no IPv4 address")))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let user_index = plan
            .user_ids
            .iter()
            .enumerate()
            .map(|(i, u)| (u.clone(), i as u32))
            .collect();
        let rooms = plan.rooms.len();
        let conns: Vec<Conn> = plan
            .conns
            .iter()
            .cloned()
            .map(|spec| {
                let mut c = Conn::new(spec);
                // The stream a socket joins starts after the room's membership entries.
                c.track.last = plan.heads.get(c.spec.room as usize).copied().unwrap_or(0);
                c
            })
            .collect();
        let churners = (0..conns.len() as u32)
            .filter(|&i| conns[i as usize].spec.role == Role::Churner)
            .collect();
        let mut room_typers = vec![Vec::new(); rooms];
        for t in &plan.typers {
            let users: &mut Vec<u32> = &mut room_typers[t.room as usize];
            if !users.contains(&t.user) {
                users.push(t.user);
            }
        }
        let pos: HashMap<u32, usize> = plan
            .typers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        let typer_pos = conns
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| pos.get(&c.spec.id).map(|&p| (slot, p)))
            .collect();
        Ok(Driver {
            poll: Poll::new()?,
            conns,
            timers: BinaryHeap::new(),
            scratch: vec![0; SCRATCH],
            tmp: Vec::with_capacity(1024),
            rng: Rng::seeded(seed),
            stats: Stats {
                typing_sent_by_room: vec![0; rooms],
                unacked_by_room: vec![0; rooms],
                ..Stats::default()
            },
            ctx,
            servers,
            user_index,
            phase: Phase::Setup,
            queue: VecDeque::new(),
            connecting: 0,
            settled: 0,
            setup_total: 0,
            setup_ok: 0,
            start_us: 0,
            end_us: 0,
            deadline: 0,
            next_check: 0,
            room_max: vec![0; rooms],
            room_acked: vec![0; rooms],
            acked_seqs: vec![Vec::new(); rooms],
            ack_digests: vec![0; rooms],
            system_seqs: vec![Vec::new(); rooms],
            expect: vec![0; rooms],
            room_typers,
            typing_expect: vec![Vec::new(); rooms],
            typer_pos,
            churners,
            churn_cursor: 0,
            churn_every_us: 0,
            storm_rooms: vec![false; rooms],
            plan,
        })
    }

    /// Runs every phase and sends the final stats to the coordinator.
    pub fn run(mut self) {
        self.stats.setup_start_us = now_us();
        for (i, c) in self.conns.iter().enumerate() {
            if c.spec.role != Role::Churner {
                self.queue.push_back(i as u32);
            }
        }
        self.setup_total = self.queue.len();
        let mut events = Events::with_capacity(1024);
        loop {
            self.pump_connects();
            let now = now_us();
            let next = self.timers.peek().map_or(u64::MAX, |Reverse(t)| t.0);
            let wait = next.saturating_sub(now).min(20_000);
            let polled = self
                .poll
                .poll(&mut events, Some(std::time::Duration::from_micros(wait)));
            if let Err(e) = polled
                && e.kind() != io::ErrorKind::Interrupted
            {
                eprintln!("poll: {e}");
                break;
            }
            for ev in events.iter() {
                let t = ev.token().0;
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                self.on_event(
                    t & 0xFFFF_FFFF,
                    (t >> 32) as u32,
                    readable,
                    ev.is_writable(),
                );
            }
            self.fire_timers();
            self.check_control();
            if self.advance() {
                break;
            }
        }
        self.finish();
    }

    fn pump_connects(&mut self) {
        while self.connecting < self.plan.knobs.connect_concurrency.max(1) {
            let Some(slot) = self.queue.pop_front() else {
                break;
            };
            self.connecting += 1;
            let slot = slot as usize;
            self.conns[slot].t0 = now_us();
            if self.connect(slot).is_err() {
                self.fail_setup(slot);
            } else {
                let g = self.conns[slot].generation;
                self.timer(now_us() + SETUP_STEP_US, slot, g, Tk::Timeout);
            }
        }
    }

    /// Opens a new socket for `slot` and registers it.
    pub(crate) fn connect(&mut self, slot: usize) -> io::Result<()> {
        let k = &self.plan.knobs;
        let id = self.conns[slot].spec.id as usize;
        let room = self.conns[slot].spec.room as usize;
        let base = if k.by_shard > 0 {
            // chatd's shard of a room: the id's low 16 bits modulo the shard count.
            let id = &self.plan.rooms[room];
            let low = u16::from_str_radix(&id[id.len().saturating_sub(4)..], 16).unwrap_or(0);
            (low % k.by_shard) as usize
        } else if k.by_room {
            room
        } else {
            id
        };
        // Each new socket of a slot goes to the next server, so with several nodes a
        // reconnect lands on another node and catches up there.
        let pick = (base + self.conns[slot].generation as usize) % self.servers.len();
        let server = self.servers[pick];
        let source = (k.source_addrs > 0 && server.ip().is_loopback()).then(|| {
            let n = (id as u32) % k.source_addrs;
            Ipv4Addr::new(127, 0, (n / 250) as u8, (1 + n % 250) as u8)
        });
        self.close_socket(slot);
        let host = &self.plan.servers[pick];
        let token_str = &self.plan.tokens[self.conns[slot].spec.user as usize];
        let c = &mut self.conns[slot];
        c.start(server, source, host, token_str, &mut self.rng)?;
        let tok = token(slot, c.generation);
        if let Some(s) = c.sock.as_mut() {
            self.poll
                .registry()
                .register(s, tok, Interest::READABLE | Interest::WRITABLE)?;
        }
        Ok(())
    }

    /// When the run stops sending (None: when every sender is done).
    pub(crate) fn run_end(&self) -> Option<u64> {
        (self.end_us > 0).then_some(self.end_us)
    }

    /// Schedules a timer.
    pub(crate) fn timer(&mut self, at: u64, slot: usize, generation: u32, kind: Tk) {
        self.timers
            .push(Reverse((at, slot as u32, generation, kind)));
    }

    fn fire_timers(&mut self) {
        let now = now_us();
        while let Some(&Reverse((at, slot, generation, kind))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let slot = slot as usize;
            if kind == Tk::Churn {
                self.churn_tick(at);
                continue;
            }
            // Send and typing schedules outlive reconnects; the other timers belong to
            // one socket and go stale with it.
            let per_socket = !matches!(kind, Tk::Send | Tk::Typing);
            if per_socket && self.conns[slot].generation != generation {
                continue;
            }
            match kind {
                Tk::Send if self.phase == Phase::Run => self.send_tick(slot, at),
                Tk::Typing if self.phase == Phase::Run => self.typing_tick(slot, at),
                Tk::Drop if self.phase == Phase::Run => self.planned_drop(slot),
                Tk::Timeout => self.on_timeout(slot),
                Tk::Reconnect if self.phase < Phase::Done => self.reconnect(slot),
                Tk::StormBack if self.phase < Phase::Done => self.storm_back(slot),
                _ => {}
            }
        }
    }

    fn churn_tick(&mut self, at: u64) {
        if self.phase != Phase::Run {
            return;
        }
        let next = at + self.churn_every_us;
        if self.end_us == 0 || next < self.end_us {
            self.timer(next, usize::MAX >> 32, 0, Tk::Churn);
        }
        let n = self.churners.len();
        for i in 0..n {
            let slot = self.churners[(self.churn_cursor + i) % n] as usize;
            if self.conns[slot].state == State::Down {
                self.churn_cursor = (self.churn_cursor + i + 1) % n;
                return self.start_cycle(slot);
            }
        }
        self.stats.c.cycles_skipped += 1;
    }

    fn check_control(&mut self) {
        while let Ok(d) = self.ctx.down.try_recv() {
            match d.phase {
                PhaseId::Ready => self.go(d.value.first().copied().unwrap_or_else(now_us)),
                PhaseId::Sent => {
                    let v = SentValue::decode(&d.value);
                    let n = self.expect.len();
                    self.expect.copy_from_slice(&v.room_max[..n]);
                    for (i, t) in self.plan.typers.iter().enumerate() {
                        let (starts, stops) = (v.typer_starts[i], v.typer_stops[i]);
                        let room = &mut self.typing_expect[t.room as usize];
                        match room.iter_mut().find(|e| e.0 == t.user) {
                            Some(e) => {
                                e.1 += starts;
                                e.2 += stops;
                            }
                            None => room.push((t.user, starts, stops)),
                        }
                    }
                    self.phase = Phase::CatchUp;
                    self.deadline = now_us() + self.plan.knobs.drain_ms * 1000;
                }
            }
        }
    }

    /// Starts the run at `start` (unix µs): schedules every socket's first action.
    fn go(&mut self, start: u64) {
        self.phase = Phase::Run;
        self.start_us = start;
        let k = self.plan.knobs.clone();
        self.end_us = if k.duration_ms > 0 {
            start + k.duration_ms * 1000
        } else {
            0
        };
        for slot in 0..self.conns.len() {
            let c = &mut self.conns[slot];
            let g = c.generation;
            match c.spec.role {
                Role::Sender { offset_us, .. } => {
                    self.storm_rooms[c.spec.room as usize] = true;
                    c.due = start + offset_us;
                    let due = c.due;
                    self.timer(due, slot, g, Tk::Send);
                }
                Role::Typer => {
                    let at = start + self.rng.below(k.typing_interval_ms.max(1) * 1000);
                    self.timer(at, slot, g, Tk::Typing);
                }
                Role::Reconnector => {
                    let at = start + self.rng.exp(k.drop_mean_ms as f64 * 1000.0) as u64;
                    self.timer(at, slot, g, Tk::Drop);
                }
                Role::Stormer => self.timer(start + k.storm_drop_ms * 1000, slot, g, Tk::Drop),
                _ => {}
            }
        }
        if !self.churners.is_empty() && k.churn_rate > 0.0 {
            self.churn_every_us = (1e6 / k.churn_rate).max(1.0) as u64;
            self.timer(start, usize::MAX >> 32, 0, Tk::Churn);
        }
    }

    /// Moves between phases; true when the driver is done.
    fn advance(&mut self) -> bool {
        let now = now_us();
        match self.phase {
            Phase::Setup if self.settled >= self.setup_total => {
                self.stats.setup_end_us = now;
                self.phase = Phase::WaitGo;
                let failed = self.setup_total as u64 - self.setup_ok;
                self.submit(PhaseId::Ready, vec![self.setup_ok, failed]);
            }
            Phase::Run | Phase::Drain | Phase::CatchUp if now >= self.next_check => {
                self.next_check = now + CHECK_US;
                return self.check_phase(now);
            }
            _ => {}
        }
        false
    }

    fn check_phase(&mut self, now: u64) -> bool {
        match self.phase {
            Phase::Run => {
                let over = if self.end_us > 0 {
                    now >= self.end_us
                } else {
                    self.conns
                        .iter()
                        .all(|c| !matches!(c.spec.role, Role::Sender { .. }) || c.done || c.dead)
                };
                if over {
                    self.phase = Phase::Drain;
                    self.deadline = now + self.plan.knobs.drain_ms * 1000;
                }
            }
            Phase::Drain => {
                let inflight: u64 = self.conns.iter().map(|c| u64::from(c.inflight)).sum();
                if inflight == 0 || now >= self.deadline {
                    self.stats.c.unacked += inflight;
                    for c in &self.conns {
                        self.stats.unacked_by_room[c.spec.room as usize] += u64::from(c.inflight);
                    }
                    self.phase = Phase::WaitSent;
                    let typers = self.plan.typers.len();
                    let mut v = SentValue {
                        room_max: self.room_max.clone(),
                        room_acked: self.room_acked.clone(),
                        typer_starts: vec![0; typers],
                        typer_stops: vec![0; typers],
                    };
                    for (&slot, &p) in &self.typer_pos {
                        // Typers alternate, starting with a start.
                        let n = self.conns[slot].n;
                        v.typer_starts[p] = n.div_ceil(2);
                        v.typer_stops[p] = n / 2;
                    }
                    self.submit(PhaseId::Sent, v.encode());
                }
            }
            Phase::CatchUp => {
                let behind = self.conns.iter().any(|c| {
                    (is_tracker(c) && c.track.last < self.expect[c.spec.room as usize])
                        || (is_typing_watcher(c) && self.typing_behind(c))
                });
                if !behind || now >= self.deadline {
                    return true;
                }
            }
            _ => {}
        }
        false
    }

    fn submit(&self, phase: PhaseId, value: Vec<u64>) {
        let _ = self.ctx.up.send(Up::Phase { phase, value });
    }

    /// End-of-run accounting, then the stats go to the coordinator.
    fn finish(&mut self) {
        self.phase = Phase::Done;
        let mut stats = std::mem::take(&mut self.stats);
        for c in &self.conns {
            if !is_tracker(c) {
                continue;
            }
            let upto = self.expect[c.spec.room as usize];
            let t = &c.track;
            let lost = t.missing(upto);
            stats.c.tracked += 1;
            stats.c.lost += lost;
            stats.c.duplicated += t.dups;
            stats.c.out_of_order += t.late;
            stats.c.gaps += t.gaps;
            if lost + t.dups + t.late + t.gaps > 0 {
                stats.sample(|| {
                    format!(
                        "socket {} room {}: last seq {} of {}, lost {lost}, dup {}, late {}, gaps {}",
                        c.spec.id, c.spec.room, t.last, upto, t.dups, t.late, t.gaps
                    )
                });
            }
        }
        self.check_typing(&mut stats);
        for seqs in &mut self.acked_seqs {
            let (ranges, dups) = checks::compress(seqs);
            stats.c.ack_dup_seqs += dups;
            stats.acked_ranges.push(ranges);
        }
        stats.ack_digests = std::mem::take(&mut self.ack_digests);
        for seqs in &mut self.system_seqs {
            let (ranges, _) = checks::compress(seqs);
            stats.system_ranges.push(ranges);
        }
        for slot in 0..self.conns.len() {
            self.close_socket(slot);
        }
        let _ = self.ctx.up.send(Up::Result(Box::new(stats)));
    }

    /// Whether a watcher still misses typing events it is due.
    fn typing_behind(&self, c: &Conn) -> bool {
        self.typing_expect[c.spec.room as usize]
            .iter()
            .filter(|e| e.0 != c.spec.user)
            .any(|&(user, starts, stops)| {
                let got = c.typing_got(user);
                got.0 < starts || got.1 < stops
            })
    }

    /// Every typing watcher must have seen every typing event of every other user
    /// typing in its room, once (see `checks::typing`).
    fn check_typing(&self, stats: &mut Stats) {
        for c in self.conns.iter().filter(|c| is_typing_watcher(c)) {
            for &(user, starts, stops) in &self.typing_expect[c.spec.room as usize] {
                if user == c.spec.user {
                    continue;
                }
                let got = c.typing_got(user);
                let r = checks::typing((starts, stops), got);
                stats.c.typing_checked += 1;
                stats.c.typing_missed_starts += r.missed_starts;
                stats.c.typing_missed_stops += r.missed_stops;
                stats.c.typing_repeated += r.repeated;
                if r != checks::TypingCheck::default() {
                    stats.sample(|| {
                        format!(
                            "socket {} room {}: typing of user {user}: sent {starts} starts / {stops} stops, got {} / {}",
                            c.spec.id, c.spec.room, got.0, got.1
                        )
                    });
                }
            }
        }
    }
}

/// Sockets whose message stream is checked at the end.
pub(crate) fn is_tracker(c: &Conn) -> bool {
    matches!(
        c.spec.role,
        Role::Receiver | Role::Reconnector | Role::Stormer
    ) && !c.dead
}

/// Sockets whose typing events are checked at the end: joined for the whole run
/// (typing events are not replayed, so a socket that reconnected may miss some by
/// design; a reconnect forced by the server fails the run anyway).
pub(crate) fn is_typing_watcher(c: &Conn) -> bool {
    matches!(c.spec.role, Role::Receiver | Role::Typer) && !c.dead && !c.reconnected
}
