//! `GET /metrics`: Prometheus text for operators (DESIGN.md §9).
//!
//! Counters of this process (webhooks by event and result) live in [`Metrics`]; everything that
//! is a fact of the whole install is read at scrape time from where it is true — previews by
//! status and flagged cleanup failures from the database, queue depth from Redis — so every app
//! replica reports the same numbers and a worker needs no endpoint of its own.

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use previewd_entity::preview;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::AppState;
use crate::jobs::Queue;

/// This process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    webhooks: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Counts one delivery of `event` answered with `result`.
    pub fn webhook(&self, event: &str, result: &'static str) {
        let mut map = self
            .webhooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Event names come from a header: labels come from a closed set, so no request can add
        // a series.
        // `unknown` names a request whose claim is not believed (it was not signed).
        let event = crate::github::webhook::HANDLED_EVENTS
            .iter()
            .chain(&["unknown"])
            .find(|known| **known == event)
            .copied()
            .unwrap_or("other");
        *map.entry((event, result)).or_default() += 1;
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    out.push_str("# HELP previewd_webhooks_total Webhook deliveries by event and result.\n# TYPE previewd_webhooks_total counter\n");
    {
        let map = state
            .metrics
            .webhooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((event, result), n) in map.iter() {
            let _ = writeln!(
                out,
                "previewd_webhooks_total{{event=\"{event}\",result=\"{result}\"}} {n}"
            );
        }
    }
    let db = &state.stores.db;
    out.push_str("# HELP previewd_previews Previews by status.\n# TYPE previewd_previews gauge\n");
    for status in [
        previewd_entity::PreviewStatus::AwaitingApproval,
        previewd_entity::PreviewStatus::Pending,
        previewd_entity::PreviewStatus::Building,
        previewd_entity::PreviewStatus::Deploying,
        previewd_entity::PreviewStatus::Running,
        previewd_entity::PreviewStatus::Failed,
        previewd_entity::PreviewStatus::Deleting,
    ] {
        if let Ok(n) = preview::Entity::find()
            .filter(preview::Column::Status.eq(status))
            .count(db)
            .await
        {
            let label = format!("{status:?}").to_ascii_lowercase();
            let _ = writeln!(out, "previewd_previews{{status=\"{label}\"}} {n}");
        }
    }
    if let Ok(n) = preview::Entity::find()
        .filter(preview::Column::CleanupFailed.eq(true))
        .count(db)
        .await
    {
        out.push_str("# HELP previewd_cleanup_failures_total Previews whose cleanup failed after every try (operators must act).\n# TYPE previewd_cleanup_failures_total counter\n");
        let _ = writeln!(out, "previewd_cleanup_failures_total {n}");
    }
    out.push_str("# HELP previewd_queue_depth Jobs waiting in each queue.\n# TYPE previewd_queue_depth gauge\n");
    for queue in Queue::ALL {
        let config = queue.redis_config(&state.stores.redis_prefix);
        let mut conn = state.stores.redis.clone();
        if let Ok(n) = redis::cmd("LLEN")
            .arg(config.active_jobs_list())
            .query_async::<i64>(&mut conn)
            .await
        {
            let _ = writeln!(
                out,
                "previewd_queue_depth{{queue=\"{}\"}} {n}",
                queue.name()
            );
        }
    }
    let remaining = state.reporter.github.rate_limit_remaining();
    if remaining >= 0 {
        out.push_str("# HELP previewd_github_rate_limit_remaining Requests left in GitHub's rate limit, as last reported.\n# TYPE previewd_github_rate_limit_remaining gauge\n");
        let _ = writeln!(out, "previewd_github_rate_limit_remaining {remaining}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
