//! The extend job (the Extend button): push a preview's expiry back by the install's TTL, for
//! people with write permission.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use previewd::{
    jobs::ExtendJob,
    previews::{records, report::CommentState},
};
use previewd_entity::PreviewStatus;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};

use crate::{context::JobContext, permission::writer_or_explain};

/// The apalis handler of the extend queue.
pub async fn extend_job(job: ExtendJob, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<JobContext> = (*ctx).clone();
    let Some((preview, _, repository)) = records::preview_context(&ctx.db, job.preview_id).await?
    else {
        return Ok(());
    };
    if !matches!(
        preview.status,
        PreviewStatus::Running | PreviewStatus::Failed
    ) {
        return Ok(());
    }
    if !writer_or_explain(
        &ctx,
        &repository,
        Some(job.check_run_id),
        &job.requested_by,
        "extend",
    )
    .await?
    {
        return Ok(());
    }
    let from = preview.expires_at.unwrap_or_else(Utc::now).max(Utc::now());
    let until = from
        + chrono::Duration::from_std(ctx.config.ttl).unwrap_or_else(|_| chrono::Duration::days(3));
    let mut row = preview.clone().into_active_model();
    row.expires_at = Set(Some(until));
    row.expiry_warned_at = Set(None);
    let preview = row.update(&ctx.db).await?;
    tracing::info!(preview = preview.id, by = %job.requested_by, until = %until, "preview extended");
    if let (Some(actx), Some(url)) = (
        records::last_attempt_context(&ctx.db, preview.id).await?,
        preview.url.clone(),
    ) {
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
