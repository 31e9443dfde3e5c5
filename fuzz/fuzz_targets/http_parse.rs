//! HTTP request head parser: `parse_head` on raw bytes under the configured default
//! limits and under the smallest limits `Config::validate` accepts, then the query
//! helpers (see `chatd::fuzzing::http_parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatd::fuzzing::http_parse(data));
