//! The cleanup job: remove a preview's namespace, wait until it is gone, and say so.
//!
//! Cleanup beats deploy: it marks the preview `deleting` before waiting for the preview's lock,
//! so a running deploy stops at its next step. "Already gone" counts as success. The row stays,
//! as history, with status `deleted`.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use previewd::{
    github::api::DeploymentState,
    jobs::CleanupJob,
    previews::{records, report::CommentState},
};
use previewd_entity::{PreviewStatus, deploy_attempt, preview};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use tokio::time::Instant;

use crate::{context::JobContext, lock::PreviewLock};

/// The apalis handler of the cleanup queue.
pub async fn cleanup_job(job: CleanupJob, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<JobContext> = (*ctx).clone();
    let Some((preview, _, _)) = records::preview_context(&ctx.db, job.preview_id).await? else {
        return Ok(());
    };
    if preview.status == PreviewStatus::Deleted {
        return Ok(());
    }
    if let Some(who) = &job.requested_by
        && !may_destroy(&ctx, job.preview_id, who).await?
    {
        return Ok(());
    }
    if preview.status != PreviewStatus::Deleting {
        records::set_preview_status(&ctx.db, preview.clone(), PreviewStatus::Deleting).await?;
    }
    let lock = PreviewLock::acquire(
        &ctx.redis,
        &ctx.prefix,
        preview.id,
        ctx.config.deploy_timeout,
    )
    .await?;
    let deadline = Instant::now() + ctx.config.cleanup_timeout;
    let mut tries = 0;
    let result = loop {
        tries += 1;
        match remove(&ctx, &job, deadline).await {
            Ok(()) => break Ok(()),
            Err(e) if tries < MAX_CLEANUP_TRIES && Instant::now() < deadline => {
                let pause = ctx.retry_backoff * 2u32.pow(tries - 1);
                tracing::warn!(preview = preview.id, tries, error = %e, "cleanup failed; retrying in {pause:?}");
                tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
            Err(e) => break Err(e),
        }
    };
    lock.release().await;
    if let Err(e) = result {
        alert(&ctx, &job, tries, &e.to_string()).await;
    }
    // Handled either way: a failed cleanup is an operator's matter now, not a retry storm.
    Ok(())
}

/// Tries of one cleanup before operators are alerted (each bounded by what is left of the
/// cleanup budget, `CLEANUP_TIMEOUT`).
pub const MAX_CLEANUP_TRIES: u32 = 5;

/// The last try failed: tell operators everywhere they look — an error log with the preview's
/// fields, the row flagged (`previewd_cleanup_failures_total` on the app's `/metrics` counts
/// them, the dashboard shows them), and a line in the sticky comment.
async fn alert(ctx: &JobContext, job: &CleanupJob, tries: u32, error: &str) {
    let Ok(Some((preview, pr, repository))) =
        records::preview_context(&ctx.db, job.preview_id).await
    else {
        return;
    };
    let message = previewd::sanitize::sanitize(error, 500);
    tracing::error!(
        preview = preview.id,
        namespace = %preview.namespace,
        repo = %repository.full_name,
        pr = pr.number,
        tries,
        error = %message,
        "cleanup failed after every try; operators must remove the namespace"
    );
    let mut row = preview.clone().into_active_model();
    row.cleanup_failed = Set(true);
    row.last_error = Set(Some(format!(
        "cleanup failed after {tries} tries: {message}"
    )));
    row.updated_at = Set(Utc::now());
    if let Err(e) = row.update(&ctx.db).await {
        tracing::error!(error = %e, "could not flag the failed cleanup");
    }
    if let Ok(Some(actx)) = records::last_attempt_context(&ctx.db, preview.id).await {
        let state = CommentState::CleanupFailed {
            message: format!("{} (after {tries} tries)", message),
        };
        if let Err(e) = ctx.reporter.comment(&actx, &state).await {
            tracing::warn!(error = %e, "could not update the sticky comment");
        }
    }
}

/// Destroy asked for by `who`: only people with write permission may; others get an explanation
/// on the preview's check run, and the preview stays.
async fn may_destroy(ctx: &JobContext, preview_id: i64, who: &str) -> Result<bool, BoxDynError> {
    let Some((preview, _, repository)) = records::preview_context(&ctx.db, preview_id).await?
    else {
        return Ok(false);
    };
    Ok(
        crate::permission::writer_or_explain(
            ctx,
            &repository,
            preview.check_run_id,
            who,
            "destroy",
        )
        .await?,
    )
}

async fn remove(ctx: &JobContext, job: &CleanupJob, deadline: Instant) -> Result<(), BoxDynError> {
    let Some((preview, _, _)) = records::preview_context(&ctx.db, job.preview_id).await? else {
        return Ok(());
    };
    ctx.cluster.delete_namespace(&preview.namespace).await?;
    if !ctx
        .cluster
        .wait_namespace_gone(&preview.namespace, deadline)
        .await?
    {
        return Err(format!(
            "namespace {} still exists after the cleanup timeout of {} s",
            preview.namespace,
            ctx.config.cleanup_timeout.as_secs()
        )
        .into());
    }
    let mut row = preview.clone().into_active_model();
    row.status = Set(PreviewStatus::Deleted);
    row.deleted_at = Set(Some(Utc::now()));
    row.updated_at = Set(Utc::now());
    row.url = Set(None);
    let preview = row.update(&ctx.db).await?;
    tracing::info!(preview = preview.id, namespace = %preview.namespace, reason = %job.reason, "preview removed");

    // GitHub: the deployment inactive, the comment says why. Best effort.
    let last = deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview.id))
        .order_by_desc(deploy_attempt::Column::Id)
        .one(&ctx.db)
        .await?;
    if let Some(last) = last
        && let Some(actx) = records::attempt_context(&ctx.db, last.id).await?
    {
        let deployment = preview::Entity::find_by_id(preview.id)
            .one(&ctx.db)
            .await?
            .and_then(|p| p.github_deployment_id);
        if let Some(deployment) = deployment
            && let Err(e) = ctx
                .reporter
                .deployment_status(
                    &actx,
                    deployment,
                    DeploymentState::Inactive,
                    None,
                    "Preview removed",
                )
                .await
        {
            tracing::warn!(error = %e, "could not mark the deployment inactive");
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
    }
    Ok(())
}
