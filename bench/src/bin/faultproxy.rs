//! faultproxy: a TCP proxy between chat-bench and chatd that breaks the server's
//! WebSocket stream on purpose, once, so a test can check that chat-bench's verdict
//! turns to FAIL with the right counter.
//!
//! ```text
//! faultproxy --upstream HOST:PORT [--listen 127.0.0.1:0] [--at N] FAULT
//! FAULT: --drop-message | --duplicate-message | --reorder-messages |
//!        --inject-foreign | --inject-garbage | --close-1013 | --none
//! ```
//!
//! Client-to-server bytes pass through untouched. Server-to-client bytes pass through
//! untouched until a connection's first HTTP answer: a `101` switches the connection
//! to WebSocket framing (read from the server side only: unmasked frames, whole
//! frames forwarded one by one), anything else (REST calls) stays a byte pipe.
//!
//! The fault hits one receiver: the first connection that gets a message frame
//! (`new_message` or `new_message_batch`), at its `--at`-th message frame (default 5):
//! - `--drop-message`: the frame is not forwarded (the receiver misses its messages);
//! - `--duplicate-message`: the frame is forwarded twice;
//! - `--reorder-messages`: the frame is held and forwarded after the next one;
//! - `--inject-foreign`: after the frame, a `new_message` of a room nobody joined;
//! - `--inject-garbage`: after the frame, a text frame that is not JSON;
//! - `--close-1013`: instead of the frame, a close frame with code 1013 ("try again
//!   later", what chatd sends a slow consumer), then both sockets are closed.
//!
//! It prints `listening on ADDR` on stdout once ready (so `--listen 127.0.0.1:0`
//! works), and `fault fired: ...` when the fault happens.

#[allow(dead_code)]
#[path = "../ws.rs"]
mod ws;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    Drop,
    Duplicate,
    Reorder,
    Foreign,
    Garbage,
    Close1013,
}

/// What the connections share: the fault, the connection it hits, whether it fired.
struct Shared {
    fault: Fault,
    at: u64,
    target: Mutex<Option<u64>>,
    fired: AtomicBool,
}

const FOREIGN: &str = r#"{"event":"new_message","data":{"id":1,"seq":1,"room_id":"00000000-0000-7000-8000-00000000f00d","user_id":"00000000-0000-7000-8000-000000000001","username":"faultproxy","content":"t=0 injected by faultproxy","created_at":"2026-01-01T00:00:00.000Z"}}"#;
const GARBAGE: &str = "this frame is not JSON {";

fn usage() -> ! {
    eprintln!(
        "usage: faultproxy --upstream HOST:PORT [--listen ADDR] [--at N] \
         (--drop-message|--duplicate-message|--reorder-messages|--inject-foreign|--inject-garbage|--close-1013|--none)"
    );
    std::process::exit(3)
}

fn main() {
    let mut upstream = None;
    let mut listen = "127.0.0.1:0".to_string();
    let mut at = 5u64;
    let mut fault = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let f = match a.as_str() {
            "--upstream" => {
                upstream = args.next();
                continue;
            }
            "--listen" => {
                listen = args.next().unwrap_or_else(|| usage());
                continue;
            }
            "--at" => {
                at = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage());
                continue;
            }
            "--none" => Fault::None,
            "--drop-message" => Fault::Drop,
            "--duplicate-message" => Fault::Duplicate,
            "--reorder-messages" => Fault::Reorder,
            "--inject-foreign" => Fault::Foreign,
            "--inject-garbage" => Fault::Garbage,
            "--close-1013" => Fault::Close1013,
            _ => usage(),
        };
        if fault.replace(f).is_some() {
            eprintln!("faultproxy: one fault at a time");
            usage();
        }
    }
    let (Some(upstream), Some(fault)) = (upstream, fault) else {
        usage()
    };
    let listener = TcpListener::bind(&listen).unwrap_or_else(|e| {
        eprintln!("faultproxy: bind {listen}: {e}");
        std::process::exit(3)
    });
    let addr = listener.local_addr().expect("bound address");
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    let shared = Arc::new(Shared {
        fault,
        at,
        target: Mutex::new(None),
        fired: AtomicBool::new(false),
    });
    let ids = AtomicU64::new(0);
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let server = match TcpStream::connect(&upstream) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("faultproxy: upstream {upstream}: {e}");
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        std::thread::spawn(move || pipe(c2, s2));
        let shared = shared.clone();
        std::thread::spawn(move || server_to_client(id, server, client, &shared));
    }
}

/// Client to server: bytes as they come.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// An unmasked server frame (FIN set).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xFFFF {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Whether a text payload is a live message frame.
fn is_message(payload: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Env<'a> {
        #[serde(borrow)]
        event: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Env>(payload)
        .is_ok_and(|e| e.event == "new_message" || e.event == "new_message_batch")
}

/// Server to client: the HTTP answer, then frame by frame with the fault applied.
fn server_to_client(id: u64, mut server: TcpStream, mut client: TcpStream, shared: &Shared) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // The first answer's head decides: WebSocket or plain bytes.
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match server.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let _ = client.write_all(&buf);
                let _ = client.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        if client.write_all(&buf).is_ok() {
            let _ = std::io::copy(&mut server, &mut client);
        }
        let _ = client.shutdown(Shutdown::Write);
        return;
    }
    if client.write_all(&buf[..head_end]).is_err() {
        return;
    }
    buf.drain(..head_end);
    let mut messages = 0u64;
    let mut held: Option<Vec<u8>> = None;
    loop {
        let mut used = 0;
        let mut out: Vec<u8> = Vec::new();
        let mut close = false;
        loop {
            let (f, n) = match ws::decode_frame(&buf[used..]) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    // Not framing we understand: stop interfering, pass bytes on.
                    eprintln!("faultproxy: connection {id}: {e}; passing bytes through");
                    out.extend_from_slice(&buf[used..]);
                    let _ = client.write_all(&out);
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(Shutdown::Write);
                    return;
                }
            };
            let raw = &buf[used..used + n];
            used += n;
            if f.opcode != ws::OP_TEXT || !is_message(f.payload) {
                out.extend_from_slice(raw);
                continue;
            }
            let mine = {
                let mut t = shared.target.lock().expect("lock");
                if t.is_none() && shared.fault != Fault::None {
                    *t = Some(id);
                }
                *t == Some(id)
            };
            if mine {
                messages += 1;
            }
            if let Some(h) = held.take() {
                // The held frame goes after this one: reordered.
                out.extend_from_slice(raw);
                out.extend_from_slice(&h);
                continue;
            }
            if !mine || messages != shared.at || shared.fired.swap(true, Ordering::SeqCst) {
                out.extend_from_slice(raw);
                continue;
            }
            println!(
                "fault fired: {:?} on connection {id} at message frame {messages}",
                shared.fault
            );
            let _ = std::io::stdout().flush();
            match shared.fault {
                Fault::None => out.extend_from_slice(raw),
                Fault::Drop => {}
                Fault::Duplicate => {
                    out.extend_from_slice(raw);
                    out.extend_from_slice(raw);
                }
                Fault::Reorder => held = Some(raw.to_vec()),
                Fault::Foreign => {
                    out.extend_from_slice(raw);
                    out.extend_from_slice(&frame(ws::OP_TEXT, FOREIGN.as_bytes()));
                }
                Fault::Garbage => {
                    out.extend_from_slice(raw);
                    out.extend_from_slice(&frame(ws::OP_TEXT, GARBAGE.as_bytes()));
                }
                Fault::Close1013 => {
                    out.extend_from_slice(&frame(ws::OP_CLOSE, &1013u16.to_be_bytes()));
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..used);
        if !out.is_empty() && client.write_all(&out).is_err() {
            break;
        }
        if close {
            break;
        }
        match server.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}
