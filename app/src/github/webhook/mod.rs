//! Webhook deliveries at the edge: [`extract`] turns an HTTP request into a [`Delivery`]
//! (signature over the raw body, GitHub's headers, the parsed event) or a [`Refusal`];
//! [`verify`] holds the signature check; this module parses payloads into previewd's own event
//! types. Nothing of GitHub's payload shape passes here: handlers get an [`Event`] with just the
//! fields previewd acts on, and events it does not act on become [`Event::Ignored`] with the
//! reason, answered 2xx and dropped at the edge.

pub mod extract;
pub mod verify;

use serde::Deserialize;

pub use extract::{Delivery, Refusal, UnverifiedBodies, WebhookSecret};
pub use verify::{sign, verify_signature};

use super::RepoName;

/// Events GitHub sends that previewd understands; everything else is ignored.
pub const HANDLED_EVENTS: [&str; 7] = [
    "pull_request",
    "check_run",
    "check_suite",
    "issue_comment",
    "installation",
    "installation_repositories",
    "ping",
];

/// A repository as events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    pub id: i64,
    pub name: RepoName,
    pub default_branch: String,
    pub private: bool,
}

/// A pull request as events describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    pub author: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    /// The head branch lives in another repository.
    pub from_fork: bool,
    pub draft: bool,
    pub merged: bool,
    pub labels: Vec<String>,
}

/// What happened to a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    Reopened,
    Synchronize,
    Closed,
    Labeled,
    Unlabeled,
    ReadyForReview,
    ConvertedToDraft,
    /// Edited with a changed base branch (other edits are ignored).
    BaseChanged,
}

/// What was asked of a check run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckRunAction {
    /// "Re-run" in GitHub's UI.
    Rerequested,
    /// One of the check run's buttons.
    RequestedAction(String),
}

/// A delivery, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping,
    PullRequest {
        action: PullRequestAction,
        installation: i64,
        repo: Repo,
        pr: PullRequest,
        sender: String,
        /// The label added or removed (labeled / unlabeled).
        label: Option<String>,
    },
    CheckRun {
        action: CheckRunAction,
        installation: i64,
        repo: Repo,
        check_run_id: i64,
        head_sha: String,
        external_id: Option<String>,
        pull_requests: Vec<u64>,
        sender: String,
    },
    CheckSuiteRerequested {
        installation: i64,
        repo: Repo,
        head_sha: String,
        pull_requests: Vec<u64>,
        sender: String,
    },
    /// A new comment on a pull request (comments on plain issues are ignored).
    PullRequestComment {
        installation: i64,
        repo: Repo,
        number: u64,
        body: String,
        sender: String,
    },
    Installation {
        action: InstallationAction,
        installation: i64,
        account: String,
        account_type: String,
        repos: Vec<(i64, RepoName)>,
    },
    InstallationRepositories {
        installation: i64,
        added: Vec<(i64, RepoName)>,
        removed: Vec<(i64, RepoName)>,
    },
    /// A person revoked their authorization of the App (`github_app_authorization.revoked`):
    /// their dashboard sessions end.
    AuthorizationRevoked {
        user_id: i64,
        login: String,
    },
    /// Delivered, understood, and not acted on.
    Ignored {
        reason: String,
    },
}

/// What happened to an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationAction {
    Created,
    Deleted,
    Suspend,
    Unsuspend,
}

/// A delivery that is not what it claims to be.
#[derive(Debug, thiserror::Error)]
#[error("malformed {event} payload: {message}")]
pub struct ParseError {
    pub event: String,
    pub message: String,
}

// Wire shapes: only the fields previewd reads; serde ignores the rest.

#[derive(Deserialize)]
struct WireUser {
    login: String,
}

#[derive(Deserialize)]
struct WireInstallation {
    id: i64,
}

#[derive(Deserialize)]
struct WireRepo {
    id: i64,
    full_name: String,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default)]
    private: bool,
}

#[derive(Deserialize)]
struct WireLabel {
    name: String,
}

#[derive(Deserialize)]
struct WireBranch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo: Option<WireRepoRef>,
}

#[derive(Deserialize)]
struct WireRepoRef {
    id: i64,
}

#[derive(Deserialize)]
struct WirePullRequest {
    number: u64,
    #[serde(default)]
    title: String,
    user: WireUser,
    head: WireBranch,
    base: WireBranch,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    labels: Vec<WireLabel>,
}

#[derive(Deserialize)]
struct WirePullRequestEvent {
    action: String,
    pull_request: WirePullRequest,
    repository: WireRepo,
    installation: WireInstallation,
    sender: WireUser,
    label: Option<WireLabel>,
    #[serde(default)]
    changes: WireChanges,
}

/// `changes` of `pull_request.edited`: only whether the base changed matters.
#[derive(Deserialize, Default)]
struct WireChanges {
    #[serde(default)]
    base: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct WirePrRef {
    number: u64,
}

#[derive(Deserialize)]
struct WireCheckRun {
    id: i64,
    head_sha: String,
    external_id: Option<String>,
    #[serde(default)]
    pull_requests: Vec<WirePrRef>,
}

#[derive(Deserialize)]
struct WireRequestedAction {
    identifier: String,
}

#[derive(Deserialize)]
struct WireCheckRunEvent {
    action: String,
    check_run: WireCheckRun,
    repository: WireRepo,
    installation: WireInstallation,
    sender: WireUser,
    requested_action: Option<WireRequestedAction>,
}

#[derive(Deserialize)]
struct WireCheckSuite {
    head_sha: String,
    #[serde(default)]
    pull_requests: Vec<WirePrRef>,
}

#[derive(Deserialize)]
struct WireCheckSuiteEvent {
    action: String,
    check_suite: WireCheckSuite,
    repository: WireRepo,
    installation: WireInstallation,
    sender: WireUser,
}

#[derive(Deserialize)]
struct WireIssue {
    number: u64,
    /// Present (whatever it holds) when the issue is a pull request.
    #[serde(default)]
    pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct WireComment {
    body: String,
}

#[derive(Deserialize)]
struct WireIssueCommentEvent {
    action: String,
    issue: WireIssue,
    comment: WireComment,
    repository: WireRepo,
    installation: WireInstallation,
    sender: WireUser,
}

#[derive(Deserialize)]
struct WireAccount {
    login: String,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct WireFullInstallation {
    id: i64,
    account: WireAccount,
}

#[derive(Deserialize)]
struct WireRepoBrief {
    id: i64,
    full_name: String,
}

#[derive(Deserialize)]
struct WireAuthorizationEvent {
    action: String,
    sender: WireSender,
}

#[derive(Deserialize)]
struct WireSender {
    id: i64,
    login: String,
}

#[derive(Deserialize)]
struct WireInstallationEvent {
    action: String,
    installation: WireFullInstallation,
    #[serde(default)]
    repositories: Vec<WireRepoBrief>,
}

#[derive(Deserialize)]
struct WireInstallationReposEvent {
    action: String,
    installation: WireInstallation,
    #[serde(default)]
    repositories_added: Vec<WireRepoBrief>,
    #[serde(default)]
    repositories_removed: Vec<WireRepoBrief>,
}

#[derive(Deserialize)]
struct WireActionOnly {
    action: Option<String>,
}

/// The `action` field of a payload, for the delivery record.
pub fn action_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<WireActionOnly>(body).ok()?.action
}

fn ignored(reason: impl Into<String>) -> Event {
    Event::Ignored {
        reason: reason.into(),
    }
}

fn repo(wire: WireRepo, event: &str) -> Result<Repo, ParseError> {
    let name = RepoName::parse(&wire.full_name).ok_or_else(|| ParseError {
        event: event.to_owned(),
        message: "repository.full_name is not owner/name".into(),
    })?;
    Ok(Repo {
        id: wire.id,
        name,
        default_branch: wire.default_branch.unwrap_or_else(|| "main".into()),
        private: wire.private,
    })
}

fn brief_repos(list: Vec<WireRepoBrief>) -> Vec<(i64, RepoName)> {
    list.into_iter()
        .filter_map(|r| RepoName::parse(&r.full_name).map(|n| (r.id, n)))
        .collect()
}

/// Parses the body of a delivery of `event` (the `X-GitHub-Event` header).
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    let parsed = parse_unchecked(event, body)?;
    validate(&parsed).map_err(|message| ParseError {
        event: event.to_owned(),
        message,
    })?;
    Ok(parsed)
}

/// The values previewd passes on — to GitHub's API, the cluster, image tags and builds — are
/// within GitHub's own rules, checked here once: shas are 40 hex digits, branch names are
/// git refs (no part over 255 bytes, no control characters or `..`), logins are GitHub logins.
fn validate(event: &Event) -> Result<(), String> {
    fn sha(field: &str, value: &str) -> Result<(), String> {
        if value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(format!("{field} is not a 40-hex-digit commit sha"))
        }
    }
    fn branch(field: &str, value: &str) -> Result<(), String> {
        // A ref is stored as a path: no part of it over 255 bytes.
        let bad = value.is_empty()
            || value.len() > 1024
            || value.split('/').any(|part| part.len() > 255)
            || value.contains("..")
            || value.starts_with('/')
            || value.ends_with('/')
            || value.ends_with(".lock")
            || value.chars().any(|c| {
                c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
            });
        if bad {
            Err(format!("{field} is not a valid branch name"))
        } else {
            Ok(())
        }
    }
    fn login(field: &str, value: &str) -> Result<(), String> {
        // People: up to 39 letters, digits and hyphens; Apps: the same with `[bot]`.
        let name = value.strip_suffix("[bot]").unwrap_or(value);
        if !name.is_empty()
            && name.len() <= 39
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(())
        } else {
            Err(format!("{field} is not a GitHub login"))
        }
    }
    match event {
        Event::PullRequest { pr, sender, .. } => {
            sha("pull_request.head.sha", &pr.head_sha)?;
            branch("pull_request.head.ref", &pr.head_ref)?;
            branch("pull_request.base.ref", &pr.base_ref)?;
            login("pull_request.user.login", &pr.author)?;
            login("sender.login", sender)
        }
        Event::CheckRun {
            head_sha, sender, ..
        }
        | Event::CheckSuiteRerequested {
            head_sha, sender, ..
        } => {
            sha("head_sha", head_sha)?;
            login("sender.login", sender)
        }
        Event::PullRequestComment { sender, .. } => login("sender.login", sender),
        Event::AuthorizationRevoked { login: who, .. } => login("sender.login", who),
        Event::Ping
        | Event::Installation { .. }
        | Event::InstallationRepositories { .. }
        | Event::Ignored { .. } => Ok(()),
    }
}

fn parse_unchecked(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    let bad = |e: serde_json::Error| ParseError {
        event: event.to_owned(),
        message: e.to_string(),
    };
    // Every delivery must be a JSON object, whatever the event. Each event's shape is read
    // straight from the bytes into its small wire type (no intermediate tree: payloads run to
    // tens of kilobytes and most of it is skipped).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ParseError {
            event: event.to_owned(),
            message: "body is not a JSON object".into(),
        });
    }
    let well_formed = || {
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map(drop)
            .map_err(bad)
    };
    match event {
        "ping" => {
            well_formed()?;
            Ok(Event::Ping)
        }
        "pull_request" => {
            let w: WirePullRequestEvent = serde_json::from_slice(body).map_err(bad)?;
            let action = match w.action.as_str() {
                "opened" => PullRequestAction::Opened,
                "reopened" => PullRequestAction::Reopened,
                "synchronize" => PullRequestAction::Synchronize,
                "closed" => PullRequestAction::Closed,
                "labeled" => PullRequestAction::Labeled,
                "unlabeled" => PullRequestAction::Unlabeled,
                "ready_for_review" => PullRequestAction::ReadyForReview,
                "converted_to_draft" => PullRequestAction::ConvertedToDraft,
                "edited" if w.changes.base.is_some() => PullRequestAction::BaseChanged,
                other => return Ok(ignored(format!("pull_request.{other} is not acted on"))),
            };
            let repository = repo(w.repository, event)?;
            let from_fork = w.pull_request.head.repo.as_ref().map(|r| r.id) != Some(repository.id);
            let pr = PullRequest {
                number: w.pull_request.number,
                title: w.pull_request.title,
                author: w.pull_request.user.login,
                head_ref: w.pull_request.head.git_ref,
                head_sha: w.pull_request.head.sha,
                base_ref: w.pull_request.base.git_ref,
                from_fork,
                draft: w.pull_request.draft,
                merged: w.pull_request.merged.unwrap_or(false),
                labels: w.pull_request.labels.into_iter().map(|l| l.name).collect(),
            };
            let _ = w.pull_request.base.sha;
            Ok(Event::PullRequest {
                action,
                installation: w.installation.id,
                repo: repository,
                pr,
                sender: w.sender.login,
                label: w.label.map(|l| l.name),
            })
        }
        "check_run" => {
            let w: WireCheckRunEvent = serde_json::from_slice(body).map_err(bad)?;
            let action = match (w.action.as_str(), w.requested_action) {
                ("rerequested", _) => CheckRunAction::Rerequested,
                ("requested_action", Some(a)) => CheckRunAction::RequestedAction(a.identifier),
                ("requested_action", None) => {
                    return Err(ParseError {
                        event: event.to_owned(),
                        message: "requested_action without requested_action.identifier".into(),
                    });
                }
                (other, _) => return Ok(ignored(format!("check_run.{other} is not acted on"))),
            };
            Ok(Event::CheckRun {
                action,
                installation: w.installation.id,
                repo: repo(w.repository, event)?,
                check_run_id: w.check_run.id,
                head_sha: w.check_run.head_sha,
                external_id: w.check_run.external_id,
                pull_requests: w
                    .check_run
                    .pull_requests
                    .into_iter()
                    .map(|p| p.number)
                    .collect(),
                sender: w.sender.login,
            })
        }
        "check_suite" => {
            let w: WireCheckSuiteEvent = serde_json::from_slice(body).map_err(bad)?;
            if w.action != "rerequested" {
                return Ok(ignored(format!("check_suite.{} is not acted on", w.action)));
            }
            Ok(Event::CheckSuiteRerequested {
                installation: w.installation.id,
                repo: repo(w.repository, event)?,
                head_sha: w.check_suite.head_sha,
                pull_requests: w
                    .check_suite
                    .pull_requests
                    .into_iter()
                    .map(|p| p.number)
                    .collect(),
                sender: w.sender.login,
            })
        }
        "issue_comment" => {
            let w: WireIssueCommentEvent = serde_json::from_slice(body).map_err(bad)?;
            if w.action != "created" {
                return Ok(ignored(format!(
                    "issue_comment.{} is not acted on",
                    w.action
                )));
            }
            if w.issue.pull_request.is_none() {
                return Ok(ignored("comment on an issue, not a pull request"));
            }
            Ok(Event::PullRequestComment {
                installation: w.installation.id,
                repo: repo(w.repository, event)?,
                number: w.issue.number,
                body: w.comment.body,
                sender: w.sender.login,
            })
        }
        "installation" => {
            let w: WireInstallationEvent = serde_json::from_slice(body).map_err(bad)?;
            let action = match w.action.as_str() {
                "created" => InstallationAction::Created,
                "deleted" => InstallationAction::Deleted,
                "suspend" => InstallationAction::Suspend,
                "unsuspend" => InstallationAction::Unsuspend,
                other => return Ok(ignored(format!("installation.{other} is not acted on"))),
            };
            Ok(Event::Installation {
                action,
                installation: w.installation.id,
                account: w.installation.account.login,
                account_type: w.installation.account.kind,
                repos: brief_repos(w.repositories),
            })
        }
        "github_app_authorization" => {
            let w: WireAuthorizationEvent = serde_json::from_slice(body).map_err(bad)?;
            if w.action != "revoked" {
                return Ok(ignored(format!(
                    "github_app_authorization.{} is not acted on",
                    w.action
                )));
            }
            Ok(Event::AuthorizationRevoked {
                user_id: w.sender.id,
                login: w.sender.login,
            })
        }
        "installation_repositories" => {
            let w: WireInstallationReposEvent = serde_json::from_slice(body).map_err(bad)?;
            if w.action != "added" && w.action != "removed" {
                return Ok(ignored(format!(
                    "installation_repositories.{} is not acted on",
                    w.action
                )));
            }
            Ok(Event::InstallationRepositories {
                installation: w.installation.id,
                added: brief_repos(w.repositories_added),
                removed: brief_repos(w.repositories_removed),
            })
        }
        other => {
            well_formed()?;
            Ok(ignored(format!("{other} events are not acted on")))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pr_payload(action: &str) -> serde_json::Value {
        json!({
            "action": action,
            "number": 7,
            "pull_request": {
                "number": 7, "title": "T", "user": {"login": "alice"},
                "head": {"ref": "feat", "sha": "a".repeat(40), "repo": {"id": 99}},
                "base": {"ref": "main", "sha": "d".repeat(40), "repo": {"id": 1}},
                "draft": false, "merged": false, "labels": [{"name": "x"}]
            },
            "repository": {"id": 1, "full_name": "acme/web", "default_branch": "main", "private": true},
            "installation": {"id": 5},
            "sender": {"login": "alice"}
        })
    }

    #[test]
    fn pull_requests_parse_into_our_types() {
        let body = serde_json::to_vec(&pr_payload("opened")).expect("json");
        let Event::PullRequest {
            action,
            installation,
            repo,
            pr,
            ..
        } = parse("pull_request", &body).expect("parses")
        else {
            panic!("a pull request event");
        };
        assert_eq!(action, PullRequestAction::Opened);
        assert_eq!(installation, 5);
        assert_eq!(repo.name.as_str(), "acme/web");
        assert!(pr.from_fork, "head repo 99 != base repo 1");
        assert_eq!(pr.labels, vec!["x".to_owned()]);
    }

    #[test]
    fn unknown_actions_and_events_are_ignored() {
        let body = serde_json::to_vec(&pr_payload("assigned")).expect("json");
        assert!(matches!(
            parse("pull_request", &body),
            Ok(Event::Ignored { .. })
        ));
        assert!(matches!(parse("star", b"{}"), Ok(Event::Ignored { .. })));
        let body = serde_json::to_vec(&pr_payload("edited")).expect("json");
        assert!(
            matches!(parse("pull_request", &body), Ok(Event::Ignored { .. })),
            "edits without base change"
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(parse("pull_request", b"{not json").is_err());
        assert!(parse("pull_request", b"[]").is_err());
        assert!(parse("star", b"\"text\"").is_err());
        assert!(
            parse("pull_request", br#"{"action":"opened"}"#).is_err(),
            "missing fields"
        );
        let mut p = pr_payload("opened");
        p["repository"]["full_name"] = json!("../../etc");
        assert!(parse("pull_request", &serde_json::to_vec(&p).expect("json")).is_err());
    }

    #[test]
    fn hostile_values_stop_at_the_edge() {
        let refused = |pointer: &str, value: serde_json::Value| {
            let mut p = pr_payload("synchronize");
            *p.pointer_mut(pointer).expect("field") = value;
            parse("pull_request", &serde_json::to_vec(&p).expect("json"))
                .expect_err("refused")
                .to_string()
        };
        for sha in [
            "../../../x:y",
            "$(id);x",
            "abc",
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            let message = refused("/pull_request/head/sha", json!(sha));
            assert!(message.contains("40-hex-digit"), "{sha}: {message}");
        }
        for branch in [
            "a..b",
            "x\ny",
            "",
            "with space",
            "refs/../x",
            "ends/",
            "a:b",
        ] {
            let message = refused("/pull_request/head/ref", json!(branch));
            assert!(message.contains("valid branch name"), "{branch}: {message}");
        }
        let long = "b".repeat(256);
        assert!(refused("/pull_request/base/ref", json!(long)).contains("base.ref"));
        for login in ["$(id)", "a b", "x/../y", &"l".repeat(40)] {
            let message = refused("/sender/login", json!(login));
            assert!(message.contains("not a GitHub login"), "{login}: {message}");
        }
        // What GitHub does send passes.
        let mut p = pr_payload("synchronize");
        p["pull_request"]["head"]["ref"] = json!("dependabot/npm_and_yarn/lodash-4.17.21");
        p["sender"]["login"] = json!("dependabot[bot]");
        assert!(parse("pull_request", &serde_json::to_vec(&p).expect("json")).is_ok());
    }
}
