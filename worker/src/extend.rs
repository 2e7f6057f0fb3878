//! The extend job (the Extend button): pushes a preview's expiry back by the install's TTL, for
//! people with write permission.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use previewd::{
    jobs::ExtendJob,
    previews::{records, service},
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
    service::extend_preview(
        &ctx.db,
        &ctx.reporter,
        job.preview_id,
        &job.requested_by,
        ctx.config.ttl,
    )
    .await?;
    Ok(())
}
