//! `GET /metrics`: Prometheus text for operators (DESIGN.md §9).
//!
//! Counters of this process (webhooks by event and result, and how long the deliveries that
//! reached the store took to answer) live in [`Metrics`]; everything that
//! is a fact of the whole install is read at scrape time from where it is true — previews by
//! status and flagged cleanup failures from the database, queue depth from Redis — so every app
//! replica reports the same numbers and a worker needs no endpoint of its own.

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex, time::Duration};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use previewd_entity::preview;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::AppState;
use crate::jobs::Queue;

/// Upper bounds, in seconds, of the answer-time histogram's buckets (`+Inf` follows): fine
/// below 10 ms, where a healthy intake answers, coarse up to GitHub's 10 s limit.
const ANSWER_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0,
];

/// This process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    webhooks: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    answers: Mutex<AnswerTimes>,
}

/// A Prometheus histogram: deliveries per bucket (not yet cumulative), their count and sum.
#[derive(Debug, Default)]
struct AnswerTimes {
    buckets: [u64; ANSWER_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts how long a signed, well-formed delivery took from its headers to its answer:
    /// reading and verifying the body, the commit it shared and the push of its jobs.
    pub fn webhook_answered(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = ANSWER_BUCKETS.iter().position(|bound| seconds <= *bound) {
            answers.buckets[bucket] += 1;
        }
        answers.count += 1;
        answers.sum += seconds;
    }

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
    write_answer_times(&mut out, &state.metrics);
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

/// The answer-time histogram in Prometheus's text format (cumulative buckets).
fn write_answer_times(out: &mut String, metrics: &Metrics) {
    let answers = metrics
        .answers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.push_str("# HELP previewd_webhook_answer_seconds Time from a signed delivery's headers to its answer (body read and verified, committed, jobs pushed).\n# TYPE previewd_webhook_answer_seconds histogram\n");
    let mut below = 0;
    for (bound, n) in ANSWER_BUCKETS.iter().zip(answers.buckets) {
        below += n;
        let _ = writeln!(
            out,
            "previewd_webhook_answer_seconds_bucket{{le=\"{bound}\"}} {below}"
        );
    }
    let _ = writeln!(
        out,
        "previewd_webhook_answer_seconds_bucket{{le=\"+Inf\"}} {}",
        answers.count
    );
    let _ = writeln!(out, "previewd_webhook_answer_seconds_sum {}", answers.sum);
    let _ = writeln!(
        out,
        "previewd_webhook_answer_seconds_count {}",
        answers.count
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Metrics, write_answer_times};

    #[test]
    fn answer_times_are_a_cumulative_histogram() {
        let metrics = Metrics::default();
        for micros in [300, 900, 4_000, 4_000, 20_000_000] {
            metrics.webhook_answered(Duration::from_micros(micros));
        }
        let mut out = String::new();
        write_answer_times(&mut out, &metrics);
        for line in [
            "previewd_webhook_answer_seconds_bucket{le=\"0.0005\"} 1",
            "previewd_webhook_answer_seconds_bucket{le=\"0.001\"} 2",
            "previewd_webhook_answer_seconds_bucket{le=\"0.003\"} 2",
            "previewd_webhook_answer_seconds_bucket{le=\"0.005\"} 4",
            "previewd_webhook_answer_seconds_bucket{le=\"10\"} 4",
            "previewd_webhook_answer_seconds_bucket{le=\"+Inf\"} 5",
            "previewd_webhook_answer_seconds_count 5",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        let sum: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("previewd_webhook_answer_seconds_sum "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        assert!((sum - 20.0092).abs() < 1e-9, "{sum}");
    }
}
