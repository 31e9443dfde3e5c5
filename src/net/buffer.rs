//! Outbound byte queue: owned responses and shared fan-out frames, written with `writev`.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Bytes waiting to be written: owned by this connection, or shared with every
/// socket of a room (a fan-out frame encoded once).
pub enum Chunk {
    /// Bytes only this connection sends (HTTP responses, per-socket events).
    Owned(Vec<u8>),
    /// One encoded frame shared by many sockets.
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// What a write attempt achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Done,
    /// The socket is full; wait for WRITABLE.
    Blocked,
}

/// Most slices handed to one `writev`.
const MAX_IOV: usize = 64;

/// A connection's outbound queue.
#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_pos: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

impl OutQueue {
    /// Queues bytes owned by this connection.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        self.chunks.push_back(Chunk::Owned(bytes));
    }

    /// Queues a shared frame.
    pub fn push_shared(&mut self, bytes: Arc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        self.chunks.push_back(Chunk::Shared(bytes));
    }

    /// Bytes still to write.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes queued behind the chunk being written: what the peer has not even
    /// started to take (a single large frame in progress does not count).
    pub fn backlog(&self) -> usize {
        match self.chunks.front() {
            Some(front) => self.len - (front.bytes().len() - self.front_pos),
            None => 0,
        }
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything not yet started; a chunk already partly written stays, so the
    /// peer never sees half a frame followed by something else.
    pub fn clear(&mut self) {
        let keep = if self.front_pos > 0 {
            self.chunks.pop_front()
        } else {
            None
        };
        self.chunks = VecDeque::new();
        self.len = 0;
        if let Some(front) = keep {
            self.len = front.bytes().len() - self.front_pos;
            self.chunks.push_back(front);
        } else {
            self.front_pos = 0;
        }
    }

    /// Writes as much as the socket takes, several chunks per system call.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<Flush> {
        while self.len > 0 {
            let mut slices: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (i, c) in self.chunks.iter().take(MAX_IOV).enumerate() {
                let b = c.bytes();
                slices[n] = IoSlice::new(if i == 0 { &b[self.front_pos..] } else { b });
                n += 1;
            }
            match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.consume(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        // A queue that once held a burst should not keep its peak capacity.
        if self.chunks.capacity() > 64 {
            self.chunks = VecDeque::new();
        }
        Ok(Flush::Done)
    }

    fn consume(&mut self, mut written: usize) {
        self.len -= written;
        while written > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_pos;
            if written >= left {
                written -= left;
                self.chunks.pop_front();
                self.front_pos = 0;
            } else {
                self.front_pos += written;
                written = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `cap` bytes per call and `budget` in total.
    struct Trickle {
        out: Vec<u8>,
        cap: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.cap).min(self.budget);
            self.out.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order() {
        let mut q = OutQueue::default();
        q.push_owned(b"hello ".to_vec());
        q.push_shared(Arc::from(&b"shared "[..]));
        q.push_owned(b"world".to_vec());
        let mut w = Trickle {
            out: vec![],
            cap: 4,
            budget: 9,
        };
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Blocked);
        assert_eq!(q.len(), 18 - 9);
        w.budget = 100;
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Done);
        assert_eq!(w.out, b"hello shared world");
        assert!(q.is_empty());
    }

    #[test]
    fn clear_keeps_a_started_chunk() {
        let mut q = OutQueue::default();
        q.push_owned(b"abcdef".to_vec());
        q.push_owned(b"ghi".to_vec());
        let mut w = Trickle {
            out: vec![],
            cap: 4,
            budget: 2,
        };
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Blocked);
        q.clear();
        assert_eq!(q.len(), 4);
        q.push_owned(b"Z".to_vec());
        w.budget = 100;
        q.write_to(&mut w).unwrap();
        assert_eq!(w.out, b"abcdefZ");
    }
}
