//! The jobs contract between the app (which enqueues) and the worker (which runs): queue names
//! and the Redis queue configuration both sides must agree on.
//!
//! Each queue lives under the install's `REDIS_PREFIX`, so several installs or tests can share
//! one Redis. Heartbeats are short: apalis-redis re-queues the jobs of a worker that missed
//! `MISSED_HEARTBEATS` in a row, so a killed worker's job runs again within seconds, not minutes.

use std::time::Duration;

/// How often a worker tells Redis it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// Heartbeats a worker may miss before its in-flight jobs are given to another worker.
pub const MISSED_HEARTBEATS: usize = 5;

/// The queues previewd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Build and deploy a commit of a preview.
    Deploy,
    /// Delete a preview's namespace and report it gone.
    Cleanup,
}

impl Queue {
    /// Every queue, for registration and metrics.
    pub const ALL: [Self; 2] = [Self::Deploy, Self::Cleanup];

    /// Short name of the queue.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Cleanup => "cleanup",
        }
    }

    /// Redis key namespace of the queue under `prefix`.
    pub fn key(self, prefix: &str) -> String {
        format!("{prefix}:queue:{}", self.name())
    }

    /// apalis-redis configuration of the queue under `prefix`.
    pub fn redis_config(self, prefix: &str) -> apalis_redis::Config {
        apalis_redis::Config::default()
            .queue(self.key(prefix))
            .heartbeat_interval(HEARTBEAT_INTERVAL)
            .missed_heartbeats(MISSED_HEARTBEATS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_namespaced_by_prefix() {
        assert_eq!(Queue::Deploy.key("previewd"), "previewd:queue:deploy");
        assert_eq!(Queue::Cleanup.key("t-1"), "t-1:queue:cleanup");
        let config = Queue::Deploy.redis_config("p");
        assert_eq!(
            config.orphaned_duration(),
            HEARTBEAT_INTERVAL * MISSED_HEARTBEATS as u32
        );
    }
}
