//! Is the preview up? Every Deployment of the namespace Available with all replicas ready —
//! judged by this attempt's pods and events only — and, where the install enables it
//! (`PROBE_URLS`), its health path answering 2xx through the public URL. When it does not come
//! up, the diagnosis says why in terms the author can act on.

use std::time::Duration;

use previewd::{
    cluster::{PreviewMeta, observe::Outcome},
    previews::{
        repo_config::RepoConfig,
        report::{Failure, FailureKind},
    },
};
use tokio::time::Instant;

use super::{Stop, failure_of, while_current};
use crate::context::JobContext;

/// Waits until the workload of `meta`'s attempt is ready, or says why not.
pub(super) async fn wait(
    ctx: &JobContext,
    attempt_id: i64,
    config: &RepoConfig,
    meta: &PreviewMeta,
    since: chrono::DateTime<chrono::Utc>,
    url: &str,
    deadline: Instant,
) -> Result<(), Stop> {
    match while_current(
        ctx,
        attempt_id,
        ctx.cluster.wait_ready(meta, since, deadline),
    )
    .await??
    {
        Outcome::Ready => {}
        Outcome::Failed(d) => return Err(Stop::User(failure_of(d))),
        Outcome::TimedOut(mut d) => {
            d.message = format!(
                "{} within the deploy timeout of {} s (DEPLOY_TIMEOUT)",
                d.message,
                ctx.config.deploy_timeout.as_secs()
            );
            return Err(Stop::User(failure_of(d)));
        }
    }
    if ctx.config.probe_urls {
        probe(ctx, url, &config.health, deadline).await?;
    }
    Ok(())
}

/// Probes the public URL's health path until it answers 2xx or the deadline passes.
async fn probe(ctx: &JobContext, url: &str, health: &str, deadline: Instant) -> Result<(), Stop> {
    let target = format!("{url}{health}");
    let mut last = String::new();
    while Instant::now() < deadline {
        match ctx.http.get(&target).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => {
                last = (if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                })
                .to_owned()
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Stop::User(Failure::new(
        FailureKind::ReadinessTimeout,
        format!("{target} did not answer 2xx in time (last: {last})"),
    )))
}
