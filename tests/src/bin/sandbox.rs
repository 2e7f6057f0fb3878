//! `previewd-sandbox`: previewd working on this machine with no GitHub account and no cluster.
//!
//! It starts the simulated GitHub and Kubernetes, the app and a worker (SQLite, the local
//! Redis), then plays a pull request being opened and prints what GitHub would show — the check
//! run, the sticky comment, the deployment — and where everything listens. It stays up until
//! Ctrl-C, so you can send more webhooks or look around.
//!
//! It needs nothing started by hand: when no Redis answers on `127.0.0.1:6379` (and
//! `TEST_REDIS_URL` names no other), it starts the machine's Redis with `scripts/services redis`,
//! the same script the tests use.

use std::time::Duration;

use previewd_entity::PreviewStatus;
use previewd_tests::{
    db::Engine,
    kube::KubeSimOptions,
    scenario::{Options, REPO, Scenario},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ensure_redis().await?;
    let mut options = Options::new(Engine::Sqlite);
    options.log = Some(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()));
    // Delays like a small real cluster's, so each step can be seen.
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(3),
        deployment_ready_delay: Duration::from_secs(2),
        namespace_deletion_delay: Duration::from_secs(2),
        ..KubeSimOptions::default()
    };
    let mut s = Scenario::start(options).await?;
    println!("\n== previewd sandbox");
    println!("   app (webhooks, /healthz, /readyz): {}", s.app_url);
    println!("   simulated GitHub API:              {}", s.gh.url());
    println!(
        "   simulated cluster kubeconfig:      {}",
        s.kube.kubeconfig_path().display()
    );
    println!(
        "\n== maya opens a pull request on {REPO} (no .github/preview.yml: the image is built in the cluster)"
    );
    let pr = s.open_pr("feature/hello").await;
    println!("   #{} {} at {}", pr.number, pr.title, &pr.head_sha[..7]);
    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
    let run = s.completed_check_run(&pr.head_sha).await;

    println!(
        "\n== GitHub shows the check run \"{}\": {} / {}",
        run.name,
        run.status,
        run.conclusion.clone().unwrap_or_default()
    );
    println!("   {}", run.title.clone().unwrap_or_default());
    for line in run
        .summary
        .clone()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        println!("   {line}");
    }
    let comment = s.wait_comment(pr.number, "Preview ready").await;
    println!("\n== the sticky comment on #{}:", pr.number);
    for line in comment[0].body.lines() {
        println!("   {line}");
    }
    for deployment in s.gh.deployments(REPO) {
        let states: Vec<String> =
            s.gh.deployment_statuses(deployment.id)
                .into_iter()
                .map(|d| d.state)
                .collect();
        println!(
            "\n== deployment {} ({}): {}",
            deployment.id,
            deployment.environment,
            states.join(" → ")
        );
    }
    println!("\n== in the cluster, namespace {}:", preview.namespace);
    for kind in [
        "resourcequotas",
        "limitranges",
        "networkpolicies",
        "jobs",
        "deployments",
        "services",
        "ingresses",
    ] {
        let names: Vec<String> = s
            .kube
            .list(kind, Some(&preview.namespace))
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        println!("   {kind}: {}", names.join(", "));
    }
    println!("\n== GitHub API calls so far: {}", s.gh.calls().total);
    println!("\npreviewd keeps running; Ctrl-C stops everything.");
    tokio::signal::ctrl_c().await?;
    s.stop().await
}

/// Whether the Redis the scenario will use answers PING within two seconds.
async fn redis_answers() -> bool {
    let Ok(client) = redis::Client::open(previewd_tests::redis_url()) else {
        return false;
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ping).await,
        Ok(Ok(_))
    )
}

/// Starts the machine's Redis when none answers (only the default one: a Redis named by
/// `TEST_REDIS_URL` is the caller's to run).
async fn ensure_redis() -> anyhow::Result<()> {
    if redis_answers().await {
        return Ok(());
    }
    anyhow::ensure!(
        std::env::var_os("TEST_REDIS_URL").is_none(),
        "the Redis at TEST_REDIS_URL does not answer"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services");
    println!("== no Redis answers on 127.0.0.1:6379: starting it ({script} redis)");
    let status = std::process::Command::new(script).arg("redis").status()?;
    anyhow::ensure!(status.success(), "{script} redis failed ({status})");
    anyhow::ensure!(redis_answers().await, "Redis still does not answer");
    Ok(())
}
