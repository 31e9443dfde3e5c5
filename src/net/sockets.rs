//! The loop's connections as the WebSocket layer sees them: [`ws::Sockets`] over the
//! connection table, each connection a [`ws::Transport`] whose writes schedule a flush
//! at the end of the turn.

use crate::net::buffer::OutQueue;
use crate::net::conn::{Conn, State};
use crate::ws::{Session, Sockets, Transport};
use mio::net::TcpStream;
use slab::Slab;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Instant;

/// The connection table plus the turn's flush list.
pub struct Table<'a> {
    /// Connections, by key.
    pub conns: &'a mut Slab<Conn>,
    /// Connections to flush at the end of the turn.
    pub dirty: &'a mut Vec<usize>,
}

/// One connection's socket and queue.
struct ConnIo<'a> {
    sock: &'a mut TcpStream,
    out: &'a mut OutQueue,
    last_read: &'a mut Instant,
    wrote: bool,
}

impl Read for ConnIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        if n > 0 {
            *self.last_read = Instant::now();
        }
        Ok(n)
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
}

impl Sockets for Table<'_> {
    fn with<R>(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut Session, &mut dyn Transport) -> R,
    ) -> Option<R> {
        let conn = self.conns.get_mut(k)?;
        let Conn {
            sock,
            out,
            state,
            last_read,
            dirty,
            ..
        } = conn;
        let State::Ws(session) = state else {
            return None;
        };
        let mut io = ConnIo {
            sock,
            out,
            last_read,
            wrote: false,
        };
        let r = f(session, &mut io);
        if io.wrote && !*dirty {
            *dirty = true;
            self.dirty.push(k);
        }
        Some(r)
    }

    fn keys(&self) -> Vec<usize> {
        self.conns
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Ws(_)))
            .map(|(k, _)| k)
            .collect()
    }
}
