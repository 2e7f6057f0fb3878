//! The shutdown signal both binaries wait on: SIGTERM (Kubernetes stopping a pod) or SIGINT
//! (Ctrl-C). Servers stop accepting and finish in-flight requests; workers finish or return
//! their in-flight jobs.
//!
//! The handlers are installed when [`signal`] (or [`watch`]) is *called*, not when its future is
//! first polled: a binary calls it before it says it is ready, so a signal that arrives right
//! after "listening" or "worker running" is caught instead of killing the process with the
//! default action.

/// Installs the handlers now; the future resolves when the process is asked to stop.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
                    _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
                },
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT; stop with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received, shutting down");
    }
}

/// [`signal`] as a watch: installs the handlers now (call it inside the runtime) and turns true
/// when the process is asked to stop, so that each phase of a process — the setup flow, then
/// serving; the app and the worker of `previewd all` — can wait on it with [`stopped`].
pub fn watch() -> tokio::sync::watch::Receiver<bool> {
    let signal = signal();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        let _ = tx.send(true);
    });
    rx
}

/// Resolves once `rx` (from [`watch`]) says to stop.
pub async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
