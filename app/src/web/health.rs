//! Liveness and readiness for Kubernetes probes and load balancers.
//!
//! `/healthz` says the process is up and serving (no store is touched, so a database outage
//! does not get every replica killed); `/readyz` says it can do its work: the database and Redis
//! both answer, else 503 with the reason for each.

use axum::{
    Json, Router,
    extract::{FromRef, State},
    http::StatusCode,
    routing::get,
};
use serde_json::{Value, json};

use crate::store::Stores;

/// The two routes, for any router state that holds the [`Stores`] (the app's, the setup's).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Stores: FromRef<S>,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(stores): State<Stores>) -> (StatusCode, Json<Value>) {
    let (database, redis) = tokio::join!(stores.check_database(), stores.check_redis());
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
