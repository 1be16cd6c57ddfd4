//! Any bytes as an admission request body, through both webhooks: never a panic, and an
//! answer is always a review carrying a response.
#![no_main]

use std::sync::OnceLock;

use failover_guard::{
    admission::{Webhook, review},
    config::Config,
};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(Config::example)
}

fuzz_target!(|data: &[u8]| {
    for webhook in [Webhook::Mutate, Webhook::Validate] {
        if let Ok(reviewed) = review(data, webhook, config(), None) {
            assert!(reviewed.response.response.is_some());
            let _ = failover_guard::admission::encode(&reviewed.response);
        }
    }
});
