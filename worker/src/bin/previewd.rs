//! The `previewd` binary: the app process (`serve`, the default: webhooks, the setup page,
//! health, metrics), `all` (the app and a worker in one process, with the same settings — one
//! node, SQLite and a Redis), and `migrate`.
//!
//! It is built from the worker crate because `all` runs a worker, and the app crate, which the
//! worker depends on, cannot depend on its worker. Without a configured GitHub App both `serve`
//! and `all` first serve the "Register GitHub App" flow (`previewd::setup`) on the same address
//! and carry on with the new App's credentials once it is registered.

use clap::{Parser, Subcommand};
use previewd::{
    cli,
    config::{GithubSource, ServerConfig, Settings, StoreConfig, WorkerConfig},
    setup, shutdown, store,
    web::{self, AppState},
};
use previewd_worker::Worker;

const PROGRAM: &str = "previewd";

/// Preview environments for every pull request: the app process (`all`: app and worker).
// `about` comes from this doc comment: the crate's description is the worker's.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve webhooks, the setup page, health and metrics (the default).
    Serve,
    /// Serve as the app and run jobs as a worker, in one process (a single node).
    All,
    /// Apply pending database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() {
    let cli: Cli = cli::parse(PROGRAM);
    let settings = cli.settings;
    cli::require(
        PROGRAM,
        previewd::telemetry::init(settings.log_format, &settings.log_filter),
    );
    let store_config = cli::require(PROGRAM, settings.store_config());
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => store::migrate_database(&store_config).await,
        command => {
            // Validate everything the process will need before touching any store.
            let source = cli::require(PROGRAM, settings.github_source());
            let server = cli::require(PROGRAM, settings.server_config());
            let worker = match command {
                Command::All => Some(cli::require(PROGRAM, settings.worker_config())),
                _ => None,
            };
            run(&store_config, source, server, worker).await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "previewd stopped");
        std::process::exit(1);
    }
}

async fn run(
    config: &StoreConfig,
    source: GithubSource,
    server: ServerConfig,
    worker: Option<WorkerConfig>,
) -> anyhow::Result<()> {
    let stop = shutdown::watch();
    let listener = web::bind_std(server.listen_addr)?;
    let stores = store::Stores::open(config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "previewd listening");
    // What start-up freed (migrations, configuration, connection set-up) goes back now.
    previewd::memory::release_freed();
    let github = match source {
        GithubSource::Ready(github) => github,
        GithubSource::Unregistered(registration) => {
            let registered = setup::serve_until_registered(
                &listener,
                stores.clone(),
                server.clone(),
                registration,
                shutdown::stopped(stop.clone()),
            )
            .await?;
            match registered {
                Some(github) => github,
                None => {
                    tracing::info!("previewd stopped");
                    return Ok(());
                }
            }
        }
    };
    let public_url = server.public_url.clone();
    let state = AppState::new(stores.clone(), &github, server)?;
    let app = web::serve(
        web::phase_listener(&listener)?,
        web::router(state),
        shutdown::stopped(stop.clone()),
    );
    match worker {
        None => app.await?,
        Some(config) => {
            // As in `previewd-worker`: without Redis a worker has nothing to do.
            stores.check_redis().await.map_err(anyhow::Error::msg)?;
            let worker = Worker::connect(config, stores, &github, public_url).await?;
            tokio::try_join!(app, worker.run(shutdown::stopped(stop)))?;
        }
    }
    tracing::info!("previewd stopped");
    Ok(())
}
