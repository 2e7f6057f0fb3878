//! The app's HTTP surface. [`router`] assembles every route over one shared [`AppState`];
//! [`serve`] runs it until the shutdown signal, finishing in-flight requests. A process that
//! starts unregistered serves the setup flow first (`crate::setup`) and then this router, both
//! on one socket: [`bind_std`] binds it once and [`phase_listener`] hands each phase its own
//! handle to it.

pub mod api;
pub mod dashboard;
mod group_commit;
mod health;
mod mcp;
mod metrics;
pub mod openapi;
pub mod views;
mod webhooks;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{Router, extract::FromRef};
use secrecy::SecretString;
use tokio::net::TcpListener;

pub use health::routes as health_routes;
pub use webhooks::MAX_BODY;

use crate::{config::ServerConfig, jobs::Queues, reporter::Reporter, store::Stores};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub stores: Stores,
    pub server: Arc<ServerConfig>,
    pub webhook_secret: Arc<SecretString>,
    pub queues: Queues,
    pub reporter: Reporter,
    pub metrics: Arc<metrics::Metrics>,
    /// The bytes of webhook bodies not yet verified, capped over all requests.
    pub unverified: crate::github::webhook::UnverifiedBodies,
    /// Sign-in, access and the OAuth client of the dashboard.
    pub dashboard: Arc<dashboard::Dashboard>,
    /// Where webhook deliveries are recorded, together with those arriving meanwhile.
    pub intake: Arc<group_commit::GroupCommit>,
}

impl AppState {
    /// The state of an app serving `server` with the App of `github`, on `stores`.
    pub fn new(
        stores: Stores,
        github: &crate::config::GithubConfig,
        server: ServerConfig,
    ) -> anyhow::Result<Self> {
        let client = crate::github::GitHub::new(github).map_err(anyhow::Error::msg)?;
        let dashboard = Arc::new(dashboard::Dashboard::new(
            client.clone(),
            github.oauth.clone(),
            github.web_url.clone(),
            server.kubeconfig.clone(),
        ));
        let queues = Queues::new(stores.redis.clone(), &stores.redis_prefix);
        let reporter = Reporter {
            db: stores.db.clone(),
            github: client,
            public_url: server.public_url.clone(),
        };
        Ok(Self {
            intake: Arc::new(group_commit::GroupCommit::new(webhooks::Intake {
                db: stores.db.clone(),
                queues: queues.clone(),
                reporter: reporter.clone(),
                dashboard: dashboard.clone(),
                queued: Arc::new(crate::reporter::QueuedCheckRuns::new(reporter.clone())),
            })),
            dashboard,
            queues,
            reporter,
            webhook_secret: Arc::new(github.webhook_secret.clone()),
            metrics: Arc::default(),
            unverified: crate::github::webhook::UnverifiedBodies::default(),
            stores,
            server: Arc::new(server),
        })
    }
}

impl FromRef<AppState> for Stores {
    fn from_ref(state: &AppState) -> Self {
        state.stores.clone()
    }
}

/// Every route of the app.
pub fn router(state: AppState) -> Router {
    let mcp = mcp::routes(&state);
    Router::new()
        .merge(health::routes())
        .merge(webhooks::routes())
        .merge(metrics::routes())
        .merge(crate::setup::closed_routes())
        .merge(dashboard::routes())
        .merge(api::routes())
        .merge(mcp)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Binds the listen address; separate from [`serve`] so callers learn the bound port first.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (LISTEN_ADDR)"))
}

/// Binds the listen address as a std socket that several phases can serve in turn.
pub fn bind_std(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (LISTEN_ADDR)"))?;
    listener
        .set_nonblocking(true)
        .context("cannot make the listening socket non-blocking")?;
    Ok(listener)
}

/// A tokio handle to `listener` for one phase; connections that arrive between phases wait in
/// the socket's backlog.
pub fn phase_listener(listener: &std::net::TcpListener) -> anyhow::Result<TcpListener> {
    let clone = listener
        .try_clone()
        .context("cannot share the listening socket")?;
    TcpListener::from_std(clone).context("cannot hand the listening socket to tokio")
}

/// How long a client may take to send a request's headers; then the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most connections served at once; past it, new connections are closed at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests
/// (for at most [`DRAIN_TIMEOUT`]).
///
/// The connection loop is hyper's, not `axum::serve`, for the bounds a public endpoint needs:
/// headers must arrive within [`HEADER_READ_TIMEOUT`] (bodies have their own time-out where
/// they are read) and at most [`MAX_CONNECTIONS`] are open at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream); // at the cap: closed before a byte is read
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that went away or sent garbage: nothing to report.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing them");
    }
    Ok(())
}

/// How long in-flight requests may take to finish once shutdown is asked for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
