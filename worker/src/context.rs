//! What every job can reach: the stores, GitHub, the cluster, and the worker's settings.

use std::time::Duration;

use previewd::{cluster::Cluster, config::WorkerConfig, github::GitHub, reporter::Reporter};
use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;
use url::Url;

/// Shared by all jobs of a worker process.
#[derive(Debug)]
pub struct JobContext {
    pub db: DatabaseConnection,
    pub redis: ConnectionManager,
    /// `REDIS_PREFIX`.
    pub prefix: String,
    pub github: GitHub,
    pub reporter: Reporter,
    pub cluster: Cluster,
    pub config: WorkerConfig,
    /// Web host of the GitHub instance (clone URLs): `GITHUB_URL`, by default derived from the
    /// API URL (`previewd::config::github_web_url`).
    pub git_web: Url,
    /// For the optional public URL probe.
    pub http: reqwest::Client,
    /// First pause between tries of an attempt; doubles each time.
    pub retry_backoff: Duration,
}

impl JobContext {
    /// The HTTPS clone URL of `repo` (credentials come separately, from a Secret).
    pub fn clone_url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.git_web.as_str().trim_end_matches('/'))
    }
}
