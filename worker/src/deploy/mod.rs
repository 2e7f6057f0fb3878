//! The deploy job: one attempt to bring one commit of a preview up, reported as it goes.
//!
//! A run first confirms a request whose asker's permission is not known yet (a Redeploy, an
//! approval: `trust.rs`), then tries the attempt up to [`MAX_TRIES`] times. Each try takes the
//! preview's lock (one job per preview at a time; a cleanup can get in between tries), has the
//! whole deploy timeout to itself, and walks the phases, each in its own file:
//!
//! 1. `trust.rs` — may this commit run at all (fork, author's permission, approval)?
//! 2. `config.rs` — `.github/preview.yml` (from the head, or the base branch when untrusted),
//!    and whether the pull request touches the repository's `paths`;
//! 3. the namespace and its guard rails (`Cluster::prepare_namespace`);
//! 4. `build.rs` — the image: ready-made, or built in the cluster in a namespace of its own;
//! 5. `workload.rs` — the repository's chart or the built-in web service, applied and pruned;
//! 6. `readiness.rs` — ready (and optionally answering on its public URL), or why not;
//! 7. `outcome.rs` — the result, recorded by `previews::lifecycle` and shown on GitHub.
//!
//! Between phases (and every [`RECHECK`] during long waits) it asks the lifecycle whether the
//! attempt is still wanted: a newer attempt supersedes it, a removal cancels it.
//!
//! How a try ends decides what happens next ([`Stop`]):
//! - a **user error** (bad config, failed build, crash loop, …) is reported at once and never
//!   retried: trying again gives the same answer;
//! - an **infrastructure error** (GitHub 5xx, Kubernetes unavailable, database, the preview busy
//!   with another job) is retried with backoff; after the last try it is reported as such;
//! - **superseded** or **cancelled** attempts end quietly with a check run that says why.
//!
//! The handler never returns an error: apalis would re-schedule it up to 25 times on its own.
//! Every outcome is recorded here; a run the database does not let start (it is down) leaves
//! the attempt queued, and the reconciler re-enqueues it.

mod build;
mod config;
mod outcome;
mod readiness;
mod trust;
mod workload;

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use previewd::{
    cluster::{ClusterError, GuardRails, PreviewMeta},
    github::{GitHubError, RepoName, api::CheckStatus},
    jobs::DeployJob,
    previews::{
        lifecycle::{self, Wanted},
        records::{self, AttemptContext},
        report::{self, Failure, FailureKind, Success},
    },
    reporter::ReportError,
};
use previewd_entity::{AttemptStatus, PreviewStatus};
use sea_orm::DbErr;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::{
    context::JobContext,
    lock::{LockError, PreviewLock},
};

/// Tries of one attempt before an infrastructure error is reported as the outcome.
pub const MAX_TRIES: u32 = 3;

/// Why a try stopped before success.
#[derive(Debug)]
pub enum Stop {
    /// The author must change something; not retried.
    User(Failure),
    /// Trying again later may help.
    Infra(String),
    /// A newer attempt is the current one now; its commit.
    Superseded(String),
    /// Cleanup started (closed, destroyed): the deploy gives way.
    Cancelled(String),
    /// Untrusted and not approved: reported, waiting for a human.
    NeedsApproval,
    /// Nothing to deploy (the repository's `paths`): reported.
    NotNeeded,
}

impl From<DbErr> for Stop {
    fn from(e: DbErr) -> Self {
        Self::Infra(format!("database: {e}"))
    }
}

impl From<GitHubError> for Stop {
    fn from(e: GitHubError) -> Self {
        if e.retryable {
            Self::Infra(e.to_string())
        } else {
            Self::User(Failure::new(FailureKind::Infrastructure, e.to_string()))
        }
    }
}

impl From<ReportError> for Stop {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::GitHub(e) => e.into(),
            ReportError::Database(e) => e.into(),
        }
    }
}

impl From<ClusterError> for Stop {
    fn from(e: ClusterError) -> Self {
        match e {
            e if e.is_retryable() => Self::Infra(e.to_string()),
            e @ ClusterError::NotOurs { .. } => {
                Self::User(Failure::new(FailureKind::NamespaceTaken, e.to_string()))
            }
            e => Self::User(Failure::new(
                FailureKind::Infrastructure,
                format!("the cluster refused the preview: {e}"),
            )),
        }
    }
}

impl From<LockError> for Stop {
    fn from(e: LockError) -> Self {
        Self::Infra(e.to_string())
    }
}

/// The apalis handler of the deploy queue.
pub async fn deploy_job(job: DeployJob, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<JobContext> = (*ctx).clone();
    let span = tracing::info_span!(
        "deploy",
        attempt = job.attempt_id,
        preview = tracing::field::Empty,
        repo = tracing::field::Empty,
        pr = tracing::field::Empty,
        sha = tracing::field::Empty,
    );
    run(&ctx, &job).instrument(span).await;
    Ok(())
}

async fn run(ctx: &JobContext, job: &DeployJob) {
    let attempt = match find_attempt(ctx, job.attempt_id).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            tracing::warn!("deploy job for an unknown attempt; dropped");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "the database did not answer at job start; the attempt stays queued and the reconciler enqueues it again");
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("preview", attempt.preview.id);
    span.record("repo", attempt.repository.full_name.as_str());
    span.record("pr", attempt.pull_request.number);
    span.record("sha", report::short_sha(&attempt.attempt.sha));
    if !lifecycle::UNFINISHED.contains(&attempt.attempt.status) {
        tracing::info!(status = ?attempt.attempt.status, "attempt already finished; nothing to do");
        return;
    }
    match trust::confirm(ctx, job, &attempt).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not confirm who asked; the request is dropped");
            if let Err(e) = lifecycle::stop(
                &ctx.db,
                attempt.attempt.id,
                AttemptStatus::Cancelled,
                "unconfirmed",
                "the asker's permission could not be checked",
            )
            .await
            {
                tracing::error!(error = %e, "could not record the dropped request");
            }
            return;
        }
    }
    run_tries(ctx, job, attempt.preview.id).await;
}

/// Waits briefly for the attempt row (the app enqueues just before it commits); database errors
/// are tried again a few times.
async fn find_attempt(ctx: &JobContext, attempt_id: i64) -> Result<Option<AttemptContext>, DbErr> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut failures = 0;
    loop {
        match records::attempt_context(&ctx.db, attempt_id).await {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) if Instant::now() >= deadline => return Ok(None),
            Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => {
                failures += 1;
                if failures >= MAX_TRIES {
                    return Err(e);
                }
                tokio::time::sleep(ctx.retry_backoff * 2u32.pow(failures - 1)).await;
            }
        }
    }
}

async fn run_tries(ctx: &JobContext, job: &DeployJob, preview_id: i64) {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let stop = match try_once(ctx, job, preview_id, started).await {
            Ok(()) => return,
            Err(stop) => stop,
        };
        match stop {
            Stop::Infra(message) if tries < MAX_TRIES => {
                let pause = ctx.retry_backoff * 2u32.pow(tries - 1);
                tracing::warn!(tries, error = %message, "infrastructure error; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
            }
            Stop::Infra(message) => {
                let failure = Failure::new(
                    FailureKind::Infrastructure,
                    format!("Gave up after {MAX_TRIES} tries: {message}"),
                );
                outcome::failed(ctx, job.attempt_id, failure).await;
                return;
            }
            Stop::User(failure) => {
                outcome::failed(ctx, job.attempt_id, failure).await;
                return;
            }
            Stop::Superseded(newer) => {
                outcome::superseded(ctx, job.attempt_id, &newer).await;
                return;
            }
            Stop::Cancelled(why) => {
                outcome::cancelled(ctx, job.attempt_id, &why).await;
                return;
            }
            Stop::NeedsApproval | Stop::NotNeeded => return,
        }
    }
}

/// One try: the preview's lock, then every phase within the deploy timeout.
async fn try_once(
    ctx: &JobContext,
    job: &DeployJob,
    preview_id: i64,
    started: Instant,
) -> Result<(), Stop> {
    let lock = PreviewLock::acquire(&ctx.redis, &ctx.prefix, preview_id, ctx.lock_wait()).await?;
    let budget = ctx.config.deploy_timeout;
    let deadline = Instant::now() + budget;
    let result = tokio::time::timeout(budget, Box::pin(phases(ctx, job, started, deadline))).await;
    lock.release().await;
    match result {
        Ok(result) => result,
        Err(_) => Err(Stop::User(Failure::new(
            FailureKind::DeployTimeout,
            format!(
                "The deploy did not finish within the deploy timeout of {} s (DEPLOY_TIMEOUT).",
                budget.as_secs()
            ),
        ))),
    }
}

/// Reloads the attempt and stops if it is no longer wanted.
pub(crate) async fn current(ctx: &JobContext, attempt_id: i64) -> Result<AttemptContext, Stop> {
    match lifecycle::wanted(&ctx.db, attempt_id).await? {
        Wanted::Yes(actx) => Ok(*actx),
        Wanted::Superseded { newer_sha } => Err(Stop::Superseded(newer_sha)),
        Wanted::Cancelled(why) => Err(Stop::Cancelled(why)),
    }
}

/// The preview and attempt as the cluster module labels them.
fn meta_of(ctx: &JobContext, actx: &AttemptContext) -> PreviewMeta {
    PreviewMeta {
        namespace: actx.preview.namespace.clone(),
        repo_full_name: actx.repository.full_name.clone(),
        pr_number: u64::try_from(actx.pull_request.number).unwrap_or_default(),
        preview_id: actx.preview.id,
        sha: actx.attempt.sha.clone(),
        install_id: ctx.install_id.clone(),
        attempt_id: actx.attempt.id,
    }
}

async fn phases(
    ctx: &JobContext,
    job: &DeployJob,
    started: Instant,
    try_deadline: Instant,
) -> Result<(), Stop> {
    let actx = current(ctx, job.attempt_id).await?;
    lifecycle::start(&ctx.db, &actx.attempt).await?;
    let try_started = chrono::Utc::now();
    let repo = RepoName::parse(&actx.repository.full_name)
        .ok_or_else(|| Stop::User(Failure::new(FailureKind::Config, "invalid repository name")))?;
    // The check run stays "queued" (the app's) through the quick reads of trust and config;
    // it says "in progress" once something slow runs: a build, or a rollout past
    // [`PROGRESS_AFTER`].
    let trusted_author = trust::check(ctx, &actx, &repo).await?;
    let actx = current(ctx, job.attempt_id).await?;
    let config = config::load(ctx, &actx, &repo, trusted_author).await?;

    let deployment = match actx.attempt.github_deployment_id {
        Some(id) => id,
        None => ctx.reporter.start_deployment(&actx).await?,
    };

    let meta = meta_of(ctx, &actx);
    let rails = GuardRails {
        cpu: config.cpu.text.clone(),
        memory: config.memory.text.clone(),
        ingress_namespace: ctx.config.ingress_namespace.clone(),
        ..GuardRails::default()
    };
    ctx.cluster.prepare_namespace(&meta, &rails).await?;

    // Waits end a little before the try's timeout, so that what was still missing is reported
    // (the readiness diagnosis) rather than only that time ran out.
    let margin = (ctx.config.deploy_timeout / 10).min(Duration::from_secs(5));
    let deadline = try_deadline - margin;
    let image = Box::pin(build::image(ctx, job.attempt_id, &config, &meta, deadline)).await?;
    lifecycle::record_image(&ctx.db, actx.attempt.id, &image).await?;

    let actx = current(ctx, job.attempt_id).await?;
    lifecycle::enter_phase(&ctx.db, &actx.attempt, PreviewStatus::Deploying).await?;
    let host = format!("{}.{}", meta.namespace, ctx.config.preview_domain);
    let url = format!("https://{host}");
    let rollout = async {
        workload::apply(ctx, &actx, &repo, &config, &meta, &image, trusted_author).await?;
        readiness::wait(
            ctx,
            job.attempt_id,
            &config,
            &meta,
            try_started,
            &url,
            deadline,
        )
        .await
    };
    Box::pin(with_progress(
        ctx,
        &actx,
        "Waiting for the preview to be ready",
        rollout,
    ))
    .await?;

    // Ready: the database first, then GitHub.
    let actx = current(ctx, job.attempt_id).await?;
    let ttl = config.ttl.unwrap_or(ctx.config.ttl);
    outcome::succeeded(
        ctx,
        &actx,
        deployment,
        &Success {
            url,
            sha: actx.attempt.sha.clone(),
            image,
            duration: started.elapsed(),
            cpu: config.cpu.text.clone(),
            memory: config.memory.text.clone(),
            namespace: meta.namespace.clone(),
        },
        ttl,
    )
    .await
}

/// How long a rollout runs before the check run says "in progress": a fast one goes from
/// queued to its outcome in two writes, a slow one shows what it waits for.
const PROGRESS_AFTER: Duration = Duration::from_secs(5);

/// Runs `work`; once it has taken [`PROGRESS_AFTER`], the check run says "in progress" with
/// `doing`. A report that has begun is finished before this returns, so it never lands on
/// GitHub after the outcome's.
async fn with_progress<T>(
    ctx: &JobContext,
    actx: &AttemptContext,
    doing: &str,
    work: impl Future<Output = T>,
) -> T {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let work = async move {
        let result = work.await;
        drop(done);
        result
    };
    let progress = async move {
        tokio::select! {
            () = tokio::time::sleep(PROGRESS_AFTER) => {}
            _ = finished => return,
        }
        let text = report::in_progress(&actx.attempt.sha, doing);
        if let Err(e) = ctx
            .reporter
            .check_run(actx, CheckStatus::InProgress, text)
            .await
        {
            tracing::warn!(error = %e, "could not show the deploy in progress");
        }
    };
    tokio::join!(work, progress).0
}

/// Runs `wait` (a long wait on the cluster) while the attempt is still wanted: a newer attempt
/// or a cleanup stops it within [`RECHECK`] instead of at the end of the wait.
pub(crate) async fn while_current<T>(
    ctx: &JobContext,
    attempt_id: i64,
    wait: impl Future<Output = T>,
) -> Result<T, Stop> {
    let unwanted = async {
        loop {
            tokio::time::sleep(RECHECK).await;
            if let Err(stop @ (Stop::Superseded(_) | Stop::Cancelled(_))) =
                current(ctx, attempt_id).await
            {
                return stop;
            }
        }
    };
    tokio::select! {
        result = wait => Ok(result),
        stop = unwanted => Err(stop),
    }
}

/// How often a long wait checks that its attempt is still wanted.
const RECHECK: Duration = Duration::from_millis(500);

/// Shows on GitHub that an attempt's job died without an outcome (the reconciler's heal has
/// recorded it): the check run times out, the comment says so while the attempt is current.
pub async fn report_abandoned(
    ctx: &JobContext,
    actx: &AttemptContext,
    failure: &Failure,
    current: bool,
) {
    outcome::report_failure(ctx, actx, failure, AttemptStatus::TimedOut, current).await;
}

/// The failure a diagnosis of the cluster stands for.
pub(crate) fn failure_of(d: previewd::cluster::observe::Diagnosis) -> Failure {
    use previewd::cluster::observe::Problem;
    let kind = match d.problem {
        Problem::BuildFailed => FailureKind::BuildFailed,
        Problem::ImagePull => FailureKind::ImagePull,
        Problem::CrashLoop => FailureKind::CrashLoop,
        Problem::OomKilled => FailureKind::OomKilled,
        Problem::QuotaExceeded => FailureKind::QuotaExceeded,
        Problem::Unschedulable => FailureKind::Unschedulable,
        Problem::NotReady => FailureKind::ReadinessTimeout,
    };
    let failure = Failure::new(kind, &d.message).with_events(d.events);
    match d.logs {
        Some(logs) => failure.with_logs(logs),
        None => failure,
    }
}
