//! sea-orm entities for previewd: one module per table, no logic.
//!
//! The database is the source of truth for previews (DESIGN.md §2): GitHub shows their state and
//! Redis carries work, but what a preview *is* lives here. The schema itself is created by the
//! `previewd-migration` crate; these modules only describe it to sea-orm. Status enums are stored
//! as short strings so the same schema runs on SQLite and PostgreSQL.

pub mod api_token;
pub mod deploy_attempt;
pub mod install_setting;
pub mod installation;
pub mod preview;
pub mod pull_request;
pub mod repository;
pub mod session;
pub mod user;
pub mod webhook_delivery;

pub use deploy_attempt::AttemptStatus;
pub use preview::PreviewStatus;
pub use pull_request::PullRequestState;
pub use webhook_delivery::DeliveryOutcome;
