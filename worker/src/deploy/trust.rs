//! Who may deploy what (DESIGN.md §8).
//!
//! [`confirm`] runs before anything else for a request whose asker's permission the app could
//! not check (a Redeploy button or command, an approval label or command): a writer's request is
//! applied by the lifecycle ([`lifecycle::adopt`]); anyone else's is refused with one reply per
//! person and commit, and changes nothing.
//!
//! [`check`] decides whether the commit may run: pull requests from forks, or by authors
//! without write permission (asked of GitHub, not read from `author_association`), run only once
//! a writer approved that very commit; until then the check run asks for approval.

use previewd::{
    github::{GitHubError, RepoName, api::CheckStatus, api::Conclusion},
    jobs::DeployJob,
    previews::{
        lifecycle::{self, Adopted},
        records::AttemptContext,
        report::{self, CommentState},
    },
};

use super::Stop;
use crate::{context::JobContext, permission};

/// Confirms a request made by someone whose permission is not known yet; true when the attempt
/// is now the preview's current one and the deploy goes on.
pub(super) async fn confirm(
    ctx: &JobContext,
    job: &DeployJob,
    actx: &AttemptContext,
) -> Result<bool, GitHubError> {
    let (who, approval) = match (&job.requested_by, &job.approved_by) {
        (Some(who), _) => (who.as_str(), false),
        (None, Some(who)) => (who.as_str(), true),
        (None, None) => return Ok(true),
    };
    let what = if approval { "approve" } else { "redeploy" };
    if !permission::writer_or_refuse(ctx, actx, who, what).await? {
        if let Err(e) = lifecycle::refuse(&ctx.db, actx.attempt.id).await {
            tracing::error!(error = %e, "could not record the refused request");
        }
        return Ok(false);
    }
    match lifecycle::adopt(&ctx.db, actx.attempt.id, approval).await {
        Ok(Adopted::Current) => {
            if approval {
                tracing::info!(approver = %who, "commit approved");
            }
            Ok(true)
        }
        Ok(Adopted::Stale(why)) => {
            tracing::info!(%why, "request out of date; nothing to do");
            Ok(false)
        }
        Err(e) => {
            tracing::error!(error = %e, "could not apply the request");
            Ok(false)
        }
    }
}

/// `Ok(true)` when the author is trusted, `Ok(false)` when a writer approved this commit,
/// `Err(NeedsApproval)` after reporting that it waits for one.
pub(super) async fn check(
    ctx: &JobContext,
    actx: &AttemptContext,
    repo: &RepoName,
) -> Result<bool, Stop> {
    let installation = actx.repository.installation_id;
    let why = if actx.pull_request.from_fork {
        Some("comes from a fork")
    } else if ctx
        .github
        .permission(installation, repo, &actx.pull_request.author_login)
        .await?
        .can_write()
    {
        None
    } else {
        Some("was opened by someone without write permission")
    };
    let Some(why) = why else {
        return Ok(true);
    };
    if actx.preview.approved_sha.as_deref() == Some(actx.attempt.sha.as_str()) {
        return Ok(false);
    }
    // Waiting for a human: say so, and stop without retrying.
    lifecycle::await_approval(&ctx.db, &actx.attempt).await?;
    ctx.reporter
        .check_run(
            actx,
            CheckStatus::Completed(Conclusion::ActionRequired),
            report::action_required(&actx.attempt.sha, why, None),
        )
        .await?;
    if let Err(e) = ctx
        .reporter
        .comment(actx, &CommentState::AwaitingApproval)
        .await
    {
        tracing::warn!(error = %e, "could not update the sticky comment");
    }
    Err(Stop::NeedsApproval)
}
