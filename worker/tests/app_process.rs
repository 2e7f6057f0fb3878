//! The `previewd` binary (built from this crate) as operators run it: configuration errors stop
//! it with exit code 2 and one line naming the setting; it serves `/healthz` and `/readyz`;
//! `migrate` applies the migrations and exits; SIGTERM stops it cleanly.

use std::time::Duration;

use previewd_tests::process::{Running, bare, configured, get, run_to_end, sqlite_path};

const BIN: &str = env!("CARGO_BIN_EXE_previewd");

/// Runs the binary with one setting changed (`None` removes it) and expects a configuration
/// failure naming `variable`.
fn expect_config_error(change: (&str, Option<&str>), variable: &str) -> String {
    let mut cmd = configured(BIN, &sqlite_path());
    match change.1 {
        Some(value) => cmd.env(change.0, value),
        None => cmd.env_remove(change.0),
    };
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(2), "{change:?}: exit code 2, stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{change:?}: one line, got: {stderr}"
    );
    assert!(
        stderr.contains(variable),
        "{change:?}: names {variable}: {stderr}"
    );
    stderr
}

#[test]
fn missing_required_settings_are_named() {
    expect_config_error(("GITHUB_APP_ID", None), "GITHUB_APP_ID");
    expect_config_error(("GITHUB_PRIVATE_KEY_PATH", None), "GITHUB_PRIVATE_KEY_PATH");
    expect_config_error(("GITHUB_WEBHOOK_SECRET", None), "GITHUB_WEBHOOK_SECRET");
    expect_config_error(("PREVIEW_DOMAIN", None), "PREVIEW_DOMAIN");
}

#[test]
fn invalid_settings_are_named() {
    expect_config_error(("GITHUB_APP_ID", Some("twelve")), "GITHUB_APP_ID");
    expect_config_error(
        ("GITHUB_PRIVATE_KEY_PATH", Some("/nonexistent/key.pem")),
        "GITHUB_PRIVATE_KEY_PATH",
    );
    expect_config_error(
        ("GITHUB_PRIVATE_KEY_PATH", Some("/etc/hostname")),
        "GITHUB_PRIVATE_KEY_PATH",
    );
    expect_config_error(("GITHUB_API_URL", Some("not a url")), "GITHUB_API_URL");
    expect_config_error(("LISTEN_ADDR", Some("localhost:http")), "LISTEN_ADDR");
    expect_config_error(
        ("PREVIEW_DOMAIN", Some("under_score.example.com")),
        "PREVIEW_DOMAIN",
    );
    expect_config_error(("LOG_FORMAT", Some("xml")), "LOG_FORMAT");
    expect_config_error(("RUST_LOG", Some("=[")), "RUST_LOG");
    expect_config_error(("REDIS_URL", Some("http://redis:6379")), "REDIS_URL");
}

#[test]
fn secrets_are_never_printed() {
    let stderr = expect_config_error(
        ("DATABASE_URL", Some("mysql://admin:hunter2@db/previewd")),
        "DATABASE_URL",
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let mut cmd = configured(BIN, &sqlite_path());
    cmd.env("GITHUB_PRIVATE_KEY_PATH", "").env(
        "GITHUB_PRIVATE_KEY",
        "-----BEGIN RSA PRIVATE KEY-----\nsupersecretbytes\n-----END RSA PRIVATE KEY-----",
    );
    cmd.env_remove("GITHUB_PRIVATE_KEY_PATH");
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("GITHUB_PRIVATE_KEY"), "{stderr}");
    assert!(!stderr.contains("supersecretbytes"), "{stderr}");
}

#[test]
fn help_lists_every_variable() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for variable in [
        "GITHUB_APP_ID",
        "GITHUB_PRIVATE_KEY_PATH",
        "GITHUB_PRIVATE_KEY",
        "GITHUB_WEBHOOK_SECRET",
        "GITHUB_API_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "KUBECONFIG",
        "PREVIEW_DOMAIN",
        "LISTEN_ADDR",
        "LOG_FORMAT",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "--help documents {variable}"
        );
    }
}

#[tokio::test]
async fn serves_health_and_readiness_and_stops_on_sigterm() {
    let db = sqlite_path();
    let mut app = Running::start(configured(BIN, &db));
    let addr = app.listen_addr();

    let (status, body) = get(&addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");

    app.terminate();
    assert_eq!(
        app.wait_exit(Duration::from_secs(30)),
        Some(0),
        "graceful exit"
    );
    let _ = std::fs::remove_file(db);
}

#[tokio::test]
async fn not_ready_while_redis_is_down() {
    let db = sqlite_path();
    let mut cmd = configured(BIN, &db);
    // Port 1 on loopback: nothing listens there, connections are refused at once.
    cmd.env("REDIS_URL", "redis://127.0.0.1:1");
    let app = Running::start(cmd);
    let addr = app.listen_addr();

    let (status, _) = get(&addr, "/healthz").await;
    assert_eq!(status, 200, "alive even without Redis");
    let (status, body) = get(&addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["checks"]["database"], "ok");
    let reason = body["checks"]["redis"].as_str().expect("a reason");
    assert!(reason.starts_with("redis unreachable"), "{reason}");
    drop(app);
    let _ = std::fs::remove_file(db);
}

#[test]
fn migrate_needs_only_the_database_and_is_idempotent() {
    let db = sqlite_path();
    for _ in 0..2 {
        let mut cmd = bare(BIN);
        cmd.arg("migrate").env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        );
        let (code, stderr) = run_to_end(cmd);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains("database migrations applied"), "{stderr}");
    }
    assert!(db.is_file(), "the SQLite file was created");
    let _ = std::fs::remove_file(db);
}
