//! Liveness and readiness for Kubernetes probes and load balancers.
//!
//! `/healthz` says the process is up and serving (no store is touched, so a database outage
//! does not get every replica killed); `/readyz` says it can do its work: the database and Redis
//! both answer, else 503 with the reason for each.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (database, redis) = tokio::join!(state.stores.check_database(), state.stores.check_redis());
    let ready = database.is_ok() && redis.is_ok();
    let describe = |r: Result<(), String>| r.err().unwrap_or_else(|| "ok".to_owned());
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "database": describe(database), "redis": describe(redis) },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
