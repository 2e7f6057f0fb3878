//! previewd's worker: runs the jobs the app enqueues (DESIGN.md §2), under the retry, timeout
//! and concurrency policies of the jobs they belong to.
//!
//! [`Worker::run`] registers every job queue with an apalis [`Monitor`] and runs until the
//! shutdown signal; on shutdown, jobs in flight finish (up to [`SHUTDOWN_GRACE`]) and jobs fetched
//! but not started go back to their queue. The job set grows with the deploy and lifecycle work;
//! each job registers itself in [`register_jobs`].

use std::time::Duration;

use apalis::prelude::Monitor;
use previewd::{config::WorkerConfig, store::Stores};

/// How long in-flight jobs may take to finish once shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A worker process: its configuration and its connections.
#[derive(Debug, Clone)]
pub struct Worker {
    pub config: WorkerConfig,
    pub stores: Stores,
}

impl Worker {
    /// Runs every registered job queue until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let monitor = register_jobs(Monitor::new().shutdown_timeout(SHUTDOWN_GRACE), &self);
        tracing::info!(worker = %self.config.name, concurrency = self.config.concurrency, "worker running");
        monitor
            .run_with_signal(async move {
                shutdown.await;
                Ok(())
            })
            .await?;
        tracing::info!(worker = %self.config.name, "worker stopped");
        Ok(())
    }
}

/// Registers a worker for every job queue with `monitor`. No job is defined yet.
fn register_jobs(monitor: Monitor, _worker: &Worker) -> Monitor {
    monitor
}
