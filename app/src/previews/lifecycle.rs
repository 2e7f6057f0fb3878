//! The lifecycle of a preview and of its deploy attempts: every transition, in one place.
//!
//! Everything that changes a preview's status, the attempt it shows (`current_attempt_id`) or
//! an attempt's status goes through a named operation here — the webhook intake, the
//! reconciler, expiry, the deploy and cleanup jobs, and later the dashboard and API. The rules
//! are written once (and as a table in ARCHITECTURE.md, checked by `app/tests/lifecycle_table.rs`):
//!
//! - **Asking for a deploy** ([`request_deploy`], [`request_rerun`], [`adopt`]) makes a new
//!   attempt and makes it the preview's *current* one; the preview becomes `pending`. A job
//!   already running for an older attempt finds at its next step that it is no longer current
//!   and stops as *superseded* ("newest attempt wins", which includes a force-push back to an
//!   earlier commit). A push, open or ready-for-review whose commit is already the current
//!   attempt's is a duplicate and changes nothing.
//! - **A removed preview stays removed** (`deleted`, or `deleting` while cleanup runs) until a
//!   new push, a reopen, Re-run or Redeploy asks for it again: those **revive** it (the
//!   generation moves on, GitHub objects of its earlier life are forgotten). Nothing else does —
//!   not a label, not a reconcile round that finds the pull request still open.
//! - **Asking for removal** ([`request_removal`]: close, merge, expiry, uninstall, a repository
//!   removed from the App, the reconciler finding the pull request closed; [`confirm_destroy`]
//!   for Destroy) marks the preview `deleting` at once and moves its generation on; a deploy job
//!   stops at its next step as *cancelled*. Cleanup finishes ([`finish_removal`]) only if the
//!   generation is still the one it was asked for: a reopen or push while cleanup runs wins.
//! - **Requests from people whose permission is not yet known** (Redeploy button and command,
//!   Destroy, approval) change nothing in the intake: the job carries who asked, the worker
//!   checks their permission, then applies the request ([`adopt`], [`confirm_destroy`]) or
//!   refuses it ([`refuse`]) — a refused request never supersedes or removes anything.
//! - **Job outcomes** ([`start`], [`enter_phase`], [`succeed`], [`fail`], [`stop`],
//!   [`await_approval`]) are written with guards: an attempt's own row always records what
//!   happened to it, but the preview's status changes only while the attempt is still current
//!   and the preview is not being removed. A late writer's guard no longer matches, so it
//!   changes nothing.
//!
//! Operations that start work return the jobs to enqueue; callers enqueue them inside the same
//! transaction before committing ([`in_transaction`]), so no attempt is left queued without a
//! job when Redis refuses.

use chrono::{DateTime, Utc};
use previewd_entity::{
    AttemptStatus, PreviewStatus, PullRequestState, deploy_attempt, preview, pull_request,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use super::records::{self, AttemptChange, PreviewChange, PreviewGuard};
use crate::jobs::{CleanupJob, DeployJob, EnqueueError, ExtendJob, Queues};

/// Statuses of a preview that is being removed or is gone.
pub const REMOVED: [PreviewStatus; 2] = [PreviewStatus::Deleting, PreviewStatus::Deleted];

/// Attempt statuses that are not yet an outcome.
pub const UNFINISHED: [AttemptStatus; 2] = [AttemptStatus::Queued, AttemptStatus::Running];

/// What a deploy request is: the rules differ (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The pull request was opened (or the reconciler found one it never saw).
    Open,
    /// Reopened: always deploys again, reviving a removed preview.
    Reopen,
    /// A new head commit.
    Push,
    /// A draft became ready for review.
    ReadyForReview,
    /// The base branch changed: the configuration may differ, so deploy again.
    BaseChange,
}

/// Jobs to enqueue for the work a transition started, and the "queued" check runs the caller
/// shows once the transaction commits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    pub deploys: Vec<DeployJob>,
    pub cleanups: Vec<CleanupJob>,
    pub extends: Vec<ExtendJob>,
    pub queued: Vec<QueuedCheckRun>,
}

impl Work {
    /// True when there is no job to enqueue.
    pub fn is_empty(&self) -> bool {
        self.deploys.is_empty() && self.cleanups.is_empty() && self.extends.is_empty()
    }

    /// Adds `other`'s jobs and check runs.
    pub fn extend(&mut self, other: Self) {
        self.deploys.extend(other.deploys);
        self.cleanups.extend(other.cleanups);
        self.extends.extend(other.extends);
        self.queued.extend(other.queued);
    }
}

/// A deploy's "queued" check run, for the caller to create once its transaction commits
/// ([`crate::reporter::Reporter::queued_check_run`]) from what it already holds, reading
/// nothing. The attempt's `check_run_id` holds `claim` (a lease of
/// [`crate::reporter::CLAIM_LEASE`]), written by the statement that recorded the attempt, so a
/// worker that starts the deploy first waits for this check run instead of making a second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCheckRun {
    pub attempt_id: i64,
    pub preview_id: i64,
    pub sha: String,
    pub claim: i64,
}

/// Whether the caller shows a deploy as queued on GitHub itself (the app, after a delivery), or
/// leaves the check run to the worker (the reconciler, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowQueued {
    ByCaller,
    ByWorker,
}

impl ShowQueued {
    fn claim(self) -> Option<i64> {
        (self == Self::ByCaller).then(|| records::lease_claim(crate::reporter::CLAIM_LEASE))
    }
}

fn queued(attempt: &deploy_attempt::Model, claim: Option<i64>) -> Vec<QueuedCheckRun> {
    claim
        .map(|claim| QueuedCheckRun {
            attempt_id: attempt.id,
            preview_id: attempt.preview_id,
            sha: attempt.sha.clone(),
            claim,
        })
        .into_iter()
        .collect()
}

/// What a request did: whether it acted, why (one line), and the jobs it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub acted: bool,
    pub detail: String,
    pub work: Work,
}

impl Outcome {
    /// Nothing changed; `detail` says why.
    pub fn nothing(detail: impl Into<String>) -> Self {
        Self {
            acted: false,
            detail: detail.into(),
            work: Work::default(),
        }
    }

    /// Recorded, with no job to run.
    pub fn recorded(detail: impl Into<String>) -> Self {
        Self {
            acted: true,
            detail: detail.into(),
            work: Work::default(),
        }
    }

    fn deploy(detail: impl Into<String>, job: DeployJob) -> Self {
        Self {
            acted: true,
            detail: detail.into(),
            work: Work {
                deploys: vec![job],
                ..Work::default()
            },
        }
    }

    fn cleanup(detail: impl Into<String>, job: CleanupJob) -> Self {
        Self {
            acted: true,
            detail: detail.into(),
            work: Work {
                cleanups: vec![job],
                ..Work::default()
            },
        }
    }
}

/// Why a transaction of [`in_transaction`] did not commit.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Begins a transaction that holds the write lock from its first statement (SQLite
/// `BEGIN IMMEDIATE`; PostgreSQL takes row locks as it goes): two concurrent decisions wait for
/// each other instead of one failing on a stale snapshot.
pub async fn begin_transaction(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Runs `decide` in one transaction and enqueues the work it returns **before** committing: if
/// Redis refuses a job, nothing is committed.
pub async fn in_transaction<T>(
    db: &DatabaseConnection,
    queues: &Queues,
    decide: impl AsyncFnOnce(&DatabaseTransaction) -> Result<(T, Work), DbErr>,
) -> Result<T, TransactionError> {
    let txn = begin_transaction(db).await?;
    let (value, work) = match decide(&txn).await {
        Ok(decided) => decided,
        Err(e) => {
            drop(txn.rollback().await);
            return Err(e.into());
        }
    };
    if let Err(e) = queues.enqueue(&work).await {
        drop(txn.rollback().await);
        return Err(e.into());
    }
    txn.commit().await?;
    Ok(value)
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Makes `attempt` the preview's current attempt at `sha`, pending; revives a removed preview.
async fn make_current(
    db: &impl ConnectionTrait,
    preview: &preview::Model,
    attempt: &deploy_attempt::Model,
    revive: bool,
) -> Result<bool, DbErr> {
    let change = PreviewChange {
        status: Some(PreviewStatus::Pending),
        head_sha: Some(attempt.sha.clone()),
        current_attempt: Some(Some(attempt.id)),
        ..revival(revive)
    };
    // Guarded by the generation the caller saw: a removal in between wins.
    let guard = PreviewGuard {
        generation: Some(preview.generation),
        ..PreviewGuard::id(preview.id)
    };
    records::update_preview(db, &guard, change).await
}

fn revival(revive: bool) -> PreviewChange {
    if !revive {
        return PreviewChange::default();
    }
    PreviewChange {
        next_generation: true,
        deleted_at: Some(None),
        cleanup_failed: Some(false),
        last_error: Some(None),
        url: Some(None),
        forget_github_objects: true,
        ..PreviewChange::default()
    }
}

/// A deploy asked for by an event about `pr` (see [`Ask`]); `trigger` is recorded on the
/// attempt (`opened`, `synchronize`, `reconcile`, …). `pr` is the row as the event's upsert
/// returned it ([`records::upsert_pull_request`]): one it has just inserted has no preview to
/// look for.
pub async fn request_deploy(
    db: &impl ConnectionTrait,
    pr: &pull_request::Model,
    repo_full_name: &str,
    ask: Ask,
    trigger: &str,
    show: ShowQueued,
) -> Result<Outcome, DbErr> {
    if pr.state != PullRequestState::Open {
        return Ok(Outcome::recorded("the pull request is not open"));
    }
    // A pull request row this transaction has just created has no preview yet.
    let existing = if records::just_created(pr) {
        None
    } else {
        records::preview_of_for_update(db, pr.id).await?
    };
    let request = DeployRequest {
        pr,
        repo_full_name,
        ask,
        trigger,
    };
    request_deploy_of(db, &request, show, existing, None).await
}

/// A deploy asked for, as [`request_deploy`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct DeployRequest<'a> {
    pub pr: &'a pull_request::Model,
    pub repo_full_name: &'a str,
    pub ask: Ask,
    pub trigger: &'a str,
}

/// [`request_deploy`] for a caller that has read the pull request's preview itself (locked:
/// [`records::previews_of_for_update`]) and, if it likes, the preview's current attempt (read
/// here when not given), as several requests of one transaction read them at once.
pub async fn request_deploy_of(
    db: &impl ConnectionTrait,
    request: &DeployRequest<'_>,
    show: ShowQueued,
    existing: Option<preview::Model>,
    current: Option<deploy_attempt::Model>,
) -> Result<Outcome, DbErr> {
    let DeployRequest {
        pr,
        repo_full_name,
        ask,
        trigger,
    } = *request;
    if pr.state != PullRequestState::Open {
        return Ok(Outcome::recorded("the pull request is not open"));
    }
    let live = existing
        .as_ref()
        .is_some_and(|p| !REMOVED.contains(&p.status));
    if pr.draft && !live {
        return Ok(Outcome::recorded(
            "draft pull request: no preview until it is ready for review",
        ));
    }
    let (preview, created) = match existing {
        Some(p) => (p, false),
        None => records::insert_preview(db, pr, repo_full_name).await?,
    };
    // The preview may be a concurrent delivery's, found by the insert: read its attempt then.
    let current = match (current, preview.current_attempt_id) {
        (Some(attempt), Some(id)) if attempt.id == id => Some(attempt),
        (_, Some(id)) => records::attempt_by_id(db, id).await?,
        (_, None) => None,
    };
    let same_commit = current.as_ref().is_some_and(|a| a.sha == pr.head_sha);
    let duplicate = same_commit && matches!(ask, Ask::Open | Ask::Push | Ask::ReadyForReview);
    let removed = REMOVED.contains(&preview.status);
    if removed {
        let revive = match ask {
            Ask::Reopen | Ask::Open => true,
            Ask::Push => !same_commit,
            Ask::ReadyForReview | Ask::BaseChange => false,
        };
        if !revive {
            return Ok(Outcome::recorded(
                "the preview was removed; a new push, reopening, Re-run or Redeploy brings it back",
            ));
        }
    } else if duplicate {
        return Ok(Outcome::recorded(format!(
            "{} already has a deploy of {}",
            preview.namespace,
            short(&pr.head_sha)
        )));
    }
    let claim = show.claim();
    let attempt = if created {
        records::insert_attempt(db, preview.id, &pr.head_sha, 1, trigger, claim).await?
    } else {
        records::new_attempt(db, preview.id, &pr.head_sha, trigger, claim).await?
    };
    if !make_current(db, &preview, &attempt, removed).await? {
        return Err(DbErr::Custom(format!(
            "preview {} changed while a deploy was being recorded",
            preview.id
        )));
    }
    let verb = if removed { "revived; deploy" } else { "deploy" };
    Ok(deployed(&preview, &attempt, claim, verb))
}

/// [`request_deploy`] for pull requests just inserted ([`records::just_created`]), set-wise:
/// the statements are one per table for all of them, not per pull request. The rules are those
/// of [`request_deploy`] for a pull request with no preview, whatever the [`Ask`]: a draft gets
/// none yet, any other a pending preview with a first attempt, current. The outcomes are in the
/// order of `requests`.
pub async fn request_first_deploys(
    db: &impl ConnectionTrait,
    requests: &[DeployRequest<'_>],
    show: ShowQueued,
) -> Result<Vec<Outcome>, DbErr> {
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(requests.len());
    let mut deploys = Vec::with_capacity(requests.len());
    let mut claims = Vec::with_capacity(requests.len());
    for request in requests {
        if !records::just_created(request.pr) {
            return Err(DbErr::Custom(format!(
                "pull request {} is not new to this transaction",
                request.pr.id
            )));
        }
        if request.pr.state != PullRequestState::Open {
            outcomes.push(Some(Outcome::recorded("the pull request is not open")));
        } else if request.pr.draft {
            outcomes.push(Some(Outcome::recorded(
                "draft pull request: no preview until it is ready for review",
            )));
        } else {
            let claim = show.claim();
            deploys.push((request.pr, request.repo_full_name, request.trigger, claim));
            claims.push(claim);
            outcomes.push(None);
        }
    }
    let mut made = records::insert_first_deploys(db, &deploys)
        .await?
        .into_iter()
        .zip(claims);
    outcomes
        .into_iter()
        .map(|decided| match decided {
            Some(outcome) => Ok(outcome),
            None => made
                .next()
                .map(|((preview, attempt), claim)| deployed(&preview, &attempt, claim, "deploy"))
                .ok_or_else(|| DbErr::Custom("fewer previews made than asked for".into())),
        })
        .collect()
}

/// The outcome of a deploy request that made `attempt` current in `preview`; `verb` says how
/// ("deploy", "revived; deploy").
fn deployed(
    preview: &preview::Model,
    attempt: &deploy_attempt::Model,
    claim: Option<i64>,
    verb: &str,
) -> Outcome {
    let mut outcome = Outcome::deploy(
        format!(
            "{} {verb} of {} enqueued",
            preview.namespace,
            short(&attempt.sha)
        ),
        DeployJob {
            attempt_id: attempt.id,
            approved_by: None,
            requested_by: None,
        },
    );
    outcome.work.queued = queued(attempt, claim);
    outcome
}

/// Who asks to deploy a commit again, and how much is known of their permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker<'a> {
    /// GitHub's Re-run: GitHub lets only people with write access press it.
    Trusted,
    /// A button or command: the worker checks `login`'s permission before anything changes.
    Unverified(&'a str),
}

/// Re-run or Redeploy of `sha` of `preview` (`trigger`: `rerun`, `redeploy`). Only the head
/// commit of an open pull request is deployed again; a removed preview is revived.
pub async fn request_rerun(
    db: &impl ConnectionTrait,
    preview: &preview::Model,
    sha: &str,
    trigger: &str,
    asker: Asker<'_>,
    show: ShowQueued,
) -> Result<Outcome, DbErr> {
    let Some((preview, pr, _)) = records::preview_context(db, preview.id).await? else {
        return Ok(Outcome::nothing("the preview no longer exists"));
    };
    if pr.state != PullRequestState::Open {
        return Ok(Outcome::nothing("the pull request is closed"));
    }
    if preview.head_sha != sha {
        return Ok(Outcome::nothing(format!(
            "{} is not the head commit any more; the newest is deployed",
            short(sha)
        )));
    }
    // Only a trusted request is queued at once; an unverified one waits for the worker's check.
    let claim = match asker {
        Asker::Trusted => show.claim(),
        Asker::Unverified(_) => None,
    };
    let attempt = records::new_attempt(db, preview.id, sha, trigger, claim).await?;
    let requested_by = match asker {
        Asker::Trusted => {
            let removed = REMOVED.contains(&preview.status);
            if !make_current(db, &preview, &attempt, removed).await? {
                return Err(DbErr::Custom(format!(
                    "preview {} changed while a re-run was being recorded",
                    preview.id
                )));
            }
            None
        }
        Asker::Unverified(login) => Some(login.to_owned()),
    };
    let mut outcome = Outcome::deploy(
        format!(
            "{trigger} of {} at {} enqueued",
            preview.namespace,
            short(sha)
        ),
        DeployJob {
            attempt_id: attempt.id,
            approved_by: None,
            requested_by,
        },
    );
    outcome.work.queued = queued(&attempt, claim);
    Ok(outcome)
}

/// `approver` approved the head commit of an untrusted pull request: a new attempt that carries
/// who approved; the worker checks their permission and then [`adopt`]s it.
pub async fn request_approval(
    db: &impl ConnectionTrait,
    pr: &pull_request::Model,
    approver: &str,
) -> Result<Outcome, DbErr> {
    let Some(preview) = records::preview_of_for_update(db, pr.id).await? else {
        return Ok(Outcome::recorded(
            "approval noted; the pull request has no preview waiting for one",
        ));
    };
    if preview.approved_sha.as_deref() == Some(pr.head_sha.as_str()) {
        return Ok(Outcome::recorded(format!(
            "{} already approved",
            short(&pr.head_sha)
        )));
    }
    if preview.status != PreviewStatus::AwaitingApproval || preview.head_sha != pr.head_sha {
        return Ok(Outcome::recorded(
            "approval noted; the preview is not waiting for one",
        ));
    }
    let attempt = records::new_attempt(db, preview.id, &pr.head_sha, "approval", None).await?;
    Ok(Outcome::deploy(
        format!("approval of {} by {approver} enqueued", short(&pr.head_sha)),
        DeployJob {
            attempt_id: attempt.id,
            approved_by: Some(approver.to_owned()),
            requested_by: None,
        },
    ))
}

/// What [`adopt`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// The attempt is the preview's current one now.
    Current,
    /// The request is out of date (`why`); the attempt was cancelled.
    Stale(String),
}

/// Applies a request the worker has just confirmed (a writer's Redeploy, an approval): makes
/// the attempt current as a trusted re-run would — if its commit is still the head of an open
/// pull request. For an approval, also records the approved commit.
pub async fn adopt(
    db: &impl ConnectionTrait,
    attempt_id: i64,
    approval: bool,
) -> Result<Adopted, DbErr> {
    let Some(ctx) = records::attempt_context(db, attempt_id).await? else {
        return Ok(Adopted::Stale("the preview no longer exists".into()));
    };
    let stale = if ctx.pull_request.state != PullRequestState::Open {
        Some("the pull request was closed".to_owned())
    } else if ctx.preview.head_sha != ctx.attempt.sha {
        Some(format!(
            "{} is not the head commit any more",
            short(&ctx.attempt.sha)
        ))
    } else if approval && ctx.preview.status != PreviewStatus::AwaitingApproval {
        Some("the preview is not waiting for an approval".to_owned())
    } else {
        None
    };
    if let Some(why) = stale {
        stop(db, attempt_id, AttemptStatus::Cancelled, "stale", &why).await?;
        return Ok(Adopted::Stale(why));
    }
    let removed = REMOVED.contains(&ctx.preview.status);
    let mut change = PreviewChange {
        status: Some(PreviewStatus::Pending),
        current_attempt: Some(Some(attempt_id)),
        ..revival(removed)
    };
    if approval {
        change.approved_sha = Some(Some(ctx.attempt.sha.clone()));
    }
    let guard = PreviewGuard {
        generation: Some(ctx.preview.generation),
        ..PreviewGuard::id(ctx.preview.id)
    };
    if records::update_preview(db, &guard, change).await? {
        Ok(Adopted::Current)
    } else {
        let why = "the preview changed meanwhile".to_owned();
        stop(db, attempt_id, AttemptStatus::Cancelled, "stale", &why).await?;
        Ok(Adopted::Stale(why))
    }
}

/// A request from someone without write permission: the attempt is cancelled and nothing else
/// changes.
pub async fn refuse(db: &impl ConnectionTrait, attempt_id: i64) -> Result<(), DbErr> {
    stop(
        db,
        attempt_id,
        AttemptStatus::Cancelled,
        "not_permitted",
        "requester lacks write permission",
    )
    .await
    .map(drop)
}

/// Why a preview is removed, in words for the sticky comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Closed,
    Merged,
    /// The TTL ran out; the preview was idle until then.
    Expired(DateTime<Utc>),
    Uninstalled,
    RepositoryRemoved,
    /// The reconciler found the pull request no longer open.
    FoundClosed,
    /// Deleted from the dashboard by this login (whose write permission was checked).
    Deleted(String),
}

impl Removal {
    pub fn reason(&self) -> String {
        match self {
            Self::Closed => "the pull request was closed".into(),
            Self::Merged => "the pull request was merged".into(),
            Self::Expired(at) => format!(
                "it was idle until {} (its TTL)",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            Self::Uninstalled => "the GitHub App was uninstalled".into(),
            Self::RepositoryRemoved => "the repository was removed from the GitHub App".into(),
            Self::FoundClosed => "the pull request is closed".into(),
            Self::Deleted(login) => format!("@{login} deleted it from the dashboard"),
        }
    }
}

/// Removes `preview` for `removal`: `deleting` now (a running deploy stops at its next step),
/// and a cleanup job for this generation. An already removed preview is left alone.
pub async fn request_removal(
    db: &impl ConnectionTrait,
    preview: &preview::Model,
    removal: &Removal,
) -> Result<Outcome, DbErr> {
    if REMOVED.contains(&preview.status) {
        return Ok(Outcome::recorded("the preview is already removed"));
    }
    let guard = PreviewGuard {
        generation: Some(preview.generation),
        status_not_in: Some(REMOVED.to_vec()),
        ..PreviewGuard::id(preview.id)
    };
    let change = PreviewChange {
        status: Some(PreviewStatus::Deleting),
        next_generation: true,
        ..PreviewChange::default()
    };
    if !records::update_preview(db, &guard, change).await? {
        return Ok(Outcome::recorded("the preview changed meanwhile"));
    }
    Ok(Outcome::cleanup(
        format!("cleanup of {} enqueued", preview.namespace),
        CleanupJob {
            preview_id: preview.id,
            generation: Some(preview.generation + 1),
            reason: removal.reason(),
            requested_by: None,
        },
    ))
}

/// Destroy asked for by `login` (button, command): nothing changes until the worker has checked
/// their permission and calls [`confirm_destroy`].
pub fn request_destroy(preview: &preview::Model, login: &str) -> Outcome {
    if REMOVED.contains(&preview.status) {
        return Outcome::nothing("the preview is already removed");
    }
    Outcome::cleanup(
        format!("destroy of {} requested by {login}", preview.namespace),
        CleanupJob {
            preview_id: preview.id,
            generation: Some(preview.generation),
            reason: format!("@{login} asked for it"),
            requested_by: Some(login.to_owned()),
        },
    )
}

/// A writer's Destroy, confirmed: `deleting` if the preview is still at `generation` and not
/// removed; returns the generation the cleanup now acts on.
pub async fn confirm_destroy(
    db: &impl ConnectionTrait,
    preview_id: i64,
    generation: i64,
) -> Result<Option<i64>, DbErr> {
    let guard = PreviewGuard {
        generation: Some(generation),
        status_not_in: Some(REMOVED.to_vec()),
        ..PreviewGuard::id(preview_id)
    };
    let change = PreviewChange {
        status: Some(PreviewStatus::Deleting),
        next_generation: true,
        ..PreviewChange::default()
    };
    Ok(records::update_preview(db, &guard, change)
        .await?
        .then_some(generation + 1))
}

/// The cleanup of `generation` removed the namespace: `deleted` (the row stays as history) —
/// unless the preview was asked for again meanwhile, which then wins (false).
pub async fn finish_removal(
    db: &impl ConnectionTrait,
    preview_id: i64,
    generation: i64,
) -> Result<bool, DbErr> {
    let guard = PreviewGuard {
        generation: Some(generation),
        status_in: Some(vec![PreviewStatus::Deleting]),
        ..PreviewGuard::id(preview_id)
    };
    let change = PreviewChange {
        status: Some(PreviewStatus::Deleted),
        deleted_at: Some(Some(Utc::now())),
        url: Some(None),
        ..PreviewChange::default()
    };
    records::update_preview(db, &guard, change).await
}

/// The cleanup of `generation` ran out of tries: flagged for operators (the preview stays
/// `deleting`).
pub async fn flag_removal_failed(
    db: &impl ConnectionTrait,
    preview_id: i64,
    generation: i64,
    message: &str,
) -> Result<bool, DbErr> {
    let guard = PreviewGuard {
        generation: Some(generation),
        status_in: Some(vec![PreviewStatus::Deleting]),
        ..PreviewGuard::id(preview_id)
    };
    let change = PreviewChange {
        cleanup_failed: Some(true),
        last_error: Some(Some(message.to_owned())),
        ..PreviewChange::default()
    };
    records::update_preview(db, &guard, change).await
}

/// Whether a deploy job's attempt is still wanted.
#[derive(Debug, Clone)]
pub enum Wanted {
    Yes(Box<records::AttemptContext>),
    /// A newer attempt is current; `newer_sha` is its commit.
    Superseded {
        newer_sha: String,
    },
    /// The preview is being removed (or gone).
    Cancelled(String),
}

/// Reloads `attempt_id` and says whether its job should go on.
pub async fn wanted(db: &impl ConnectionTrait, attempt_id: i64) -> Result<Wanted, DbErr> {
    let Some(ctx) = records::attempt_context(db, attempt_id).await? else {
        return Ok(Wanted::Cancelled("the preview no longer exists".into()));
    };
    if REMOVED.contains(&ctx.preview.status) {
        return Ok(Wanted::Cancelled("the preview is being removed".into()));
    }
    if ctx.preview.current_attempt_id != Some(attempt_id) {
        return Ok(Wanted::Superseded {
            newer_sha: ctx.preview.head_sha.clone(),
        });
    }
    Ok(Wanted::Yes(Box::new(ctx)))
}

/// The deploy job starts (or starts again after a crash): the attempt is running, the preview
/// `building`.
pub async fn start(
    db: &impl ConnectionTrait,
    attempt: &deploy_attempt::Model,
) -> Result<(), DbErr> {
    records::update_attempt(
        db,
        attempt.id,
        &[AttemptStatus::Queued],
        AttemptChange {
            status: Some(AttemptStatus::Running),
            started_at: Some(Utc::now()),
            ..AttemptChange::default()
        },
    )
    .await?;
    enter_phase(db, attempt, PreviewStatus::Building)
        .await
        .map(drop)
}

/// The deploy moves on to `status` (`building`, `deploying`): shown only while the attempt is
/// current and the preview not removed.
pub async fn enter_phase(
    db: &impl ConnectionTrait,
    attempt: &deploy_attempt::Model,
    status: PreviewStatus,
) -> Result<bool, DbErr> {
    let guard = PreviewGuard {
        current_attempt: Some(attempt.id),
        status_not_in: Some(REMOVED.to_vec()),
        ..PreviewGuard::id(attempt.preview_id)
    };
    records::update_preview(
        db,
        &guard,
        PreviewChange {
            status: Some(status),
            ..PreviewChange::default()
        },
    )
    .await
}

/// Records the image an attempt deploys.
pub async fn record_image(
    db: &impl ConnectionTrait,
    attempt_id: i64,
    image: &str,
) -> Result<(), DbErr> {
    records::update_attempt(
        db,
        attempt_id,
        &UNFINISHED,
        AttemptChange {
            image: Some(image.to_owned()),
            ..AttemptChange::default()
        },
    )
    .await
    .map(drop)
}

/// The attempt's preview is ready at `url`: the attempt succeeded, and the preview (if the
/// attempt is still current) runs, expiring at `expires_at` unless used. True when the preview
/// shows it.
pub async fn succeed(
    db: &impl ConnectionTrait,
    attempt: &deploy_attempt::Model,
    url: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    records::update_attempt(
        db,
        attempt.id,
        &UNFINISHED,
        AttemptChange {
            status: Some(AttemptStatus::Succeeded),
            finished_at: Some(Utc::now()),
            error_kind: Some(None),
            error: Some(None),
            ..AttemptChange::default()
        },
    )
    .await?;
    let guard = PreviewGuard {
        current_attempt: Some(attempt.id),
        status_not_in: Some(REMOVED.to_vec()),
        ..PreviewGuard::id(attempt.preview_id)
    };
    records::update_preview(
        db,
        &guard,
        PreviewChange {
            status: Some(PreviewStatus::Running),
            url: Some(Some(url.to_owned())),
            last_error: Some(None),
            expires_at: Some(Some(expires_at)),
            expiry_warned_at: Some(None),
            ..PreviewChange::default()
        },
    )
    .await
}

/// What went wrong with an attempt, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct FailureRecord<'a> {
    /// `failed` or `timed_out`.
    pub status: AttemptStatus,
    /// The classified reason (`image_pull`, `config`, …).
    pub kind: &'a str,
    /// One line for the preview's `last_error` (sanitized by the caller).
    pub summary: &'a str,
    pub message: &'a str,
    pub log_tail: Option<&'a str>,
}

/// The attempt failed: recorded on the attempt, and shown on the preview while current.
pub async fn fail(
    db: &impl ConnectionTrait,
    attempt: &deploy_attempt::Model,
    failure: FailureRecord<'_>,
) -> Result<bool, DbErr> {
    records::update_attempt(
        db,
        attempt.id,
        &UNFINISHED,
        AttemptChange {
            status: Some(failure.status),
            finished_at: Some(Utc::now()),
            error_kind: Some(Some(failure.kind.to_owned())),
            error: Some(Some(failure.message.to_owned())),
            log_tail: Some(failure.log_tail.map(str::to_owned)),
            ..AttemptChange::default()
        },
    )
    .await?;
    let guard = PreviewGuard {
        current_attempt: Some(attempt.id),
        status_not_in: Some(REMOVED.to_vec()),
        ..PreviewGuard::id(attempt.preview_id)
    };
    records::update_preview(
        db,
        &guard,
        PreviewChange {
            status: Some(PreviewStatus::Failed),
            last_error: Some(Some(failure.summary.to_owned())),
            ..PreviewChange::default()
        },
    )
    .await
}

/// The attempt stopped without an outcome of its own (`superseded`, `cancelled`), with a
/// short `kind` and a reason. True when this call finished it (false: it had finished already).
pub async fn stop(
    db: &impl ConnectionTrait,
    attempt_id: i64,
    status: AttemptStatus,
    kind: &str,
    reason: &str,
) -> Result<bool, DbErr> {
    records::update_attempt(
        db,
        attempt_id,
        &UNFINISHED,
        AttemptChange {
            status: Some(status),
            finished_at: Some(Utc::now()),
            error_kind: Some(Some(kind.to_owned())),
            error: Some(Some(reason.to_owned())),
            ..AttemptChange::default()
        },
    )
    .await
}

/// The head commit of an untrusted pull request waits for a writer's approval: the attempt
/// ends (cancelled, `approval_required`) and the preview, while current, waits.
pub async fn await_approval(
    db: &impl ConnectionTrait,
    attempt: &deploy_attempt::Model,
) -> Result<(), DbErr> {
    stop(
        db,
        attempt.id,
        AttemptStatus::Cancelled,
        "approval_required",
        "waiting for approval",
    )
    .await?;
    let guard = PreviewGuard {
        current_attempt: Some(attempt.id),
        status_not_in: Some(REMOVED.to_vec()),
        ..PreviewGuard::id(attempt.preview_id)
    };
    records::update_preview(
        db,
        &guard,
        PreviewChange {
            status: Some(PreviewStatus::AwaitingApproval),
            ..PreviewChange::default()
        },
    )
    .await
    .map(drop)
}

/// The pull request changes nothing under the repository's `paths`: no preview needed. The
/// attempt ends (cancelled, `paths`); the preview stays pending for a commit that does.
pub async fn not_needed(
    db: &impl ConnectionTrait,
    attempt: &deploy_attempt::Model,
) -> Result<(), DbErr> {
    stop(
        db,
        attempt.id,
        AttemptStatus::Cancelled,
        "paths",
        "no changes under paths",
    )
    .await?;
    enter_phase(db, attempt, PreviewStatus::Pending)
        .await
        .map(drop)
}

/// Pushes the expiry of a running or failed preview to `until` (the Extend button); `None`
/// when the preview is in no state to be extended.
pub async fn extend(
    db: &impl ConnectionTrait,
    preview_id: i64,
    until: DateTime<Utc>,
) -> Result<Option<preview::Model>, DbErr> {
    let guard = PreviewGuard {
        status_in: Some(vec![PreviewStatus::Running, PreviewStatus::Failed]),
        ..PreviewGuard::id(preview_id)
    };
    let change = PreviewChange {
        expires_at: Some(Some(until)),
        expiry_warned_at: Some(None),
        ..PreviewChange::default()
    };
    if records::update_preview(db, &guard, change).await? {
        records::preview_by_id(db, preview_id).await
    } else {
        Ok(None)
    }
}

/// Remembers that the pull request was warned of the coming expiry (once per idle period).
pub async fn expiry_warned(db: &impl ConnectionTrait, preview_id: i64) -> Result<(), DbErr> {
    records::update_preview(
        db,
        &PreviewGuard::id(preview_id),
        PreviewChange {
            expiry_warned_at: Some(Some(Utc::now())),
            ..PreviewChange::default()
        },
    )
    .await
    .map(drop)
}

/// A running attempt whose job is gone without an outcome (killed by the queue's time-out, or
/// lost): ends as timed out with `reason`, shown on the preview while current. True when this
/// call finished it.
pub async fn abandon(
    db: &impl ConnectionTrait,
    attempt: &deploy_attempt::Model,
    reason: &str,
) -> Result<bool, DbErr> {
    let finished = records::update_attempt(
        db,
        attempt.id,
        &UNFINISHED,
        AttemptChange {
            status: Some(AttemptStatus::TimedOut),
            finished_at: Some(Utc::now()),
            error_kind: Some(Some("deploy_timeout".to_owned())),
            error: Some(Some(reason.to_owned())),
            ..AttemptChange::default()
        },
    )
    .await?;
    if finished {
        let guard = PreviewGuard {
            current_attempt: Some(attempt.id),
            status_not_in: Some(REMOVED.to_vec()),
            ..PreviewGuard::id(attempt.preview_id)
        };
        records::update_preview(
            db,
            &guard,
            PreviewChange {
                status: Some(PreviewStatus::Failed),
                last_error: Some(Some(reason.to_owned())),
                ..PreviewChange::default()
            },
        )
        .await?;
    }
    Ok(finished)
}

/// Notes that the heal of a stuck removal enqueued its cleanup again (so the next round waits
/// before doing so again).
pub async fn removal_retried(db: &impl ConnectionTrait, preview_id: i64) -> Result<(), DbErr> {
    records::update_preview(db, &PreviewGuard::id(preview_id), PreviewChange::default())
        .await
        .map(drop)
}
