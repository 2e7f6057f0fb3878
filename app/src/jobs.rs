//! The jobs contract between the app (which enqueues) and the worker (which runs): payloads,
//! queue names, the Redis queue configuration both sides must agree on, and the wake-up path.
//!
//! Each queue lives under the install's `REDIS_PREFIX`, so several installs or tests can share
//! one Redis. Payloads carry ids only; the database says what the job is about, so a job that
//! outlives its purpose (a newer commit, a closed pull request) notices when it starts.
//!
//! **Wake-up.** apalis-redis workers fetch when polled. Rather than poll often, every enqueue is
//! followed by a `PUBLISH` on the queue's wake channel; workers subscribe and fetch at once, with
//! a slow interval as the fallback for a missed message.
//!
//! Heartbeats are short: apalis-redis re-queues the jobs of a worker that missed
//! `MISSED_HEARTBEATS` in a row, so a killed worker's job runs again within seconds, not minutes.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// How often a worker tells Redis it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// Heartbeats a worker may miss before its in-flight jobs are given to another worker.
pub const MISSED_HEARTBEATS: usize = 5;

/// How long a job's idempotency key (and so the way to find it) is kept.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(30 * 86_400);

/// How often an idle worker looks for work when no wake-up arrives.
pub const FALLBACK_POLL: Duration = Duration::from_secs(1);

/// Deploy one attempt (a row of `deploy_attempts`: preview, sha, attempt number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployJob {
    pub attempt_id: i64,
    /// Someone asked to approve this commit of an untrusted pull request; the worker checks
    /// that they have write permission before treating it as approved.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// Someone pressed Redeploy or commented `/preview redeploy`: the worker checks that they
    /// have write permission first.
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// Remove a preview's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupJob {
    pub preview_id: i64,
    /// The preview's generation this removal was asked for (see `previews::lifecycle`): a
    /// preview asked for again since (reopened, pushed) is left alone. `None` in payloads from
    /// before generations: the removal then acts on whatever removal is under way.
    #[serde(default)]
    pub generation: Option<i64>,
    /// Why, in words for the sticky comment ("the pull request was closed").
    pub reason: String,
    /// Someone pressed Destroy or commented `/preview destroy`: the worker checks that they have
    /// write permission first.
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// Give a preview more time before it expires (the Extend button).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendJob {
    pub preview_id: i64,
    /// Who pressed Extend; the worker checks that they have write permission.
    pub requested_by: String,
    /// The check run the button was on, to answer there.
    pub check_run_id: i64,
}

/// The queues previewd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Build and deploy a commit of a preview.
    Deploy,
    /// Delete a preview's namespace and report it gone.
    Cleanup,
    /// Push a preview's expiry back.
    Extend,
}

impl Queue {
    /// Every queue, for registration and metrics.
    pub const ALL: [Self; 3] = [Self::Deploy, Self::Cleanup, Self::Extend];

    /// Short name of the queue.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Cleanup => "cleanup",
            Self::Extend => "extend",
        }
    }

    /// Redis key namespace of the queue under `prefix`.
    pub fn key(self, prefix: &str) -> String {
        format!("{prefix}:queue:{}", self.name())
    }

    /// The pub/sub channel that wakes the queue's workers.
    pub fn wake_channel(self, prefix: &str) -> String {
        format!("{prefix}:wake:{}", self.name())
    }

    /// apalis-redis configuration of the queue under `prefix`.
    ///
    /// The idempotency time-to-live is set on purpose: left unset, apalis-redis 1.0 passes
    /// `0` to its push script, which then *expires the key at once* — no deduplication, and no
    /// way to find a job by its key ([`Queues::deploy_job_state`]).
    pub fn redis_config(self, prefix: &str) -> apalis_redis::Config {
        apalis_redis::Config::default()
            .queue(self.key(prefix))
            .heartbeat_interval(HEARTBEAT_INTERVAL)
            .missed_heartbeats(MISSED_HEARTBEATS)
            .idempotency_ttl(Some(IDEMPOTENCY_TTL))
    }
}

/// Enqueues jobs; cheap to clone.
#[derive(Clone)]
pub struct Queues {
    prefix: String,
    redis: ConnectionManager,
    deploy: RedisStorage<DeployJob>,
    cleanup: RedisStorage<CleanupJob>,
    extend: RedisStorage<ExtendJob>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A job could not be enqueued (Redis unreachable or refusing).
#[derive(Debug, thiserror::Error)]
#[error("cannot enqueue {queue} job: {message}")]
pub struct EnqueueError {
    pub queue: &'static str,
    pub message: String,
}

impl Queues {
    /// Queues under `prefix` on the given Redis connection.
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            deploy: RedisStorage::new(redis.clone())
                .with_config(Queue::Deploy.redis_config(prefix)),
            cleanup: RedisStorage::new(redis.clone())
                .with_config(Queue::Cleanup.redis_config(prefix)),
            extend: RedisStorage::new(redis.clone())
                .with_config(Queue::Extend.redis_config(prefix)),
            redis,
        }
    }

    /// Enqueues a deploy; the attempt id makes it idempotent (a retried enqueue is dropped).
    pub async fn deploy(&self, job: DeployJob) -> Result<(), EnqueueError> {
        let key = deploy_key(job.attempt_id);
        let mut storage = self.deploy.clone();
        storage
            .push_task(TaskBuilder::new(job).idempotency_key(key).build())
            .await
            .map_err(|e| EnqueueError {
                queue: "deploy",
                message: e.to_string(),
            })?;
        self.wake(Queue::Deploy).await;
        Ok(())
    }

    /// Enqueues a cleanup; the preview, generation and requester make it idempotent.
    pub async fn cleanup(&self, job: CleanupJob) -> Result<(), EnqueueError> {
        let key = cleanup_key(&job);
        let mut storage = self.cleanup.clone();
        storage
            .push_task(TaskBuilder::new(job).idempotency_key(key).build())
            .await
            .map_err(|e| EnqueueError {
                queue: "cleanup",
                message: e.to_string(),
            })?;
        self.wake(Queue::Cleanup).await;
        Ok(())
    }

    /// Enqueues every job of `work` (deploys, cleanups, extends): one push per queue that has
    /// jobs, carrying all of them (apalis-redis pushes a batch with one script call), the
    /// queues' pushes sent together, then one wake-up per queue. A group of deliveries
    /// committed together enqueues its work this way, in a few round trips to Redis.
    pub async fn enqueue(
        &self,
        work: &crate::previews::lifecycle::Work,
    ) -> Result<(), EnqueueError> {
        let deploys = async {
            if work.deploys.is_empty() {
                return Ok(false);
            }
            // Collected first: a borrowing iterator held across the push is not `Send` enough.
            let tasks: Vec<_> = work
                .deploys
                .iter()
                .map(|job| {
                    TaskBuilder::new(job.clone())
                        .idempotency_key(deploy_key(job.attempt_id))
                        .build()
                })
                .collect();
            let mut storage = self.deploy.clone();
            storage
                .push_all(futures::stream::iter(tasks))
                .await
                .map(|()| true)
                .map_err(|e| EnqueueError {
                    queue: "deploy",
                    message: e.to_string(),
                })
        };
        let cleanups = async {
            if work.cleanups.is_empty() {
                return Ok(false);
            }
            let tasks: Vec<_> = work
                .cleanups
                .iter()
                .map(|job| {
                    TaskBuilder::new(job.clone())
                        .idempotency_key(cleanup_key(job))
                        .build()
                })
                .collect();
            let mut storage = self.cleanup.clone();
            storage
                .push_all(futures::stream::iter(tasks))
                .await
                .map(|()| true)
                .map_err(|e| EnqueueError {
                    queue: "cleanup",
                    message: e.to_string(),
                })
        };
        let extends = async {
            if work.extends.is_empty() {
                return Ok(false);
            }
            let mut storage = self.extend.clone();
            storage
                .push_bulk(work.extends.clone())
                .await
                .map(|()| true)
                .map_err(|e| EnqueueError {
                    queue: "extend",
                    message: e.to_string(),
                })
        };
        let (deploys, cleanups, extends) = tokio::join!(deploys, cleanups, extends);
        let pushed = [
            (Queue::Deploy, deploys?),
            (Queue::Cleanup, cleanups?),
            (Queue::Extend, extends?),
        ];
        for (queue, pushed) in pushed {
            if pushed {
                self.wake(queue).await;
            }
        }
        Ok(())
    }

    /// Enqueues a cleanup again (the reconciler's heal of a removal that stopped): its
    /// idempotency key is released first.
    pub async fn requeue_cleanup(&self, job: CleanupJob) -> Result<(), EnqueueError> {
        let config = Queue::Cleanup.redis_config(&self.prefix);
        let field = format!("{}:{}", config.idempotency_key_set(), cleanup_key(&job));
        let mut conn = self.redis.clone();
        redis::cmd("DEL")
            .arg(&field)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| EnqueueError {
                queue: "cleanup",
                message: e.to_string(),
            })?;
        self.cleanup(job).await
    }

    /// Where the deploy job of `attempt_id` is, as far as Redis knows.
    pub async fn deploy_job_state(&self, attempt_id: i64) -> Result<JobState, EnqueueError> {
        let config = Queue::Deploy.redis_config(&self.prefix);
        job_state(&self.redis, &config, &deploy_key(attempt_id))
            .await
            .map_err(|e| EnqueueError {
                queue: "deploy",
                message: e.to_string(),
            })
    }

    /// Enqueues the deploy job of an attempt whose job was lost or ended without recording an
    /// outcome (the reconciler's heal): its old idempotency key is released first.
    pub async fn requeue_deploy(&self, job: DeployJob) -> Result<(), EnqueueError> {
        let config = Queue::Deploy.redis_config(&self.prefix);
        let field = format!(
            "{}:{}",
            config.idempotency_key_set(),
            deploy_key(job.attempt_id)
        );
        let mut conn = self.redis.clone();
        redis::cmd("DEL")
            .arg(&field)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| EnqueueError {
                queue: "deploy",
                message: e.to_string(),
            })?;
        self.deploy(job).await
    }

    /// Enqueues an Extend.
    pub async fn extend(&self, job: ExtendJob) -> Result<(), EnqueueError> {
        let mut storage = self.extend.clone();
        storage.push(job).await.map_err(|e| EnqueueError {
            queue: "extend",
            message: e.to_string(),
        })?;
        self.wake(Queue::Extend).await;
        Ok(())
    }

    /// Tells idle workers of `queue` to fetch now. Best effort: the fallback poll covers a miss.
    async fn wake(&self, queue: Queue) {
        let mut conn = self.redis.clone();
        let published = redis::cmd("PUBLISH")
            .arg(queue.wake_channel(&self.prefix))
            .arg(1)
            .query_async::<i64>(&mut conn)
            .await;
        if let Err(e) = published {
            tracing::debug!(error = %e, queue = queue.name(), "wake-up not published; workers will poll");
        }
    }
}

/// The idempotency key of a cleanup job: the preview, the generation it removes, who asked.
fn cleanup_key(job: &CleanupJob) -> String {
    format!(
        "cleanup-{}-{}-{}",
        job.preview_id,
        job.generation
            .map_or_else(|| "any".to_owned(), |g| g.to_string()),
        job.requested_by.as_deref().unwrap_or("-")
    )
}

/// The idempotency key of an attempt's deploy job.
fn deploy_key(attempt_id: i64) -> String {
    format!("attempt-{attempt_id}")
}

/// Where a job is, read from apalis-redis's keys (its idempotency key names the task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// No trace of it: never enqueued here, or Redis lost it (flushed, restarted without
    /// persistence, failed over).
    Lost,
    /// Waiting, scheduled or running.
    Live,
    /// The handler returned (its outcome should be recorded in the database).
    Done,
    /// Given up by the queue: killed by its time-out, or out of attempts.
    Dead,
}

async fn job_state(
    redis: &ConnectionManager,
    config: &apalis_redis::Config,
    key: &str,
) -> Result<JobState, redis::RedisError> {
    let mut conn = redis.clone();
    let task: Option<String> = redis::cmd("GET")
        .arg(format!("{}:{key}", config.idempotency_key_set()))
        .query_async(&mut conn)
        .await?;
    let Some(task) = task else {
        return Ok(JobState::Lost);
    };
    let (has_data, done, dead): (bool, bool, bool) = redis::pipe()
        .cmd("HEXISTS")
        .arg(config.job_data_hash())
        .arg(&task)
        .cmd("SISMEMBER")
        .arg(config.done_jobs_set())
        .arg(&task)
        .cmd("SISMEMBER")
        .arg(config.dead_jobs_set())
        .arg(&task)
        .query_async(&mut conn)
        .await?;
    Ok(if !has_data {
        JobState::Lost
    } else if dead {
        JobState::Dead
    } else if done {
        JobState::Done
    } else {
        JobState::Live
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_namespaced_by_prefix() {
        assert_eq!(Queue::Deploy.key("previewd"), "previewd:queue:deploy");
        assert_eq!(Queue::Cleanup.key("t-1"), "t-1:queue:cleanup");
        assert_eq!(Queue::Deploy.wake_channel("p"), "p:wake:deploy");
        let config = Queue::Deploy.redis_config("p");
        assert_eq!(
            config.orphaned_duration(),
            HEARTBEAT_INTERVAL * MISSED_HEARTBEATS as u32
        );
    }

    #[test]
    fn payloads_are_stable_json() {
        let job = DeployJob {
            attempt_id: 7,
            approved_by: None,
            requested_by: None,
        };
        let text = serde_json::to_string(&job).expect("json");
        assert_eq!(
            text,
            r#"{"attempt_id":7,"approved_by":null,"requested_by":null}"#
        );
        let old: DeployJob =
            serde_json::from_str(r#"{"attempt_id":7}"#).expect("older payloads still read");
        assert_eq!(old, job);
    }
}
