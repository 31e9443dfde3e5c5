//! WebSocket client event decoder: `decode` on arbitrary UTF-8 text (the input itself
//! when it is UTF-8, its lossy conversion otherwise), then the error frame the server
//! would send back.
#![no_main]

use chatd::ws::events::{ClientEvent, decode, encode, error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match decode(&text) {
        Ok(ClientEvent::SendMessage {
            content,
            client_msg_id,
            ..
        }) => {
            assert!(!content.is_empty());
            assert!(client_msg_id.is_none_or(|id| !id.is_empty() && id.chars().count() <= 64));
        }
        Ok(ClientEvent::JoinRoom { last_seen_seq, .. }) => {
            assert!(last_seen_seq.is_none_or(|n| n >= 0));
        }
        Ok(ClientEvent::Ping(data)) => {
            // The pong echoes the data back.
            assert!(!encode("pong", &data).is_empty());
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.code();
            let _ = e.status();
            assert!(!error(&e).is_empty());
        }
    }
});
