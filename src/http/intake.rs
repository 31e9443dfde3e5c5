//! Streamed request bodies (uploads): the body goes from the socket to a worker chunk by
//! chunk, so the event loop never holds a whole file; the mirror of `stream.rs`, which
//! streams answers the other way.
//!
//! The loop's HTTP session reads at most [`CHUNK_BYTES`] at a time and offers each chunk
//! to the worker over a channel bounded to [`CHANNEL_CHUNKS`] ([`IntakeSender::offer`]).
//! When the channel is full the session keeps the chunk and reads nothing more: the
//! bytes stay in the kernel and TCP's window holds the client back. The worker takes
//! chunks with [`Intake::next`]; a take from a channel the loop found full posts one
//! `HttpEvent::Intake`, and the loop offers the kept chunk and reads again (the socket
//! is edge-triggered: it would not say again that bytes are waiting).
//!
//! The end: once the session offered `Content-Length` bytes it marks the body complete
//! and drops its sender; the worker's next take then answers `None`. A sender dropped
//! without that mark (the client left, or the node stops) is an aborted body: the take
//! fails and the worker rolls back. A worker that stops taking (it refused the upload)
//! drops its end: the session's next offer is `Gone` and it stops reading; the answer
//! then closes the connection (the rest of the body is never read).

use crate::http::context::{HttpEvent, ReplyTo};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Most bytes read from the socket into one chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks the channel holds before the loop stops reading.
pub const CHANNEL_CHUNKS: usize = 4;

/// What both ends of a body share: whether the loop waits, whether the body is whole.
struct Flow {
    /// The loop found the channel full and waits for a take.
    blocked: AtomicBool,
    /// Every byte of the body was offered: a closed channel is the end, not an abort.
    complete: AtomicBool,
    to: ReplyTo,
}

/// The loop's end of a request body, held by the connection's HTTP session.
pub struct IntakeSender {
    tx: Sender<Vec<u8>>,
    shared: Arc<Flow>,
}

impl std::fmt::Debug for IntakeSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IntakeSender({} chunks)", self.tx.len())
    }
}

/// The worker's end of a request body.
pub struct Intake {
    rx: Receiver<Vec<u8>>,
    shared: Arc<Flow>,
}

/// A body for the request `to` names.
pub fn channel(to: ReplyTo) -> (IntakeSender, Intake) {
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CHUNKS);
    let shared = Arc::new(Flow {
        blocked: AtomicBool::new(false),
        complete: AtomicBool::new(false),
        to,
    });
    (
        IntakeSender {
            tx,
            shared: shared.clone(),
        },
        Intake { rx, shared },
    )
}

/// What became of a chunk offered to the worker.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// The worker has it.
    Taken,
    /// The channel is full: the chunk comes back; a wake follows the worker's next take.
    Full(Vec<u8>),
    /// The worker stopped taking.
    Gone,
}

impl IntakeSender {
    /// Offers a chunk without blocking.
    pub fn offer(&self, chunk: Vec<u8>) -> Offer {
        let chunk = match self.tx.try_send(chunk) {
            Ok(()) => return Offer::Taken,
            Err(TrySendError::Disconnected(_)) => return Offer::Gone,
            Err(TrySendError::Full(c)) => c,
        };
        self.shared.blocked.store(true, Ordering::Release);
        // The worker may have emptied the channel between the failed send and the
        // flag, and then it posts no wake: one more try settles it (a wake that comes
        // although this try succeeded only makes the loop look again).
        match self.tx.try_send(chunk) {
            Ok(()) => Offer::Taken,
            Err(TrySendError::Disconnected(_)) => Offer::Gone,
            Err(TrySendError::Full(c)) => Offer::Full(c),
        }
    }

    /// Every byte was offered: the worker's take after the last chunk answers `None`.
    pub fn complete(self) {
        self.shared.complete.store(true, Ordering::Release);
    }
}

impl Intake {
    /// The next chunk of the body; `None` once it is complete. Fails with `TimedOut`
    /// when nothing comes for `timeout`, and with `UnexpectedEof` when the body was
    /// abandoned (the client left, the node stops).
    pub fn next(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        match self.rx.recv_timeout(timeout) {
            Ok(chunk) => {
                if self.shared.blocked.swap(false, Ordering::AcqRel) {
                    let to = &self.shared.to;
                    to.to.post(HttpEvent::Intake {
                        key: to.key,
                        req: to.req,
                    });
                }
                Ok(Some(chunk))
            }
            Err(RecvTimeoutError::Timeout) => Err(io::ErrorKind::TimedOut.into()),
            Err(RecvTimeoutError::Disconnected) => {
                if self.shared.complete.load(Ordering::Acquire) {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::context::Replies;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Loop(Mutex<Vec<(usize, u64)>>);

    impl Replies for Loop {
        fn post(&self, ev: HttpEvent) {
            if let HttpEvent::Intake { key, req } = ev {
                self.0.lock().unwrap().push((key, req));
            }
        }
    }

    fn pair() -> (Arc<Loop>, IntakeSender, Intake) {
        let l = Arc::new(Loop::default());
        let (s, i) = channel(ReplyTo {
            to: l.clone(),
            key: 2,
            req: 5,
        });
        (l, s, i)
    }

    const T: Duration = Duration::from_millis(50);

    #[test]
    fn a_full_channel_hands_the_chunk_back_and_a_take_wakes_the_loop_once() {
        let (l, s, i) = pair();
        for n in 0..CHANNEL_CHUNKS {
            assert_eq!(s.offer(vec![n as u8]), Offer::Taken);
        }
        assert_eq!(s.offer(vec![9]), Offer::Full(vec![9]));
        assert!(l.0.lock().unwrap().is_empty());
        assert_eq!(i.next(T).unwrap(), Some(vec![0]));
        assert_eq!(i.next(T).unwrap(), Some(vec![1]));
        assert_eq!(
            *l.0.lock().unwrap(),
            [(2, 5)],
            "one wake for the blocked loop"
        );
        assert_eq!(s.offer(vec![9]), Offer::Taken);
        s.complete();
        for n in [2, 3, 9] {
            assert_eq!(i.next(T).unwrap(), Some(vec![n]));
        }
        assert_eq!(i.next(T).unwrap(), None, "complete: the end");
    }

    #[test]
    fn an_abandoned_body_fails_and_a_stopped_worker_is_gone() {
        let (_l, s, i) = pair();
        assert_eq!(i.next(T).unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(s.offer(vec![1]), Offer::Taken);
        drop(s);
        assert_eq!(i.next(T).unwrap(), Some(vec![1]));
        assert_eq!(i.next(T).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (_l, s, i) = pair();
        drop(i);
        assert_eq!(s.offer(vec![1]), Offer::Gone);
    }
}
