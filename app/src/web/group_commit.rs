//! Group commit of webhook deliveries: the deliveries that arrive together are recorded in one
//! database transaction and their jobs pushed to Redis together, before any of them is answered.
//!
//! A delivery's durable record costs a transaction, and a transaction's fixed costs (its begin
//! and commit, on SQLite the hand-over to the database's own thread and the one writer at a
//! time, on PostgreSQL the round trips and the row locks the upserts take) dominate the few
//! statements of the delivery itself. So writer tasks ([`run`]: one per process on SQLite,
//! [`POSTGRES_WRITERS`] on PostgreSQL) do every delivery's writing: each takes whatever has
//! queued up while its previous group was committing (up to
//! [`MAX_GROUP`]; no wait is added, so a lone delivery is not delayed), applies each in turn in
//! one transaction ([`intake::decide_in`]), records them all in one statement, pushes all their
//! jobs in one call per queue, commits, and only then answers each. The guarantee of a 2xx is
//! unchanged: its delivery is recorded and its jobs are in Redis.
//!
//! A group that cannot commit as a whole falls back to the one-delivery path
//! ([`super::webhooks::process`], with its retries and its "rejected" record) for each of its
//! deliveries — unless a store is down, when every delivery of the group is answered 503 at once
//! (GitHub may redeliver it) and the failures are recorded afterwards.

use std::{collections::HashSet, sync::OnceLock};

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
                tokio::spawn(run(self.intake.clone(), receiver.clone()));
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
    let mut written = intake::Written::default();
    let mut decided = Vec::with_capacity(group.len());
    let mut rows = Vec::with_capacity(group.len());
    let mut work = Work::default();
    for pending in group {
        let seen = recorded
            .get(&pending.guid)
            .is_some_and(|outcome| *outcome != DeliveryOutcome::Failed);
        if seen || !in_group.insert(pending.guid.as_str()) {
            decided.push(Decided::Duplicate);
            continue;
        }
        let decision =
            intake::decide_in(txn, &pending.event, Origin::Webhook, &mut written).await?;
        webhooks::end_sessions(intake, txn, &pending.event).await?;
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
