//! Everything previewd says to and hears from GitHub. Only this module knows GitHub's wire
//! format: the rest of the app speaks in the small types defined here (`RepoName`, events,
//! check-run reports) and never sees a raw payload or an HTTP status.
//!
//! - [`client`]: the client — octocrab's transport wrapped in previewd's policies (credentials,
//!   conditional reads, every page, retries that never repeat a create blindly, rate-limit
//!   pauses, paced writes, time-outs); [`auth`] (App JWT, one token mint in flight per
//!   installation), [`cache`] (ETag answers), [`pacing`] (write slots with a lease), [`error`].
//! - [`api`]: the operations previewd uses (check runs, comments, deployments, contents,
//!   permissions, installations, scoped tokens, the delivery log), each creation findable again.
//! - [`wire`]: the typed shapes — octocrab's models where they fit, previewd's own where not.
//! - [`person`]: signing people in with the App's OAuth client, and the calls made with their
//!   own token (who they are, which repositories they reach).
//! - [`webhook`]: the webhook extractor (signature, headers, event parse) and the event types.
//! - [`urls`]: GitHub.com versus Enterprise Server: API, web and clone URLs.
//! - [`manifest`]: the App manifest flow (the manifest, GitHub's "new App" page, the code
//!   exchange) behind the "Register GitHub App" page.

pub mod api;
pub mod auth;
pub(crate) mod cache;
pub mod client;
pub mod error;
pub mod manifest;
pub(crate) mod pacing;
pub mod person;
pub mod urls;
pub mod webhook;
pub(crate) mod wire;

use std::fmt;

pub use client::GitHub;
pub use error::GitHubError;

/// A repository's `owner/name`, checked to have exactly one slash and no path tricks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Parses `owner/name`.
    pub fn parse(full_name: &str) -> Option<Self> {
        let (owner, name) = full_name.split_once('/')?;
        let ok = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        (ok(owner) && ok(name)).then(|| Self(full_name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn owner(&self) -> &str {
        self.0.split_once('/').map_or("", |(o, _)| o)
    }

    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, n)| n)
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Percent-encodes one path segment (a file path keeps its slashes via [`encode_path`]).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a slash-separated path, segment by segment.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        let r = RepoName::parse("acme/web.app").expect("valid");
        assert_eq!((r.owner(), r.name()), ("acme", "web.app"));
        for bad in ["acme", "acme/", "/web", "a/b/c", "a/..", "a/b c", "a/ü"] {
            assert!(RepoName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn path_encoding() {
        assert_eq!(encode_path(".github/preview.yml"), ".github/preview.yml");
        assert_eq!(encode_segment("preview:approved"), "preview%3Aapproved");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
