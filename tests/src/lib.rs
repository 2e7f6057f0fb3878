//! The end-to-end harness for previewd: what every integration test stands on.
//!
//! Tests use real stores — SQLite embedded, the machine's PostgreSQL and Redis — each test with
//! its own database ([`db::TestDatabase`]) and its own Redis key prefix ([`redis_prefix`]), so
//! tests run in parallel without seeing each other. [`wait::until`] is the only way a test
//! waits: on a condition, with a deadline, never on a bare sleep.

pub mod agent;
pub mod browser;
pub mod db;
pub mod github;
pub mod healing;
pub mod kube;
pub mod openapi;
pub mod process;
pub mod redis_server;
pub mod registration;
pub mod scenario;
pub mod visitor;
pub mod wait;

/// Redis URL of the machine's Redis (override with `TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("previewd-test-{}", uuid::Uuid::new_v4().simple())
}

/// Deletes every Redis key under `prefix` (tests call it at the end; a leftover key is harmless
/// but untidy).
pub async fn clear_redis_prefix(prefix: &str) -> anyhow::Result<()> {
    clear_redis_prefix_at(&redis_url(), prefix).await
}

/// [`clear_redis_prefix`] on the Redis at `url`.
pub async fn clear_redis_prefix_at(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

/// Every file below `dir`, depth first (a fixture chart to put into a simulated repository).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
