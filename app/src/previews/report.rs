//! What GitHub shows about a preview, rendered from previewd's state: the check run's title,
//! summary and text, the sticky comment, and deployment status descriptions.
//!
//! Everything that can carry text from a build or a cluster passes through
//! [`crate::sanitize`] here, so no caller can forget it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::sanitize::{cap, sanitize, sanitize_tail};

/// The hidden marker that identifies previewd's one comment on a pull request.
pub const COMMENT_MARKER: &str = "<!-- previewd:sticky-comment -->";

/// Longest log tail shown on GitHub.
pub const LOG_TAIL_CHARS: usize = 6_000;
/// Longest failure message shown on GitHub.
pub const MESSAGE_CHARS: usize = 1_000;

/// Why a deploy failed, in the classes users act on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Config,
    BuildFailed,
    ImagePull,
    CrashLoop,
    OomKilled,
    QuotaExceeded,
    Unschedulable,
    ReadinessTimeout,
    DeployTimeout,
    /// A namespace of the preview's name exists that this previewd did not create.
    NamespaceTaken,
    Infrastructure,
}

impl FailureKind {
    /// Stored in `deploy_attempts.error_kind`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::BuildFailed => "build_failed",
            Self::ImagePull => "image_pull",
            Self::CrashLoop => "crash_loop",
            Self::OomKilled => "oom_killed",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Unschedulable => "unschedulable",
            Self::ReadinessTimeout => "readiness_timeout",
            Self::DeployTimeout => "deploy_timeout",
            Self::NamespaceTaken => "namespace_taken",
            Self::Infrastructure => "infrastructure",
        }
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Config => "invalid .github/preview.yml",
            Self::BuildFailed => "image build failed",
            Self::ImagePull => "image could not be pulled (ImagePullBackOff)",
            Self::CrashLoop => "container keeps crashing (CrashLoopBackOff)",
            Self::OomKilled => "container ran out of memory (OOMKilled)",
            Self::QuotaExceeded => "resource quota exceeded",
            Self::Unschedulable => "pods cannot be scheduled",
            Self::ReadinessTimeout => "never became ready",
            Self::DeployTimeout => "deploy timed out",
            Self::NamespaceTaken => "namespace taken",
            Self::Infrastructure => "infrastructure error",
        }
    }

    /// What the author can do about it.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Config => "Fix the file on this branch and push; the preview is redeployed.",
            Self::BuildFailed => {
                "The build log is below; fix the Dockerfile or the build and push."
            }
            Self::ImagePull => {
                "Check the image name and tag in .github/preview.yml and that the registry allows pulls."
            }
            Self::CrashLoop => {
                "The container exits soon after starting; its last log lines are below."
            }
            Self::OomKilled => {
                "Raise resources.memory in .github/preview.yml (within the install's maximum) or use less memory."
            }
            Self::QuotaExceeded => {
                "The preview asks for more than its quota; lower resources in .github/preview.yml."
            }
            Self::Unschedulable => {
                "The cluster has no room for the pods right now; an operator has been told. Redeploy later."
            }
            Self::ReadinessTimeout => {
                "The health check never passed; check `health` and `port` in .github/preview.yml."
            }
            Self::DeployTimeout => {
                "The whole deploy took longer than allowed; a slow build is the usual cause."
            }
            Self::NamespaceTaken => {
                "previewd never takes over a namespace it did not create; a cluster operator must remove or rename it, then Redeploy."
            }
            Self::Infrastructure => {
                "previewd could not reach GitHub or the cluster; it retried. Redeploy later."
            }
        }
    }
}

/// A failure, ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub log_tail: Option<String>,
    pub events: Vec<String>,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl AsRef<str>) -> Self {
        Self {
            kind,
            message: sanitize(message.as_ref(), MESSAGE_CHARS),
            log_tail: None,
            events: Vec::new(),
        }
    }

    pub fn with_logs(mut self, logs: impl AsRef<str>) -> Self {
        let tail = sanitize_tail(logs.as_ref(), LOG_TAIL_CHARS);
        self.log_tail = (!tail.trim().is_empty()).then_some(tail);
        self
    }

    pub fn with_events(mut self, events: Vec<String>) -> Self {
        self.events = events.iter().map(|e| sanitize(e, 300)).take(10).collect();
        self
    }
}

/// The text of a check run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckText {
    pub title: String,
    pub summary: String,
    pub text: Option<String>,
}

/// A successful deploy, for the reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success {
    pub url: String,
    pub sha: String,
    pub image: String,
    pub duration: Duration,
    pub cpu: String,
    pub memory: String,
    pub namespace: String,
}

pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn fence(text: &str) -> String {
    // A fence longer than any run of backticks inside.
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{text}\n{fence}")
}

pub fn queued(sha: &str) -> CheckText {
    CheckText {
        title: format!("Queued: {}", short_sha(sha)),
        summary: "The preview of this commit is waiting for a worker.".into(),
        text: None,
    }
}

pub fn in_progress(sha: &str, step: &str) -> CheckText {
    CheckText {
        title: format!("Deploying {}", short_sha(sha)),
        summary: format!("{step}…"),
        text: None,
    }
}

pub fn success(s: &Success) -> CheckText {
    CheckText {
        title: "Preview ready".into(),
        summary: format!(
            "**URL:** {}\n\n| | |\n|---|---|\n| Commit | `{}` |\n| Image | `{}` |\n| Duration | {} s |\n| Quota | cpu {}, memory {} |\n| Namespace | `{}` |\n",
            s.url,
            s.sha,
            s.image,
            s.duration.as_secs(),
            s.cpu,
            s.memory,
            s.namespace
        ),
        text: None,
    }
}

pub fn failure(f: &Failure, sha: &str) -> CheckText {
    let mut summary = format!(
        "**{}** at `{}`\n\n{}\n\n{}",
        f.kind.title(),
        short_sha(sha),
        f.message,
        f.kind.hint()
    );
    summary = cap(&summary, 60_000);
    let mut text = String::new();
    if let Some(tail) = &f.log_tail {
        text.push_str("### Last log lines\n\n");
        text.push_str(&fence(tail));
        text.push('\n');
    }
    if !f.events.is_empty() {
        text.push_str("\n### Kubernetes events\n\n");
        for e in &f.events {
            text.push_str(&format!("- {e}\n"));
        }
    }
    CheckText {
        title: format!("Preview failed: {}", f.kind.title()),
        summary,
        text: (!text.is_empty()).then_some(text),
    }
}

pub fn action_required(sha: &str, why: &str, rejected_approver: Option<&str>) -> CheckText {
    let mut summary = format!(
        "This pull request {why}, so its code is not deployed until someone with write permission approves commit `{}`.\n\n\
         To approve, add the label `{}` or comment `/preview approve`. Approval covers this commit only; a new push needs a new approval.",
        short_sha(sha),
        super::APPROVE_LABEL
    );
    if let Some(who) = rejected_approver {
        summary.push_str(&format!(
            "\n\nThe approval by @{who} was not accepted: they do not have write permission."
        ));
    }
    CheckText {
        title: "Approval needed".into(),
        summary,
        text: None,
    }
}

pub fn superseded(sha: &str, newer: &str) -> CheckText {
    CheckText {
        title: format!("Superseded by {}", short_sha(newer)),
        summary: format!(
            "Commit `{}` was not deployed to the end: `{}` is newer and is deployed instead.",
            short_sha(sha),
            short_sha(newer)
        ),
        text: None,
    }
}

/// The state the sticky comment shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentState {
    Deploying,
    Ready {
        url: String,
    },
    Failed {
        failure: Failure,
    },
    AwaitingApproval,
    Removed {
        reason: String,
    },
    /// Cleanup ran out of tries; operators were alerted.
    CleanupFailed {
        message: String,
    },
    /// Running, and idle for long: it will be removed at `at` unless kept or pushed to.
    ExpiresSoon {
        url: String,
        at: DateTime<Utc>,
    },
    /// Someone pressed Extend: kept until `until`.
    Extended {
        url: String,
        by: String,
        until: DateTime<Utc>,
    },
}

/// One line of the comment's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLine {
    pub at: DateTime<Utc>,
    pub sha: String,
    pub outcome: String,
}

/// The sticky comment's body.
pub fn comment(
    state: &CommentState,
    sha: &str,
    details_url: Option<&str>,
    history: &[HistoryLine],
    now: DateTime<Utc>,
) -> String {
    let (icon, headline) = match state {
        CommentState::Deploying => ("⏳", "Preview deploying".to_owned()),
        CommentState::Ready { .. } => ("✅", "Preview ready".to_owned()),
        CommentState::Failed { failure } => {
            ("❌", format!("Preview failed: {}", failure.kind.title()))
        }
        CommentState::AwaitingApproval => ("⏸️", "Preview waiting for approval".to_owned()),
        CommentState::Removed { .. } => ("🗑️", "Preview removed".to_owned()),
        CommentState::CleanupFailed { .. } => ("⚠️", "Preview could not be removed".to_owned()),
        CommentState::ExpiresSoon { .. } => ("⏰", "Preview expires soon".to_owned()),
        CommentState::Extended { .. } => ("✅", "Preview ready".to_owned()),
    };
    let mut body = format!("{COMMENT_MARKER}\n### {icon} {headline}\n\n| | |\n|---|---|\n");
    if let CommentState::Ready { url }
    | CommentState::ExpiresSoon { url, .. }
    | CommentState::Extended { url, .. } = state
    {
        body.push_str(&format!("| URL | {url} |\n"));
    }
    body.push_str(&format!("| Commit | `{}` |\n", short_sha(sha)));
    body.push_str(&format!(
        "| Updated | {} |\n",
        now.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    if let Some(url) = details_url {
        body.push_str(&format!("| Details | [dashboard]({url}) |\n"));
    }
    match state {
        CommentState::Failed { failure } => {
            body.push_str(&format!("\n{}\n\n{}\n", failure.message, failure.kind.hint()));
        }
        CommentState::AwaitingApproval => body.push_str(&format!(
            "\nThis pull request needs approval by someone with write permission: add the label `{}` or comment `/preview approve`.\n",
            super::APPROVE_LABEL
        )),
        CommentState::Removed { reason } => body.push_str(&format!("\nRemoved because {reason}.\n")),
        CommentState::Extended { by, until, .. } => body.push_str(&format!(
            "\n@{by} extended this preview: it stays until at least {}.\n",
            until.format("%Y-%m-%d %H:%M UTC")
        )),
        CommentState::ExpiresSoon { at, .. } => body.push_str(&format!(
            "\nThis preview has been idle and will be removed at {}. Push a commit, or add the label `{}` to keep it.\n",
            at.format("%Y-%m-%d %H:%M UTC"),
            super::KEEP_LABEL
        )),
        CommentState::CleanupFailed { message } => body.push_str(&format!(
            "\nThe preview environment could not be removed: {}. The operators of previewd have been alerted.\n",
            sanitize(message, MESSAGE_CHARS)
        )),
        CommentState::Deploying | CommentState::Ready { .. } => {}
    }
    if !history.is_empty() {
        body.push_str("\n<details><summary>History</summary>\n\n");
        for line in history.iter().take(10) {
            body.push_str(&format!(
                "- {} `{}` {}\n",
                line.at.format("%Y-%m-%d %H:%M UTC"),
                short_sha(&line.sha),
                line.outcome
            ));
        }
        body.push_str("\n</details>\n");
    }
    cap(&body, 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sanitized_and_capped() {
        let f = Failure::new(
            FailureKind::CrashLoop,
            "exit 1 with token ghs_aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )
        .with_logs(format!("{}\nfatal: password=hunter2", "x".repeat(10_000)));
        assert!(!f.message.contains("ghs_aaaa"));
        let tail = f.log_tail.as_deref().expect("tail");
        assert!(
            tail.chars().count() <= LOG_TAIL_CHARS
                && !tail.contains("hunter2")
                && tail.ends_with("password=[REDACTED]")
        );
        let text = failure(&f, "0123456789abcdef");
        assert!(text.title.contains("CrashLoopBackOff"));
        assert!(text.text.expect("log section").contains("Last log lines"));
    }

    #[test]
    fn the_comment_carries_the_marker_and_the_url() {
        let now = Utc::now();
        let body = comment(
            &CommentState::Ready {
                url: "https://ns.preview.example.com".into(),
            },
            "abcdef1234",
            None,
            &[],
            now,
        );
        assert!(body.starts_with(COMMENT_MARKER));
        assert!(body.contains("https://ns.preview.example.com") && body.contains("`abcdef1`"));
    }

    #[test]
    fn log_fences_survive_backticks() {
        let fenced = fence("a ``` b");
        assert!(fenced.starts_with("````text"));
    }
}
