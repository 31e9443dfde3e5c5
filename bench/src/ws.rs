//! WebSocket client framing (RFC 6455) and the HTTP upgrade, hand-written so that a
//! connection costs only the bytes it is actually holding: no per-socket buffers are
//! allocated up front, unlike a general-purpose WebSocket library.

/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Continuation frame opcode.
pub const OP_CONT: u8 = 0x0;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// Appends one masked client frame (FIN set) to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.reserve(payload.len() + 14);
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// One frame received from the server (servers never mask).
#[derive(Debug, PartialEq)]
pub struct Frame<'a> {
    /// Last fragment of a message.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// Payload.
    pub payload: &'a [u8],
}

/// Parses one frame at the start of `buf`: `Ok(None)` when incomplete, else the frame
/// and the bytes it used. A masked frame or reserved bits are protocol errors.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err("reserved bits set");
    }
    if b1 & 0x80 != 0 {
        return Err("server frame is masked");
    }
    let (len, head) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > (1 << 30) {
        return Err("frame too large");
    }
    let end = head + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0F,
            payload: &buf[head..end],
        },
        end,
    )))
}

/// The upgrade request for `/ws?token=...`.
pub fn upgrade_request(host: &str, token: &str, key: &str) -> Vec<u8> {
    format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Parses the upgrade answer: `Ok(None)` when incomplete, else its status and the
/// length of the head (frames may follow it in the same read). `Sec-WebSocket-Accept`
/// is not verified: that would need SHA-1 for no benefit against our own server.
pub fn parse_upgrade_response(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((resp.code.unwrap_or(0), n))),
        Ok(httparse::Status::Partial) if buf.len() > 16 * 1024 => {
            Err("upgrade answer head too large".into())
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("bad upgrade answer: {e}")),
    }
}

/// The close code carried by a close frame's payload (1005 when absent).
pub fn close_code(payload: &[u8]) -> u16 {
    if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]])
    } else {
        1005
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let b1 = frame[1] & 0x7F;
        let (len, mut at) = match b1 {
            126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask = &frame[at..at + 4];
        at += 4;
        let p = frame[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect();
        (frame[0], p)
    }

    #[test]
    fn encodes_masked_frames_of_each_length_class() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, OP_TEXT, &payload, [1, 2, 3, 4]);
            assert_eq!(out[1] & 0x80, 0x80);
            let (b0, p) = unmask(&out);
            assert_eq!(b0, 0x81);
            assert_eq!(p, payload, "len {len}");
        }
    }

    #[test]
    fn decodes_server_frames() {
        let mut buf = vec![0x81, 3, b'a', b'b', b'c', 0x88, 2, 0x03, 0xF5];
        let (f, n) = decode_frame(&buf).unwrap().unwrap();
        assert_eq!((f.fin, f.opcode, f.payload), (true, OP_TEXT, &b"abc"[..]));
        let (f, m) = decode_frame(&buf[n..]).unwrap().unwrap();
        assert_eq!(f.opcode, OP_CLOSE);
        assert_eq!(close_code(f.payload), 1013);
        assert_eq!(n + m, buf.len());
        assert_eq!(decode_frame(&buf[..4]).unwrap(), None);
        buf[1] |= 0x80;
        assert!(decode_frame(&buf).is_err());
        let mut big = vec![0x81, 126, 0x01, 0x00];
        big.extend(std::iter::repeat_n(b'x', 256));
        let (f, n) = decode_frame(&big).unwrap().unwrap();
        assert_eq!((f.payload.len(), n), (256, 260));
        assert_eq!(decode_frame(&big[..100]).unwrap(), None);
    }

    #[test]
    fn parses_upgrade_answer() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        assert_eq!(
            parse_upgrade_response(head).unwrap(),
            Some((101, head.len() - 2))
        );
        assert_eq!(
            parse_upgrade_response(b"HTTP/1.1 401 Unauth").unwrap(),
            None
        );
    }
}
