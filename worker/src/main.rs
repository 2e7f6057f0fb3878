//! The `previewd-worker` binary: runs deploy and cleanup jobs from Redis, and the `migrate`
//! command that applies database migrations and exits. Without a configured GitHub App it waits
//! until the app's setup page has registered one and the credentials file appears.

use clap::{Parser, Subcommand};
use previewd::{
    cli,
    config::{GithubSource, Settings},
    setup, shutdown, store,
};
use previewd_worker::Worker;

const PROGRAM: &str = "previewd-worker";

/// Preview environments for every pull request: the worker process.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run jobs until SIGTERM or Ctrl-C (the default).
    Run,
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
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Migrate => store::migrate_database(&store_config).await,
        Command::Run => {
            let github = cli::require(PROGRAM, settings.github_source());
            let config = cli::require(PROGRAM, settings.worker_config());
            let server = cli::require(PROGRAM, settings.server_config());
            run(&store_config, github, config, server.public_url).await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "previewd-worker stopped");
        std::process::exit(1);
    }
}

async fn run(
    store_config: &previewd::config::StoreConfig,
    github: GithubSource,
    config: previewd::config::WorkerConfig,
    public_url: url::Url,
) -> anyhow::Result<()> {
    let stop = shutdown::watch();
    let github = match github {
        GithubSource::Ready(github) => github,
        GithubSource::Unregistered(registration) => {
            let found = setup::wait_for_credentials(
                &registration,
                &public_url,
                shutdown::stopped(stop.clone()),
            )
            .await;
            match found {
                Some(github) => github,
                None => return Ok(()),
            }
        }
    };
    let stores = store::Stores::open(store_config).await?;
    // Unlike the app, a worker without Redis has nothing to do: fail loudly so the
    // orchestrator restarts it, rather than sit idle looking healthy.
    stores.check_redis().await.map_err(anyhow::Error::msg)?;
    Worker::connect(config, stores, &github, public_url)
        .await?
        .run(shutdown::stopped(stop))
        .await
}
