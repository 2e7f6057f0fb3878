//! The dashboard: people sign in with GitHub, see the previews they may see, and delete, retry,
//! redeploy or extend them.
//!
//! - [`signin`]: "Sign in with GitHub" with the App's OAuth client (state + PKCE), sign-out.
//! - [`session`]: server-side sessions behind a `__Host-` cookie, CSRF tokens, the person's
//!   GitHub tokens (refreshed one at a time per session).
//! - [`pages`]: the HTML (maud templates: every value escaped at compile-checked insertion
//!   points); everything works with plain links and forms. One small script of our own
//!   (`dashboard.js`, served from the binary) only adds the live follow of a log.
//! - `tokens`: the person's API tokens (made, shown once, revoked).
//! - [`logs`]: what a detail page reads from the cluster (pods, the chosen log, the current
//!   attempt's events, usage against the quota) and the followed log as server-sent events.
//! - this module: the routes, who is asking ([`signed_in`]), and the actions, which are thin
//!   adapters over [`crate::previews::service`] — the authorization check is
//!   [`crate::previews::access`], never the page that showed a button.
//!
//! Requests that change something must carry the session's CSRF token and must not come from
//! another site: previews run untrusted code on sibling subdomains, so `Sec-Fetch-Site:
//! same-site` is refused like `cross-site`.

pub mod logs;
mod pages;
pub mod session;
mod signin;
mod tokens;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use previewd_entity::PreviewStatus;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use self::session::{Flash, Session};
use super::AppState;
use crate::{
    cluster::{Cluster, ClusterError},
    config::OAuthClient,
    github::{GitHub, GitHubError},
    previews::{
        access::{Access, Actor, Denied, OperatorTeam},
        records::{self, PreviewFilter},
        service::{Service, ServiceError},
    },
};

/// Previews per list page.
pub const PAGE_SIZE: u64 = 25;
/// Attempts shown on a detail page.
pub const ATTEMPTS_SHOWN: u64 = 20;

/// The dashboard's part of the app state.
#[derive(Debug)]
pub struct Dashboard {
    pub oauth: Option<OAuthClient>,
    pub web_url: Url,
    pub access: Access,
    /// One lock per session while its GitHub token is refreshed.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    kubeconfig: Option<PathBuf>,
    /// Connected on first use (a cluster down at start-up costs pages their cluster part only).
    cluster: tokio::sync::OnceCell<Cluster>,
    /// Usage read lately, by namespace (the list pages').
    usage: logs::UsageCache,
}

impl Dashboard {
    pub fn new(
        github: GitHub,
        oauth: Option<OAuthClient>,
        web_url: Url,
        kubeconfig: Option<PathBuf>,
    ) -> Self {
        Self {
            oauth,
            web_url,
            access: Access::new(github),
            refreshing: Mutex::default(),
            kubeconfig,
            cluster: tokio::sync::OnceCell::new(),
            usage: logs::UsageCache::default(),
        }
    }

    /// The cluster previews run in, connected on first use (a failure is tried again next time).
    pub async fn cluster(&self) -> Result<&Cluster, ClusterError> {
        self.cluster
            .get_or_try_init(|| Cluster::connect(self.kubeconfig.as_deref()))
            .await
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/previews") }))
        .route("/previews", get(list))
        .route("/previews/{id}", get(detail))
        .route("/previews/{id}/{verb}", post(act))
        .route("/previews/{id}/logs/stream", get(logs::stream))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/dashboard.css", get(pages::stylesheet))
        .route("/dashboard.js", get(pages::script))
        .merge(signin::routes())
}

/// Whether sessions can work at this public URL: browsers keep `Secure` cookies only over
/// HTTPS, or plain HTTP on a loopback address.
pub fn cookies_work(public_url: &Url) -> bool {
    public_url.scheme() == "https"
        || match public_url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        }
}

/// A signed-in person on this request.
struct SignedIn {
    session: Session,
    actor: Actor,
}

/// What stops a request before its handler's work.
enum Stop {
    /// Not signed in: off to sign in, then back to `return_to`.
    SignIn(String),
    Page(StatusCode, String, String),
}

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        match self {
            Stop::SignIn(return_to) => {
                let mut to = Url::parse("http://x/auth/login").expect("static URL");
                to.query_pairs_mut().append_pair("return_to", &return_to);
                let target = format!("/auth/login?{}", to.query().unwrap_or_default());
                Redirect::to(&target).into_response()
            }
            Stop::Page(status, title, text) => pages::message(status, &title, &text),
        }
    }
}

/// A form whose fields could not be read.
fn unreadable_form() -> Stop {
    Stop::Page(
        StatusCode::BAD_REQUEST,
        "Request refused".into(),
        "The form could not be read.".into(),
    )
}

fn unavailable(what: &str) -> Stop {
    Stop::Page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment".into(),
        format!("{what} did not answer; nothing was changed."),
    )
}

fn store_error(e: &sea_orm::DbErr) -> Stop {
    tracing::error!(error = %e, "dashboard: database error");
    unavailable("The database")
}

/// The signed-in person making this request, with what they may reach.
async fn signed_in(state: &AppState, headers: &HeaderMap, here: &str) -> Result<SignedIn, Stop> {
    let db = &state.stores.db;
    let session = session::load(db, headers)
        .await
        .map_err(|e| store_error(&e))?;
    let Some(mut session) = session else {
        return Err(Stop::SignIn(here.to_owned()));
    };
    let Some(user) = session.user.clone() else {
        return Err(Stop::SignIn(here.to_owned()));
    };
    let dashboard = &state.dashboard;
    let operator = is_operator(state, &user.login).await;
    let actor = dashboard
        .access
        .actor(user.id, &user.login, operator, async || {
            user_token(state, &mut session).await
        })
        .await;
    match actor {
        Ok(actor) => Ok(SignedIn { session, actor }),
        Err(e) if e.status == Some(401) => {
            // GitHub no longer honours the sign-in (revoked, or the refresh failed).
            let _ = session::destroy(db, &session.id).await;
            Err(Stop::SignIn(here.to_owned()))
        }
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: GitHub could not list the person's repositories");
            Err(unavailable("GitHub"))
        }
    }
}

/// Whether `login` is an operator: named in `OPERATORS`, or a member of a team it names.
pub(in crate::web) async fn is_operator(state: &AppState, login: &str) -> bool {
    state.server.operators.contains(&login.to_ascii_lowercase())
        || state
            .dashboard
            .access
            .in_operator_team(login, &operator_teams(state).await)
            .await
}

/// A status's name in URLs and the API (`running`, `awaiting_approval`, …), and back.
pub(in crate::web) use pages::{parse_status, status_key};

/// The operators' teams of `OPERATORS` whose organization has the App installed (a team of an
/// organization without it cannot be asked about, and makes nobody an operator).
async fn operator_teams(state: &AppState) -> Vec<OperatorTeam> {
    let teams = &state.server.operator_teams;
    if teams.is_empty() {
        return Vec::new();
    }
    let orgs: Vec<String> = teams.iter().map(|(org, _)| org.clone()).collect();
    let installations = match records::installations_of_accounts(&state.stores.db, &orgs).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: could not read the installations of operators' teams");
            return Vec::new();
        }
    };
    teams
        .iter()
        .filter_map(|(org, team)| {
            Some(OperatorTeam {
                installation: *installations.get(org)?,
                org: org.clone(),
                team: team.clone(),
            })
        })
        .collect()
}

/// The person's current GitHub token, refreshed first when it is about to expire — by one
/// request at a time per session (a refresh token works once).
async fn user_token(state: &AppState, session: &mut Session) -> Result<SecretString, GitHubError> {
    if let Some(token) = fresh_token(session) {
        return Ok(token);
    }
    let dashboard = &state.dashboard;
    let lock = Arc::clone(
        dashboard
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(session.id.clone())
            .or_default(),
    );
    let held = lock.lock().await;
    let refreshed = refresh_locked(state, session).await;
    // Forgotten only once the new token is stored (or the refresh ended), while still held: a
    // request arriving meanwhile waits on this lock and then finds the new token.
    dashboard
        .refreshing
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&session.id);
    drop(held);
    refreshed
}

/// The refresh itself, under the session's lock.
async fn refresh_locked(
    state: &AppState,
    session: &mut Session,
) -> Result<SecretString, GitHubError> {
    let ended = GitHubError::signed_out;
    let dashboard = &state.dashboard;
    let db = &state.stores.db;
    // Another request may have refreshed it while this one waited.
    if !session::reload(db, session).await.unwrap_or(false) {
        return Err(ended());
    }
    if let Some(token) = fresh_token(session) {
        return Ok(token);
    }
    let (Some(client), Some(refresh)) = (
        dashboard.oauth.as_ref(),
        session.data.token.as_ref().and_then(|t| t.refresh.clone()),
    ) else {
        return Err(ended());
    };
    let renewed = state
        .reporter
        .github
        .refresh_user_token(&dashboard.web_url, client, &SecretString::from(refresh))
        .await;
    let tokens = match renewed {
        Ok(tokens) => tokens,
        Err(e) if e.retryable => return Err(e),
        Err(_) => return Err(ended()),
    };
    session.data.token = Some(signin::stored(&tokens));
    session::save(db, session)
        .await
        .map_err(|_| GitHubError::signed_out())?;
    Ok(tokens.access)
}

/// The session's access token unless it expires within a minute.
fn fresh_token(session: &Session) -> Option<SecretString> {
    session.data.token.as_ref().and_then(|t| {
        let valid = t
            .expires_at
            .is_none_or(|at| at > chrono::Utc::now() + chrono::Duration::seconds(60));
        valid.then(|| SecretString::from(t.access.clone()))
    })
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    repo: Option<String>,
    mine: Option<String>,
    q: Option<String>,
    page: Option<u64>,
}

/// `GET /previews`
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    uri: http::Uri,
) -> Result<Response, Stop> {
    let here = uri
        .path_and_query()
        .map_or("/previews", |p| p.as_str())
        .to_owned();
    let mut who = signed_in(&state, &headers, &here).await?;
    let Ok(Query(query)) = query else {
        return Err(Stop::Page(
            StatusCode::BAD_REQUEST,
            "Unknown filter".into(),
            "The filters in this address could not be read.".into(),
        ));
    };
    let statuses = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(s) => match parse_status(s) {
            Some(status) => vec![status],
            None => {
                return Err(Stop::Page(
                    StatusCode::BAD_REQUEST,
                    "Unknown status".into(),
                    format!("{s:?} is not a status a preview can have."),
                ));
            }
        },
    };
    let filter = PreviewFilter {
        repositories: who.actor.visible(),
        statuses,
        repository: query.repo.clone().filter(|r| !r.is_empty()),
        author: query.mine.is_some().then(|| who.actor.login.clone()),
        search: query
            .q
            .clone()
            .map(|q| q.trim().chars().take(100).collect()),
    };
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    let db = &state.stores.db;
    let (rows, total) = records::list_previews(db, &filter, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
        .map_err(|e| store_error(&e))?;
    let current = records::current_attempts(db, &rows)
        .await
        .map_err(|e| store_error(&e))?;
    let repositories = records::repository_names(db, who.actor.visible().as_deref())
        .await
        .map_err(|e| store_error(&e))?;
    let totals = if who.actor.operator {
        Some(
            records::status_counts(db)
                .await
                .map_err(|e| store_error(&e))?,
        )
    } else {
        None
    };
    // Usage for the rows whose namespace holds a workload, and for operators the sum over
    // every live preview (the cache makes the rows' reads count for both).
    let shown: Vec<String> = rows
        .iter()
        .filter(|r| {
            matches!(
                r.preview.status,
                PreviewStatus::Building
                    | PreviewStatus::Deploying
                    | PreviewStatus::Running
                    | PreviewStatus::Failed
            )
        })
        .map(|r| r.preview.namespace.clone())
        .collect();
    let usage = logs::usages(&state, &shown).await;
    let cluster_totals = if who.actor.operator {
        let live = records::live_namespaces(db, logs::TOTALS_OF)
            .await
            .map_err(|e| store_error(&e))?;
        let all = logs::usages(&state, &live).await;
        Some(logs::totals(live.len(), &all))
    } else {
        None
    };
    let flash = take_flash(&state, &mut who.session).await;
    let view = pages::ListView {
        who: pages::Who::of(&who.actor, &who.session),
        rows: &rows,
        current: &current,
        total,
        page,
        status: query.status.as_deref().unwrap_or_default(),
        repo: query.repo.as_deref().unwrap_or_default(),
        mine: query.mine.is_some(),
        search: query.q.as_deref().unwrap_or_default(),
        repositories: &repositories,
        totals: totals.as_deref(),
        usage: &usage,
        cluster_totals,
        flash: flash.as_ref(),
        web_url: &state.dashboard.web_url,
    };
    Ok(pages::list(&view))
}

async fn take_flash(state: &AppState, session: &mut Session) -> Option<Flash> {
    let flash = session.data.flash.take()?;
    if let Err(e) = session::save(&state.stores.db, session).await {
        tracing::warn!(error = %e, "dashboard: could not clear the message shown");
    }
    Some(flash)
}

/// The previews service as the dashboard and the API use it.
pub(in crate::web) fn service_of(state: &AppState) -> Service<'_> {
    service(state)
}

fn service(state: &AppState) -> Service<'_> {
    Service {
        db: &state.stores.db,
        queues: &state.queues,
        reporter: &state.reporter,
        access: &state.dashboard.access,
        ttl: state.server.preview_ttl,
    }
}

fn denied(e: ServiceError) -> Stop {
    match e {
        ServiceError::Denied(Denied::NotFound) => Stop::Page(
            StatusCode::NOT_FOUND,
            "No such preview".into(),
            "There is no preview here that you can see.".into(),
        ),
        ServiceError::Denied(Denied::Forbidden { repository, verb }) => Stop::Page(
            StatusCode::FORBIDDEN,
            "Not allowed".into(),
            format!("You need write permission on {repository} to {verb} its previews."),
        ),
        ServiceError::Denied(Denied::Unavailable(e)) => {
            tracing::warn!(error = %e, "dashboard: permission check failed");
            unavailable("GitHub")
        }
        ServiceError::Conflict(text) => {
            Stop::Page(StatusCode::CONFLICT, "Nothing done".into(), text)
        }
        ServiceError::Store(text) => {
            tracing::error!(error = %text, "dashboard: store error");
            unavailable("The database or the queue")
        }
    }
}

fn preview_id(raw: &str) -> Result<i64, Stop> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        Stop::Page(
            StatusCode::NOT_FOUND,
            "No such preview".into(),
            "There is no preview here that you can see.".into(),
        )
    })
}

/// `GET /previews/{id}`
async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<logs::LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Stop> {
    let here = format!("/previews/{}", pages::path_safe(&id));
    let mut who = signed_in(&state, &headers, &here).await?;
    let id = preview_id(&id)?;
    let row = service(&state)
        .get(&who.actor, id, crate::previews::access::Verb::View)
        .await
        .map_err(denied)?;
    let can_act = match state
        .dashboard
        .access
        .writes(&who.actor, &row.repository)
        .await
    {
        Ok(writes) => writes,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: permission check failed; showing no buttons");
            false
        }
    };
    let attempts = records::attempts_of(&state.stores.db, id, ATTEMPTS_SHOWN)
        .await
        .map_err(|e| store_error(&e))?;
    // A malformed viewer query shows the default log rather than an error page.
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let cluster = if matches!(
        row.preview.status,
        PreviewStatus::Deleted | PreviewStatus::AwaitingApproval
    ) {
        None
    } else {
        Some(logs::gather(&state, &row.preview.namespace, attempts.first(), &query).await)
    };
    let flash = take_flash(&state, &mut who.session).await;
    Ok(pages::detail(&pages::DetailView {
        who: pages::Who::of(&who.actor, &who.session),
        row: &row,
        attempts: &attempts,
        cluster: cluster.as_ref(),
        can_act,
        flash: flash.as_ref(),
        web_url: &state.dashboard.web_url,
    }))
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// Delete only: the namespace, typed to confirm.
    #[serde(default)]
    confirm: String,
}

/// Refuses a state-changing request from another site, or without the session's CSRF token.
fn check_same_origin(
    headers: &HeaderMap,
    public_url: &Url,
    session: &Session,
    csrf: &str,
) -> Result<(), Stop> {
    let refuse = |why: &str| {
        Stop::Page(
            StatusCode::FORBIDDEN,
            "Request refused".into(),
            format!("{why} Reload the page and try again."),
        )
    };
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("same-origin");
    if !matches!(fetch_site, "same-origin" | "none") {
        return Err(refuse("It came from another site."));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let ours = public_url.origin().ascii_serialization();
        if origin != ours {
            return Err(refuse("It came from another site."));
        }
    }
    if session.data.csrf.is_empty() || !session::same_secret(csrf, &session.data.csrf) {
        return Err(refuse("It carried no valid form token."));
    }
    Ok(())
}

/// `POST /previews/{id}/{verb}`: delete, retry, redeploy, extend.
async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Stop> {
    let here = format!("/previews/{}", pages::path_safe(&id));
    let mut who = signed_in(&state, &headers, &here).await?;
    let Ok(Form(form)) = form else {
        return Err(unreadable_form());
    };
    check_same_origin(&headers, &state.server.public_url, &who.session, &form.csrf)?;
    let id = preview_id(&id)?;
    let service = service(&state);
    let done = match verb.as_str() {
        "delete" => {
            let row = service
                .get(&who.actor, id, crate::previews::access::Verb::Delete)
                .await
                .map_err(denied)?;
            if form.confirm.trim() != row.preview.namespace {
                Err(ServiceError::Conflict(format!(
                    "To delete it, type its namespace, {}, to confirm.",
                    row.preview.namespace
                )))
            } else {
                service.delete(&who.actor, id).await
            }
        }
        "retry" => service.retry(&who.actor, id).await,
        "redeploy" => service.redeploy(&who.actor, id).await,
        "extend" => service.extend(&who.actor, id).await,
        _ => {
            return Err(Stop::Page(
                StatusCode::NOT_FOUND,
                "No such action".into(),
                "Previews can be deleted, retried, redeployed or extended.".into(),
            ));
        }
    };
    let flash = match done {
        Ok(text) => Flash { ok: true, text },
        Err(ServiceError::Conflict(text)) => Flash { ok: false, text },
        Err(e) => return Err(denied(e)),
    };
    who.session.data.flash = Some(flash);
    session::save(&state.stores.db, &who.session)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(Redirect::to(&here).into_response())
}
