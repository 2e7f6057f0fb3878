//! Reading and writing the previews model. Every function takes a connection or transaction, so
//! callers decide the transaction boundary (the webhook handler makes one per delivery).
//!
//! Rows are upserted from events: GitHub is the authority for installations, repositories and
//! pull requests, and previewd for previews and attempts.

use chrono::Utc;
use previewd_entity::{
    AttemptStatus, DeliveryOutcome, PreviewStatus, PullRequestState, deploy_attempt, installation,
    preview, pull_request, repository, webhook_delivery,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, sea_query::OnConflict,
};
use serde_json::json;

use crate::{
    cluster::naming::namespace_name,
    github::webhook::{PullRequest, Repo},
};

/// A new installation row.
fn installation_row(id: i64, account: &str, account_type: &str) -> installation::ActiveModel {
    let now = Utc::now();
    installation::ActiveModel {
        id: Set(id),
        account_login: Set(account.to_owned()),
        account_type: Set(account_type.to_owned()),
        suspended_at: Set(None),
        deleted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Inserts or refreshes an installation.
pub async fn upsert_installation(
    db: &impl ConnectionTrait,
    id: i64,
    account: &str,
    account_type: &str,
) -> Result<(), DbErr> {
    let refresh = [
        installation::Column::AccountLogin,
        installation::Column::AccountType,
        installation::Column::UpdatedAt,
    ];
    installation::Entity::insert(installation_row(id, account, account_type))
        .on_conflict(
            OnConflict::column(installation::Column::Id)
                .update_columns(refresh)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Makes sure an installation row exists (events other than `installation` name only its id).
pub async fn ensure_installation(
    db: &impl ConnectionTrait,
    id: i64,
    account_hint: &str,
) -> Result<(), DbErr> {
    installation::Entity::insert(installation_row(id, account_hint, ""))
        .on_conflict(
            OnConflict::column(installation::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Sets or clears an installation's suspended / deleted marks.
pub async fn mark_installation(
    db: &impl ConnectionTrait,
    id: i64,
    suspended: Option<bool>,
    deleted: bool,
) -> Result<(), DbErr> {
    let Some(row) = installation::Entity::find_by_id(id).one(db).await? else {
        return Ok(());
    };
    let now = Utc::now();
    let mut row = row.into_active_model();
    if let Some(suspended) = suspended {
        row.suspended_at = Set(suspended.then_some(now));
    }
    if deleted {
        row.deleted_at = Set(Some(now));
    }
    row.updated_at = Set(now);
    row.update(db).await.map(drop)
}

/// Inserts or refreshes a repository of an installation.
pub async fn upsert_repository(
    db: &impl ConnectionTrait,
    installation: i64,
    repo: &Repo,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let row = repository::ActiveModel {
        id: Set(repo.id),
        installation_id: Set(installation),
        full_name: Set(repo.name.as_str().to_owned()),
        default_branch: Set(repo.default_branch.clone()),
        private: Set(repo.private),
        removed_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    repository::Entity::insert(row)
        .on_conflict(
            OnConflict::column(repository::Column::Id)
                .update_columns([
                    repository::Column::InstallationId,
                    repository::Column::FullName,
                    repository::Column::DefaultBranch,
                    repository::Column::Private,
                    repository::Column::RemovedAt,
                    repository::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Marks repositories removed from an installation (their rows stay).
pub async fn mark_repositories_removed(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    repository::Entity::update_many()
        .col_expr(
            repository::Column::RemovedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(repository::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .map(drop)
}

/// Ids of the repositories of an installation.
pub async fn repository_ids_of(
    db: &impl ConnectionTrait,
    installation: i64,
) -> Result<Vec<i64>, DbErr> {
    Ok(repository::Entity::find()
        .filter(repository::Column::InstallationId.eq(installation))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

/// Previews of `repositories` that are not deleted (nor being deleted).
pub async fn live_previews_of(
    db: &impl ConnectionTrait,
    repositories: &[i64],
) -> Result<Vec<preview::Model>, DbErr> {
    if repositories.is_empty() {
        return Ok(Vec::new());
    }
    let prs: Vec<i64> = pull_request::Entity::find()
        .filter(pull_request::Column::RepositoryId.is_in(repositories.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    if prs.is_empty() {
        return Ok(Vec::new());
    }
    preview::Entity::find()
        .filter(preview::Column::PullRequestId.is_in(prs))
        .filter(
            preview::Column::Status.is_not_in([PreviewStatus::Deleted, PreviewStatus::Deleting]),
        )
        .all(db)
        .await
}

/// Inserts or refreshes a pull request; returns the row.
pub async fn upsert_pull_request(
    db: &impl ConnectionTrait,
    repo_id: i64,
    pr: &PullRequest,
    state: PullRequestState,
) -> Result<pull_request::Model, DbErr> {
    let now = Utc::now();
    let number = i32::try_from(pr.number)
        .map_err(|_| DbErr::Custom(format!("pull request number {} out of range", pr.number)))?;
    let existing = pull_request::Entity::find()
        .filter(pull_request::Column::RepositoryId.eq(repo_id))
        .filter(pull_request::Column::Number.eq(number))
        .one(db)
        .await?;
    let labels = json!(pr.labels);
    match existing {
        Some(row) => {
            let mut row = row.into_active_model();
            row.title = Set(pr.title.clone());
            row.author_login = Set(pr.author.clone());
            row.head_ref = Set(pr.head_ref.clone());
            row.head_sha = Set(pr.head_sha.clone());
            row.base_ref = Set(pr.base_ref.clone());
            row.from_fork = Set(pr.from_fork);
            row.draft = Set(pr.draft);
            row.state = Set(state);
            row.labels = Set(labels);
            row.updated_at = Set(now);
            row.update(db).await
        }
        None => {
            pull_request::ActiveModel {
                repository_id: Set(repo_id),
                number: Set(number),
                title: Set(pr.title.clone()),
                author_login: Set(pr.author.clone()),
                head_ref: Set(pr.head_ref.clone()),
                head_sha: Set(pr.head_sha.clone()),
                base_ref: Set(pr.base_ref.clone()),
                from_fork: Set(pr.from_fork),
                draft: Set(pr.draft),
                state: Set(state),
                labels: Set(labels),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await
        }
    }
}

/// The preview of a pull request, if it has one.
pub async fn preview_of(
    db: &impl ConnectionTrait,
    pull_request_id: i64,
) -> Result<Option<preview::Model>, DbErr> {
    preview::Entity::find()
        .filter(preview::Column::PullRequestId.eq(pull_request_id))
        .one(db)
        .await
}

/// The pull request's preview, created (status pending) when missing and revived when it was
/// deleted; its head sha follows the pull request.
pub async fn ensure_preview(
    db: &impl ConnectionTrait,
    pr: &pull_request::Model,
    repo_full_name: &str,
) -> Result<preview::Model, DbErr> {
    let now = Utc::now();
    if let Some(existing) = preview_of(db, pr.id).await? {
        let revive = existing.status == PreviewStatus::Deleted;
        if existing.head_sha == pr.head_sha && !revive {
            return Ok(existing);
        }
        let mut row = existing.into_active_model();
        row.head_sha = Set(pr.head_sha.clone());
        if revive {
            row.status = Set(PreviewStatus::Pending);
            row.deleted_at = Set(None);
            row.cleanup_failed = Set(false);
            row.check_run_id = Set(None);
            row.github_deployment_id = Set(None);
        }
        row.updated_at = Set(now);
        return row.update(db).await;
    }
    let number = u64::try_from(pr.number).unwrap_or_default();
    preview::ActiveModel {
        pull_request_id: Set(pr.id),
        status: Set(PreviewStatus::Pending),
        namespace: Set(namespace_name(repo_full_name, number)),
        url: Set(None),
        head_sha: Set(pr.head_sha.clone()),
        approved_sha: Set(None),
        check_run_id: Set(None),
        github_deployment_id: Set(None),
        comment_id: Set(None),
        expires_at: Set(None),
        last_error: Set(None),
        cleanup_failed: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// True when some attempt to deploy `sha` of the preview exists already.
pub async fn has_attempt(
    db: &impl ConnectionTrait,
    preview_id: i64,
    sha: &str,
) -> Result<bool, DbErr> {
    Ok(deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
        .filter(deploy_attempt::Column::Sha.eq(sha))
        .limit(1)
        .one(db)
        .await?
        .is_some())
}

/// Records a new queued attempt to deploy `sha` (attempt number one more than the last).
pub async fn new_attempt(
    db: &impl ConnectionTrait,
    preview_id: i64,
    sha: &str,
    trigger: &str,
) -> Result<deploy_attempt::Model, DbErr> {
    let last = deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
        .filter(deploy_attempt::Column::Sha.eq(sha))
        .order_by_desc(deploy_attempt::Column::Attempt)
        .one(db)
        .await?;
    deploy_attempt::ActiveModel {
        preview_id: Set(preview_id),
        sha: Set(sha.to_owned()),
        attempt: Set(last.map_or(1, |a| a.attempt + 1)),
        status: Set(AttemptStatus::Queued),
        trigger: Set(trigger.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// Sets a preview's status (and touches `updated_at`).
pub async fn set_preview_status(
    db: &impl ConnectionTrait,
    preview: preview::Model,
    status: PreviewStatus,
) -> Result<preview::Model, DbErr> {
    let mut row = preview.into_active_model();
    row.status = Set(status);
    row.updated_at = Set(Utc::now());
    row.update(db).await
}

/// What [`record_delivery`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryRecord {
    /// First time this GUID is seen (or it failed before): process it.
    New,
    /// Processed before: answer without new work.
    Duplicate,
}

/// Records a delivery GUID. A GUID seen before with outcome `failed` is processed again (GitHub
/// redelivers failed deliveries); any other earlier outcome makes this a duplicate.
pub async fn record_delivery(
    db: &impl ConnectionTrait,
    delivery: webhook_delivery::ActiveModel,
) -> Result<DeliveryRecord, DbErr> {
    let guid = match &delivery.guid {
        Set(g) => g.clone(),
        _ => return Err(DbErr::Custom("delivery without guid".into())),
    };
    let inserted = webhook_delivery::Entity::insert(delivery.clone())
        .on_conflict(
            OnConflict::column(webhook_delivery::Column::Guid)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    if inserted > 0 {
        return Ok(DeliveryRecord::New);
    }
    let existing = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Guid.eq(guid))
        .one(db)
        .await?;
    match existing {
        Some(row) if row.outcome == DeliveryOutcome::Failed => {
            let mut row = row.into_active_model();
            row.outcome = delivery.outcome;
            row.detail = delivery.detail;
            row.received_at = delivery.received_at;
            row.update(db).await?;
            Ok(DeliveryRecord::New)
        }
        _ => Ok(DeliveryRecord::Duplicate),
    }
}

/// Sets the outcome of a recorded delivery.
pub async fn set_delivery_outcome(
    db: &impl ConnectionTrait,
    guid: &str,
    outcome: DeliveryOutcome,
    detail: &str,
) -> Result<(), DbErr> {
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Outcome,
            sea_orm::sea_query::Expr::value(outcome),
        )
        .col_expr(
            webhook_delivery::Column::Detail,
            sea_orm::sea_query::Expr::value(detail.to_owned()),
        )
        .filter(webhook_delivery::Column::Guid.eq(guid))
        .exec(db)
        .await
        .map(drop)
}

/// Everything a job needs to know about one attempt.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    pub attempt: deploy_attempt::Model,
    pub preview: preview::Model,
    pub pull_request: pull_request::Model,
    pub repository: repository::Model,
}

/// Loads an attempt with its preview, pull request and repository.
pub async fn attempt_context(
    db: &impl ConnectionTrait,
    attempt_id: i64,
) -> Result<Option<AttemptContext>, DbErr> {
    let Some(attempt) = deploy_attempt::Entity::find_by_id(attempt_id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(ctx) = preview_context(db, attempt.preview_id).await? else {
        return Ok(None);
    };
    Ok(Some(AttemptContext {
        attempt,
        preview: ctx.0,
        pull_request: ctx.1,
        repository: ctx.2,
    }))
}

/// The context of a preview's latest attempt (for reporting on the preview as a whole).
pub async fn last_attempt_context(
    db: &impl ConnectionTrait,
    preview_id: i64,
) -> Result<Option<AttemptContext>, DbErr> {
    let last = deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
        .order_by_desc(deploy_attempt::Column::Id)
        .one(db)
        .await?;
    match last {
        Some(a) => attempt_context(db, a.id).await,
        None => Ok(None),
    }
}

/// Loads a preview with its pull request and repository.
pub async fn preview_context(
    db: &impl ConnectionTrait,
    preview_id: i64,
) -> Result<Option<(preview::Model, pull_request::Model, repository::Model)>, DbErr> {
    let Some(preview) = preview::Entity::find_by_id(preview_id).one(db).await? else {
        return Ok(None);
    };
    let Some(pr) = pull_request::Entity::find_by_id(preview.pull_request_id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(repo) = repository::Entity::find_by_id(pr.repository_id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((preview, pr, repo)))
}

/// Claims the right to create the check run of an attempt. The app (queued) and the worker
/// (in progress) race for it; exactly one wins, the other updates the winner's check run.
/// `0` in `check_run_id` marks "being created".
pub async fn claim_check_run(db: &impl ConnectionTrait, attempt_id: i64) -> Result<bool, DbErr> {
    let result = deploy_attempt::Entity::update_many()
        .col_expr(
            deploy_attempt::Column::CheckRunId,
            sea_orm::sea_query::Expr::value(0_i64),
        )
        .filter(deploy_attempt::Column::Id.eq(attempt_id))
        .filter(deploy_attempt::Column::CheckRunId.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Stores the id of an attempt's check run (after a successful claim), and on its preview.
pub async fn set_check_run(
    db: &impl ConnectionTrait,
    attempt_id: i64,
    preview_id: i64,
    check_run_id: i64,
) -> Result<(), DbErr> {
    deploy_attempt::Entity::update_many()
        .col_expr(
            deploy_attempt::Column::CheckRunId,
            sea_orm::sea_query::Expr::value(check_run_id),
        )
        .filter(deploy_attempt::Column::Id.eq(attempt_id))
        .exec(db)
        .await?;
    preview::Entity::update_many()
        .col_expr(
            preview::Column::CheckRunId,
            sea_orm::sea_query::Expr::value(check_run_id),
        )
        .filter(preview::Column::Id.eq(preview_id))
        .exec(db)
        .await
        .map(drop)
}

/// Reads an attempt's check run id: `None` unclaimed, `Some(0)` being created.
pub async fn check_run_of(
    db: &impl ConnectionTrait,
    attempt_id: i64,
) -> Result<Option<i64>, DbErr> {
    Ok(deploy_attempt::Entity::find_by_id(attempt_id)
        .one(db)
        .await?
        .and_then(|a| a.check_run_id))
}
