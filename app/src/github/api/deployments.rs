//! GitHub deployments: one transient, non-production deployment per attempt (environment
//! `preview/pr-<n>`), marked in its `payload` with the attempt's key so that it can be found
//! again by environment and commit; and its statuses, whose latest one is checked before a
//! status whose first try may have been applied is tried again.

use serde::Deserialize;

use super::{DeploymentStatus, create_or_find};
use crate::github::{GitHub, GitHubError, RepoName, client::Auth, encode_segment, wire};

#[derive(Deserialize)]
struct Created {
    id: i64,
}

impl GitHub {
    /// Creates a transient, non-production deployment of `sha` for `key` (the attempt), once:
    /// after a try that may have been applied, it is looked up before another try. Returns its id.
    pub async fn create_deployment(
        &self,
        installation: i64,
        repo: &RepoName,
        sha: &str,
        environment: &str,
        description: &str,
        key: &str,
    ) -> Result<i64, GitHubError> {
        let path = format!("/repos/{repo}/deployments");
        let body = wire::DeploymentBody {
            git_ref: sha,
            environment,
            description: crate::sanitize::cap(description, 140),
            auto_merge: false,
            required_contexts: [],
            transient_environment: true,
            production_environment: false,
            payload: wire::DeploymentPayload {
                previewd: wire::DeploymentMark {
                    key: key.to_owned(),
                },
            },
        };
        create_or_find(
            || async {
                self.create::<_, Created>(Auth::Installation(installation), &path, &body)
                    .await
                    .map(|d| d.id)
            },
            || self.find_deployment(installation, repo, sha, environment, key),
        )
        .await
    }

    /// The deployment of `sha` to `environment` that previewd made for `key`, if any.
    pub async fn find_deployment(
        &self,
        installation: i64,
        repo: &RepoName,
        sha: &str,
        environment: &str,
        key: &str,
    ) -> Result<Option<i64>, GitHubError> {
        let path = format!(
            "/repos/{repo}/deployments?sha={}&environment={}&per_page=100",
            encode_segment(sha),
            encode_segment(environment)
        );
        let deployments: Vec<octocrab::models::repos::Deployment> = self
            .get_all::<Vec<_>>(Auth::Installation(installation), &path)
            .await?;
        Ok(deployments
            .into_iter()
            .find(|d| {
                serde_json::from_value::<wire::DeploymentPayload>(d.payload.clone())
                    .is_ok_and(|p| p.previewd.key == key)
            })
            .map(|d| super::repos::id_of(d.id.0)))
    }

    /// Adds a status to a deployment, once: after a try that may have been applied, the
    /// deployment's latest status is read, and when it already says this, nothing more is sent.
    pub async fn create_deployment_status(
        &self,
        installation: i64,
        repo: &RepoName,
        deployment: i64,
        status: &DeploymentStatus<'_>,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/deployments/{deployment}/statuses");
        let body = wire::DeploymentStatusBody {
            state: status.state.as_str(),
            description: crate::sanitize::cap(status.description, 140),
            auto_inactive: false,
            environment_url: status.environment_url,
            log_url: status.log_url,
        };
        create_or_find(
            || async {
                self.create::<_, Created>(Auth::Installation(installation), &path, &body)
                    .await
                    .map(drop)
            },
            || async {
                let latest: Vec<octocrab::models::repos::DeploymentStatus> = self
                    .get(
                        Auth::Installation(installation),
                        &format!("{path}?per_page=1"),
                    )
                    .await?;
                Ok(latest.first().and_then(|s| {
                    let same = serde_json::to_string(&s.state).ok()
                        == serde_json::to_string(body.state).ok()
                        && s.description.as_deref() == Some(body.description.as_str())
                        && s.environment_url.as_deref().filter(|u| !u.is_empty())
                            == body.environment_url;
                    same.then_some(())
                }))
            },
        )
        .await
    }
}
