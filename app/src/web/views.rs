//! The shapes the REST API and the MCP tools answer with, one set for both doors: serialized
//! with serde, described by JSON Schema (schemars) — the MCP tools' output schemas, and the
//! OpenAPI document's, come from these same types, so a door cannot answer with a field its
//! description lacks.
//!
//! Values from the database pass through here on their way out: error texts are sanitized
//! (secrets redacted, length capped), statuses are their stable lower-case names.

use chrono::{DateTime, Utc};
use previewd_entity::{PreviewStatus, deploy_attempt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AppState, dashboard};
use crate::{cluster::inspect::PodInfo, previews::records::PreviewRow};

/// One deploy attempt of a preview.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AttemptView {
    pub id: i64,
    /// 1 for the first deploy of the preview, then counting up.
    pub attempt: i32,
    /// The commit deployed.
    pub sha: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `superseded`.
    pub status: String,
    /// What asked for it: `opened`, `synchronize`, `rerequested`, `retry`, `redeploy`, ….
    pub trigger: String,
    /// Why it failed, as a stable kind (`build_failed`, `crash_loop`, `quota_exceeded`, …).
    pub error_kind: Option<String>,
    /// Why it failed, in words.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl AttemptView {
    pub fn of(a: &deploy_attempt::Model) -> Self {
        Self {
            id: a.id,
            attempt: a.attempt,
            sha: a.sha.clone(),
            status: format!("{:?}", a.status).to_ascii_lowercase(),
            trigger: a.trigger.clone(),
            error_kind: a.error_kind.clone(),
            error: a
                .error
                .as_deref()
                .map(|e| crate::sanitize::sanitize(e, 1000)),
            created_at: a.created_at,
            started_at: a.started_at,
            finished_at: a.finished_at,
        }
    }
}

/// The pull request a preview is of.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PullRequestView {
    pub number: i64,
    pub title: String,
    /// The author's GitHub login.
    pub author: String,
    /// The pull request on GitHub.
    pub url: String,
}

/// A preview environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PreviewView {
    pub id: i64,
    /// Its Kubernetes namespace (also accepted wherever an id is).
    pub namespace: String,
    /// `pending`, `awaiting_approval`, `building`, `deploying`, `running`, `failed`,
    /// `deleting` or `deleted`.
    pub status: String,
    /// Where it is served, once it has run.
    pub url: Option<String>,
    /// The pull request's head commit.
    pub head_sha: String,
    /// `owner/name`.
    pub repository: String,
    pub pull_request: PullRequestView,
    /// When it is removed unless extended.
    pub expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The last cleanup did not finish; the reconciler tries again.
    pub cleanup_failed: bool,
    /// Being removed or gone.
    pub removed: bool,
    pub current_attempt: Option<AttemptView>,
    /// Its page on the dashboard.
    pub dashboard_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The newest attempts first (one preview's answer only, not a list's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

impl PreviewView {
    pub fn of(state: &AppState, row: &PreviewRow, current: Option<&deploy_attempt::Model>) -> Self {
        let p = &row.preview;
        let pr = &row.pull_request;
        Self {
            id: p.id,
            namespace: p.namespace.clone(),
            status: dashboard::status_key(p.status).to_owned(),
            url: p.url.clone(),
            head_sha: p.head_sha.clone(),
            repository: row.repository.full_name.clone(),
            pull_request: PullRequestView {
                number: pr.number,
                title: pr.title.clone(),
                author: pr.author_login.clone(),
                url: crate::github::urls::web_path(
                    &state.dashboard.web_url,
                    &format!("{}/pull/{}", row.repository.full_name, pr.number),
                )
                .to_string(),
            },
            expires_at: p.expires_at,
            last_error: p
                .last_error
                .as_deref()
                .map(|e| crate::sanitize::sanitize(e, 500)),
            cleanup_failed: p.cleanup_failed,
            removed: matches!(p.status, PreviewStatus::Deleting | PreviewStatus::Deleted),
            current_attempt: current.map(AttemptView::of),
            dashboard_url: state.reporter.details_url(p.id),
            created_at: p.created_at,
            updated_at: p.updated_at,
            attempts: None,
        }
    }
}

/// One page of previews.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PreviewPage {
    pub items: Vec<PreviewView>,
    pub page: u64,
    pub per_page: u64,
    /// How many match, over all pages.
    pub total: u64,
}

/// Who a token acts as.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WhoamiView {
    pub login: String,
    pub user_id: i64,
    /// Operators see and act on every preview.
    pub operator: bool,
    /// How many repositories with live previews they can see (none for operators: all).
    pub repositories: Option<usize>,
}

/// The end of one container's log.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LogView {
    /// The preview.
    pub id: i64,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The previous (terminated) container's log rather than the running one's.
    pub previous: bool,
    /// The lines, oldest first, secrets redacted.
    pub lines: Vec<String>,
    /// Lines left out from the start to keep within the answer's cap (MCP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_lines: Option<usize>,
    /// Said of the lines to whoever reads them (MCP only): they are the workload's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Every pod of the preview, to choose from.
    pub pods: Vec<PodInfo>,
}

/// An action taken.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ActedView {
    pub id: i64,
    /// The preview's status now.
    pub status: String,
    /// The attempt a retry or redeploy queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<AttemptView>,
    /// When an extended preview now expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// What happened, in words.
    pub message: String,
}
