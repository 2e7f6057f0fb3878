//! How an attempt ends, recorded by the lifecycle first and then shown on GitHub (check run,
//! deployment status, sticky comment). GitHub is a view: a failed report is logged, and the
//! database already tells the story.

use std::time::Duration;

use chrono::Utc;
use previewd::{
    github::api::{CheckStatus, Conclusion, DeploymentState},
    previews::{
        lifecycle::{self, FailureRecord},
        records::{self, AttemptContext},
        report::{self, CommentState, Failure, FailureKind, Success},
    },
    reporter::ReportError,
};
use previewd_entity::AttemptStatus;

use super::Stop;
use crate::context::JobContext;

/// Logs a reporting failure.
fn report_failed<T>(what: &str, result: Result<T, ReportError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not report {what} to GitHub");
    }
}

/// The preview is ready: recorded, then reported.
pub(super) async fn succeeded(
    ctx: &JobContext,
    actx: &AttemptContext,
    deployment: i64,
    success: &Success,
    ttl: Duration,
) -> Result<(), Stop> {
    let expires =
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(3));
    let shown = lifecycle::succeed(&ctx.db, &actx.attempt, &success.url, expires).await?;
    tracing::info!(url = %success.url, seconds = success.duration.as_secs_f64(), shown, "preview ready");
    report_failed(
        "the check run",
        ctx.reporter
            .check_run(
                actx,
                CheckStatus::Completed(Conclusion::Success),
                report::success(success),
            )
            .await,
    );
    report_failed(
        "the deployment status",
        ctx.reporter
            .deployment_succeeded(actx, deployment, &success.url)
            .await,
    );
    if shown {
        report_failed(
            "the sticky comment",
            ctx.reporter
                .comment(
                    actx,
                    &CommentState::Ready {
                        url: success.url.clone(),
                    },
                )
                .await,
        );
    }
    Ok(())
}

/// The attempt failed with `failure`: recorded (shown on the preview while it is current),
/// then reported.
pub(super) async fn failed(ctx: &JobContext, attempt_id: i64, failure: Failure) {
    tracing::warn!(kind = failure.kind.code(), message = %failure.message, "deploy failed");
    let status = if failure.kind == FailureKind::DeployTimeout {
        AttemptStatus::TimedOut
    } else {
        AttemptStatus::Failed
    };
    let result: Result<(), Stop> = async {
        let Some(actx) = records::attempt_context(&ctx.db, attempt_id).await? else {
            return Ok(());
        };
        let summary = format!("{}: {}", failure.kind.title(), failure.message);
        let shown = lifecycle::fail(
            &ctx.db,
            &actx.attempt,
            FailureRecord {
                status,
                kind: failure.kind.code(),
                summary: &summary,
                message: &failure.message,
                log_tail: failure.log_tail.as_deref(),
            },
        )
        .await?;
        report_failure(ctx, &actx, &failure, status, shown).await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = ?e, "could not record the failed deploy");
    }
}

/// Shows a failure on GitHub: the check run, the deployment, and — while the preview shows this
/// attempt — the sticky comment.
pub(crate) async fn report_failure(
    ctx: &JobContext,
    actx: &AttemptContext,
    failure: &Failure,
    status: AttemptStatus,
    shown: bool,
) {
    let conclusion = if status == AttemptStatus::TimedOut {
        Conclusion::TimedOut
    } else {
        Conclusion::Failure
    };
    report_failed(
        "the check run",
        ctx.reporter
            .check_run(
                actx,
                CheckStatus::Completed(conclusion),
                report::failure(failure, &actx.attempt.sha),
            )
            .await,
    );
    if let Some(deployment) = deployment_of(ctx, actx.attempt.id).await {
        let description = format!("Failed: {}", failure.kind.title());
        report_failed(
            "the deployment status",
            ctx.reporter
                .deployment_status(
                    actx,
                    deployment,
                    DeploymentState::Failure,
                    None,
                    &description,
                )
                .await,
        );
    }
    if shown {
        report_failed(
            "the sticky comment",
            ctx.reporter
                .comment(
                    actx,
                    &CommentState::Failed {
                        failure: failure.clone(),
                    },
                )
                .await,
        );
    }
}

/// The GitHub deployment of an attempt, read fresh (it is created during the deploy).
async fn deployment_of(ctx: &JobContext, attempt_id: i64) -> Option<i64> {
    records::attempt_by_id(&ctx.db, attempt_id)
        .await
        .ok()
        .flatten()
        .and_then(|a| a.github_deployment_id)
}

/// A newer attempt is current: this one ends as superseded.
pub(super) async fn superseded(ctx: &JobContext, attempt_id: i64, newer: &str) {
    tracing::info!(newer = %report::short_sha(newer), "deploy superseded by a newer attempt");
    let Ok(Some(actx)) = records::attempt_context(&ctx.db, attempt_id).await else {
        return;
    };
    let text = if newer == actx.attempt.sha {
        report::CheckText {
            title: "Superseded by a newer deploy".into(),
            summary: format!(
                "A newer deploy of {} was asked for; it shows the outcome.",
                report::short_sha(newer)
            ),
            text: None,
        }
    } else {
        report::superseded(&actx.attempt.sha, newer)
    };
    stopped(
        ctx,
        &actx,
        AttemptStatus::Superseded,
        "superseded",
        text,
        "Superseded by a newer commit",
    )
    .await;
}

/// The preview is being removed: this attempt ends as cancelled.
pub(super) async fn cancelled(ctx: &JobContext, attempt_id: i64, why: &str) {
    tracing::info!(why, "deploy cancelled");
    let Ok(Some(actx)) = records::attempt_context(&ctx.db, attempt_id).await else {
        return;
    };
    let text = report::CheckText {
        title: "Cancelled".into(),
        summary: format!("The deploy stopped: {why}."),
        text: None,
    };
    stopped(ctx, &actx, AttemptStatus::Cancelled, why, text, "Cancelled").await;
}

/// Records an attempt that stopped without an outcome of its own: its check run completes as
/// cancelled with `text`, its deployment (if any) becomes inactive.
async fn stopped(
    ctx: &JobContext,
    actx: &AttemptContext,
    status: AttemptStatus,
    reason: &str,
    text: report::CheckText,
    deployment_note: &str,
) {
    let kind = if status == AttemptStatus::Superseded {
        "superseded"
    } else {
        "cancelled"
    };
    if let Err(e) = lifecycle::stop(&ctx.db, actx.attempt.id, status, kind, reason).await {
        tracing::error!(error = %e, "could not record the stopped deploy");
        return;
    }
    report_failed(
        "the check run",
        ctx.reporter
            .check_run(actx, CheckStatus::Completed(Conclusion::Cancelled), text)
            .await,
    );
    if let Some(deployment) = deployment_of(ctx, actx.attempt.id).await {
        report_failed(
            "the deployment status",
            ctx.reporter
                .deployment_status(
                    actx,
                    deployment,
                    DeploymentState::Inactive,
                    None,
                    deployment_note,
                )
                .await,
        );
    }
}
