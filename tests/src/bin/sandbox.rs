//! `previewd-sandbox`: previewd working on this machine with no GitHub account and no cluster.
//!
//! It starts the simulated GitHub and Kubernetes, the app and a worker (SQLite, a Redis), then
//! plays a pull request's whole life — opened, pushed to, a failing commit, the fix, closed —
//! and opens a second one that stays running, printing what GitHub shows at each step. The
//! dashboard is up the whole time at the printed address, and the simulated GitHub signs any
//! browser in as `maya`: "Sign in with GitHub" goes through the App's real OAuth flow, against
//! the simulator (nothing in previewd itself can skip it). It stays up until Ctrl-C, or with
//! `--once` exits after the story once its standard input is closed (at once from a terminal
//! or `</dev/null`; a caller holding a pipe open looks at the pages first, then closes it).
//!
//! It needs nothing started by hand: when no Redis answers at `127.0.0.1:6379` (or
//! `TEST_REDIS_URL`), it starts a private `redis-server` of its own on a free port, says so, and
//! stops it on exit.

use std::time::Duration;

use previewd_entity::PreviewStatus;
use previewd_tests::{
    db::Engine,
    kube::{Behaviour, KubeSimOptions},
    redis_server::RedisServer,
    scenario::{MAINTAINER, Options, REPO, Scenario},
};

const GOOD: &str = "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n";
const BROKEN: &str = "image: ghcr.io/acme/web-broken:{sha}\nport: 8080\nhealth: /healthz\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let once = std::env::args().any(|a| a == "--once");
    let private_redis = if redis_answers(&previewd_tests::redis_url()).await {
        None
    } else {
        let server = RedisServer::start(false).await?;
        println!(
            "== no Redis answers at {}: started a private redis-server at {} (it stops with the sandbox)",
            previewd_tests::redis_url(),
            server.url()
        );
        Some(server)
    };
    let mut options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    options.redis_url = private_redis.as_ref().map(RedisServer::url);
    options.log = Some(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()));
    options.github.signed_in_user = Some(MAINTAINER.to_owned());
    // Delays like a small real cluster's, so each step can be seen.
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(3),
        deployment_ready_delay: Duration::from_secs(2),
        namespace_deletion_delay: Duration::from_secs(2),
        ..KubeSimOptions::default()
    };
    let mut s = Scenario::start(options).await?;
    s.kube.set_behaviour_for_image(
        "ghcr.io/acme/web-broken",
        Behaviour::CrashLoopBackOff {
            logs: vec![
                "listening on :8080".into(),
                "panic: DATABASE_URL is not set".into(),
            ],
        },
    );
    println!("\n== previewd sandbox");
    println!(
        "   dashboard (signed in as {MAINTAINER}): {}/previews",
        s.app_url
    );
    println!("   app (webhooks, /healthz, /readyz):   {}", s.app_url);
    println!("   simulated GitHub API:                {}", s.gh.url());
    println!(
        "   simulated cluster kubeconfig:        {}",
        s.kube.kubeconfig_path().display()
    );

    println!("\n== {MAINTAINER} opens a pull request on {REPO}");
    let pr = s.open_pr_with_config("feature/hello", GOOD).await;
    println!("   #{} {} at {}", pr.number, pr.title, short(&pr.head_sha));
    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
    show_check_run(&s, &pr.head_sha).await;
    let comment = s.wait_comment(pr.number, "Preview ready").await;
    println!("\n== the sticky comment on #{}:", pr.number);
    for line in comment[0].body.lines() {
        println!("   {line}");
    }
    println!("\n== in the cluster, namespace {}:", preview.namespace);
    for kind in [
        "resourcequotas",
        "limitranges",
        "networkpolicies",
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

    println!("\n== a push: the new commit replaces the old one");
    let sha = s.sha();
    s.gh.push(REPO, pr.number, &sha).await;
    s.wait_head_running(pr.number, &sha).await;
    show_check_run(&s, &sha).await;

    println!("\n== a failing commit: its container crashes");
    s.gh.put_file(REPO, "feature/hello", ".github/preview.yml", BROKEN);
    let sha = s.sha();
    s.gh.push(REPO, pr.number, &sha).await;
    let failed = s.wait_status(pr.number, PreviewStatus::Failed).await;
    show_check_run(&s, &sha).await;
    println!(
        "   the dashboard shows why: {}/previews/{} ({})",
        s.app_url,
        failed.id,
        failed.last_error.unwrap_or_default()
    );

    println!("\n== the fix");
    s.gh.put_file(REPO, "feature/hello", ".github/preview.yml", GOOD);
    let sha = s.sha();
    s.gh.push(REPO, pr.number, &sha).await;
    s.wait_head_running(pr.number, &sha).await;
    show_check_run(&s, &sha).await;

    println!("\n== a second pull request, left running");
    let second = s.open_pr_with_config("feature/checkout", GOOD).await;
    s.wait_status(second.number, PreviewStatus::Running).await;
    println!("   #{} {}", second.number, second.title);

    println!("\n== #{} is closed: its preview is removed", pr.number);
    s.gh.close_pr(REPO, pr.number, false).await;
    s.wait_status(pr.number, PreviewStatus::Deleted).await;
    println!(
        "   namespace {} is gone: {}",
        preview.namespace,
        !s.kube.namespaces().contains(&preview.namespace)
    );
    for deployment in s.gh.deployments(REPO) {
        let states: Vec<String> =
            s.gh.deployment_statuses(deployment.id)
                .into_iter()
                .map(|d| d.state)
                .collect();
        println!(
            "   deployment {} ({}): {}",
            deployment.id,
            deployment.environment,
            states.join(" → ")
        );
    }
    println!("\n== GitHub API calls so far: {}", s.gh.calls().total);
    println!(
        "   every state is on the dashboard: {}/previews?status=deleted and {}/previews",
        s.app_url, s.app_url
    );
    if once {
        // Whatever arrives on standard input is dropped; its end is the signal to stop (a
        // terminal is not waited for).
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            tokio::task::spawn_blocking(|| {
                std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
            })
            .await?
            .ok();
        }
    } else {
        println!("\npreviewd keeps running; Ctrl-C stops everything.");
        tokio::signal::ctrl_c().await?;
    }
    let stopped = s.stop().await;
    drop(private_redis);
    stopped
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Prints the completed check run of `sha`.
async fn show_check_run(s: &Scenario, sha: &str) {
    let run = s.completed_check_run(sha).await;
    println!(
        "   check run \"{}\" on {}: {} / {} — {}",
        run.name,
        short(sha),
        run.status,
        run.conclusion.clone().unwrap_or_default(),
        run.title.clone().unwrap_or_default()
    );
}

/// Whether a Redis answers PING at `url` within two seconds.
async fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
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
