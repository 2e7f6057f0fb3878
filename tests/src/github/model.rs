//! The simulator's public vocabulary: what a test hands in ([`NewPr`]) and the snapshots it reads
//! back (pull requests, check runs, comments, deployments, deliveries, call counts).
//!
//! Every type here is plain data cloned out of the simulator's state: holding one never blocks the
//! server, and it does not change when the state changes afterwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A pull request a test opens with [`super::GitHubSim::open_pr`].
#[derive(Clone, Debug)]
pub struct NewPr {
    /// Login of the author (also the webhook's sender).
    pub author: String,
    /// Branch name of the head.
    pub head_ref: String,
    /// Head commit (40 hex characters by default; any string is accepted).
    pub head_sha: String,
    /// Target branch, `main` by default.
    pub base_ref: String,
    pub title: String,
    /// The head lives in the author's fork (`<author>/<repo name>`), not in the repository itself.
    pub from_fork: bool,
    pub draft: bool,
    /// Labels the pull request carries when it is opened.
    pub labels: Vec<String>,
}

impl Default for NewPr {
    fn default() -> Self {
        Self {
            author: "octocat".to_owned(),
            head_ref: "feature".to_owned(),
            head_sha: super::encoding::random_hex(40),
            base_ref: "main".to_owned(),
            title: "Add a feature".to_owned(),
            from_fork: false,
            draft: false,
            labels: Vec::new(),
        }
    }
}

/// A pull request as the simulator holds it.
#[derive(Clone, Debug)]
pub struct Pr {
    pub id: i64,
    pub number: u64,
    pub title: String,
    pub author: String,
    /// `open` or `closed`.
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub head_ref: String,
    pub head_sha: String,
    /// Full name of the repository the head lives in (the fork for fork pull requests).
    pub head_repo: String,
    pub base_ref: String,
    pub base_sha: String,
    pub from_fork: bool,
    pub labels: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub merged_at: Option<DateTime<Utc>>,
}

/// A button on a check run (`actions` in GitHub's API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRunAction {
    pub label: String,
    pub description: String,
    pub identifier: String,
}

/// A check run as last written through the API.
#[derive(Clone, Debug)]
pub struct CheckRun {
    pub id: i64,
    pub name: String,
    pub head_sha: String,
    /// queued | in_progress | completed | waiting | requested | pending.
    pub status: String,
    pub conclusion: Option<String>,
    pub external_id: Option<String>,
    pub details_url: Option<String>,
    /// `output.title`, `output.summary`, `output.text`.
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
    pub actions: Vec<CheckRunAction>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A comment on a pull request's issue thread.
#[derive(Clone, Debug)]
pub struct Comment {
    pub id: i64,
    pub body: String,
    /// The author's login; comments made through the API by the App are by `previewd[bot]`.
    pub user_login: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A deployment created through the API.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: i64,
    pub sha: String,
    /// The `ref` it was created with (branch, tag or sha).
    pub git_ref: String,
    pub environment: String,
    pub description: Option<String>,
    pub transient_environment: bool,
    pub production_environment: bool,
    pub auto_merge: bool,
    /// As sent; empty both when `[]` was sent and when the field was omitted (then GitHub checked
    /// every context before creating it).
    pub required_contexts: Vec<String>,
    pub payload: Value,
}

/// A status of a deployment.
#[derive(Clone, Debug)]
pub struct DeploymentStatus {
    pub id: i64,
    /// error | failure | inactive | in_progress | queued | pending | success.
    pub state: String,
    pub environment_url: Option<String>,
    /// `log_url`, or `target_url` when only that was sent.
    pub log_url: Option<String>,
    pub description: Option<String>,
}

/// One webhook delivery attempt (a redelivery is a new delivery with the same `guid`).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: i64,
    /// The `X-GitHub-Delivery` header.
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    /// The receiver's HTTP status; `None` when nothing answered (no URL, dropped, refused, timed out).
    pub status_code: Option<u16>,
    pub redelivery: bool,
    pub installation_id: Option<i64>,
    pub repository_id: Option<i64>,
}

/// What the simulator was asked, counted since start or the last [`super::GitHubSim::reset_calls`].
#[derive(Clone, Debug, Default)]
pub struct Calls {
    /// Every request that counts against GitHub's rate limit, answered or not: all but the
    /// conditional ones answered `304 Not Modified` (those are in `not_modified`).
    pub total: u64,
    /// Conditional requests answered `304 Not Modified` (free of rate limit, as on GitHub).
    pub not_modified: u64,
    /// By route key, e.g. `"POST /repos/{owner}/{repo}/check-runs"` (see [`super::routes::keys`]);
    /// unimplemented requests count under their literal `"METHOD /path"`. Without 304s.
    pub by_route: BTreeMap<String, u64>,
    /// Conditional requests answered `304 Not Modified`, by route key.
    pub not_modified_by_route: BTreeMap<String, u64>,
    /// Requests authenticated with an installation token, by installation (without 304s).
    pub by_installation: BTreeMap<i64, u64>,
    /// Installation tokens handed out.
    pub tokens_minted: u64,
    /// Codes the OAuth authorize page handed out.
    pub oauth_authorizations: u64,
    /// User-to-server tokens minted (sign-ins and refreshes).
    pub user_tokens_minted: u64,
    /// Refresh tokens exchanged.
    pub user_token_refreshes: u64,
    /// `"METHOD /path"` of requests the simulator does not implement, each once, first seen first.
    pub unimplemented: Vec<String>,
}
