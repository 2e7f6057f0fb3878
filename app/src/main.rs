//! The `previewd` binary: the app process (webhooks, dashboard, API, MCP, health), and the
//! `migrate` command that applies database migrations and exits.

use clap::{Parser, Subcommand};
use previewd::{
    cli,
    config::Settings,
    shutdown, store,
    web::{self, AppState},
};

const PROGRAM: &str = "previewd";

/// Preview environments for every pull request: the app process.
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
    /// Serve webhooks, dashboard, API and MCP (the default).
    Serve,
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
        Command::Serve => {
            // Validate everything the server will need before touching any store.
            let github = cli::require(PROGRAM, settings.github_config());
            let server = cli::require(PROGRAM, settings.server_config());
            serve(&store_config, github, server).await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "previewd stopped");
        std::process::exit(1);
    }
}

async fn serve(
    config: &previewd::config::StoreConfig,
    github: previewd::config::GithubConfig,
    server: previewd::config::ServerConfig,
) -> anyhow::Result<()> {
    let stop = shutdown::signal();
    let listener = web::bind(server.listen_addr).await?;
    let stores = store::Stores::open(config).await?;
    let addr = listener.local_addr()?;
    let state = AppState::new(stores, &github, server)?;
    tracing::info!(%addr, "previewd listening");
    web::serve(listener, web::router(state), stop).await?;
    tracing::info!("previewd stopped");
    Ok(())
}
