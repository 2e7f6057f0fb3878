//! Everything previewd says to and hears from GitHub. Only this module knows GitHub's wire
//! format: the rest of the app speaks in the small types defined here (`RepoName`, events,
//! check-run reports) and never sees a raw payload or an HTTP status.
//!
//! - [`auth`]: the App's JWT and the per-installation token cache (one refresh in flight).
//! - [`client`]: the REST client: retries, rate-limit waits, one write at a time per installation.
//! - [`api`]: the operations previewd uses (check runs, comments, deployments, contents, ...).
//! - [`webhook`]: signature verification and parsing of deliveries into [`webhook::Event`]s.
//! - [`manifest`]: the App manifest flow (the manifest, GitHub's "new App" page, the code
//!   exchange) behind the "Register GitHub App" page.

pub mod api;
pub mod auth;
pub mod client;
pub mod manifest;
pub mod webhook;

use std::fmt;

pub use client::{GitHub, GitHubError};

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
