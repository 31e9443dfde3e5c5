//! What the fuzz targets in `fuzz/` run on each input, shared with the test that replays
//! their corpora on stable (`tests/it/fuzz_regressions.rs`). Each function panics only when
//! a property the server relies on is broken; clients never reach this module.

use crate::base::config::Config;
use crate::chat::messages::Rules;
use crate::http::parse::{Limits, parse_head, percent_decode, query_param};
use crate::ws::events::{ClientEvent, decode, encode, error};

/// `chat.toml` defaults.
const DEFAULT: Limits = Limits {
    max_header_bytes: 8192,
    max_headers: 64,
    max_body_bytes: 1 << 20,
    max_upload_bytes: 25 << 20,
};

/// The lower bounds `Config::validate` allows.
const TIGHT: Limits = Limits {
    max_header_bytes: 256,
    max_headers: 4,
    max_body_bytes: 1024,
    max_upload_bytes: 1024,
};

/// HTTP request heads under the default and the tightest limits, then the query helpers
/// (on the parsed query, and on the whole input to reach them without a complete head).
pub fn http_parse(data: &[u8]) {
    for limits in [&DEFAULT, &TIGHT] {
        if let Ok(Some(head)) = parse_head(data, limits) {
            // What the event loop relies on to slice its buffer.
            assert!(head.head_len <= data.len());
            assert!(head.head_len <= limits.max_header_bytes);
            assert!(head.body_len <= limits.max_body_bytes.max(limits.max_upload_bytes));
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
}

/// WebSocket client events (lossy UTF-8), then the answer the server would send.
pub fn ws_event(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match decode(&text, &Rules::from_config(&Config::default().messages)) {
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
            assert!(!error(&e, None).is_empty());
        }
    }
}

/// Configuration text: parse, validate, and the masked rendering parses back.
pub fn config_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = Config::from_toml(&text, "fuzz") {
        let _ = cfg.validate();
        let shown = cfg.masked_toml();
        assert!(
            Config::from_toml(&shown, "masked").is_ok(),
            "masked_toml output does not parse back:\n{shown}"
        );
    }
}
