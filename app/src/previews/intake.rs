//! What a webhook event means for the previews: the app's side of the lifecycle.
//!
//! [`decide`] runs inside the delivery's database transaction. It brings the rows up to date
//! with the event and asks [`lifecycle`] for the transition the event stands for, returning the
//! jobs to enqueue; it never calls GitHub or Kubernetes, so a delivery is answered in
//! milliseconds. Anything that needs GitHub (permission checks, reading `.github/preview.yml`)
//! happens in the worker. The reconciler speaks to the previews through the same function: it
//! turns what it finds on GitHub into the events it missed ([`Origin::Reconciler`]).

use previewd_entity::PullRequestState;
use sea_orm::{ConnectionTrait, DbErr};

use super::{
    APPROVE_LABEL, COMMAND_PREFIX,
    lifecycle::{self, Ask, Asker, Outcome, Removal, ShowQueued, Work},
    records,
};
use crate::{
    github::webhook::{
        CheckRunAction, Event, InstallationAction, PullRequest, PullRequestAction, Repo,
    },
    jobs::ExtendJob,
};

/// The outcome of an event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// False when the event changes nothing (the delivery is recorded as ignored).
    pub acted: bool,
    /// One line for the delivery record and logs.
    pub detail: String,
    /// The jobs to enqueue before the transaction commits.
    pub work: Work,
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

impl From<Outcome> for Decision {
    fn from(o: Outcome) -> Self {
        Self {
            acted: o.acted,
            detail: o.detail,
            work: o.work,
        }
    }
}

/// Where an event comes from: a delivery, or the reconciler reporting one it found missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Webhook,
    Reconciler,
}

impl Origin {
    /// The trigger an attempt records for an event of this origin: the event's, or
    /// `reconcile`.
    fn trigger(self, event: &'static str) -> &'static str {
        match self {
            Self::Webhook => event,
            Self::Reconciler => "reconcile",
        }
    }

    /// A delivery's deploys are shown as queued by the app once it commits; the reconciler's by
    /// the worker.
    fn show_queued(self) -> ShowQueued {
        match self {
            Self::Webhook => ShowQueued::ByCaller,
            Self::Reconciler => ShowQueued::ByWorker,
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

/// What one transaction has already written of the installations and repositories its events
/// name, so a group of deliveries committed together ([`decide_in`]) writes each row once. It is
/// only good for the transaction it was made for.
#[derive(Debug, Default)]
pub struct Written {
    repositories: std::collections::HashSet<(i64, Repo)>,
}

impl Written {
    /// Makes sure `repo` of `installation` is recorded as the event says; returns the ids of
    /// repositories it replaces (see [`records::upsert_repository`]), none when this transaction
    /// recorded it just so already.
    async fn repository(
        &mut self,
        db: &impl ConnectionTrait,
        installation: i64,
        repo: &Repo,
    ) -> Result<Vec<i64>, DbErr> {
        if self.repositories.contains(&(installation, repo.clone())) {
            return Ok(Vec::new());
        }
        records::ensure_installation(db, installation, repo.name.owner()).await?;
        let replaced = records::upsert_repository(db, installation, repo).await?;
        self.repositories.insert((installation, repo.clone()));
        Ok(replaced)
    }
}

/// Applies `event` to the database and says what to do next.
pub async fn decide(
    db: &impl ConnectionTrait,
    event: &Event,
    origin: Origin,
) -> Result<Decision, DbErr> {
    decide_in(db, event, origin, &mut Written::default()).await
}

/// [`decide`] for one of several events applied in the same transaction, `written` carrying
/// what the earlier ones wrote.
pub async fn decide_in(
    db: &impl ConnectionTrait,
    event: &Event,
    origin: Origin,
    written: &mut Written,
) -> Result<Decision, DbErr> {
    match event {
        Event::Ping => Ok(Decision::ignored("ping")),
        // Not about previews: the web layer ends the person's sessions in this transaction.
        Event::AuthorizationRevoked { login, .. } => Ok(Decision::recorded(format!(
            "{login} revoked the App's authorization; their dashboard sessions end"
        ))),
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
                written,
                *action,
                *installation,
                repo,
                pr,
                sender,
                label.as_deref(),
                origin,
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
            comment_command(db, written, *installation, repo, *number, command, sender).await
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
                records::mark_installation(db, *installation, Some(false), false).await?;
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
                let work = remove_all(db, &repos, &Removal::Uninstalled).await?;
                Ok(Decision {
                    acted: true,
                    detail: format!(
                        "installation {installation} deleted; {} previews to remove",
                        work.cleanups.len()
                    ),
                    work,
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
            let work = remove_all(db, &removed_ids, &Removal::RepositoryRemoved).await?;
            Ok(Decision {
                acted: true,
                detail: format!(
                    "{} repositories added, {} removed, {} previews to remove",
                    added.len(),
                    removed.len(),
                    work.cleanups.len()
                ),
                work,
            })
        }
        Event::CheckRun {
            action,
            repo,
            head_sha,
            external_id,
            pull_requests,
            sender,
            check_run_id,
            ..
        } => {
            let preview = match external_id.as_deref().and_then(|id| id.parse::<i64>().ok()) {
                Some(attempt_id) => records::attempt_context(db, attempt_id)
                    .await?
                    .filter(|c| c.repository.id == repo.id)
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
            match action {
                CheckRunAction::Rerequested => rerun(db, &preview, head_sha, origin).await,
                CheckRunAction::RequestedAction(id) if id == ACTION_REDEPLOY => {
                    Ok(lifecycle::request_rerun(
                        db,
                        &preview,
                        head_sha,
                        "redeploy",
                        Asker::Unverified(sender),
                        origin.show_queued(),
                    )
                    .await?
                    .into())
                }
                CheckRunAction::RequestedAction(id) if id == ACTION_DESTROY => {
                    Ok(lifecycle::request_destroy(&preview, sender).into())
                }
                CheckRunAction::RequestedAction(id) if id == ACTION_EXTEND => Ok(Decision {
                    acted: true,
                    detail: format!("extend of {} requested by {sender}", preview.namespace),
                    work: Work {
                        extends: vec![ExtendJob {
                            preview_id: preview.id,
                            requested_by: sender.clone(),
                            check_run_id: *check_run_id,
                        }],
                        ..Work::default()
                    },
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
            rerun(db, &preview, head_sha, origin).await
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the fields of one event, passed on as they are"
)]
async fn pull_request(
    db: &impl ConnectionTrait,
    written: &mut Written,
    action: PullRequestAction,
    installation: i64,
    repo: &Repo,
    pr: &PullRequest,
    sender: &str,
    label: Option<&str>,
    origin: Origin,
) -> Result<Decision, DbErr> {
    let replaced = written.repository(db, installation, repo).await?;
    let gone = remove_all(db, &replaced, &Removal::RepositoryRemoved).await?;
    let mut decision = pull_request_event(db, action, repo, pr, sender, label, origin).await?;
    decision.work.extend(gone);
    Ok(decision)
}

async fn pull_request_event(
    db: &impl ConnectionTrait,
    action: PullRequestAction,
    repo: &Repo,
    pr: &PullRequest,
    sender: &str,
    label: Option<&str>,
    origin: Origin,
) -> Result<Decision, DbErr> {
    let state = match action {
        PullRequestAction::Closed if pr.merged => PullRequestState::Merged,
        PullRequestAction::Closed => PullRequestState::Closed,
        _ => PullRequestState::Open,
    };
    let pr_row = records::upsert_pull_request(db, repo.id, pr, state).await?;

    let (ask, trigger) = match (action, deploy_ask(action)) {
        (_, Some(deploy)) => deploy,
        (PullRequestAction::Closed, None) => {
            let Some(preview) = records::preview_of_for_update(db, pr_row.id).await? else {
                return Ok(Decision::recorded("closed; no preview to remove"));
            };
            let removal = match (origin, pr.merged) {
                (Origin::Reconciler, _) => Removal::FoundClosed,
                (Origin::Webhook, true) => Removal::Merged,
                (Origin::Webhook, false) => Removal::Closed,
            };
            return Ok(lifecycle::request_removal(db, &preview, &removal)
                .await?
                .into());
        }
        (PullRequestAction::Labeled, None) if label == Some(APPROVE_LABEL) => {
            return Ok(lifecycle::request_approval(db, &pr_row, sender)
                .await?
                .into());
        }
        (PullRequestAction::Labeled | PullRequestAction::Unlabeled, None) => {
            return Ok(Decision::recorded("labels updated"));
        }
        // Converted to draft: the one action left that asks for no deploy.
        (_, None) => {
            return Ok(Decision::recorded("converted to draft; the preview stays"));
        }
    };
    Ok(lifecycle::request_deploy(
        db,
        &pr_row,
        repo.name.as_str(),
        ask,
        origin.trigger(trigger),
        origin.show_queued(),
    )
    .await?
    .into())
}

/// The deploy a pull request action asks for, with the trigger its attempt records; `None` for
/// the actions that ask for none.
fn deploy_ask(action: PullRequestAction) -> Option<(Ask, &'static str)> {
    Some(match action {
        PullRequestAction::Opened => (Ask::Open, "opened"),
        PullRequestAction::Reopened => (Ask::Reopen, "reopened"),
        PullRequestAction::Synchronize => (Ask::Push, "synchronize"),
        PullRequestAction::ReadyForReview => (Ask::ReadyForReview, "ready_for_review"),
        PullRequestAction::BaseChanged => (Ask::BaseChange, "base_changed"),
        PullRequestAction::Closed
        | PullRequestAction::Labeled
        | PullRequestAction::Unlabeled
        | PullRequestAction::ConvertedToDraft => return None,
    })
}

/// The pull request an event is about, as its repository and number, for callers that apply
/// several events at once and must tell which concern the same one.
pub fn pull_request_of(event: &Event) -> Option<(&Repo, u64)> {
    match event {
        Event::PullRequest { repo, pr, .. } => Some((repo, pr.number)),
        Event::PullRequestComment { repo, number, .. } => Some((repo, *number)),
        _ => None,
    }
}

/// True for the events [`decide_pull_requests`] takes: a pull request event that asks for a
/// deploy.
pub fn asks_for_deploy(event: &Event) -> bool {
    matches!(event, Event::PullRequest { action, .. } if deploy_ask(*action).is_some())
}

/// [`decide_in`] for several events that ask for a deploy ([`asks_for_deploy`]), each about a
/// different pull request, set-wise: one upsert for all their pull requests, then for those new
/// to previewd [`lifecycle::request_first_deploys`] (a statement per table for all of them);
/// for those seen before, their previews and current attempts are read in one statement each
/// and [`lifecycle::request_deploy_of`] decides each (a duplicate push writes nothing more).
/// The decisions are those [`decide_in`] would make for each in turn, in the order of
/// `events`.
pub async fn decide_pull_requests(
    db: &impl ConnectionTrait,
    events: &[&Event],
    origin: Origin,
    written: &mut Written,
) -> Result<Vec<Decision>, DbErr> {
    let mut asks = Vec::with_capacity(events.len());
    let mut decisions = Vec::with_capacity(events.len());
    for event in events {
        let not_one = || DbErr::Custom("an event that asks for no deploy, set-wise".into());
        let Event::PullRequest {
            action,
            installation,
            repo,
            pr,
            ..
        } = event
        else {
            return Err(not_one());
        };
        let (ask, trigger) = deploy_ask(*action).ok_or_else(not_one)?;
        let replaced = written.repository(db, *installation, repo).await?;
        let gone = remove_all(db, &replaced, &Removal::RepositoryRemoved).await?;
        decisions.push(Decision {
            work: gone,
            ..Decision::default()
        });
        asks.push((repo, pr, ask, origin.trigger(trigger)));
    }
    let upserts: Vec<_> = asks
        .iter()
        .map(|(repo, pr, ..)| (repo.id, *pr, PullRequestState::Open))
        .collect();
    let rows = records::upsert_pull_requests(db, &upserts).await?;
    let row_of = |repo: &Repo, pr: &PullRequest| {
        i64::try_from(pr.number)
            .ok()
            .and_then(|number| rows.get(&(repo.id, number)))
            .ok_or_else(|| {
                DbErr::RecordNotFound(format!("pull request {}#{}", repo.name.as_str(), pr.number))
            })
    };
    let mut requests = Vec::with_capacity(asks.len());
    for (repo, pr, ask, trigger) in &asks {
        requests.push(lifecycle::DeployRequest {
            pr: row_of(repo, pr)?,
            repo_full_name: repo.name.as_str(),
            ask: *ask,
            trigger,
        });
    }
    let (new, seen): (Vec<usize>, Vec<usize>) =
        (0..requests.len()).partition(|i| records::just_created(requests[*i].pr));
    // Those seen before: their previews and current attempts read in one statement each.
    let seen_prs: Vec<i64> = seen.iter().map(|i| requests[*i].pr.id).collect();
    let mut previews = records::previews_of_for_update(db, &seen_prs).await?;
    let current_ids: Vec<i64> = previews
        .values()
        .filter_map(|p| p.current_attempt_id)
        .collect();
    let mut attempts = records::attempts_by_ids(db, &current_ids).await?;
    let show = origin.show_queued();
    for i in seen {
        let request = &requests[i];
        let preview = previews.remove(&request.pr.id);
        let current = preview
            .as_ref()
            .and_then(|p| p.current_attempt_id)
            .and_then(|id| attempts.remove(&id));
        let outcome = lifecycle::request_deploy_of(db, request, show, preview, current).await?;
        merge(&mut decisions[i], outcome);
    }
    let firsts: Vec<_> = new.iter().map(|i| requests[*i]).collect();
    let outcomes = lifecycle::request_first_deploys(db, &firsts, show).await?;
    for (i, outcome) in new.into_iter().zip(outcomes) {
        merge(&mut decisions[i], outcome);
    }
    Ok(decisions)
}

/// Puts `outcome` into `decision`, which holds only the jobs of repositories it replaced.
fn merge(decision: &mut Decision, outcome: Outcome) {
    let gone = std::mem::take(&mut decision.work);
    *decision = outcome.into();
    decision.work.extend(gone);
}

/// GitHub's Re-run of a check run or suite: only people with write access can press it.
async fn rerun(
    db: &impl ConnectionTrait,
    preview: &previewd_entity::preview::Model,
    head_sha: &str,
    origin: Origin,
) -> Result<Decision, DbErr> {
    Ok(lifecycle::request_rerun(
        db,
        preview,
        head_sha,
        "rerun",
        Asker::Trusted,
        origin.show_queued(),
    )
    .await?
    .into())
}

async fn comment_command(
    db: &impl ConnectionTrait,
    written: &mut Written,
    installation: i64,
    repo: &Repo,
    number: u64,
    command: Command,
    sender: &str,
) -> Result<Decision, DbErr> {
    written.repository(db, installation, repo).await?;
    let Some(pr_row) = records::find_pull_request(db, repo.id, number).await? else {
        return Ok(Decision::ignored(
            "command on a pull request previewd has not seen",
        ));
    };
    if pr_row.state != PullRequestState::Open {
        return Ok(Decision::ignored("command on a closed pull request"));
    }
    let preview = records::preview_of_for_update(db, pr_row.id).await?;
    match (command, preview) {
        (Command::Approve, _) => Ok(lifecycle::request_approval(db, &pr_row, sender)
            .await?
            .into()),
        (Command::Redeploy, Some(preview)) => {
            let head = pr_row.head_sha.clone();
            Ok(lifecycle::request_rerun(
                db,
                &preview,
                &head,
                "redeploy",
                Asker::Unverified(sender),
                ShowQueued::ByCaller,
            )
            .await?
            .into())
        }
        (Command::Destroy, Some(preview)) => {
            Ok(lifecycle::request_destroy(&preview, sender).into())
        }
        (Command::Redeploy | Command::Destroy, None) => {
            Ok(Decision::ignored("the pull request has no preview"))
        }
    }
}

/// Removes every live preview of `repositories` for `removal`.
pub async fn remove_all(
    db: &impl ConnectionTrait,
    repositories: &[i64],
    removal: &Removal,
) -> Result<Work, DbErr> {
    let mut work = Work::default();
    for preview in records::live_previews_of(db, repositories).await? {
        work.extend(
            lifecycle::request_removal(db, &preview, removal)
                .await?
                .work,
        );
    }
    Ok(work)
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
    for number in numbers {
        if let Some(pr) = records::find_pull_request(db, repo.id, *number).await?
            && let Some(preview) = records::preview_of_for_update(db, pr.id).await?
        {
            return Ok(Some(preview));
        }
    }
    Ok(None)
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
