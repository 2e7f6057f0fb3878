//! The life of a preview after it exists: pushes redeploy (newest commit wins), closing removes
//! it, reopening brings it back.

use std::time::Duration;

use apalis::prelude::Data;
use previewd::previews::{
    lifecycle::{self, Removal},
    report::COMMENT_MARKER,
};
use previewd_entity::{AttemptStatus, PreviewStatus, deploy_attempt};
use previewd_tests::{
    db::Engine,
    healing::Rounds,
    kube::KubeSimOptions,
    scenario::{self, Options, REPO, preview_of},
    wait,
};
use previewd_worker::cleanup;
use sea_orm::EntityTrait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quick_pushes_end_at_the_newest_commit() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    // Builds take a while, so the pushes land while the first one is still building.
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(2),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
    let pr = s.open_pr("feature/fast").await;
    s.wait_build_running().await?;
    let second = s.sha();
    let third = s.sha();
    s.gh.push(REPO, pr.number, &second).await;
    s.gh.push(REPO, pr.number, &third).await;

    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
    assert_eq!(preview.head_sha, third);
    let run = s.completed_check_run(&third).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"));
    let first_run = s.completed_check_run(&pr.head_sha).await;
    assert_eq!(
        first_run.conclusion.as_deref(),
        Some("cancelled"),
        "{first_run:?}"
    );
    let title = first_run.title.clone().unwrap_or_default();
    assert!(
        title.contains(&second[..7]) || title.contains(&third[..7]),
        "names the newer commit: {first_run:?}"
    );
    let deployments = s.gh.deployments(REPO);
    let deployment = deployments
        .iter()
        .find(|d| d.sha == pr.head_sha)
        .expect("the first commit's deployment");
    let states: Vec<String> =
        s.gh.deployment_statuses(deployment.id)
            .into_iter()
            .map(|d| d.state)
            .collect();
    assert_eq!(
        states.last().map(String::as_str),
        Some("inactive"),
        "the superseded deployment is closed: {states:?}"
    );
    let image = s.kube.list("deployments", Some(&preview.namespace))[0]["spec"]["template"]["spec"]
        ["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        image.ends_with(&third),
        "the cluster runs the newest commit: {image}"
    );
    let attempts = deploy_attempt::Entity::find().all(&s.db).await?;
    assert!(
        attempts
            .iter()
            .any(|a| a.sha == pr.head_sha && a.status == AttemptStatus::Superseded),
        "{attempts:?}"
    );
    // The comment is written last, after the check run: wait for it before counting.
    let comments = s.wait_comment(pr.number, "Preview ready").await;
    let ours = comments
        .iter()
        .filter(|c| c.body.contains(COMMENT_MARKER))
        .count();
    assert_eq!(ours, 1);
    Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_removes_the_preview_and_reopening_brings_it_back() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.kube = KubeSimOptions {
        namespace_deletion_delay: Duration::from_millis(300),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let pr = s
            .open_pr_with_config("feature/done", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        assert!(s.kube.get("namespaces", None, &preview.namespace).is_some());

        s.gh.close_pr(REPO, pr.number, false).await;
        let removed = s.wait_status(pr.number, PreviewStatus::Deleted).await;
        assert!(removed.deleted_at.is_some(), "the row stays as history");
        assert!(
            s.kube.get("namespaces", None, &preview.namespace).is_none(),
            "the namespace is gone"
        );
        let comments = s.wait_comment(pr.number, "Preview removed").await;
        assert!(
            comments
                .iter()
                .any(|c| c.body.contains("the pull request was closed")),
            "says why: {comments:?}"
        );
        let deployment = &s.gh.deployments(REPO)[0];
        let gh = s.gh.clone();
        let id = deployment.id;
        wait::until(
            "the deployment to be inactive",
            Duration::from_secs(30),
            || {
                let gh = gh.clone();
                async move {
                    gh.deployment_statuses(id)
                        .last()
                        .is_some_and(|d| d.state == "inactive")
                        .then_some(())
                }
            },
        )
        .await?;

        s.gh.reopen_pr(REPO, pr.number).await;
        let back = s.wait_status(pr.number, PreviewStatus::Running).await;
        assert_eq!(back.namespace, preview.namespace);
        assert!(s.kube.get("namespaces", None, &preview.namespace).is_some());
        let ours =
            s.gh.comments(REPO, pr.number)
                .into_iter()
                .filter(|c| c.body.contains(COMMENT_MARKER))
                .count();
        assert_eq!(ours, 1, "still one sticky comment");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_and_buttons_redeploy_or_destroy_for_writers_only() -> anyhow::Result<()> {
    use previewd_tests::scenario::{MAINTAINER, OUTSIDER};
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s
            .open_pr_with_config("feature/buttons", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        s.wait_status(pr.number, PreviewStatus::Running).await;
        let first = s.completed_check_run(&pr.head_sha).await;
        let buttons: Vec<&str> = first
            .actions
            .iter()
            .map(|a| a.identifier.as_str())
            .collect();
        assert_eq!(buttons, ["redeploy", "destroy", "extend"], "{first:?}");

        // GitHub's "Re-run": a new check run on the same commit, deployed again.
        s.gh.rerequest_check_run(REPO, first.id, MAINTAINER).await;
        let gh = s.gh.clone();
        let sha = pr.head_sha.clone();
        let completed_runs = |n: usize| {
            let (gh, sha) = (gh.clone(), sha.clone());
            move || {
                let (gh, sha) = (gh.clone(), sha.clone());
                async move {
                    let runs = gh.check_runs(REPO, &sha);
                    (runs.len() == n && runs.iter().all(|r| r.status == "completed"))
                        .then_some(runs)
                }
            }
        };
        let runs = wait::until(
            "a second check run",
            Duration::from_secs(30),
            completed_runs(2),
        )
        .await?;
        assert_eq!(runs[1].conclusion.as_deref(), Some("success"));

        // "Re-run all checks" on the suite does the same.
        s.gh.rerequest_check_suite(REPO, &pr.head_sha, MAINTAINER)
            .await;
        wait::until(
            "a third check run",
            Duration::from_secs(30),
            completed_runs(3),
        )
        .await?;

        // Redeploy pressed by someone without write permission: explained, nothing deployed.
        let latest =
            s.gh.check_runs(REPO, &pr.head_sha)
                .last()
                .cloned()
                .expect("a run");
        s.gh.request_action(REPO, latest.id, "redeploy", OUTSIDER)
            .await;
        let id = latest.id;
        assert_eq!(s.wait_refusal(pr.number, OUTSIDER, "redeploy").await, 1);
        // Pressed again: not answered twice, and the check run is left as it was.
        s.gh.request_action(REPO, latest.id, "redeploy", OUTSIDER)
            .await;
        s.gh.comment(REPO, pr.number, OUTSIDER, "/preview redeploy")
            .await;
        let before = s.gh.check_run(id).and_then(|r| r.title);
        assert_eq!(
            s.gh.check_runs(REPO, &pr.head_sha).len(),
            3,
            "no new deploy"
        );
        assert_eq!(
            s.gh.check_run(id).and_then(|r| r.conclusion).as_deref(),
            Some("success"),
            "the conclusion stays"
        );
        assert_eq!(
            s.gh.check_run(id).and_then(|r| r.title),
            before,
            "not retitled"
        );

        // Redeploy by a maintainer: a fourth run.
        s.gh.request_action(REPO, latest.id, "redeploy", MAINTAINER)
            .await;
        wait::until(
            "a fourth check run",
            Duration::from_secs(30),
            completed_runs(4),
        )
        .await?;

        // Destroy: refused for an outsider's comment, done for a maintainer's button.
        s.gh.comment(REPO, pr.number, OUTSIDER, "/preview destroy")
            .await;
        let latest =
            s.gh.check_runs(REPO, &pr.head_sha)
                .last()
                .cloned()
                .expect("a run");
        assert_eq!(s.wait_refusal(pr.number, OUTSIDER, "destroy").await, 1);
        assert_eq!(
            preview_of(&s.db, pr.number).await.map(|p| p.status),
            Some(PreviewStatus::Running)
        );
        s.gh.request_action(REPO, latest.id, "destroy", MAINTAINER)
            .await;
        let gone = s.wait_status(pr.number, PreviewStatus::Deleted).await;
        assert!(s.kube.get("namespaces", None, &gone.namespace).is_none());
        s.wait_comment(pr.number, "@maya asked for it").await;
        Ok(())
    })
    .await
}

/// apalis-redis re-schedules failed jobs up to 25 times on its own; previewd's limits hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_tried_exactly_three_times() -> anyhow::Result<()> {
    use previewd_tests::kube::Fault;
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.kube.inject(
            Fault::status(503)
                .verb("apply")
                .resource("namespaces")
                .times(1000),
        );
        let pr = s
            .open_pr_with_config("feature/outage", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Failed).await;
        assert!(
            preview
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("3 tries"),
            "{preview:?}"
        );
        let run = s.completed_check_run(&pr.head_sha).await;
        assert!(
            run.title
                .as_deref()
                .unwrap_or_default()
                .contains("infrastructure"),
            "{run:?}"
        );
        assert_eq!(
            s.kube.requests().count("apply", "namespaces"),
            3,
            "exactly three tries"
        );
        // Nothing is left to run again: the job ended, and no other attempt appears.
        let attempts = deploy_attempt::Entity::find().all(&s.db).await?;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status, AttemptStatus::Failed);
        assert!(
            s.deploy_queue_is_idle().await?,
            "no retry is scheduled by the queue"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_that_keeps_failing_stops_after_five_tries_and_alerts() -> anyhow::Result<()> {
    use previewd_tests::kube::Fault;
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s
            .open_pr_with_config("feature/stuck", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        s.wait_status(pr.number, PreviewStatus::Running).await;
        s.kube.inject(
            Fault::status(500)
                .verb("delete")
                .resource("namespaces")
                .times(1000),
        );
        s.gh.close_pr(REPO, pr.number, false).await;
        let db = s.db.clone();
        let flagged = wait::until(
            "the failed cleanup to be flagged",
            Duration::from_secs(60),
            || {
                let db = db.clone();
                async move {
                    preview_of(&db, pr.number)
                        .await
                        .filter(|p| p.cleanup_failed)
                }
            },
        )
        .await?;
        assert_eq!(
            flagged.status,
            PreviewStatus::Deleting,
            "not claimed to be deleted"
        );
        assert_eq!(
            s.kube.requests().count("delete", "namespaces"),
            5,
            "exactly five tries"
        );
        s.wait_comment(pr.number, "could not be removed").await;
        let metrics = reqwest::get(format!("{}/metrics", s.app_url))
            .await?
            .text()
            .await?;
        assert!(
            metrics.contains("previewd_cleanup_failures_total 1"),
            "{metrics}"
        );
        assert!(
            metrics
                .contains("previewd_webhooks_total{event=\"pull_request\",result=\"accepted\"} 2"),
            "{metrics}"
        );
        let answered: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("previewd_webhook_answer_seconds_count "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        assert!(answered >= 2, "both deliveries' answer times: {metrics}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalling_removes_every_preview() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let one = s
            .open_pr_with_config("feature/one", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        let two = s
            .open_pr_with_config("feature/two", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        s.wait_status(one.number, PreviewStatus::Running).await;
        s.wait_status(two.number, PreviewStatus::Running).await;
        let delivery =
            s.gh.installation_repositories_event(s.installation, &[], &[REPO])
                .await;
        assert_eq!(delivery.status_code, Some(202));
        for number in [one.number, two.number] {
            let gone = s.wait_status(number, PreviewStatus::Deleted).await;
            assert!(s.kube.get("namespaces", None, &gone.namespace).is_none());
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_heals_missed_webhooks_both_ways() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options
        .settings
        .extend(["--reconcile-interval=1s".into(), "--orphan-grace=0s".into()]);
    scenario::run(options, async |s| {
    s.gh.put_file(
        REPO,
        "main",
        ".github/preview.yml",
        "image: ghcr.io/acme/web:{sha}\n",
    );

    // An opened pull request whose webhook never arrived gets its preview.
    s.gh.drop_next_deliveries(1);
    let sha = s.sha();
    let (pr, delivery) =
        s.gh.open_pr(
            REPO,
            previewd_tests::github::NewPr {
                author: scenario::MAINTAINER.into(),
                head_ref: "feature/missed".into(),
                head_sha: sha,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(delivery.status_code, None, "dropped");
    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;

    // A close that never arrived: the preview is removed.
    s.gh.drop_next_deliveries(1);
    s.gh.close_pr(REPO, pr.number, false).await;
    s.wait_status(pr.number, PreviewStatus::Deleted).await;
    assert!(s.kube.get("namespaces", None, &preview.namespace).is_none());

    // A namespace this install labelled, with no row behind it, is deleted; one of another
    // previewd install, or labelled previewd's without an install, is never touched.
    let install = s.install_id().await?;
    let client = s.kube.client().await?;
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client);
    for (name, labels) in [
        ("acme-web-pr-999", serde_json::json!({ "app.kubernetes.io/managed-by": "previewd", "previewd.dev/install": install })),
        ("acme-web-pr-998", serde_json::json!({ "app.kubernetes.io/managed-by": "previewd", "previewd.dev/install": "another-install" })),
        ("acme-web-pr-997", serde_json::json!({ "app.kubernetes.io/managed-by": "previewd" })),
    ] {
        let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": labels }
        }))?;
        namespaces.create(&Default::default(), &ns).await?;
    }
    let kube = s.kube.clone();
    wait::until(
        "the orphan namespace to go",
        Duration::from_secs(30),
        || {
            let kube = kube.clone();
            async move {
                kube.get("namespaces", None, "acme-web-pr-999")
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await?;
    for foreign in ["acme-web-pr-998", "acme-web-pr-997"] {
        assert!(s.kube.get("namespaces", None, foreign).is_some(), "{foreign} is not ours");
    }
    Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_redelivers_failed_webhooks() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.settings.push("--redelivery-interval=1s".into());
    scenario::run(options, async |s| {
        s.gh.drop_next_deliveries(1);
        let pr = s
            .open_pr_with_config_unchecked("feature/redeliver", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        s.wait_status(pr.number, PreviewStatus::Running).await;
        let redelivered: Vec<_> =
            s.gh.deliveries()
                .into_iter()
                .filter(|d| d.redelivery)
                .collect();
        assert_eq!(redelivered.len(), 1, "one redelivery: {redelivered:?}");
        assert_eq!(redelivered[0].status_code, Some(202));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_previews_are_warned_then_removed_unless_kept() -> anyhow::Result<()> {
    use previewd_tests::{github::NewPr, scenario::MAINTAINER};
    let mut options = Options::new(Engine::Sqlite);
    options.settings.push("--expiry-interval=1s".into());
    scenario::run(options, async |s| {
        let config = "image: ghcr.io/acme/web:{sha}\nttl: 8s\n";
        let idle = s.open_pr_with_config("feature/idle", config).await;
        s.gh.put_file(REPO, "feature/kept", ".github/preview.yml", config);
        let sha = s.sha();
        let (kept, _) =
            s.gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: "feature/kept".into(),
                    head_sha: sha,
                    labels: vec!["preview:keep".into()],
                    ..NewPr::default()
                },
            )
            .await;
        s.wait_status(idle.number, PreviewStatus::Running).await;
        s.wait_status(kept.number, PreviewStatus::Running).await;

        s.wait_comment(idle.number, "expires soon").await;
        let gone = s.wait_status(idle.number, PreviewStatus::Deleted).await;
        assert!(s.kube.get("namespaces", None, &gone.namespace).is_none());
        s.wait_comment(idle.number, "idle until").await;
        let still = preview_of(&s.db, kept.number).await.expect("kept preview");
        assert_eq!(
            still.status,
            PreviewStatus::Running,
            "preview:keep holds it"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_during_a_deploy_stops_it_and_removes_everything() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(3),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let pr = s.open_pr("feature/abandoned").await;
        s.wait_build_running().await?;
        s.gh.close_pr(REPO, pr.number, false).await;
        let gone = s.wait_status(pr.number, PreviewStatus::Deleted).await;
        assert!(
            s.kube.get("namespaces", None, &gone.namespace).is_none(),
            "the half-made preview leaves nothing behind"
        );
        let attempts = deploy_attempt::Entity::find().all(&s.db).await?;
        assert_eq!(attempts[0].status, AttemptStatus::Cancelled, "{attempts:?}");
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_keeps_a_preview_past_its_ttl_for_writers_only() -> anyhow::Result<()> {
    use previewd_tests::scenario::{MAINTAINER, OUTSIDER};
    let mut options = Options::new(Engine::Sqlite);
    options
        .settings
        .extend(["--expiry-interval=1s".into(), "--preview-ttl=1h".into()]);
    scenario::run(options, async |s| {
        let pr = s
            .open_pr_with_config("feature/extend", "image: ghcr.io/acme/web:{sha}\nttl: 6s\n")
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let expires = preview.expires_at.expect("an expiry");
        let run = s.completed_check_run(&pr.head_sha).await;

        s.gh.request_action(REPO, run.id, "extend", OUTSIDER).await;
        assert_eq!(s.wait_refusal(pr.number, OUTSIDER, "extend").await, 1);

        s.gh.request_action(REPO, run.id, "extend", MAINTAINER)
            .await;
        s.wait_comment(pr.number, "@maya extended this preview")
            .await;
        let extended = preview_of(&s.db, pr.number).await.expect("preview");
        assert!(
            extended.expires_at.expect("expiry") >= expires + chrono::Duration::minutes(59),
            "{extended:?}"
        );
        // Past the repository's 6 s TTL, it still runs.
        let deadline = expires + chrono::Duration::seconds(2);
        wait::until(
            "the original expiry to pass",
            Duration::from_secs(30),
            || async move { (chrono::Utc::now() > deadline).then_some(()) },
        )
        .await?;
        assert_eq!(
            preview_of(&s.db, pr.number).await.map(|p| p.status),
            Some(PreviewStatus::Running)
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_installation_removes_its_previews() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s
            .open_pr_with_config("feature/uninstall", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let delivery = s.gh.installation_event(s.installation, "deleted").await;
        assert_eq!(delivery.status_code, Some(202));
        s.wait_status(pr.number, PreviewStatus::Deleted).await;
        assert!(s.kube.get("namespaces", None, &preview.namespace).is_none());
        Ok(())
    })
    .await
}

/// The app pushes a group's jobs to Redis before the group commits, so a worker can take a
/// removal's cleanup job while the preview it reads is still a generation short of the job's.
/// The job waits for its removal to commit instead of calling itself out of date (which left
/// the namespace to the reconciler's stuck-removal round, minutes later).
async fn a_cleanup_taken_before_its_removal_commits_still_removes(
    engine: Engine,
) -> anyhow::Result<()> {
    scenario::run(Options::new(engine), async |s| {
        let pr = s
            .open_pr_with_config("feature/early", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let rounds = Rounds::new(s).await?;

        let txn = lifecycle::begin_transaction(&s.db).await?;
        let outcome = lifecycle::request_removal(&txn, &preview, &Removal::Closed).await?;
        let [job] = outcome.work.cleanups.as_slice() else {
            anyhow::bail!("one cleanup job: {outcome:?}");
        };
        assert_eq!(job.generation, Some(preview.generation + 1));
        let mut handled = tokio::spawn(cleanup::cleanup_job(
            job.clone(),
            Data::new(rounds.ctx.clone()),
        ));
        // While the removal is not committed the job must not end: it would have ended as out
        // of date at its first read.
        let early = tokio::time::timeout(Duration::from_millis(500), &mut handled).await;
        assert!(early.is_err(), "the job ended before its removal committed");
        txn.commit().await?;

        tokio::time::timeout(Duration::from_secs(60), handled)
            .await??
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let removed = preview_of(&s.db, pr.number)
            .await
            .ok_or_else(|| anyhow::anyhow!("the preview row stays"))?;
        assert_eq!(removed.status, PreviewStatus::Deleted, "{removed:?}");
        assert!(
            s.kube.get("namespaces", None, &preview.namespace).is_none(),
            "the namespace is gone"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_cleanup_taken_before_its_removal_commits_still_removes() -> anyhow::Result<()> {
    a_cleanup_taken_before_its_removal_commits_still_removes(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cleanup_taken_before_its_removal_commits_still_removes() -> anyhow::Result<()> {
    a_cleanup_taken_before_its_removal_commits_still_removes(Engine::Postgres).await
}
