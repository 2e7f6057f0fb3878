//! The `previewd-worker` binary as operators run it: configuration errors stop it with exit code
//! 2 naming the setting; without Redis it refuses to run; SIGTERM and SIGINT stop it cleanly.

use std::time::Duration;

use previewd_tests::{
    kube::{KubeSim, KubeSimOptions},
    process::{Running, configured, run_to_end, sqlite_path},
};

const BIN: &str = env!("CARGO_BIN_EXE_previewd-worker");

#[test]
fn configuration_errors_are_named() {
    for (variable, value) in [
        ("GITHUB_APP_ID", None),
        ("PREVIEW_DOMAIN", None),
        ("WORKER_CONCURRENCY", Some("lots")),
        ("DEPLOY_TIMEOUT", Some("3 minutes")),
        ("CLEANUP_TIMEOUT", Some("0s")),
        ("KUBECONFIG", Some("/nonexistent/kubeconfig")),
    ] {
        let mut cmd = configured(BIN, &sqlite_path());
        match value {
            Some(v) => cmd.env(variable, v),
            None => cmd.env_remove(variable),
        };
        let (code, stderr) = run_to_end(cmd);
        assert_eq!(code, Some(2), "{variable}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{variable}: one line: {stderr}"
        );
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[tokio::test]
async fn runs_until_sigterm() {
    // The worker connects to its cluster at start: give it the simulated one.
    let kube = KubeSim::start(KubeSimOptions::default())
        .await
        .expect("kube simulator");
    for signal in ["TERM", "INT"] {
        let db = sqlite_path();
        let mut cmd = configured(BIN, &db);
        cmd.env("KUBECONFIG", kube.kubeconfig_path());
        let mut worker = Running::start(cmd);
        worker.wait_for_line("worker running", Duration::from_secs(30));
        worker.signal(signal);
        worker.wait_for_line("worker stopped", Duration::from_secs(30));
        assert_eq!(
            worker.wait_exit(Duration::from_secs(30)),
            Some(0),
            "SIG{signal}: clean exit"
        );
        let _ = std::fs::remove_file(db);
    }
}

#[test]
fn refuses_to_run_without_redis() {
    let mut cmd = configured(BIN, &sqlite_path());
    cmd.env("REDIS_URL", "redis://127.0.0.1:1");
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("redis unreachable"), "{stderr}");
}
