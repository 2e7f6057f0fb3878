//! The `previewd` binary: the app process (`serve`, the default: webhooks, the setup page,
//! health, metrics), `all` (the app and a worker in one process, with the same settings — one
//! node, SQLite and a Redis), `migrate`, and `token` (an operator's API tokens for any person
//! who has signed in: create, list, revoke).
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
    /// API tokens (REST API and MCP) for people who have signed in to the dashboard.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token acting as LOGIN (with LOGIN's access when it is used); printed once.
    Create {
        /// The GitHub login of a person who has signed in to the dashboard.
        #[arg(long)]
        login: String,
        /// What the token is for ("release pipeline").
        #[arg(long)]
        name: String,
        /// Lifetime (`30d`, `12h`); unset: until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (their prefix, never the token): everyone's, or LOGIN's.
    List {
        #[arg(long)]
        login: Option<String>,
    },
    /// Revoke the token with this id (from `list`).
    Revoke { id: i64 },
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
        Command::Token(command) => {
            // A command for a person at a terminal: its errors are a line, not a log record.
            if let Err(e) = tokens(&store_config, command).await {
                eprintln!("{PROGRAM}: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
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

/// `previewd token …`: prints what it did on stdout (the token itself alone on its line).
async fn tokens(config: &StoreConfig, command: TokenCommand) -> anyhow::Result<()> {
    use previewd::previews::tokens;
    use secrecy::ExposeSecret as _;
    let db = store::open_database(config).await?;
    let person = async |login: &str| {
        tokens::person(&db, login).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "{login:?} has not signed in to the dashboard yet: a token acts as a person, who \
                 must sign in once first"
            )
        })
    };
    match command {
        TokenCommand::Create {
            login,
            name,
            expires,
        } => {
            let who = person(&login).await?;
            let lifetime = expires
                .as_deref()
                .map(previewd::units::parse_duration)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
            let made = tokens::create(&db, who.id, &name, lifetime).await?;
            let until = made
                .token
                .expires_at
                .map_or_else(|| "until revoked".to_owned(), |at| format!("until {at}"));
            eprintln!(
                "token {} for {} ({name}), valid {until}; it is shown only now:",
                made.token.id, who.login
            );
            println!("{}", made.secret.expose_secret());
        }
        TokenCommand::List { login } => {
            let rows = match login {
                Some(login) => {
                    let who = person(&login).await?;
                    tokens::of_user(&db, who.id)
                        .await?
                        .into_iter()
                        .map(|t| (t, Some(who.clone())))
                        .collect()
                }
                None => tokens::all(&db).await?,
            };
            let now = chrono::Utc::now();
            println!("id\tlogin\tname\tprefix\tcreated\tlast used\texpires\tstate");
            for (t, who) in rows {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if tokens::is_live(&t, now) {
                    "live"
                } else {
                    "expired"
                };
                let at = |d: Option<chrono::DateTime<chrono::Utc>>| {
                    d.map_or_else(
                        || "-".to_owned(),
                        |d| d.format("%Y-%m-%d %H:%M").to_string(),
                    )
                };
                println!(
                    "{}\t{}\t{}\t{}…\t{}\t{}\t{}\t{state}",
                    t.id,
                    who.map_or_else(|| "?".to_owned(), |w| w.login),
                    t.name,
                    t.token_prefix,
                    at(Some(t.created_at)),
                    at(t.last_used_at),
                    at(t.expires_at),
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if tokens::revoke(&db, id, None).await? {
                println!("token {id} revoked");
            } else {
                anyhow::bail!("no live token {id}");
            }
        }
    }
    Ok(())
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
