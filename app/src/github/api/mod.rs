//! The GitHub operations previewd performs, in previewd's terms. Ids GitHub returns are handed
//! back so callers store them in the database instead of listing later (DESIGN.md §5, "few calls
//! per lifecycle"); every listing reads all its pages; every creation can be found again
//! (`find_*`), and is looked up before it is tried again when its first try may have been
//! applied (a time-out or a 5xx), so GitHub never shows two of anything.
//!
//! - [`repos`]: permissions, file contents, pull requests and their files, an installation's
//!   repositories.
//! - [`app`]: installations, scoped installation tokens, the webhook delivery log, redelivery.
//! - [`checks`], [`comments`], [`deployments`]: what previewd shows on a pull request.
//! - [`orgs`]: team membership (operators named by team).

pub mod app;
pub mod checks;
pub mod comments;
pub mod deployments;
pub mod orgs;
pub mod repos;

use std::time::{Duration, SystemTime};

use secrecy::SecretString;

pub use app::{DeliveryPage, HookDelivery};

use super::{GitHubError, wire};

/// Most tries of one creation (each after the first preceded by a look-up).
pub const CREATE_TRIES: u32 = 1 + super::client::SERVER_ERROR_RETRIES;

/// Creates something once: tries `create`; when a try may have been applied although it failed
/// (a time-out, a 5xx), looks with `find` before trying again, and returns what it finds.
/// When even the look-up fails, the error still says `maybe_applied`, so the caller can leave a
/// note for whoever tries next.
pub(crate) async fn create_or_find<T, C, CF, F, FF>(create: C, find: F) -> Result<T, GitHubError>
where
    C: Fn() -> CF,
    CF: Future<Output = Result<T, GitHubError>>,
    F: Fn() -> FF,
    FF: Future<Output = Result<Option<T>, GitHubError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let failed = match create().await {
            Ok(v) => return Ok(v),
            Err(e) if e.maybe_applied => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(error = %failed, "a GitHub create may have been applied; looking it up");
        // GitHub may still be finishing the write that timed out.
        tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
        match find().await {
            Ok(Some(found)) => return Ok(found),
            Ok(None) if tries < CREATE_TRIES => {}
            Ok(None) => return Err(failed),
            Err(lookup) => {
                tracing::warn!(error = %lookup, "could not look the object up; not creating it again");
                return Err(failed);
            }
        }
    }
}

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
    /// True for write, maintain and admin (also as the base of a custom role): those may approve
    /// and trigger deploys.
    pub fn can_write(self) -> bool {
        matches!(self, Self::Admin | Self::Maintain | Self::Write)
    }

    /// `role_name` names the five built-in roles; a custom role (any other name) counts as the
    /// base role it was made from, which `permission` reports.
    pub(crate) fn from_wire(p: &wire::RepoPermission) -> Self {
        match p.role_name.as_deref() {
            Some("admin") => Self::Admin,
            Some("maintain") => Self::Maintain,
            Some("write") => Self::Write,
            Some("triage") => Self::Triage,
            Some("read") => Self::Read,
            _ => match p.permission.as_str() {
                "admin" => Self::Admin,
                "write" => Self::Write,
                "read" => Self::Read,
                _ => Self::None,
            },
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
    /// Identifies the run among all on its commit (the attempt id); how a lost id is found again.
    pub external_id: String,
    pub details_url: Option<String>,
    pub title: String,
    pub summary: String,
    pub text: Option<String>,
    pub actions: Vec<CheckAction>,
}

/// The check run's name on every commit.
pub const CHECK_RUN_NAME: &str = "Preview";

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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Error => "error",
            Self::Inactive => "inactive",
        }
    }
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

/// What a scoped installation token may do: only these repositories of the installation (by
/// name, without the owner, or by id), only these permissions (e.g. `("contents", "read")`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenScope {
    pub repositories: Vec<String>,
    pub repository_ids: Vec<i64>,
    pub permissions: Vec<(String, String)>,
}

/// A scoped installation token; not cached, so it is as short-lived as its use.
#[derive(Clone)]
pub struct ScopedToken {
    pub token: SecretString,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(permission: &str, role: Option<&str>) -> Permission {
        Permission::from_wire(&wire::RepoPermission {
            permission: permission.into(),
            role_name: role.map(str::to_owned),
        })
    }

    #[test]
    fn permissions_read_role_names_and_custom_roles() {
        assert_eq!(perm("write", Some("maintain")), Permission::Maintain);
        assert_eq!(perm("read", None), Permission::Read);
        assert_eq!(perm("read", Some("triage")), Permission::Triage);
        // A custom role made from write: a writer (buttons, commands, approvals).
        assert_eq!(perm("write", Some("deployer")), Permission::Write);
        assert!(perm("write", Some("deployer")).can_write());
        assert!(perm("admin", Some("org-owner-ish")).can_write());
        assert!(!perm("read", Some("auditor")).can_write());
        assert_eq!(perm("none", Some("nobody")), Permission::None);
        assert!(Permission::Admin.can_write() && !Permission::Triage.can_write());
    }
}
