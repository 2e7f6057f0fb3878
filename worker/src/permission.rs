//! Buttons and comment commands act only for people with write permission on the repository;
//! everyone else gets a short explanation on the check run they pressed, and nothing happens.

use previewd::github::{GitHubError, RepoName};
use previewd_entity::repository;

use crate::context::JobContext;

/// True when `who` may `what` ("redeploy", "destroy", "extend") previews of `repository`;
/// otherwise explains on check run `explain_on` (when given) and returns false.
pub async fn writer_or_explain(
    ctx: &JobContext,
    repository: &repository::Model,
    explain_on: Option<i64>,
    who: &str,
    what: &str,
) -> Result<bool, GitHubError> {
    let Some(repo) = RepoName::parse(&repository.full_name) else {
        return Ok(false);
    };
    if ctx
        .github
        .permission(repository.installation_id, &repo, who)
        .await?
        .can_write()
    {
        return Ok(true);
    }
    tracing::info!(who, what, repo = %repository.full_name, "refused: no write permission");
    if let Some(check_run) = explain_on.filter(|id| *id > 0) {
        let title = format!("{} not allowed", capitalized(what));
        let summary = format!(
            "@{who} asked to {what} this preview, but only people with write permission on the repository can."
        );
        if let Err(e) = ctx
            .reporter
            .explain(repository, check_run, &title, &summary)
            .await
        {
            tracing::warn!(error = %e, "could not explain the refusal on the check run");
        }
    }
    Ok(false)
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
