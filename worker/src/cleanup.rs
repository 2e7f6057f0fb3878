//! The cleanup job: remove a preview's namespace (and any build namespace it left), wait until
//! it is gone, and say so.
//!
//! Cleanup beats deploy: the removal was recorded (`deleting`) when it was asked for, before
//! this job waits for the preview's lock, so a running deploy stops at its next step. A Destroy
//! asked for by someone whose permission is not yet known is confirmed here first. The job acts
//! only on the removal it was enqueued for (its generation): a preview asked for again since —
//! reopened while cleanup ran, say — keeps its new life, and this job finishes without marking
//! it deleted. "Already gone" counts as success. The row stays, as history, with status
//! `deleted`. The handler never returns an error (apalis would re-schedule it on its own): after
//! the last try operators are alerted.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use previewd::{
    jobs::CleanupJob,
    previews::{
        lifecycle,
        records::{self, AttemptContext},
        report::CommentState,
    },
};
use previewd_entity::PreviewStatus;
use sea_orm::DbErr;
use tokio::time::Instant;

use crate::{context::JobContext, lock::PreviewLock};

/// Tries of one cleanup before operators are alerted (each bounded by what is left of the
/// cleanup budget, `CLEANUP_TIMEOUT`).
pub const MAX_CLEANUP_TRIES: u32 = 5;

/// The apalis handler of the cleanup queue.
pub async fn cleanup_job(job: CleanupJob, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<JobContext> = (*ctx).clone();
    let generation = match confirmed(&ctx, &job).await {
        Ok(Some(generation)) => generation,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::error!(preview = job.preview_id, error = %e, "could not start the cleanup; the reconciler retries stuck removals");
            return Ok(());
        }
    };
    let deadline = Instant::now() + ctx.lock_wait() + ctx.config.cleanup_timeout;
    let mut tries = 0;
    let result = loop {
        tries += 1;
        match remove(&ctx, &job, generation, deadline).await {
            Ok(()) => break Ok(()),
            Err(e) if tries < MAX_CLEANUP_TRIES && Instant::now() < deadline => {
                let pause = ctx.retry_backoff * 2u32.pow(tries - 1);
                tracing::warn!(preview = job.preview_id, tries, error = %e, "cleanup failed; retrying in {pause:?}");
                tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = result {
        alert(&ctx, &job, generation, tries, &e.to_string()).await;
    }
    Ok(())
}

/// The generation this job removes: the one it was enqueued for, once a Destroy's asker is
/// known to be a writer; `None` when there is nothing (left) to do.
async fn confirmed(ctx: &JobContext, job: &CleanupJob) -> Result<Option<i64>, BoxDynError> {
    let Some(actx) = committed_context(ctx, job).await? else {
        // A preview without attempts has nothing in the cluster, but may still be deleting.
        let Some(preview) = records::preview_by_id(&ctx.db, job.preview_id).await? else {
            return Ok(None);
        };
        if preview.status == PreviewStatus::Deleting {
            lifecycle::finish_removal(&ctx.db, preview.id, preview.generation).await?;
        }
        return Ok(None);
    };
    let preview = &actx.preview;
    if let Some(who) = &job.requested_by {
        if !crate::permission::writer_or_refuse(ctx, &actx, who, "destroy").await? {
            return Ok(None);
        }
        let asked = job.generation.unwrap_or(preview.generation);
        return match lifecycle::confirm_destroy(&ctx.db, preview.id, asked).await? {
            Some(generation) => Ok(Some(generation)),
            None => {
                tracing::info!(
                    preview = preview.id,
                    "destroy out of date (the preview changed since); nothing to do"
                );
                Ok(None)
            }
        };
    }
    let generation = job.generation.unwrap_or(preview.generation);
    if preview.status != PreviewStatus::Deleting || preview.generation != generation {
        tracing::info!(preview = preview.id, status = ?preview.status, "removal out of date (the preview was asked for again); nothing to do");
        return Ok(None);
    }
    Ok(Some(generation))
}

/// The preview's latest attempt as the removal that enqueued `job` left it. The app pushes a
/// group's jobs to Redis before that group commits (so an answered delivery is never without
/// its job), and a worker can take the job in between: the preview it reads is then missing, or
/// one generation short of the job's. For a removal (not a Destroy, whose generation is the
/// preview's as it already was) it reads again every 10 ms for up to 5 s, as a deploy does for
/// its attempt, before it calls the job out of date (or the preview gone). A group that never
/// commits is tried again one delivery at a time, which enqueues the removal anew, or answered
/// 503 for GitHub to redeliver: giving up on its job loses nothing.
async fn committed_context(
    ctx: &JobContext,
    job: &CleanupJob,
) -> Result<Option<AttemptContext>, DbErr> {
    let awaited = match (job.requested_by.as_ref(), job.generation) {
        (None, Some(generation)) => generation,
        _ => return records::last_attempt_context(&ctx.db, job.preview_id).await,
    };
    let deadline = Instant::now() + COMMIT_WAIT;
    loop {
        let found = records::last_attempt_context(&ctx.db, job.preview_id).await?;
        let generation = match &found {
            Some(actx) => Some(actx.preview.generation),
            // A preview that never had an attempt (one waiting for approval, say).
            None => records::preview_by_id(&ctx.db, job.preview_id)
                .await?
                .map(|preview| preview.generation),
        };
        let committed = generation.is_some_and(|generation| generation >= awaited);
        if committed || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long a removal's job waits for the removal it was enqueued for to commit.
const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// The last try failed: tell operators everywhere they look — an error log with the preview's
/// fields, the row flagged (`previewd_cleanup_failures_total` on the app's `/metrics` counts
/// them, the dashboard shows them), and a line in the sticky comment.
async fn alert(ctx: &JobContext, job: &CleanupJob, generation: i64, tries: u32, error: &str) {
    let Ok(Some(actx)) = records::last_attempt_context(&ctx.db, job.preview_id).await else {
        return;
    };
    let message = previewd::sanitize::sanitize(error, 500);
    tracing::error!(
        preview = actx.preview.id,
        namespace = %actx.preview.namespace,
        repo = %actx.repository.full_name,
        pr = actx.pull_request.number,
        tries,
        error = %message,
        "cleanup failed after every try; operators must remove the namespace"
    );
    let flagged = lifecycle::flag_removal_failed(
        &ctx.db,
        actx.preview.id,
        generation,
        &format!("cleanup failed after {tries} tries: {message}"),
    )
    .await;
    match flagged {
        Ok(true) => {}
        Ok(false) => return, // asked for again meanwhile: not a failure of the preview it is now
        Err(e) => tracing::error!(error = %e, "could not flag the failed cleanup"),
    }
    if actx.repository.removed_at.is_some() {
        return;
    }
    let state = CommentState::CleanupFailed {
        message: format!("{message} (after {tries} tries)"),
    };
    if let Err(e) = ctx.reporter.comment(&actx, &state).await {
        tracing::warn!(error = %e, "could not update the sticky comment");
    }
}

/// One try: the preview's lock, the namespaces deleted and gone, the removal recorded, GitHub
/// told.
async fn remove(
    ctx: &JobContext,
    job: &CleanupJob,
    generation: i64,
    deadline: Instant,
) -> Result<(), BoxDynError> {
    let wait = deadline.saturating_duration_since(Instant::now());
    let lock = PreviewLock::acquire(&ctx.redis, &ctx.prefix, job.preview_id, wait).await?;
    let result = remove_locked(ctx, job, generation, deadline).await;
    lock.release().await;
    result
}

async fn remove_locked(
    ctx: &JobContext,
    job: &CleanupJob,
    generation: i64,
    deadline: Instant,
) -> Result<(), BoxDynError> {
    let Some(actx) = records::last_attempt_context(&ctx.db, job.preview_id).await? else {
        return Ok(());
    };
    let preview = &actx.preview;
    let gone = ctx
        .cluster
        .remove_preview(&preview.namespace, preview.id, &ctx.install_id, deadline)
        .await?;
    if !gone {
        return Err(format!(
            "namespace {} still exists after the cleanup timeout of {} s",
            preview.namespace,
            ctx.config.cleanup_timeout.as_secs()
        )
        .into());
    }
    if !lifecycle::finish_removal(&ctx.db, preview.id, generation).await? {
        tracing::info!(
            preview = preview.id,
            "namespace removed; the preview was asked for again meanwhile and keeps its new life"
        );
        return Ok(());
    }
    tracing::info!(preview = preview.id, namespace = %preview.namespace, reason = %job.reason, "preview removed");
    if actx.repository.removed_at.is_some() {
        // The repository is gone from the App (or from GitHub, its name maybe taken by a new
        // one): there is nothing of this preview left on GitHub to tell.
        return Ok(());
    }

    // GitHub: every deployment of the preview inactive, the comment says why. Best effort.
    if let Err(e) = ctx.reporter.deployments_removed(preview.id).await {
        tracing::warn!(error = %e, "could not mark the deployments inactive");
    }
    if let Err(e) = ctx
        .reporter
        .comment(
            &actx,
            &CommentState::Removed {
                reason: job.reason.clone(),
            },
        )
        .await
    {
        tracing::warn!(error = %e, "could not update the sticky comment");
    }
    Ok(())
}
