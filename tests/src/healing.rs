//! Driving the worker's periodic rounds by hand: a [`JobContext`] configured exactly like a
//! [`Scenario`]'s workers (same settings, same stores, its own GitHub client), so a test can run
//! `previewd_worker::periodic::reconcile` or `redeliver_failed` once, when it chooses, and count
//! what the round cost — instead of waiting for an interval to fire.

use std::{sync::Arc, time::Duration};

use clap::Parser;
use previewd::{config::Settings, github::GitHub, jobs::Queues, store::Stores};
use previewd_worker::{Worker, context::JobContext};

use crate::scenario::Scenario;

#[derive(Debug, Parser)]
#[command(args_override_self = true)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// A worker's context and queues for `s`, built the way `previewd-worker` builds them.
pub struct Rounds {
    pub ctx: Arc<JobContext>,
    pub queues: Queues,
    /// The GitHub client the rounds use (its `calls()` and `not_modified()` count them).
    pub github: GitHub,
}

impl Rounds {
    pub async fn new(s: &Scenario) -> anyhow::Result<Self> {
        let args = std::iter::once("previewd".to_owned()).chain(s.settings.iter().cloned());
        let settings = Cli::try_parse_from(args)?.settings;
        let stores = Stores::open(&settings.store_config()?).await?;
        let github_config = settings.github_config()?;
        let server = settings.server_config()?;
        let mut config = settings.worker_config()?;
        config.name = "test-rounds".into();
        let mut worker =
            Worker::connect(config, stores.clone(), &github_config, server.public_url).await?;
        worker.retry_backoff = Duration::from_millis(50);
        let ctx = worker.context().await?;
        Ok(Self {
            queues: Queues::new(stores.redis.clone(), &stores.redis_prefix),
            github: worker.github,
            ctx,
        })
    }
}
