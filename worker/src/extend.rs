//! The extend job (the Extend button): pushes a preview's expiry back by the install's TTL, for
//! people with write permission.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use previewd::{
    jobs::ExtendJob,
    previews::{lifecycle, records, report::CommentState},
};
use previewd_entity::PreviewStatus;

use crate::{context::JobContext, permission::writer_or_refuse};

/// The apalis handler of the extend queue. Never an error: apalis would re-schedule it on its
/// own; a failure is logged and the button can be pressed again.
pub async fn extend_job(job: ExtendJob, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<JobContext> = (*ctx).clone();
    if let Err(e) = extend(&ctx, &job).await {
        tracing::warn!(preview = job.preview_id, error = %e, "could not extend the preview");
    }
    Ok(())
}

async fn extend(ctx: &JobContext, job: &ExtendJob) -> Result<(), BoxDynError> {
    let Some(actx) = records::last_attempt_context(&ctx.db, job.preview_id).await? else {
        return Ok(());
    };
    if !matches!(
        actx.preview.status,
        PreviewStatus::Running | PreviewStatus::Failed
    ) {
        return Ok(());
    }
    if !writer_or_refuse(ctx, &actx, &job.requested_by, "extend").await? {
        return Ok(());
    }
    let from = actx
        .preview
        .expires_at
        .unwrap_or_else(Utc::now)
        .max(Utc::now());
    let until = from
        + chrono::Duration::from_std(ctx.config.ttl).unwrap_or_else(|_| chrono::Duration::days(3));
    let Some(preview) = lifecycle::extend(&ctx.db, job.preview_id, until).await? else {
        return Ok(());
    };
    tracing::info!(preview = preview.id, by = %job.requested_by, until = %until, "preview extended");
    if let Some(url) = preview.url.clone() {
        let state = CommentState::Extended {
            url,
            by: job.requested_by.clone(),
            until,
        };
        if let Err(e) = ctx.reporter.comment(&actx, &state).await {
            tracing::warn!(error = %e, "could not update the sticky comment");
        }
    }
    Ok(())
}
