//! Healing what webhooks missed (DESIGN.md §5, "Missed deliveries").
//!
//! Two periodic tasks run in every worker process; a Redis lock per period makes one worker of
//! the install do each round:
//!
//! - the **reconciler** (`RECONCILE_INTERVAL`) compares every installation's open pull requests
//!   with the database: an open pull request without a deploy of its head gets one, a preview
//!   whose pull request is no longer open is cleaned up, and a namespace labelled as previewd's
//!   with no live preview is deleted once older than `ORPHAN_GRACE`;
//! - the **redelivery sweeper** (`REDELIVERY_INTERVAL`) reads the App's delivery log and asks
//!   GitHub to redeliver each failed delivery whose GUID never succeeded, once.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::Utc;
use previewd::{
    github::RepoName,
    jobs::{CleanupJob, DeployJob, Queues},
    previews::records,
};
use previewd_entity::{
    PreviewStatus, PullRequestState, installation, preview, pull_request, repository,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::context::JobContext;

/// Starts the periodic tasks the configuration enables; they end with the process.
pub fn spawn(ctx: Arc<JobContext>, queues: Queues) {
    if let Some(every) = ctx.config.reconcile_interval {
        let (ctx, queues) = (ctx.clone(), queues.clone());
        tokio::spawn(async move {
            run_every(&ctx, "reconcile", every, || async {
                match reconcile(&ctx, &queues).await {
                    Ok(summary) => tracing::info!(%summary, "reconciled"),
                    Err(e) => {
                        tracing::warn!(error = %e, "reconcile round failed; the next one retries")
                    }
                }
            })
            .await;
        });
    }
    if let Some(every) = ctx.config.expiry_interval {
        let (ctx, queues) = (ctx.clone(), queues.clone());
        tokio::spawn(async move {
            run_every(&ctx, "expiry", every, || async {
                if let Err(e) = expire(&ctx, &queues).await {
                    tracing::warn!(error = %e, "expiry round failed; the next one retries");
                }
            })
            .await;
        });
    }
    if let Some(every) = ctx.config.redelivery_interval {
        tokio::spawn(async move {
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
        });
    }
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

/// One reconcile round; returns a summary for the log.
pub async fn reconcile(ctx: &JobContext, queues: &Queues) -> Result<String, Error> {
    let (mut deployed, mut cleaned, mut orphans) = (0, 0, 0);
    // GitHub is the authority on installations and their repositories: learn any the webhooks
    // did not tell (an `installation` delivery lost, or previewd installed before this database).
    for (id, account, kind, suspended) in ctx.github.installations().await? {
        if suspended {
            continue;
        }
        records::upsert_installation(&ctx.db, id, &account, &kind).await?;
        for repo in ctx.github.installation_repositories(id).await? {
            records::upsert_repository(&ctx.db, id, &repo).await?;
        }
    }
    let installations = installation::Entity::find()
        .filter(installation::Column::DeletedAt.is_null())
        .filter(installation::Column::SuspendedAt.is_null())
        .all(&ctx.db)
        .await?;
    for inst in installations {
        let repos = repository::Entity::find()
            .filter(repository::Column::InstallationId.eq(inst.id))
            .filter(repository::Column::RemovedAt.is_null())
            .all(&ctx.db)
            .await?;
        for repo in repos {
            let Some(name) = RepoName::parse(&repo.full_name) else {
                continue;
            };
            let open = ctx
                .github
                .open_pull_requests(inst.id, &name, repo.id)
                .await?;
            let open_numbers: HashSet<u64> = open.iter().map(|p| p.number).collect();
            for pr in open.iter().filter(|p| !p.draft) {
                if let Some(job) = heal_open(ctx, &repo, &name, pr).await? {
                    queues.deploy(job).await?;
                    deployed += 1;
                }
            }
            // Previews of pull requests GitHub no longer lists as open.
            let known_open = pull_request::Entity::find()
                .filter(pull_request::Column::RepositoryId.eq(repo.id))
                .filter(pull_request::Column::State.eq(PullRequestState::Open))
                .all(&ctx.db)
                .await?;
            for pr in known_open {
                if open_numbers.contains(&u64::try_from(pr.number).unwrap_or_default()) {
                    continue;
                }
                pull_request::Entity::update_many()
                    .col_expr(
                        pull_request::Column::State,
                        sea_orm::sea_query::Expr::value(PullRequestState::Closed),
                    )
                    .filter(pull_request::Column::Id.eq(pr.id))
                    .exec(&ctx.db)
                    .await?;
                if let Some(p) = records::preview_of(&ctx.db, pr.id).await?
                    && !matches!(p.status, PreviewStatus::Deleted | PreviewStatus::Deleting)
                {
                    let p =
                        records::set_preview_status(&ctx.db, p, PreviewStatus::Deleting).await?;
                    queues
                        .cleanup(CleanupJob {
                            preview_id: p.id,
                            reason: "the pull request is closed".into(),
                            requested_by: None,
                        })
                        .await?;
                    cleaned += 1;
                }
            }
        }
    }
    // Namespaces that are ours but belong to no live preview.
    let live: HashSet<String> = preview::Entity::find()
        .filter(preview::Column::Status.ne(PreviewStatus::Deleted))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|p| p.namespace)
        .collect();
    let grace = chrono::Duration::from_std(ctx.config.orphan_grace).unwrap_or_default();
    for (namespace, created) in ctx.cluster.managed_namespaces().await? {
        let old_enough = created.is_none_or(|c| Utc::now() - c >= grace);
        if !live.contains(&namespace) && old_enough {
            tracing::warn!(%namespace, "namespace labelled as previewd's has no live preview; deleting it");
            ctx.cluster.delete_namespace(&namespace).await?;
            orphans += 1;
        }
    }
    Ok(format!(
        "{deployed} deploys enqueued, {cleaned} cleanups enqueued, {orphans} orphan namespaces deleted"
    ))
}

/// Brings one open pull request's rows up to date; a deploy job when its head has none.
async fn heal_open(
    ctx: &JobContext,
    repo: &repository::Model,
    name: &RepoName,
    pr: &previewd::github::webhook::PullRequest,
) -> Result<Option<DeployJob>, Error> {
    let row = records::upsert_pull_request(&ctx.db, repo.id, pr, PullRequestState::Open).await?;
    let existing = records::preview_of(&ctx.db, row.id).await?;
    let revived = existing
        .as_ref()
        .is_some_and(|p| p.status == PreviewStatus::Deleted);
    let preview = records::ensure_preview(&ctx.db, &row, name.as_str()).await?;
    if !revived && records::has_attempt(&ctx.db, preview.id, &row.head_sha).await? {
        return Ok(None);
    }
    let attempt = records::new_attempt(&ctx.db, preview.id, &row.head_sha, "reconcile").await?;
    tracing::info!(repo = %name, pr = pr.number, "open pull request without a deploy of its head; deploying");
    Ok(Some(DeployJob {
        attempt_id: attempt.id,
        approved_by: None,
        requested_by: None,
    }))
}

/// One expiry round: previews idle past their TTL are warned once (in the sticky comment), then
/// removed; the `preview:keep` label holds a preview, a push renews it.
pub async fn expire(ctx: &JobContext, queues: &Queues) -> Result<(), Error> {
    let now = Utc::now();
    let candidates = preview::Entity::find()
        .filter(preview::Column::Status.is_in([PreviewStatus::Running, PreviewStatus::Failed]))
        .filter(preview::Column::ExpiresAt.lte(now + chrono::Duration::hours(1)))
        .all(&ctx.db)
        .await?;
    for p in candidates {
        let Some(expires) = p.expires_at else {
            continue;
        };
        let Some((_, pr, _)) = records::preview_context(&ctx.db, p.id).await? else {
            continue;
        };
        let kept = pr
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
            let p = records::set_preview_status(&ctx.db, p, PreviewStatus::Deleting).await?;
            let reason = format!(
                "it was idle until {} (its TTL)",
                expires.format("%Y-%m-%d %H:%M UTC")
            );
            queues
                .cleanup(CleanupJob {
                    preview_id: p.id,
                    reason,
                    requested_by: None,
                })
                .await?;
            continue;
        }
        // Warn when a quarter of the idle time (at most an hour) is left.
        let window = ((expires - p.updated_at) / 4).min(chrono::Duration::hours(1));
        if p.expiry_warned_at.is_none() && expires - now <= window {
            if let Some(actx) = records::last_attempt_context(&ctx.db, p.id).await? {
                let state = previewd::previews::report::CommentState::ExpiresSoon {
                    url: p.url.clone().unwrap_or_default(),
                    at: expires,
                };
                if let Err(e) = ctx.reporter.comment(&actx, &state).await {
                    tracing::warn!(error = %e, "could not warn of the expiry");
                }
            }
            preview::Entity::update_many()
                .col_expr(
                    preview::Column::ExpiryWarnedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(preview::Column::Id.eq(p.id))
                .exec(&ctx.db)
                .await?;
        }
    }
    Ok(())
}

/// One sweep: redeliver failed deliveries whose GUID never succeeded. Returns how many.
pub async fn redeliver_failed(ctx: &JobContext) -> Result<usize, Error> {
    let deliveries = ctx.github.hook_deliveries().await?;
    let succeeded: HashSet<&str> = deliveries
        .iter()
        .filter(|d| (200..300).contains(&d.status_code))
        .map(|d| d.guid.as_str())
        .collect();
    let mut asked = 0;
    let mut conn = ctx.redis.clone();
    for d in deliveries
        .iter()
        .filter(|d| !(200..300).contains(&d.status_code) && !succeeded.contains(d.guid.as_str()))
    {
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
        tracing::info!(delivery = %d.guid, event = %d.event, status = d.status_code, "redelivering a failed webhook");
        ctx.github.redeliver(d.id).await?;
        asked += 1;
    }
    Ok(asked)
}
