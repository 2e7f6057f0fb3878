//! GitHub as a view of previewd's state: the check run of each attempt, the one sticky comment
//! of each pull request, and the deployment of each attempt.
//!
//! The database stays the source of truth; a failed GitHub call here is logged and reported to
//! the caller, which decides whether it matters (a deploy does not fail because a comment could
//! not be posted). Nothing is ever created twice:
//!
//! - creating the check run or the comment is **claimed** in the database first, with a lease
//!   ([`CLAIM_LEASE`]; see the GitHub-object section of `previews::records`). While the lease
//!   runs, others wait for the id — a slow first creator never lets a second one create — and
//!   whoever takes over a claim that ran out looks the object up on GitHub before creating it;
//! - a create whose outcome is unknown (a time-out, a 5xx) is looked up before it is tried again
//!   (`github::api`); when even the look-up fails, the claim is left marked "maybe created";
//! - a deployment carries its attempt in its payload and its preview's row says which attempt is
//!   creating one, so a re-run of that attempt finds it instead of making another.
//!
//! A successful deployment retires its preview's older ones (`inactive`), and removing a
//! preview retires them all ([`Reporter::deployment_succeeded`], [`Reporter::deployments_removed`]).

use std::time::Duration;

use chrono::Utc;
use previewd_entity::{AttemptStatus, deploy_attempt, repository};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
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
        lifecycle::QueuedCheckRun,
        records::{self, AttemptContext, GitHubObject, GitHubObjectId, MAYBE_CREATED},
        report::{self, COMMENT_MARKER, CheckText, CommentState, HistoryLine},
    },
};

/// How long a claim to create a check run or comment lasts: longer than the claimant's whole
/// create (two tries within the write time-out, each followed by a look-up), so that when it
/// runs out the claimant has finished or died, and a look-up tells the truth.
pub const CLAIM_LEASE: Duration = Duration::from_secs(90);
/// How often a waiter looks for the id another claimant is creating.
const CLAIM_POLL: Duration = Duration::from_millis(100);

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

fn parse_repo(full_name: &str) -> Result<RepoName, ReportError> {
    RepoName::parse(full_name).ok_or_else(|| {
        ReportError::Database(DbErr::Custom(format!("bad repository name {full_name:?}")))
    })
}

fn repo_name(ctx: &AttemptContext) -> Result<RepoName, ReportError> {
    parse_repo(&ctx.repository.full_name)
}

/// Whether an object was there already or has just been made.
enum Ensured {
    Existing(i64),
    Created(i64),
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

    /// Creates `object` once: returns its id when it exists (or appears while another claimant
    /// creates it), else claims it and calls `create`; a claim that ran out is taken over with a
    /// look-up (`find`) first.
    async fn ensure_created<C, CF, F, FF>(
        &self,
        object: GitHubObject,
        create: C,
        find: F,
    ) -> Result<Ensured, ReportError>
    where
        C: Fn() -> CF,
        CF: Future<Output = Result<i64, GitHubError>>,
        F: Fn() -> FF,
        FF: Future<Output = Result<Option<i64>, GitHubError>>,
    {
        // The lease of a claim seen now has run out by then.
        let deadline = tokio::time::Instant::now() + CLAIM_LEASE + Duration::from_secs(5);
        loop {
            let (expected, look_first) = match records::github_object(&self.db, object).await? {
                GitHubObjectId::Created(id) => return Ok(Ensured::Existing(id)),
                GitHubObjectId::Absent => (None, false),
                GitHubObjectId::Claimed { live: true, .. }
                    if tokio::time::Instant::now() < deadline =>
                {
                    // Someone is creating it; their id will appear.
                    tokio::time::sleep(CLAIM_POLL).await;
                    continue;
                }
                GitHubObjectId::Claimed { raw, .. } => (Some(raw), true),
            };
            if tokio::time::Instant::now() >= deadline + CLAIM_LEASE {
                return Err(
                    DbErr::Custom("the GitHub object's claim keeps changing".into()).into(),
                );
            }
            let Some(claim) =
                records::claim_github_object(&self.db, object, expected, CLAIM_LEASE).await?
            else {
                continue; // someone else claimed it in between
            };
            if look_first {
                match find().await {
                    Ok(Some(id)) => {
                        records::store_github_object(&self.db, object, id).await?;
                        return Ok(Ensured::Existing(id));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        records::settle_github_claim(&self.db, object, claim, Some(MAYBE_CREATED))
                            .await?;
                        return Err(e.into());
                    }
                }
            }
            return match create().await {
                Ok(id) => {
                    records::store_github_object(&self.db, object, id).await?;
                    Ok(Ensured::Created(id))
                }
                Err(e) => {
                    let to = e.maybe_applied.then_some(MAYBE_CREATED);
                    records::settle_github_claim(&self.db, object, claim, to).await?;
                    Err(e.into())
                }
            };
        }
    }

    /// Creates the "queued" check run of a deploy a delivery just committed, from what the
    /// delivery carried: one call to GitHub and one write, no reads. The attempt's claim was
    /// taken with the attempt ([`QueuedCheckRun`]); a worker that got there first waits for it.
    pub async fn queued_check_run(
        &self,
        installation: i64,
        repo: &RepoName,
        queued: &QueuedCheckRun,
    ) -> Result<(), ReportError> {
        let id = self
            .create_queued_check_run(installation, repo, queued)
            .await?;
        let object = GitHubObject::CheckRun {
            attempt_id: queued.attempt_id,
        };
        Ok(records::store_github_object(&self.db, object, id).await?)
    }

    /// [`Self::queued_check_run`] up to its write: returns the new check run's id for the caller
    /// to store. If GitHub did not create it, the claim is handed to the worker here.
    async fn create_queued_check_run(
        &self,
        installation: i64,
        repo: &RepoName,
        queued: &QueuedCheckRun,
    ) -> Result<i64, ReportError> {
        let text = report::queued(&queued.sha);
        let report = CheckRunReport {
            head_sha: queued.sha.clone(),
            status: CheckStatus::Queued,
            external_id: queued.attempt_id.to_string(),
            details_url: Some(self.details_url(queued.preview_id)),
            title: text.title,
            summary: text.summary,
            text: text.text,
            actions: actions_for(CheckStatus::Queued),
        };
        match self
            .github
            .create_check_run(installation, repo, &report)
            .await
        {
            Ok(id) => Ok(id),
            Err(e) => {
                // Hand it to the worker: at once when GitHub surely made nothing, else marked for
                // a look-up first.
                let object = GitHubObject::CheckRun {
                    attempt_id: queued.attempt_id,
                };
                let to = e.maybe_applied.then_some(MAYBE_CREATED);
                records::settle_github_claim(&self.db, object, queued.claim, to).await?;
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
        let object = GitHubObject::CheckRun {
            attempt_id: ctx.attempt.id,
        };
        let ensured = self
            .ensure_created(
                object,
                || self.github.create_check_run(installation, &repo, &report),
                || {
                    self.github.find_check_run(
                        installation,
                        &repo,
                        &report.head_sha,
                        &report.external_id,
                    )
                },
            )
            .await?;
        match ensured {
            Ensured::Created(id) => Ok(id),
            Ensured::Existing(id) => {
                self.github
                    .update_check_run(installation, &repo, id, &report)
                    .await?;
                Ok(id)
            }
        }
    }

    /// Replaces the text of an existing check run, leaving its status alone (to answer a button
    /// press that was refused).
    pub async fn explain(
        &self,
        repository: &repository::Model,
        check_run_id: i64,
        title: &str,
        summary: &str,
    ) -> Result<(), ReportError> {
        let repo = parse_repo(&repository.full_name)?;
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

    /// Posts `body` on pull request `number` unless a comment carrying `marker` (a hidden HTML
    /// comment naming what it answers, e.g. the person and commit of a refused command) is
    /// already there. Returns whether it posted. For answers that must be given once.
    pub async fn reply_once(
        &self,
        repository: &repository::Model,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<bool, ReportError> {
        let repo = parse_repo(&repository.full_name)?;
        let installation = repository.installation_id;
        if self
            .github
            .find_comment(installation, &repo, number, marker)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let body = if body.contains(marker) {
            body.to_owned()
        } else {
            format!("{marker}\n{body}")
        };
        self.github
            .create_comment(installation, &repo, number, &body, marker)
            .await?;
        Ok(true)
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
        let object = GitHubObject::Comment {
            preview_id: ctx.preview.id,
        };
        // Twice at most: once more when someone deleted the comment under our feet.
        for _ in 0..2 {
            let ensured = self
                .ensure_created(
                    object,
                    || {
                        self.github.create_comment(
                            installation,
                            &repo,
                            number,
                            &body,
                            COMMENT_MARKER,
                        )
                    },
                    || {
                        self.github
                            .find_comment(installation, &repo, number, COMMENT_MARKER)
                    },
                )
                .await?;
            let id = match ensured {
                Ensured::Created(_) => return Ok(()),
                Ensured::Existing(id) => id,
            };
            match self
                .github
                .update_comment(installation, &repo, id, &body)
                .await
            {
                Err(e) if e.is_not_found() => {
                    // Someone deleted it: forget it and post a new one.
                    records::forget_github_object(&self.db, object, id).await?;
                }
                other => return Ok(other?),
            }
        }
        Ok(())
    }

    /// True when the pull request already has a sticky comment.
    pub async fn has_comment(&self, preview_id: i64) -> Result<bool, ReportError> {
        Ok(matches!(
            records::github_object(&self.db, GitHubObject::Comment { preview_id }).await?,
            GitHubObjectId::Created(_)
        ))
    }

    /// Creates the GitHub deployment of the attempt's commit. It has no status until the
    /// outcome's (GitHub shows it pending meanwhile): an "in progress" status would be one more
    /// call per deploy that tells nothing the check run does not.
    pub async fn start_deployment(&self, ctx: &AttemptContext) -> Result<i64, ReportError> {
        let repo = repo_name(ctx)?;
        let installation = ctx.repository.installation_id;
        let environment = format!("preview/pr-{}", ctx.pull_request.number);
        let key = ctx.attempt.id.to_string();
        let before =
            records::mark_deployment_creation(&self.db, ctx.preview.id, ctx.attempt.id).await?;
        // This attempt tried before (and stopped before storing the id): look first.
        let found = if before == Some(-ctx.attempt.id) {
            self.github
                .find_deployment(installation, &repo, &ctx.attempt.sha, &environment, &key)
                .await?
        } else {
            None
        };
        let id = match found {
            Some(id) => id,
            None => {
                self.github
                    .create_deployment(
                        installation,
                        &repo,
                        &ctx.attempt.sha,
                        &environment,
                        "Preview environment",
                        &key,
                    )
                    .await?
            }
        };
        records::set_deployment(&self.db, ctx.attempt.id, ctx.preview.id, id).await?;
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

    /// The attempt's deployment succeeded at `url`: says so, and marks the preview's older
    /// deployments inactive, so GitHub's "View deployment" shows only the live one.
    pub async fn deployment_succeeded(
        &self,
        ctx: &AttemptContext,
        deployment: i64,
        url: &str,
    ) -> Result<(), ReportError> {
        self.deployment_status(
            ctx,
            deployment,
            DeploymentState::Success,
            Some(url),
            "Preview ready",
        )
        .await?;
        let older =
            records::deployments_to_retire(&self.db, ctx.preview.id, Some(ctx.attempt.id)).await?;
        self.retire(
            ctx,
            older.into_iter().filter(|d| *d != deployment),
            "Replaced by a newer deployment",
        )
        .await
    }

    /// The preview is gone: every deployment of it that may still show as live becomes inactive.
    pub async fn deployments_removed(&self, preview_id: i64) -> Result<(), ReportError> {
        let Some(ctx) = records::last_attempt_context(&self.db, preview_id).await? else {
            return Ok(());
        };
        let all = records::deployments_to_retire(&self.db, preview_id, None).await?;
        self.retire(&ctx, all.into_iter(), "Preview removed").await
    }

    /// Marks `deployments` inactive; tries them all, returns the first failure.
    async fn retire(
        &self,
        ctx: &AttemptContext,
        deployments: impl Iterator<Item = i64>,
        why: &str,
    ) -> Result<(), ReportError> {
        let mut first_error = None;
        for deployment in deployments {
            if let Err(e) = self
                .deployment_status(ctx, deployment, DeploymentState::Inactive, None, why)
                .await
            {
                tracing::warn!(deployment, error = %e, "could not mark a deployment inactive");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
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

/// Creates the queued check runs of a committed delivery in the background (best effort: the
/// worker creates one if this fails).
pub fn spawn_queued_check_runs(
    reporter: Reporter,
    installation: i64,
    repo: RepoName,
    queued: Vec<QueuedCheckRun>,
) {
    if queued.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for q in &queued {
            if let Err(e) = reporter.queued_check_run(installation, &repo, q).await {
                tracing::warn!(attempt = q.attempt_id, error = %e, "could not show the queued check run; the worker will");
            }
        }
    });
}

/// The "queued" check runs of committed deliveries, created by one task (started with the first)
/// rather than a task each: at a few thousand deliveries a second, a task per delivery piles up
/// behind an unreachable GitHub (each waits for its own token mint and its retries). The task
/// creates up to [`QUEUED_AT_ONCE`] at a time; once GitHub could not be reached, for
/// [`UNREACHABLE_PAUSE`] it does not try, and hands what arrives to the worker at once (its
/// claims released in one transaction), with one warning per group, not one per delivery.
pub struct QueuedCheckRuns {
    reporter: Reporter,
    sender: std::sync::OnceLock<tokio::sync::mpsc::Sender<QueuedOn>>,
}

/// A queued check run to create, and where.
struct QueuedOn {
    installation: i64,
    repo: RepoName,
    run: QueuedCheckRun,
}

/// How many queued check runs are created at once.
pub const QUEUED_AT_ONCE: usize = 8;
/// How long GitHub is not tried for queued check runs after it could not be reached.
pub const UNREACHABLE_PAUSE: Duration = Duration::from_secs(1);
/// Queued check runs waiting for the task; past this, they are handed to the worker.
const QUEUED_WAITING: usize = 4096;
/// How long the id of a created queued check run waits for others to be stored with it.
pub const STORE_LINGER: Duration = Duration::from_millis(25);
/// The most ids stored in one statement.
const STORE_AT_ONCE: usize = 256;

impl std::fmt::Debug for QueuedCheckRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedCheckRuns")
            .field("started", &self.sender.get().is_some())
            .finish_non_exhaustive()
    }
}

impl QueuedCheckRuns {
    pub fn new(reporter: Reporter) -> Self {
        Self {
            reporter,
            sender: std::sync::OnceLock::new(),
        }
    }

    /// Shows `runs` (deploys of `repo` just committed) as queued, in the background.
    pub fn show(&self, installation: i64, repo: &RepoName, runs: Vec<QueuedCheckRun>) {
        if runs.is_empty() {
            return;
        }
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = tokio::sync::mpsc::channel(QUEUED_WAITING);
            tokio::spawn(create_queued(self.reporter.clone(), receiver));
            sender
        });
        let mut overflow = Vec::new();
        for run in runs {
            let on = QueuedOn {
                installation,
                repo: repo.clone(),
                run,
            };
            if let Err(e) = sender.try_send(on) {
                let on = match e {
                    tokio::sync::mpsc::error::TrySendError::Full(on)
                    | tokio::sync::mpsc::error::TrySendError::Closed(on) => on,
                };
                overflow.push(on);
            }
        }
        if !overflow.is_empty() {
            let reporter = self.reporter.clone();
            tokio::spawn(async move { hand_to_worker(&reporter, &overflow).await });
        }
    }
}

async fn create_queued(reporter: Reporter, mut receiver: tokio::sync::mpsc::Receiver<QueuedOn>) {
    use futures::StreamExt as _;
    let (created, to_store) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(store_created(reporter.db.clone(), to_store));
    let mut group = Vec::new();
    let mut paused_until: Option<tokio::time::Instant> = None;
    while receiver.recv_many(&mut group, QUEUED_WAITING).await > 0 {
        let batch = std::mem::take(&mut group);
        if paused_until.is_some_and(|t| tokio::time::Instant::now() < t) {
            hand_to_worker(&reporter, &batch).await;
            tracing::warn!(
                check_runs = batch.len(),
                "GitHub could not be reached a moment ago; the worker will show these queued check runs"
            );
            continue;
        }
        let unreachable = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let at_once = if paused_until.is_some() {
            1 // after GitHub was unreachable, one probe at a time until it answers again
        } else {
            QUEUED_AT_ONCE
        };
        let outcomes: Vec<Shown> = futures::stream::iter(batch)
            .map(|on| try_queued(reporter.clone(), unreachable.clone(), created.clone(), on))
            .buffer_unordered(at_once)
            .collect()
            .await;
        // A failed try handed its claim over itself; those not tried still hold theirs.
        let not_tried: Vec<&QueuedOn> = outcomes
            .iter()
            .filter_map(|o| match o {
                Shown::NotTried(on) => Some(on),
                Shown::Created | Shown::Failed => None,
            })
            .collect();
        hand_to_worker(&reporter, &not_tried).await;
        let failed = outcomes.len()
            - outcomes
                .iter()
                .filter(|o| matches!(o, Shown::Created))
                .count();
        if failed > 0 {
            tracing::warn!(
                check_runs = failed,
                "could not show queued check runs; the worker will"
            );
        }
        if unreachable.load(std::sync::atomic::Ordering::Relaxed) {
            paused_until = Some(tokio::time::Instant::now() + UNREACHABLE_PAUSE);
        } else if failed < outcomes.len() {
            paused_until = None;
        }
    }
}

/// What became of one queued check run of a group.
enum Shown {
    Created,
    /// Tried; its claim was handed over by the try.
    Failed,
    /// Not tried (GitHub had just been found unreachable); it still holds its claim.
    NotTried(QueuedOn),
}

/// Creates one queued check run unless GitHub was just found `unreachable` (set here when a try
/// cannot reach it), and hands its id to [`store_created`].
async fn try_queued(
    reporter: Reporter,
    unreachable: std::sync::Arc<std::sync::atomic::AtomicBool>,
    created: tokio::sync::mpsc::UnboundedSender<(i64, i64)>,
    on: QueuedOn,
) -> Shown {
    use std::sync::atomic::Ordering;
    if unreachable.load(Ordering::Relaxed) {
        return Shown::NotTried(on);
    }
    match reporter
        .create_queued_check_run(on.installation, &on.repo, &on.run)
        .await
    {
        Ok(id) => {
            // The storing task outlives every sender; this fails only if it panicked.
            let _ = created.send((on.run.attempt_id, id));
            Shown::Created
        }
        Err(e) => {
            if let ReportError::GitHub(g) = &e
                && g.status.is_none()
                && !g.maybe_applied
            {
                unreachable.store(true, Ordering::Relaxed);
            }
            tracing::debug!(attempt = on.run.attempt_id, error = %e, "could not show the queued check run; the worker will");
            Shown::Failed
        }
    }
}

/// Stores the ids of created queued check runs, `(attempt id, check run id)`, many in one
/// statement: the first waits [`STORE_LINGER`] for others to arrive. At a steady rate of
/// deliveries a write each would double the database's commits, and each delivery's commit
/// would often queue behind one: on PostgreSQL every commit is a flush of its log to disk, on
/// SQLite the one write lock, whose holder another transaction waits for (sleeping at least a
/// millisecond). Until its id is stored a check run's claim holds, and a worker that needs it
/// waits (polling every [`CLAIM_POLL`]). An id that cannot be stored after a few tries is left:
/// the claim's lease runs out and the worker finds the check run on GitHub before creating one.
async fn store_created(
    db: DatabaseConnection,
    mut created: tokio::sync::mpsc::UnboundedReceiver<(i64, i64)>,
) {
    let mut batch = Vec::with_capacity(STORE_AT_ONCE);
    while created.recv_many(&mut batch, STORE_AT_ONCE).await > 0 {
        tokio::time::sleep(STORE_LINGER).await;
        while batch.len() < STORE_AT_ONCE {
            match created.try_recv() {
                Ok(one) => batch.push(one),
                Err(_) => break,
            }
        }
        let mut tries = 0;
        while let Err(e) = records::store_check_run_ids(&db, &batch).await {
            tries += 1;
            if tries == 3 {
                tracing::warn!(check_runs = batch.len(), error = %e, "could not store the ids of queued check runs; the worker looks them up when their claims run out");
                break;
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
        batch.clear();
    }
}

/// Releases the claims of queued check runs not created, in one transaction, so the worker
/// creates each check run at once instead of waiting for the claim's lease to run out.
async fn hand_to_worker<R: std::borrow::Borrow<QueuedOn>>(reporter: &Reporter, runs: &[R]) {
    use sea_orm::TransactionTrait as _;
    if runs.is_empty() {
        return;
    }
    let released = async {
        let txn = reporter.db.begin().await?;
        for on in runs {
            let run = &on.borrow().run;
            let object = GitHubObject::CheckRun {
                attempt_id: run.attempt_id,
            };
            records::settle_github_claim(&txn, object, run.claim, None).await?;
        }
        txn.commit().await
    }
    .await;
    if let Err(e) = released {
        tracing::warn!(check_runs = runs.len(), error = %e, "could not release the claims of queued check runs; the worker takes each over when its lease runs out");
    }
}
