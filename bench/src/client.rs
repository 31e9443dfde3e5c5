//! One non-blocking WebSocket client connection: its socket, its buffers (empty until
//! there is something to hold), where it is in its life, and its role's state.

use crate::plan::ConnSpec;
use crate::track::Track;
use crate::util::{Rng, base64};
use crate::ws;
use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

/// Buffers above this size are released once empty, so a burst does not pin memory
/// on an idle socket for the rest of the run.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No socket.
    Down,
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request written, waiting for `101`.
    Upgrading,
    /// Upgraded.
    Open,
    /// We sent a close frame and wait for the server's close or EOF.
    Closing,
}

/// A client connection and the state of the role it plays.
pub struct Conn {
    /// What the plan says about it.
    pub spec: ConnSpec,
    /// Bumped on every new socket so stale events and timers are recognised.
    pub generation: u32,
    /// Life-cycle state.
    pub state: State,
    /// The socket, when there is one.
    pub sock: Option<TcpStream>,
    /// Bytes of an incomplete frame carried over to the next read.
    pub rbuf: Vec<u8>,
    /// Bytes not yet accepted by the kernel.
    pub wbuf: Vec<u8>,
    /// Payload of a fragmented message being reassembled (servers rarely fragment).
    pub frag: Vec<u8>,
    /// Start of the step being timed (connect, join, reconnect or churn cycle), unix µs.
    pub t0: u64,
    /// Start of the current reconnect (0 = not reconnecting).
    pub t_reconnect: u64,
    /// `join_room` sent at (unix µs); 0 = not waiting for `joined_room`.
    pub t_join: u64,
    /// Joined its room.
    pub joined: bool,
    /// Initial setup finished (successfully or not).
    pub settled: bool,
    /// Setup failed: left out of the end-of-run checks.
    pub dead: bool,
    /// Seq tracking of its room (receivers).
    pub track: Track,
    /// Messages (or typing events) sent so far.
    pub n: u64,
    /// Sends waiting for their ack.
    pub inflight: u32,
    /// Next scheduled send (open loop), unix µs.
    pub due: u64,
    /// Sender reached its count.
    pub done: bool,
    /// Reconnected at least once after setup.
    pub reconnected: bool,
    /// When a typer last wrote a typing_start (unix µs; 0 = never).
    pub last_start_us: u64,
    /// Typing events received, per typing user: (user, starts, stops).
    pub typing_seen: Vec<(u32, u32, u32)>,
    /// Storm: the last seq seen when the storm dropped it.
    pub storm_last: u64,
    /// Storm: when its rejoin started (unix µs).
    pub storm_t0: u64,
    /// Storm: its room's head at the rejoin, to be reached.
    pub storm_target: u64,
    /// Storm: rejoined and not yet at `storm_target`.
    pub storm_pending: bool,
}

impl Conn {
    /// A connection without a socket yet.
    pub fn new(spec: ConnSpec) -> Conn {
        Conn {
            spec,
            generation: 0,
            state: State::Down,
            sock: None,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            frag: Vec::new(),
            t0: 0,
            t_reconnect: 0,
            t_join: 0,
            joined: false,
            settled: false,
            dead: false,
            track: Track::default(),
            n: 0,
            inflight: 0,
            due: 0,
            done: false,
            reconnected: false,
            last_start_us: 0,
            typing_seen: Vec::new(),
            storm_last: 0,
            storm_t0: 0,
            storm_target: 0,
            storm_pending: false,
        }
    }

    /// Counts one typing event from `user`.
    pub fn typing_event(&mut self, user: u32, typing: bool) {
        let i = match self.typing_seen.iter().position(|e| e.0 == user) {
            Some(i) => i,
            None => {
                self.typing_seen.push((user, 0, 0));
                self.typing_seen.len() - 1
            }
        };
        let e = &mut self.typing_seen[i];
        if typing {
            e.1 += 1;
        } else {
            e.2 += 1;
        }
    }

    /// (starts, stops) received from `user`.
    pub fn typing_got(&self, user: u32) -> (u64, u64) {
        self.typing_seen
            .iter()
            .find(|e| e.0 == user)
            .map_or((0, 0), |e| (u64::from(e.1), u64::from(e.2)))
    }

    /// Starts a TCP connect; the upgrade request is queued to go out once connected.
    pub fn start(
        &mut self,
        server: SocketAddr,
        source: Option<Ipv4Addr>,
        host: &str,
        token: &str,
        rng: &mut Rng,
    ) -> io::Result<()> {
        self.drop_socket();
        self.generation = self.generation.wrapping_add(1);
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        if let Some(ip) = source {
            crate::util::bind_address_no_port(s.as_raw_fd());
            s.bind(&SocketAddrV4::new(ip, 0).into())?;
        }
        match s.connect(&server.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let key: [u8; 16] = {
            let (a, b) = (rng.next(), rng.next());
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&a.to_le_bytes());
            k[8..].copy_from_slice(&b.to_le_bytes());
            k
        };
        self.wbuf = ws::upgrade_request(host, token, &base64(&key));
        self.sock = Some(TcpStream::from_std(s.into()));
        self.state = State::Connecting;
        self.joined = false;
        self.t_join = 0;
        Ok(())
    }

    /// Closes the socket at once (no close frame) and forgets buffered bytes.
    pub fn drop_socket(&mut self) {
        self.sock = None;
        self.state = State::Down;
        self.joined = false;
        self.t_join = 0;
        self.rbuf = Vec::new();
        self.wbuf = Vec::new();
        self.frag = Vec::new();
    }

    /// Queues a masked frame.
    pub fn queue(&mut self, opcode: u8, payload: &[u8], rng: &mut Rng) {
        let mask = (rng.next() as u32).to_ne_bytes();
        ws::encode_frame(&mut self.wbuf, opcode, payload, mask);
    }

    /// Writes what the kernel accepts; returns the bytes written.
    pub fn flush(&mut self) -> io::Result<usize> {
        let Some(s) = self.sock.as_mut() else {
            return Ok(0);
        };
        if self.state == State::Connecting {
            return Ok(0);
        }
        let mut done = 0;
        while done < self.wbuf.len() {
            match s.write(&self.wbuf[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.wbuf.drain(..done);
        if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_CAPACITY {
            self.wbuf = Vec::new();
        }
        Ok(done)
    }

    /// Checks whether a TCP connect finished: `Ok(true)` connected, `Ok(false)` still
    /// in progress, `Err` failed.
    pub fn connect_done(&mut self) -> io::Result<bool> {
        let Some(s) = self.sock.as_ref() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases a carried-over read buffer that grew large.
    pub fn trim_rbuf(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP_CAPACITY {
            self.rbuf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Role;

    #[test]
    fn connection_state_is_small() {
        // 20,000 sockets per process: keep the fixed part of a connection small.
        assert!(
            std::mem::size_of::<Conn>() <= 320,
            "{}",
            std::mem::size_of::<Conn>()
        );
        let c = Conn::new(ConnSpec {
            id: 0,
            user: 0,
            room: 0,
            role: Role::Receiver,
        });
        assert_eq!(c.rbuf.capacity() + c.wbuf.capacity() + c.frag.capacity(), 0);
    }
}
