//! The loop's connections as the protocols see them: [`Sessions`] over the connection
//! table (HTTP sessions for http/, WebSocket sessions for ws/), each connection a
//! [`Transport`] whose writes schedule a flush at the end of the turn.

use crate::base::session::{Sessions, Transport};
use crate::http::session::HttpSession;
use crate::net::buffer::OutQueue;
use crate::net::conn::{Conn, State};
use crate::net::slots::Slot;
use crate::ws::Session;
use mio::net::TcpStream;
use slab::Slab;
use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The connection table plus the turn's flush list.
pub struct Table<'a> {
    /// Connections, by key.
    conns: &'a mut Slab<Conn>,
    /// Connections to flush at the end of the turn.
    dirty: &'a mut Vec<usize>,
}

impl<'a> Table<'a> {
    /// The table over a loop's connections and flush list.
    pub fn new(conns: &'a mut Slab<Conn>, dirty: &'a mut Vec<usize>) -> Table<'a> {
        Table { conns, dirty }
    }

    /// Runs `f` on connection `k`'s session, as `pick` finds it in the state.
    fn with_state<S: ?Sized, R>(
        &mut self,
        k: usize,
        pick: impl FnOnce(&mut State) -> Option<&mut S>,
        f: impl FnOnce(&mut S, &mut dyn Transport) -> R,
    ) -> Option<R> {
        let conn = self.conns.get_mut(k)?;
        let Conn {
            sock,
            slot,
            out,
            state,
            last_write,
            dirty,
            ..
        } = conn;
        let session = pick(state)?;
        let mut io = ConnIo {
            sock,
            out,
            slot,
            last_write,
            wrote: false,
        };
        let r = f(session, &mut io);
        if io.wrote && !*dirty {
            *dirty = true;
            self.dirty.push(k);
        }
        Some(r)
    }

    fn keys_where(&self, pick: impl Fn(&State) -> bool) -> Vec<usize> {
        self.conns
            .iter()
            .filter(|(_, c)| pick(&c.state))
            .map(|(k, _)| k)
            .collect()
    }
}

/// One connection's socket and queue.
struct ConnIo<'a> {
    sock: &'a mut TcpStream,
    out: &'a mut OutQueue,
    slot: &'a Slot,
    last_write: &'a Instant,
    wrote: bool,
}

impl Read for ConnIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Transport for ConnIo<'_> {
    fn send(&mut self, bytes: Vec<u8>) {
        self.wrote = true;
        self.out.push_owned(bytes);
    }

    fn send_shared(&mut self, frame: Arc<[u8]>) {
        self.wrote = true;
        self.out.push_shared(frame);
    }

    fn queued(&self) -> usize {
        self.out.len()
    }

    fn backlog(&self) -> usize {
        self.out.backlog()
    }

    fn discard(&mut self) {
        self.wrote = true;
        self.out.clear();
    }

    fn peer(&self) -> IpAddr {
        self.slot.peer()
    }

    fn last_write(&self) -> Instant {
        *self.last_write
    }
}

impl Sessions<Session> for Table<'_> {
    fn with<R>(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut Session, &mut dyn Transport) -> R,
    ) -> Option<R> {
        self.with_state(
            k,
            |state| match state {
                State::Ws(session) => Some(&mut **session),
                _ => None,
            },
            f,
        )
    }

    fn keys(&self) -> Vec<usize> {
        self.keys_where(|s| matches!(s, State::Ws(_)))
    }
}

impl Sessions<HttpSession> for Table<'_> {
    fn with<R>(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut HttpSession, &mut dyn Transport) -> R,
    ) -> Option<R> {
        self.with_state(
            k,
            |state| match state {
                State::Http(session) => Some(session),
                _ => None,
            },
            f,
        )
    }

    fn keys(&self) -> Vec<usize> {
        self.keys_where(|s| matches!(s, State::Http(_)))
    }
}
