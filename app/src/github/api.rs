//! The GitHub operations previewd performs, in previewd's terms. Each is one REST call (plus
//! the client's retries); ids GitHub returns are handed back so callers store them in the
//! database instead of listing later (DESIGN.md §5, "few calls per lifecycle").

use base64::Engine as _;
use serde_json::{Value, json};

use super::{
    GitHub, GitHubError, RepoName,
    client::{ApiResponse, Auth},
    encode_path, encode_segment,
};

/// A user's permission on a repository, as the collaborator permission API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Admin,
    Maintain,
    Write,
    Triage,
    Read,
    None,
}

impl Permission {
    /// True for write, maintain and admin: those may approve and trigger deploys.
    pub fn can_write(self) -> bool {
        matches!(self, Self::Admin | Self::Maintain | Self::Write)
    }

    fn from_api(body: &Value) -> Self {
        // `role_name` distinguishes maintain/triage; `permission` is the legacy coarse level.
        let role = body["role_name"]
            .as_str()
            .or_else(|| body["permission"].as_str());
        match role.unwrap_or("none") {
            "admin" => Self::Admin,
            "maintain" => Self::Maintain,
            "write" => Self::Write,
            "triage" => Self::Triage,
            "read" => Self::Read,
            _ => Self::None,
        }
    }
}

/// The status part of a check run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed(Conclusion),
}

/// How a completed check run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Success,
    Failure,
    Cancelled,
    Neutral,
    ActionRequired,
    TimedOut,
}

impl Conclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
            Self::Neutral => "neutral",
            Self::ActionRequired => "action_required",
            Self::TimedOut => "timed_out",
        }
    }
}

/// A button on a check run (GitHub allows 3; label ≤ 20, description ≤ 40, identifier ≤ 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckAction {
    pub label: &'static str,
    pub description: &'static str,
    pub identifier: &'static str,
}

/// Everything a check run shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRunReport {
    pub head_sha: String,
    pub status: CheckStatus,
    pub external_id: String,
    pub details_url: Option<String>,
    pub title: String,
    pub summary: String,
    pub text: Option<String>,
    pub actions: Vec<CheckAction>,
}

/// The check run's name on every commit.
pub const CHECK_RUN_NAME: &str = "Preview";

/// GitHub's limits on check run output.
const MAX_SUMMARY: usize = 65_535;

impl CheckRunReport {
    fn to_json(&self, create: bool) -> Value {
        let mut body = json!({
            "external_id": self.external_id,
            "output": {
                "title": crate::sanitize::cap(&self.title, 255),
                "summary": crate::sanitize::cap(&self.summary, MAX_SUMMARY),
            },
            "actions": self.actions.iter().map(|a| json!({
                "label": a.label, "description": a.description, "identifier": a.identifier,
            })).collect::<Vec<_>>(),
        });
        if create {
            body["name"] = json!(CHECK_RUN_NAME);
            body["head_sha"] = json!(self.head_sha);
        }
        if let Some(text) = &self.text {
            body["output"]["text"] = json!(crate::sanitize::cap(text, MAX_SUMMARY));
        }
        if let Some(url) = &self.details_url {
            body["details_url"] = json!(url);
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match self.status {
            CheckStatus::Queued => body["status"] = json!("queued"),
            CheckStatus::InProgress => {
                body["status"] = json!("in_progress");
                body["started_at"] = json!(now);
            }
            CheckStatus::Completed(conclusion) => {
                body["status"] = json!("completed");
                body["conclusion"] = json!(conclusion.as_str());
                body["completed_at"] = json!(now);
            }
        }
        body
    }
}

/// A deployment status state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
}

impl DeploymentState {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Error => "error",
            Self::Inactive => "inactive",
        }
    }
}

/// One delivery in the App's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDelivery {
    pub id: i64,
    pub guid: String,
    /// The receiver's HTTP status; 0 when nothing answered.
    pub status_code: u16,
    pub redelivery: bool,
    pub event: String,
}

/// A deployment status to add.
#[derive(Debug, Clone, Copy)]
pub struct DeploymentStatus<'a> {
    pub state: DeploymentState,
    /// The preview's URL ("View deployment").
    pub environment_url: Option<&'a str>,
    /// Where to read more (the dashboard).
    pub log_url: Option<&'a str>,
    pub description: &'a str,
}

fn id_of(response: &ApiResponse, operation: &str) -> Result<i64, GitHubError> {
    response.body["id"].as_i64().ok_or_else(|| GitHubError {
        operation: operation.to_owned(),
        status: Some(response.status),
        message: "answer has no id".into(),
        retryable: false,
    })
}

impl GitHub {
    /// `user`'s permission on `repo`.
    pub async fn permission(
        &self,
        installation: i64,
        repo: &RepoName,
        user: &str,
    ) -> Result<Permission, GitHubError> {
        let path = format!(
            "/repos/{repo}/collaborators/{}/permission",
            encode_segment(user)
        );
        match self.get(Auth::Installation(installation), &path).await {
            Ok(r) => Ok(Permission::from_api(&r.body)),
            // Not a collaborator at all.
            Err(e) if e.is_not_found() => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    /// The contents API's answer for `path` at `git_ref`; `None` when nothing is there.
    async fn contents(
        &self,
        installation: i64,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<ApiResponse>, GitHubError> {
        let url = format!(
            "/repos/{repo}/contents/{}?ref={}",
            encode_path(path),
            encode_segment(git_ref)
        );
        match self.get(Auth::Installation(installation), &url).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The text of `path` at `git_ref`, or `None` when the file does not exist there.
    pub async fn file(
        &self,
        installation: i64,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<String>, GitHubError> {
        let Some(response) = self.contents(installation, repo, path, git_ref).await? else {
            return Ok(None);
        };
        let invalid = |message: &str| GitHubError {
            operation: "GET /repos/{owner}/{repo}/contents/{path}".into(),
            status: Some(response.status),
            message: message.to_owned(),
            retryable: false,
        };
        if response.body["type"].as_str() != Some("file") {
            return Err(invalid("is not a file"));
        }
        let encoded: String = response.body["content"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| invalid("content is not base64"))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| invalid("is not UTF-8 text"))
    }

    /// The entries of directory `path` at `git_ref`: (path, is_dir); `None` when it does not exist.
    pub async fn directory(
        &self,
        installation: i64,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<Vec<(String, bool)>>, GitHubError> {
        let Some(response) = self.contents(installation, repo, path, git_ref).await? else {
            return Ok(None);
        };
        let Some(entries) = response.body.as_array() else {
            return Ok(None); // a file, not a directory
        };
        Ok(Some(
            entries
                .iter()
                .filter_map(|e| {
                    Some((e["path"].as_str()?.to_owned(), e["type"].as_str()? == "dir"))
                })
                .collect(),
        ))
    }

    /// Paths of the files a pull request changes (first 300, as GitHub pages them).
    pub async fn pull_request_files(
        &self,
        installation: i64,
        repo: &RepoName,
        number: u64,
    ) -> Result<Vec<String>, GitHubError> {
        let mut files = Vec::new();
        for page in 1..=3 {
            let url = format!("/repos/{repo}/pulls/{number}/files?per_page=100&page={page}");
            let r = self.get(Auth::Installation(installation), &url).await?;
            let batch: Vec<String> = r
                .body
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["filename"].as_str().map(str::to_owned))
                .collect();
            let done = batch.len() < 100;
            files.extend(batch);
            if done {
                break;
            }
        }
        Ok(files)
    }

    /// The open pull requests of `repo` (up to 1,000, newest first).
    pub async fn open_pull_requests(
        &self,
        installation: i64,
        repo: &RepoName,
        repo_id: i64,
    ) -> Result<Vec<super::webhook::PullRequest>, GitHubError> {
        let mut all = Vec::new();
        for page in 1..=10 {
            let url = format!("/repos/{repo}/pulls?state=open&per_page=100&page={page}");
            let r = self.get(Auth::Installation(installation), &url).await?;
            let batch = r.body.as_array().cloned().unwrap_or_default();
            let done = batch.len() < 100;
            for p in batch {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                all.push(super::webhook::PullRequest {
                    number: p["number"].as_u64().unwrap_or_default(),
                    title: text(&p["title"]),
                    author: text(&p["user"]["login"]),
                    head_ref: text(&p["head"]["ref"]),
                    head_sha: text(&p["head"]["sha"]),
                    base_ref: text(&p["base"]["ref"]),
                    from_fork: p["head"]["repo"]["id"].as_i64() != Some(repo_id),
                    draft: p["draft"].as_bool().unwrap_or(false),
                    merged: false,
                    labels: p["labels"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| l["name"].as_str().map(str::to_owned))
                        .collect(),
                });
            }
            if done {
                break;
            }
        }
        Ok(all)
    }

    /// The App's installations: (id, account login, account type, suspended).
    pub async fn installations(&self) -> Result<Vec<(i64, String, String, bool)>, GitHubError> {
        let r = self
            .get(Auth::App, "/app/installations?per_page=100")
            .await?;
        Ok(r.body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i["id"].as_i64()?,
                    i["account"]["login"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    i["account"]["type"].as_str().unwrap_or_default().to_owned(),
                    !i["suspended_at"].is_null(),
                ))
            })
            .collect())
    }

    /// The repositories an installation can see (up to 1,000).
    pub async fn installation_repositories(
        &self,
        installation: i64,
    ) -> Result<Vec<super::webhook::Repo>, GitHubError> {
        let mut all = Vec::new();
        for page in 1..=10 {
            let r = self
                .get(
                    Auth::Installation(installation),
                    &format!("/installation/repositories?per_page=100&page={page}"),
                )
                .await?;
            let batch = r.body["repositories"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let done = batch.len() < 100;
            all.extend(batch.iter().filter_map(|repo| {
                Some(super::webhook::Repo {
                    id: repo["id"].as_i64()?,
                    name: RepoName::parse(repo["full_name"].as_str()?)?,
                    default_branch: repo["default_branch"].as_str().unwrap_or("main").to_owned(),
                    private: repo["private"].as_bool().unwrap_or(true),
                })
            }));
            if done {
                break;
            }
        }
        Ok(all)
    }

    /// The App's recent webhook deliveries (newest first, up to 100).
    pub async fn hook_deliveries(&self) -> Result<Vec<HookDelivery>, GitHubError> {
        let r = self
            .get(Auth::App, "/app/hook/deliveries?per_page=100")
            .await?;
        Ok(r.body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                Some(HookDelivery {
                    id: d["id"].as_i64()?,
                    guid: d["guid"].as_str()?.to_owned(),
                    status_code: d["status_code"]
                        .as_u64()
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(0),
                    redelivery: d["redelivery"].as_bool().unwrap_or(false),
                    event: d["event"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// Asks GitHub to deliver a webhook delivery again.
    pub async fn redeliver(&self, delivery_id: i64) -> Result<(), GitHubError> {
        self.post(
            Auth::App,
            &format!("/app/hook/deliveries/{delivery_id}/attempts"),
            &json!({}),
        )
        .await
        .map(drop)
    }

    /// Creates a check run; returns its id.
    pub async fn create_check_run(
        &self,
        installation: i64,
        repo: &RepoName,
        report: &CheckRunReport,
    ) -> Result<i64, GitHubError> {
        let path = format!("/repos/{repo}/check-runs");
        let r = self
            .post(
                Auth::Installation(installation),
                &path,
                &report.to_json(true),
            )
            .await?;
        id_of(&r, "POST /repos/{owner}/{repo}/check-runs")
    }

    /// Updates a check run in place.
    pub async fn update_check_run(
        &self,
        installation: i64,
        repo: &RepoName,
        id: i64,
        report: &CheckRunReport,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/check-runs/{id}");
        self.patch(
            Auth::Installation(installation),
            &path,
            &report.to_json(false),
        )
        .await
        .map(drop)
    }

    /// Replaces only the title and summary of a check run (its status and conclusion stay).
    pub async fn update_check_run_output(
        &self,
        installation: i64,
        repo: &RepoName,
        id: i64,
        title: &str,
        summary: &str,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/check-runs/{id}");
        let body = json!({ "output": { "title": crate::sanitize::cap(title, 255), "summary": crate::sanitize::cap(summary, MAX_SUMMARY) } });
        self.patch(Auth::Installation(installation), &path, &body)
            .await
            .map(drop)
    }

    /// Posts a comment on a pull request; returns its id.
    pub async fn create_comment(
        &self,
        installation: i64,
        repo: &RepoName,
        number: u64,
        body: &str,
    ) -> Result<i64, GitHubError> {
        let path = format!("/repos/{repo}/issues/{number}/comments");
        let r = self
            .post(
                Auth::Installation(installation),
                &path,
                &json!({ "body": body }),
            )
            .await?;
        id_of(&r, "POST /repos/{owner}/{repo}/issues/{id}/comments")
    }

    /// Replaces a comment's body.
    pub async fn update_comment(
        &self,
        installation: i64,
        repo: &RepoName,
        id: i64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/issues/comments/{id}");
        self.patch(
            Auth::Installation(installation),
            &path,
            &json!({ "body": body }),
        )
        .await
        .map(drop)
    }

    /// The id of the first comment on the pull request whose body contains `marker` (first 100
    /// comments; used only when the database lost the id).
    pub async fn find_comment(
        &self,
        installation: i64,
        repo: &RepoName,
        number: u64,
        marker: &str,
    ) -> Result<Option<i64>, GitHubError> {
        let path = format!("/repos/{repo}/issues/{number}/comments?per_page=100");
        let r = self.get(Auth::Installation(installation), &path).await?;
        Ok(r.body.as_array().into_iter().flatten().find_map(|c| {
            c["body"]
                .as_str()
                .filter(|b| b.contains(marker))
                .and(c["id"].as_i64())
        }))
    }

    /// Creates a transient, non-production deployment of `sha`; returns its id.
    pub async fn create_deployment(
        &self,
        installation: i64,
        repo: &RepoName,
        sha: &str,
        environment: &str,
        description: &str,
    ) -> Result<i64, GitHubError> {
        let path = format!("/repos/{repo}/deployments");
        let body = json!({
            "ref": sha,
            "environment": environment,
            "description": crate::sanitize::cap(description, 140),
            "auto_merge": false,
            "required_contexts": [],
            "transient_environment": true,
            "production_environment": false,
            "payload": { "previewd": true },
        });
        let r = self
            .post(Auth::Installation(installation), &path, &body)
            .await?;
        id_of(&r, "POST /repos/{owner}/{repo}/deployments")
    }

    /// Adds a status to a deployment.
    pub async fn create_deployment_status(
        &self,
        installation: i64,
        repo: &RepoName,
        deployment: i64,
        status: &DeploymentStatus<'_>,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/deployments/{deployment}/statuses");
        let mut body = json!({
            "state": status.state.as_str(),
            "description": crate::sanitize::cap(status.description, 140),
            "auto_inactive": false,
        });
        if let Some(url) = status.environment_url {
            body["environment_url"] = json!(url);
        }
        if let Some(url) = status.log_url {
            body["log_url"] = json!(url);
        }
        self.post(Auth::Installation(installation), &path, &body)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_role_names() {
        assert_eq!(
            Permission::from_api(&json!({"permission": "write", "role_name": "maintain"})),
            Permission::Maintain
        );
        assert_eq!(
            Permission::from_api(&json!({"permission": "read"})),
            Permission::Read
        );
        assert!(Permission::Admin.can_write() && !Permission::Triage.can_write());
    }

    #[test]
    fn check_run_json_has_githubs_fields() {
        let report = CheckRunReport {
            head_sha: "abc".into(),
            status: CheckStatus::Completed(Conclusion::Success),
            external_id: "17".into(),
            details_url: Some("https://previewd.example.com/previews/1".into()),
            title: "Preview ready".into(),
            summary: "s".into(),
            text: None,
            actions: vec![CheckAction {
                label: "Redeploy",
                description: "Deploy this commit again",
                identifier: "redeploy",
            }],
        };
        let created = report.to_json(true);
        assert_eq!(created["name"], CHECK_RUN_NAME);
        assert_eq!(created["conclusion"], "success");
        assert_eq!(created["actions"][0]["identifier"], "redeploy");
        let updated = report.to_json(false);
        assert!(updated.get("name").is_none() && updated.get("head_sha").is_none());
    }
}
