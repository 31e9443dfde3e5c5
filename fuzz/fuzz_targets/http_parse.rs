//! HTTP request head parser: `parse_head` on raw bytes under the configured default
//! limits and under the smallest limits `Config::validate` accepts, then the query
//! helpers on the parsed query (and on the whole input, to reach `percent_decode`
//! without a complete head).
#![no_main]

use chatd::http::parse::{Limits, parse_head, percent_decode, query_param};
use libfuzzer_sys::fuzz_target;

/// `chat.toml` defaults.
const DEFAULT: Limits = Limits {
    max_header_bytes: 8192,
    max_headers: 64,
    max_body_bytes: 1 << 20,
};

/// The lower bounds `Config::validate` allows.
const TIGHT: Limits = Limits {
    max_header_bytes: 256,
    max_headers: 4,
    max_body_bytes: 1024,
};

fuzz_target!(|data: &[u8]| {
    for limits in [&DEFAULT, &TIGHT] {
        if let Ok(Some(head)) = parse_head(data, limits) {
            // What the event loop relies on to slice the buffer.
            assert!(head.head_len <= data.len());
            assert!(head.head_len <= limits.max_header_bytes);
            assert!(head.body_len <= limits.max_body_bytes);
            assert!(head.path.starts_with('/'));
            assert!(head.minor <= 1);
            for name in ["token", "cursor", "limit", ""] {
                let _ = query_param(&head.query, name);
            }
            let _ = percent_decode(&head.query);
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = percent_decode(&text);
    let _ = query_param(&text, "token");
});
