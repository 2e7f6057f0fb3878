//! Reading repositories: a collaborator's permission, files and directories at a ref, a pull
//! request's changed files, the open pull requests, and an installation's repositories. All are
//! conditional reads (a repeated read of something unchanged costs no rate limit) and listings
//! read every page.

use base64::Engine as _;
use serde::Deserialize;

use super::{super::webhook, Permission};
use crate::github::{
    GitHub, GitHubError, RepoName, client::Auth, encode_path, encode_segment, wire,
};

/// The contents API answers a file with an object and a directory with a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Contents {
    File(Box<octocrab::models::repos::Content>),
    Directory(Vec<octocrab::models::repos::Content>),
}

impl GitHub {
    /// `user`'s permission on `repo`.
    pub async fn permission(
        &self,
        installation: i64,
        repo: &RepoName,
        user: &str,
    ) -> Result<Permission, GitHubError> {
        let path = format!(
            "/repos/{repo}/collaborators/{}/permission",
            encode_segment(user)
        );
        // Not a collaborator at all: 404.
        Ok(self
            .get_optional::<wire::RepoPermission>(Auth::Installation(installation), &path)
            .await?
            .map_or(Permission::None, |p| Permission::from_wire(&p)))
    }

    async fn contents(
        &self,
        installation: i64,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<Contents>, GitHubError> {
        let url = format!(
            "/repos/{repo}/contents/{}?ref={}",
            encode_path(path),
            encode_segment(git_ref)
        );
        self.get_optional(Auth::Installation(installation), &url)
            .await
    }

    /// The text of `path` at `git_ref`, or `None` when the file does not exist there.
    pub async fn file(
        &self,
        installation: i64,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<String>, GitHubError> {
        let invalid = |message: &str| {
            GitHubError::new(
                "GET /repos/{owner}/{repo}/contents/{path}".into(),
                Some(200),
                message,
            )
        };
        let file = match self.contents(installation, repo, path, git_ref).await? {
            None => return Ok(None),
            Some(Contents::Directory(_)) => return Err(invalid("is not a file")),
            Some(Contents::File(f)) if f.r#type != "file" => return Err(invalid("is not a file")),
            Some(Contents::File(f)) => f,
        };
        // octocrab's `decoded_content` panics on bad base64; decode here and say what is wrong.
        let encoded: String = file
            .content
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| invalid("content is not base64"))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| invalid("is not UTF-8 text"))
    }

    /// The entries of directory `path` at `git_ref`: (path, is_dir); `None` when it does not exist.
    pub async fn directory(
        &self,
        installation: i64,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<Vec<(String, bool)>>, GitHubError> {
        match self.contents(installation, repo, path, git_ref).await? {
            Some(Contents::Directory(entries)) => Ok(Some(
                entries
                    .into_iter()
                    .map(|e| {
                        let dir = e.r#type == "dir";
                        (e.path, dir)
                    })
                    .collect(),
            )),
            // A file, not a directory; or nothing.
            Some(Contents::File(_)) | None => Ok(None),
        }
    }

    /// Paths of the files a pull request changes (every page; GitHub lists at most 3,000).
    pub async fn pull_request_files(
        &self,
        installation: i64,
        repo: &RepoName,
        number: u64,
    ) -> Result<Vec<String>, GitHubError> {
        let path = format!("/repos/{repo}/pulls/{number}/files?per_page=100");
        let files: Vec<octocrab::models::repos::DiffEntry> = self
            .get_all::<Vec<_>>(Auth::Installation(installation), &path)
            .await?;
        Ok(files.into_iter().map(|f| f.filename).collect())
    }

    /// The open pull requests of `repo` (every page, newest first).
    pub async fn open_pull_requests(
        &self,
        installation: i64,
        repo: &RepoName,
        repo_id: i64,
    ) -> Result<Vec<webhook::PullRequest>, GitHubError> {
        let path = format!("/repos/{repo}/pulls?state=open&per_page=100");
        let pulls: Vec<octocrab::models::pulls::PullRequest> = self
            .get_all::<Vec<_>>(Auth::Installation(installation), &path)
            .await?;
        Ok(pulls
            .into_iter()
            .map(|p| webhook::PullRequest {
                number: p.number,
                title: p.title.unwrap_or_default(),
                author: p.user.map(|u| u.login).unwrap_or_default(),
                from_fork: p.head.repo.as_ref().map(|r| id_of(r.id.0)) != Some(repo_id),
                head_ref: p.head.ref_field,
                head_sha: p.head.sha,
                base_ref: p.base.ref_field,
                draft: p.draft.unwrap_or(false),
                merged: false,
                labels: p
                    .labels
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| l.name)
                    .collect(),
            })
            .collect())
    }

    /// The repositories an installation can see (every page).
    pub async fn installation_repositories(
        &self,
        installation: i64,
    ) -> Result<Vec<webhook::Repo>, GitHubError> {
        let repos = self
            .get_all::<octocrab::models::InstallationRepositories>(
                Auth::Installation(installation),
                "/installation/repositories?per_page=100",
            )
            .await?;
        Ok(repos
            .into_iter()
            .filter_map(|r| {
                Some(webhook::Repo {
                    id: id_of(r.id.0),
                    name: RepoName::parse(r.full_name.as_deref()?)?,
                    default_branch: r.default_branch.unwrap_or_else(|| "main".to_owned()),
                    private: r.private.unwrap_or(true),
                })
            })
            .collect())
    }
}

/// GitHub's ids are positive and below 2^63; previewd stores them as `i64`.
pub(crate) fn id_of(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}
