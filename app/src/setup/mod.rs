//! First run: registering previewd as a GitHub App from its manifest (GitHub's manifest flow,
//! as Probot users know it), and what the app serves until that is done.
//!
//! When no App is configured (`config::GithubSource::Unregistered`), [`serve_until_registered`]
//! serves only this flow, health and a 503 for webhooks:
//!
//! 1. The log says where to go and prints the setup code ([`handshake`]).
//! 2. `GET /setup` asks for the code, the owning account (personal or an organization) and the
//!    App's name; `POST /setup` checks the code and that the credentials can be stored
//!    ([`sink`]), issues a `state` (also set as a cookie) and answers a page whose form posts
//!    the manifest — `app.yml` with this install's `PUBLIC_URL` — to GitHub's "new App" page.
//! 3. GitHub creates the App and redirects to `GET /setup/github/callback?code&state`: the state
//!    must match the cookie and be one this install issued (single use), then the code is
//!    exchanged (`github::manifest::convert`), the credentials are stored, the setup code is
//!    retired, and the admin is sent on to install the App (`{html_url}/installations/new`).
//!
//! The process then carries on **live** with the new credentials: the setup server stops and the
//! caller starts the app (and, for `previewd all`, the worker) with the returned config. Other
//! replicas, and workers, pick the credentials up from `GITHUB_APP_CREDENTIALS` when it appears
//! (in the chart: when the kubelet refreshes the mounted Secret, within a minute or two): this
//! server polls for it too. Once configured, [`closed_routes`] answer the setup URLs with 410,
//! so the flow never runs twice.

pub mod handshake;
pub mod pages;
pub mod sink;

use std::{sync::Arc, time::Duration};

use axum::{
    Form, Router,
    extract::{FromRef, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tokio::sync::watch;
use url::Url;

use crate::{
    config::{GithubConfig, RegistrationConfig, ServerConfig},
    credentials::{self, AppCredentials},
    github::manifest::{self, Owner},
    store::Stores,
};
use handshake::Handshake;
use sink::{Sink, SinkProblem, Stored};

/// Name of the cookie holding the state between `POST /setup` and GitHub's redirect.
pub const STATE_COOKIE: &str = "previewd_setup_state";
/// How often an unregistered process looks for credentials another process stored.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What the setup handlers share.
#[derive(Clone)]
struct SetupState {
    stores: Stores,
    server: Arc<ServerConfig>,
    registration: Arc<RegistrationConfig>,
    handshake: Handshake,
    sink: Sink,
    /// Set once this process has stored a registration.
    done: watch::Sender<Option<GithubConfig>>,
}

impl SetupState {
    /// `PUBLIC_URL/setup`.
    fn setup_url(&self) -> Url {
        manifest::public_path(&self.server.public_url, "setup")
    }
}

impl FromRef<SetupState> for Stores {
    fn from_ref(state: &SetupState) -> Self {
        state.stores.clone()
    }
}

/// Serves the setup flow on `listener` until the App is registered here (returns its config),
/// credentials appear in `GITHUB_APP_CREDENTIALS` from elsewhere (returns those), or `stop`
/// resolves (returns `None`).
pub async fn serve_until_registered(
    listener: &std::net::TcpListener,
    stores: Stores,
    server: ServerConfig,
    registration: RegistrationConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<GithubConfig>> {
    let handshake = Handshake::new(stores.redis.clone(), &stores.redis_prefix);
    let sink = Sink::open(&registration).await?;
    let code = wait_for_code(&handshake).await?;
    let setup_url = manifest::public_path(&server.public_url, "setup");
    tracing::warn!(
        setup_url = %setup_url,
        setup_code = %code,
        store = %sink.describe(),
        "previewd has no GitHub App yet: open the setup page and enter the setup code to register one"
    );
    let (done, mut finished) = watch::channel(None);
    let state = SetupState {
        stores,
        server: Arc::new(server),
        registration: Arc::new(registration.clone()),
        handshake,
        sink,
        done,
    };
    let router = routes(state.clone());
    let tokio_listener = crate::web::phase_listener(listener)?;

    // Ends the setup server: registered here, found on disk, or asked to stop.
    let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut stop = std::pin::pin!(stop);
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let outcome = loop {
            tokio::select! {
                () = &mut stop => break None,
                changed = finished.changed() => {
                    if changed.is_err() {
                        break None;
                    }
                    if let Some(config) = finished.borrow().clone() {
                        break Some(config);
                    }
                }
                _ = poll.tick() => {
                    if let Some(config) = stored_elsewhere(&registration) {
                        tracing::info!("GitHub App credentials appeared in GITHUB_APP_CREDENTIALS");
                        break Some(config);
                    }
                }
            }
        };
        let _ = end_tx.send(());
        outcome
    });
    crate::web::serve(tokio_listener, router, async move {
        let _ = end_rx.await;
    })
    .await?;
    let outcome = watcher.await?;
    if outcome.is_some() {
        tracing::info!("GitHub App configured; serving previewd");
    }
    Ok(outcome)
}

/// Gets (or makes) the setup code, waiting for Redis if it is down (bounded only by the caller's
/// patience: the process has nothing else to do).
async fn wait_for_code(handshake: &Handshake) -> anyhow::Result<String> {
    let mut pause = Duration::from_millis(200);
    let mut said = false;
    loop {
        match handshake.code().await {
            Ok(code) => return Ok(code),
            Err(e) => {
                if !said {
                    tracing::warn!(error = %e.kind_label(), "setup needs Redis (REDIS_URL): waiting for it");
                    said = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

trait KindLabel {
    fn kind_label(&self) -> String;
}

impl KindLabel for redis::RedisError {
    /// The error's kind only: Redis errors can echo the URL, which may hold a password.
    fn kind_label(&self) -> String {
        if self.is_connection_refusal() {
            "connection refused".to_owned()
        } else if self.is_timeout() {
            "timed out".to_owned()
        } else {
            format!("{:?}", self.kind())
        }
    }
}

/// The credentials another process stored, if they are there and usable now.
fn stored_elsewhere(registration: &RegistrationConfig) -> Option<GithubConfig> {
    let path = &registration.credentials_file;
    if !credentials::exists(path).ok()? {
        return None;
    }
    match credentials::read(path) {
        Ok(c) => Some(github_config(c, registration)),
        Err(e) => {
            tracing::warn!(error = %e, "GITHUB_APP_CREDENTIALS is there but unusable");
            None
        }
    }
}

fn github_config(c: AppCredentials, registration: &RegistrationConfig) -> GithubConfig {
    GithubConfig {
        app_id: c.app_id,
        private_key: c.private_key,
        webhook_secret: c.webhook_secret,
        api_url: registration.api_url.clone(),
        web_url: registration.web_url.clone(),
        oauth: Some(crate::config::OAuthClient {
            client_id: c.client_id,
            client_secret: c.client_secret,
        }),
    }
}

fn routes(state: SetupState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("setup") }))
        .route("/setup", get(start_page).post(start))
        .route("/setup/github/callback", get(callback))
        .route("/setup/installed", get(installed))
        .route("/webhooks/github", post(unregistered_webhook))
        .merge(crate::web::health_routes::<SetupState>())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// What a configured app answers on the setup URLs: the flow is closed.
pub fn closed_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let closed = || async {
        page(
            StatusCode::GONE,
            &pages::message(
                "Setup is closed",
                "This previewd is registered with its GitHub App already; registering again is \
refused. To start over, delete the App on GitHub and the stored credentials, then restart.",
                None,
            ),
        )
    };
    Router::new()
        .route("/setup", get(closed).post(closed))
        .route("/setup/github/callback", get(closed))
        .route("/setup/installed", get(installed))
}

fn page(code: StatusCode, html: &str) -> Response {
    let mut response = (code, Html(html.to_owned())).into_response();
    // Nothing in these pages should be cached or framed.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

fn default_name(public_url: &Url) -> String {
    let host = public_url
        .host_str()
        .and_then(|h| h.split('.').next())
        .unwrap_or("install");
    let mut name = format!("previewd-{host}");
    name.truncate(manifest::MAX_NAME_CHARS);
    name
}

async fn start_page(State(s): State<SetupState>) -> Response {
    let note = match s.sink.check_ready().await {
        Ok(()) => None,
        Err(SinkProblem::AlreadyRegistered) => Some(
            "An App is registered already: this process picks it up within seconds.".to_owned(),
        ),
        Err(SinkProblem::Unusable(why)) => Some(format!(
            "The credentials cannot be stored ({why}); fix that before registering."
        )),
    };
    page(
        StatusCode::OK,
        &pages::start(
            &s.server.public_url,
            &s.registration.web_url,
            &default_name(&s.server.public_url),
            note.as_deref(),
        ),
    )
}

#[derive(Deserialize)]
struct StartForm {
    code: String,
    #[serde(default)]
    organization: String,
    name: String,
}

async fn start(State(s): State<SetupState>, Form(form): Form<StartForm>) -> Response {
    match s.handshake.check_code(&form.code).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("setup page: a wrong setup code was entered");
            return page(
                StatusCode::FORBIDDEN,
                &pages::message(
                    "Wrong setup code",
                    "That is not the setup code previewd printed in its log.",
                    Some((s.setup_url().as_str(), "Try again")),
                ),
            );
        }
        Err(e) => return unavailable(&s, &e),
    }
    let owner = match form.organization.trim() {
        "" => Owner::User,
        login => match Owner::organization(login) {
            Some(owner) => owner,
            None => {
                return page(
                    StatusCode::BAD_REQUEST,
                    &pages::message(
                        "Not an organization name",
                        "Organization names have letters, digits and single inner hyphens.",
                        Some((s.setup_url().as_str(), "Try again")),
                    ),
                );
            }
        },
    };
    match s.sink.check_ready().await {
        Ok(()) => {}
        Err(SinkProblem::AlreadyRegistered) => return already_registered(),
        Err(SinkProblem::Unusable(why)) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &pages::message(
                    "Credentials cannot be stored",
                    &format!(
                        "previewd could not keep what GitHub returns, so it does not send you \
there: {why}"
                    ),
                    None,
                ),
            );
        }
    }
    let manifest_json =
        match manifest::manifest_json(manifest::APP_YML, &s.server.public_url, &form.name) {
            Ok(m) => m,
            Err(why) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    &pages::message(
                        "Cannot build the manifest",
                        &why,
                        Some((s.setup_url().as_str(), "Back")),
                    ),
                );
            }
        };
    let state = match s.handshake.new_state().await {
        Ok(state) => state,
        Err(e) => return unavailable(&s, &e),
    };
    let target = manifest::new_app_url(&s.registration.web_url, &owner, &state);
    tracing::info!(owner = ?owner, "setup page: sending the admin to GitHub with the manifest");
    let mut response = page(StatusCode::OK, &pages::to_github(&target, &manifest_json));
    let secure = if s.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={state}; Path={}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        s.setup_url().path(),
        handshake::STATE_TTL_SECONDS
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
}

fn cookie_state(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn callback(
    State(s): State<SetupState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    // CSRF: the redirect must come back to the browser that started it, with a state issued
    // here and never used before.
    let same_browser = cookie_state(&headers).is_some_and(|c| !c.is_empty() && c == q.state);
    let issued = same_browser && matches!(s.handshake.take_state(&q.state).await, Ok(true));
    if !issued {
        tracing::warn!("setup callback refused: its state is not one this browser was given");
        return page(
            StatusCode::FORBIDDEN,
            &pages::message(
                "This link did not start here",
                "The registration must be started from this previewd's setup page, in this \
browser, within an hour; nothing was changed.",
                Some((s.setup_url().as_str(), "Start again")),
            ),
        );
    }
    if let Err(SinkProblem::AlreadyRegistered) = s.sink.check_ready().await {
        return already_registered();
    }
    let registration = match manifest::convert(&s.registration.api_url, &q.code).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "setup: exchanging GitHub's code failed");
            return page(
                StatusCode::BAD_GATEWAY,
                &pages::message(
                    "GitHub did not hand over the App",
                    &e.to_string(),
                    Some((s.setup_url().as_str(), "Start again")),
                ),
            );
        }
    };
    let credentials = AppCredentials {
        app_id: registration.id,
        slug: registration.slug.clone(),
        html_url: registration.html_url.clone(),
        owner: registration.owner.clone(),
        private_key: registration.pem.clone(),
        webhook_secret: registration.webhook_secret.clone(),
        client_id: registration.client_id.clone(),
        client_secret: registration.client_secret.clone(),
    };
    if crate::github::auth::AppAuth::new(credentials.app_id, &credentials.private_key).is_err() {
        return page(
            StatusCode::BAD_GATEWAY,
            &pages::message(
                "GitHub's private key is unusable",
                &format!(
                    "The App {} was created, but its key is not an RSA key previewd can sign \
with. Delete it on GitHub and start again.",
                    registration.html_url
                ),
                Some((&registration.html_url, "The App on GitHub")),
            ),
        );
    }
    match s.sink.store(&credentials).await {
        Ok(Stored::Stored) => {}
        Ok(Stored::AlreadyRegistered) => {
            return page(
                StatusCode::CONFLICT,
                &pages::message(
                    "Another registration finished first",
                    &format!(
                        "previewd kept the App registered first. The App just created ({}) is \
not used: delete it on GitHub.",
                        registration.html_url
                    ),
                    Some((&registration.html_url, "The unused App on GitHub")),
                ),
            );
        }
        Err(SinkProblem::AlreadyRegistered) => return already_registered(),
        Err(SinkProblem::Unusable(why)) => {
            tracing::error!(error = %why, app = %registration.html_url, "setup: storing the credentials failed");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &pages::message(
                    "The App's credentials could not be stored",
                    &format!(
                        "{why}. GitHub shows the private key only once: delete the App ({}) on \
GitHub, fix the problem and register again.",
                        registration.html_url
                    ),
                    Some((&registration.html_url, "The App on GitHub")),
                ),
            );
        }
    }
    if let Err(e) = s.handshake.close().await {
        // The code is useless now anyway: the store refuses a second registration.
        tracing::warn!(error = %e.kind_label(), "setup: could not retire the setup code");
    }
    tracing::info!(
        app_id = credentials.app_id,
        app = %credentials.html_url,
        store = %s.sink.describe(),
        "GitHub App registered; sending the admin on to install it"
    );
    let install = credentials.install_url();
    let _ = s
        .done
        .send(Some(github_config(credentials, &s.registration)));
    let mut response = Redirect::to(&install).into_response();
    let clear = format!(
        "{STATE_COOKIE}=; Path={}; HttpOnly; SameSite=Lax; Max-Age=0",
        s.setup_url().path()
    );
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn installed() -> Response {
    page(
        StatusCode::OK,
        &pages::message(
            "previewd is installed",
            "GitHub now sends this previewd the pull requests of the repositories you selected. \
Open or push to a pull request there: its check run \"Preview\" and a comment will show the \
preview's address within minutes.",
            None,
        ),
    )
}

async fn unregistered_webhook() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({
            "error": "previewd is not registered with GitHub yet: open PUBLIC_URL/setup"
        })),
    )
        .into_response()
}

fn already_registered() -> Response {
    page(
        StatusCode::CONFLICT,
        &pages::message(
            "Already registered",
            "An App is registered for this previewd already; registering again is refused.",
            None,
        ),
    )
}

fn unavailable(s: &SetupState, e: &redis::RedisError) -> Response {
    tracing::warn!(error = %e.kind_label(), "setup: Redis unavailable");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        &pages::message(
            "Try again in a moment",
            "previewd cannot reach Redis (REDIS_URL), where the setup keeps its state.",
            Some((s.setup_url().as_str(), "Reload")),
        ),
    )
}

/// For a process that needs the App but serves no setup page (a worker): waits until
/// `GITHUB_APP_CREDENTIALS` holds usable credentials (returns them) or `stop` resolves (`None`).
pub async fn wait_for_credentials(
    registration: &RegistrationConfig,
    public_url: &Url,
    stop: impl Future<Output = ()> + Send,
) -> Option<GithubConfig> {
    tracing::warn!(
        credentials = %registration.credentials_file.display(),
        setup_url = %manifest::public_path(public_url, "setup"),
        "no GitHub App configured yet: waiting for the App to be registered on the setup page"
    );
    let mut stop = std::pin::pin!(stop);
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            () = &mut stop => return None,
            _ = poll.tick() => {
                if let Some(config) = stored_elsewhere(registration) {
                    tracing::info!("GitHub App credentials found; starting");
                    return Some(config);
                }
            }
        }
    }
}
