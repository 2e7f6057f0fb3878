//! Healing what webhooks missed (DESIGN.md §5, "Missed deliveries").
//!
//! Three periodic tasks run in every worker process; a Redis lock per period makes one worker of
//! the install do each round:
//!
//! - the **reconciler** (`RECONCILE_INTERVAL`) compares every installation's open pull requests
//!   with the database and replays what the webhooks missed — opened, pushed, reopened, ready
//!   for review, closed — as the same events through the same decisions as the intake
//!   (`intake::decide`): it never has rules of its own, so a preview someone destroyed stays
//!   destroyed. It then heals the work itself: a queued attempt whose job Redis lost is enqueued
//!   again, a running attempt whose job died without an outcome is closed and reported, a
//!   removal whose cleanup stopped is retried. Last, this install's namespaces: those of no live
//!   preview (or of a finished build) are deleted once older than `ORPHAN_GRACE`, those of a
//!   renamed repository relabelled. One repository's error is logged and the round goes on;
//! - **expiry** (`EXPIRY_INTERVAL`) warns of, then removes, previews idle past their TTL;
//! - the **redelivery sweeper** (`REDELIVERY_INTERVAL`) reads the App's delivery log since its
//!   last round and asks GitHub to redeliver, once, each delivery a redelivery can fix (previewd
//!   answered 5xx, or nothing answered) whose GUID neither succeeded nor was refused.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::Utc;
use previewd::{
    cluster::{PreviewMeta, label_value},
    github::{
        RepoName,
        webhook::{Event, PullRequest, PullRequestAction, Repo},
    },
    jobs::{CleanupJob, DeployJob, JobState, Queues},
    previews::{
        intake::{self, Origin},
        lifecycle::{self, Removal},
        records,
        report::{Failure, FailureKind},
    },
};
use previewd_entity::{
    AttemptStatus, PreviewStatus, PullRequestState, preview, pull_request, repository,
};

use crate::{context::JobContext, lock};

/// Starts the periodic tasks the configuration enables; the caller aborts them at shutdown (a
/// round cut short rolls back its transaction, and the next round does it again).
pub fn spawn(ctx: Arc<JobContext>, queues: Queues) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(every) = ctx.config.reconcile_interval {
        let (ctx, queues) = (ctx.clone(), queues.clone());
        tasks.push(tokio::spawn(async move {
            run_every(&ctx, "reconcile", every, || async {
                match reconcile(&ctx, &queues).await {
                    Ok(summary) if summary == Summary::default() => {
                        tracing::debug!("reconciled; nothing to heal")
                    }
                    Ok(summary) => tracing::info!(%summary, "reconciled"),
                    Err(e) => {
                        tracing::warn!(error = %e, "reconcile round failed; the next one retries")
                    }
                }
            })
            .await;
        }));
    }
    if let Some(every) = ctx.config.expiry_interval {
        let (ctx, queues) = (ctx.clone(), queues.clone());
        tasks.push(tokio::spawn(async move {
            run_every(&ctx, "expiry", every, || async {
                if let Err(e) = expire(&ctx, &queues).await {
                    tracing::warn!(error = %e, "expiry round failed; the next one retries");
                }
            })
            .await;
        }));
    }
    if let Some(every) = ctx.config.redelivery_interval {
        tasks.push(tokio::spawn(async move {
            run_every(&ctx, "redelivery", every, || async {
                match redeliver_failed(&ctx).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "asked GitHub to redeliver failed webhooks"),
                    Err(e) => {
                        tracing::warn!(error = %e, "redelivery sweep failed; the next one retries")
                    }
                }
            })
            .await;
        }));
    }
    tasks
}

/// Runs `round` every `every`, in one worker of the install at a time.
async fn run_every<F, Fut>(ctx: &JobContext, name: &str, every: Duration, round: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let key = format!("{}:lock:periodic:{name}", ctx.prefix);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut conn = ctx.redis.clone();
        // Held for most of a period and never released: the other workers skip this round.
        let lease = (every.as_millis() as u64 * 9 / 10).max(1);
        let mine: Result<Option<String>, _> = redis::cmd("SET")
            .arg(&key)
            .arg(&ctx.config.name)
            .arg("NX")
            .arg("PX")
            .arg(lease)
            .query_async(&mut conn)
            .await;
        if matches!(mine, Ok(Some(_))) {
            round().await;
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What one reconcile round did, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Missed events replayed (opened, pushed, reopened, closed, ready for review).
    pub replayed: usize,
    /// Deploy jobs enqueued again (lost from Redis) and attempts abandoned by a dead job.
    pub requeued: usize,
    pub abandoned: usize,
    /// Cleanups enqueued again for removals that stopped.
    pub removals_retried: usize,
    /// Namespaces of this install with no live preview (or build), deleted.
    pub orphans: usize,
    /// Namespaces relabelled after a repository rename.
    pub relabelled: usize,
    /// Repositories whose round failed (reported in the log; the round went on).
    pub failed_repositories: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} missed events replayed, {} deploys re-enqueued, {} abandoned attempts closed, \
             {} removals retried, {} orphan namespaces deleted, {} namespaces relabelled, \
             {} repositories failed",
            self.replayed,
            self.requeued,
            self.abandoned,
            self.removals_retried,
            self.orphans,
            self.relabelled,
            self.failed_repositories
        )
    }
}

/// One reconcile round: GitHub's view replayed as the events previewd missed, then the jobs
/// and namespaces healed.
pub async fn reconcile(ctx: &JobContext, queues: &Queues) -> Result<Summary, Error> {
    let mut summary = Summary::default();
    // GitHub is the authority on installations and their repositories: learn any the webhooks
    // did not tell (an `installation` delivery lost, or previewd installed before this database).
    // Only repositories GitHub lists now are reconciled: a row of a repository deleted on
    // GitHub (its name maybe taken by a new one) must not be compared with the new one's pulls.
    let mut listed: HashSet<i64> = HashSet::new();
    for (id, account, kind, suspended) in ctx.github.installations().await? {
        if suspended {
            continue;
        }
        records::upsert_installation(&ctx.db, id, &account, &kind).await?;
        match ctx.github.installation_repositories(id).await {
            Ok(repos) => {
                for repo in repos {
                    listed.insert(repo.id);
                    // A repository created again under a known name replaces the old one,
                    // whose previews go.
                    lifecycle::in_transaction(&ctx.db, queues, async |txn| {
                        let replaced = records::upsert_repository(txn, id, &repo).await?;
                        let work =
                            intake::remove_all(txn, &replaced, &Removal::RepositoryRemoved).await?;
                        Ok(((), work))
                    })
                    .await?;
                }
            }
            Err(e) => {
                tracing::warn!(installation = id, error = %e, "could not list the installation's repositories; the round goes on");
            }
        }
    }
    for inst in records::active_installations(&ctx.db).await? {
        for repo in records::active_repositories_of(&ctx.db, inst.id).await? {
            if !listed.contains(&repo.id) {
                continue;
            }
            match reconcile_repository(ctx, queues, &repo).await {
                Ok(replayed) => summary.replayed += replayed,
                Err(e) => {
                    summary.failed_repositories += 1;
                    tracing::warn!(repo = %repo.full_name, error = %e, "reconciling the repository failed; the round goes on");
                }
            }
        }
    }
    heal_jobs(ctx, queues, &mut summary).await?;
    sweep_namespaces(ctx, &mut summary).await?;
    Ok(summary)
}

/// Compares one repository's open pull requests on GitHub with what previewd knows, and replays
/// what it missed through the same decisions as the webhook intake. Returns how many events.
async fn reconcile_repository(
    ctx: &JobContext,
    queues: &Queues,
    repo: &repository::Model,
) -> Result<usize, Error> {
    let Some(name) = RepoName::parse(&repo.full_name) else {
        return Ok(0);
    };
    let event_repo = Repo {
        id: repo.id,
        name: name.clone(),
        default_branch: repo.default_branch.clone(),
        private: repo.private,
    };
    // GitHub's list is a snapshot: a delivery processed after it was taken is newer than what it
    // shows, and must not be "corrected" back (a close replayed for a pull request just opened,
    // a push replayed back to the commit before). Rows changed since are left to the next round.
    let snapshot_at = Utc::now() - SNAPSHOT_SKEW;
    let open = ctx
        .github
        .open_pull_requests(repo.installation_id, &name, repo.id)
        .await?;
    let changed_since = |row: &pull_request::Model| row.updated_at >= snapshot_at;
    let mut missed: Vec<(PullRequestAction, PullRequest)> = Vec::new();
    for pr in &open {
        let known = records::find_pull_request(&ctx.db, repo.id, pr.number).await?;
        if known.as_ref().is_some_and(changed_since) {
            continue;
        }
        let preview = match &known {
            Some(row) => records::preview_of(&ctx.db, row.id).await?,
            None => None,
        };
        if let Some(action) = missed_action(known.as_ref(), preview.as_ref(), pr) {
            missed.push((action, pr.clone()));
        }
    }
    let open_numbers: HashSet<u64> = open.iter().map(|p| p.number).collect();
    for row in records::open_pull_requests_of(&ctx.db, repo.id).await? {
        let number = u64::try_from(row.number).unwrap_or_default();
        if !open_numbers.contains(&number) && !changed_since(&row) {
            missed.push((PullRequestAction::Closed, pull_request_of(&row)));
        }
    }
    let replayed = missed.len();
    for (action, pr) in missed {
        tracing::info!(repo = %name, pr = pr.number, ?action, "replaying a missed pull request event");
        let event = Event::PullRequest {
            action,
            installation: repo.installation_id,
            repo: event_repo.clone(),
            pr,
            sender: RECONCILER.to_owned(),
            label: None,
        };
        lifecycle::in_transaction(&ctx.db, queues, async |txn| {
            let decision = intake::decide(txn, &event, Origin::Reconciler).await?;
            Ok(((), decision.work))
        })
        .await?;
    }
    Ok(replayed)
}

/// How much earlier than the request GitHub's list may reflect (clocks, GitHub's own lag).
const SNAPSHOT_SKEW: chrono::Duration = chrono::Duration::seconds(2);

/// Who the reconciler's replayed events are from.
const RECONCILER: &str = "previewd-reconciler";

/// The event previewd missed for open pull request `pr`, given what it knows of it.
fn missed_action(
    known: Option<&pull_request::Model>,
    preview: Option<&preview::Model>,
    pr: &PullRequest,
) -> Option<PullRequestAction> {
    let Some(row) = known else {
        return (!pr.draft).then_some(PullRequestAction::Opened);
    };
    if row.state != PullRequestState::Open {
        return Some(PullRequestAction::Reopened);
    }
    if row.head_sha != pr.head_sha {
        return Some(PullRequestAction::Synchronize);
    }
    if row.draft && !pr.draft {
        return Some(PullRequestAction::ReadyForReview);
    }
    if preview.is_none() && !pr.draft {
        return Some(PullRequestAction::Opened);
    }
    None
}

/// A pull request as previewd last saw it, in the shape events carry.
fn pull_request_of(row: &pull_request::Model) -> PullRequest {
    PullRequest {
        number: u64::try_from(row.number).unwrap_or_default(),
        title: row.title.clone(),
        author: row.author_login.clone(),
        head_ref: row.head_ref.clone(),
        head_sha: row.head_sha.clone(),
        base_ref: row.base_ref.clone(),
        from_fork: row.from_fork,
        draft: row.draft,
        merged: false,
        labels: row
            .labels
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect(),
    }
}

/// Attempts younger than this are left to their jobs.
const SETTLE: chrono::Duration = chrono::Duration::seconds(10);

/// Heals work that Redis lost or the queue gave up on: queued attempts with no job behind them
/// are enqueued again; running attempts whose job died without an outcome (killed by the
/// queue's time-out) are closed and reported; removals whose cleanup stopped are retried.
async fn heal_jobs(ctx: &JobContext, queues: &Queues, summary: &mut Summary) -> Result<(), Error> {
    let now = Utc::now();
    for attempt in records::attempts_in(&ctx.db, &lifecycle::UNFINISHED).await? {
        if now - attempt.created_at < SETTLE {
            continue;
        }
        let Some(preview) = records::preview_by_id(&ctx.db, attempt.preview_id).await? else {
            continue;
        };
        let state = queues.deploy_job_state(attempt.id).await?;
        let busy = lock::is_held(&ctx.redis, &ctx.prefix, preview.id).await?;
        let current = preview.current_attempt_id == Some(attempt.id);
        match (attempt.status, state) {
            (_, JobState::Live) => {}
            (AttemptStatus::Queued, _) if !current => {
                // A request never confirmed (its job carried who asked): dropped quietly.
                lifecycle::stop(
                    &ctx.db,
                    attempt.id,
                    AttemptStatus::Cancelled,
                    "lost",
                    "its job was lost before it started",
                )
                .await?;
            }
            (AttemptStatus::Queued, _) | (AttemptStatus::Running, JobState::Lost) if !busy => {
                tracing::warn!(
                    attempt = attempt.id,
                    preview = preview.id,
                    ?state,
                    "attempt without a job; enqueueing it again"
                );
                queues
                    .requeue_deploy(DeployJob {
                        attempt_id: attempt.id,
                        approved_by: None,
                        requested_by: None,
                    })
                    .await?;
                summary.requeued += 1;
            }
            (AttemptStatus::Running, JobState::Dead | JobState::Done) if !busy => {
                let reason = format!(
                    "The deploy job stopped without an outcome (the queue's time-out, or its worker was lost); \
                     the deploy timeout is {} s (DEPLOY_TIMEOUT). Push, or press Re-run, to try again.",
                    ctx.config.deploy_timeout.as_secs()
                );
                if lifecycle::abandon(&ctx.db, &attempt, &reason).await? {
                    summary.abandoned += 1;
                    tracing::error!(
                        attempt = attempt.id,
                        preview = preview.id,
                        "deploy job died without an outcome; attempt closed as timed out"
                    );
                    if let Some(actx) = records::attempt_context(&ctx.db, attempt.id).await? {
                        let failure = Failure::new(FailureKind::DeployTimeout, &reason);
                        crate::deploy::report_abandoned(ctx, &actx, &failure, current).await;
                    }
                }
            }
            _ => {}
        }
    }
    let stale_before = now
        - chrono::Duration::from_std(ctx.lock_wait() + ctx.config.cleanup_timeout)
            .unwrap_or_default()
        - SETTLE;
    for preview in records::previews_in(&ctx.db, &[PreviewStatus::Deleting]).await? {
        if preview.cleanup_failed
            || preview.updated_at > stale_before
            || lock::is_held(&ctx.redis, &ctx.prefix, preview.id).await?
        {
            continue;
        }
        tracing::warn!(preview = preview.id, namespace = %preview.namespace, "removal stopped before it finished; enqueueing its cleanup again");
        queues
            .requeue_cleanup(CleanupJob {
                preview_id: preview.id,
                generation: Some(preview.generation),
                reason: "its removal was interrupted".into(),
                requested_by: None,
            })
            .await?;
        lifecycle::removal_retried(&ctx.db, preview.id).await?;
        summary.removals_retried += 1;
    }
    Ok(())
}

/// Namespaces of this install: those of no live preview (or of a finished build) are deleted
/// once older than `ORPHAN_GRACE`; those of a renamed repository get its new name.
async fn sweep_namespaces(ctx: &JobContext, summary: &mut Summary) -> Result<(), Error> {
    let live: HashMap<String, preview::Model> = records::undeleted_previews(&ctx.db)
        .await?
        .into_iter()
        .map(|p| (p.namespace.clone(), p))
        .collect();
    let grace = chrono::Duration::from_std(ctx.config.orphan_grace).unwrap_or_default();
    for owned in ctx.cluster.owned_namespaces(&ctx.install_id).await? {
        let old_enough = owned.created.is_none_or(|c| Utc::now() - c >= grace);
        let orphan = match owned.build_attempt {
            Some(attempt) => records::attempt_by_id(&ctx.db, attempt)
                .await?
                .is_none_or(|a| !lifecycle::UNFINISHED.contains(&a.status)),
            None => !live.contains_key(&owned.name),
        };
        if orphan {
            if old_enough {
                tracing::warn!(namespace = %owned.name, "namespace of this install has no live preview or build; deleting it");
                ctx.cluster.delete_namespace(&owned.name).await?;
                summary.orphans += 1;
            }
            continue;
        }
        let Some(preview) = live.get(&owned.name) else {
            continue;
        };
        if preview.status == PreviewStatus::Deleting {
            continue;
        }
        let Some((_, pr, repository)) = records::preview_context(&ctx.db, preview.id).await? else {
            continue;
        };
        if owned.repo_label.as_deref() != Some(&label_value(&repository.full_name)) {
            let meta = PreviewMeta {
                namespace: preview.namespace.clone(),
                repo_full_name: repository.full_name.clone(),
                pr_number: u64::try_from(pr.number).unwrap_or_default(),
                preview_id: preview.id,
                sha: preview.head_sha.clone(),
                install_id: ctx.install_id.clone(),
                attempt_id: preview.current_attempt_id.unwrap_or_default(),
            };
            ctx.cluster.relabel_namespace(&meta).await?;
            summary.relabelled += 1;
        }
    }
    Ok(())
}

/// One expiry round: previews idle past their TTL are warned once (in the sticky comment), then
/// removed; the `preview:keep` label holds a preview, a push renews it.
pub async fn expire(ctx: &JobContext, queues: &Queues) -> Result<(), Error> {
    let now = Utc::now();
    for p in records::previews_expiring_by(&ctx.db, now + chrono::Duration::hours(1)).await? {
        let Some(expires) = p.expires_at else {
            continue;
        };
        let Some(actx) = records::last_attempt_context(&ctx.db, p.id).await? else {
            continue;
        };
        let kept = actx
            .pull_request
            .labels
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l.as_str() == Some(previewd::previews::KEEP_LABEL));
        if kept {
            continue;
        }
        if now >= expires {
            tracing::info!(preview = p.id, namespace = %p.namespace, "preview idle past its TTL; removing it");
            lifecycle::in_transaction(&ctx.db, queues, async |txn| {
                let outcome =
                    lifecycle::request_removal(txn, &p, &Removal::Expired(expires)).await?;
                Ok(((), outcome.work))
            })
            .await?;
            continue;
        }
        // Warn when a quarter of the idle time (at most an hour) is left.
        let window = ((expires - p.updated_at) / 4).min(chrono::Duration::hours(1));
        if p.expiry_warned_at.is_none() && expires - now <= window {
            let state = previewd::previews::report::CommentState::ExpiresSoon {
                url: p.url.clone().unwrap_or_default(),
                at: expires,
            };
            if let Err(e) = ctx.reporter.comment(&actx, &state).await {
                tracing::warn!(error = %e, "could not warn of the expiry");
            }
            lifecycle::expiry_warned(&ctx.db, p.id).await?;
        }
    }
    Ok(())
}

/// Most pages of the delivery log one sweep reads (100 deliveries a page).
pub const REDELIVERY_MAX_PAGES: usize = 10;
/// Most redeliveries one sweep asks for.
pub const REDELIVERY_MAX_PER_ROUND: usize = 50;

/// One sweep of the App's delivery log; returns how many redeliveries it asked for.
///
/// It reads the log newest first, back to where the last complete sweep began (the newest id
/// it saw, kept with an interrupted sweep's place in `{prefix}:redelivery:cursor`), at most
/// [`REDELIVERY_MAX_PAGES`] pages; a sweep cut short resumes from its place next round. It
/// redelivers, once per GUID (a day's memory), each delivery a redelivery can fix — previewd
/// answered 5xx or nothing answered — unless that GUID also succeeded or was refused (4xx:
/// forged, malformed, too large: the same bytes would be refused again). At most
/// [`REDELIVERY_MAX_PER_ROUND`]; when there were more, the sweep's window is read again next
/// round rather than skipped.
pub async fn redeliver_failed(ctx: &JobContext) -> Result<usize, Error> {
    let cursor_key = format!("{}:redelivery:cursor", ctx.prefix);
    let mut conn = ctx.redis.clone();
    let (floor, resume, top): (Option<i64>, Option<String>, Option<i64>) = redis::cmd("HMGET")
        .arg(&cursor_key)
        .arg("floor")
        .arg("resume")
        .arg("top")
        .query_async(&mut conn)
        .await?;
    let mut next = resume;
    let mut newest = top;
    let mut window = Vec::new();
    let mut complete = false;
    for _ in 0..REDELIVERY_MAX_PAGES {
        let page = ctx.github.hook_deliveries_page(next.as_deref()).await?;
        if newest.is_none() {
            newest = page.deliveries.first().map(|d| d.id);
        }
        let mut reached_floor = false;
        for d in page.deliveries {
            if floor.is_some_and(|f| d.id <= f) {
                reached_floor = true;
                break;
            }
            window.push(d);
        }
        next = page.next;
        if reached_floor || next.is_none() {
            complete = true;
            break;
        }
    }
    let settled: HashSet<&str> = window
        .iter()
        .filter(|d| d.succeeded() || !d.redelivery_may_help())
        .map(|d| d.guid.as_str())
        .collect();
    let mut seen = HashSet::new();
    let candidates: Vec<_> = window
        .iter()
        .filter(|d| d.redelivery_may_help() && !settled.contains(d.guid.as_str()))
        .filter(|d| seen.insert(d.guid.as_str()))
        .collect();
    let mut asked = 0;
    let mut capped = false;
    for d in candidates {
        if asked == REDELIVERY_MAX_PER_ROUND {
            capped = true;
            break;
        }
        // Once per GUID (a day's memory), so a delivery that keeps failing is not hammered.
        let key = format!("{}:redelivered:{}", ctx.prefix, d.guid);
        let first: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(d.id)
            .arg("NX")
            .arg("EX")
            .arg(86_400)
            .query_async(&mut conn)
            .await?;
        if first.is_none() {
            continue;
        }
        tracing::info!(delivery = %d.guid, event = %d.event, status = d.status_code, why = %d.status, "redelivering a failed webhook");
        ctx.github.redeliver(d.id).await?;
        asked += 1;
    }
    // Where the next sweep starts.
    let mut pipe = redis::pipe();
    if capped {
        // Read this window again: what was asked for is remembered per GUID.
        pipe.cmd("HDEL").arg(&cursor_key).arg("resume").arg("top");
    } else if complete {
        if let Some(newest) = newest.filter(|n| floor.is_none_or(|f| *n > f)) {
            pipe.cmd("HSET").arg(&cursor_key).arg("floor").arg(newest);
        }
        pipe.cmd("HDEL").arg(&cursor_key).arg("resume").arg("top");
    } else if let (Some(next), Some(newest)) = (&next, newest) {
        pipe.cmd("HSET")
            .arg(&cursor_key)
            .arg("resume")
            .arg(next)
            .arg("top")
            .arg(newest);
    }
    pipe.query_async::<()>(&mut conn).await?;
    Ok(asked)
}
