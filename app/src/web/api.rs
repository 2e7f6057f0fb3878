//! The REST API under `/api/v1`, for scripts: the dashboard's service and its one authorization
//! check ([`crate::previews::access`]), reached with an API token (`Authorization: Bearer
//! pvd_…`, [`crate::previews::tokens`]) and never with the session cookie, so a page another
//! site loads cannot use it.
//!
//! A token acts as its person with their access as it is now: operators (logins or team
//! members) see everything; anyone else the repositories on which the installation says they
//! have a permission, and acts where it says they can write — each answer cached 60 s.
//!
//! Errors are `application/problem+json` (RFC 9457) with a stable `code` (the set MCP will share):
//! `UNAUTHORIZED` (401, with `WWW-Authenticate`), `FORBIDDEN`, `NOT_FOUND`, `INVALID_INPUT`,
//! `CONFLICT`, `SERVER_ERROR`. A preview someone cannot see is `NOT_FOUND`, as on the pages.
//!
//! Served: who the token acts as, the list, one preview, and the actions — `DELETE` (202, the
//! preview is being removed), `POST …/retry|redeploy` (202 with the new attempt), `POST
//! …/extend` (200 with the new expiry); a state that does not allow one is `CONFLICT`; and a
//! container's log (`GET …/logs`). A route asked with a method it does not take is 405, as
//! problem+json too. The same functions answer MCP ([`super::mcp`]). `GET /api/v1/openapi.json`
//! describes it all ([`super::openapi`], generated from the answers' own types).

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{
    AppState, dashboard,
    dashboard::logs::{self, LogAsk, LogRefused},
    views::{ActedView, AttemptView, LogView, PreviewPage, PreviewView, WhoamiView},
};
use crate::previews::{
    access::{Actor, Denied, Verb},
    records::{self, PreviewFilter},
    service::ServiceError,
    tokens,
};

/// Previews a list answers by default, and at most.
const PER_PAGE: u64 = 25;
const MAX_PER_PAGE: u64 = 100;

/// The stable error codes (shared with MCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthorized,
    Forbidden,
    NotFound,
    InvalidInput,
    Conflict,
    ServerError,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::InvalidInput => "INVALID_INPUT",
            Self::Conflict => "CONFLICT",
            Self::ServerError => "SERVER_ERROR",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::InvalidInput => StatusCode::BAD_REQUEST,
            Self::Conflict => StatusCode::CONFLICT,
            Self::ServerError => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answer: `application/problem+json`.
#[derive(Debug)]
pub struct Problem {
    pub code: Code,
    pub detail: String,
    /// The code's own status, but for a wrong method (405, code `INVALID_INPUT`).
    pub status: StatusCode,
}

impl Problem {
    fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            status: code.status(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        });
        let mut response = (status, Json(body)).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.code == Code::Unauthorized {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"previewd\""),
            );
        }
        response
    }
}

fn store_problem(e: &sea_orm::DbErr) -> Problem {
    tracing::error!(error = %e, "api: database error");
    Problem::new(Code::ServerError, "the database did not answer; try again")
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Denied(Denied::NotFound) => {
                Problem::new(Code::NotFound, "there is no preview here that you can see")
            }
            ServiceError::Denied(Denied::Forbidden { repository, verb }) => Problem::new(
                Code::Forbidden,
                format!("you need write permission on {repository} to {verb} its previews"),
            ),
            ServiceError::Denied(Denied::Unavailable(e)) => {
                tracing::warn!(error = %e, "api: permission check failed");
                Problem::new(Code::ServerError, "GitHub did not answer; try again")
            }
            ServiceError::Conflict(text) => Problem::new(Code::Conflict, text),
            ServiceError::Store(text) => {
                tracing::error!(error = %text, "api: store error");
                Problem::new(
                    Code::ServerError,
                    "the database or the queue did not answer",
                )
            }
        }
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/previews", get(list))
        .route("/api/v1/previews/{id}", get(one).delete(delete))
        .route("/api/v1/previews/{id}/logs", get(logs))
        .route("/api/v1/previews/{id}/{verb}", axum::routing::post(act))
        .route("/api/v1/{*rest}", axum::routing::any(no_route))
        .method_not_allowed_fallback(wrong_method)
}

async fn no_route() -> Problem {
    Problem::new(Code::NotFound, "no such API route")
}

/// A route asked with a method it does not take: 405, as problem+json like every API error
/// (axum has already set `Allow`).
async fn wrong_method(method: Method) -> Response {
    Problem {
        status: StatusCode::METHOD_NOT_ALLOWED,
        ..Problem::new(
            Code::InvalidInput,
            format!("this route does not take {method}"),
        )
    }
    .into_response()
}

/// `GET /api/v1/openapi.json`: the document describing these routes (no token needed).
async fn openapi(State(state): State<AppState>) -> Response {
    Json(super::openapi::document(state.server.public_url.as_str())).into_response()
}

/// Who presents the request's token, with their access now.
pub(super) async fn actor(state: &AppState, headers: &HeaderMap) -> Result<Actor, Problem> {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(Problem::new(
            Code::Unauthorized,
            "send an API token as Authorization: Bearer pvd_… (made at /tokens)",
        ));
    };
    let db = &state.stores.db;
    let found = tokens::authenticate(db, &SecretString::from(presented.to_owned()))
        .await
        .map_err(|e| store_problem(&e))?;
    let Some((_, person)) = found else {
        return Err(Problem::new(
            Code::Unauthorized,
            "this token is unknown, revoked or expired",
        ));
    };
    let operator = dashboard::is_operator(state, &person.login).await;
    let repositories = records::live_repositories(db)
        .await
        .map_err(|e| store_problem(&e))?;
    state
        .dashboard
        .access
        .actor_for_token(person.id, &person.login, operator, &repositories)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "api: GitHub could not tell the person's reach");
            Problem::new(Code::ServerError, "GitHub did not answer; try again")
        })
}

/// Who `who` is, as the API and MCP say it.
pub fn whoami_of(who: &Actor) -> WhoamiView {
    WhoamiView {
        login: who.login.clone(),
        user_id: who.user_id,
        operator: who.operator,
        repositories: (!who.operator).then(|| who.repositories.len()),
    }
}

/// `GET /api/v1/whoami`
async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    let who = actor(&state, &headers).await?;
    Ok(Json(whoami_of(&who)).into_response())
}

/// What a list asks for (the REST query, MCP's arguments).
#[derive(Debug, Default, Deserialize)]
pub struct ListAsk {
    pub status: Option<String>,
    pub repository: Option<String>,
    pub mine: Option<bool>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// The previews `who` can see that `ask` picks, one page of them.
pub async fn list_for(state: &AppState, who: &Actor, ask: ListAsk) -> Result<PreviewPage, Problem> {
    let statuses = match ask.status.as_deref().filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(s) => vec![dashboard::parse_status(s).ok_or_else(|| {
            Problem::new(
                Code::InvalidInput,
                format!("status {s:?} is not a status a preview can have"),
            )
        })?],
    };
    let per_page = ask.per_page.unwrap_or(PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(Problem::new(
            Code::InvalidInput,
            format!("per_page must be 1 to {MAX_PER_PAGE}"),
        ));
    }
    let page = ask.page.unwrap_or(1);
    if !(1..=10_000).contains(&page) {
        return Err(Problem::new(Code::InvalidInput, "page must be 1 to 10000"));
    }
    let filter = PreviewFilter {
        repositories: who.visible(),
        statuses,
        repository: ask.repository.filter(|r| !r.is_empty()),
        author: ask.mine.unwrap_or(false).then(|| who.login.clone()),
        search: None,
    };
    let db = &state.stores.db;
    let (rows, total) = records::list_previews(db, &filter, (page - 1) * per_page, per_page)
        .await
        .map_err(|e| store_problem(&e))?;
    let current = records::current_attempts(db, &rows)
        .await
        .map_err(|e| store_problem(&e))?;
    let items = rows
        .iter()
        .map(|r| {
            let attempt = r.preview.current_attempt_id.and_then(|id| current.get(&id));
            PreviewView::of(state, r, attempt)
        })
        .collect();
    Ok(PreviewPage {
        items,
        page,
        per_page,
        total,
    })
}

/// `GET /api/v1/previews`
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListAsk>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let who = actor(&state, &headers).await?;
    let Query(ask) = query.map_err(|e| Problem::new(Code::InvalidInput, e.body_text()))?;
    Ok(Json(list_for(&state, &who, ask).await?).into_response())
}

/// One preview by id or namespace, with its latest attempts, if `who` can see it.
pub async fn get_for(state: &AppState, who: &Actor, key: &str) -> Result<PreviewView, Problem> {
    let db = &state.stores.db;
    let id = preview_key(state, key).await?;
    let row = dashboard::service_of(state)
        .get(who, id, Verb::View)
        .await?;
    let attempts = records::attempts_of(db, id, 20)
        .await
        .map_err(|e| store_problem(&e))?;
    let mut view = PreviewView::of(state, &row, attempts.first());
    view.attempts = Some(attempts.iter().map(AttemptView::of).collect());
    Ok(view)
}

/// `GET /api/v1/previews/{id or namespace}`
async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Problem> {
    let who = actor(&state, &headers).await?;
    Ok(Json(get_for(&state, &who, &key).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    pod: Option<String>,
    container: Option<String>,
    tail: Option<i64>,
    timestamps: Option<bool>,
    previous: Option<bool>,
}

/// The end of a container's log of a preview `who` can see.
pub async fn logs_for(
    state: &AppState,
    who: &Actor,
    key: &str,
    ask: &LogAsk,
) -> Result<LogView, Problem> {
    let id = preview_key(state, key).await?;
    let row = dashboard::service_of(state)
        .get(who, id, Verb::View)
        .await?;
    let read = logs::read_for(state, &row.preview.namespace, ask)
        .await
        .map_err(log_problem)?;
    Ok(LogView {
        id,
        namespace: row.preview.namespace,
        pod: read.pod,
        container: read.container,
        previous: ask.previous,
        lines: read.text.lines().map(str::to_owned).collect(),
        omitted_lines: None,
        notice: None,
        pods: read.pods,
    })
}

/// `GET /api/v1/previews/{id or namespace}/logs?pod=&container=&tail=&timestamps=&previous=`:
/// the lines from the end of one container's log (the newest pod's first container unless
/// named), and the preview's pods to choose from.
async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let who = actor(&state, &headers).await?;
    let Query(query) = query.map_err(|e| Problem::new(Code::InvalidInput, e.body_text()))?;
    let ask = LogAsk {
        pod: query.pod.filter(|p| !p.is_empty()),
        container: query.container.filter(|c| !c.is_empty()),
        tail: query.tail,
        timestamps: query.timestamps.unwrap_or(false),
        previous: query.previous.unwrap_or(false),
    };
    Ok(Json(logs_for(&state, &who, &key, &ask).await?).into_response())
}

/// A log that could not be read, as a problem.
fn log_problem(refused: LogRefused) -> Problem {
    match refused {
        LogRefused::Invalid(text) => Problem::new(Code::InvalidInput, text),
        LogRefused::NoPods => Problem::new(
            Code::Conflict,
            "the preview has no pods now (it is not deployed, or is being removed)",
        ),
        LogRefused::Cluster(text) => Problem::new(Code::ServerError, text),
    }
}

/// The preview id in a path: a number, else a namespace.
async fn preview_key(state: &AppState, key: &str) -> Result<i64, Problem> {
    let id = match key.parse::<i64>() {
        Ok(id) => Some(id),
        Err(_) => records::preview_id_of_namespace(&state.stores.db, key)
            .await
            .map_err(|e| store_problem(&e))?,
    };
    id.ok_or_else(|| Problem::new(Code::NotFound, "there is no preview here that you can see"))
}

/// What can be done to a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delete,
    Retry,
    Redeploy,
    Extend,
}

/// Does `action` to the preview `key` names, as `who`, through the dashboard's own service.
pub async fn act_for(
    state: &AppState,
    who: &Actor,
    key: &str,
    action: Action,
) -> Result<ActedView, Problem> {
    let id = preview_key(state, key).await?;
    let service = dashboard::service_of(state);
    let message = match action {
        Action::Delete => service.delete(who, id).await?,
        Action::Retry => service.retry(who, id).await?,
        Action::Redeploy => service.redeploy(who, id).await?,
        Action::Extend => service.extend(who, id).await?,
    };
    let db = &state.stores.db;
    let row = records::preview_row(db, id)
        .await
        .map_err(|e| store_problem(&e))?
        .ok_or_else(|| Problem::new(Code::NotFound, "the preview is gone"))?;
    let attempt = match action {
        Action::Retry | Action::Redeploy => records::attempts_of(db, id, 1)
            .await
            .map_err(|e| store_problem(&e))?
            .first()
            .map(AttemptView::of),
        Action::Delete | Action::Extend => None,
    };
    Ok(ActedView {
        id,
        status: dashboard::status_key(row.preview.status).to_owned(),
        attempt,
        expires_at: (action == Action::Extend)
            .then_some(row.preview.expires_at)
            .flatten(),
        message,
    })
}

/// `DELETE /api/v1/previews/{id or namespace}`: 202 while it is removed.
async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Problem> {
    let who = actor(&state, &headers).await?;
    let acted = act_for(&state, &who, &key, Action::Delete).await?;
    Ok((StatusCode::ACCEPTED, Json(acted)).into_response())
}

/// `POST /api/v1/previews/{id or namespace}/retry|redeploy|extend`.
async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((key, verb)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let who = actor(&state, &headers).await?;
    let action = match verb.as_str() {
        "retry" => Action::Retry,
        "redeploy" => Action::Redeploy,
        "extend" => Action::Extend,
        _ => {
            return Err(Problem::new(
                Code::NotFound,
                "previews can be retried, redeployed or extended (and deleted with DELETE)",
            ));
        }
    };
    let acted = act_for(&state, &who, &key, action).await?;
    let status = if action == Action::Extend {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(acted)).into_response())
}
