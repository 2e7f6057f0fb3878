//! The previews domain: what a preview is, how events change it, and how it is shown.
//!
//! - [`access`]: who may see and do what — the one authorization check of pages and actions.
//! - [`service`]: what people do to a preview from the dashboard (and later the API and MCP):
//!   delete, retry, redeploy, extend, each checked by [`access`] and run as a lifecycle
//!   transition.
//! - [`records`]: reading and writing previews, attempts, pull requests and deliveries.
//! - [`intake`]: what a webhook event means for the previews (the app's side of the lifecycle).
//! - [`repo_config`]: the repository's `.github/preview.yml`.
//! - [`report`]: the words and links GitHub shows (check run, sticky comment, deployment).
//! - [`tokens`]: API tokens (made, listed, revoked, presented), each acting as its person.
//!
//! Handlers speak this module's language; only `github` knows GitHub and only `cluster` knows
//! Kubernetes.

pub mod access;
pub mod intake;
pub mod lifecycle;
pub mod records;
pub mod repo_config;
pub mod report;
pub mod service;
pub mod tokens;

/// The label that approves the head commit of an untrusted pull request.
pub const APPROVE_LABEL: &str = "preview:approved";
/// The label that keeps a preview from expiring.
pub const KEEP_LABEL: &str = "preview:keep";
/// The comment command prefix.
pub const COMMAND_PREFIX: &str = "/preview";
