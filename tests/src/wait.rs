//! Waiting on conditions with deadlines: the only way tests wait.

use std::time::Duration;

/// Polls `check` until it returns `Some`, or fails after `deadline` naming `what`.
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() >= deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
