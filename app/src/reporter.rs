//! GitHub as a view of previewd's state: the check run of each attempt, the one sticky comment
//! of each pull request, and the deployment of each commit.
//!
//! The database stays the source of truth; a failed GitHub call here is logged and reported to
//! the caller, which decides whether it matters (a deploy does not fail because a comment could
//! not be posted). Creation of the check run and of the comment is **claimed** in the database
//! first (`0` marks "being created"), so the app and a worker, or two workers, never create two.

use std::time::Duration;

use chrono::Utc;
use previewd_entity::{AttemptStatus, deploy_attempt, preview};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use url::Url;

use crate::{
    github::{
        GitHub, GitHubError, RepoName,
        api::{
            CheckAction, CheckRunReport, CheckStatus, Conclusion, DeploymentState, DeploymentStatus,
        },
    },
    previews::{
        intake::{ACTION_DESTROY, ACTION_EXTEND, ACTION_REDEPLOY},
        records::{self, AttemptContext},
        report::{self, CheckText, CommentState, HistoryLine},
    },
};

/// How long a claimant waits for another's creation before creating its own.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// A reporting failure: GitHub or the database.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl ReportError {
    /// True when trying again later may help.
    pub fn retryable(&self) -> bool {
        match self {
            Self::GitHub(e) => e.retryable,
            Self::Database(_) => true,
        }
    }
}

/// Writes previews' state to GitHub; cheap to clone.
#[derive(Clone, Debug)]
pub struct Reporter {
    pub db: DatabaseConnection,
    pub github: GitHub,
    pub public_url: Url,
}

fn repo_name(ctx: &AttemptContext) -> Result<RepoName, ReportError> {
    RepoName::parse(&ctx.repository.full_name).ok_or_else(|| {
        ReportError::Database(DbErr::Custom(format!(
            "bad repository name {:?}",
            ctx.repository.full_name
        )))
    })
}

impl Reporter {
    /// The dashboard page of a preview.
    pub fn details_url(&self, preview_id: i64) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}/previews/{preview_id}")
    }

    fn check_report(
        &self,
        ctx: &AttemptContext,
        status: CheckStatus,
        text: CheckText,
    ) -> CheckRunReport {
        CheckRunReport {
            head_sha: ctx.attempt.sha.clone(),
            status,
            external_id: ctx.attempt.id.to_string(),
            details_url: Some(self.details_url(ctx.preview.id)),
            title: text.title,
            summary: text.summary,
            text: text.text,
            actions: actions_for(status),
        }
    }

    /// Shows "queued" for an attempt whose check run nobody has created yet (the app's side).
    pub async fn queued_check_run(&self, attempt_id: i64) -> Result<(), ReportError> {
        let Some(ctx) = records::attempt_context(&self.db, attempt_id).await? else {
            return Ok(());
        };
        if !records::claim_check_run(&self.db, attempt_id).await? {
            return Ok(()); // a worker got there first
        }
        let report = self.check_report(&ctx, CheckStatus::Queued, report::queued(&ctx.attempt.sha));
        match self
            .github
            .create_check_run(ctx.repository.installation_id, &repo_name(&ctx)?, &report)
            .await
        {
            Ok(id) => Ok(records::set_check_run(&self.db, attempt_id, ctx.preview.id, id).await?),
            Err(e) => {
                // Release the claim so the worker creates it instead of waiting.
                release_check_run_claim(&self.db, attempt_id).await?;
                Err(e.into())
            }
        }
    }

    /// Sets the attempt's check run to `status` with `text`, creating it if needed.
    pub async fn check_run(
        &self,
        ctx: &AttemptContext,
        status: CheckStatus,
        text: CheckText,
    ) -> Result<i64, ReportError> {
        let repo = repo_name(ctx)?;
        let installation = ctx.repository.installation_id;
        let report = self.check_report(ctx, status, text);
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            match records::check_run_of(&self.db, ctx.attempt.id).await? {
                Some(id) if id > 0 => {
                    self.github
                        .update_check_run(installation, &repo, id, &report)
                        .await?;
                    return Ok(id);
                }
                Some(_) if tokio::time::Instant::now() < deadline => {
                    // Someone is creating it; their id will appear shortly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                claimed_by_other => {
                    if claimed_by_other.is_none()
                        && !records::claim_check_run(&self.db, ctx.attempt.id).await?
                    {
                        continue;
                    }
                    let id = self
                        .github
                        .create_check_run(installation, &repo, &report)
                        .await?;
                    records::set_check_run(&self.db, ctx.attempt.id, ctx.preview.id, id).await?;
                    return Ok(id);
                }
            }
        }
    }

    /// Replaces the text of an existing check run, leaving its status alone (to answer a button
    /// press that was refused).
    pub async fn explain(
        &self,
        repository: &previewd_entity::repository::Model,
        check_run_id: i64,
        title: &str,
        summary: &str,
    ) -> Result<(), ReportError> {
        let repo = RepoName::parse(&repository.full_name).ok_or_else(|| {
            ReportError::Database(DbErr::Custom(format!(
                "bad repository name {:?}",
                repository.full_name
            )))
        })?;
        self.github
            .update_check_run_output(
                repository.installation_id,
                &repo,
                check_run_id,
                title,
                summary,
            )
            .await?;
        Ok(())
    }

    /// Updates the sticky comment of the attempt's pull request, creating it the first time.
    pub async fn comment(
        &self,
        ctx: &AttemptContext,
        state: &CommentState,
    ) -> Result<(), ReportError> {
        let repo = repo_name(ctx)?;
        let installation = ctx.repository.installation_id;
        let history = self.history(ctx.preview.id).await?;
        let body = report::comment(
            state,
            &ctx.attempt.sha,
            Some(&self.details_url(ctx.preview.id)),
            &history,
            Utc::now(),
        );
        let number = u64::try_from(ctx.pull_request.number).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            let current = preview::Entity::find_by_id(ctx.preview.id)
                .one(&self.db)
                .await?
                .and_then(|p| p.comment_id);
            match current {
                Some(id) if id > 0 => {
                    match self
                        .github
                        .update_comment(installation, &repo, id, &body)
                        .await
                    {
                        Err(e) if e.is_not_found() => {
                            // Someone deleted it: forget it and post a new one.
                            set_comment(&self.db, ctx.preview.id, None).await?;
                            continue;
                        }
                        other => return Ok(other?),
                    }
                }
                Some(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                claimed_by_other => {
                    if claimed_by_other.is_none()
                        && !claim_comment(&self.db, ctx.preview.id).await?
                    {
                        continue;
                    }
                    match self
                        .github
                        .create_comment(installation, &repo, number, &body)
                        .await
                    {
                        Ok(id) => return Ok(set_comment(&self.db, ctx.preview.id, Some(id)).await?),
                        Err(e) => {
                            set_comment(&self.db, ctx.preview.id, None).await?;
                            return Err(e.into());
                        }
                    }
                }
            }
        }
    }

    /// True when the pull request already has a sticky comment.
    pub async fn has_comment(&self, preview_id: i64) -> Result<bool, ReportError> {
        Ok(preview::Entity::find_by_id(preview_id)
            .one(&self.db)
            .await?
            .and_then(|p| p.comment_id)
            .is_some_and(|id| id > 0))
    }

    /// Creates the GitHub deployment of the attempt's commit and marks it in progress.
    pub async fn start_deployment(&self, ctx: &AttemptContext) -> Result<i64, ReportError> {
        let repo = repo_name(ctx)?;
        let installation = ctx.repository.installation_id;
        let environment = format!("preview/pr-{}", ctx.pull_request.number);
        let id = self
            .github
            .create_deployment(
                installation,
                &repo,
                &ctx.attempt.sha,
                &environment,
                "Preview environment",
            )
            .await?;
        deploy_attempt::Entity::update_many()
            .col_expr(deploy_attempt::Column::GithubDeploymentId, Expr::value(id))
            .filter(deploy_attempt::Column::Id.eq(ctx.attempt.id))
            .exec(&self.db)
            .await?;
        preview::Entity::update_many()
            .col_expr(preview::Column::GithubDeploymentId, Expr::value(id))
            .filter(preview::Column::Id.eq(ctx.preview.id))
            .exec(&self.db)
            .await?;
        let details = self.details_url(ctx.preview.id);
        let status = DeploymentStatus {
            state: DeploymentState::InProgress,
            environment_url: None,
            log_url: Some(&details),
            description: "Deploying",
        };
        self.github
            .create_deployment_status(installation, &repo, id, &status)
            .await?;
        Ok(id)
    }

    /// Adds a status to a deployment.
    pub async fn deployment_status(
        &self,
        ctx: &AttemptContext,
        deployment: i64,
        state: DeploymentState,
        url: Option<&str>,
        description: &str,
    ) -> Result<(), ReportError> {
        let repo = repo_name(ctx)?;
        let details = self.details_url(ctx.preview.id);
        let status = DeploymentStatus {
            state,
            environment_url: url,
            log_url: Some(&details),
            description,
        };
        self.github
            .create_deployment_status(ctx.repository.installation_id, &repo, deployment, &status)
            .await?;
        Ok(())
    }

    /// The last attempts of a preview, newest first, for the comment.
    async fn history(&self, preview_id: i64) -> Result<Vec<HistoryLine>, DbErr> {
        let attempts = deploy_attempt::Entity::find()
            .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
            .filter(
                deploy_attempt::Column::Status
                    .is_not_in([AttemptStatus::Queued, AttemptStatus::Running]),
            )
            .order_by_desc(deploy_attempt::Column::Id)
            .limit(10)
            .all(&self.db)
            .await?;
        Ok(attempts
            .into_iter()
            .map(|a| HistoryLine {
                at: a.finished_at.unwrap_or(a.created_at),
                sha: a.sha,
                outcome: match a.status {
                    AttemptStatus::Succeeded => "deployed".to_owned(),
                    AttemptStatus::Failed => {
                        format!("failed ({})", a.error_kind.unwrap_or_default())
                    }
                    AttemptStatus::Superseded => "superseded".to_owned(),
                    AttemptStatus::Cancelled => "cancelled".to_owned(),
                    AttemptStatus::TimedOut => "timed out".to_owned(),
                    AttemptStatus::Queued | AttemptStatus::Running => "in progress".to_owned(),
                },
            })
            .collect())
    }
}

/// The buttons of a check run: on a finished deploy, Redeploy and Destroy.
fn actions_for(status: CheckStatus) -> Vec<CheckAction> {
    match status {
        CheckStatus::Completed(
            Conclusion::Success | Conclusion::Failure | Conclusion::TimedOut,
        ) => vec![
            CheckAction {
                label: "Redeploy",
                description: "Deploy this commit again",
                identifier: ACTION_REDEPLOY,
            },
            CheckAction {
                label: "Destroy",
                description: "Remove this preview",
                identifier: ACTION_DESTROY,
            },
            CheckAction {
                label: "Extend",
                description: "Keep it longer before it expires",
                identifier: ACTION_EXTEND,
            },
        ],
        _ => Vec::new(),
    }
}

/// Creates the queued check run in the background after a delivery is accepted (best effort:
/// the worker creates it if this fails).
pub fn spawn_queued_check_run(reporter: Reporter, attempt_id: i64) {
    tokio::spawn(async move {
        if let Err(e) = reporter.queued_check_run(attempt_id).await {
            tracing::warn!(attempt = attempt_id, error = %e, "could not show the queued check run; the worker will");
        }
    });
}

async fn release_check_run_claim(db: &DatabaseConnection, attempt_id: i64) -> Result<(), DbErr> {
    deploy_attempt::Entity::update_many()
        .col_expr(
            deploy_attempt::Column::CheckRunId,
            Expr::value(Option::<i64>::None),
        )
        .filter(deploy_attempt::Column::Id.eq(attempt_id))
        .filter(deploy_attempt::Column::CheckRunId.eq(0))
        .exec(db)
        .await
        .map(drop)
}

async fn claim_comment(db: &DatabaseConnection, preview_id: i64) -> Result<bool, DbErr> {
    let r = preview::Entity::update_many()
        .col_expr(preview::Column::CommentId, Expr::value(0_i64))
        .filter(preview::Column::Id.eq(preview_id))
        .filter(preview::Column::CommentId.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

async fn set_comment(
    db: &DatabaseConnection,
    preview_id: i64,
    id: Option<i64>,
) -> Result<(), DbErr> {
    let Some(row) = preview::Entity::find_by_id(preview_id).one(db).await? else {
        return Ok(());
    };
    let mut row = row.into_active_model();
    row.comment_id = Set(id);
    row.update(db).await.map(drop)
}
