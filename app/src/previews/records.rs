//! Reading and writing the previews model: the only code that speaks sea-orm for installations,
//! repositories, pull requests, deliveries, previews and attempts. Every function takes a
//! connection or transaction, so callers decide the transaction boundary (the webhook handler
//! makes one per delivery). There are no rules here — which change is allowed when is
//! [`super::lifecycle`]'s business; this module offers it guarded writes ([`update_preview`],
//! [`update_attempt`]) that change a row only if it is still in the state the caller saw.
//!
//! Rows are upserted from events: GitHub is the authority for installations, repositories and
//! pull requests, and previewd for previews and attempts.

use chrono::{DateTime, Utc};
use previewd_entity::{
    AttemptStatus, DeliveryOutcome, PreviewStatus, PullRequestState, deploy_attempt,
    install_setting, installation, preview, pull_request, repository, webhook_delivery,
};
use sea_orm::{
    ActiveEnum, ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait as _, OnConflict},
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

/// Inserts or refreshes a repository of an installation. GitHub names are unique at any moment:
/// another repository previewd knows under this name (deleted, and this one created in its
/// place) is marked removed; its ids are returned, so its previews can be removed too.
///
/// One read finds both the row and any namesake; the row is written only when the event says
/// something it does not hold, so the deliveries of one busy repository do not all write (and,
/// on PostgreSQL, lock) its row.
pub async fn upsert_repository(
    db: &impl ConnectionTrait,
    installation: i64,
    repo: &Repo,
) -> Result<Vec<i64>, DbErr> {
    let found = repository::Entity::find()
        .filter(
            repository::Column::Id
                .eq(repo.id)
                .or(repository::Column::FullName
                    .eq(repo.name.as_str())
                    .and(repository::Column::RemovedAt.is_null())),
        )
        .all(db)
        .await?;
    let replaced: Vec<i64> = found
        .iter()
        .filter(|r| r.id != repo.id)
        .map(|r| r.id)
        .collect();
    let current = found.iter().find(|r| r.id == repo.id).is_some_and(|r| {
        r.installation_id == installation
            && r.full_name == repo.name.as_str()
            && r.default_branch == repo.default_branch
            && r.private == repo.private
            && r.removed_at.is_none()
    });
    mark_repositories_removed(db, &replaced).await?;
    if current {
        return Ok(replaced);
    }
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
        .await?;
    Ok(replaced)
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
        .col_expr(repository::Column::RemovedAt, Expr::value(Utc::now()))
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

/// Inserts or refreshes a pull request; returns the row. One statement (an upsert on
/// (repository, number) returning the row), so two deliveries for the same pull request arriving
/// together both succeed instead of one failing on the unique constraint.
pub async fn upsert_pull_request(
    db: &impl ConnectionTrait,
    repo_id: i64,
    pr: &PullRequest,
    state: PullRequestState,
) -> Result<pull_request::Model, DbErr> {
    pull_request::Entity::insert(pull_request_row(repo_id, pr, state, Utc::now())?)
        .on_conflict(pull_request_refresh())
        .exec_with_returning(db)
        .await
}

/// [`upsert_pull_request`] for several pull requests in one statement, which must all differ in
/// (repository, number); returns the rows by (repository, number) (the order `RETURNING` gives
/// is not the order of the values on SQLite).
pub async fn upsert_pull_requests(
    db: &impl ConnectionTrait,
    prs: &[(i64, &PullRequest, PullRequestState)],
) -> Result<std::collections::HashMap<(i64, i64), pull_request::Model>, DbErr> {
    let now = Utc::now();
    let rows = prs
        .iter()
        .map(|(repo_id, pr, state)| pull_request_row(*repo_id, pr, *state, now))
        .collect::<Result<Vec<_>, _>>()?;
    let written = pull_request::Entity::insert_many(rows)
        .on_conflict(pull_request_refresh())
        .exec_with_returning(db)
        .await?;
    if written.len() != prs.len() {
        return Err(DbErr::Custom(format!(
            "{} of {} pull requests were written",
            written.len(),
            prs.len()
        )));
    }
    Ok(written
        .into_iter()
        .map(|row| ((row.repository_id, row.number), row))
        .collect())
}

/// The row a pull request event writes; `now` is both timestamps of a new row (see
/// [`just_created`]).
fn pull_request_row(
    repo_id: i64,
    pr: &PullRequest,
    state: PullRequestState,
    now: DateTime<Utc>,
) -> Result<pull_request::ActiveModel, DbErr> {
    Ok(pull_request::ActiveModel {
        repository_id: Set(repo_id),
        number: Set(pr_number(pr.number)?),
        title: Set(pr.title.clone()),
        author_login: Set(pr.author.clone()),
        head_ref: Set(pr.head_ref.clone()),
        head_sha: Set(pr.head_sha.clone()),
        base_ref: Set(pr.base_ref.clone()),
        from_fork: Set(pr.from_fork),
        draft: Set(pr.draft),
        state: Set(state),
        labels: Set(json!(pr.labels)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
}

/// What an event refreshes of a pull request previewd has seen: everything but its creation.
fn pull_request_refresh() -> OnConflict {
    OnConflict::columns([
        pull_request::Column::RepositoryId,
        pull_request::Column::Number,
    ])
    .update_columns([
        pull_request::Column::Title,
        pull_request::Column::AuthorLogin,
        pull_request::Column::HeadRef,
        pull_request::Column::HeadSha,
        pull_request::Column::BaseRef,
        pull_request::Column::FromFork,
        pull_request::Column::Draft,
        pull_request::Column::State,
        pull_request::Column::Labels,
        pull_request::Column::UpdatedAt,
    ])
    .to_owned()
}

/// True for the row [`upsert_pull_request`] returns when it inserted it: an insert sets both
/// timestamps to the same instant, a refresh only `updated_at`.
pub fn just_created(pr: &pull_request::Model) -> bool {
    pr.created_at == pr.updated_at
}

/// A pull request number as stored.
fn pr_number(number: u64) -> Result<i64, DbErr> {
    i64::try_from(number)
        .map_err(|_| DbErr::Custom(format!("pull request number {number} out of range")))
}

/// Pull request `number` of repository `repo_id`, if previewd has seen it.
pub async fn find_pull_request(
    db: &impl ConnectionTrait,
    repo_id: i64,
    number: u64,
) -> Result<Option<pull_request::Model>, DbErr> {
    let Ok(number) = i64::try_from(number) else {
        return Ok(None);
    };
    pull_request::Entity::find()
        .filter(pull_request::Column::RepositoryId.eq(repo_id))
        .filter(pull_request::Column::Number.eq(number))
        .one(db)
        .await
}

/// The pull requests of a repository previewd believes open.
pub async fn open_pull_requests_of(
    db: &impl ConnectionTrait,
    repo_id: i64,
) -> Result<Vec<pull_request::Model>, DbErr> {
    pull_request::Entity::find()
        .filter(pull_request::Column::RepositoryId.eq(repo_id))
        .filter(pull_request::Column::State.eq(PullRequestState::Open))
        .all(db)
        .await
}

/// Installations that are neither deleted nor suspended.
pub async fn active_installations(
    db: &impl ConnectionTrait,
) -> Result<Vec<installation::Model>, DbErr> {
    installation::Entity::find()
        .filter(installation::Column::DeletedAt.is_null())
        .filter(installation::Column::SuspendedAt.is_null())
        .all(db)
        .await
}

/// The repositories an installation still has.
pub async fn active_repositories_of(
    db: &impl ConnectionTrait,
    installation: i64,
) -> Result<Vec<repository::Model>, DbErr> {
    repository::Entity::find()
        .filter(repository::Column::InstallationId.eq(installation))
        .filter(repository::Column::RemovedAt.is_null())
        .all(db)
        .await
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

/// Like [`preview_of`], holding the row until the transaction ends (PostgreSQL `FOR UPDATE`;
/// SQLite transactions previewd opens hold the whole database already). Decisions about one
/// preview therefore follow each other instead of racing.
pub async fn preview_of_for_update(
    db: &impl ConnectionTrait,
    pull_request_id: i64,
) -> Result<Option<preview::Model>, DbErr> {
    let query = preview::Entity::find().filter(preview::Column::PullRequestId.eq(pull_request_id));
    if db.get_database_backend() == DatabaseBackend::Postgres {
        query.lock_exclusive().one(db).await
    } else {
        query.one(db).await
    }
}

/// [`preview_of_for_update`] for several pull requests in one statement: their previews by
/// pull request id (rows locked in id order on PostgreSQL, so two transactions locking
/// overlapping sets wait for each other instead of deadlocking).
pub async fn previews_of_for_update(
    db: &impl ConnectionTrait,
    pull_request_ids: &[i64],
) -> Result<std::collections::HashMap<i64, preview::Model>, DbErr> {
    if pull_request_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let query = preview::Entity::find()
        .filter(preview::Column::PullRequestId.is_in(pull_request_ids.iter().copied()))
        .order_by_asc(preview::Column::Id);
    let rows = if db.get_database_backend() == DatabaseBackend::Postgres {
        query.lock_exclusive().all(db).await?
    } else {
        query.all(db).await?
    };
    Ok(rows.into_iter().map(|p| (p.pull_request_id, p)).collect())
}

/// A preview by id.
pub async fn preview_by_id(
    db: &impl ConnectionTrait,
    preview_id: i64,
) -> Result<Option<preview::Model>, DbErr> {
    preview::Entity::find_by_id(preview_id).one(db).await
}

/// Every preview not yet deleted (being deleted included).
pub async fn undeleted_previews(db: &impl ConnectionTrait) -> Result<Vec<preview::Model>, DbErr> {
    preview::Entity::find()
        .filter(preview::Column::Status.ne(PreviewStatus::Deleted))
        .all(db)
        .await
}

/// Previews in one of `statuses`.
pub async fn previews_in(
    db: &impl ConnectionTrait,
    statuses: &[PreviewStatus],
) -> Result<Vec<preview::Model>, DbErr> {
    preview::Entity::find()
        .filter(preview::Column::Status.is_in(statuses.iter().copied()))
        .all(db)
        .await
}

/// Running or failed previews whose expiry is at or before `by`.
pub async fn previews_expiring_by(
    db: &impl ConnectionTrait,
    by: DateTime<Utc>,
) -> Result<Vec<preview::Model>, DbErr> {
    preview::Entity::find()
        .filter(preview::Column::Status.is_in([PreviewStatus::Running, PreviewStatus::Failed]))
        .filter(preview::Column::ExpiresAt.lte(by))
        .all(db)
        .await
}

/// A new preview row for `pr` (status pending), in a namespace no other preview has: the
/// readable name, or — when a preview of another pull request holds it (a repository deleted
/// and created again under the same name) — a name made distinct by the repository's id.
/// True with it when this call created it (false: a concurrent delivery did, first).
pub async fn insert_preview(
    db: &impl ConnectionTrait,
    pr: &pull_request::Model,
    repo_full_name: &str,
) -> Result<(preview::Model, bool), DbErr> {
    let mut namespace = readable_namespace(pr, repo_full_name);
    if namespace_taken(db, &namespace).await? {
        namespace = distinct_namespace(pr, repo_full_name);
    }
    // Two deliveries creating the same preview at once: the second finds the first's row.
    let inserted = preview::Entity::insert(new_preview_row(pr, namespace, Utc::now()))
        .on_conflict(
            OnConflict::column(preview::Column::PullRequestId)
                .do_nothing()
                .to_owned(),
        )
        .exec_with_returning(db)
        .await;
    match inserted {
        Ok(row) => Ok((row, true)),
        // The conflict left no row to return.
        Err(DbErr::RecordNotInserted | DbErr::RecordNotFound(_)) => {
            let row = preview_of(db, pr.id).await?.ok_or_else(|| {
                DbErr::RecordNotFound(format!("preview of pull request {}", pr.id))
            })?;
            Ok((row, false))
        }
        Err(e) => Err(e),
    }
}

/// [`insert_preview`] for pull requests this transaction has just inserted (so none has a
/// preview yet), in four statements for all of them: a read of the namespaces taken, an insert
/// of the previews, one of each one's first attempt (see [`insert_attempt`]: `(trigger, claim)`
/// per pull request), and an update making it current. Returns `(preview, attempt)` in the
/// order of `prs`. Namespaces are chosen as [`insert_preview`] one after the other would; one
/// taken even so fails the insert (a unique violation, for the caller's transaction to roll
/// back).
pub async fn insert_first_deploys(
    db: &impl ConnectionTrait,
    prs: &[(&pull_request::Model, &str, &str, Option<i64>)],
) -> Result<Vec<(preview::Model, deploy_attempt::Model)>, DbErr> {
    if prs.is_empty() {
        return Ok(Vec::new());
    }
    let readable: Vec<String> = prs
        .iter()
        .map(|(pr, repo, ..)| readable_namespace(pr, repo))
        .collect();
    let taken: std::collections::HashSet<String> = preview::Entity::find()
        .select_only()
        .column(preview::Column::Namespace)
        .filter(preview::Column::Namespace.is_in(readable.iter().cloned()))
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let now = Utc::now();
    // As one by one: a name taken before, or by an earlier one of these, is made distinct.
    let mut used = std::collections::HashSet::with_capacity(prs.len());
    let rows = prs.iter().zip(readable).map(|((pr, repo, ..), namespace)| {
        let namespace = if taken.contains(&namespace) || !used.insert(namespace.clone()) {
            distinct_namespace(pr, repo)
        } else {
            namespace
        };
        new_preview_row(pr, namespace, now)
    });
    let previews = preview::Entity::insert_many(rows)
        .exec_with_returning(db)
        .await?;
    let by_pr: std::collections::HashMap<i64, preview::Model> = previews
        .into_iter()
        .map(|p| (p.pull_request_id, p))
        .collect();
    let previews =
        prs.iter()
            .map(|(pr, ..)| {
                by_pr.get(&pr.id).cloned().ok_or_else(|| {
                    DbErr::RecordNotFound(format!("preview of pull request {}", pr.id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
    let attempts = previews
        .iter()
        .zip(prs)
        .map(|(preview, (pr, _, trigger, claim))| {
            attempt_row(preview.id, &pr.head_sha, 1, trigger, *claim, now)
        });
    let attempts: std::collections::HashMap<i64, deploy_attempt::Model> =
        deploy_attempt::Entity::insert_many(attempts)
            .exec_with_returning(db)
            .await?
            .into_iter()
            .map(|a| (a.preview_id, a))
            .collect();
    // Each preview's one attempt is its current one.
    let only_attempt = sea_orm::sea_query::Query::select()
        .column((deploy_attempt::Entity, deploy_attempt::Column::Id))
        .from(deploy_attempt::Entity)
        .and_where(
            Expr::col((deploy_attempt::Entity, deploy_attempt::Column::PreviewId))
                .equals((preview::Entity, preview::Column::Id)),
        )
        .to_owned();
    let ids: Vec<i64> = previews.iter().map(|p| p.id).collect();
    let made_current = preview::Entity::update_many()
        .col_expr(
            preview::Column::CurrentAttemptId,
            Expr::SubQuery(None, Box::new(only_attempt.into())),
        )
        .filter(preview::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    if made_current.rows_affected != previews.len() as u64 {
        return Err(DbErr::Custom(format!(
            "{} of {} new previews were given their attempt",
            made_current.rows_affected,
            previews.len()
        )));
    }
    previews
        .into_iter()
        .map(|mut preview| {
            let attempt = attempts.get(&preview.id).cloned().ok_or_else(|| {
                DbErr::RecordNotFound(format!("first attempt of preview {}", preview.id))
            })?;
            preview.current_attempt_id = Some(attempt.id);
            Ok((preview, attempt))
        })
        .collect()
}

fn readable_namespace(pr: &pull_request::Model, repo_full_name: &str) -> String {
    namespace_name(repo_full_name, u64::try_from(pr.number).unwrap_or_default())
}

fn distinct_namespace(pr: &pull_request::Model, repo_full_name: &str) -> String {
    namespace_name(
        &format!("{repo_full_name}#{}", pr.repository_id),
        u64::try_from(pr.number).unwrap_or_default(),
    )
}

/// A new preview of `pr`: pending, in `namespace`, with no attempt yet.
fn new_preview_row(
    pr: &pull_request::Model,
    namespace: String,
    now: DateTime<Utc>,
) -> preview::ActiveModel {
    preview::ActiveModel {
        pull_request_id: Set(pr.id),
        status: Set(PreviewStatus::Pending),
        namespace: Set(namespace),
        url: Set(None),
        head_sha: Set(pr.head_sha.clone()),
        approved_sha: Set(None),
        github_deployment_id: Set(None),
        comment_id: Set(None),
        expires_at: Set(None),
        expiry_warned_at: Set(None),
        last_error: Set(None),
        cleanup_failed: Set(false),
        current_attempt_id: Set(None),
        generation: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
}

async fn namespace_taken(db: &impl ConnectionTrait, namespace: &str) -> Result<bool, DbErr> {
    Ok(preview::Entity::find()
        .filter(preview::Column::Namespace.eq(namespace))
        .one(db)
        .await?
        .is_some())
}

/// Which preview rows a [`update_preview`] may change: the id, and optionally the attempt it
/// must show, its generation and its status.
#[derive(Debug, Clone, Default)]
pub struct PreviewGuard {
    pub id: i64,
    /// Only while the preview shows this attempt.
    pub current_attempt: Option<i64>,
    /// Only while the preview is at this generation.
    pub generation: Option<i64>,
    /// Only in one of these statuses.
    pub status_in: Option<Vec<PreviewStatus>>,
    /// Only in none of these statuses.
    pub status_not_in: Option<Vec<PreviewStatus>>,
}

impl PreviewGuard {
    pub fn id(id: i64) -> Self {
        Self {
            id,
            ..Self::default()
        }
    }
}

/// The columns a [`update_preview`] sets (`None`: left alone).
#[derive(Debug, Clone, Default)]
pub struct PreviewChange {
    pub status: Option<PreviewStatus>,
    pub head_sha: Option<String>,
    pub current_attempt: Option<Option<i64>>,
    /// Adds one to the generation.
    pub next_generation: bool,
    pub url: Option<Option<String>>,
    pub last_error: Option<Option<String>>,
    pub approved_sha: Option<Option<String>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub expiry_warned_at: Option<Option<DateTime<Utc>>>,
    pub deleted_at: Option<Option<DateTime<Utc>>>,
    pub cleanup_failed: Option<bool>,
    /// Forget the deployment of an earlier life (a revived preview gets a new one; its check
    /// runs are its attempts').
    pub forget_github_objects: bool,
}

/// Changes one preview if it still matches `guard`, in one statement; true when it did. This is
/// how the lifecycle makes a late or stale writer harmless: its guard no longer matches.
pub async fn update_preview(
    db: &impl ConnectionTrait,
    guard: &PreviewGuard,
    change: PreviewChange,
) -> Result<bool, DbErr> {
    let mut update = preview::Entity::update_many()
        .col_expr(preview::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(preview::Column::Id.eq(guard.id));
    if let Some(attempt) = guard.current_attempt {
        update = update.filter(preview::Column::CurrentAttemptId.eq(attempt));
    }
    if let Some(generation) = guard.generation {
        update = update.filter(preview::Column::Generation.eq(generation));
    }
    if let Some(statuses) = &guard.status_in {
        update = update.filter(preview::Column::Status.is_in(statuses.iter().copied()));
    }
    if let Some(statuses) = &guard.status_not_in {
        update = update.filter(preview::Column::Status.is_not_in(statuses.iter().copied()));
    }
    if let Some(status) = change.status {
        update = update.col_expr(preview::Column::Status, Expr::value(status));
    }
    if let Some(sha) = change.head_sha {
        update = update.col_expr(preview::Column::HeadSha, Expr::value(sha));
    }
    if let Some(attempt) = change.current_attempt {
        update = update.col_expr(preview::Column::CurrentAttemptId, Expr::value(attempt));
    }
    if change.next_generation {
        update = update.col_expr(
            preview::Column::Generation,
            Expr::col(preview::Column::Generation).add(1),
        );
    }
    if let Some(url) = change.url {
        update = update.col_expr(preview::Column::Url, Expr::value(url));
    }
    if let Some(error) = change.last_error {
        update = update.col_expr(preview::Column::LastError, Expr::value(error));
    }
    if let Some(sha) = change.approved_sha {
        update = update.col_expr(preview::Column::ApprovedSha, Expr::value(sha));
    }
    if let Some(at) = change.expires_at {
        update = update.col_expr(preview::Column::ExpiresAt, Expr::value(at));
    }
    if let Some(at) = change.expiry_warned_at {
        update = update.col_expr(preview::Column::ExpiryWarnedAt, Expr::value(at));
    }
    if let Some(at) = change.deleted_at {
        update = update.col_expr(preview::Column::DeletedAt, Expr::value(at));
    }
    if let Some(flag) = change.cleanup_failed {
        update = update.col_expr(preview::Column::CleanupFailed, Expr::value(flag));
    }
    if change.forget_github_objects {
        update = update.col_expr(
            preview::Column::GithubDeploymentId,
            Expr::value(Option::<i64>::None),
        );
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// An attempt by id.
pub async fn attempt_by_id(
    db: &impl ConnectionTrait,
    attempt_id: i64,
) -> Result<Option<deploy_attempt::Model>, DbErr> {
    deploy_attempt::Entity::find_by_id(attempt_id).one(db).await
}

/// Attempts by id, in one statement.
pub async fn attempts_by_ids(
    db: &impl ConnectionTrait,
    attempt_ids: &[i64],
) -> Result<std::collections::HashMap<i64, deploy_attempt::Model>, DbErr> {
    if attempt_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    Ok(deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::Id.is_in(attempt_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect())
}

/// Attempts in one of `statuses` (across previews), oldest first.
pub async fn attempts_in(
    db: &impl ConnectionTrait,
    statuses: &[AttemptStatus],
) -> Result<Vec<deploy_attempt::Model>, DbErr> {
    deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::Status.is_in(statuses.iter().copied()))
        .order_by_asc(deploy_attempt::Column::Id)
        .all(db)
        .await
}

/// Records a new queued attempt to deploy `sha` (attempt number one more than the last).
/// `check_run_claim` (from [`check_run_claim`]) claims its check run in the same statement, for
/// a caller that creates the "queued" check run once the transaction commits.
pub async fn new_attempt(
    db: &impl ConnectionTrait,
    preview_id: i64,
    sha: &str,
    trigger: &str,
    check_run_claim: Option<i64>,
) -> Result<deploy_attempt::Model, DbErr> {
    let last = deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
        .filter(deploy_attempt::Column::Sha.eq(sha))
        .order_by_desc(deploy_attempt::Column::Attempt)
        .one(db)
        .await?;
    let number = last.map_or(1, |a| a.attempt + 1);
    insert_attempt(db, preview_id, sha, number, trigger, check_run_claim).await
}

/// Records attempt `number` to deploy `sha` as [`new_attempt`] does, for a caller that knows the
/// number (a preview this transaction has just created: its first, with nothing to read).
pub async fn insert_attempt(
    db: &impl ConnectionTrait,
    preview_id: i64,
    sha: &str,
    number: i32,
    trigger: &str,
    check_run_claim: Option<i64>,
) -> Result<deploy_attempt::Model, DbErr> {
    attempt_row(
        preview_id,
        sha,
        number,
        trigger,
        check_run_claim,
        Utc::now(),
    )
    .insert(db)
    .await
}

/// A queued attempt, `number` of its preview's.
fn attempt_row(
    preview_id: i64,
    sha: &str,
    number: i32,
    trigger: &str,
    check_run_claim: Option<i64>,
    now: DateTime<Utc>,
) -> deploy_attempt::ActiveModel {
    deploy_attempt::ActiveModel {
        preview_id: Set(preview_id),
        sha: Set(sha.to_owned()),
        attempt: Set(number),
        status: Set(AttemptStatus::Queued),
        trigger: Set(trigger.chars().take(32).collect()),
        check_run_id: Set(check_run_claim),
        created_at: Set(now),
        ..Default::default()
    }
}

/// The columns an [`update_attempt`] sets (`None`: left alone).
#[derive(Debug, Clone, Default)]
pub struct AttemptChange {
    pub status: Option<AttemptStatus>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub image: Option<String>,
    pub error_kind: Option<Option<String>>,
    pub error: Option<Option<String>>,
    pub log_tail: Option<Option<String>>,
}

/// Changes one attempt if its status is one of `status_in`; true when it did.
pub async fn update_attempt(
    db: &impl ConnectionTrait,
    attempt_id: i64,
    status_in: &[AttemptStatus],
    change: AttemptChange,
) -> Result<bool, DbErr> {
    let mut update = deploy_attempt::Entity::update_many()
        .filter(deploy_attempt::Column::Id.eq(attempt_id))
        .filter(deploy_attempt::Column::Status.is_in(status_in.iter().copied()));
    if let Some(status) = change.status {
        update = update.col_expr(deploy_attempt::Column::Status, Expr::value(status));
    }
    if let Some(at) = change.started_at {
        update = update.col_expr(deploy_attempt::Column::StartedAt, Expr::value(at));
    }
    if let Some(at) = change.finished_at {
        update = update.col_expr(deploy_attempt::Column::FinishedAt, Expr::value(at));
    }
    if let Some(image) = change.image {
        update = update.col_expr(deploy_attempt::Column::Image, Expr::value(image));
    }
    if let Some(kind) = change.error_kind {
        update = update.col_expr(deploy_attempt::Column::ErrorKind, Expr::value(kind));
    }
    if let Some(error) = change.error {
        update = update.col_expr(deploy_attempt::Column::Error, Expr::value(error));
    }
    if let Some(tail) = change.log_tail {
        update = update.col_expr(deploy_attempt::Column::LogTail, Expr::value(tail));
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// The value of install setting `key`, created as `make()` when missing (the first process to
/// ask decides it; every later one reads the same value).
pub async fn install_setting(
    db: &impl ConnectionTrait,
    key: &str,
    make: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    if let Some(row) = install_setting::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
    {
        return Ok(row.value);
    }
    install_setting::Entity::insert(install_setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(make()),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(install_setting::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    install_setting::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map(|row| row.value)
        .ok_or_else(|| DbErr::RecordNotFound(format!("install setting {key}")))
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

/// The outcomes of those of `guids` already recorded, by GUID (one read for a group of
/// deliveries committed together).
pub async fn recorded_deliveries(
    db: &impl ConnectionTrait,
    guids: &[&str],
) -> Result<std::collections::HashMap<String, DeliveryOutcome>, DbErr> {
    if guids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    Ok(webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Guid)
        .column(webhook_delivery::Column::Outcome)
        .filter(webhook_delivery::Column::Guid.is_in(guids.iter().copied()))
        .into_tuple::<(String, DeliveryOutcome)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Records a group of deliveries with their outcomes, in one statement; a GUID recorded before
/// as failed is recorded again. Returns how many rows it wrote: fewer than `rows` means another
/// process recorded one of these GUIDs meanwhile (the caller's transaction must not commit).
pub async fn record_deliveries(
    db: &impl ConnectionTrait,
    rows: Vec<webhook_delivery::ActiveModel>,
) -> Result<usize, DbErr> {
    if rows.is_empty() {
        return Ok(0);
    }
    let refresh = [
        webhook_delivery::Column::Event,
        webhook_delivery::Column::Action,
        webhook_delivery::Column::InstallationId,
        webhook_delivery::Column::RepositoryFullName,
        webhook_delivery::Column::Outcome,
        webhook_delivery::Column::Detail,
        webhook_delivery::Column::ReceivedAt,
    ];
    let mut conflict = OnConflict::column(webhook_delivery::Column::Guid);
    conflict.update_columns(refresh).action_and_where(
        Expr::col((webhook_delivery::Entity, webhook_delivery::Column::Outcome))
            .eq(DeliveryOutcome::Failed.to_value()),
    );
    let written = webhook_delivery::Entity::insert_many(rows)
        .on_conflict(conflict)
        .exec_with_returning_keys(db)
        .await?;
    Ok(written.len())
}

/// Sets the outcome of a recorded delivery.
pub async fn set_delivery_outcome(
    db: &impl ConnectionTrait,
    guid: &str,
    outcome: DeliveryOutcome,
    detail: &str,
) -> Result<(), DbErr> {
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Outcome, Expr::value(outcome))
        .col_expr(
            webhook_delivery::Column::Detail,
            Expr::value(detail.to_owned()),
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

// --- GitHub object ids (reporter) ---
//
// The check run of an attempt and the sticky comment of a preview are created once, whoever
// races to create them (the app's "queued" check run and the worker, two workers, a redelivery):
// their id column is claimed before the create. A claim is a lease, stored as a negative number:
// `-(lease end in Unix milliseconds)`. While the lease runs, others wait for the id; once it has
// run out, whoever takes the claim over must look the object up on GitHub before creating it.
// [`MAYBE_CREATED`] (an expired lease) says so at once: a create that may have been applied.
// Everything else reads only positive values as ids (`> 0`), as before.
//
// The GitHub deployment of an attempt needs no lease (one job per preview holds the preview's
// lock): `previews.github_deployment_id` holds `-(attempt id)` while that attempt creates it, so
// a re-run of the same attempt (after a crash) looks its deployment up before creating one.

/// A claim whose lease has run out: the object may exist; look it up before creating it.
pub const MAYBE_CREATED: i64 = -1;

/// A GitHub object whose id the model keeps, claimed before it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitHubObject {
    /// The check run of an attempt (`deploy_attempts.check_run_id`); the current attempt's is
    /// the preview's.
    CheckRun { attempt_id: i64 },
    /// The sticky comment of a preview (`previews.comment_id`).
    Comment { preview_id: i64 },
}

/// What an object's id column says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitHubObjectId {
    /// Not created, as far as anyone knows.
    Absent,
    /// Created; GitHub's id.
    Created(i64),
    /// Claimed by someone; `live` while the lease runs. `raw` is the stored value, for
    /// [`claim_github_object`] to take it over.
    Claimed { raw: i64, live: bool },
}

impl GitHubObjectId {
    fn of(raw: Option<i64>) -> Self {
        match raw {
            None => Self::Absent,
            Some(id) if id > 0 => Self::Created(id),
            // `0` is the lease-less claim of earlier versions: treat it as run out.
            Some(raw) => Self::Claimed {
                raw,
                live: raw < 0 && raw.unsigned_abs() > Utc::now().timestamp_millis().unsigned_abs(),
            },
        }
    }
}

/// Reads an object's id column.
pub async fn github_object(
    db: &impl ConnectionTrait,
    object: GitHubObject,
) -> Result<GitHubObjectId, DbErr> {
    let raw = match object {
        GitHubObject::CheckRun { attempt_id } => deploy_attempt::Entity::find_by_id(attempt_id)
            .one(db)
            .await?
            .and_then(|a| a.check_run_id),
        GitHubObject::Comment { preview_id } => preview::Entity::find_by_id(preview_id)
            .one(db)
            .await?
            .and_then(|p| p.comment_id),
    };
    Ok(GitHubObjectId::of(raw))
}

/// Writes `new` into the object's id column if it still holds `expected` (`None`: empty).
async fn swap_github_object(
    db: &impl ConnectionTrait,
    object: GitHubObject,
    expected: Option<i64>,
    new: Option<i64>,
) -> Result<bool, DbErr> {
    use sea_orm::sea_query::Expr;
    let result = match object {
        GitHubObject::CheckRun { attempt_id } => {
            let column = deploy_attempt::Column::CheckRunId;
            deploy_attempt::Entity::update_many()
                .col_expr(column, Expr::value(new))
                .filter(deploy_attempt::Column::Id.eq(attempt_id))
                .filter(match expected {
                    None => column.is_null(),
                    Some(v) => column.eq(v),
                })
                .exec(db)
                .await?
        }
        GitHubObject::Comment { preview_id } => {
            let column = preview::Column::CommentId;
            preview::Entity::update_many()
                .col_expr(column, Expr::value(new))
                .filter(preview::Column::Id.eq(preview_id))
                .filter(match expected {
                    None => column.is_null(),
                    Some(v) => column.eq(v),
                })
                .exec(db)
                .await?
        }
    };
    Ok(result.rows_affected == 1)
}

/// The value of a claim whose lease runs `lease` from now.
pub fn lease_claim(lease: std::time::Duration) -> i64 {
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
    -std::cmp::max(until.timestamp_millis(), 2)
}

/// Claims the right to create the object for `lease`, if its column still holds `expected`
/// (`None` for empty, or the `raw` value of a claim whose lease ran out). Returns the claim's
/// value on success, for [`settle_github_claim`].
pub async fn claim_github_object(
    db: &impl ConnectionTrait,
    object: GitHubObject,
    expected: Option<i64>,
    lease: std::time::Duration,
) -> Result<Option<i64>, DbErr> {
    let claim = lease_claim(lease);
    Ok(swap_github_object(db, object, expected, Some(claim))
        .await?
        .then_some(claim))
}

/// Stores the id of a created object over whatever the column held (one statement).
pub async fn store_github_object(
    db: &impl ConnectionTrait,
    object: GitHubObject,
    id: i64,
) -> Result<(), DbErr> {
    match object {
        GitHubObject::CheckRun { attempt_id } => deploy_attempt::Entity::update_many()
            .col_expr(deploy_attempt::Column::CheckRunId, Expr::value(id))
            .filter(deploy_attempt::Column::Id.eq(attempt_id))
            .exec(db)
            .await
            .map(drop),
        GitHubObject::Comment { preview_id } => preview::Entity::update_many()
            .col_expr(preview::Column::CommentId, Expr::value(id))
            .filter(preview::Column::Id.eq(preview_id))
            .exec(db)
            .await
            .map(drop),
    }
}

/// Stores the ids of created check runs, `(attempt id, check run id)`, over whatever their
/// columns held: one statement for all of them.
pub async fn store_check_run_ids(
    db: &impl ConnectionTrait,
    created: &[(i64, i64)],
) -> Result<(), DbErr> {
    let Some(&(first_attempt, first_id)) = created.first() else {
        return Ok(());
    };
    let column = deploy_attempt::Column::CheckRunId;
    let ids = created.iter().skip(1).fold(
        Expr::case(deploy_attempt::Column::Id.eq(first_attempt), first_id),
        |case, &(attempt, id)| case.case(deploy_attempt::Column::Id.eq(attempt), id),
    );
    deploy_attempt::Entity::update_many()
        .col_expr(column, ids.finally(Expr::col(column)).into())
        .filter(deploy_attempt::Column::Id.is_in(created.iter().map(|(attempt, _)| *attempt)))
        .exec(db)
        .await
        .map(drop)
}

/// Ends an unsuccessful claim: back to empty (`None`: GitHub surely made nothing), or to
/// [`MAYBE_CREATED`]. Does nothing if the claim is no longer the column's.
pub async fn settle_github_claim(
    db: &impl ConnectionTrait,
    object: GitHubObject,
    claim: i64,
    to: Option<i64>,
) -> Result<(), DbErr> {
    swap_github_object(db, object, Some(claim), to)
        .await
        .map(drop)
}

/// Forgets an object GitHub no longer has (someone deleted the comment), if the column still
/// holds `id`.
pub async fn forget_github_object(
    db: &impl ConnectionTrait,
    object: GitHubObject,
    id: i64,
) -> Result<(), DbErr> {
    swap_github_object(db, object, Some(id), None)
        .await
        .map(drop)
}

/// Marks that `attempt_id` is creating its preview's GitHub deployment; returns what the column
/// held before (`Some(-attempt_id)`: this attempt tried before and may have made one).
pub async fn mark_deployment_creation(
    db: &impl ConnectionTrait,
    preview_id: i64,
    attempt_id: i64,
) -> Result<Option<i64>, DbErr> {
    let before = preview::Entity::find_by_id(preview_id)
        .one(db)
        .await?
        .and_then(|p| p.github_deployment_id);
    preview::Entity::update_many()
        .col_expr(
            preview::Column::GithubDeploymentId,
            Expr::value(-attempt_id),
        )
        .filter(preview::Column::Id.eq(preview_id))
        .exec(db)
        .await?;
    Ok(before)
}

/// Stores the GitHub deployment of an attempt, on the attempt and on its preview.
pub async fn set_deployment(
    db: &impl ConnectionTrait,
    attempt_id: i64,
    preview_id: i64,
    deployment_id: i64,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    deploy_attempt::Entity::update_many()
        .col_expr(
            deploy_attempt::Column::GithubDeploymentId,
            Expr::value(deployment_id),
        )
        .filter(deploy_attempt::Column::Id.eq(attempt_id))
        .exec(db)
        .await?;
    preview::Entity::update_many()
        .col_expr(
            preview::Column::GithubDeploymentId,
            Expr::value(deployment_id),
        )
        .filter(preview::Column::Id.eq(preview_id))
        .exec(db)
        .await
        .map(drop)
}

/// The GitHub deployments of a preview's attempts that may still show as live, oldest first:
/// the last succeeded one before `before` (all attempts when `None`) and those after it that
/// did not stop on their own (superseded and cancelled attempts mark theirs inactive when they
/// stop). Earlier ones were retired when that success was reported.
pub async fn deployments_to_retire(
    db: &impl ConnectionTrait,
    preview_id: i64,
    before: Option<i64>,
) -> Result<Vec<i64>, DbErr> {
    let mut query = deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
        .filter(deploy_attempt::Column::GithubDeploymentId.gt(0));
    if let Some(before) = before {
        query = query.filter(deploy_attempt::Column::Id.lt(before));
    }
    let attempts = query
        .order_by_asc(deploy_attempt::Column::Id)
        .all(db)
        .await?;
    let mut live: Vec<i64> = Vec::new();
    for a in attempts {
        let Some(deployment) = a.github_deployment_id else {
            continue;
        };
        match a.status {
            AttemptStatus::Succeeded => live = vec![deployment],
            AttemptStatus::Superseded | AttemptStatus::Cancelled => {}
            AttemptStatus::Failed
            | AttemptStatus::TimedOut
            | AttemptStatus::Running
            | AttemptStatus::Queued => live.push(deployment),
        }
    }
    live.dedup();
    Ok(live)
}

/// Which previews a listing shows (the dashboard's filters; every field narrows).
#[derive(Debug, Clone, Default)]
pub struct PreviewFilter {
    /// Only previews of these repositories; `None`: every repository (operators).
    pub repositories: Option<Vec<i64>>,
    /// Only these statuses; empty: any.
    pub statuses: Vec<PreviewStatus>,
    /// One repository by full name (case-insensitive).
    pub repository: Option<String>,
    /// Pull requests by this author (case-insensitive).
    pub author: Option<String>,
    /// Text in the pull request's title or the preview's namespace (case-insensitive).
    pub search: Option<String>,
}

/// A preview with its pull request and repository, as pages show it.
#[derive(Debug, Clone)]
pub struct PreviewRow {
    pub preview: preview::Model,
    pub pull_request: pull_request::Model,
    pub repository: repository::Model,
}

/// `LOWER(column)` of `table`.
fn lower(table: impl sea_orm::Iden + 'static, column: impl sea_orm::Iden + 'static) -> Expr {
    Expr::expr(sea_orm::sea_query::Func::lower(Expr::col((table, column))))
}

/// A `LIKE` pattern that matches `text` anywhere, its own `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One page of previews matching `filter`, newest first, and how many match in all.
pub async fn list_previews(
    db: &impl ConnectionTrait,
    filter: &PreviewFilter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<PreviewRow>, u64), DbErr> {
    use sea_orm::{JoinType, PaginatorTrait, RelationTrait};
    let mut query = preview::Entity::find()
        .join(JoinType::InnerJoin, preview::Relation::PullRequest.def())
        .join(
            JoinType::InnerJoin,
            pull_request::Relation::Repository.def(),
        );
    if let Some(ids) = &filter.repositories {
        query = query.filter(repository::Column::Id.is_in(ids.iter().copied()));
    }
    if !filter.statuses.is_empty() {
        query = query.filter(preview::Column::Status.is_in(filter.statuses.iter().copied()));
    }
    if let Some(name) = &filter.repository {
        query = query.filter(
            lower(repository::Entity, repository::Column::FullName).eq(name.to_lowercase()),
        );
    }
    if let Some(author) = &filter.author {
        query = query.filter(
            lower(pull_request::Entity, pull_request::Column::AuthorLogin)
                .eq(author.to_lowercase()),
        );
    }
    if let Some(text) = filter.search.as_deref().filter(|t| !t.is_empty()) {
        let pattern = contains_pattern(text);
        let like =
            |e: Expr| e.like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\'));
        query = query.filter(
            sea_orm::Condition::any()
                .add(like(lower(
                    pull_request::Entity,
                    pull_request::Column::Title,
                )))
                .add(like(lower(preview::Entity, preview::Column::Namespace))),
        );
    }
    let total = query.clone().count(db).await?;
    let previews = query
        .order_by_desc(preview::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(db)
        .await?;
    Ok((rows_of(db, previews).await?, total))
}

/// A preview by id with its pull request and repository.
pub async fn preview_row(
    db: &impl ConnectionTrait,
    preview_id: i64,
) -> Result<Option<PreviewRow>, DbErr> {
    let Some(preview) = preview_by_id(db, preview_id).await? else {
        return Ok(None);
    };
    Ok(rows_of(db, vec![preview]).await?.pop())
}

/// Joins previews with their pull requests and repositories (two reads for the whole page).
async fn rows_of(
    db: &impl ConnectionTrait,
    previews: Vec<preview::Model>,
) -> Result<Vec<PreviewRow>, DbErr> {
    use std::collections::HashMap;
    let pr_ids: Vec<i64> = previews.iter().map(|p| p.pull_request_id).collect();
    let prs: HashMap<i64, pull_request::Model> = pull_request::Entity::find()
        .filter(pull_request::Column::Id.is_in(pr_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let repo_ids: Vec<i64> = prs.values().map(|p| p.repository_id).collect();
    let repos: HashMap<i64, repository::Model> = repository::Entity::find()
        .filter(repository::Column::Id.is_in(repo_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    Ok(previews
        .into_iter()
        .filter_map(|preview| {
            let pull_request = prs.get(&preview.pull_request_id)?.clone();
            let repository = repos.get(&pull_request.repository_id)?.clone();
            Some(PreviewRow {
                preview,
                pull_request,
                repository,
            })
        })
        .collect())
}

/// The most recent attempts of a preview, newest first (at most `limit`).
pub async fn attempts_of(
    db: &impl ConnectionTrait,
    preview_id: i64,
    limit: u64,
) -> Result<Vec<deploy_attempt::Model>, DbErr> {
    deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
        .order_by_desc(deploy_attempt::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// The current attempts of listed previews, by attempt id (one read for the page).
pub async fn current_attempts(
    db: &impl ConnectionTrait,
    rows: &[PreviewRow],
) -> Result<std::collections::HashMap<i64, deploy_attempt::Model>, DbErr> {
    let ids: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.preview.current_attempt_id)
        .collect();
    Ok(deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect())
}

/// Full names of the active repositories among `ids` (`None`: every one), sorted.
pub async fn repository_names(
    db: &impl ConnectionTrait,
    ids: Option<&[i64]>,
) -> Result<Vec<String>, DbErr> {
    let mut query = repository::Entity::find().filter(repository::Column::RemovedAt.is_null());
    if let Some(ids) = ids {
        query = query.filter(repository::Column::Id.is_in(ids.iter().copied()));
    }
    let mut names: Vec<String> = query
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.full_name)
        .collect();
    names.sort_by_key(|n| n.to_ascii_lowercase());
    Ok(names)
}

/// How many previews are in each status (those not deleted), and how many cleanups failed, as
/// `(words, count)` for the operators' totals.
pub async fn status_counts(db: &impl ConnectionTrait) -> Result<Vec<(String, u64)>, DbErr> {
    // Counted by the database (GROUP BY), not by loading every preview.
    let rows: Vec<(PreviewStatus, bool, i64)> = preview::Entity::find()
        .select_only()
        .column(preview::Column::Status)
        .column(preview::Column::CleanupFailed)
        .column_as(preview::Column::Id.count(), "n")
        .filter(preview::Column::Status.ne(PreviewStatus::Deleted))
        .group_by(preview::Column::Status)
        .group_by(preview::Column::CleanupFailed)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let mut failed_cleanups = 0;
    for (status, cleanup_failed, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        *counts
            .entry(crate::previews::service::status_word(status))
            .or_default() += n;
        if cleanup_failed {
            failed_cleanups += n;
        }
    }
    let mut out: Vec<(String, u64)> = counts.into_iter().map(|(w, n)| (w.to_owned(), n)).collect();
    out.push(("cleanups failed".to_owned(), failed_cleanups));
    Ok(out)
}

/// The namespaces of previews whose namespace holds a workload (building, deploying, running or
/// failed), newest first, at most `limit`.
pub async fn live_namespaces(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<String>, DbErr> {
    preview::Entity::find()
        .select_only()
        .column(preview::Column::Namespace)
        .filter(preview::Column::Status.is_in([
            PreviewStatus::Building,
            PreviewStatus::Deploying,
            PreviewStatus::Running,
            PreviewStatus::Failed,
        ]))
        .order_by_desc(preview::Column::Id)
        .limit(limit)
        .into_tuple::<String>()
        .all(db)
        .await
}

/// The live (not deleted) installations on the accounts `logins` (lowercase): login → id.
pub async fn installations_of_accounts(
    db: &impl ConnectionTrait,
    logins: &[String],
) -> Result<std::collections::HashMap<String, i64>, DbErr> {
    let rows = installation::Entity::find()
        .filter(installation::Column::DeletedAt.is_null())
        .filter(
            lower(installation::Entity, installation::Column::AccountLogin)
                .is_in(logins.iter().cloned()),
        )
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|i| (i.account_login.to_ascii_lowercase(), i.id))
        .collect())
}

/// Every repository previewd knows that is still installed, for a token holder's reach.
pub async fn live_repositories(db: &impl ConnectionTrait) -> Result<Vec<repository::Model>, DbErr> {
    repository::Entity::find()
        .filter(repository::Column::RemovedAt.is_null())
        .order_by_asc(repository::Column::Id)
        .all(db)
        .await
}

/// The id of the preview in `namespace`, if there is one.
pub async fn preview_id_of_namespace(
    db: &impl ConnectionTrait,
    namespace: &str,
) -> Result<Option<i64>, DbErr> {
    preview::Entity::find()
        .select_only()
        .column(preview::Column::Id)
        .filter(preview::Column::Namespace.eq(namespace))
        .order_by_desc(preview::Column::Id)
        .into_tuple::<i64>()
        .one(db)
        .await
}
