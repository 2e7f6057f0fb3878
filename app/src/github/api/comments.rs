//! Comments on a pull request. Each comment previewd writes carries a hidden marker (an HTML
//! comment) that says which one it is; that marker is how a comment whose id was lost — or whose
//! creation timed out — is found again instead of being posted twice.

use serde::Deserialize;

use super::create_or_find;
use crate::github::{GitHub, GitHubError, RepoName, client::Auth, wire};

/// The part of a written comment previewd keeps.
#[derive(Deserialize)]
struct Written {
    id: i64,
}

impl GitHub {
    /// Posts a comment whose `body` contains `marker`, once: after a try that may have been
    /// applied, the comment is looked up by its marker before another try. Returns its id.
    pub async fn create_comment(
        &self,
        installation: i64,
        repo: &RepoName,
        number: u64,
        body: &str,
        marker: &str,
    ) -> Result<i64, GitHubError> {
        debug_assert!(body.contains(marker), "the marker finds the comment again");
        let path = format!("/repos/{repo}/issues/{number}/comments");
        create_or_find(
            || async {
                self.create::<_, Written>(
                    Auth::Installation(installation),
                    &path,
                    &wire::CommentBody { body },
                )
                .await
                .map(|c| c.id)
            },
            || self.find_comment(installation, repo, number, marker),
        )
        .await
    }

    /// Replaces a comment's body (`PATCH`, as GitHub documents it).
    pub async fn update_comment(
        &self,
        installation: i64,
        repo: &RepoName,
        id: i64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/issues/comments/{id}");
        self.update::<_, Written>(
            Auth::Installation(installation),
            &path,
            &wire::CommentBody { body },
        )
        .await
        .map(drop)
    }

    /// The id of the oldest comment by a bot on the pull request whose body contains `marker`
    /// (every page; a person quoting the marker does not count).
    pub async fn find_comment(
        &self,
        installation: i64,
        repo: &RepoName,
        number: u64,
        marker: &str,
    ) -> Result<Option<i64>, GitHubError> {
        let path = format!("/repos/{repo}/issues/{number}/comments?per_page=100");
        let comments: Vec<octocrab::models::issues::Comment> = self
            .get_all::<Vec<_>>(Auth::Installation(installation), &path)
            .await?;
        Ok(comments
            .into_iter()
            .filter(|c| c.user.r#type == "Bot")
            .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)))
            .map(|c| super::repos::id_of(c.id.0)))
    }
}
