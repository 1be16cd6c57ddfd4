//! What the webhook's log lines cost a request: written in batches by a thread of their own
//! ([`batch`]), and formatted as JSON without building a map per line ([`json`]). The
//! subscriber itself is set up at the binary's edge (main.rs).

pub mod batch;
pub mod json;
