//! The GitHub edge in a pull request's life (issue 9): what GitHub shows stays single under a bad
//! GitHub day, one slow write does not stall other pull requests, older deployments are retired,
//! custom-role writers act as writers, the sweeper redelivers only what a redelivery can fix,
//! and healing costs nothing while nothing changes.

use std::time::Duration;

use previewd::previews::records;
use previewd_entity::PreviewStatus;
use previewd_tests::{
    db::Engine,
    github::{Fault, FaultKind, NewPr},
    healing::Rounds,
    scenario::{MAINTAINER, Options, REPO, Scenario, preview_of},
    wait,
};

const READY_IMAGE: &str = "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n";
const DEADLINE: Duration = Duration::from_secs(60);

/// Exactly one check run, one comment and one deployment for the pull request's one attempt,
/// the check run completed successfully and the deployment's statuses in order.
async fn shows_one_of_each(s: &Scenario, number: u64, sha: &str) {
    let preview = s.wait_status(number, PreviewStatus::Running).await;
    let url = preview.url.clone().expect("url");
    let run = s.completed_check_run(sha).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");
    let comments = s.wait_comment(number, &url).await;
    assert_eq!(comments.len(), 1, "one comment: {comments:?}");
    let runs = s.gh.check_runs(REPO, sha);
    assert_eq!(runs.len(), 1, "one check run, none stuck queued: {runs:?}");
    let deployments = s.gh.deployments(REPO);
    assert_eq!(deployments.len(), 1, "one deployment: {deployments:?}");
    let states: Vec<String> =
        s.gh.deployment_statuses(deployments[0].id)
            .into_iter()
            .map(|d| d.state)
            .collect();
    assert_eq!(states, ["success"]);
    // The comment's id is stored once its create (or the look-up after it) is answered.
    let db = s.db.clone();
    let row = wait::until("the comment's id in the database", DEADLINE, || {
        let db = db.clone();
        async move {
            preview_of(&db, number)
                .await
                .filter(|p| p.comment_id.is_some_and(|id| id > 0))
        }
    })
    .await
    .expect("stored");
    assert_eq!(row.comment_id, Some(comments[0].id));
    let attempt = records::attempt_by_id(&s.db, row.current_attempt_id.expect("current"))
        .await
        .expect("read")
        .expect("the attempt");
    assert_eq!(attempt.check_run_id, Some(runs[0].id));
    assert_eq!(row.github_deployment_id, Some(deployments[0].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_github_applied_but_answered_5xx_are_not_made_twice() -> anyhow::Result<()> {
    let mut s = Scenario::start(Options::new(Engine::Sqlite)).await?;
    for route in [
        "POST /repos/{owner}/{repo}/check-runs",
        "POST /repos/{owner}/{repo}/issues/{id}/comments",
        "POST /repos/{owner}/{repo}/deployments",
        "POST /repos/{owner}/{repo}/deployments/{id}/statuses",
    ] {
        s.gh.inject(Fault::on(route, FaultKind::FailAfterApply(502), 1));
    }
    let pr = s.open_pr_with_config("feature/flaky", READY_IMAGE).await;
    shows_one_of_each(&s, pr.number, &pr.head_sha).await;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answered_after_the_client_gave_up_are_not_made_twice() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    // Three writes answered only after the client's write time-out each: the deploy may take
    // longer than the scenario's usual 30 s.
    options.settings.push("--deploy-timeout=2m".into());
    let mut s = Scenario::start(options).await?;
    let slow = FaultKind::SlowAfterApply(Duration::from_secs(40));
    for route in [
        // The app's "queued" check run: the worker must wait for it, not make its own.
        "POST /repos/{owner}/{repo}/check-runs",
        "POST /repos/{owner}/{repo}/issues/{id}/comments",
        "POST /repos/{owner}/{repo}/deployments",
    ] {
        s.gh.inject(Fault::on(route, slow.clone(), 1));
    }
    let pr = s.open_pr_with_config("feature/slow", READY_IMAGE).await;
    shows_one_of_each(&s, pr.number, &pr.head_sha).await;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hung_write_does_not_stall_another_pull_requests_reporting() -> anyhow::Result<()> {
    let mut s = Scenario::start(Options::new(Engine::Sqlite)).await?;
    let first_comments = "/repos/acme/web/issues/1/comments";
    s.gh.inject(
        Fault::on(
            "POST /repos/{owner}/{repo}/issues/{id}/comments",
            FaultKind::SlowAfterApply(Duration::from_secs(60)),
            1,
        )
        .at_path(first_comments),
    );
    let first = s.open_pr_with_config("feature/hung", READY_IMAGE).await;
    assert_eq!(first.number, 1);
    // The first pull request's comment is with GitHub, unanswered.
    let gh = s.gh.clone();
    wait::until("the first comment's write to hang", DEADLINE, || {
        let gh = gh.clone();
        async move { (gh.comments(REPO, 1).len() == 1).then_some(()) }
    })
    .await?;

    // Another pull request is reported in full meanwhile: before the hung write's client gave
    // up (its give-up is followed by a look-up of the first pull request's comments).
    let second = s.open_pr_with_config("feature/other", READY_IMAGE).await;
    let preview = s.wait_status(second.number, PreviewStatus::Running).await;
    s.wait_comment(second.number, &preview.url.unwrap_or_default())
        .await;
    assert_eq!(
        s.gh.calls()
            .by_route
            .get("GET /repos/{owner}/{repo}/issues/{id}/comments")
            .copied()
            .unwrap_or(0),
        0,
        "the second pull request was reported while the first one's write still hung"
    );

    // And the hung write is found, not repeated.
    let db = s.db.clone();
    let row = wait::until("the hung comment to be found", DEADLINE, || {
        let db = db.clone();
        async move {
            preview_of(&db, 1)
                .await
                .filter(|p| p.comment_id.is_some_and(|id| id > 0))
        }
    })
    .await?;
    let comments = s.gh.comments(REPO, 1);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(row.comment_id, Some(comments[0].id));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_success_retires_older_deployments_and_removal_retires_all() -> anyhow::Result<()> {
    let mut s = Scenario::start(Options::new(Engine::Sqlite)).await?;
    let pr = s.open_pr_with_config("feature/retire", READY_IMAGE).await;
    s.wait_status(pr.number, PreviewStatus::Running).await;
    s.completed_check_run(&pr.head_sha).await;
    let next = s.sha();
    s.gh.push(REPO, pr.number, &next).await;
    let run = s.completed_check_run(&next).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"));
    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
    let deployments = s.gh.deployments(REPO);
    assert_eq!(deployments.len(), 2, "{deployments:?}");
    let (older, newer) = (deployments[0].id, deployments[1].id);
    let last_state = |id: i64| {
        s.gh.deployment_statuses(id)
            .last()
            .map(|d| d.state.clone())
            .unwrap_or_default()
    };

    // The worker reported the newer success and retired the older deployment.
    let ctx = records::last_attempt_context(&s.db, preview.id)
        .await?
        .expect("attempt");
    assert_eq!(ctx.attempt.github_deployment_id, Some(newer));
    wait::until("the older deployment to be retired", DEADLINE, || {
        let done = last_state(older) == "inactive";
        async move { done.then_some(()) }
    })
    .await?;
    assert_eq!(last_state(newer), "success");

    let rounds = Rounds::new(&s).await?;
    let reporter = &rounds.ctx.reporter;
    reporter.deployments_removed(preview.id).await?;
    assert_eq!(last_state(newer), "inactive", "all are retired on removal");
    let older_states: Vec<String> =
        s.gh.deployment_statuses(older)
            .into_iter()
            .map(|d| d.state)
            .collect();
    assert_eq!(older_states, ["success", "inactive"], "retired once");
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_with_a_custom_role_can_redeploy() -> anyhow::Result<()> {
    let mut s = Scenario::start(Options::new(Engine::Sqlite)).await?;
    let pr = s.open_pr_with_config("feature/roles", READY_IMAGE).await;
    s.wait_status(pr.number, PreviewStatus::Running).await;
    s.completed_check_run(&pr.head_sha).await;
    s.gh.set_custom_role(REPO, "dana", "deployer", "write");
    s.gh.comment(REPO, pr.number, "dana", "/preview redeploy")
        .await;
    let gh = s.gh.clone();
    let sha = pr.head_sha.clone();
    let runs = wait::until("a second, successful deploy", DEADLINE, || {
        let (gh, sha) = (gh.clone(), sha.clone());
        async move {
            let runs = gh.check_runs(REPO, &sha);
            (runs.len() == 2
                && runs
                    .iter()
                    .all(|r| r.conclusion.as_deref() == Some("success")))
            .then_some(runs)
        }
    })
    .await;
    let runs = runs.unwrap_or_else(|e| panic!("{e}; {:?}", s.gh.check_runs(REPO, &pr.head_sha)));
    assert_eq!(runs[1].title.as_deref(), runs[0].title.as_deref());
    s.stop().await
}

/// A webhook receiver on loopback that answers every delivery with 502 (a proxy in trouble).
async fn bad_gateway() -> String {
    let router = axum::Router::new().fallback(|| async { axum::http::StatusCode::BAD_GATEWAY });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/webhooks/github",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_redelivers_only_what_a_redelivery_can_fix() -> anyhow::Result<()> {
    let s = Scenario::start(Options::new(Engine::Sqlite)).await?;
    let app_hook = format!("{}/webhooks/github", s.app_url);
    s.gh.forge_next_deliveries(1);
    let forged = s.gh.ping().await;
    assert_eq!(forged.status_code, Some(401));
    let malformed = s.gh.send_raw("pull_request", b"{not json".to_vec()).await;
    assert_eq!(malformed.status_code, Some(400));
    s.gh.drop_next_deliveries(1);
    let dropped = s.gh.ping().await;
    assert_eq!(dropped.status_code, None);
    s.gh.set_webhook_url(&bad_gateway().await);
    let failed = s.gh.ping().await;
    assert_eq!(failed.status_code, Some(502));
    s.gh.set_webhook_url(&app_hook);
    assert_eq!(s.gh.ping().await.status_code, Some(200));

    let rounds = Rounds::new(&s).await?;
    let swept = previewd_worker::periodic::redeliver_failed(&rounds.ctx)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(swept, 2, "the dropped and the 502 one");
    let gh = s.gh.clone();
    let redelivered = wait::until("both redeliveries to arrive", DEADLINE, || {
        let gh = gh.clone();
        async move {
            let again: Vec<_> = gh
                .deliveries()
                .into_iter()
                .filter(|d| d.redelivery)
                .collect();
            (again.len() == 2).then_some(again)
        }
    })
    .await?;
    let mut guids: Vec<&str> = redelivered.iter().map(|d| d.guid.as_str()).collect();
    guids.sort_unstable();
    let mut expected = [dropped.guid.as_str(), failed.guid.as_str()];
    expected.sort_unstable();
    assert_eq!(guids, expected, "never the forged or malformed ones");
    assert!(redelivered.iter().all(|d| d.status_code == Some(200)));

    // The next round reads only what is new since: one page, nothing to do.
    s.gh.reset_calls();
    let swept = previewd_worker::periodic::redeliver_failed(&rounds.ctx)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(swept, 0);
    assert_eq!(s.gh.calls().by_route["GET /app/hook/deliveries"], 1);

    // Many failures: at most 50 a round, the rest the next round, each once; across pages.
    s.gh.drop_next_deliveries(130);
    for _ in 0..130 {
        s.gh.ping().await;
    }
    let mut asked = Vec::new();
    for _ in 0..4 {
        asked.push(
            previewd_worker::periodic::redeliver_failed(&rounds.ctx)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    assert_eq!(asked, [50, 50, 30, 0]);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reconcile_rounds_over_500_open_pull_requests_cost_no_counted_call()
-> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0; // the deploys the first round enqueues are not the point here
    let s = Scenario::start(options).await?;
    for i in 0..500 {
        s.gh.add_pr_quietly(
            REPO,
            NewPr {
                author: MAINTAINER.into(),
                head_ref: format!("feature/{i}"),
                ..NewPr::default()
            },
        );
    }
    let rounds = Rounds::new(&s).await?;
    let reconcile = || async {
        previewd_worker::periodic::reconcile(&rounds.ctx, &rounds.queues)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let first = reconcile().await?;
    assert_eq!(first.replayed, 500, "{first}");
    s.gh.reset_calls();
    for _ in 0..3 {
        let idle = reconcile().await?;
        assert_eq!(
            idle,
            previewd_worker::periodic::Summary::default(),
            "{idle}"
        );
    }
    let calls = s.gh.calls();
    assert_eq!(calls.total, 0, "idle rounds cost nothing: {calls:?}");
    assert!(
        calls.not_modified >= 3 * 7,
        "installations, repositories, 5 pages: {calls:?}"
    );
    assert!(calls.unimplemented.is_empty());
    s.stop().await
}
