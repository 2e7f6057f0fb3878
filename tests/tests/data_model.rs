//! The data model on both engines: every migration applies to a fresh SQLite and a fresh
//! PostgreSQL database, every entity round-trips, unique constraints hold, and the migrations
//! apply to (and re-run on) a database that already holds rows.

use chrono::{DateTime, TimeZone, Utc};
use previewd_entity::{
    AttemptStatus, DeliveryOutcome, PreviewStatus, PullRequestState, api_token, deploy_attempt,
    installation, preview, pull_request, repository, session, user, webhook_delivery,
};
use previewd_migration::{Migrator, MigratorTrait};
use previewd_tests::db::{Engine, TestDatabase};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait};
use serde_json::json;

/// A fixed instant with whole microseconds, which both engines store exactly.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_764_000_000 + secs, 123_456_000)
        .single()
        .expect("valid time")
}

fn an_installation() -> installation::Model {
    installation::Model {
        id: 9_000_000_001,
        account_login: "acme".into(),
        account_type: "Organization".into(),
        suspended_at: Some(at(5)),
        deleted_at: None,
        created_at: at(0),
        updated_at: at(1),
    }
}

fn a_repository() -> repository::Model {
    repository::Model {
        id: 7_000_000_001,
        installation_id: 9_000_000_001,
        full_name: "acme/web".into(),
        default_branch: "main".into(),
        private: true,
        removed_at: None,
        created_at: at(0),
        updated_at: at(2),
    }
}

fn a_pull_request(number: i64) -> pull_request::Model {
    pull_request::Model {
        id: number,
        repository_id: 7_000_000_001,
        number,
        title: "Add the thing — with ünïcode".into(),
        author_login: "octocat".into(),
        head_ref: "feature/Thing.v2".into(),
        head_sha: "a".repeat(40),
        base_ref: "main".into(),
        from_fork: true,
        draft: false,
        state: PullRequestState::Open,
        labels: json!(["preview:keep", "bug"]),
        created_at: at(3),
        updated_at: at(4),
    }
}

fn a_preview(id: i64, pull_request_id: i64, namespace: &str) -> preview::Model {
    preview::Model {
        id,
        pull_request_id,
        status: PreviewStatus::Running,
        namespace: namespace.into(),
        url: Some(format!("https://{namespace}.preview.example.com")),
        head_sha: "a".repeat(40),
        approved_sha: Some("a".repeat(40)),
        github_deployment_id: Some(42),
        comment_id: Some(3_000_000_000_000),
        expires_at: Some(at(86_400)),
        expiry_warned_at: Some(at(80_000)),
        last_error: Some("CrashLoopBackOff: container web exited 1".into()),
        cleanup_failed: false,
        current_attempt_id: Some(11),
        generation: 3,
        created_at: at(5),
        updated_at: at(6),
        deleted_at: None,
    }
}

fn an_attempt(id: i64, preview_id: i64, attempt: i32) -> deploy_attempt::Model {
    deploy_attempt::Model {
        id,
        preview_id,
        sha: "a".repeat(40),
        attempt,
        status: AttemptStatus::Failed,
        trigger: "opened".into(),
        check_run_id: Some(77),
        github_deployment_id: Some(42),
        image: Some("registry.local/acme/web:aaaa".into()),
        error_kind: Some("crash_loop".into()),
        error: Some("container exited".into()),
        log_tail: Some("line 1\nline 2".into()),
        created_at: at(7),
        started_at: Some(at(8)),
        finished_at: Some(at(9)),
    }
}

fn a_delivery(id: i64, guid: &str) -> webhook_delivery::Model {
    webhook_delivery::Model {
        id,
        guid: guid.into(),
        event: "pull_request".into(),
        action: Some("opened".into()),
        installation_id: Some(9_000_000_001),
        repository_full_name: Some("acme/web".into()),
        outcome: DeliveryOutcome::Accepted,
        detail: Some("deploy enqueued".into()),
        received_at: at(10),
    }
}

fn a_user() -> user::Model {
    user::Model {
        id: 583_231,
        login: "octocat".into(),
        name: Some("The Octocat".into()),
        avatar_url: Some("https://avatars.example/u/583231".into()),
        is_operator: true,
        created_at: at(11),
        last_login_at: Some(at(12)),
    }
}

fn a_session() -> session::Model {
    session::Model {
        id: "f".repeat(64),
        user_id: Some(583_231),
        data: json!({"csrf": "abc", "flash": null}),
        expires_at: at(13),
        created_at: at(12),
    }
}

fn a_token() -> api_token::Model {
    api_token::Model {
        id: 1,
        user_id: 583_231,
        name: "agent on my laptop".into(),
        token_hash: "e".repeat(64),
        token_prefix: "pvd_abcd".into(),
        created_at: at(14),
        last_used_at: Some(at(15)),
        expires_at: None,
        revoked_at: None,
    }
}

/// Inserts `model` and returns what the database gives back when read by primary key.
macro_rules! roundtrip {
    ($db:expr, $entity:path, $model:expr, $key:expr) => {{
        let model = $model;
        model
            .clone()
            .into_active_model()
            .reset_all()
            .insert($db)
            .await?;
        let back = <$entity>::find_by_id($key)
            .one($db)
            .await?
            .expect("row is there");
        assert_eq!(back, model, "{} round-trips", stringify!($entity));
    }};
}

async fn insert_everything(db: &DatabaseConnection) -> anyhow::Result<()> {
    roundtrip!(
        db,
        installation::Entity,
        an_installation(),
        9_000_000_001_i64
    );
    roundtrip!(db, repository::Entity, a_repository(), 7_000_000_001_i64);
    roundtrip!(db, pull_request::Entity, a_pull_request(1), 1_i64);
    roundtrip!(db, preview::Entity, a_preview(1, 1, "acme-web-pr-1"), 1_i64);
    roundtrip!(db, deploy_attempt::Entity, an_attempt(1, 1, 1), 1_i64);
    roundtrip!(db, webhook_delivery::Entity, a_delivery(1, "guid-1"), 1_i64);
    roundtrip!(db, user::Entity, a_user(), 583_231_i64);
    roundtrip!(db, session::Entity, a_session(), "f".repeat(64));
    roundtrip!(db, api_token::Entity, a_token(), 1_i64);
    Ok(())
}

async fn every_entity_round_trips(engine: Engine) -> anyhow::Result<()> {
    let test_db = TestDatabase::create(engine).await?;
    let db = test_db.connect().await?;
    Migrator::up(&db, None).await?;
    insert_everything(&db).await?;
    db.close().await?;
    test_db.drop_database().await
}

async fn unique_constraints_hold(engine: Engine) -> anyhow::Result<()> {
    let test_db = TestDatabase::create(engine).await?;
    let db = test_db.connect().await?;
    Migrator::up(&db, None).await?;
    insert_everything(&db).await?;

    let dup_guid = a_delivery(2, "guid-1")
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await;
    assert!(dup_guid.is_err(), "a delivery GUID is recorded once");

    let dup_attempt = an_attempt(2, 1, 1)
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await;
    assert!(dup_attempt.is_err(), "(preview, sha, attempt) is unique");
    an_attempt(3, 1, 2)
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await?;

    let mut dup_pr = a_pull_request(2);
    dup_pr.number = 1;
    let dup_pr = dup_pr.into_active_model().reset_all().insert(&db).await;
    assert!(dup_pr.is_err(), "(repository, number) is unique");

    a_pull_request(2)
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await?;
    let dup_namespace = a_preview(2, 2, "acme-web-pr-1")
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await;
    assert!(dup_namespace.is_err(), "namespaces are unique");
    let second_for_pr = a_preview(3, 1, "acme-web-pr-1-b")
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await;
    assert!(second_for_pr.is_err(), "one preview per pull request");

    let mut dup_token = a_token();
    dup_token.id = 2;
    let dup_token = dup_token.into_active_model().reset_all().insert(&db).await;
    assert!(dup_token.is_err(), "token hashes are unique");

    assert_eq!(webhook_delivery::Entity::find().count(&db).await?, 1);
    assert_eq!(deploy_attempt::Entity::find().count(&db).await?, 2);
    db.close().await?;
    test_db.drop_database().await
}

async fn migrations_apply_over_existing_rows(engine: Engine) -> anyhow::Result<()> {
    let test_db = TestDatabase::create(engine).await?;
    let db = test_db.connect().await?;
    let total = Migrator::migrations().len();
    assert!(total >= 2, "there is an earlier schema to upgrade from");

    // An install that ran an older previewd: only the first migration, with rows in it.
    Migrator::up(&db, Some(1)).await?;
    assert_eq!(
        Migrator::get_pending_migrations(&db).await?.len(),
        total - 1
    );
    an_installation()
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await?;
    a_repository()
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await?;
    // Written as the older previewd did (its number column was 32 bits on PostgreSQL).
    pull_request::Entity::insert(a_pull_request(1).into_active_model().reset_all())
        .exec_without_returning(&db)
        .await?;

    // Upgrading keeps them, and the new tables work alongside.
    Migrator::up(&db, None).await?;
    assert!(Migrator::get_pending_migrations(&db).await?.is_empty());
    assert_eq!(
        pull_request::Entity::find_by_id(1).one(&db).await?,
        Some(a_pull_request(1))
    );
    a_preview(1, 1, "acme-web-pr-1")
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await?;
    // GitHub's numbers are not bounded by 32 bits; the upgraded column holds them.
    let big = a_pull_request(5_000_000_000);
    big.clone()
        .into_active_model()
        .reset_all()
        .insert(&db)
        .await?;
    assert_eq!(
        pull_request::Entity::find_by_id(5_000_000_000_i64)
            .one(&db)
            .await?,
        Some(big)
    );

    // Running them again (every start-up does) changes nothing.
    Migrator::up(&db, None).await?;
    assert_eq!(preview::Entity::find().count(&db).await?, 1);
    assert_eq!(installation::Entity::find().count(&db).await?, 1);
    db.close().await?;
    test_db.drop_database().await
}

#[tokio::test]
async fn sqlite_every_entity_round_trips() -> anyhow::Result<()> {
    every_entity_round_trips(Engine::Sqlite).await
}

#[tokio::test]
async fn postgres_every_entity_round_trips() -> anyhow::Result<()> {
    every_entity_round_trips(Engine::Postgres).await
}

#[tokio::test]
async fn sqlite_unique_constraints_hold() -> anyhow::Result<()> {
    unique_constraints_hold(Engine::Sqlite).await
}

#[tokio::test]
async fn postgres_unique_constraints_hold() -> anyhow::Result<()> {
    unique_constraints_hold(Engine::Postgres).await
}

#[tokio::test]
async fn sqlite_migrations_apply_over_existing_rows() -> anyhow::Result<()> {
    migrations_apply_over_existing_rows(Engine::Sqlite).await
}

#[tokio::test]
async fn postgres_migrations_apply_over_existing_rows() -> anyhow::Result<()> {
    migrations_apply_over_existing_rows(Engine::Postgres).await
}

/// The bundled SQLite keeps a statement's plan when its bound values change (`.cargo/config.toml`
/// builds it with `SQLITE_ENABLE_QPSG`): without it every `one()` — a bound `LIMIT` — is
/// compiled again each time it runs.
#[tokio::test]
async fn sqlite_is_built_to_keep_its_plans() -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait as _, Statement};
    let test_db = TestDatabase::create(Engine::Sqlite).await?;
    let db = test_db.connect().await?;
    let options: Vec<String> = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA compile_options",
        ))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    assert!(
        options.iter().any(|o| o == "ENABLE_QPSG"),
        "SQLite is built without ENABLE_QPSG: {options:?}"
    );
    db.close().await?;
    test_db.drop_database().await
}

/// A long-running process copies SQLite's write-ahead log back into the database file from a
/// task of its own (`store::Stores::open`), so that deliveries' commits seldom wait for a
/// checkpoint: what was committed reaches the database file within moments, though far fewer
/// pages than SQLite's own threshold (`wal_autocheckpoint`) were written. Without that task,
/// the file would keep its size until a commit took the log past the threshold.
#[tokio::test]
async fn sqlite_log_is_copied_back_by_a_task_not_by_commits() -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait as _, Statement};
    let test_db = TestDatabase::create(Engine::Sqlite).await?;
    let config = previewd::config::StoreConfig {
        database_url: test_db.url.clone().into(),
        redis_url: previewd_tests::redis_url().into(),
        redis_prefix: previewd_tests::redis_prefix(),
    };
    let stores = previewd::store::Stores::open(&config).await?;
    let db = &stores.db;
    let sql = |s: &str| Statement::from_string(db.get_database_backend(), s.to_owned());
    let threshold = db
        .query_one_raw(sql("PRAGMA wal_autocheckpoint"))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?;
    assert_eq!(
        threshold,
        Some(1000),
        "SQLite's own threshold, which this test stays under"
    );
    let file = test_db
        .url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .map(std::path::PathBuf::from)
        .expect("a SQLite file URL");
    let size = || std::fs::metadata(&file).map_or(0, |m| m.len());
    let before = size();
    // About 500 pages: half SQLite's threshold.
    db.execute_unprepared("CREATE TABLE wal_probe (id INTEGER PRIMARY KEY, body BLOB)")
        .await?;
    db.execute_unprepared(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
         INSERT INTO wal_probe (id, body) SELECT i, randomblob(1000) FROM n",
    )
    .await?;
    let grown = previewd_tests::wait::until(
        "the committed rows in the database file",
        std::time::Duration::from_secs(20),
        || {
            let now = size();
            async move { (now >= before + 1_500_000).then_some(now) }
        },
    )
    .await?;
    assert!(grown > before);
    db.close_by_ref().await?;
    test_db.drop_database().await
}

/// The queued check runs' ids are stored many to a statement (`reporter::STORE_LINGER`): each
/// attempt gets its own id, over a claim or an earlier id, and no other attempt is touched.
async fn check_run_ids_are_stored_together(engine: Engine) -> anyhow::Result<()> {
    use previewd::previews::records::store_check_run_ids;
    let test_db = TestDatabase::create(engine).await?;
    let db = test_db.connect().await?;
    Migrator::up(&db, None).await?;
    insert_everything(&db).await?;
    for (id, attempt) in [(2, 2), (3, 3), (4, 4)] {
        let mut row = an_attempt(id, 1, attempt);
        row.check_run_id = Some(-1_900_000_000_000 - id); // a claim
        row.into_active_model().insert(&db).await?;
    }
    store_check_run_ids(&db, &[]).await?;
    store_check_run_ids(&db, &[(2, 9_000_000_002), (4, 9_000_000_004), (1, 5)]).await?;
    let mut ids: Vec<(i64, Option<i64>)> = deploy_attempt::Entity::find()
        .all(&db)
        .await?
        .into_iter()
        .map(|a| (a.id, a.check_run_id))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            (1, Some(5)),
            (2, Some(9_000_000_002)),
            (3, Some(-1_900_000_000_003)),
            (4, Some(9_000_000_004)),
        ]
    );
    db.close().await?;
    test_db.drop_database().await
}

#[tokio::test]
async fn sqlite_check_run_ids_are_stored_together() -> anyhow::Result<()> {
    check_run_ids_are_stored_together(Engine::Sqlite).await
}

#[tokio::test]
async fn postgres_check_run_ids_are_stored_together() -> anyhow::Result<()> {
    check_run_ids_are_stored_together(Engine::Postgres).await
}
