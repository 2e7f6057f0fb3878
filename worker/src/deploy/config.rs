//! The repository's `.github/preview.yml`, read from the head commit for trusted authors and
//! from the base branch otherwise, and its `paths`: a pull request touching none of them needs
//! no preview.
//!
//! A file that cannot be used — not valid YAML, unknown keys, values out of bounds, not even
//! UTF-8 text — is the repository's to fix: a user error with a clear message, never an
//! infrastructure error that is tried again.

use previewd::{
    github::{RepoName, api::CheckStatus, api::Conclusion},
    previews::{
        lifecycle,
        records::AttemptContext,
        repo_config::{self, RepoConfig},
        report::{self, Failure, FailureKind},
    },
};

use super::Stop;
use crate::context::JobContext;

/// The configuration to deploy with; `Err(NotNeeded)` (reported) when `paths` say no preview.
pub(super) async fn load(
    ctx: &JobContext,
    actx: &AttemptContext,
    repo: &RepoName,
    trusted_author: bool,
) -> Result<RepoConfig, Stop> {
    let installation = actx.repository.installation_id;
    let git_ref = if trusted_author {
        actx.attempt.sha.clone()
    } else {
        actx.pull_request.base_ref.clone()
    };
    let text = match ctx
        .github
        .file(installation, repo, repo_config::PATH, &git_ref)
        .await
    {
        Ok(text) => text,
        // The file is there but unusable as text (not a file, not UTF-8): the repository's to fix.
        Err(e) if !e.retryable && e.status.is_some_and(|s| (200..300).contains(&s)) => {
            return Err(Stop::User(Failure::new(
                FailureKind::Config,
                format!(
                    "{} at {}: {}",
                    repo_config::PATH,
                    report::short_sha(&git_ref),
                    e.message
                ),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let config = match text {
        None => RepoConfig::defaults(&ctx.config.limits),
        Some(text) => repo_config::parse(&text, &ctx.config.limits)
            .map_err(|e| Stop::User(Failure::new(FailureKind::Config, e.to_string())))?,
    };
    if config.paths.is_empty() {
        return Ok(config);
    }
    let number = u64::try_from(actx.pull_request.number).unwrap_or_default();
    let files = ctx
        .github
        .pull_request_files(installation, repo, number)
        .await?;
    let touched = files
        .iter()
        .any(|f| config.paths.iter().any(|g| repo_config::glob_matches(g, f)));
    if touched {
        return Ok(config);
    }
    lifecycle::not_needed(&ctx.db, &actx.attempt).await?;
    let text = report::CheckText {
        title: "No preview needed".into(),
        summary: format!(
            "This pull request changes nothing under `paths` ({}) of .github/preview.yml.",
            config.paths.join(", ")
        ),
        text: None,
    };
    ctx.reporter
        .check_run(actx, CheckStatus::Completed(Conclusion::Neutral), text)
        .await?;
    Err(Stop::NotNeeded)
}
