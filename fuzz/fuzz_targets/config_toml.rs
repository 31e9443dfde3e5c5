//! Configuration parser: `Config::from_toml` then `validate` on arbitrary text (the input
//! itself when it is UTF-8, its lossy conversion otherwise); a parsed configuration is
//! also rendered with `masked_toml` (what `--print-config` shows) and read back.
#![no_main]

use chatd::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = Config::from_toml(&text, "fuzz") {
        let _ = cfg.validate();
        let shown = cfg.masked_toml();
        assert!(
            Config::from_toml(&shown, "masked").is_ok(),
            "masked_toml output does not parse back:\n{shown}"
        );
    }
});
