//! Processes started at the same instant all come up: the app and a worker on one fresh SQLite
//! file or PostgreSQL database, and two apps with two workers on PostgreSQL. Migrations are
//! serialized by a lock, so the second process finds them applied instead of racing to add the
//! same column twice. Real binaries, real stores; several rounds, since a race shows only
//! sometimes.

use std::{process::Command, time::Duration};

use previewd_tests::{
    db::{Engine, TestDatabase},
    kube::{KubeSim, KubeSimOptions},
    process::{Running, configured, sqlite_path},
};

const WORKER: &str = env!("CARGO_BIN_EXE_previewd-worker");

/// The app binary, built beside the worker's by `cargo test --workspace` (the README's test
/// command).
fn app_binary() -> std::path::PathBuf {
    let path = std::path::Path::new(WORKER).with_file_name("previewd");
    assert!(
        path.is_file(),
        "{} is missing: run the tests of the whole workspace (scripts/test)",
        path.display()
    );
    path
}

/// A process of `program` on `database_url`, the simulated cluster at `kubeconfig`.
fn process(program: &std::path::Path, database_url: &str, kubeconfig: &std::path::Path) -> Command {
    let mut cmd = configured(&program.display().to_string(), &sqlite_path());
    cmd.env("DATABASE_URL", database_url)
        .env("KUBECONFIG", kubeconfig);
    cmd
}

/// Starts `apps` apps and `workers` workers as close to the same instant as spawning allows, and
/// waits until every one serves (app: "listening"; worker: "worker running").
fn start_together(database_url: &str, kubeconfig: &std::path::Path, apps: usize, workers: usize) {
    let app = app_binary();
    let mut commands: Vec<(Command, &str)> = Vec::new();
    for _ in 0..apps {
        commands.push((process(&app, database_url, kubeconfig), "listening"));
    }
    for i in 0..workers {
        let mut cmd = process(std::path::Path::new(WORKER), database_url, kubeconfig);
        cmd.env("WORKER_NAME", format!("startup-worker-{i}"));
        commands.push((cmd, "worker running"));
    }
    let running: Vec<(Running, &str)> = commands
        .into_iter()
        .map(|(cmd, ready)| (Running::start(cmd), ready))
        .collect();
    for (process, ready) in &running {
        process.wait_for_line(ready, Duration::from_secs(60));
    }
    for (process, _) in &running {
        process.terminate();
    }
    for (mut process, _) in running {
        assert_eq!(
            process.wait_exit(Duration::from_secs(40)),
            Some(0),
            "clean exit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_and_worker_started_together_on_sqlite_both_come_up() -> anyhow::Result<()> {
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    for _ in 0..5 {
        let db = TestDatabase::create(Engine::Sqlite).await?;
        let (url, kubeconfig) = (db.url.clone(), kube.kubeconfig_path());
        tokio::task::spawn_blocking(move || start_together(&url, &kubeconfig, 1, 1)).await?;
        db.drop_database().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_and_worker_started_together_on_postgres_both_come_up() -> anyhow::Result<()> {
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    for _ in 0..3 {
        let db = TestDatabase::create(Engine::Postgres).await?;
        let (url, kubeconfig) = (db.url.clone(), kube.kubeconfig_path());
        tokio::task::spawn_blocking(move || start_together(&url, &kubeconfig, 1, 1)).await?;
        db.drop_database().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_and_two_workers_on_postgres_all_come_up() -> anyhow::Result<()> {
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    let db = TestDatabase::create(Engine::Postgres).await?;
    let (url, kubeconfig) = (db.url.clone(), kube.kubeconfig_path());
    tokio::task::spawn_blocking(move || start_together(&url, &kubeconfig, 2, 2)).await?;
    db.drop_database().await
}
