//! previewd's app library: everything both binaries share.
//!
//! The `previewd` binary (this crate's `main.rs`) serves webhooks, the dashboard, the REST API
//! and MCP; the `previewd-worker` binary runs jobs. Both start the same way — parse
//! [`config::Settings`], set up [`telemetry`], open the [`store::Stores`] (migrating the
//! database) — and then diverge. The module map and the rules of the house are in
//! `ARCHITECTURE.md`.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod github;
pub mod jobs;
pub mod memory;
pub mod previews;
pub mod reporter;
pub mod sanitize;
pub mod setup;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod units;
pub mod web;
