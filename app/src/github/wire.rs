//! GitHub's wire shapes as previewd reads and writes them: octocrab's models wherever they
//! parse what GitHub sends, and previewd's own typed structs where they do not, each saying why.
//!
//! Bodies previewd sends are all its own structs (octocrab's builders cannot add check-run
//! `actions`, add a stray `check_run_id` to check-run updates, and update comments with `POST`).
//!
//! Where octocrab's model falls short:
//! - check runs: `octocrab::models::checks::CheckRun` has neither `status` nor `external_id`,
//!   and wants full pull-request objects where GitHub sends minimal ones → [`CheckRun`];
//! - installations: `octocrab::models::Installation` has no `suspended_at` → [`Installation`]
//!   (octocrab's model plus that field);
//! - collaborator permission: octocrab's `RepoPermission` reads `permission` as a team
//!   permission (`pull`/`push`/…) and fails on GitHub's `read`/`write`/`none` → [`RepoPermission`].

use serde::{Deserialize, Serialize};

/// A page of a listing: its items, whatever envelope GitHub puts around them.
pub(crate) trait Listing: serde::de::DeserializeOwned {
    type Item;
    fn into_items(self) -> Vec<Self::Item>;
}

impl<T: serde::de::DeserializeOwned> Listing for Vec<T> {
    type Item = T;
    fn into_items(self) -> Vec<T> {
        self
    }
}

// ----- responses -----

/// `GET /app/installations` items: octocrab's installation plus `suspended_at`.
#[derive(Debug, Deserialize)]
pub(crate) struct Installation {
    #[serde(flatten)]
    pub installation: octocrab::models::Installation,
    #[serde(default)]
    pub suspended_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /installation/repositories`: octocrab's model of the envelope.
impl Listing for octocrab::models::InstallationRepositories {
    type Item = octocrab::models::Repository;
    fn into_items(self) -> Vec<Self::Item> {
        self.repositories
    }
}

/// `GET /repos/{owner}/{repo}/collaborators/{username}/permission`.
#[derive(Debug, Deserialize)]
pub(crate) struct RepoPermission {
    /// The legacy base role: `admin`, `write`, `read` or `none` (maintain reads as write, triage
    /// as read, a custom role as the base role it was made from).
    pub permission: String,
    /// The real role: `admin`, `maintain`, `write`, `triage`, `read`, or a custom role's name.
    #[serde(default)]
    pub role_name: Option<String>,
}

/// A check run as previewd reads it back (finding its own by `external_id`).
#[derive(Debug, Deserialize)]
pub(crate) struct CheckRun {
    pub id: i64,
    pub external_id: Option<String>,
    #[serde(default)]
    pub app: Option<App>,
}

/// The App a check run or comment was made by.
#[derive(Debug, Deserialize)]
pub(crate) struct App {
    pub id: u64,
}

/// `GET /repos/{owner}/{repo}/commits/{ref}/check-runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct CheckRunList {
    pub check_runs: Vec<CheckRun>,
}

impl Listing for CheckRunList {
    type Item = CheckRun;
    fn into_items(self) -> Vec<CheckRun> {
        self.check_runs
    }
}

/// What previewd puts in a deployment's `payload`, and reads back to find its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DeploymentPayload {
    pub previewd: DeploymentMark,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DeploymentMark {
    /// The attempt (or other key) the deployment was made for.
    pub key: String,
}

// ----- request bodies -----

/// `POST /app/installations/{id}/access_tokens`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct TokenRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repositories: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_ids: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<std::collections::BTreeMap<String, String>>,
}

/// `output` of a check run.
#[derive(Debug, Serialize)]
pub(crate) struct CheckOutput {
    pub title: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A button of a check run.
#[derive(Debug, Serialize)]
pub(crate) struct CheckActionBody<'a> {
    pub label: &'a str,
    pub description: &'a str,
    pub identifier: &'a str,
}

/// `POST /repos/{owner}/{repo}/check-runs` and `PATCH …/check-runs/{id}` (without `name` and
/// `head_sha`, which GitHub does not change on update).
#[derive(Debug, Serialize)]
pub(crate) struct CheckRunBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<&'a str>,
    pub external_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<&'a str>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub output: CheckOutput,
    pub actions: Vec<CheckActionBody<'a>>,
}

/// `PATCH …/check-runs/{id}` with the output alone.
#[derive(Debug, Serialize)]
pub(crate) struct CheckOutputOnly {
    pub output: CheckOutput,
}

/// Comment create and update.
#[derive(Debug, Serialize)]
pub(crate) struct CommentBody<'a> {
    pub body: &'a str,
}

/// `POST /repos/{owner}/{repo}/deployments`.
#[derive(Debug, Serialize)]
pub(crate) struct DeploymentBody<'a> {
    #[serde(rename = "ref")]
    pub git_ref: &'a str,
    pub environment: &'a str,
    pub description: String,
    pub auto_merge: bool,
    pub required_contexts: [&'a str; 0],
    pub transient_environment: bool,
    pub production_environment: bool,
    pub payload: DeploymentPayload,
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
#[derive(Debug, Serialize)]
pub(crate) struct DeploymentStatusBody<'a> {
    pub state: &'static str,
    pub description: String,
    pub auto_inactive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<&'a str>,
}

/// An empty JSON object (`POST …/attempts` takes no parameters).
#[derive(Debug, Serialize)]
pub(crate) struct Empty {}
