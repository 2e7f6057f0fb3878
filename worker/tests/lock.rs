//! One job per preview at a time: the Redis lease lock.

use std::time::Duration;

use previewd_worker::lock::{LEASE, LockError, PreviewLock};

async fn redis() -> redis::aio::ConnectionManager {
    let client = redis::Client::open(previewd_tests::redis_url()).expect("redis url");
    redis::aio::ConnectionManager::new(client)
        .await
        .expect("the machine's Redis")
}

#[tokio::test]
async fn a_preview_is_held_by_one_job_at_a_time() {
    let conn = redis().await;
    let prefix = previewd_tests::redis_prefix();
    let first = PreviewLock::acquire(&conn, &prefix, 7, Duration::ZERO)
        .await
        .expect("free lock");
    let busy = PreviewLock::acquire(&conn, &prefix, 7, Duration::from_millis(200)).await;
    assert!(
        matches!(busy, Err(LockError::Busy(7))),
        "a second job waits, then gives up"
    );
    let other = PreviewLock::acquire(&conn, &prefix, 8, Duration::ZERO)
        .await
        .expect("another preview is independent");

    // The holder's lease is bounded, so a dead holder's lock lapses on its own.
    let mut c = conn.clone();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}:lock:preview:7"))
        .query_async(&mut c)
        .await
        .expect("pttl");
    assert!(ttl > 0 && ttl <= LEASE.as_millis() as i64, "lease {ttl} ms");

    // A waiting job gets the lock as soon as the holder releases it.
    let waiter = tokio::spawn({
        let (conn, prefix) = (conn.clone(), prefix.clone());
        async move { PreviewLock::acquire(&conn, &prefix, 7, Duration::from_secs(10)).await }
    });
    first.release().await;
    let second = waiter.await.expect("task").expect("acquired after release");
    second.release().await;
    other.release().await;
    previewd_tests::clear_redis_prefix(&prefix)
        .await
        .expect("cleanup");
}
