//! `POST /webhooks/github`: where GitHub's deliveries arrive.
//!
//! The answer must come in milliseconds (GitHub gives up after 10 s and does not retry on its
//! own), so the handler only verifies, records, enqueues and answers:
//!
//! 1. `X-Hub-Signature-256` over the raw body, in constant time — else **401**, nothing touched.
//! 2. The body parses as the event it claims — else **400**.
//! 3. One database transaction: the delivery GUID (a duplicate is answered **200** with no new
//!    work), then the rows the event changes ([`intake::decide`]). The deliveries that arrive
//!    together share that transaction ([`super::group_commit`]); [`process`] is the path of one
//!    delivery alone, which a group that cannot commit as a whole falls back to.
//! 4. The jobs are enqueued in Redis **before** the transaction commits; if Redis or the database
//!    fails, everything is rolled back and the answer is **503**, so GitHub shows the delivery
//!    failed and it can be redelivered.
//! 5. **202** for work accepted, **200** for an event previewd does not act on.
//!
//! Steps 1 and 2 (and the headers) are the extractor's, [`webhook::Delivery`], which also bounds
//! what an unsigned request costs: 401 before its body is read when it carries no signature,
//! 411 without `Content-Length`, 413 over 25 MB, 503 when too many unverified bytes are in
//! flight, 408 when the body is slow.

use axum::{
    Json, Router,
    extract::{FromRef, FromRequestParts, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::Utc;
use previewd_entity::{DeliveryOutcome, webhook_delivery};
use sea_orm::{ActiveValue::Set, DbErr};
use serde_json::json;
use tracing::Instrument as _;

use super::AppState;
use crate::{
    github::{
        RepoName,
        webhook::{
            self, Delivery, Event, PullRequestAction, Refusal, UnverifiedBodies, WebhookSecret,
        },
    },
    jobs::Queues,
    previews::{
        intake::{self, Origin},
        lifecycle,
        records::{self, DeliveryRecord},
    },
    reporter::{self, Reporter},
    store,
};

/// What recording a delivery needs of the app's state (not the state itself: the writer task
/// of [`super::group_commit`] holds it, and must not keep the state alive).
#[derive(Debug, Clone)]
pub struct Intake {
    pub db: sea_orm::DatabaseConnection,
    pub queues: Queues,
    pub reporter: Reporter,
    pub dashboard: std::sync::Arc<super::dashboard::Dashboard>,
    /// Creates the deliveries' "queued" check runs once they are committed.
    pub queued: std::sync::Arc<reporter::QueuedCheckRuns>,
}

pub use crate::github::webhook::extract::MAX_BODY;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/github", post(receive))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

impl FromRef<AppState> for WebhookSecret {
    fn from_ref(state: &AppState) -> Self {
        Self(state.webhook_secret.clone())
    }
}

impl FromRef<AppState> for UnverifiedBodies {
    fn from_ref(state: &AppState) -> Self {
        state.unverified.clone()
    }
}

/// Logs and counts a refused request, and answers it.
fn refuse(state: &AppState, refusal: &Refusal) -> Response {
    match refusal {
        Refusal::Unsigned => {
            // Nothing an unsigned request claims is believed, its event name included.
            tracing::warn!("webhook rejected: missing or invalid signature");
            state.metrics.webhook("unknown", "unauthorized");
        }
        Refusal::Busy => {
            tracing::warn!("webhook refused: too many unverified bodies in flight");
            state.metrics.webhook("unknown", "busy");
        }
        Refusal::Malformed {
            guid,
            event_name,
            error,
        } => {
            tracing::warn!(delivery = %guid, event = %event_name, error = %error, "webhook rejected: malformed payload");
            state.metrics.webhook(event_name, "malformed");
        }
        Refusal::NoEvent | Refusal::BadDeliveryId | Refusal::Body { .. } => {}
    }
    answer(refusal.status(), json!({ "error": refusal.message() }))
}

/// When the handler began, before the body was read: axum runs the extractors that need only
/// the head first and the one that takes the body ([`Delivery`]) last.
struct Received(std::time::Instant);

impl<S: Send + Sync> FromRequestParts<S> for Received {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(std::time::Instant::now()))
    }
}

async fn receive(
    State(state): State<AppState>,
    received: Received,
    delivery: Result<Delivery, Refusal>,
) -> Response {
    let Delivery {
        guid,
        event_name,
        event,
        body,
    } = match delivery {
        Ok(d) => d,
        Err(refusal) => return refuse(&state, &refusal),
    };
    let event_name = event_name.as_str();
    let span = tracing::info_span!("webhook", delivery = %guid, event = event_name, installation = tracing::field::Empty, repo = tracing::field::Empty);
    if let Some((installation, repo)) = event_scope(&event) {
        span.record("installation", installation);
        span.record("repo", repo);
    }
    let action = action_word(&event, &body);
    let response = match state
        .intake
        .process(guid.clone(), event_name.to_owned(), action, event)
        .instrument(span)
        .await
    {
        Ok(Processed::Duplicate) => {
            state.metrics.webhook(event_name, "duplicate");
            tracing::info!(delivery = %guid, event = event_name, "duplicate delivery; no new work");
            answer(StatusCode::OK, json!({ "status": "duplicate" }))
        }
        Ok(Processed::Done(decision)) => {
            state.metrics.webhook(
                event_name,
                if decision.acted {
                    "accepted"
                } else {
                    "ignored"
                },
            );
            tracing::info!(delivery = %guid, event = event_name, acted = decision.acted, detail = %decision.detail, "webhook processed");
            let (status, word) = if decision.acted {
                (StatusCode::ACCEPTED, "accepted")
            } else {
                (StatusCode::OK, "ignored")
            };
            answer(status, json!({ "status": word, "detail": decision.detail }))
        }
        Ok(Processed::Rejected(reason)) => {
            state.metrics.webhook(event_name, "rejected");
            tracing::warn!(delivery = %guid, event = event_name, reason = %reason, "webhook rejected; a redelivery would not help");
            answer(
                StatusCode::OK,
                json!({ "status": "rejected", "detail": reason }),
            )
        }
        Err(reason) => {
            state.metrics.webhook(event_name, "unavailable");
            tracing::error!(delivery = %guid, event = event_name, reason = %reason, "webhook not processed; GitHub may redeliver it");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "temporarily unable to process; redeliver later" }),
            )
        }
    };
    state.metrics.webhook_answered(received.0.elapsed());
    response
}

pub enum Processed {
    Duplicate,
    Done(intake::Decision),
    /// Refused for a reason a redelivery cannot fix; recorded, answered 2xx.
    Rejected(String),
}

/// The `action` of a delivery, for its record: from the parsed event where it says it (the
/// payload is not read twice for the common events), else from the body.
fn action_word(event: &Event, body: &[u8]) -> Option<String> {
    let Event::PullRequest { action, .. } = event else {
        return webhook::action_of(body);
    };
    let word = match action {
        PullRequestAction::Opened => "opened",
        PullRequestAction::Reopened => "reopened",
        PullRequestAction::Synchronize => "synchronize",
        PullRequestAction::Closed => "closed",
        PullRequestAction::Labeled => "labeled",
        PullRequestAction::Unlabeled => "unlabeled",
        PullRequestAction::ReadyForReview => "ready_for_review",
        PullRequestAction::ConvertedToDraft => "converted_to_draft",
        PullRequestAction::BaseChanged => "edited",
    };
    Some(word.to_owned())
}

/// Installation and repository of an event, for logs and the delivery record.
pub(super) fn event_scope(event: &Event) -> Option<(i64, String)> {
    if let Some((installation, repo)) = event_repo(event) {
        return Some((installation, repo.to_string()));
    }
    match event {
        Event::Installation {
            installation,
            account,
            ..
        } => Some((*installation, account.clone())),
        Event::InstallationRepositories { installation, .. } => {
            Some((*installation, String::new()))
        }
        _ => None,
    }
}

/// Installation and repository of an event about one repository.
fn event_repo(event: &Event) -> Option<(i64, &RepoName)> {
    match event {
        Event::PullRequest {
            installation, repo, ..
        }
        | Event::CheckRun {
            installation, repo, ..
        }
        | Event::CheckSuiteRerequested {
            installation, repo, ..
        }
        | Event::PullRequestComment {
            installation, repo, ..
        } => Some((*installation, &repo.name)),
        Event::Installation { .. }
        | Event::InstallationRepositories { .. }
        | Event::AuthorizationRevoked { .. }
        | Event::Ping
        | Event::Ignored { .. } => None,
    }
}

/// Processes a delivery in one transaction, tried again when a concurrent delivery for the same
/// rows got in the way. A store outage (or Redis refusing a job) is the only `Err`: GitHub
/// redelivers. Anything a redelivery could not fix is recorded as rejected and answered 2xx.
pub(super) async fn process(
    state: &Intake,
    guid: &str,
    event_name: &str,
    action: Option<&str>,
    event: &Event,
) -> Result<Processed, String> {
    const TRIES: u32 = 3;
    let mut tries = 0;
    loop {
        tries += 1;
        let error = match process_once(state, guid, event_name, action, event).await {
            Ok(processed) => return Ok(processed),
            Err(Failure::Enqueue(message)) => {
                record_failure(state, guid, event_name, &message).await;
                return Err(message);
            }
            Err(Failure::Database(e)) => e,
        };
        match store::trouble(&error) {
            store::Trouble::Outage => {
                let message = format!("database: {error}");
                record_failure(state, guid, event_name, &message).await;
                return Err(message);
            }
            store::Trouble::Conflict if tries < TRIES => {
                tracing::debug!(delivery = %guid, error = %error, "concurrent delivery got in the way; trying again");
            }
            store::Trouble::Conflict | store::Trouble::Permanent => {
                let reason = crate::sanitize::sanitize(&error.to_string(), 500);
                record_outcome(state, guid, event_name, DeliveryOutcome::Rejected, &reason)
                    .await
                    .map_err(|e| format!("database: {e}"))?;
                return Ok(Processed::Rejected(reason));
            }
        }
    }
}

/// Why one try of [`process`] did not commit.
enum Failure {
    Database(DbErr),
    Enqueue(String),
}

impl From<DbErr> for Failure {
    fn from(e: DbErr) -> Self {
        Self::Database(e)
    }
}

async fn process_once(
    state: &Intake,
    guid: &str,
    event_name: &str,
    action: Option<&str>,
    event: &Event,
) -> Result<Processed, Failure> {
    let db = &state.db;
    let scope = event_scope(event);
    let txn = lifecycle::begin_transaction(db).await?;
    let delivery = webhook_delivery::ActiveModel {
        guid: Set(guid.to_owned()),
        event: Set(event_name.chars().take(64).collect()),
        action: Set(action.map(|a| a.chars().take(64).collect())),
        installation_id: Set(scope.as_ref().map(|s| s.0)),
        repository_full_name: Set(scope
            .as_ref()
            .map(|s| s.1.clone())
            .filter(|r| !r.is_empty())),
        outcome: Set(DeliveryOutcome::Accepted),
        detail: Set(None),
        received_at: Set(Utc::now()),
        ..Default::default()
    };
    match records::record_delivery(&txn, delivery).await? {
        DeliveryRecord::Duplicate => {
            txn.rollback().await?;
            return Ok(Processed::Duplicate);
        }
        DeliveryRecord::New => {}
    }
    let mut decision = match intake::decide(&txn, event, Origin::Webhook).await {
        Ok(decision) => decision,
        Err(e) => {
            drop(txn.rollback().await);
            return Err(e.into());
        }
    };
    end_sessions(state, &txn, event).await?;
    let outcome = if decision.acted {
        DeliveryOutcome::Accepted
    } else {
        DeliveryOutcome::Ignored
    };
    records::set_delivery_outcome(&txn, guid, outcome, &decision.detail).await?;

    // Enqueue before committing: if Redis refuses, the transaction rolls back and the delivery
    // can be redelivered as if it never arrived. Workers wait for the commit (see the deploy job).
    if let Err(e) = state.queues.enqueue(&decision.work).await {
        drop(txn.rollback().await);
        return Err(Failure::Enqueue(e.to_string()));
    }
    txn.commit().await?;
    show_queued(state, event, &mut decision);
    Ok(Processed::Done(decision))
}

/// An `github_app_authorization.revoked` ends the person's dashboard sessions, in the
/// delivery's transaction.
pub(super) async fn end_sessions(
    state: &Intake,
    txn: &sea_orm::DatabaseTransaction,
    event: &Event,
) -> Result<(), DbErr> {
    if let Event::AuthorizationRevoked { user_id, login } = event {
        let ended = super::dashboard::session::destroy_all_of(txn, *user_id).await?;
        state.dashboard.access.forget(*user_id, login);
        tracing::info!(user = %login, sessions = ended, "authorization revoked: sessions ended");
    }
    Ok(())
}

/// Once a delivery is committed: the deploys to show as queued (not those whose asker's
/// permission the worker checks first: a Redeploy, an approval), from what it carried.
pub(super) fn show_queued(state: &Intake, event: &Event, decision: &mut intake::Decision) {
    if let Some((installation, repo)) = event_repo(event) {
        state.queued.show(
            installation,
            repo,
            std::mem::take(&mut decision.work.queued),
        );
    }
}

/// Records a delivery's outcome outside its (rolled back) transaction.
async fn record_outcome(
    state: &Intake,
    guid: &str,
    event_name: &str,
    outcome: DeliveryOutcome,
    detail: &str,
) -> Result<(), DbErr> {
    let row = webhook_delivery::ActiveModel {
        guid: Set(guid.to_owned()),
        event: Set(event_name.chars().take(64).collect()),
        action: Set(None),
        installation_id: Set(None),
        repository_full_name: Set(None),
        outcome: Set(outcome),
        detail: Set(Some(detail.to_owned())),
        received_at: Set(Utc::now()),
        ..Default::default()
    };
    records::record_delivery(&state.db, row).await?;
    // A GUID seen before as failed is re-recorded by `record_delivery`; set the outcome itself.
    records::set_delivery_outcome(&state.db, guid, outcome, detail).await
}

/// Records that a delivery failed, so operators see it; a redelivery of the GUID is processed.
pub(super) async fn record_failure(state: &Intake, guid: &str, event_name: &str, reason: &str) {
    let row = webhook_delivery::ActiveModel {
        guid: Set(guid.to_owned()),
        event: Set(event_name.chars().take(64).collect()),
        action: Set(None),
        installation_id: Set(None),
        repository_full_name: Set(None),
        outcome: Set(DeliveryOutcome::Failed),
        detail: Set(Some(crate::sanitize::sanitize(reason, 500))),
        received_at: Set(Utc::now()),
        ..Default::default()
    };
    if let Err(e) = records::record_delivery(&state.db, row).await {
        tracing::warn!(delivery = %guid, error = %e, "could not record the failed delivery");
    }
}
