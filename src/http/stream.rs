//! Streamed response bodies: an answer whose length is not known up front and whose
//! bytes a worker thread produces while the client takes them (exports today, file
//! downloads later), in constant memory on the node.
//!
//! A route hands the job to a worker ([`respond`]). The worker first decides the answer
//! (an error is an ordinary [`Response`]); to stream, it posts the head with a
//! [`BodyReader`] to the loop and writes the body into a [`BodyWriter`] (`io::Write`).
//! The writer cuts the bytes into chunks of [`CHUNK_BYTES`] and sends them over a
//! channel bounded to [`CHANNEL_CHUNKS`]; when the channel is full the worker blocks, so
//! a slow client holds back the worker instead of growing the node's memory. A chunk
//! sent when none was waiting wakes the loop with one `HttpEvent::Body` (coalesced like
//! the loop's own wakes); the loop moves chunks from the channel to the connection's
//! queue while that queue holds less than [`HIGH_WATER`] bytes and takes more when the
//! peer drained it. The session frames them with chunked transfer encoding.
//!
//! The end: the worker's `finish` sends the terminating chunk. A worker that stops
//! without it (an error, a panic) leaves the body unterminated and the loop closes the
//! connection, so the client sees a truncated body, never a short one that looks whole.
//! A client that goes away drops the connection's reader: the worker's next send fails
//! with `BrokenPipe` and it stops.

use crate::base::error::ApiError;
use crate::base::session::Transport;
use crate::http::context::{HttpCtx, HttpEvent, ReplyTo};
use crate::http::response::Response;
use crate::http::routes::Routed;
use crate::pg::pool::{JobQueue, Worker};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes the writer gathers before it sends a chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks the channel holds before the worker waits.
pub const CHANNEL_CHUNKS: usize = 4;
/// Bytes queued on the connection below which the loop takes more chunks.
pub const HIGH_WATER: usize = 256 * 1024;

/// What travels from the worker to the loop.
enum Piece {
    /// Body bytes.
    Data(Vec<u8>),
    /// The body is complete.
    End,
}

/// The loop's side of the wake: one event per batch of chunks.
struct Wake {
    /// An event is posted that the loop has not handled yet.
    pending: AtomicBool,
    to: ReplyTo,
}

impl Wake {
    fn ring(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.to.to.post(HttpEvent::Body {
                key: self.to.key,
                req: self.to.req,
            });
        }
    }
}

/// The worker's end of a streamed body.
pub struct BodyWriter {
    tx: Option<Sender<Piece>>,
    buf: Vec<u8>,
    wake: Arc<Wake>,
}

/// The connection's end of a streamed body, held by its HTTP session.
pub struct BodyReader {
    rx: Receiver<Piece>,
    wake: Arc<Wake>,
}

impl std::fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyReader({} chunks)", self.rx.len())
    }
}

/// A body for the request `to` answers.
pub fn channel(to: ReplyTo) -> (BodyWriter, BodyReader) {
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CHUNKS);
    let wake = Arc::new(Wake {
        pending: AtomicBool::new(false),
        to,
    });
    (
        BodyWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK_BYTES),
            wake: wake.clone(),
        },
        BodyReader { rx, wake },
    )
}

impl BodyWriter {
    /// Sends what is gathered; blocks while the channel is full.
    fn push(&mut self, piece: Piece) -> io::Result<()> {
        let Some(tx) = &self.tx else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        tx.send(piece)
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        self.wake.ring();
        Ok(())
    }

    /// Sends the rest and the end of the body.
    pub fn finish(mut self) -> io::Result<()> {
        io::Write::flush(&mut self)?;
        self.push(Piece::End)?;
        self.tx = None;
        Ok(())
    }
}

impl io::Write for BodyWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.push(Piece::Data(chunk))
    }
}

impl Drop for BodyWriter {
    /// A body left unfinished: the loop learns it (from the closed channel) at its
    /// next pump, which this wake makes sure comes.
    fn drop(&mut self) {
        if self.tx.take().is_some() {
            self.wake.ring();
        }
    }
}

/// Where a streamed body stands after the loop took what it could.
#[derive(Debug, PartialEq, Eq)]
pub enum Pumped {
    /// More will come (or the queue is full): wait for a wake or a drain.
    More,
    /// The terminating chunk is queued.
    Done,
    /// The worker stopped without ending the body: close the connection.
    Aborted,
}

impl BodyReader {
    /// Moves chunks to the connection's queue, framed for chunked transfer encoding,
    /// while it holds less than [`HIGH_WATER`] bytes.
    pub fn pump(&mut self, t: &mut dyn Transport) -> Pumped {
        // Cleared before reading: a chunk sent after this posts a new wake.
        self.wake.pending.store(false, Ordering::Release);
        while t.queued() < HIGH_WATER {
            match self.rx.try_recv() {
                Ok(Piece::Data(chunk)) => {
                    t.send(format!("{:x}\r\n", chunk.len()).into_bytes());
                    t.send(chunk);
                    t.send(b"\r\n".to_vec());
                }
                Ok(Piece::End) => {
                    t.send(b"0\r\n\r\n".to_vec());
                    return Pumped::Done;
                }
                Err(TryRecvError::Empty) => return Pumped::More,
                Err(TryRecvError::Disconnected) => return Pumped::Aborted,
            }
        }
        Pumped::More
    }
}

/// Serves a request with a streamed body on a thread of `queue`: `open` decides the
/// answer (an error is answered as usual, before any byte of the body), then `write`
/// produces the body. An error of `write` after the head is sent is logged and
/// truncates the body; a client that left stops it quietly.
pub fn respond<T: Send + 'static>(
    queue: &JobQueue,
    ctx: &Arc<HttpCtx>,
    reply: &ReplyTo,
    content_type: &'static str,
    open: impl FnOnce(&mut Worker) -> Result<T, ApiError> + Send + 'static,
    write: impl FnOnce(&mut Worker, T, &mut BodyWriter) -> io::Result<()> + Send + 'static,
) -> Result<Routed, ApiError> {
    let open = move |w: &mut Worker| {
        open(w).map(|v| Opened::Stream(Response::raw(200, content_type, Vec::new()), v))
    };
    respond_with(queue, ctx, reply, open, write)
}

/// What a streamed route's check step decided.
pub enum Opened<T> {
    /// A whole answer with no streamed body (`304 Not Modified`, say).
    Whole(Response),
    /// The head of the answer (status, type, headers; its body is ignored), and what
    /// the write step produces the body from.
    Stream(Response, T),
}

/// [`respond`] with the head (or a whole answer) chosen by `open`.
pub fn respond_with<T: Send + 'static>(
    queue: &JobQueue,
    ctx: &Arc<HttpCtx>,
    reply: &ReplyTo,
    open: impl FnOnce(&mut Worker) -> Result<Opened<T>, ApiError> + Send + 'static,
    write: impl FnOnce(&mut Worker, T, &mut BodyWriter) -> io::Result<()> + Send + 'static,
) -> Result<Routed, ApiError> {
    let (ctx, reply) = (ctx.clone(), reply.clone());
    queue.submit(Box::new(move |w| {
        let to = reply.clone();
        let replier = reply.arm();
        let (head, opened) = match open(w) {
            Ok(Opened::Stream(head, v)) => (head, v),
            Ok(Opened::Whole(resp)) => return replier.send(resp),
            Err(e) => return replier.send(Response::from_error(&e)),
        };
        let (mut body, reader) = channel(to);
        replier.stream(head, reader);
        match write(w, opened, &mut body).and_then(|()| body.finish()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                ctx.metrics
                    .streams_abandoned
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => log::error!("a streamed answer stopped: {e}"),
        }
    }))?;
    Ok(Routed::Pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::context::Replies;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Loop(Mutex<Vec<(usize, u64)>>);

    impl Replies for Loop {
        fn post(&self, ev: HttpEvent) {
            if let HttpEvent::Body { key, req } = ev {
                self.0.lock().unwrap().push((key, req));
            }
        }
    }

    #[derive(Default)]
    struct Queue(Vec<u8>);

    impl Read for Queue {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl Transport for Queue {
        fn send(&mut self, bytes: Vec<u8>) {
            self.0.extend(bytes);
        }
        fn send_shared(&mut self, frame: Arc<[u8]>) {
            self.0.extend_from_slice(&frame);
        }
        fn queued(&self) -> usize {
            self.0.len()
        }
        fn backlog(&self) -> usize {
            self.0.len()
        }
        fn discard(&mut self) {
            self.0.clear();
        }
        fn peer(&self) -> std::net::IpAddr {
            std::net::Ipv4Addr::LOCALHOST.into()
        }
        fn last_write(&self) -> std::time::Instant {
            std::time::Instant::now()
        }
    }

    fn pair() -> (Arc<Loop>, BodyWriter, BodyReader) {
        let l = Arc::new(Loop::default());
        let (w, r) = channel(ReplyTo {
            to: l.clone(),
            key: 3,
            req: 9,
        });
        (l, w, r)
    }

    #[test]
    fn chunks_are_framed_woken_once_and_terminated() {
        let (l, mut w, mut r) = pair();
        w.write_all(b"hello\n").unwrap();
        w.flush().unwrap();
        w.write_all(b"world\n").unwrap();
        w.flush().unwrap();
        assert_eq!(*l.0.lock().unwrap(), [(3, 9)], "one wake for both chunks");
        let mut q = Queue::default();
        assert_eq!(r.pump(&mut q), Pumped::More);
        w.finish().unwrap();
        assert_eq!(l.0.lock().unwrap().len(), 2, "woken again after a pump");
        assert_eq!(r.pump(&mut q), Pumped::Done);
        assert_eq!(q.0, b"6\r\nhello\n\r\n6\r\nworld\n\r\n0\r\n\r\n");
    }

    #[test]
    fn the_worker_waits_for_the_loop_and_stops_when_it_goes() {
        let (_l, mut w, mut r) = pair();
        let worker = std::thread::spawn(move || {
            let line = vec![b'x'; CHUNK_BYTES];
            let mut sent = 0;
            while w.write_all(&line).is_ok() {
                sent += 1;
            }
            sent
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(r.rx.len(), CHANNEL_CHUNKS, "bounded: the worker blocks");
        let mut q = Queue::default();
        assert_eq!(r.pump(&mut q), Pumped::More);
        assert!(q.0.len() >= HIGH_WATER && q.0.len() < HIGH_WATER + CHUNK_BYTES + 16);
        drop(r);
        let sent = worker.join().unwrap();
        assert!(
            sent <= 2 * CHANNEL_CHUNKS + 2,
            "stopped after {sent} chunks"
        );
    }

    #[test]
    fn a_worker_that_stops_early_aborts_the_body() {
        let (_l, mut w, mut r) = pair();
        w.write_all(b"partial").unwrap();
        w.flush().unwrap();
        drop(w);
        let mut q = Queue::default();
        assert_eq!(r.pump(&mut q), Pumped::Aborted);
        assert!(q.0.starts_with(b"7\r\npartial\r\n"));
    }
}
