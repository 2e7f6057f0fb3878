//! What a GitHub call that did not succeed tells its caller: the operation (a route template,
//! never a repository's name or an id), the status when there was an answer, GitHub's message
//! (sanitized: it is shown in check runs and logs), and two facts callers branch on —
//! whether trying later may help, and whether a write may have been applied although it did not
//! report success (a time-out or a 5xx after GitHub received it).

/// A GitHub call that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("GitHub {operation}: {message}")]
pub struct GitHubError {
    /// What was attempted, e.g. `POST /repos/{owner}/{repo}/check-runs`.
    pub operation: String,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// GitHub's message or the transport error.
    pub message: String,
    /// True when the same call may succeed later (5xx, rate limit, network).
    pub retryable: bool,
    /// True when a creating write may have been applied by GitHub although no success came back
    /// (it timed out, the connection broke after it was sent, or GitHub answered 5xx). Whoever
    /// tries it again must first look the object up, or risk creating it twice.
    pub maybe_applied: bool,
}

impl GitHubError {
    pub(crate) fn new(operation: String, status: Option<u16>, message: &str) -> Self {
        Self {
            operation,
            status,
            message: crate::sanitize::sanitize(message, 500),
            retryable: false,
            maybe_applied: false,
        }
    }

    /// The person's GitHub sign-in no longer works (revoked, expired, its refresh refused).
    pub fn signed_out() -> Self {
        Self::new(
            "POST /login/oauth/access_token".to_owned(),
            Some(401),
            "the GitHub sign-in ended; sign in again",
        )
    }

    pub(crate) fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    pub(crate) fn maybe_applied(mut self, maybe: bool) -> Self {
        self.maybe_applied = maybe;
        self
    }

    /// GitHub answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}
