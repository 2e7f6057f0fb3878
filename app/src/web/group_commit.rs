//! Group commit of webhook deliveries: the deliveries that arrive together are recorded in one
//! database transaction and their jobs pushed to Redis together, before any of them is answered.
//!
//! A delivery's durable record costs a transaction, and a transaction's fixed costs (its begin
//! and commit, on SQLite the hand-over to the database's own thread and the one writer at a
//! time, on PostgreSQL the round trips and the row locks the upserts take) dominate the few
//! statements of the delivery itself. So writer tasks ([`run`]: one per process on SQLite,
//! [`POSTGRES_WRITERS`] on PostgreSQL) do every delivery's writing: each takes whatever has
//! queued up while its previous group was committing (up to
//! [`MAX_GROUP`]; no wait is added, so a lone delivery is not delayed), applies them in one
//! transaction, records them all in one statement, pushes all their jobs in one call per queue,
//! commits, and only then answers each. The guarantee of a 2xx is unchanged: its delivery is
//! recorded and its jobs are in Redis.
//!
//! Deliveries that ask for a deploy of a pull request no other delivery of the group is about
//! (the bulk of any burst: pushes and opens) are applied set-wise, a statement per table for
//! all of them ([`intake::decide_pull_requests`]); the others in turn ([`intake::decide_in`]).
//! See [`set_wise`] for why the two orders decide alike.
//!
//! A group that cannot commit as a whole falls back to the one-delivery path
//! ([`super::webhooks::process`], with its retries and its "rejected" record) for each of its
//! deliveries — unless a store is down, when every delivery of the group is answered 503 at once
//! (GitHub may redeliver it) and the failures are recorded afterwards. A writer that panics is
//! replaced ([`supervised`]); only its group's deliveries are answered 503.

use std::{
    collections::{HashMap, HashSet},
    sync::OnceLock,
};

use chrono::Utc;
use previewd_entity::{DeliveryOutcome, webhook_delivery};
use sea_orm::{ActiveValue::Set, DbErr};
use tokio::sync::{mpsc, oneshot};

use super::webhooks::{self, Intake, Processed};
use crate::{
    github::webhook::Event,
    previews::{
        intake::{self, Origin},
        lifecycle::{self, Work},
        records,
    },
    store,
};

/// The most deliveries committed in one transaction.
pub const MAX_GROUP: usize = 128;

/// Groups committed at once on PostgreSQL, where a transaction's time is mostly round trips
/// and concurrent ones do not block each other (the rows all deliveries touch are only read
/// when unchanged). SQLite has one writer at a time: one group at a time.
const POSTGRES_WRITERS: usize = 4;

/// Deliveries waiting for the writer; past this, handlers wait to hand theirs over.
const QUEUE: usize = 1024;

const _: () = assert!(MAX_GROUP <= QUEUE, "a group is taken from the queue");

/// A delivery handed to the writer, and where its answer goes.
pub struct Pending {
    pub guid: String,
    pub event_name: String,
    pub action: Option<String>,
    pub event: Event,
    pub answer: oneshot::Sender<Result<Processed, String>>,
}

/// The handle handlers give their deliveries to. The writer tasks start with the first
/// delivery (so building the state needs no runtime) and end when every handle is gone.
pub struct GroupCommit {
    intake: Intake,
    sender: OnceLock<mpsc::Sender<Pending>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("started", &self.sender.get().is_some())
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    pub fn new(intake: Intake) -> Self {
        Self {
            intake,
            sender: OnceLock::new(),
        }
    }

    /// Processes a delivery with the others that arrive meanwhile; `Err` is a reason to answer
    /// 503.
    pub async fn process(
        &self,
        guid: String,
        event_name: String,
        action: Option<String>,
        event: Event,
    ) -> Result<Processed, String> {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            let writers = match self.intake.db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => POSTGRES_WRITERS,
                _ => 1,
            };
            let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
            for _ in 0..writers {
                let (intake, receiver) = (self.intake.clone(), receiver.clone());
                tokio::spawn(supervised(move || run(intake.clone(), receiver.clone())));
            }
            sender
        });
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            guid,
            event_name,
            action,
            event,
            answer,
        };
        if sender.send(pending).await.is_err() {
            return Err("the delivery writer has stopped".to_owned());
        }
        answered
            .await
            .unwrap_or_else(|_| Err("the delivery writer stopped before answering".to_owned()))
    }
}

/// A writer: takes a group (what queued meanwhile), commits it, and again, until every handle
/// is dropped. Writers take turns at the queue, not at the database.
async fn run(
    intake: Intake,
    receiver: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        let taken = receiver.lock().await.recv_many(&mut group, MAX_GROUP).await;
        if taken == 0 {
            return;
        }
        commit(&intake, std::mem::take(&mut group)).await;
    }
}

/// Runs the task `start` makes, and another in its place each time one panics: a writer that
/// panics on a group loses that group's answers (their handlers answer 503, and GitHub can
/// redeliver), not every later delivery. Ends when a task ends without panicking.
async fn supervised<F, Fut>(mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Err(e) if e.is_panic() => {
                tracing::error!("a delivery writer panicked; another takes its place");
            }
            Ok(()) | Err(_) => return,
        }
    }
}

/// Why a group did not commit as a whole.
enum GroupFailure {
    /// A store is down or Redis refused the jobs: the whole group is answered 503.
    Unavailable(String),
    /// Something about one delivery (a conflict, a rule): each is processed on its own.
    OneByOne(String),
}

impl From<DbErr> for GroupFailure {
    fn from(e: DbErr) -> Self {
        match store::trouble(&e) {
            store::Trouble::Outage => Self::Unavailable(format!("database: {e}")),
            store::Trouble::Conflict | store::Trouble::Permanent => Self::OneByOne(e.to_string()),
        }
    }
}

/// What the group decided for one delivery.
enum Decided {
    Duplicate,
    Done(intake::Decision),
}

async fn commit(intake: &Intake, group: Vec<Pending>) {
    match commit_group(intake, &group).await {
        Ok(decided) => {
            for (pending, decided) in group.into_iter().zip(decided) {
                let processed = match decided {
                    Decided::Duplicate => Processed::Duplicate,
                    Decided::Done(mut decision) => {
                        webhooks::show_queued(intake, &pending.event, &mut decision);
                        Processed::Done(decision)
                    }
                };
                drop(pending.answer.send(Ok(processed)));
            }
        }
        Err(GroupFailure::Unavailable(reason)) => {
            let mut failed = Vec::with_capacity(group.len());
            for pending in group {
                drop(pending.answer.send(Err(reason.clone())));
                failed.push((pending.guid, pending.event_name));
            }
            // Answered first: recording the failures may wait for the store that is down.
            let intake = intake.clone();
            tokio::spawn(async move {
                for (guid, event_name) in failed {
                    webhooks::record_failure(&intake, &guid, &event_name, &reason).await;
                }
            });
        }
        Err(GroupFailure::OneByOne(reason)) => {
            if group.len() > 1 {
                tracing::debug!(deliveries = group.len(), reason = %reason, "group did not commit; processing its deliveries one by one");
            }
            for pending in group {
                let processed = webhooks::process(
                    intake,
                    &pending.guid,
                    &pending.event_name,
                    pending.action.as_deref(),
                    &pending.event,
                )
                .await;
                drop(pending.answer.send(processed));
            }
        }
    }
}

/// Applies the group in one transaction; on `Ok` it is committed and its jobs are in Redis.
async fn commit_group(intake: &Intake, group: &[Pending]) -> Result<Vec<Decided>, GroupFailure> {
    let txn = lifecycle::begin_transaction(&intake.db).await?;
    match apply(intake, &txn, group).await {
        Ok(decided) => {
            txn.commit().await?;
            Ok(decided)
        }
        Err(failure) => {
            drop(txn.rollback().await);
            Err(failure)
        }
    }
}

async fn apply(
    intake: &Intake,
    txn: &sea_orm::DatabaseTransaction,
    group: &[Pending],
) -> Result<Vec<Decided>, GroupFailure> {
    let guids: Vec<&str> = group.iter().map(|p| p.guid.as_str()).collect();
    let recorded = records::recorded_deliveries(txn, &guids).await?;
    let mut in_group = HashSet::with_capacity(group.len());
    let fresh: Vec<bool> = group
        .iter()
        .map(|pending| {
            let seen = recorded
                .get(&pending.guid)
                .is_some_and(|outcome| *outcome != DeliveryOutcome::Failed);
            !seen && in_group.insert(pending.guid.as_str())
        })
        .collect();
    let set_wise = set_wise(group, &fresh);
    let mut written = intake::Written::default();
    let events: Vec<&Event> = group
        .iter()
        .zip(&set_wise)
        .filter(|(_, together)| **together)
        .map(|(pending, _)| &pending.event)
        .collect();
    let mut together = if events.is_empty() {
        Vec::new()
    } else {
        intake::decide_pull_requests(txn, &events, Origin::Webhook, &mut written).await?
    }
    .into_iter();
    let mut decided = Vec::with_capacity(group.len());
    let mut rows = Vec::with_capacity(group.len());
    let mut work = Work::default();
    for (i, pending) in group.iter().enumerate() {
        if !fresh[i] {
            decided.push(Decided::Duplicate);
            continue;
        }
        let decision = if set_wise[i] {
            together.next().ok_or_else(|| {
                GroupFailure::OneByOne("fewer decisions than deliveries applied together".into())
            })?
        } else {
            let decision =
                intake::decide_in(txn, &pending.event, Origin::Webhook, &mut written).await?;
            webhooks::end_sessions(intake, txn, &pending.event).await?;
            decision
        };
        rows.push(delivery_row(pending, &decision));
        work.deploys.extend(decision.work.deploys.iter().cloned());
        work.cleanups.extend(decision.work.cleanups.iter().cloned());
        work.extends.extend(decision.work.extends.iter().cloned());
        decided.push(Decided::Done(decision));
    }
    let expected = rows.len();
    let wrote = records::record_deliveries(txn, rows).await?;
    if wrote != expected {
        return Err(GroupFailure::OneByOne(format!(
            "{} of {expected} deliveries were recorded by another process meanwhile",
            expected - wrote
        )));
    }
    // Pushed before the commit: if Redis refuses, nothing is committed and every delivery of
    // the group can be redelivered. Workers wait for the commit (see the deploy job).
    intake
        .queues
        .enqueue(&work)
        .await
        .map_err(|e| GroupFailure::Unavailable(e.to_string()))?;
    Ok(decided)
}

/// Which of the group's deliveries to be applied (`fresh`) are applied set-wise, before the
/// others ([`intake::decide_pull_requests`]): those asking for a deploy of a pull request no
/// other delivery of the group is about. Applying them first decides as applying every delivery
/// in turn would, since no other delivery reads or writes their pull requests' rows — unless
/// the group holds one that finds previews by other means (a check run's attempt, an
/// installation's or repository's removal), or two that name repositories of one name but
/// different ids (the later's record replaces the earlier's): then every delivery is applied in
/// turn.
fn set_wise(group: &[Pending], fresh: &[bool]) -> Vec<bool> {
    let applied = || {
        group
            .iter()
            .zip(fresh)
            .filter(|(_, fresh)| **fresh)
            .map(|(pending, _)| &pending.event)
    };
    let reaches_further = applied().any(|event| {
        matches!(
            event,
            Event::Installation { .. }
                | Event::InstallationRepositories { .. }
                | Event::CheckRun { .. }
                | Event::CheckSuiteRerequested { .. }
        )
    });
    let mut about: HashMap<(i64, u64), usize> = HashMap::new();
    let mut named: HashMap<&str, i64> = HashMap::new();
    let mut renamed = false;
    for (repo, number) in applied().filter_map(intake::pull_request_of) {
        *about.entry((repo.id, number)).or_default() += 1;
        renamed |= *named.entry(repo.name.as_str()).or_insert(repo.id) != repo.id;
    }
    // Two repositories of one name: the later one's record replaces the earlier's and removes
    // its previews, which depends on the order the deliveries are applied in.
    if reaches_further || renamed {
        return vec![false; group.len()];
    }
    group
        .iter()
        .zip(fresh)
        .map(|(pending, fresh)| {
            *fresh
                && intake::asks_for_deploy(&pending.event)
                && intake::pull_request_of(&pending.event)
                    .is_some_and(|(repo, number)| about.get(&(repo.id, number)) == Some(&1))
        })
        .collect()
}

/// The record of a delivery with the outcome the group decided.
fn delivery_row(pending: &Pending, decision: &intake::Decision) -> webhook_delivery::ActiveModel {
    let scope = webhooks::event_scope(&pending.event);
    webhook_delivery::ActiveModel {
        guid: Set(pending.guid.clone()),
        event: Set(pending.event_name.chars().take(64).collect()),
        action: Set(pending
            .action
            .as_ref()
            .map(|a| a.chars().take(64).collect())),
        installation_id: Set(scope.as_ref().map(|s| s.0)),
        repository_full_name: Set(scope.map(|s| s.1).filter(|r| !r.is_empty())),
        outcome: Set(if decision.acted {
            DeliveryOutcome::Accepted
        } else {
            DeliveryOutcome::Ignored
        }),
        detail: Set(Some(decision.detail.clone())),
        received_at: Set(Utc::now()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::{
        RepoName,
        webhook::{PullRequest, PullRequestAction, Repo},
    };

    fn repo() -> Repo {
        Repo {
            id: 7,
            name: RepoName::parse("acme/web").expect("valid"),
            default_branch: "main".into(),
            private: false,
        }
    }

    fn pending(event: Event) -> Pending {
        Pending {
            guid: "g".into(),
            event_name: "pull_request".into(),
            action: None,
            event,
            answer: oneshot::channel().0,
        }
    }

    fn pull_request(action: PullRequestAction, number: u64) -> Pending {
        pending(Event::PullRequest {
            action,
            installation: 1,
            repo: repo(),
            pr: PullRequest {
                number,
                title: "t".into(),
                author: "octo".into(),
                head_ref: "topic".into(),
                head_sha: "a".repeat(40),
                base_ref: "main".into(),
                from_fork: false,
                draft: false,
                merged: false,
                labels: Vec::new(),
            },
            sender: "octo".into(),
            label: None,
        })
    }

    fn comment(number: u64) -> Pending {
        pending(Event::PullRequestComment {
            installation: 1,
            repo: repo(),
            number,
            body: "/preview destroy".into(),
            sender: "octo".into(),
        })
    }

    #[test]
    fn only_deploys_of_pull_requests_no_other_delivery_is_about_go_together() {
        use PullRequestAction::{Closed, Labeled, Opened, Synchronize};
        let group = [
            pull_request(Opened, 1),
            pull_request(Synchronize, 2),
            pull_request(Opened, 3),
            pull_request(Closed, 3),
            pull_request(Synchronize, 4),
            comment(4),
            pull_request(Labeled, 5),
            pending(Event::Ping),
        ];
        assert_eq!(
            set_wise(&group, &[true; 8]),
            [true, true, false, false, false, false, false, false]
        );
        // A delivery that is not applied (a duplicate) does not keep another from going along.
        let fresh = [true, true, true, false, true, false, true, true];
        assert_eq!(
            set_wise(&group, &fresh),
            [true, true, true, false, true, false, false, false]
        );
    }

    #[test]
    fn a_delivery_that_finds_previews_otherwise_keeps_the_group_in_turn() {
        let check_suite = pending(Event::CheckSuiteRerequested {
            installation: 1,
            repo: repo(),
            head_sha: "a".repeat(40),
            pull_requests: vec![9],
            sender: "octo".into(),
        });
        let group = [pull_request(PullRequestAction::Opened, 1), check_suite];
        assert_eq!(set_wise(&group, &[true, true]), [false, false]);
        // Unless it is not applied at all.
        assert_eq!(set_wise(&group, &[true, false]), [true, false]);
    }

    #[tokio::test]
    async fn a_writer_that_panics_is_replaced() {
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = started.clone();
        supervised(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                assert!(n >= 2, "writer {n} panics");
            }
        })
        .await;
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn a_repository_created_again_under_its_name_keeps_the_group_in_turn() {
        let mut again = pull_request(PullRequestAction::Opened, 2);
        if let Event::PullRequest { repo, .. } = &mut again.event {
            repo.id = 8;
        }
        let group = [pull_request(PullRequestAction::Opened, 1), again];
        assert_eq!(set_wise(&group, &[true, true]), [false, false]);
    }
}
