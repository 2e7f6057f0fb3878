//! One job at a time per preview: a lock in Redis with a short lease that its holder renews.
//!
//! `SET key token NX PX lease` takes it; a background task renews it every third of the lease
//! while the holder lives, and release deletes it only if it still holds the holder's token. A
//! worker that dies stops renewing, so its lock lapses within [`LEASE`] and the job's next
//! run (apalis re-queues orphans) can take it.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;

/// How long a lock lives without renewal.
pub const LEASE: Duration = Duration::from_secs(10);

const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Whether some job holds the lock of `preview_id` now.
pub async fn is_held(
    redis: &ConnectionManager,
    prefix: &str,
    preview_id: i64,
) -> Result<bool, redis::RedisError> {
    let mut conn = redis.clone();
    redis::cmd("EXISTS")
        .arg(format!("{prefix}:lock:preview:{preview_id}"))
        .query_async(&mut conn)
        .await
}

/// A held lock; released on [`PreviewLock::release`] or when dropped (by lease expiry).
pub struct PreviewLock {
    redis: ConnectionManager,
    key: String,
    token: String,
    renewer: tokio::task::JoinHandle<()>,
}

/// The lock could not be taken in time, or Redis failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("preview {0} is busy with another job")]
    Busy(i64),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl PreviewLock {
    /// Takes the lock of `preview_id`, waiting up to `wait` for its holder to finish.
    pub async fn acquire(
        redis: &ConnectionManager,
        prefix: &str,
        preview_id: i64,
        wait: Duration,
    ) -> Result<Self, LockError> {
        let key = format!("{prefix}:lock:preview:{preview_id}");
        let token = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + wait;
        let mut conn = redis.clone();
        let mut pause = Duration::from_millis(20);
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LEASE.as_millis() as u64)
                .query_async(&mut conn)
                .await?;
            if taken.is_some() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(LockError::Busy(preview_id));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
        let renewer = {
            let (mut conn, key, token) = (redis.clone(), key.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let renewed: Result<i64, _> = redis::Script::new(RENEW)
                        .key(&key)
                        .arg(&token)
                        .arg(LEASE.as_millis() as u64)
                        .invoke_async(&mut conn)
                        .await;
                    match renewed {
                        Ok(1) => {}
                        Ok(_) => {
                            tracing::error!(lock = %key, "preview lock lost; another job may start");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(lock = %key, error = %e, "cannot renew preview lock")
                        }
                    }
                }
            })
        };
        Ok(Self {
            redis: redis.clone(),
            key,
            token,
            renewer,
        })
    }

    /// Gives the lock up.
    pub async fn release(self) {
        self.renewer.abort();
        let mut conn = self.redis.clone();
        let released: Result<i64, _> = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = released {
            tracing::warn!(lock = %self.key, error = %e, "cannot release preview lock; it lapses on its own");
        }
    }
}

impl Drop for PreviewLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
