//! What every job can reach: the stores, GitHub, the cluster, and the worker's settings.

use std::time::Duration;

use previewd::{
    cluster::Cluster, config::WorkerConfig, github::GitHub, jobs::Queues, reporter::Reporter,
};
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
    /// API URL (`previewd::github::urls::web_url`).
    pub git_web: Url,
    /// For the optional public URL probe.
    pub http: reqwest::Client,
    /// First pause between tries of an attempt; doubles each time.
    pub retry_backoff: Duration,
    /// For jobs that start other jobs (the periodic rounds), inside their transactions.
    pub queues: Queues,
    /// This install's id: labels everything previewd creates in the cluster.
    pub install_id: String,
}

impl JobContext {
    /// How long a job waits for a preview's lock: the longest another job may hold it (a deploy
    /// try or a whole cleanup), plus a little.
    pub fn lock_wait(&self) -> Duration {
        self.config.deploy_timeout.max(self.config.cleanup_timeout) + Duration::from_secs(5)
    }

    /// The HTTPS clone URL of `repo` (credentials come separately, from a Secret).
    pub fn clone_url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.git_web.as_str().trim_end_matches('/'))
    }
}
