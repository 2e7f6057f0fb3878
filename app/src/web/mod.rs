//! The app's HTTP surface. [`router`] assembles every route over one shared [`AppState`];
//! [`serve`] runs it until the shutdown signal, finishing in-flight requests.

mod health;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;

use crate::{config::ServerConfig, store::Stores};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub stores: Stores,
    pub server: Arc<ServerConfig>,
}

/// Every route of the app.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
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
