//! Configuration parser: `Config::from_toml`, `validate`, and the masked rendering read
//! back (see `chatd::fuzzing::config_toml`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatd::fuzzing::config_toml(data));
