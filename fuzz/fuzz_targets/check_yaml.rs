//! Any text as a manifest file, through `check` and `mutate`: never a panic.
#![no_main]

use std::sync::OnceLock;

use failover_guard::{config::Config, offline};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(Config::example)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let inputs = vec![offline::parse_input("fuzz.yaml", text)];
    let report = offline::check(&inputs, config());
    let _ = offline::text_report(&report);
    let _ = offline::sarif_report(&report);
    for file in offline::mutate(&inputs, config()) {
        // A file no rule changed comes out byte for byte.
        if file.changes.is_empty() {
            assert_eq!(file.text, text);
        }
    }
});
