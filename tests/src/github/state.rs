//! The simulated GitHub's memory: installations, repositories with their files and pull requests,
//! check runs, comments, deployments, tokens, webhook deliveries, call counters and armed faults.
//!
//! Everything lives in one [`State`] behind one `std::sync::Mutex` inside [`Shared`]; the lock is
//! only ever held by synchronous code (never across an `.await`). Repositories are keyed by their
//! lowercase full name because GitHub's owner and repository names are case-insensitive.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use chrono::{DateTime, Utc};
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::{
    GitHubSimOptions,
    faults::Faults,
    model::{Calls, CheckRun, CheckRunAction, Comment, Delivery, Deployment, DeploymentStatus, Pr},
};

/// The login of the App's bot user: author of everything the App writes.
pub const BOT_LOGIN: &str = "previewd[bot]";
/// The App's slug (`GET /app`).
pub const APP_SLUG: &str = "previewd";
/// The App's webhook id (`X-GitHub-Hook-ID`, `ping.hook_id`).
pub const HOOK_ID: i64 = 450_000_001;
/// Events the App subscribes to (app.yml), as reported in `GET /app` and `ping`.
pub const EVENTS: &[&str] = &["pull_request", "check_run", "check_suite", "issue_comment"];
/// Installation-token permissions (app.yml).
pub const PERMISSIONS: &[(&str, &str)] = &[
    ("checks", "write"),
    ("contents", "read"),
    ("deployments", "write"),
    ("issues", "write"),
    ("members", "read"),
    ("metadata", "read"),
    ("pull_requests", "read"),
];

/// What the server tasks and the test's handle share.
pub(crate) struct Shared {
    pub opts: GitHubSimOptions,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    pub jwt_key: DecodingKey,
    pub http: reqwest::Client,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(
        opts: GitHubSimOptions,
        base_url: String,
        jwt_key: DecodingKey,
        http: reqwest::Client,
    ) -> Self {
        Self {
            opts,
            base_url,
            jwt_key,
            http,
            state: Mutex::new(State::default()),
        }
    }

    /// The state. A panic elsewhere while it was held does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Id counters: each kind of object starts at a GitHub-sized number, several past `i32::MAX`.
pub(crate) struct Ids {
    installation: i64,
    repo: i64,
    pr: i64,
    issue: i64,
    check_run: i64,
    check_suite: i64,
    comment: i64,
    deployment: i64,
    status: i64,
    delivery: i64,
    label: i64,
}

impl Default for Ids {
    fn default() -> Self {
        Self {
            installation: 10_000_000,
            repo: 600_000_000,
            pr: 1_800_000_000,
            issue: 2_100_000_000,
            check_run: 20_000_000_000,
            check_suite: 25_000_000_000,
            comment: 2_400_000_000,
            deployment: 1_900_000_000,
            status: 3_100_000_000,
            delivery: 40_000_000_000,
            label: 7_000_000_000,
        }
    }
}

macro_rules! next_id {
    ($($name:ident),*) => {
        impl Ids {
            $(pub fn $name(&mut self) -> i64 {
                self.$name += 1;
                self.$name
            })*
        }
    };
}
next_id!(
    installation,
    repo,
    pr,
    issue,
    check_run,
    check_suite,
    comment,
    deployment,
    status,
    delivery,
    label
);

pub(crate) struct InstallationRec {
    pub id: i64,
    pub account: String,
    pub suspended: bool,
    /// When it was suspended (shown as `suspended_at` while `suspended`).
    pub suspended_at: DateTime<Utc>,
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
}

pub(crate) struct RepoRec {
    pub id: i64,
    pub installation_id: Option<i64>,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    /// Head of the default branch.
    pub default_sha: String,
    pub private: bool,
    pub created_at: DateTime<Utc>,
    /// Lowercase login → role (admin, maintain, write, triage, read).
    pub permissions: BTreeMap<String, String>,
    /// Lowercase login → (custom role name, the built-in role it was made from).
    pub custom_roles: BTreeMap<String, (String, String)>,
    /// (ref, path) → content.
    pub files: BTreeMap<(String, String), Vec<u8>>,
    pub prs: BTreeMap<u64, PrRec>,
    /// Refs and shas that exist in this repository (for the contents API's "No commit found").
    pub known_refs: BTreeSet<String>,
    /// Label name → id.
    pub labels: BTreeMap<String, i64>,
    /// Head sha → check suite id.
    pub suites: BTreeMap<String, i64>,
    /// Issue numbers are shared by issues and pull requests.
    pub next_number: u64,
}

impl RepoRec {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The sha a branch name points at, if the repository has that branch.
    pub fn branch_sha(&self, branch: &str) -> Option<String> {
        if branch == self.default_branch {
            return Some(self.default_sha.clone());
        }
        self.prs
            .values()
            .rev()
            .find(|p| !p.from_fork && p.head_ref == branch)
            .map(|p| p.head_sha.clone())
    }

    /// A branch pointing at `sha`, if any.
    pub fn sha_branch(&self, sha: &str) -> Option<String> {
        if sha == self.default_sha {
            return Some(self.default_branch.clone());
        }
        self.prs
            .values()
            .rev()
            .find(|p| p.head_sha == sha)
            .map(|p| p.head_ref.clone())
    }

    /// Resolves a ref (branch or sha) to a sha, if it names one the repository knows.
    pub fn resolve_sha(&self, git_ref: &str) -> Option<String> {
        let git_ref = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
        self.branch_sha(git_ref).or_else(|| {
            self.known_refs
                .contains(git_ref)
                .then(|| git_ref.to_owned())
        })
    }

    /// The file at `path` as of `git_ref`: exact ref first, then the same commit under its other
    /// name (branch ↔ sha), then the default branch the branch was cut from. `Err` when the ref
    /// itself is unknown.
    pub fn file(&self, git_ref: &str, path: &str) -> Result<Option<&Vec<u8>>, ()> {
        let git_ref = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
        let mut candidates = vec![git_ref.to_owned()];
        candidates.extend(self.branch_sha(git_ref));
        candidates.extend(self.sha_branch(git_ref));
        if !self.known_refs.contains(git_ref) && candidates.len() == 1 {
            return Err(());
        }
        candidates.push(self.default_branch.clone());
        candidates.push(self.default_sha.clone());
        Ok(candidates
            .iter()
            .find_map(|r| self.files.get(&(r.clone(), path.to_owned()))))
    }

    /// Paths directly under `dir` as of `git_ref` (files and subdirectories), for directory listings.
    pub fn dir_entries(&self, git_ref: &str, dir: &str) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut refs: BTreeSet<String> = BTreeSet::from([
            git_ref.to_owned(),
            self.default_branch.clone(),
            self.default_sha.clone(),
        ]);
        refs.extend(self.branch_sha(git_ref));
        refs.extend(self.sha_branch(git_ref));
        let dir = dir.trim_matches('/');
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out = BTreeMap::new();
        for ((r, p), content) in &self.files {
            if !refs.contains(r) {
                continue;
            }
            if let Some(rest) = p.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((sub, _)) => {
                        out.entry(format!("{prefix}{sub}")).or_insert(None);
                    }
                    None => {
                        out.insert(p.clone(), Some(content.clone()));
                    }
                }
            }
        }
        out
    }

    /// Files the pull request changes: those on its head (branch or sha) whose content differs
    /// from the default branch's, with `added` or `modified`.
    pub fn changed_files(&self, pr: &PrRec) -> Vec<(String, Vec<u8>, &'static str)> {
        let mut out = BTreeMap::new();
        for ((r, path), content) in &self.files {
            if *r != pr.head_sha && *r != pr.head_ref {
                continue;
            }
            let base = self
                .files
                .get(&(self.default_branch.clone(), path.clone()))
                .or_else(|| self.files.get(&(self.default_sha.clone(), path.clone())));
            match base {
                Some(b) if b == content => {}
                Some(_) => {
                    out.insert(path.clone(), (content.clone(), "modified"));
                }
                None => {
                    out.insert(path.clone(), (content.clone(), "added"));
                }
            }
        }
        out.into_iter().map(|(p, (c, s))| (p, c, s)).collect()
    }

    /// The role a login has on the repository (`none` if not a collaborator).
    pub fn role(&self, login: &str) -> String {
        self.permissions
            .get(&login.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| "none".to_owned())
    }
}

pub(crate) struct PrRec {
    pub id: i64,
    pub issue_id: i64,
    pub number: u64,
    pub title: String,
    pub author: String,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub from_fork: bool,
    /// Id of the fork the head lives in (only for fork pull requests).
    pub fork_repo_id: i64,
    pub labels: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub merged_at: Option<DateTime<Utc>>,
    pub merge_commit_sha: Option<String>,
}

impl PrRec {
    pub fn snapshot(&self, repo: &RepoRec) -> Pr {
        Pr {
            id: self.id,
            number: self.number,
            title: self.title.clone(),
            author: self.author.clone(),
            state: self.state.clone(),
            draft: self.draft,
            merged: self.merged,
            head_ref: self.head_ref.clone(),
            head_sha: self.head_sha.clone(),
            head_repo: if self.from_fork {
                format!("{}/{}", self.author, repo.name)
            } else {
                repo.full_name()
            },
            base_ref: self.base_ref.clone(),
            base_sha: self.base_sha.clone(),
            from_fork: self.from_fork,
            labels: self.labels.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            closed_at: self.closed_at,
            merged_at: self.merged_at,
        }
    }
}

pub(crate) struct CheckRunRec {
    pub repo: String,
    pub suite_id: i64,
    pub run: CheckRun,
    pub annotations_count: u64,
}

pub(crate) struct CommentRec {
    pub repo: String,
    pub number: u64,
    pub comment: Comment,
}

pub(crate) struct DeploymentRec {
    pub repo: String,
    pub task: String,
    pub original_environment: String,
    pub created_at: DateTime<Utc>,
    pub deployment: Deployment,
}

pub(crate) struct StatusRec {
    pub deployment_id: i64,
    pub environment: String,
    pub created_at: DateTime<Utc>,
    pub status: DeploymentStatus,
}

pub(crate) struct DeliveryRec {
    pub delivery: Delivery,
    pub body: Vec<u8>,
    pub request_headers: Vec<(String, String)>,
    pub response_body: String,
    pub delivered_at: DateTime<Utc>,
    pub duration_secs: f64,
    /// "OK", "Invalid HTTP Response: 503", "failed to connect", "timed out".
    pub status_text: String,
}

pub(crate) struct TokenRec {
    pub installation_id: i64,
    pub expires_at: DateTime<Utc>,
    pub uses: u64,
    pub scope: TokenScope,
}

/// What an installation token may reach: GitHub grants the installation's permissions and
/// repositories unless the mint asked for fewer.
#[derive(Clone, Debug, Default)]
pub(crate) struct TokenScope {
    /// Repository keys; `None`: every repository of the installation.
    pub repositories: Option<BTreeSet<String>>,
    /// Permission → `read` / `write`.
    pub permissions: BTreeMap<String, String>,
}

impl TokenScope {
    /// The installation's whole grant (app.yml).
    pub fn installation() -> Self {
        Self {
            repositories: None,
            permissions: PERMISSIONS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Whether the token holds `permission` at `level` or above (`write` includes `read`).
    pub fn allows(&self, permission: &str, level: &str) -> bool {
        let rank = |l: &str| match l {
            "read" => 1,
            "write" => 2,
            "admin" => 3,
            _ => 0,
        };
        self.permissions
            .get(permission)
            .is_some_and(|have| rank(have) >= rank(level))
    }
}

/// One answer as the simulator sent it, for checking against GitHub's published description.
#[derive(Clone, Debug)]
pub struct RecordedResponse {
    /// The route key, e.g. `GET /repos/{owner}/{repo}/pulls`.
    pub route: String,
    pub status: u16,
    pub body: Vec<u8>,
}

/// Whose rate-limit budget a request spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    Anonymous,
    App,
    Installation(i64),
    User(i64),
}

pub(crate) struct RateWindow {
    pub started: Instant,
    pub reset_epoch: i64,
    pub used: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub webhook_url: Option<String>,
    pub ids: Ids,
    pub installations: BTreeMap<i64, InstallationRec>,
    pub repos: BTreeMap<String, RepoRec>,
    pub check_runs: BTreeMap<i64, CheckRunRec>,
    pub comments: BTreeMap<i64, CommentRec>,
    pub deployments: BTreeMap<i64, DeploymentRec>,
    pub statuses: BTreeMap<i64, StatusRec>,
    /// In completion order; listings sort by id.
    pub deliveries: Vec<DeliveryRec>,
    pub tokens: HashMap<String, TokenRec>,
    pub rate: HashMap<Bucket, RateWindow>,
    pub calls: Calls,
    pub faults: Faults,
    /// Manifest-flow codes handed out by the "new App" pages, by code.
    pub manifests: BTreeMap<String, ManifestRec>,
    /// The App registered through the manifest flow, once its code was exchanged.
    pub registered: Option<RegisteredApp>,
    /// Answers kept for [`RecordedResponse`] (off unless a test asks).
    pub recording: bool,
    pub recorded: Vec<RecordedResponse>,
    /// People who signed in with the App's OAuth client: user id → login.
    pub users: BTreeMap<i64, String>,
    /// OAuth codes handed out by the authorize page, by code.
    pub oauth_codes: HashMap<String, OAuthCode>,
    /// User-to-server tokens (`ghu_…`) and refresh tokens (`ghr_…`).
    pub user_tokens: HashMap<String, UserToken>,
    pub refresh_tokens: HashMap<String, UserToken>,
    /// A test's override of how long user-to-server tokens live.
    pub user_token_lifetime: Option<chrono::Duration>,
    /// Organization teams: (org, team slug), lowercase → member logins, lowercase.
    pub teams: BTreeMap<(String, String), BTreeSet<String>>,
}

/// A code from `GET /login/oauth/authorize`, waiting to be exchanged.
pub(crate) struct OAuthCode {
    pub login: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge, when the client sent one.
    pub challenge: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A user-to-server or refresh token.
pub(crate) struct UserToken {
    pub user_id: i64,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
}

/// A manifest posted to a "new App" page, waiting for its code to be exchanged.
pub(crate) struct ManifestRec {
    pub manifest: Value,
    /// The account the App is registered under.
    pub owner: String,
    pub owner_type: &'static str,
    pub created_at: DateTime<Utc>,
    pub used: bool,
}

/// What the manifest flow created: from then on deliveries are signed with its webhook secret
/// and sent to its webhook URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredApp {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub owner: String,
    pub html_url: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    pub client_id: String,
    pub client_secret: String,
    /// The whole manifest GitHub received, as JSON.
    pub manifest: Value,
}

impl State {
    /// The secret deliveries are signed with: the registered App's, else the configured one.
    pub fn webhook_secret<'a>(&'a self, configured: &'a str) -> &'a str {
        self.registered
            .as_ref()
            .map_or(configured, |r| r.webhook_secret.as_str())
    }

    /// The key a repository is stored under.
    pub fn key(full_name: &str) -> String {
        full_name.to_ascii_lowercase()
    }

    pub fn repo(&self, full_name: &str) -> Option<&RepoRec> {
        self.repos.get(&Self::key(full_name))
    }

    /// The repository, or a panic naming it: the test asked about something it never created.
    pub fn repo_or_panic(&mut self, full_name: &str) -> &mut RepoRec {
        self.repos
            .get_mut(&Self::key(full_name))
            .unwrap_or_else(|| {
                panic!("github simulator: no repository {full_name:?} (add_repo it first)")
            })
    }

    pub fn pr_or_panic(&mut self, full_name: &str, number: u64) -> &mut PrRec {
        self.repo_or_panic(full_name)
            .prs
            .get_mut(&number)
            .unwrap_or_else(|| panic!("github simulator: no pull request {full_name}#{number}"))
    }

    /// Creates the repository (or moves it to `installation_id`) and returns its id.
    pub fn add_repo(&mut self, installation_id: i64, full_name: &str) -> i64 {
        let key = Self::key(full_name);
        if let Some(repo) = self.repos.get_mut(&key) {
            repo.installation_id = Some(installation_id);
            return repo.id;
        }
        let (owner, name) = full_name.split_once('/').unwrap_or_else(|| {
            panic!("github simulator: repository {full_name:?} is not owner/name")
        });
        let id = self.ids.repo();
        let default_sha = super::encoding::random_hex(40);
        self.repos.insert(
            key,
            RepoRec {
                id,
                installation_id: Some(installation_id),
                owner: owner.to_owned(),
                name: name.to_owned(),
                default_branch: "main".to_owned(),
                known_refs: BTreeSet::from(["main".to_owned(), default_sha.clone()]),
                default_sha,
                private: true,
                created_at: Utc::now(),
                permissions: BTreeMap::new(),
                custom_roles: BTreeMap::new(),
                files: BTreeMap::new(),
                prs: BTreeMap::new(),
                labels: BTreeMap::new(),
                suites: BTreeMap::new(),
                next_number: 1,
            },
        );
        id
    }

    /// The label's id in that repository, creating the label on first use (as GitHub does when a
    /// label is added to an issue).
    pub fn label_id(&mut self, repo_key: &str, name: &str) -> i64 {
        if let Some(id) = self.repos.get(repo_key).and_then(|r| r.labels.get(name)) {
            return *id;
        }
        let id = self.ids.label();
        if let Some(repo) = self.repos.get_mut(repo_key) {
            repo.labels.insert(name.to_owned(), id);
        }
        id
    }

    /// The check suite of `sha` in that repository, created on first use.
    pub fn suite_id(&mut self, repo_key: &str, sha: &str) -> i64 {
        if let Some(id) = self.repos.get(repo_key).and_then(|r| r.suites.get(sha)) {
            return *id;
        }
        let id = self.ids.check_suite();
        if let Some(repo) = self.repos.get_mut(repo_key) {
            repo.suites.insert(sha.to_owned(), id);
        }
        id
    }

    /// Counts a request under its route key.
    pub fn count_call(&mut self, route_key: &str) {
        self.calls.total += 1;
        *self.calls.by_route.entry(route_key.to_owned()).or_default() += 1;
    }

    pub fn record_unimplemented(&mut self, what: &str) {
        if !self.calls.unimplemented.iter().any(|u| u == what) {
            self.calls.unimplemented.push(what.to_owned());
        }
    }

    pub fn check_run_snapshots(&self, repo_key: &str, sha: &str) -> Vec<CheckRun> {
        self.check_runs
            .values()
            .filter(|c| c.repo == repo_key && c.run.head_sha == sha)
            .map(|c| c.run.clone())
            .collect()
    }

    pub fn comment_snapshots(&self, repo_key: &str, number: u64) -> Vec<Comment> {
        self.comments
            .values()
            .filter(|c| c.repo == repo_key && c.number == number)
            .map(|c| c.comment.clone())
            .collect()
    }

    /// Deployment statuses of one deployment, oldest first.
    pub fn statuses_of(&self, deployment_id: i64) -> Vec<&StatusRec> {
        self.statuses
            .values()
            .filter(|s| s.deployment_id == deployment_id)
            .collect()
    }

    pub fn delivery(&self, id: i64) -> Option<&DeliveryRec> {
        self.deliveries.iter().find(|d| d.delivery.id == id)
    }
}

/// `CheckRunAction` from its JSON form (already validated).
pub(crate) fn action_from_json(v: &Value) -> CheckRunAction {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    CheckRunAction {
        label: s("label"),
        description: s("description"),
        identifier: s("identifier"),
    }
}
