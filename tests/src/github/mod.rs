//! A simulated GitHub that speaks GitHub's REST and webhook wire protocols over HTTP on
//! 127.0.0.1, for tests: previewd reaches it only through its normal configuration
//! (`GITHUB_API_URL` = [`GitHubSim::url`]) and it cannot tell the difference that matters.
//!
//! The simulator verifies the App's JWT with the App's public key, mints expiring installation
//! tokens (scoped to repositories and permissions when asked, and held to that scope and to the
//! App's permissions on every call), keeps installations, repositories, files, pull requests,
//! check runs, comments, deployments and webhook deliveries in memory, generates webhook payloads
//! from that state and signs and sends them, pages listings as GitHub does (30 by default, 100 at
//! most, `Link` headers), answers conditional GETs with `304` that cost no rate limit and are not
//! counted, serves the App manifest flow (the "new App" pages and the single-use code exchange,
//! after which it signs with the new App's webhook secret and sends to its webhook URL), counts
//! calls per route and per installation, can keep every answer for checking against GitHub's
//! OpenAPI description, and injects faults (5xx, 401 on a fresh token, secondary rate limits
//! with `retry-after`, latency, writes that fail or stall *after* being applied, dropped
//! deliveries). Anything it does not implement answers a loud 501 that is printed and recorded,
//! never a plausible-looking answer.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use previewd_tests::github::{GitHubSim, GitHubSimOptions, NewPr};
//! let sim = GitHubSim::start(GitHubSimOptions::default()).await?;
//! let inst = sim.add_installation("acme");
//! sim.add_repo(inst, "acme/web");
//! sim.set_webhook_url("http://127.0.0.1:8080/webhooks/github");
//! let (pr, delivery) = sim.open_pr("acme/web", NewPr::default()).await;
//! # let _ = (pr, delivery); Ok(()) }
//! ```
//!
//! Layout: [`model`] (the public snapshot types), `state` (the memory), `server` + [`routes`] +
//! `api/*` (the REST side), `auth` (JWT and tokens), `payloads` (GitHub's JSON objects),
//! `webhooks` (signing, sending, the delivery log), `events` (what a test makes happen),
//! [`faults`].

mod api;
mod auth;
mod encoding;
mod events;
pub mod faults;
pub mod model;
mod payloads;
mod reply;
mod repositories;
pub mod routes;
mod server;
mod state;
mod webhooks;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use chrono::Utc;
use jsonwebtoken::DecodingKey;
use tokio::sync::oneshot;

pub use encoding::user_id;
pub use faults::{Fault, FaultKind};
pub use model::{
    Calls, CheckRun, CheckRunAction, Comment, Delivery, Deployment, DeploymentStatus, NewPr, Pr,
};
pub use state::{BOT_LOGIN, RecordedResponse, RegisteredApp};
pub use webhooks::signature;

use state::{InstallationRec, Shared, State};

/// The test App's public key (`tests/fixtures/app-key.pub.pem`).
pub const APP_PUBLIC_KEY_PEM: &str = include_str!("../../fixtures/app-key.pub.pem");

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct GitHubSimOptions {
    /// The App id the JWT's `iss` must carry (1234).
    pub app_id: u64,
    /// PEM of the App's public key; JWTs must verify against it (the test fixture).
    pub public_key_pem: String,
    /// The webhook secret deliveries are signed with ("webhook-secret-value").
    pub webhook_secret: String,
    /// How long an installation token lives (1 h, like GitHub's).
    pub token_lifetime: Duration,
    /// Added to every answer (0).
    pub latency: Duration,
    /// Requests per hour for the App and for each installation (5,000, GitHub's base grant).
    pub rate_limit: u64,
    /// The App's OAuth client secret; its client id is [`GitHubSim::oauth_client_id`].
    pub oauth_client_secret: String,
    /// Who a browser without GitHub's `user_session` cookie is signed in to GitHub as (`None`:
    /// nobody, and the authorize page shows GitHub's login form). The sandbox sets it so its
    /// dashboard link works in any browser.
    pub signed_in_user: Option<String>,
}

impl Default for GitHubSimOptions {
    fn default() -> Self {
        Self {
            app_id: 1234,
            public_key_pem: APP_PUBLIC_KEY_PEM.to_owned(),
            webhook_secret: "webhook-secret-value".to_owned(),
            token_lifetime: Duration::from_secs(3600),
            latency: Duration::ZERO,
            rate_limit: 5000,
            oauth_client_secret: "oauth-client-secret-value".to_owned(),
            signed_in_user: None,
        }
    }
}

/// A running simulated GitHub. Clones share it; dropping the last clone stops the server.
#[derive(Clone)]
pub struct GitHubSim {
    running: Arc<Running>,
}

/// Owns the server's life: dropped with the last `GitHubSim` clone, it stops the server.
struct Running {
    shared: Arc<Shared>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
    }
}

impl GitHubSim {
    /// Starts the server on 127.0.0.1 (a free port).
    pub async fn start(opts: GitHubSimOptions) -> anyhow::Result<Self> {
        // reqwest is built with rustls and no default crypto provider; plain http still needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let jwt_key = DecodingKey::from_rsa_pem(opts.public_key_pem.as_bytes())
            .context("github simulator: public_key_pem is not an RSA public key")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("github simulator: building the webhook client")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("github simulator: binding 127.0.0.1:0")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared::new(opts, base_url, jwt_key, http));
        let router = axum::Router::new()
            .fallback(server::dispatch)
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("github simulator: server stopped: {e}");
            }
        });
        Ok(Self {
            running: Arc::new(Running {
                shared,
                stop: Mutex::new(Some(stop)),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.running.shared
    }

    /// The API base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared().base_url.clone()
    }

    /// Where webhooks are POSTed from now on.
    pub fn set_webhook_url(&self, url: &str) {
        self.shared().lock().webhook_url = Some(url.to_owned());
    }

    // ----- state -----

    /// Installs the App on `account` (an organization); returns the installation id.
    pub fn add_installation(&self, account: &str) -> i64 {
        let mut st = self.shared().lock();
        let id = st.ids.installation();
        st.installations.insert(
            id,
            InstallationRec {
                id,
                account: account.to_owned(),
                suspended: false,
                suspended_at: Utc::now(),
                deleted: false,
                created_at: Utc::now(),
            },
        );
        id
    }

    /// Adds `owner/name` (private, default branch `main`) to the installation; returns its id.
    pub fn add_repo(&self, installation_id: i64, full_name: &str) -> i64 {
        let mut st = self.shared().lock();
        assert!(
            st.installations.contains_key(&installation_id),
            "github simulator: no installation {installation_id}"
        );
        st.add_repo(installation_id, full_name)
    }

    /// The App's OAuth client id (its secret is [`GitHubSimOptions::oauth_client_secret`]).
    pub fn oauth_client_id(&self) -> String {
        api::oauth::client_id_of(self.shared().opts.app_id)
    }

    /// A user-to-server token for `login`, as if they had signed in with the App's OAuth client
    /// (for tests of the calls made with it; the sign-in itself is `api::oauth`'s web flow).
    pub fn user_token(&self, login: &str) -> String {
        let mut st = self.shared().lock();
        let client = api::oauth::client_id_of(self.shared().opts.app_id);
        api::oauth::mint_pair(&mut st, login, &client)["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// How long user-to-server tokens minted from now on live (default 8 hours).
    pub fn set_user_token_lifetime(&self, lifetime: Duration) {
        self.shared().lock().user_token_lifetime =
            Some(chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(8)));
    }

    /// Gives `login` a role on the repository: admin, maintain, write, triage, read or none.
    /// Makes `login` an active member of team `team` (its slug) of organization `org`.
    pub fn add_team_member(&self, org: &str, team: &str, login: &str) {
        let mut st = self.shared().lock();
        st.teams
            .entry((org.to_ascii_lowercase(), team.to_ascii_lowercase()))
            .or_default()
            .insert(login.to_ascii_lowercase());
    }

    /// Ends `login`'s membership of team `team` of `org`.
    pub fn remove_team_member(&self, org: &str, team: &str, login: &str) {
        let mut st = self.shared().lock();
        if let Some(members) = st
            .teams
            .get_mut(&(org.to_ascii_lowercase(), team.to_ascii_lowercase()))
        {
            members.remove(&login.to_ascii_lowercase());
        }
    }

    pub fn set_permission(&self, repo: &str, login: &str, permission: &str) {
        assert!(
            ["admin", "maintain", "write", "triage", "read", "none"].contains(&permission),
            "github simulator: unknown permission {permission:?}"
        );
        let mut st = self.shared().lock();
        let r = st.repo_or_panic(repo);
        r.custom_roles.remove(&login.to_ascii_lowercase());
        if permission == "none" {
            r.permissions.remove(&login.to_ascii_lowercase());
        } else {
            r.permissions
                .insert(login.to_ascii_lowercase(), permission.to_owned());
        }
    }

    /// Gives `login` a custom repository role `role_name` made from the built-in role `base`
    /// (GitHub reports the base as the legacy `permission` and the custom name as `role_name`).
    pub fn set_custom_role(&self, repo: &str, login: &str, role_name: &str, base: &str) {
        assert!(
            ["read", "triage", "write", "maintain"].contains(&base),
            "github simulator: a custom role's base is read, triage, write or maintain, not {base:?}"
        );
        let mut st = self.shared().lock();
        let r = st.repo_or_panic(repo);
        r.permissions
            .insert(login.to_ascii_lowercase(), base.to_owned());
        r.custom_roles.insert(
            login.to_ascii_lowercase(),
            (role_name.to_owned(), base.to_owned()),
        );
    }

    /// Puts a file on a branch or at a sha. A branch cut from the default branch also sees the
    /// default branch's files, as in git.
    pub fn put_file(&self, repo: &str, git_ref: &str, path: &str, content: &str) {
        self.put_file_bytes(repo, git_ref, path, content.as_bytes());
    }

    /// [`Self::put_file`] with any bytes (a file that is not UTF-8 text, say).
    pub fn put_file_bytes(&self, repo: &str, git_ref: &str, path: &str, content: &[u8]) {
        let mut st = self.shared().lock();
        let r = st.repo_or_panic(repo);
        r.known_refs.insert(git_ref.to_owned());
        r.files.insert(
            (git_ref.to_owned(), path.trim_matches('/').to_owned()),
            content.to_vec(),
        );
    }

    // ----- inspection -----

    /// The pull request (panics if there is none: the test never opened it).
    pub fn pr(&self, repo: &str, number: u64) -> Pr {
        let mut st = self.shared().lock();
        let r = st.repo_or_panic(repo);
        let pr = r
            .prs
            .get(&number)
            .unwrap_or_else(|| panic!("github simulator: no pull request {repo}#{number}"));
        pr.snapshot(r)
    }

    /// Check runs on `sha` in the repository, in creation order.
    pub fn check_runs(&self, repo: &str, sha: &str) -> Vec<CheckRun> {
        self.shared()
            .lock()
            .check_run_snapshots(&State::key(repo), sha)
    }

    pub fn check_run(&self, id: i64) -> Option<CheckRun> {
        self.shared()
            .lock()
            .check_runs
            .get(&id)
            .map(|c| c.run.clone())
    }

    /// Comments on the pull request, oldest first.
    pub fn comments(&self, repo: &str, number: u64) -> Vec<Comment> {
        self.shared()
            .lock()
            .comment_snapshots(&State::key(repo), number)
    }

    /// Deployments of the repository, oldest first.
    pub fn deployments(&self, repo: &str) -> Vec<Deployment> {
        let key = State::key(repo);
        self.shared()
            .lock()
            .deployments
            .values()
            .filter(|d| d.repo == key)
            .map(|d| d.deployment.clone())
            .collect()
    }

    /// Statuses of the deployment, in creation order.
    pub fn deployment_statuses(&self, deployment_id: i64) -> Vec<DeploymentStatus> {
        self.shared()
            .lock()
            .statuses_of(deployment_id)
            .into_iter()
            .map(|s| s.status.clone())
            .collect()
    }

    /// Every finished delivery, by id (oldest first).
    pub fn deliveries(&self) -> Vec<Delivery> {
        let mut all: Vec<Delivery> = self
            .shared()
            .lock()
            .deliveries
            .iter()
            .map(|d| d.delivery.clone())
            .collect();
        all.sort_by_key(|d| d.id);
        all
    }

    /// The exact bytes delivery `id` carried (its payload, as GitHub renders it).
    pub fn delivery_body(&self, id: i64) -> Option<Vec<u8>> {
        self.shared().lock().delivery(id).map(|d| d.body.clone())
    }

    /// What the receiver answered to delivery `id` (its response body).
    pub fn delivery_response(&self, id: i64) -> Option<String> {
        self.shared()
            .lock()
            .delivery(id)
            .map(|d| d.response_body.clone())
    }

    /// The App the manifest flow registered, once its code was exchanged.
    pub fn registered_app(&self) -> Option<RegisteredApp> {
        self.shared().lock().registered.clone()
    }

    /// Where webhooks go now.
    pub fn webhook_url(&self) -> Option<String> {
        self.shared().lock().webhook_url.clone()
    }

    /// What a token this simulator minted may reach: the repositories it is limited to
    /// (`None`: all of its installation's) and its permissions, each `name:level`. `None` when
    /// the simulator never minted it.
    pub fn token_grant(&self, token: &str) -> Option<(Option<Vec<String>>, Vec<String>)> {
        let st = self.shared().lock();
        let rec = st.tokens.get(token)?;
        Some((
            rec.scope
                .repositories
                .as_ref()
                .map(|r| r.iter().cloned().collect()),
            rec.scope
                .permissions
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect(),
        ))
    }

    pub fn calls(&self) -> Calls {
        self.shared().lock().calls.clone()
    }

    /// Zeroes the call counters (tokens stay valid).
    pub fn reset_calls(&self) {
        self.shared().lock().calls = Calls::default();
    }

    /// Keeps (or stops keeping) every answer from now on, for [`Self::recorded_responses`].
    pub fn record_responses(&self, on: bool) {
        self.shared().lock().recording = on;
    }

    /// The answers kept since [`Self::record_responses`] was turned on, oldest first.
    pub fn recorded_responses(&self) -> Vec<RecordedResponse> {
        self.shared().lock().recorded.clone()
    }

    // ----- faults -----

    /// Arms a fault. Panics on a route key the simulator does not have (see [`routes::keys`]):
    /// a typo would otherwise make the fault silently never fire.
    pub fn inject(&self, fault: Fault) {
        if let Some(route) = &fault.route {
            assert!(
                routes::is_key(route),
                "github simulator: no route {route:?}; routes are: {:#?}",
                routes::keys()
            );
        }
        self.shared().lock().faults.inject(fault);
    }

    /// The next `n` webhooks are signed with a wrong secret: the receiver should refuse them.
    pub fn forge_next_deliveries(&self, n: u32) {
        self.shared().lock().faults.forge_deliveries += n;
    }

    /// The next `n` webhooks are not sent; they are recorded as failed (no status code), so
    /// redelivery can recover them.
    pub fn drop_next_deliveries(&self, n: u32) {
        self.shared().lock().faults.drop_deliveries += n;
    }
}
