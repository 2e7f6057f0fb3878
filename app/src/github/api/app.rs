//! What previewd asks as the App itself (its JWT): its installations, installation tokens scoped
//! to one build, and the App's webhook delivery log with redelivery.
//!
//! The delivery log is read a page at a time (newest first, GitHub's opaque `cursor` in its
//! `Link` header), so the sweeper can read every page since its last round and stop where it
//! left off; [`HookDelivery::redelivery_may_help`] is the rule for which deliveries are worth
//! sending again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{ScopedToken, TokenScope};
use crate::github::{GitHub, GitHubError, RepoName, api::repos::id_of, client::Auth, wire};

/// One delivery in the App's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDelivery {
    pub id: i64,
    pub guid: String,
    /// The receiver's HTTP status; 0 when nothing answered.
    pub status_code: u16,
    /// GitHub's words for the outcome: `OK`, `Invalid HTTP Response: 503`, `timed out`, …
    pub status: String,
    pub redelivery: bool,
    pub event: String,
    pub delivered_at: DateTime<Utc>,
}

impl HookDelivery {
    /// True when delivering the same bytes again may succeed: the receiver failed (5xx) or
    /// nothing answered (a time-out, a refused or broken connection on GitHub's side). False for
    /// deliveries that succeeded, and for those previewd refused (4xx: forged, malformed, too
    /// large), which a redelivery would only have refused again.
    pub fn redelivery_may_help(&self) -> bool {
        self.status_code == 0 || (500..600).contains(&self.status_code)
    }

    /// True when the receiver accepted it.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// One page of the delivery log and where the next one is.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    /// Newest first.
    pub deliveries: Vec<HookDelivery>,
    /// Opaque: hand it to [`GitHub::hook_deliveries_page`] to read the next (older) page.
    pub next: Option<String>,
}

impl GitHub {
    /// The App's installations: (id, account login, account type, suspended); every page.
    pub async fn installations(&self) -> Result<Vec<(i64, String, String, bool)>, GitHubError> {
        let all: Vec<wire::Installation> = self
            .get_all::<Vec<_>>(Auth::App, "/app/installations?per_page=100")
            .await?;
        Ok(all
            .into_iter()
            .map(|i| {
                (
                    id_of(i.installation.id.0),
                    i.installation.account.login,
                    i.installation.account.r#type,
                    i.suspended_at.is_some(),
                )
            })
            .collect())
    }

    /// A token of `installation` limited to `scope` (GitHub refuses a scope the installation
    /// does not hold). Minted fresh each time, never cached.
    pub async fn scoped_token(
        &self,
        installation: i64,
        scope: &TokenScope,
    ) -> Result<ScopedToken, GitHubError> {
        let request = wire::TokenRequest {
            repositories: (!scope.repositories.is_empty()).then(|| scope.repositories.clone()),
            repository_ids: (!scope.repository_ids.is_empty())
                .then(|| scope.repository_ids.clone()),
            permissions: (!scope.permissions.is_empty()).then(|| {
                scope
                    .permissions
                    .iter()
                    .cloned()
                    .collect::<BTreeMap<String, String>>()
            }),
        };
        let token = self.mint(installation, &request).await?;
        Ok(ScopedToken {
            token: token.token,
            expires_at: token.expires_at,
        })
    }

    /// The token a build clones `repo` with: that repository only, `contents: read` only.
    pub async fn clone_token(
        &self,
        installation: i64,
        repo: &RepoName,
    ) -> Result<ScopedToken, GitHubError> {
        self.scoped_token(
            installation,
            &TokenScope {
                repositories: vec![repo.name().to_owned()],
                repository_ids: Vec::new(),
                permissions: vec![("contents".into(), "read".into())],
            },
        )
        .await
    }

    /// One page of the App's webhook deliveries, newest first: the first page with `None`,
    /// then the page `next` names.
    pub async fn hook_deliveries_page(
        &self,
        next: Option<&str>,
    ) -> Result<DeliveryPage, GitHubError> {
        let path = next.unwrap_or("/app/hook/deliveries?per_page=100");
        let (items, next) = self
            .get_page::<Vec<octocrab::models::hooks::Delivery>>(Auth::App, path)
            .await?;
        Ok(DeliveryPage {
            deliveries: items
                .into_iter()
                .map(|d| HookDelivery {
                    id: id_of(d.id.0),
                    guid: d.guid,
                    status_code: u16::try_from(d.status_code).unwrap_or(0),
                    status: d.status,
                    redelivery: d.redelivery,
                    event: d
                        .event
                        .and_then(|e| serde_json::to_string(&e).ok())
                        .map(|s| s.trim_matches('"').to_owned())
                        .unwrap_or_default(),
                    delivered_at: d.delivered_at,
                })
                .collect(),
            next,
        })
    }

    /// Asks GitHub to deliver a webhook delivery again.
    pub async fn redeliver(&self, delivery_id: i64) -> Result<(), GitHubError> {
        self.post_ignoring_answer(
            Auth::App,
            &format!("/app/hook/deliveries/{delivery_id}/attempts"),
            &wire::Empty {},
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(status_code: u16, status: &str) -> HookDelivery {
        HookDelivery {
            id: 1,
            guid: "g".into(),
            status_code,
            status: status.into(),
            redelivery: false,
            event: "ping".into(),
            delivered_at: Utc::now(),
        }
    }

    #[test]
    fn only_what_a_redelivery_can_fix_is_redelivered() {
        assert!(delivery(502, "Invalid HTTP Response: 502").redelivery_may_help());
        assert!(delivery(503, "Invalid HTTP Response: 503").redelivery_may_help());
        assert!(delivery(0, "timed out").redelivery_may_help());
        assert!(delivery(0, "failed to connect").redelivery_may_help());
        for refused in [400, 401, 413, 404] {
            assert!(
                !delivery(refused, "Invalid HTTP Response").redelivery_may_help(),
                "{refused}"
            );
        }
        assert!(!delivery(202, "OK").redelivery_may_help());
        assert!(delivery(202, "OK").succeeded() && !delivery(503, "x").succeeded());
    }
}
