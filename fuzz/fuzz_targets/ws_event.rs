//! WebSocket client event decoder on arbitrary (lossy UTF-8) text, then the answer the
//! server would send (see `chatd::fuzzing::ws_event`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatd::fuzzing::ws_event(data));
