//! A fresh database per test: a SQLite file in a temporary directory, or a PostgreSQL database
//! created on the machine's server (`TEST_POSTGRES_URL`, default the local trust-auth server) and
//! dropped by [`TestDatabase::drop_database`].

use std::path::PathBuf;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Which database engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database that exists only for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub engine: Engine,
    /// URL to give previewd (`DATABASE_URL`).
    pub url: String,
    name: String,
    file: Option<PathBuf>,
}

/// URL of the PostgreSQL server's maintenance database.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDatabase {
    /// Creates an empty database of `engine`.
    pub async fn create(engine: Engine) -> anyhow::Result<Self> {
        let name = format!("previewd_test_{}", uuid::Uuid::new_v4().simple());
        match engine {
            Engine::Sqlite => {
                let dir = std::env::temp_dir().join("previewd-tests");
                std::fs::create_dir_all(&dir)?;
                let file = dir.join(format!("{name}.db"));
                Ok(Self {
                    engine,
                    url: format!("sqlite://{}?mode=rwc", file.display()),
                    name,
                    file: Some(file),
                })
            }
            Engine::Postgres => {
                let admin_url = postgres_admin_url();
                let admin = Database::connect(&admin_url)
                    .await
                    .context("PostgreSQL is not reachable (TEST_POSTGRES_URL)")?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| format!("cannot create database {name}"))?;
                admin.close().await?;
                // The admin URL's options (`?sslmode=disable`, say) hold for the new one too.
                let (path, options) = admin_url
                    .split_once('?')
                    .map_or((admin_url.as_str(), None), |(path, options)| {
                        (path, Some(options))
                    });
                let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
                let url = match options {
                    Some(options) => format!("{base}/{name}?{options}"),
                    None => format!("{base}/{name}"),
                };
                Ok(Self {
                    engine,
                    url,
                    name,
                    file: None,
                })
            }
        }
    }

    /// Opens a connection to the test database.
    pub async fn connect(&self) -> anyhow::Result<DatabaseConnection> {
        Ok(Database::connect(&self.url).await?)
    }

    /// Removes the database; call at the end of the test, after closing connections.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        match self.engine {
            Engine::Sqlite => {
                if let Some(file) = &self.file {
                    for suffix in ["", "-wal", "-shm"] {
                        let mut path = file.clone().into_os_string();
                        path.push(suffix);
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
            Engine::Postgres => {
                let admin = Database::connect(&postgres_admin_url()).await?;
                admin
                    .execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .await?;
                admin.close().await?;
            }
        }
        Ok(())
    }
}
