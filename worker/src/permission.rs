//! Buttons and comment commands act only for people with write permission on the repository
//! (a custom repository role counts when GitHub reports it as `write` or more). Everyone else
//! is answered once per person, request and commit — one reply on the pull request — and
//! nothing happens: no new check run, no retitled check run, nothing superseded or removed. On
//! a public repository anyone can comment; a refusal must not become a way to spam or deface
//! the pull request.

use previewd::{
    github::{GitHubError, RepoName},
    previews::records::AttemptContext,
};

use crate::context::JobContext;

/// How long a refusal is remembered (per person, request and commit).
const REFUSAL_MEMORY_SECONDS: u64 = 30 * 86_400;

/// True when `who` may `what` ("redeploy", "destroy", "extend", "approve") the preview of
/// `actx`; otherwise answers them once and returns false.
pub async fn writer_or_refuse(
    ctx: &JobContext,
    actx: &AttemptContext,
    who: &str,
    what: &str,
) -> Result<bool, GitHubError> {
    let Some(repo) = RepoName::parse(&actx.repository.full_name) else {
        return Ok(false);
    };
    let installation = actx.repository.installation_id;
    if ctx
        .github
        .permission(installation, &repo, who)
        .await?
        .can_write()
    {
        return Ok(true);
    }
    tracing::info!(who, what, repo = %actx.repository.full_name, "refused: no write permission");
    let key = format!(
        "{}:refused:{}:{}:{}:{}",
        ctx.prefix,
        actx.preview.id,
        actx.preview.head_sha,
        what,
        who.to_ascii_lowercase()
    );
    let mut conn = ctx.redis.clone();
    let first: Result<Option<String>, _> = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(REFUSAL_MEMORY_SECONDS)
        .query_async(&mut conn)
        .await;
    if !matches!(first, Ok(Some(_))) {
        return Ok(false); // answered before (or Redis is down: better silent than repeated)
    }
    let number = u64::try_from(actx.pull_request.number).unwrap_or_default();
    // The marker names what this answers, so a post that timed out is found, not repeated.
    let marker = format!(
        "<!-- previewd:refused {} {} {} -->",
        who.to_ascii_lowercase(),
        actx.preview.head_sha,
        what
    );
    let body = format!(
        "{marker}\n@{who}: only people with write permission on this repository can {what} its previews."
    );
    if let Err(e) = ctx
        .github
        .create_comment(installation, &repo, number, &body, &marker)
        .await
    {
        tracing::warn!(error = %e, "could not answer the refused request");
    }
    Ok(false)
}
