//! The two stores: the database (source of truth, via sea-orm) and Redis (carries work).
//!
//! [`Stores::open`] connects to both and applies every pending migration, so either binary can
//! start on an empty database. Processes may start at the same instant (an app and a worker, or
//! N replicas of each), so migrations are **serialized by a lock** ([`open_database`]): a PostgreSQL
//! advisory lock held on a connection of its own, or for SQLite an exclusive lock on a file
//! beside the database. Whoever takes it second finds nothing left to apply. The database must be reachable at start-up (nothing works
//! without it); Redis is connected lazily and reconnects on its own, so the app can start and
//! report itself unready (`/readyz`) while Redis is down, rather than crash-looping.

use std::time::Duration;

use anyhow::Context as _;
use previewd_migration::{Migrator, MigratorTrait};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use secrecy::ExposeSecret;

use crate::config::StoreConfig;

/// Time allowed for one health probe of a store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Open connections to the database and Redis.
#[derive(Clone)]
pub struct Stores {
    pub db: DatabaseConnection,
    pub redis: ConnectionManager,
    /// For subscriptions (pub/sub needs a connection of its own).
    pub redis_client: redis::Client,
    /// Prefix of every Redis key previewd writes.
    pub redis_prefix: String,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("db", &self.db.get_database_backend())
            .field("redis_prefix", &self.redis_prefix)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Connects to the database (migrating it) and sets up the Redis connection.
    pub async fn open(config: &StoreConfig) -> anyhow::Result<Self> {
        let db = open_database(config).await?;
        if sqlite_file(config.database_url.expose_secret()).is_some() {
            spawn_checkpointer(db.clone());
        }
        let (redis_client, redis) = connect_redis(config)?;
        Ok(Self {
            db,
            redis,
            redis_client,
            redis_prefix: config.redis_prefix.clone(),
        })
    }

    /// Checks the database answers; the error says why not.
    pub async fn check_database(&self) -> Result<(), String> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.db.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("database unreachable: {e}")),
            Err(_) => Err(format!("database did not answer within {PROBE_TIMEOUT:?}")),
        }
    }

    /// Checks Redis answers PING; the error says why not.
    pub async fn check_redis(&self) -> Result<(), String> {
        let mut conn = self.redis.clone();
        let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
        match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("redis unreachable: {}", describe_redis_error(&e))),
            Err(_) => Err(format!("redis did not answer within {PROBE_TIMEOUT:?}")),
        }
    }
}

/// A Redis error without any detail that could echo the URL back.
fn describe_redis_error(e: &redis::RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connection_dropped() {
        "connection dropped".to_owned()
    } else {
        format!("{:?}", e.kind())
    }
}

/// Opens the database named by `DATABASE_URL` (a SQLite file is created when missing).
pub async fn connect_database(config: &StoreConfig) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(config.database_url.expose_secret().to_owned());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        // SQLite: write-ahead logging lets readers run beside the one writer, and writers wait
        // for each other instead of failing with "database is locked". A long-running process
        // copies the log back itself ([`spawn_checkpointer`]).
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
        });
    Database::connect(options)
        .await
        .map_err(|e| anyhow::anyhow!("{}", redact_db_error(&e.to_string(), config)))
        .context("cannot connect to the database (DATABASE_URL)")
}

/// How soon the checkpointer looks again after it found new writes, and the longest it waits
/// when it finds none (doubling its wait each time). The longest is short so that, when writes
/// resume after a quiet spell, its first round comes before they take the log far: a wait of
/// seconds at a few hundred deliveries a second would leave the first commit past SQLite's
/// threshold to checkpoint itself.
const CHECKPOINT_BUSY: Duration = Duration::from_millis(100);
const CHECKPOINT_IDLE: Duration = Duration::from_millis(500);

/// Copies a SQLite database's write-ahead log back into the database file from a task of its
/// own, on a pooled connection, so that commits seldom wait for it. Left to SQLite, the commit
/// that takes the log past 1,000 pages (`wal_autocheckpoint`) does it before it returns — with
/// `synchronous = NORMAL`, a flush of the log to disk, the copy and a flush of the database file
/// — and whichever delivery commits then waits for all of it: the tail of the intake's latency.
/// A `PASSIVE` checkpoint neither waits for nor blocks the writer and readers; once it has
/// copied everything, the next transaction starts the log from its beginning, so at a steady
/// rate the log never reaches SQLite's threshold. Under a load that keeps the writer busy
/// meanwhile it cannot copy everything, and SQLite's own checkpoint still runs at the
/// threshold, with most of the log already copied by this one. Ends when the pool is closed.
fn spawn_checkpointer(db: DatabaseConnection) {
    use sea_orm::{ConnectionTrait as _, DbErr, Statement, error::ConnAcquireErr};
    tokio::spawn(async move {
        let statement = || {
            Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA wal_checkpoint(PASSIVE)",
            )
        };
        let (mut pause, mut last) = (CHECKPOINT_BUSY, None);
        loop {
            tokio::time::sleep(pause).await;
            let seen = match db.query_one_raw(statement()).await {
                // (busy, pages in the log, pages copied back): unchanged means no new writes.
                Ok(row) => row.map(|row| {
                    (
                        row.try_get_by_index::<i64>(1).unwrap_or_default(),
                        row.try_get_by_index::<i64>(2).unwrap_or_default(),
                    )
                }),
                Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "write-ahead log checkpoint failed; trying later");
                    None
                }
            };
            pause = if seen.is_some() && seen != last {
                CHECKPOINT_BUSY
            } else {
                (pause * 2).min(CHECKPOINT_IDLE)
            };
            last = seen;
        }
    });
}

/// The PostgreSQL advisory lock key under which migrations run (any constant shared by every
/// previewd process; "previewd" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x7072_6576_6965_7764;

/// Connects to the database and applies pending migrations, one process at a time. For SQLite
/// the lock is taken before connecting: switching a new database file to write-ahead logging is
/// itself a write that a concurrent opener would find locked.
pub async fn open_database(config: &StoreConfig) -> anyhow::Result<DatabaseConnection> {
    let file_lock = lock_sqlite_file(config).await?;
    let opened = async {
        let db = connect_database(config).await?;
        migrate(&db, config).await?;
        anyhow::Ok(db)
    }
    .await;
    if let Some(file) = file_lock {
        drop(file.unlock());
    }
    opened
}

/// Applies every pending migration; a no-op on an up-to-date database. On PostgreSQL it holds
/// an advisory lock meanwhile; on SQLite the caller holds the file lock ([`open_database`]).
async fn migrate(db: &DatabaseConnection, config: &StoreConfig) -> anyhow::Result<()> {
    let lock = PostgresLock::take(db, config).await?;
    let applied = Migrator::up(db, None)
        .await
        .context("cannot apply database migrations");
    if let Some(lock) = lock {
        lock.release().await;
    }
    applied
}

/// The exclusive lock on `<file>.migrate-lock` beside a SQLite database file; `None` for
/// PostgreSQL and in-memory databases. A process that dies holding it releases it (its file
/// descriptor closes).
async fn lock_sqlite_file(config: &StoreConfig) -> anyhow::Result<Option<std::fs::File>> {
    let Some(path) = sqlite_file(config.database_url.expose_secret()) else {
        return Ok(None);
    };
    let lock_path = format!("{path}.migrate-lock");
    let file = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {lock_path}"))?;
        file.lock()
            .with_context(|| format!("cannot lock {lock_path}"))?;
        anyhow::Ok(file)
    })
    .await
    .context("the migration lock task failed")??;
    Ok(Some(file))
}

/// A PostgreSQL advisory lock, held by a connection of its own (the lock lives as long as that
/// session; a process that dies holding it releases it).
struct PostgresLock(DatabaseConnection);

impl PostgresLock {
    async fn take(db: &DatabaseConnection, config: &StoreConfig) -> anyhow::Result<Option<Self>> {
        use sea_orm::{ConnectionTrait as _, DatabaseBackend};
        if db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(None);
        }
        let mut options = ConnectOptions::new(config.database_url.expose_secret().to_owned());
        options
            .max_connections(1)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        let conn = Database::connect(options)
            .await
            .map_err(|e| anyhow::anyhow!("{}", redact_db_error(&e.to_string(), config)))
            .context("cannot open the migration lock connection (DATABASE_URL)")?;
        conn.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .await
            .context("cannot take the migration lock")?;
        Ok(Some(Self(conn)))
    }

    /// Lets the next process in: closing the connection ends the session and its lock.
    async fn release(self) {
        drop(self.0.close().await);
    }
}

/// The file of a `sqlite:` URL (`sqlite://FILE?…`, `sqlite:FILE`), or `None` for an in-memory
/// database.
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:" && !url.contains("mode=memory"))
        .then(|| path.to_owned())
}

/// Connects to the database and applies pending migrations: the `migrate` command of both
/// binaries.
pub async fn migrate_database(config: &StoreConfig) -> anyhow::Result<()> {
    let db = open_database(config).await?;
    db.close().await?;
    tracing::info!("database migrations applied");
    Ok(())
}

/// Sets up a Redis connection that connects on first use and reconnects on its own.
pub fn connect_redis(config: &StoreConfig) -> anyhow::Result<(redis::Client, ConnectionManager)> {
    let client = redis::Client::open(config.redis_url.expose_secret())
        .map_err(|e| anyhow::anyhow!("{}", describe_redis_error(&e)))
        .context("invalid REDIS_URL")?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
        .map_err(|e| anyhow::anyhow!("{}", describe_redis_error(&e)))
        .context("cannot set up the Redis connection")?;
    Ok((client, manager))
}

/// What kind of trouble a database error is, for deciding whether to answer "try later".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// The database cannot be reached or is not answering: try again later.
    Outage,
    /// Another transaction got in the way (a unique key taken meanwhile, a lock, a
    /// serialization failure): trying again at once succeeds.
    Conflict,
    /// The request itself cannot be stored (a value out of range, a constraint it breaks):
    /// trying again repeats it.
    Permanent,
}

/// Sorts `error` into [`Trouble`].
pub fn trouble(error: &sea_orm::DbErr) -> Trouble {
    use sea_orm::{DbErr, SqlErr};
    match error {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => return Trouble::Outage,
        _ => {}
    }
    if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return Trouble::Conflict;
    }
    let text = error.to_string().to_ascii_lowercase();
    let conflict = [
        "database is locked",
        "database table is locked",
        "deadlock detected",
        "could not serialize",
        "busy",
    ];
    if conflict.iter().any(|w| text.contains(w)) {
        return Trouble::Conflict;
    }
    let outage = [
        "connection",
        "broken pipe",
        "timed out",
        "pool",
        "i/o",
        "io error",
        "terminating",
        "shutting down",
        "disk",
    ];
    if outage.iter().any(|w| text.contains(w)) {
        return Trouble::Outage;
    }
    Trouble::Permanent
}

/// Removes the database URL (which may hold a password) from a driver error message.
fn redact_db_error(message: &str, config: &StoreConfig) -> String {
    message.replace(config.database_url.expose_secret(), "[DATABASE_URL]")
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;

    #[test]
    fn sqlite_files_from_urls() {
        assert_eq!(
            sqlite_file("sqlite://previewd.db?mode=rwc").as_deref(),
            Some("previewd.db")
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/p.db").as_deref(),
            Some("/var/lib/p.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
