//! What a webhook event means for the previews: the app's side of the lifecycle.
//!
//! [`decide`] runs inside the delivery's database transaction. It brings the rows up to date
//! with the event and returns the jobs to enqueue and the attempts whose check run should show
//! "queued"; it never calls GitHub or Kubernetes, so a delivery is answered in milliseconds.
//! Anything that needs GitHub (permission checks, reading `.github/preview.yml`) happens in
//! the worker.

use previewd_entity::{PreviewStatus, PullRequestState};
use sea_orm::{ConnectionTrait, DbErr};

use super::{APPROVE_LABEL, COMMAND_PREFIX, records};
use crate::{
    github::webhook::{
        CheckRunAction, Event, InstallationAction, PullRequest, PullRequestAction, Repo,
    },
    jobs::{CleanupJob, DeployJob, ExtendJob},
};

/// The outcome of an event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// False when the event changes nothing (the delivery is recorded as ignored).
    pub acted: bool,
    /// One line for the delivery record and logs.
    pub detail: String,
    pub deploys: Vec<DeployJob>,
    pub cleanups: Vec<CleanupJob>,
    pub extends: Vec<ExtendJob>,
}

impl Decision {
    fn ignored(detail: impl Into<String>) -> Self {
        Self {
            acted: false,
            detail: detail.into(),
            ..Self::default()
        }
    }

    fn recorded(detail: impl Into<String>) -> Self {
        Self {
            acted: true,
            detail: detail.into(),
            ..Self::default()
        }
    }
}

/// A comment command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Approve,
    Redeploy,
    Destroy,
}

/// Reads `/preview <verb>` from the first line of a comment that starts with it.
pub fn parse_command(body: &str) -> Option<Command> {
    let line = body.trim_start().lines().next()?.trim();
    let rest = line.strip_prefix(COMMAND_PREFIX)?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None; // "/previewer" is not ours
    }
    match rest.split_whitespace().next()? {
        "approve" => Some(Command::Approve),
        "redeploy" => Some(Command::Redeploy),
        "destroy" => Some(Command::Destroy),
        _ => None,
    }
}

/// Applies `event` to the database and says what to do next.
pub async fn decide(db: &impl ConnectionTrait, event: &Event) -> Result<Decision, DbErr> {
    match event {
        Event::Ping => Ok(Decision::ignored("ping")),
        Event::Ignored { reason } => Ok(Decision::ignored(reason.clone())),
        Event::PullRequest {
            action,
            installation,
            repo,
            pr,
            sender,
            label,
        } => {
            pull_request(
                db,
                *action,
                *installation,
                repo,
                pr,
                sender,
                label.as_deref(),
            )
            .await
        }
        Event::PullRequestComment {
            installation,
            repo,
            number,
            body,
            sender,
        } => {
            let Some(command) = parse_command(body) else {
                return Ok(Decision::ignored("comment without a /preview command"));
            };
            comment_command(db, *installation, repo, *number, command, sender).await
        }
        Event::Installation {
            action,
            installation,
            account,
            account_type,
            repos,
        } => match action {
            InstallationAction::Created | InstallationAction::Unsuspend => {
                records::upsert_installation(db, *installation, account, account_type).await?;
                for (id, name) in repos {
                    let repo = Repo {
                        id: *id,
                        name: name.clone(),
                        default_branch: "main".into(),
                        private: true,
                    };
                    records::upsert_repository(db, *installation, &repo).await?;
                }
                Ok(Decision::recorded(format!(
                    "installation {installation} on {account} recorded"
                )))
            }
            InstallationAction::Suspend => {
                records::mark_installation(db, *installation, Some(true), false).await?;
                Ok(Decision::recorded(format!(
                    "installation {installation} suspended"
                )))
            }
            InstallationAction::Deleted => {
                records::mark_installation(db, *installation, None, true).await?;
                let repos = records::repository_ids_of(db, *installation).await?;
                let cleanups = cleanups_for(db, &repos, "the GitHub App was uninstalled").await?;
                Ok(Decision {
                    acted: true,
                    detail: format!(
                        "installation {installation} deleted; {} previews to remove",
                        cleanups.len()
                    ),
                    cleanups,
                    ..Decision::default()
                })
            }
        },
        Event::InstallationRepositories {
            installation,
            added,
            removed,
        } => {
            records::ensure_installation(db, *installation, "").await?;
            for (id, name) in added {
                let repo = Repo {
                    id: *id,
                    name: name.clone(),
                    default_branch: "main".into(),
                    private: true,
                };
                records::upsert_repository(db, *installation, &repo).await?;
            }
            let removed_ids: Vec<i64> = removed.iter().map(|(id, _)| *id).collect();
            records::mark_repositories_removed(db, &removed_ids).await?;
            let cleanups = cleanups_for(
                db,
                &removed_ids,
                "the repository was removed from the GitHub App",
            )
            .await?;
            Ok(Decision {
                acted: true,
                detail: format!(
                    "{} repositories added, {} removed, {} previews to remove",
                    added.len(),
                    removed.len(),
                    cleanups.len()
                ),
                cleanups,
                ..Decision::default()
            })
        }
        Event::CheckRun {
            action,
            installation,
            repo,
            head_sha,
            external_id,
            pull_requests,
            sender,
            check_run_id,
        } => {
            let preview = match external_id.as_deref().and_then(|id| id.parse::<i64>().ok()) {
                Some(attempt_id) => records::attempt_context(db, attempt_id)
                    .await?
                    .map(|c| c.preview),
                None => None,
            };
            let preview = match preview {
                Some(p) => Some(p),
                None => preview_by_numbers(db, repo, pull_requests).await?,
            };
            let Some(preview) = preview else {
                return Ok(Decision::ignored(
                    "check run of a preview previewd does not know",
                ));
            };
            let _ = installation;
            match action {
                CheckRunAction::Rerequested => rerun(db, preview, head_sha, "rerun", None).await,
                CheckRunAction::RequestedAction(id) if id == ACTION_REDEPLOY => {
                    rerun(db, preview, head_sha, "redeploy", Some(sender)).await
                }
                CheckRunAction::RequestedAction(id) if id == ACTION_DESTROY => {
                    destroy(preview, sender)
                }
                CheckRunAction::RequestedAction(id) if id == ACTION_EXTEND => Ok(Decision {
                    acted: true,
                    detail: format!("extend of {} requested by {sender}", preview.namespace),
                    extends: vec![ExtendJob {
                        preview_id: preview.id,
                        requested_by: sender.clone(),
                        check_run_id: *check_run_id,
                    }],
                    ..Decision::default()
                }),
                CheckRunAction::RequestedAction(other) => Ok(Decision::ignored(format!(
                    "unknown check run action {other:?}"
                ))),
            }
        }
        Event::CheckSuiteRerequested {
            repo,
            head_sha,
            pull_requests,
            ..
        } => {
            let Some(preview) = preview_by_numbers(db, repo, pull_requests).await? else {
                return Ok(Decision::ignored("check suite of no known preview"));
            };
            rerun(db, preview, head_sha, "rerun", None).await
        }
    }
}

async fn pull_request(
    db: &impl ConnectionTrait,
    action: PullRequestAction,
    installation: i64,
    repo: &Repo,
    pr: &PullRequest,
    sender: &str,
    label: Option<&str>,
) -> Result<Decision, DbErr> {
    records::ensure_installation(db, installation, repo.name.owner()).await?;
    records::upsert_repository(db, installation, repo).await?;
    let state = match action {
        PullRequestAction::Closed if pr.merged => PullRequestState::Merged,
        PullRequestAction::Closed => PullRequestState::Closed,
        _ => PullRequestState::Open,
    };
    let pr_row = records::upsert_pull_request(db, repo.id, pr, state).await?;

    match action {
        PullRequestAction::Closed => {
            let Some(preview) = records::preview_of(db, pr_row.id).await? else {
                return Ok(Decision::recorded("closed; no preview to remove"));
            };
            if matches!(
                preview.status,
                PreviewStatus::Deleted | PreviewStatus::Deleting
            ) {
                return Ok(Decision::recorded("closed; preview already removed"));
            }
            let preview = records::set_preview_status(db, preview, PreviewStatus::Deleting).await?;
            let reason = if pr.merged {
                "the pull request was merged"
            } else {
                "the pull request was closed"
            };
            Ok(Decision {
                acted: true,
                detail: format!("cleanup of preview {} enqueued", preview.id),
                cleanups: vec![CleanupJob {
                    preview_id: preview.id,
                    reason: reason.into(),
                    requested_by: None,
                }],
                ..Decision::default()
            })
        }
        PullRequestAction::Labeled if label == Some(APPROVE_LABEL) => {
            approve(db, &pr_row, repo, sender, "approval").await
        }
        PullRequestAction::Labeled | PullRequestAction::Unlabeled => {
            Ok(Decision::recorded("labels updated"))
        }
        PullRequestAction::ConvertedToDraft => {
            Ok(Decision::recorded("converted to draft; the preview stays"))
        }
        PullRequestAction::Opened
        | PullRequestAction::Reopened
        | PullRequestAction::Synchronize
        | PullRequestAction::ReadyForReview
        | PullRequestAction::BaseChanged => {
            if pr.draft {
                return Ok(Decision::recorded(
                    "draft pull request: no preview until it is ready for review",
                ));
            }
            let preview = records::ensure_preview(db, &pr_row, repo.name.as_str()).await?;
            let trigger = match action {
                PullRequestAction::Opened => "opened",
                PullRequestAction::Reopened => "reopened",
                PullRequestAction::Synchronize => "synchronize",
                PullRequestAction::ReadyForReview => "ready_for_review",
                _ => "base_changed",
            };
            // One deploy per (preview, sha) unless someone asks again; a base change or a
            // reopened pull request (whose preview was removed) deploys again.
            if !matches!(
                action,
                PullRequestAction::BaseChanged | PullRequestAction::Reopened
            ) && records::has_attempt(db, preview.id, &pr_row.head_sha).await?
            {
                return Ok(Decision::recorded(format!(
                    "{} already has a deploy of {}",
                    preview.namespace,
                    short(&pr_row.head_sha)
                )));
            }
            let attempt = records::new_attempt(db, preview.id, &pr_row.head_sha, trigger).await?;
            if !matches!(preview.status, PreviewStatus::Pending) {
                records::set_preview_status(db, preview.clone(), PreviewStatus::Pending).await?;
            }
            Ok(Decision {
                acted: true,
                detail: format!(
                    "deploy of {} at {} enqueued",
                    preview.namespace,
                    short(&pr_row.head_sha)
                ),
                deploys: vec![DeployJob {
                    attempt_id: attempt.id,
                    approved_by: None,
                    requested_by: None,
                }],
                ..Decision::default()
            })
        }
    }
}

/// Someone approved the head commit: a new attempt that carries who approved, for the worker to
/// check their permission.
async fn approve(
    db: &impl ConnectionTrait,
    pr_row: &previewd_entity::pull_request::Model,
    repo: &Repo,
    approver: &str,
    trigger: &str,
) -> Result<Decision, DbErr> {
    let preview = records::ensure_preview(db, pr_row, repo.name.as_str()).await?;
    if preview.approved_sha.as_deref() == Some(pr_row.head_sha.as_str()) {
        return Ok(Decision::recorded(format!(
            "{} already approved",
            short(&pr_row.head_sha)
        )));
    }
    if preview.status != PreviewStatus::AwaitingApproval {
        return Ok(Decision::recorded(
            "approval noted; the preview is not waiting for one",
        ));
    }
    let attempt = records::new_attempt(db, preview.id, &pr_row.head_sha, trigger).await?;
    Ok(Decision {
        acted: true,
        detail: format!(
            "approval of {} by {approver} enqueued",
            short(&pr_row.head_sha)
        ),
        deploys: vec![DeployJob {
            attempt_id: attempt.id,
            approved_by: Some(approver.to_owned()),
            requested_by: None,
        }],
        ..Decision::default()
    })
}

async fn comment_command(
    db: &impl ConnectionTrait,
    installation: i64,
    repo: &Repo,
    number: u64,
    command: Command,
    sender: &str,
) -> Result<Decision, DbErr> {
    records::ensure_installation(db, installation, repo.name.owner()).await?;
    records::upsert_repository(db, installation, repo).await?;
    let Ok(number) = i32::try_from(number) else {
        return Ok(Decision::ignored("pull request number out of range"));
    };
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let pr_row = previewd_entity::pull_request::Entity::find()
        .filter(previewd_entity::pull_request::Column::RepositoryId.eq(repo.id))
        .filter(previewd_entity::pull_request::Column::Number.eq(number))
        .one(db)
        .await?;
    let Some(pr_row) = pr_row else {
        return Ok(Decision::ignored(
            "command on a pull request previewd has not seen",
        ));
    };
    if pr_row.state != PullRequestState::Open {
        return Ok(Decision::ignored("command on a closed pull request"));
    }
    match command {
        Command::Approve => approve(db, &pr_row, repo, sender, "approval").await,
        Command::Redeploy => {
            let Some(preview) = records::preview_of(db, pr_row.id).await? else {
                return Ok(Decision::ignored("no preview to redeploy"));
            };
            let head = pr_row.head_sha.clone();
            rerun(db, preview, &head, "redeploy", Some(sender)).await
        }
        Command::Destroy => {
            let Some(preview) = records::preview_of(db, pr_row.id).await? else {
                return Ok(Decision::ignored("no preview to destroy"));
            };
            destroy(preview, sender)
        }
    }
}

/// Cleanup jobs for every live preview of `repositories` (marked deleting now).
async fn cleanups_for(
    db: &impl ConnectionTrait,
    repositories: &[i64],
    reason: &str,
) -> Result<Vec<CleanupJob>, DbErr> {
    let mut jobs = Vec::new();
    for preview in records::live_previews_of(db, repositories).await? {
        let preview = records::set_preview_status(db, preview, PreviewStatus::Deleting).await?;
        jobs.push(CleanupJob {
            preview_id: preview.id,
            reason: reason.to_owned(),
            requested_by: None,
        });
    }
    Ok(jobs)
}

/// The check run button that deploys the commit again.
pub const ACTION_REDEPLOY: &str = "redeploy";
/// The check run button that pushes the preview's expiry back.
pub const ACTION_EXTEND: &str = "extend";
/// The check run button that removes the preview.
pub const ACTION_DESTROY: &str = "destroy";

/// The preview of the first of `numbers` (pull requests of `repo`) that has one.
async fn preview_by_numbers(
    db: &impl ConnectionTrait,
    repo: &Repo,
    numbers: &[u64],
) -> Result<Option<previewd_entity::preview::Model>, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    for number in numbers {
        let Ok(number) = i32::try_from(*number) else {
            continue;
        };
        let pr = previewd_entity::pull_request::Entity::find()
            .filter(previewd_entity::pull_request::Column::RepositoryId.eq(repo.id))
            .filter(previewd_entity::pull_request::Column::Number.eq(number))
            .one(db)
            .await?;
        if let Some(pr) = pr
            && let Some(preview) = records::preview_of(db, pr.id).await?
        {
            return Ok(Some(preview));
        }
    }
    Ok(None)
}

/// Deploys `sha` again (Re-run, Redeploy): a new attempt, so a new check run.
async fn rerun(
    db: &impl ConnectionTrait,
    preview: previewd_entity::preview::Model,
    sha: &str,
    trigger: &str,
    requested_by: Option<&str>,
) -> Result<Decision, DbErr> {
    if preview.head_sha != sha {
        return Ok(Decision::ignored(format!(
            "{} is not the head commit any more; the newest is deployed",
            short(sha)
        )));
    }
    let preview = if preview.status == PreviewStatus::Deleted {
        records::set_preview_status(db, preview, PreviewStatus::Pending).await?
    } else {
        preview
    };
    let attempt = records::new_attempt(db, preview.id, sha, trigger).await?;
    Ok(Decision {
        acted: true,
        detail: format!(
            "{trigger} of {} at {} enqueued",
            preview.namespace,
            short(sha)
        ),
        deploys: vec![DeployJob {
            attempt_id: attempt.id,
            approved_by: None,
            requested_by: requested_by.map(str::to_owned),
        }],
        ..Decision::default()
    })
}

/// Removes the preview at someone's request (the worker checks their permission).
fn destroy(preview: previewd_entity::preview::Model, sender: &str) -> Result<Decision, DbErr> {
    if matches!(
        preview.status,
        PreviewStatus::Deleted | PreviewStatus::Deleting
    ) {
        return Ok(Decision::ignored("the preview is already removed"));
    }
    Ok(Decision {
        acted: true,
        detail: format!("destroy of {} requested by {sender}", preview.namespace),
        cleanups: vec![CleanupJob {
            preview_id: preview.id,
            reason: format!("@{sender} asked for it"),
            requested_by: Some(sender.to_owned()),
        }],
        ..Decision::default()
    })
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command("/preview approve"), Some(Command::Approve));
        assert_eq!(
            parse_command("  /preview   redeploy please\nmore"),
            Some(Command::Redeploy)
        );
        assert_eq!(parse_command("/preview destroy"), Some(Command::Destroy));
        assert_eq!(parse_command("/previewer approve"), None);
        assert_eq!(parse_command("please /preview approve"), None);
        assert_eq!(parse_command("/preview"), None);
        assert_eq!(parse_command("/preview launch"), None);
    }
}
