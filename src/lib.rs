//! failover-guard: makes Istio multi-cluster locality failover correct by construction.
//!
//! Layers, top to bottom: [`cli`] and `main.rs` (the binary's edge); [`server`] (TLS, HTTP,
//! probes) and [`offline`] (manifest files) are adapters around [`admission`] and
//! [`engine`]; the engine runs the [`rules`] over objects seen through [`object`]'s views,
//! with [`config`] and an optional [`world`]. Nothing below the adapters does I/O.

pub mod admission;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod explain;
pub mod inforce;
pub mod istio;
pub mod locality;
pub mod logging;
pub mod metrics;
pub mod object;
pub mod offline;
pub mod policyreport;
pub mod reconcile;
pub mod remotes;
pub mod render;
pub mod report;
pub mod rules;
pub mod server;
pub mod simulate;
pub mod world;
