//! A pull request's first life: opened, deployed, shown on GitHub — or refused with a reason.

use previewd_entity::PreviewStatus;
use previewd_tests::{
    db::Engine,
    scenario::{Options, REPO, Scenario},
};

async fn opened_pull_request_gets_a_running_preview(engine: Engine) -> anyhow::Result<()> {
    let mut s = Scenario::start(Options::new(engine)).await?;
    s.gh.put_file(
        REPO,
        "main",
        ".github/preview.yml",
        "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n",
    );
    let pr = s.open_pr("feature/login").await;
    // The config is read at the head commit for a trusted author.
    s.gh.put_file(
        REPO,
        &pr.head_sha,
        ".github/preview.yml",
        "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n",
    );

    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
    let url = preview.url.clone().expect("a URL");
    assert_eq!(
        url,
        format!("https://{}.preview.example.test", preview.namespace)
    );

    // GitHub shows it: a successful check run, one comment with the URL, a successful deployment.
    let run = s.completed_check_run(&pr.head_sha).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");
    assert!(run.summary.as_deref().unwrap_or_default().contains(&url));
    assert_eq!(
        s.gh.check_runs(REPO, &pr.head_sha).len(),
        1,
        "one check run per attempt"
    );
    let comments = s.gh.comments(REPO, pr.number);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(comments[0].body.contains(&url));
    let deployments = s.gh.deployments(REPO);
    assert_eq!(deployments.len(), 1);
    assert!(
        !deployments[0].auto_merge
            && deployments[0].transient_environment
            && !deployments[0].production_environment
    );
    let states: Vec<String> =
        s.gh.deployment_statuses(deployments[0].id)
            .into_iter()
            .map(|d| d.state)
            .collect();
    assert_eq!(states, ["in_progress", "success"]);

    // The cluster has the namespace with its guard rails and the workload.
    let ns = &preview.namespace;
    assert!(s.kube.get("namespaces", None, ns).is_some());
    assert_eq!(s.kube.list("resourcequotas", Some(ns)).len(), 1);
    assert_eq!(s.kube.list("limitranges", Some(ns)).len(), 1);
    assert!(!s.kube.list("networkpolicies", Some(ns)).is_empty());
    assert_eq!(s.kube.list("deployments", Some(ns)).len(), 1);
    assert_eq!(s.kube.list("ingresses", Some(ns)).len(), 1);

    let calls = s.gh.calls();
    assert!(calls.unimplemented.is_empty(), "{:?}", calls.unimplemented);
    assert!(
        s.kube.requests().unimplemented.is_empty(),
        "{:?}",
        s.kube.requests().unimplemented
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_pull_request_gets_a_running_preview() -> anyhow::Result<()> {
    opened_pull_request_gets_a_running_preview(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opened_pull_request_gets_a_running_preview() -> anyhow::Result<()> {
    opened_pull_request_gets_a_running_preview(Engine::Postgres).await
}
