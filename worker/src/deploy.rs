//! The deploy job: one attempt to bring one commit of a preview up, reported as it goes.
//!
//! A run takes the preview's lock (one job per preview at a time), then tries the attempt up to
//! [`MAX_TRIES`] times. Each try is bounded by the deploy timeout and walks the steps: check run
//! in progress → trust → `.github/preview.yml` → GitHub deployment → namespace and guard rails →
//! image (build or ready-made) → workload → ready. Between steps it checks that the commit is
//! still the preview's head ("newest commit wins") and that no cleanup has started.
//!
//! How a try ends decides what happens next ([`Stop`]):
//! - a **user error** (bad config, failed build, crash loop, …) is reported at once and never
//!   retried: trying again gives the same answer;
//! - an **infrastructure error** (GitHub 5xx, Kubernetes unavailable, database) is retried with
//!   backoff; after the last try it is reported as such;
//! - **superseded** or **cancelled** attempts end quietly with a check run that says why.
//!
//! Every step is idempotent (server-side apply, stored ids), so a run interrupted by a crash is
//! simply run again by the next worker.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use previewd::{
    cluster::{
        self, BuildSpec, ClusterError, PreviewMeta, WebService,
        observe::{Diagnosis, Outcome, Problem},
    },
    github::{
        GitHubError, RepoName,
        api::{CheckStatus, Conclusion, DeploymentState},
    },
    jobs::DeployJob,
    previews::{
        records::{self, AttemptContext},
        repo_config::{self, ImageSource, RepoConfig},
        report::{self, CommentState, Failure, FailureKind, Success},
    },
    reporter::ReportError,
};
use previewd_entity::{AttemptStatus, PreviewStatus, deploy_attempt, preview};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter,
};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::{context::JobContext, lock::PreviewLock};

/// Tries of one attempt before an infrastructure error is reported as the outcome.
pub const MAX_TRIES: u32 = 3;

/// Why a try stopped before success.
#[derive(Debug)]
pub enum Stop {
    /// The author must change something; not retried.
    User(Failure),
    /// Trying again later may help.
    Infra(String),
    /// A newer commit is the head now.
    Superseded(String),
    /// Cleanup started (closed, destroyed): the deploy gives way.
    Cancelled(String),
    /// Untrusted and not approved: reported, waiting for a human.
    NeedsApproval,
    /// Asked for by someone without write permission: explained, nothing done.
    Refused,
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
        if e.is_retryable() {
            Self::Infra(e.to_string())
        } else {
            Self::User(Failure::new(
                FailureKind::Infrastructure,
                format!("the cluster refused the preview: {e}"),
            ))
        }
    }
}

/// The apalis handler of the deploy queue.
pub async fn deploy_job(job: DeployJob, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<JobContext> = (*ctx).clone();
    let Some(attempt) = wait_for_attempt(&ctx, job.attempt_id).await? else {
        tracing::warn!(
            attempt = job.attempt_id,
            "deploy job for an unknown attempt; dropped"
        );
        return Ok(());
    };
    if is_final(attempt.attempt.status) {
        tracing::info!(attempt = job.attempt_id, status = ?attempt.attempt.status, "attempt already finished; nothing to do");
        return Ok(());
    }
    let span = tracing::info_span!(
        "deploy",
        attempt = job.attempt_id,
        preview = attempt.preview.id,
        repo = %attempt.repository.full_name,
        pr = attempt.pull_request.number,
        sha = %report::short_sha(&attempt.attempt.sha),
    );
    async {
        let lock = PreviewLock::acquire(
            &ctx.redis,
            &ctx.prefix,
            attempt.preview.id,
            ctx.config.deploy_timeout,
        )
        .await?;
        let result = run_attempt(&ctx, &job).await;
        lock.release().await;
        result
    }
    .instrument(span)
    .await
}

/// Waits briefly for the attempt row: the app enqueues just before it commits.
async fn wait_for_attempt(
    ctx: &JobContext,
    attempt_id: i64,
) -> Result<Option<AttemptContext>, DbErr> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(found) = records::attempt_context(&ctx.db, attempt_id).await? {
            return Ok(Some(found));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_final(status: AttemptStatus) -> bool {
    !matches!(status, AttemptStatus::Queued | AttemptStatus::Running)
}

async fn run_attempt(ctx: &JobContext, job: &DeployJob) -> Result<(), BoxDynError> {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let outcome = tokio::time::timeout(
            ctx.config.deploy_timeout,
            Box::pin(try_deploy(ctx, job, started)),
        )
        .await;
        let stop = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(stop)) => stop,
            Err(_) => Stop::User(Failure::new(
                FailureKind::DeployTimeout,
                format!(
                    "The deploy did not finish within the deploy timeout of {} s (DEPLOY_TIMEOUT).",
                    ctx.config.deploy_timeout.as_secs()
                ),
            )),
        };
        match stop {
            Stop::Infra(message) if tries < MAX_TRIES => {
                let pause = ctx.retry_backoff * 2u32.pow(tries - 1);
                tracing::warn!(attempt = job.attempt_id, tries, error = %message, "infrastructure error; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
            }
            Stop::Infra(message) => {
                let failure = Failure::new(
                    FailureKind::Infrastructure,
                    format!("Gave up after {MAX_TRIES} tries: {message}"),
                );
                finish_failed(ctx, job.attempt_id, failure, AttemptStatus::Failed).await;
                return Ok(());
            }
            Stop::User(failure) => {
                let status = if failure.kind == FailureKind::DeployTimeout {
                    AttemptStatus::TimedOut
                } else {
                    AttemptStatus::Failed
                };
                finish_failed(ctx, job.attempt_id, failure, status).await;
                return Ok(());
            }
            Stop::Superseded(newer) => {
                finish_superseded(ctx, job.attempt_id, &newer).await;
                return Ok(());
            }
            Stop::Cancelled(why) => {
                finish_cancelled(ctx, job.attempt_id, &why).await;
                return Ok(());
            }
            Stop::NeedsApproval | Stop::Refused => return Ok(()),
        }
    }
}

/// Reloads the attempt and stops if it is no longer wanted.
async fn current(ctx: &JobContext, attempt_id: i64) -> Result<AttemptContext, Stop> {
    let Some(actx) = records::attempt_context(&ctx.db, attempt_id).await? else {
        return Err(Stop::Cancelled("the preview no longer exists".into()));
    };
    if matches!(
        actx.preview.status,
        PreviewStatus::Deleting | PreviewStatus::Deleted
    ) {
        return Err(Stop::Cancelled("the preview is being removed".into()));
    }
    if actx.preview.head_sha != actx.attempt.sha {
        return Err(Stop::Superseded(actx.preview.head_sha.clone()));
    }
    Ok(actx)
}

async fn set_status(
    ctx: &JobContext,
    actx: &AttemptContext,
    status: PreviewStatus,
) -> Result<(), DbErr> {
    preview::Entity::update_many()
        .col_expr(
            preview::Column::Status,
            sea_orm::sea_query::Expr::value(status),
        )
        .col_expr(
            preview::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(preview::Column::Id.eq(actx.preview.id))
        .exec(&ctx.db)
        .await
        .map(drop)
}

async fn try_deploy(ctx: &JobContext, job: &DeployJob, started: Instant) -> Result<(), Stop> {
    let actx = current(ctx, job.attempt_id).await?;
    if let Some(who) = &job.requested_by {
        refuse_unless_writer(ctx, &actx, who).await?;
    }
    mark_running(ctx, &actx.attempt).await?;
    set_status(ctx, &actx, PreviewStatus::Building).await?;
    let repo = RepoName::parse(&actx.repository.full_name)
        .ok_or_else(|| Stop::User(Failure::new(FailureKind::Config, "invalid repository name")))?;
    let installation = actx.repository.installation_id;
    ctx.reporter
        .check_run(
            &actx,
            CheckStatus::InProgress,
            report::in_progress(&actx.attempt.sha, "Checking who may deploy this commit"),
        )
        .await?;

    // Trust (DESIGN.md §8).
    let trusted_author = trust(ctx, &actx, &repo, job).await?;
    let actx = current(ctx, job.attempt_id).await?;

    // `.github/preview.yml`: the head for trusted authors, the base branch otherwise.
    let config_ref = if trusted_author {
        actx.attempt.sha.clone()
    } else {
        actx.pull_request.base_ref.clone()
    };
    let config = match ctx
        .github
        .file(installation, &repo, repo_config::PATH, &config_ref)
        .await?
    {
        None => RepoConfig::defaults(&ctx.config.limits),
        Some(text) => repo_config::parse(&text, &ctx.config.limits)
            .map_err(|e| Stop::User(Failure::new(FailureKind::Config, e.to_string())))?,
    };
    if !config.paths.is_empty() {
        let number = u64::try_from(actx.pull_request.number).unwrap_or_default();
        let files = ctx
            .github
            .pull_request_files(installation, &repo, number)
            .await?;
        let touched = files
            .iter()
            .any(|f| config.paths.iter().any(|g| repo_config::glob_matches(g, f)));
        if !touched {
            return skip_untouched(ctx, &actx, &config).await;
        }
    }

    let deployment = match actx.attempt.github_deployment_id {
        Some(id) => id,
        None => ctx.reporter.start_deployment(&actx).await?,
    };

    // Namespace and guard rails, before anything runs in it.
    let number = u64::try_from(actx.pull_request.number).unwrap_or_default();
    let meta = PreviewMeta {
        namespace: actx.preview.namespace.clone(),
        repo_full_name: actx.repository.full_name.clone(),
        pr_number: number,
        preview_id: actx.preview.id,
        sha: actx.attempt.sha.clone(),
    };
    let rails = cluster::GuardRails {
        cpu: config.cpu.text.clone(),
        memory: config.memory.text.clone(),
        ingress_namespace: ctx.config.ingress_namespace.clone(),
        ..cluster::GuardRails::default()
    };
    let needs_build = matches!(config.source, ImageSource::Build { .. });
    let namespace = if needs_build {
        cluster::namespace_for_build(&meta)
    } else {
        cluster::namespace(&meta)
    };
    ctx.cluster.apply(&namespace).await?;
    ctx.cluster
        .apply(&cluster::resource_quota(&meta, &rails))
        .await?;
    ctx.cluster
        .apply(&cluster::limit_range(&meta, &rails))
        .await?;
    for policy in cluster::network_policies(&meta, &rails) {
        ctx.cluster.apply(&policy).await?;
    }

    // The image.
    // Waits end a little before the whole deploy's timeout, so that what was still missing is
    // reported (the readiness diagnosis) rather than only that time ran out.
    let margin = (ctx.config.deploy_timeout / 10).min(Duration::from_secs(5));
    let deadline = started + ctx.config.deploy_timeout - margin;
    let image = match &config.source {
        ImageSource::Image(_) => config
            .source
            .ready_image(&actx.attempt.sha)
            .unwrap_or_default(),
        ImageSource::Build {
            dockerfile,
            context,
        } => {
            let actx = current(ctx, job.attempt_id).await?;
            ctx.reporter
                .check_run(
                    &actx,
                    CheckStatus::InProgress,
                    report::in_progress(&actx.attempt.sha, "Building the image"),
                )
                .await?;
            let Some(registry) = &ctx.config.registry else {
                return Err(Stop::User(Failure::new(
                    FailureKind::Config,
                    "This install has no image registry (PREVIEW_REGISTRY), so it cannot build images: \
                     set `image:` in .github/preview.yml to an image your CI builds.",
                )));
            };
            let image = format!(
                "{registry}/{}:{}",
                actx.repository.full_name.to_ascii_lowercase(),
                actx.attempt.sha
            );
            let token = ctx.github.installation_token(installation).await?;
            let spec = BuildSpec {
                clone_url: ctx.clone_url(&actx.repository.full_name),
                sha: actx.attempt.sha.clone(),
                dockerfile: dockerfile.as_str().to_owned(),
                context: context.as_str().to_owned(),
                image: image.clone(),
                builder_image: ctx.config.builder_image.clone(),
                registry_insecure: ctx.config.registry_insecure,
            };
            ctx.cluster
                .apply(&cluster::build_secret(&meta, &token))
                .await?;
            let job_object = cluster::build_job(&meta, &spec);
            let job_name = job_object.metadata.name.clone().unwrap_or_default();
            ctx.cluster.apply(&job_object).await?;
            match while_current(
                ctx,
                job.attempt_id,
                ctx.cluster.wait_job(&meta.namespace, &job_name, deadline),
            )
            .await??
            {
                Outcome::Ready => {}
                Outcome::Failed(d) | Outcome::TimedOut(d) => return Err(Stop::User(failure_of(d))),
            }
            // Back to the restricted Pod Security level for the workload.
            ctx.cluster.apply(&cluster::namespace(&meta)).await?;
            image
        }
    };
    record_image(ctx, &actx.attempt, &image).await?;

    // The workload.
    let actx = current(ctx, job.attempt_id).await?;
    set_status(ctx, &actx, PreviewStatus::Deploying).await?;
    if needs_build {
        // After a long build, say what happens now; a ready image goes straight on (a call less).

        ctx.reporter
            .check_run(
                &actx,
                CheckStatus::InProgress,
                report::in_progress(&actx.attempt.sha, "Starting the preview"),
            )
            .await?;
    }
    let host = format!("{}.{}", meta.namespace, ctx.config.preview_domain);
    let url = format!("https://{host}");
    match &config.chart {
        Some(chart) => {
            deploy_chart(
                ctx,
                &actx,
                &repo,
                &config,
                chart.as_str(),
                &meta,
                &image,
                &url,
                trusted_author,
            )
            .await?
        }
        None => {
            let web = WebService {
                image: image.clone(),
                port: config.port,
                health_path: config.health.clone(),
                env: config.env.clone(),
                cpu: config.cpu.text.clone(),
                memory: config.memory.text.clone(),
                host: host.clone(),
                ingress_class: ctx.config.ingress_class.clone(),
                tls_secret: ctx.config.tls_secret.clone(),
            };
            ctx.cluster.apply(&cluster::deployment(&meta, &web)).await?;
            ctx.cluster.apply(&cluster::service(&meta, &web)).await?;
            ctx.cluster.apply(&cluster::ingress(&meta, &web)).await?;
        }
    }
    match while_current(
        ctx,
        job.attempt_id,
        ctx.cluster.wait_workloads(&meta.namespace, deadline),
    )
    .await??
    {
        Outcome::Ready => {}
        Outcome::Failed(d) => return Err(Stop::User(failure_of(d))),
        Outcome::TimedOut(mut d) => {
            d.message = format!(
                "{} within the deploy timeout of {} s (DEPLOY_TIMEOUT)",
                d.message,
                ctx.config.deploy_timeout.as_secs()
            );
            return Err(Stop::User(failure_of(d)));
        }
    }
    if ctx.config.probe_urls {
        probe(ctx, &url, &config.health, deadline).await?;
    }

    // Ready: the database first, then GitHub.
    let actx = current(ctx, job.attempt_id).await?;
    let ttl = config.ttl.unwrap_or(ctx.config.ttl);
    finish_success(
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

/// A Redeploy asked for by `who`: only people with write permission may; others get an
/// explanation on the check run they pressed, and nothing happens.
async fn refuse_unless_writer(
    ctx: &JobContext,
    actx: &AttemptContext,
    who: &str,
) -> Result<(), Stop> {
    // The explanation goes on the check run that was pressed: the preview's latest.
    if crate::permission::writer_or_explain(
        ctx,
        &actx.repository,
        actx.preview.check_run_id,
        who,
        "redeploy",
    )
    .await?
    {
        return Ok(());
    }
    finish_attempt(
        ctx,
        actx.attempt.id,
        AttemptStatus::Cancelled,
        Some("not_permitted"),
        Some("requester lacks write permission"),
        None,
    )
    .await?;
    Err(Stop::Refused)
}

/// Runs `wait` (a long wait on the cluster) while the attempt is still wanted: a newer commit or
/// a cleanup stops it within [`RECHECK`] instead of at the end of the wait.
async fn while_current<T>(
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

/// Decides whether the commit may be deployed; `Ok(true)` when the author is trusted,
/// `Ok(false)` when an approval covers it, `Err(NeedsApproval)` after reporting otherwise.
async fn trust(
    ctx: &JobContext,
    actx: &AttemptContext,
    repo: &RepoName,
    job: &DeployJob,
) -> Result<bool, Stop> {
    let installation = actx.repository.installation_id;
    let why = if actx.pull_request.from_fork {
        Some("comes from a fork")
    } else if ctx
        .github
        .permission(installation, repo, &actx.pull_request.author_login)
        .await?
        .can_write()
    {
        None
    } else {
        Some("was opened by someone without write permission")
    };
    let Some(why) = why else {
        return Ok(true);
    };
    if actx.preview.approved_sha.as_deref() == Some(actx.attempt.sha.as_str()) {
        return Ok(false);
    }
    let mut rejected = None;
    if let Some(approver) = &job.approved_by {
        if ctx
            .github
            .permission(installation, repo, approver)
            .await?
            .can_write()
        {
            let mut row = actx.preview.clone().into_active_model();
            row.approved_sha = Set(Some(actx.attempt.sha.clone()));
            row.update(&ctx.db).await?;
            tracing::info!(approver = %approver, "commit approved");
            return Ok(false);
        }
        rejected = Some(approver.as_str());
    }
    // Waiting for a human: say so everywhere, and stop without retrying.
    set_status(ctx, actx, PreviewStatus::AwaitingApproval).await?;
    finish_attempt(
        ctx,
        actx.attempt.id,
        AttemptStatus::Cancelled,
        Some("approval_required"),
        Some("waiting for approval"),
        None,
    )
    .await?;
    ctx.reporter
        .check_run(
            actx,
            CheckStatus::Completed(Conclusion::ActionRequired),
            report::action_required(&actx.attempt.sha, why, rejected),
        )
        .await?;
    if let Err(e) = ctx
        .reporter
        .comment(actx, &CommentState::AwaitingApproval)
        .await
    {
        tracing::warn!(error = %e, "could not update the sticky comment");
    }
    Err(Stop::NeedsApproval)
}

/// The repository's `paths` do not match the change: no preview needed.
async fn skip_untouched(
    ctx: &JobContext,
    actx: &AttemptContext,
    config: &RepoConfig,
) -> Result<(), Stop> {
    finish_attempt(
        ctx,
        actx.attempt.id,
        AttemptStatus::Cancelled,
        Some("paths"),
        Some("no changes under paths"),
        None,
    )
    .await?;
    set_status(ctx, actx, PreviewStatus::Pending).await?;
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
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the values are all distinct facts of the deploy"
)]
async fn deploy_chart(
    ctx: &JobContext,
    actx: &AttemptContext,
    repo: &RepoName,
    config: &RepoConfig,
    chart: &str,
    meta: &PreviewMeta,
    image: &str,
    url: &str,
    trusted_author: bool,
) -> Result<(), Stop> {
    // Charts come from the same ref as the config: the base branch for untrusted authors.
    let git_ref = if trusted_author {
        actx.attempt.sha.as_str()
    } else {
        actx.pull_request.base_ref.as_str()
    };
    let dir = tempdir(&format!("chart-{}", actx.attempt.id))?;
    let installation = actx.repository.installation_id;
    let mut pending = vec![chart.to_owned()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        let Some(entries) = ctx
            .github
            .directory(installation, repo, &path, git_ref)
            .await?
        else {
            return Err(Stop::User(Failure::new(
                FailureKind::Config,
                format!("chart directory {path} does not exist at {git_ref}"),
            )));
        };
        for (entry, is_dir) in entries {
            if is_dir {
                pending.push(entry);
                continue;
            }
            files += 1;
            if files > 200 {
                return Err(Stop::User(Failure::new(
                    FailureKind::Config,
                    "the chart has more than 200 files",
                )));
            }
            let text = ctx
                .github
                .file(installation, repo, &entry, git_ref)
                .await?
                .unwrap_or_default();
            let relative = entry
                .strip_prefix(chart)
                .unwrap_or(&entry)
                .trim_start_matches('/');
            let target = dir.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Stop::Infra(format!("chart files: {e}")))?;
            }
            std::fs::write(&target, text).map_err(|e| Stop::Infra(format!("chart files: {e}")))?;
        }
    }
    let (repository, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let values = serde_json::json!({
        "image": { "repository": repository, "tag": tag },
        "previewd": { "url": url, "host": url.trim_start_matches("https://"), "namespace": meta.namespace, "sha": actx.attempt.sha },
        "env": config.env,
    });
    let rendered = cluster::render_chart(
        &ctx.config.helm_bin,
        &dir,
        "preview",
        &meta.namespace,
        &values,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut objects = rendered.map_err(|e| {
        Stop::User(Failure::new(
            FailureKind::Config,
            format!("the chart {chart} does not render: {e}"),
        ))
    })?;
    cluster::label_objects(&mut objects, meta);
    for object in &objects {
        ctx.cluster.apply_json(object).await?;
    }
    Ok(())
}

fn tempdir(name: &str) -> Result<std::path::PathBuf, Stop> {
    let dir = std::env::temp_dir()
        .join("previewd")
        .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| Stop::Infra(format!("temporary directory: {e}")))?;
    Ok(dir)
}

/// Probes the public URL's health path until it answers 2xx or the deadline passes.
async fn probe(ctx: &JobContext, url: &str, health: &str, deadline: Instant) -> Result<(), Stop> {
    let target = format!("{url}{health}");
    let mut last = String::new();
    while Instant::now() < deadline {
        match ctx.http.get(&target).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => {
                last = (if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                })
                .to_owned()
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Stop::User(Failure::new(
        FailureKind::ReadinessTimeout,
        format!("{target} did not answer 2xx in time (last: {last})"),
    )))
}

fn failure_of(d: Diagnosis) -> Failure {
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

async fn mark_running(ctx: &JobContext, attempt: &deploy_attempt::Model) -> Result<(), DbErr> {
    if attempt.status == AttemptStatus::Running {
        return Ok(());
    }
    let mut row = attempt.clone().into_active_model();
    row.status = Set(AttemptStatus::Running);
    row.started_at = Set(Some(Utc::now()));
    row.update(&ctx.db).await.map(drop)
}

async fn record_image(
    ctx: &JobContext,
    attempt: &deploy_attempt::Model,
    image: &str,
) -> Result<(), DbErr> {
    deploy_attempt::Entity::update_many()
        .col_expr(
            deploy_attempt::Column::Image,
            sea_orm::sea_query::Expr::value(image.to_owned()),
        )
        .filter(deploy_attempt::Column::Id.eq(attempt.id))
        .exec(&ctx.db)
        .await
        .map(drop)
}

async fn finish_attempt(
    ctx: &JobContext,
    attempt_id: i64,
    status: AttemptStatus,
    error_kind: Option<&str>,
    error: Option<&str>,
    log_tail: Option<&str>,
) -> Result<(), DbErr> {
    let Some(row) = deploy_attempt::Entity::find_by_id(attempt_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(());
    };
    let mut row = row.into_active_model();
    row.status = Set(status);
    row.error_kind = Set(error_kind.map(str::to_owned));
    row.error = Set(error.map(str::to_owned));
    row.log_tail = Set(log_tail.map(str::to_owned));
    row.finished_at = Set(Some(Utc::now()));
    row.update(&ctx.db).await.map(drop)
}

/// Logs a reporting failure: GitHub is a view, the database already tells the story.
fn report_failed<T>(what: &str, result: Result<T, ReportError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not report {what} to GitHub");
    }
}

async fn finish_success(
    ctx: &JobContext,
    actx: &AttemptContext,
    deployment: i64,
    success: &Success,
    ttl: Duration,
) -> Result<(), Stop> {
    finish_attempt(
        ctx,
        actx.attempt.id,
        AttemptStatus::Succeeded,
        None,
        None,
        None,
    )
    .await?;
    let expires =
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(3));
    let mut row = actx.preview.clone().into_active_model();
    row.status = Set(PreviewStatus::Running);
    row.url = Set(Some(success.url.clone()));
    row.last_error = Set(None);
    row.expires_at = Set(Some(expires));
    row.expiry_warned_at = Set(None);
    row.updated_at = Set(Utc::now());
    row.update(&ctx.db).await?;
    tracing::info!(url = %success.url, seconds = success.duration.as_secs_f64(), "preview ready");
    report_failed(
        "the check run",
        ctx.reporter
            .check_run(
                actx,
                CheckStatus::Completed(Conclusion::Success),
                report::success(success),
            )
            .await,
    );
    report_failed(
        "the deployment status",
        ctx.reporter
            .deployment_status(
                actx,
                deployment,
                DeploymentState::Success,
                Some(&success.url),
                "Preview ready",
            )
            .await,
    );
    report_failed(
        "the sticky comment",
        ctx.reporter
            .comment(
                actx,
                &CommentState::Ready {
                    url: success.url.clone(),
                },
            )
            .await,
    );
    Ok(())
}

async fn finish_failed(ctx: &JobContext, attempt_id: i64, failure: Failure, status: AttemptStatus) {
    tracing::warn!(attempt = attempt_id, kind = failure.kind.code(), message = %failure.message, "deploy failed");
    let result: Result<(), Stop> = async {
        let Some(actx) = records::attempt_context(&ctx.db, attempt_id).await? else {
            return Ok(());
        };
        finish_attempt(
            ctx,
            attempt_id,
            status,
            Some(failure.kind.code()),
            Some(&failure.message),
            failure.log_tail.as_deref(),
        )
        .await?;
        // A newer commit's deploy owns the preview's status now; only the head's failure shows.
        if actx.preview.head_sha == actx.attempt.sha
            && !matches!(
                actx.preview.status,
                PreviewStatus::Deleting | PreviewStatus::Deleted
            )
        {
            let mut row = actx.preview.clone().into_active_model();
            row.status = Set(PreviewStatus::Failed);
            row.last_error = Set(Some(format!(
                "{}: {}",
                failure.kind.title(),
                failure.message
            )));
            row.updated_at = Set(Utc::now());
            row.update(&ctx.db).await?;
        }
        let conclusion = if status == AttemptStatus::TimedOut {
            Conclusion::TimedOut
        } else {
            Conclusion::Failure
        };
        report_failed(
            "the check run",
            ctx.reporter
                .check_run(
                    &actx,
                    CheckStatus::Completed(conclusion),
                    report::failure(&failure, &actx.attempt.sha),
                )
                .await,
        );
        if let Some(deployment) = deployment_of(ctx, attempt_id).await? {
            let description = format!("Failed: {}", failure.kind.title());
            report_failed(
                "the deployment status",
                ctx.reporter
                    .deployment_status(
                        &actx,
                        deployment,
                        DeploymentState::Failure,
                        None,
                        &description,
                    )
                    .await,
            );
        }
        report_failed(
            "the sticky comment",
            ctx.reporter
                .comment(
                    &actx,
                    &CommentState::Failed {
                        failure: failure.clone(),
                    },
                )
                .await,
        );
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(attempt = attempt_id, error = ?e, "could not record the failed deploy");
    }
}

async fn deployment_of(ctx: &JobContext, attempt_id: i64) -> Result<Option<i64>, DbErr> {
    Ok(deploy_attempt::Entity::find_by_id(attempt_id)
        .one(&ctx.db)
        .await?
        .and_then(|a| a.github_deployment_id))
}

async fn finish_superseded(ctx: &JobContext, attempt_id: i64, newer: &str) {
    tracing::info!(attempt = attempt_id, newer = %report::short_sha(newer), "deploy superseded by a newer commit");
    let Ok(Some(actx)) = records::attempt_context(&ctx.db, attempt_id).await else {
        return;
    };
    let text = report::superseded(&actx.attempt.sha, newer);
    finish_stopped(
        ctx,
        &actx,
        AttemptStatus::Superseded,
        "superseded",
        text,
        "Superseded by a newer commit",
    )
    .await;
}

async fn finish_cancelled(ctx: &JobContext, attempt_id: i64, why: &str) {
    tracing::info!(attempt = attempt_id, why, "deploy cancelled");
    let Ok(Some(actx)) = records::attempt_context(&ctx.db, attempt_id).await else {
        return;
    };
    let text = report::CheckText {
        title: "Cancelled".into(),
        summary: format!("The deploy stopped: {why}."),
        text: None,
    };
    finish_stopped(ctx, &actx, AttemptStatus::Cancelled, why, text, "Cancelled").await;
}

/// Records an attempt that stopped without an outcome of its own (superseded, cancelled): its
/// check run completes as cancelled with `text`, its deployment (if any) becomes inactive.
async fn finish_stopped(
    ctx: &JobContext,
    actx: &AttemptContext,
    status: AttemptStatus,
    reason: &str,
    text: report::CheckText,
    deployment_note: &str,
) {
    let attempt_id = actx.attempt.id;
    let result: Result<(), Stop> = async {
        finish_attempt(ctx, attempt_id, status, None, Some(reason), None).await?;
        report_failed(
            "the check run",
            ctx.reporter
                .check_run(actx, CheckStatus::Completed(Conclusion::Cancelled), text)
                .await,
        );
        if let Some(deployment) = deployment_of(ctx, attempt_id).await? {
            report_failed(
                "the deployment status",
                ctx.reporter
                    .deployment_status(
                        actx,
                        deployment,
                        DeploymentState::Inactive,
                        None,
                        deployment_note,
                    )
                    .await,
            );
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(attempt = attempt_id, error = ?e, "could not record the stopped deploy");
    }
}
