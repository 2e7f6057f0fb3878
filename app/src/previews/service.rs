//! What people do to a preview outside the pull request — delete, retry, redeploy, extend —
//! once for every door (the dashboard now, the REST API and MCP on the same functions).
//!
//! Each verb takes the acting person ([`Actor`]), asks [`Access::check`] first, then runs the
//! lifecycle transition in one transaction that enqueues its jobs before committing
//! ([`lifecycle::in_transaction`]). The person's write permission was checked here, so the
//! transitions are the trusted ones: a retry or redeploy is queued at once (and shown as a
//! queued check run on the PR), a delete marks the preview `deleting` at once.

use chrono::{DateTime, Utc};
use previewd_entity::PreviewStatus;
use sea_orm::DatabaseConnection;

use super::{
    access::{Access, Actor, Denied, Verb},
    lifecycle::{self, Asker, Removal, ShowQueued, TransactionError},
    records::{self, PreviewRow},
    report::CommentState,
};
use crate::{github::RepoName, jobs::Queues, reporter::Reporter};

/// What the verbs need.
#[derive(Debug, Clone, Copy)]
pub struct Service<'a> {
    pub db: &'a DatabaseConnection,
    pub queues: &'a Queues,
    pub reporter: &'a Reporter,
    pub access: &'a Access,
    /// How far Extend pushes the expiry.
    pub ttl: std::time::Duration,
}

/// Why a verb did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The preview is in no state for it; the message says why, in words.
    #[error("{0}")]
    Conflict(String),
    #[error("the database or the queue failed: {0}")]
    Store(String),
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Store(e.to_string())
    }
}

impl From<TransactionError> for ServiceError {
    fn from(e: TransactionError) -> Self {
        Self::Store(e.to_string())
    }
}

impl Service<'_> {
    /// The preview if `actor` may `verb` it.
    pub async fn get(
        &self,
        actor: &Actor,
        preview_id: i64,
        verb: Verb,
    ) -> Result<PreviewRow, ServiceError> {
        let row = records::preview_row(self.db, preview_id)
            .await?
            .ok_or(Denied::NotFound)?;
        self.access.check(actor, &row.repository, verb).await?;
        Ok(row)
    }

    /// Removes the preview now: `deleting`, and a cleanup job.
    pub async fn delete(&self, actor: &Actor, preview_id: i64) -> Result<String, ServiceError> {
        let row = self.get(actor, preview_id, Verb::Delete).await?;
        if lifecycle::REMOVED.contains(&row.preview.status) {
            return Err(ServiceError::Conflict(format!(
                "{} is already being removed or gone",
                row.preview.namespace
            )));
        }
        let removal = Removal::Deleted(actor.login.clone());
        let outcome = lifecycle::in_transaction(self.db, self.queues, async |txn| {
            let Some(preview) = records::preview_by_id(txn, preview_id).await? else {
                return Ok((
                    lifecycle::Outcome::nothing("the preview no longer exists"),
                    Default::default(),
                ));
            };
            let outcome = lifecycle::request_removal(txn, &preview, &removal).await?;
            let work = outcome.work.clone();
            Ok((outcome, work))
        })
        .await?;
        if outcome.work.cleanups.is_empty() {
            return Err(ServiceError::Conflict(outcome.detail));
        }
        tracing::info!(preview = preview_id, by = %actor.login, "preview deletion asked for");
        Ok(format!("{} is being deleted", row.preview.namespace))
    }

    /// Deploys the head commit again after a failed attempt.
    pub async fn retry(&self, actor: &Actor, preview_id: i64) -> Result<String, ServiceError> {
        let row = self.get(actor, preview_id, Verb::Retry).await?;
        if row.preview.status != PreviewStatus::Failed {
            return Err(ServiceError::Conflict(format!(
                "only a failed deploy can be retried; {} is {}",
                row.preview.namespace,
                status_word(row.preview.status)
            )));
        }
        self.rerun(actor, &row, "retry").await
    }

    /// Deploys the head commit again, whatever the preview's state (a removed one comes back).
    pub async fn redeploy(&self, actor: &Actor, preview_id: i64) -> Result<String, ServiceError> {
        let row = self.get(actor, preview_id, Verb::Redeploy).await?;
        self.rerun(actor, &row, "redeploy").await
    }

    async fn rerun(
        &self,
        actor: &Actor,
        row: &PreviewRow,
        trigger: &str,
    ) -> Result<String, ServiceError> {
        let preview_id = row.preview.id;
        let outcome = lifecycle::in_transaction(self.db, self.queues, async |txn| {
            let Some(preview) = records::preview_by_id(txn, preview_id).await? else {
                return Ok((
                    lifecycle::Outcome::nothing("the preview no longer exists"),
                    Default::default(),
                ));
            };
            let outcome = lifecycle::request_rerun(
                txn,
                &preview,
                &preview.head_sha,
                trigger,
                Asker::Trusted,
                ShowQueued::ByCaller,
            )
            .await?;
            let work = outcome.work.clone();
            Ok((outcome, work))
        })
        .await?;
        if outcome.work.deploys.is_empty() {
            return Err(ServiceError::Conflict(outcome.detail));
        }
        if let Some(repo) = RepoName::parse(&row.repository.full_name) {
            crate::reporter::spawn_queued_check_runs(
                self.reporter.clone(),
                row.repository.installation_id,
                repo,
                outcome.work.queued.clone(),
            );
        }
        tracing::info!(preview = preview_id, by = %actor.login, trigger, "deploy asked for");
        Ok(format!(
            "{trigger} of {} at {} queued",
            row.preview.namespace,
            row.preview
                .head_sha
                .get(..7)
                .unwrap_or(&row.preview.head_sha)
        ))
    }

    /// Pushes the expiry back by the install's TTL.
    pub async fn extend(&self, actor: &Actor, preview_id: i64) -> Result<String, ServiceError> {
        let row = self.get(actor, preview_id, Verb::Extend).await?;
        match extend_preview(self.db, self.reporter, preview_id, &actor.login, self.ttl).await? {
            Some(until) => Ok(format!(
                "{} now expires {}",
                row.preview.namespace,
                until.format("%Y-%m-%d %H:%M UTC")
            )),
            None => Err(ServiceError::Conflict(format!(
                "only a running or failed preview can be extended; {} is {}",
                row.preview.namespace,
                status_word(row.preview.status)
            ))),
        }
    }
}

/// Extends a running or failed preview by `ttl` from its expiry (or from now, if that is
/// later) and says so in the sticky comment; `None` when the preview is in no state for it.
/// The caller has checked that `by` may. Shared by the Extend button (the worker) and the
/// dashboard.
pub async fn extend_preview(
    db: &DatabaseConnection,
    reporter: &Reporter,
    preview_id: i64,
    by: &str,
    ttl: std::time::Duration,
) -> Result<Option<DateTime<Utc>>, sea_orm::DbErr> {
    let Some(actx) = records::last_attempt_context(db, preview_id).await? else {
        return Ok(None);
    };
    if !matches!(
        actx.preview.status,
        PreviewStatus::Running | PreviewStatus::Failed
    ) {
        return Ok(None);
    }
    let from = actx
        .preview
        .expires_at
        .unwrap_or_else(Utc::now)
        .max(Utc::now());
    let until =
        from + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(3));
    let Some(preview) = lifecycle::extend(db, preview_id, until).await? else {
        return Ok(None);
    };
    tracing::info!(preview = preview.id, by = %by, until = %until, "preview extended");
    if let Some(url) = preview.url.clone() {
        let state = CommentState::Extended {
            url,
            by: by.to_owned(),
            until,
        };
        if let Err(e) = reporter.comment(&actx, &state).await {
            tracing::warn!(error = %e, "could not update the sticky comment");
        }
    }
    Ok(Some(until))
}

/// A status's stable key (in the APIs, URLs and class names) and its words (on pages and in
/// messages).
fn names(status: PreviewStatus) -> (&'static str, &'static str) {
    match status {
        PreviewStatus::AwaitingApproval => ("awaiting_approval", "awaiting approval"),
        PreviewStatus::Pending => ("pending", "pending"),
        PreviewStatus::Building => ("building", "building"),
        PreviewStatus::Deploying => ("deploying", "deploying"),
        PreviewStatus::Running => ("running", "running"),
        PreviewStatus::Failed => ("failed", "failed"),
        PreviewStatus::Deleting => ("deleting", "deleting"),
        PreviewStatus::Deleted => ("deleted", "deleted"),
    }
}

/// A status's stable key, as the APIs and URLs name it (`awaiting_approval`).
pub fn status_key(status: PreviewStatus) -> &'static str {
    names(status).0
}

/// A status in words, as pages and messages show it (`awaiting approval`).
pub fn status_word(status: PreviewStatus) -> &'static str {
    names(status).1
}
