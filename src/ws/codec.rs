//! Frames: outgoing text frames are encoded once (tungstenite's header code) and shared;
//! incoming bytes go through tungstenite's protocol state machine over our socket.

use crate::ws::Transport;
use std::io::{self, Read, Write};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// A complete unmasked server text frame holding `payload`.
pub fn text_frame(payload: &[u8]) -> Vec<u8> {
    frame(Data::Text, payload)
}

/// A complete unmasked server binary frame (the echo endpoint only).
pub fn binary_frame(payload: &[u8]) -> Vec<u8> {
    frame(Data::Binary, payload)
}

fn frame(kind: Data, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Data(kind),
        mask: None,
    };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(len, &mut out);
    out.extend_from_slice(payload);
    out
}

/// The stream tungstenite sees: reads come from the socket, writes (pongs, close
/// frames) go to the connection's outbound queue so that they stay in order with the
/// shared frames queued by the hub.
pub struct WsIo<'a> {
    /// The connection.
    pub t: &'a mut dyn Transport,
    /// Bytes read through it (a session's per-turn read budget).
    pub read: usize,
}

impl<'a> WsIo<'a> {
    /// An adapter over `t`.
    pub fn new(t: &'a mut dyn Transport) -> WsIo<'a> {
        WsIo { t, read: 0 }
    }
}

impl Read for WsIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.t.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

impl Write for WsIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.t.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths() {
        assert_eq!(text_frame(b"hi"), vec![0x81, 2, b'h', b'i']);
        let mid = text_frame(&[b'a'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 1, 44]);
        let big = text_frame(&vec![b'a'; 70000]);
        assert_eq!(big[1], 127);
        assert_eq!(big.len(), 10 + 70000);
    }
}
