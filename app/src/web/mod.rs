//! The app's HTTP surface. [`router`] assembles every route over one shared [`AppState`];
//! [`serve`] runs it until the shutdown signal, finishing in-flight requests.

mod health;
mod metrics;
mod webhooks;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use axum::Router;
use secrecy::SecretString;
use tokio::net::TcpListener;

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
}

impl AppState {
    /// The state of an app serving `server` with the App of `github`, on `stores`.
    pub fn new(
        stores: Stores,
        github: &crate::config::GithubConfig,
        server: ServerConfig,
    ) -> anyhow::Result<Self> {
        let client = crate::github::GitHub::new(github).map_err(anyhow::Error::msg)?;
        Ok(Self {
            queues: Queues::new(stores.redis.clone(), &stores.redis_prefix),
            reporter: Reporter {
                db: stores.db.clone(),
                github: client,
                public_url: server.public_url.clone(),
            },
            webhook_secret: Arc::new(github.webhook_secret.clone()),
            metrics: Arc::default(),
            stores,
            server: Arc::new(server),
        })
    }
}

/// Every route of the app.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(webhooks::routes())
        .merge(metrics::routes())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Binds the listen address; separate from [`serve`] so callers learn the bound port first.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (LISTEN_ADDR)"))
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")
}
