//! Organization teams: whether a person is an active member of a team, asked with the
//! organization's installation token (the App's `members: read`). This is how `OPERATORS` may
//! name a team (`org/team`) rather than each login.

use serde::Deserialize;

use crate::github::{GitHub, GitHubError, client::Auth, encode_segment};

/// `GET /orgs/{org}/teams/{team}/memberships/{user}`.
#[derive(Debug, Deserialize)]
struct Membership {
    /// `active`, or `pending` for an invitation not yet accepted.
    state: String,
}

impl GitHub {
    /// Whether `user` is an active member of team `team` (its slug) of `org`, whose App
    /// installation is `installation`. Not a member, or no such team: `false`.
    pub async fn team_member(
        &self,
        installation: i64,
        org: &str,
        team: &str,
        user: &str,
    ) -> Result<bool, GitHubError> {
        let path = format!(
            "/orgs/{}/teams/{}/memberships/{}",
            encode_segment(org),
            encode_segment(team),
            encode_segment(user)
        );
        Ok(self
            .get_optional::<Membership>(Auth::Installation(installation), &path)
            .await?
            .is_some_and(|m| m.state == "active"))
    }
}
