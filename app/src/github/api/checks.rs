//! The "Preview" check run: created once per attempt (found again by its `external_id` on the
//! commit), updated in place, and its text replaced on its own.

use serde::Deserialize;

use super::{CHECK_RUN_NAME, CheckRunReport, CheckStatus, create_or_find};
use crate::github::{GitHub, GitHubError, RepoName, client::Auth, encode_segment, wire};

/// GitHub's limit on check run summary and text.
const MAX_SUMMARY: usize = 65_535;

/// The part of a created check run previewd keeps.
#[derive(Deserialize)]
struct Created {
    id: i64,
}

impl CheckRunReport {
    /// The request body; `create` adds the name and commit.
    fn body(&self, create: bool) -> wire::CheckRunBody<'_> {
        let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (status, conclusion, started_at, completed_at) = match self.status {
            CheckStatus::Queued => ("queued", None, None, None),
            CheckStatus::InProgress => ("in_progress", None, Some(now()), None),
            CheckStatus::Completed(c) => ("completed", Some(c.as_str()), None, Some(now())),
        };
        wire::CheckRunBody {
            name: create.then_some(CHECK_RUN_NAME),
            head_sha: create.then_some(self.head_sha.as_str()),
            external_id: &self.external_id,
            details_url: self.details_url.as_deref(),
            status,
            conclusion,
            started_at,
            completed_at,
            output: wire::CheckOutput {
                title: crate::sanitize::cap(&self.title, 255),
                summary: crate::sanitize::cap(&self.summary, MAX_SUMMARY),
                text: self
                    .text
                    .as_deref()
                    .map(|t| crate::sanitize::cap(t, MAX_SUMMARY)),
            },
            actions: self
                .actions
                .iter()
                .map(|a| wire::CheckActionBody {
                    label: a.label,
                    description: a.description,
                    identifier: a.identifier,
                })
                .collect(),
        }
    }
}

impl GitHub {
    /// Creates the check run of `report`, once: after a try that may have been applied, the run
    /// is looked up by its `external_id` before another try. Returns its id.
    pub async fn create_check_run(
        &self,
        installation: i64,
        repo: &RepoName,
        report: &CheckRunReport,
    ) -> Result<i64, GitHubError> {
        let path = format!("/repos/{repo}/check-runs");
        create_or_find(
            || async {
                self.create::<_, Created>(
                    Auth::Installation(installation),
                    &path,
                    &report.body(true),
                )
                .await
                .map(|c| c.id)
            },
            || self.find_check_run(installation, repo, &report.head_sha, &report.external_id),
        )
        .await
    }

    /// This App's "Preview" check run on `sha` with `external_id`, if there is one.
    pub async fn find_check_run(
        &self,
        installation: i64,
        repo: &RepoName,
        sha: &str,
        external_id: &str,
    ) -> Result<Option<i64>, GitHubError> {
        let app = self.app_id();
        let path = format!(
            "/repos/{repo}/commits/{}/check-runs?check_name={}&filter=all&app_id={app}&per_page=100",
            encode_segment(sha),
            encode_segment(CHECK_RUN_NAME),
        );
        let runs = self
            .get_all::<wire::CheckRunList>(Auth::Installation(installation), &path)
            .await?;
        Ok(runs
            .into_iter()
            .filter(|r| r.app.as_ref().is_none_or(|a| a.id == app))
            .find(|r| r.external_id.as_deref() == Some(external_id))
            .map(|r| r.id))
    }

    /// Updates a check run in place.
    pub async fn update_check_run(
        &self,
        installation: i64,
        repo: &RepoName,
        id: i64,
        report: &CheckRunReport,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/check-runs/{id}");
        self.update::<_, Created>(Auth::Installation(installation), &path, &report.body(false))
            .await
            .map(drop)
    }

    /// Replaces only the title and summary of a check run (its status and conclusion stay).
    pub async fn update_check_run_output(
        &self,
        installation: i64,
        repo: &RepoName,
        id: i64,
        title: &str,
        summary: &str,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/check-runs/{id}");
        let body = wire::CheckOutputOnly {
            output: wire::CheckOutput {
                title: crate::sanitize::cap(title, 255),
                summary: crate::sanitize::cap(summary, MAX_SUMMARY),
                text: None,
            },
        };
        self.update::<_, Created>(Auth::Installation(installation), &path, &body)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::api::{CheckAction, Conclusion};

    #[test]
    fn check_run_bodies_have_githubs_fields() {
        let report = CheckRunReport {
            head_sha: "abc".into(),
            status: CheckStatus::Completed(Conclusion::Success),
            external_id: "17".into(),
            details_url: Some("https://previewd.example.com/previews/1".into()),
            title: "Preview ready".into(),
            summary: "s".into(),
            text: None,
            actions: vec![CheckAction {
                label: "Redeploy",
                description: "Deploy this commit again",
                identifier: "redeploy",
            }],
        };
        let created = report.body(true);
        assert_eq!(created.name, Some(CHECK_RUN_NAME));
        assert_eq!(created.conclusion, Some("success"));
        assert!(created.completed_at.is_some() && created.started_at.is_none());
        assert_eq!(created.actions[0].identifier, "redeploy");
        let updated = report.body(false);
        assert!(updated.name.is_none() && updated.head_sha.is_none());
        let text = serde_json::to_string(&updated).expect("json");
        assert!(
            !text.contains("check_run_id") && !text.contains("\"name\""),
            "{text}"
        );
    }
}
