//! previewd's own GitHub client (`previewd::github`) against the simulated GitHub: conditional
//! reads that cost nothing while nothing changes, every page of every listing, creates that
//! GitHub applied but answered with a 5xx or too late are found instead of made twice, scoped
//! tokens, custom repository roles, and the delivery log a page at a time.

use std::time::Duration;

use previewd::{
    config::GithubConfig,
    github::{
        GitHub, RepoName,
        api::{CheckRunReport, CheckStatus, DeploymentState, DeploymentStatus, Permission},
    },
};
use previewd_tests::github::{Fault, FaultKind, GitHubSim, GitHubSimOptions, NewPr};
use secrecy::{ExposeSecret, SecretString};

const REPO: &str = "acme/web";
const MARKER: &str = "<!-- previewd:test -->";

async fn world() -> (GitHubSim, i64, GitHub) {
    let sim = GitHubSim::start(GitHubSimOptions::default())
        .await
        .expect("simulator");
    let inst = sim.add_installation("acme");
    sim.add_repo(inst, REPO);
    let config = GithubConfig {
        app_id: 1234,
        private_key: SecretString::from(include_str!("../fixtures/app-key.pem")),
        webhook_secret: SecretString::from("webhook-secret-value"),
        api_url: url::Url::parse(&sim.url()).expect("url"),
        web_url: url::Url::parse(&sim.url()).expect("url"),
        oauth: None,
    };
    let github = GitHub::new(&config).expect("client");
    (sim, inst, github)
}

fn repo() -> RepoName {
    RepoName::parse(REPO).expect("name")
}

fn report(sha: &str, external_id: &str) -> CheckRunReport {
    CheckRunReport {
        head_sha: sha.into(),
        status: CheckStatus::Queued,
        external_id: external_id.into(),
        details_url: None,
        title: "Queued".into(),
        summary: "Waiting".into(),
        text: None,
        actions: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_reads_cost_nothing_and_every_page_is_read() {
    let (sim, inst, github) = world().await;
    for i in 0..250 {
        sim.add_pr_quietly(
            REPO,
            NewPr {
                head_ref: format!("b{i}"),
                ..NewPr::default()
            },
        );
    }
    let open = github
        .open_pull_requests(inst, &repo(), 0)
        .await
        .expect("pulls");
    assert_eq!(open.len(), 250, "three pages of 100");
    assert_eq!(sim.calls().by_route["GET /repos/{owner}/{repo}/pulls"], 3);
    sim.reset_calls();

    let again = github
        .open_pull_requests(inst, &repo(), 0)
        .await
        .expect("pulls");
    assert_eq!(again.len(), 250, "the same typed answer from the cache");
    let calls = sim.calls();
    assert_eq!(
        (calls.total, calls.not_modified),
        (0, 3),
        "three 304s, none counted"
    );
    assert_eq!(github.not_modified(), 3);

    sim.add_pr_quietly(REPO, NewPr::default());
    let changed = github
        .open_pull_requests(inst, &repo(), 0)
        .await
        .expect("pulls");
    assert_eq!(changed.len(), 251, "a change is seen at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_github_applied_but_failed_are_found_not_repeated() {
    let (sim, inst, github) = world().await;
    let pr = sim.add_pr_quietly(REPO, NewPr::default());
    for route in [
        "POST /repos/{owner}/{repo}/check-runs",
        "POST /repos/{owner}/{repo}/issues/{id}/comments",
        "POST /repos/{owner}/{repo}/deployments",
        "POST /repos/{owner}/{repo}/deployments/{id}/statuses",
    ] {
        sim.inject(Fault::on(route, FaultKind::FailAfterApply(502), 1));
    }
    let run = github
        .create_check_run(inst, &repo(), &report(&pr.head_sha, "7"))
        .await
        .expect("check run");
    let runs = sim.check_runs(REPO, &pr.head_sha);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].id, run);

    let body = format!("{MARKER}\nhello");
    let comment = github
        .create_comment(inst, &repo(), pr.number, &body, MARKER)
        .await
        .expect("comment");
    let comments = sim.comments(REPO, pr.number);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].id, comment);

    let deployment = github
        .create_deployment(inst, &repo(), &pr.head_sha, "preview/pr-1", "Preview", "7")
        .await
        .expect("deployment");
    let deployments = sim.deployments(REPO);
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0].id, deployment);

    let status = DeploymentStatus {
        state: DeploymentState::InProgress,
        environment_url: None,
        log_url: None,
        description: "Deploying",
    };
    github
        .create_deployment_status(inst, &repo(), deployment, &status)
        .await
        .expect("status");
    let statuses = sim.deployment_statuses(deployment);
    assert_eq!(statuses.len(), 1, "{statuses:?}");

    // Without any fault, another attempt's deployment of the same commit is its own.
    let second = github
        .create_deployment(inst, &repo(), &pr.head_sha, "preview/pr-1", "Preview", "8")
        .await
        .expect("deployment");
    assert_ne!(second, deployment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_answered_after_the_write_timeout_are_found_not_repeated() {
    let (sim, inst, github) = world().await;
    let pr = sim.add_pr_quietly(REPO, NewPr::default());
    let slow = FaultKind::SlowAfterApply(Duration::from_secs(30));
    sim.inject(Fault::on(
        "POST /repos/{owner}/{repo}/check-runs",
        slow.clone(),
        1,
    ));
    sim.inject(Fault::on(
        "POST /repos/{owner}/{repo}/issues/{id}/comments",
        slow,
        1,
    ));
    let body = format!("{MARKER}\nhello");
    let (name, run_report) = (repo(), report(&pr.head_sha, "9"));
    let (run, comment) = tokio::join!(
        github.create_check_run(inst, &name, &run_report),
        github.create_comment(inst, &name, pr.number, &body, MARKER),
    );
    let (run, comment) = (run.expect("check run"), comment.expect("comment"));
    assert_eq!(
        sim.check_runs(REPO, &pr.head_sha)
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [run]
    );
    assert_eq!(
        sim.comments(REPO, pr.number)
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [comment]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_token_reaches_one_repository_with_contents_read_only() {
    let (sim, inst, github) = world().await;
    sim.add_repo(inst, "acme/api");
    sim.put_file(REPO, "main", "README.md", "web");
    sim.put_file("acme/api", "main", "README.md", "api");
    let token = github.clone_token(inst, &repo()).await.expect("token");
    assert!(format!("{token:?}").contains("REDACTED"), "never shown");
    let get = |path: String| {
        let token = token.token.expose_secret().to_owned();
        let url = format!("{}{path}", sim.url());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("/repos/acme/web/contents/README.md".into()).await, 200);
    assert_eq!(get("/repos/acme/api/contents/README.md".into()).await, 404);
    assert_eq!(
        get("/repos/acme/web/pulls".into()).await,
        403,
        "no pull_requests permission"
    );
    assert!(
        github
            .scoped_token(
                inst,
                &previewd::github::api::TokenScope {
                    repositories: vec!["web".into()],
                    permissions: vec![("contents".into(), "write".into())],
                    ..Default::default()
                },
            )
            .await
            .is_err(),
        "more than the installation holds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_with_a_custom_role_are_writers() {
    let (sim, inst, github) = world().await;
    sim.set_custom_role(REPO, "dana", "deployer", "write");
    sim.set_custom_role(REPO, "aude", "auditor", "read");
    sim.set_permission(REPO, "maya", "maintain");
    let name = repo();
    let permission = |who: &'static str| github.permission(inst, &name, who);
    assert!(permission("dana").await.expect("dana").can_write());
    assert!(!permission("aude").await.expect("aude").can_write());
    assert_eq!(
        permission("maya").await.expect("maya"),
        Permission::Maintain
    );
    assert_eq!(
        permission("nobody").await.expect("nobody"),
        Permission::None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_is_read_a_page_at_a_time() {
    let (sim, _, github) = world().await;
    // No webhook URL: every ping is logged as failed, nothing answered.
    for _ in 0..130 {
        sim.ping().await;
    }
    let first = github.hook_deliveries_page(None).await.expect("page");
    assert_eq!(first.deliveries.len(), 100);
    assert!(
        first.deliveries.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    assert!(first.deliveries.iter().all(|d| d.redelivery_may_help()));
    let second = github
        .hook_deliveries_page(first.next.as_deref())
        .await
        .expect("page");
    assert_eq!(second.deliveries.len(), 30);
    assert!(second.next.is_none());
    assert!(second.deliveries[0].id < first.deliveries[99].id);
}
