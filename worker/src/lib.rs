//! previewd's worker: runs the jobs the app enqueues (DESIGN.md §2), under the retry, timeout
//! and concurrency policies of the jobs they belong to.
//!
//! [`Worker::run`] registers a worker per queue with an apalis [`Monitor`] and runs until the
//! shutdown signal; on shutdown, jobs in flight finish (up to [`SHUTDOWN_GRACE`]) and jobs
//! fetched but not started go back to their queue. Each queue's backend is woken by the app's
//! `PUBLISH` after an enqueue ([`wake`]), so a job starts within milliseconds of its webhook.
//!
//! - [`deploy`]: the deploy job; [`cleanup`]: the cleanup job.
//! - [`lock`]: one job per preview at a time.
//! - [`context`]: what jobs share.

pub mod cleanup;
pub mod context;
pub mod deploy;
pub mod extend;
pub mod lock;
pub mod periodic;
pub mod permission;
pub mod wake;

use std::{sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use previewd::{
    cluster::Cluster,
    config::{GithubConfig, WorkerConfig},
    github::GitHub,
    jobs::{CleanupJob, DeployJob, ExtendJob, Queue},
    reporter::Reporter,
    store::Stores,
};
use url::Url;

use crate::context::JobContext;

/// This install's id, shared by every process through the database (made by the first).
/// How long a starting worker waits for a database that is briefly unreachable (a failover, a
/// restart) before it gives up and exits.
pub const STARTUP_STORE_WAIT: Duration = Duration::from_secs(60);

/// This install's id, read (or made) once at start; an outage of the database is waited out
/// for up to [`STARTUP_STORE_WAIT`], as the jobs themselves wait one out.
async fn install_id(db: &sea_orm::DatabaseConnection) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    loop {
        let read = previewd::previews::records::install_setting(db, "install_id", || {
            uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
        })
        .await;
        match read {
            Ok(id) => return Ok(id),
            Err(e)
                if previewd::store::trouble(&e) == previewd::store::Trouble::Outage
                    && started.elapsed() < STARTUP_STORE_WAIT =>
            {
                tracing::warn!(error = %e, "the database does not answer yet; the worker waits for it");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The pause before restarting a queue worker that stopped for the `restarts`-th time: 50 ms,
/// doubling, at most a second.
fn restart_pause(restarts: usize) -> Duration {
    let doublings = u32::try_from(restarts.min(5)).unwrap_or(5);
    (Duration::from_millis(50) * 2u32.pow(doublings)).min(Duration::from_secs(1))
}

/// A worker restarted under its name right after a crash finds its previous self still
/// registered in Redis (apalis-redis refuses a name seen within the heartbeat); waits until that
/// registration is old enough for apalis to hand the dead process's jobs back to this one
/// (bounded by a few heartbeats).
async fn wait_out_previous_self(
    redis: &redis::aio::ConnectionManager,
    prefix: &str,
    queue: Queue,
    name: &str,
) {
    let config = queue.redis_config(prefix);
    let worker = format!("{name}-{}", queue.name());
    let deadline = tokio::time::Instant::now() + previewd::jobs::HEARTBEAT_INTERVAL * 3;
    loop {
        let mut conn = redis.clone();
        let last_seen: Result<Option<f64>, _> = redis::cmd("ZSCORE")
            .arg(config.workers_set())
            .arg(&worker)
            .query_async(&mut conn)
            .await;
        let Ok(Some(last_seen)) = last_seen else {
            return;
        };
        let now = chrono::Utc::now().timestamp() as f64;
        let age = Duration::from_secs_f64((now - last_seen).max(0.0));
        if age > previewd::jobs::HEARTBEAT_INTERVAL + Duration::from_secs(1)
            || tokio::time::Instant::now() >= deadline
        {
            return;
        }
        tracing::info!(worker = %worker, "waiting for the previous process of this name to lapse");
        tokio::time::sleep(
            (previewd::jobs::HEARTBEAT_INTERVAL + Duration::from_secs(1)).saturating_sub(age)
                + Duration::from_millis(100),
        )
        .await;
    }
}

/// How long in-flight jobs may take to finish once shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A worker process: its configuration and its connections.
#[derive(Debug, Clone)]
pub struct Worker {
    pub config: WorkerConfig,
    pub stores: Stores,
    pub github: GitHub,
    pub cluster: Cluster,
    /// GitHub's web address (for clone URLs): `GITHUB_URL`.
    pub github_web: Url,
    /// The app's public URL (links in check runs and comments).
    pub public_url: Url,
    /// First pause between tries of an attempt.
    pub retry_backoff: Duration,
}

impl Worker {
    /// Connects to GitHub and the cluster as configured.
    pub async fn connect(
        config: WorkerConfig,
        stores: Stores,
        github: &GithubConfig,
        public_url: Url,
    ) -> anyhow::Result<Self> {
        let client = GitHub::new(github).map_err(anyhow::Error::msg)?;
        let cluster = Cluster::connect(config.kubeconfig.as_deref())
            .await?
            .with_namespace_access(config.namespace_access.clone());
        Ok(Self {
            config,
            stores,
            github: client,
            cluster,
            github_web: github.web_url.clone(),
            public_url,
            retry_backoff: Duration::from_secs(2),
        })
    }

    /// What every job of this worker is given (also how tests drive a periodic round by hand).
    pub async fn context(&self) -> anyhow::Result<Arc<JobContext>> {
        let install_id = install_id(&self.stores.db).await?;
        Ok(Arc::new(JobContext {
            db: self.stores.db.clone(),
            redis: self.stores.redis.clone(),
            prefix: self.stores.redis_prefix.clone(),
            github: self.github.clone(),
            reporter: Reporter {
                db: self.stores.db.clone(),
                github: self.github.clone(),
                public_url: self.public_url.clone(),
            },
            cluster: self.cluster.clone(),
            config: self.config.clone(),
            git_web: self.github_web.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            retry_backoff: self.retry_backoff,
            queues: previewd::jobs::Queues::new(
                self.stores.redis.clone(),
                &self.stores.redis_prefix,
            ),
            install_id,
        }))
    }

    /// Runs every job queue until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let ctx = self.context().await?;
        let prefix = self.stores.redis_prefix.clone();
        let name = self.config.name.clone();
        let concurrency = self.config.concurrency;
        // Backstops: the jobs bound themselves (each deploy try: the lock wait, the deploy
        // timeout, a backoff; a cleanup: the lock wait and the cleanup timeout).
        let deploy_limit = (ctx.lock_wait() + self.config.deploy_timeout + self.retry_backoff * 4)
            * deploy::MAX_TRIES
            + Duration::from_secs(60);
        let cleanup_limit = ctx.lock_wait() + self.config.cleanup_timeout + Duration::from_secs(60);
        for queue in Queue::ALL {
            wait_out_previous_self(&self.stores.redis, &prefix, queue, &name).await;
        }

        let deploy_storage = RedisStorage::<DeployJob>::new(self.stores.redis.clone())
            .with_config(Queue::Deploy.redis_config(&prefix));
        let cleanup_storage = RedisStorage::<CleanupJob>::new(self.stores.redis.clone())
            .with_config(Queue::Cleanup.redis_config(&prefix));
        let extend_storage = RedisStorage::<ExtendJob>::new(self.stores.redis.clone())
            .with_config(Queue::Extend.redis_config(&prefix));
        let client = self.stores.redis_client.clone();

        let monitor = Monitor::new()
            .shutdown_timeout(SHUTDOWN_GRACE)
            // A queue worker that stopped on a backend error (Redis restarted, its registration
            // lost) is started again: a worker process must not go on without one of its queues.
            .should_restart(|worker, error| {
                // The restart is immediate; a short pause first keeps a failure that repeats
                // (Redis away) from spinning. It blocks this runtime thread only that long.
                let pause = restart_pause(worker.restarts());
                tracing::error!(worker = %worker.name(), %error, pause_ms = pause.as_millis() as u64, "queue worker stopped; restarting it");
                std::thread::sleep(pause);
                true
            })
            .register({
                let (ctx, name, prefix, client) =
                    (ctx.clone(), name.clone(), prefix.clone(), client.clone());
                move |_| {
                    WorkerBuilder::new(format!("{name}-deploy"))
                        .backend(deploy_storage.clone().poll_with_stream(wake::wake_stream(
                            client.clone(),
                            &prefix,
                            Queue::Deploy,
                        )))
                        .data(ctx.clone())
                        .concurrency(concurrency)
                        .timeout(deploy_limit)
                        .build(deploy::deploy_job)
                }
            })
            .register({
                let (ctx, name, prefix, client) =
                    (ctx.clone(), name.clone(), prefix.clone(), client.clone());
                move |_| {
                    WorkerBuilder::new(format!("{name}-cleanup"))
                        .backend(cleanup_storage.clone().poll_with_stream(wake::wake_stream(
                            client.clone(),
                            &prefix,
                            Queue::Cleanup,
                        )))
                        .data(ctx.clone())
                        .concurrency(concurrency)
                        .timeout(cleanup_limit)
                        .build(cleanup::cleanup_job)
                }
            })
            .register({
                let (ctx, name, prefix, client) = (ctx.clone(), name.clone(), prefix.clone(), client.clone());
                move |_| {
                    WorkerBuilder::new(format!("{name}-extend"))
                        .backend(extend_storage.clone().poll_with_stream(wake::wake_stream(client.clone(), &prefix, Queue::Extend)))
                        .data(ctx.clone())
                        .concurrency(concurrency)
                        .timeout(Duration::from_secs(60))
                        .build(extend::extend_job)
                }
            });
        let rounds = periodic::spawn(ctx.clone(), ctx.queues.clone());
        tracing::info!(worker = %self.config.name, concurrency, "worker running");
        let monitor = monitor
            .run_with_signal(async move {
                shutdown.await;
                Ok(())
            })
            .await;
        for round in rounds {
            round.abort();
        }
        monitor?;
        tracing::info!(worker = %self.config.name, "worker stopped");
        Ok(())
    }
}
