//! A preview's life under the rules a real install lives by: a cluster that enforces quotas the
//! way Kubernetes does, the reconciler and expiry running all along, people pressing buttons
//! while jobs run, events arriving together, repositories renamed or created again. Each test
//! is one story, and each failed on the design before the lifecycle had one owner.

use std::time::Duration;

use previewd_entity::{AttemptStatus, PreviewStatus, deploy_attempt, webhook_delivery};
use previewd_tests::{
    db::Engine,
    github::NewPr,
    kube::{Behaviour, Fault, KubeSimOptions},
    scenario::{self, MAINTAINER, Options, REPO, Scenario, preview_of},
    wait,
};
use sea_orm::{ConnectionTrait as _, EntityTrait, PaginatorTrait};

const READY_IMAGE: &str = "image: ghcr.io/acme/web:{sha}\n";

/// Waits until pull request `number` runs commit `sha` (the preview says so and the cluster
/// runs an image of that commit).
async fn running_at(s: &Scenario, number: u64, sha: &str) {
    let (db, kube, sha) = (s.db.clone(), s.kube.clone(), sha.to_owned());
    let found = wait::until(
        &format!("#{number} running {}", &sha[..7]),
        scenario::DEADLINE,
        || {
            let (db, kube, sha) = (db.clone(), kube.clone(), sha.clone());
            async move {
                let p = preview_of(&db, number).await?;
                if p.status != PreviewStatus::Running || p.head_sha != sha {
                    return None;
                }
                let deployments = kube.list("deployments", Some(&p.namespace));
                let image =
                    deployments.first()?["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()?
                        .to_owned();
                image.ends_with(&sha).then_some(())
            }
        },
    )
    .await;
    if let Err(e) = found {
        panic!("{e}; preview: {:?}", preview_of(&s.db, number).await);
    }
}

/// Waits until the reconciler has run `rounds` more rounds (each lists the open pull requests,
/// answered in full or `304 Not Modified`).
async fn reconcile_rounds(s: &Scenario, rounds: u64) {
    const ROUTE: &str = "GET /repos/{owner}/{repo}/pulls";
    let count = |gh: &previewd_tests::github::GitHubSim| {
        let calls = gh.calls();
        calls.by_route.get(ROUTE).copied().unwrap_or(0)
            + calls.not_modified_by_route.get(ROUTE).copied().unwrap_or(0)
    };
    let target = count(&s.gh) + rounds;
    let gh = s.gh.clone();
    wait::until(
        &format!("{rounds} reconcile rounds"),
        scenario::DEADLINE,
        || {
            let gh = gh.clone();
            async move { (count(&gh) >= target).then_some(()) }
        },
    )
    .await
    .expect("the reconciler runs");
}

async fn attempts_of(s: &Scenario) -> Vec<deploy_attempt::Model> {
    deploy_attempt::Entity::find()
        .all(&s.db)
        .await
        .expect("attempts")
}

/// B.1: with the default config (built in the cluster) and the cluster enforcing the
/// namespace's quota for the build Job as Kubernetes does, every push builds and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_and_third_push_build_and_run() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s.open_pr("feature/pushes").await;
        running_at(s, pr.number, &pr.head_sha).await;
        for _ in 0..2 {
            let next = s.sha();
            s.gh.push(REPO, pr.number, &next).await;
            running_at(s, pr.number, &next).await;
            assert_eq!(
                s.completed_check_run(&next).await.conclusion.as_deref(),
                Some("success")
            );
        }
        // Three builds, each in a namespace of its own, none in the preview's namespace.
        let preview = preview_of(&s.db, pr.number).await.expect("preview");
        let builds: Vec<String> = s
            .kube
            .ever("namespaces", None)
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            .filter(|n| n.starts_with(&format!("{}--b", preview.namespace)))
            .collect();
        assert_eq!(builds.len(), 3, "{builds:?}");
        assert!(s.kube.ever("jobs", Some(&preview.namespace)).is_empty());
        Ok(())
    })
    .await
}

/// B.2: destroyed by a button, a command or expiry, a preview stays destroyed while the
/// reconciler runs — until someone asks for it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_preview_stays_destroyed_until_asked_for_again() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.settings.push("--preview-ttl=3s".into());
    scenario::run(options, async |s| {
        // The Destroy button (held with preview:keep, so expiry does not get there first).
        let button = open_kept(s, "feature/button").await;
        s.wait_status(button.number, PreviewStatus::Running).await;
        let run = s.completed_check_run(&button.head_sha).await;
        s.gh.request_action(REPO, run.id, "destroy", MAINTAINER)
            .await;
        s.wait_status(button.number, PreviewStatus::Deleted).await;

        // The command.
        let command = open_kept(s, "feature/command").await;
        s.wait_status(command.number, PreviewStatus::Running).await;
        s.gh.comment(REPO, command.number, MAINTAINER, "/preview destroy")
            .await;
        s.wait_status(command.number, PreviewStatus::Deleted).await;

        // Expiry (a 3 s TTL, not held).
        let idle = s.open_pr_with_config("feature/idle", READY_IMAGE).await;
        s.wait_status(idle.number, PreviewStatus::Deleted).await;

        let before = attempts_of(s).await.len();
        reconcile_rounds(s, 3).await;
        for number in [button.number, command.number, idle.number] {
            assert_eq!(
                preview_of(&s.db, number).await.map(|p| p.status),
                Some(PreviewStatus::Deleted),
                "#{number} stays removed"
            );
        }
        assert_eq!(
            attempts_of(s).await.len(),
            before,
            "no deploy was asked for"
        );

        // A new push brings one back; Re-run another; the third stays gone.
        let next = s.sha();
        s.gh.push(REPO, button.number, &next).await;
        s.wait_status(button.number, PreviewStatus::Running).await;
        s.gh.rerequest_check_run(
            REPO,
            s.completed_check_run(&command.head_sha).await.id,
            MAINTAINER,
        )
        .await;
        s.wait_status(command.number, PreviewStatus::Running).await;
        assert_eq!(
            preview_of(&s.db, idle.number).await.map(|p| p.status),
            Some(PreviewStatus::Deleted)
        );
        Ok(())
    })
    .await
}

/// A maintainer's pull request with a ready-made image, labelled `preview:keep` from the start.
async fn open_kept(s: &mut Scenario, branch: &str) -> previewd_tests::github::Pr {
    s.gh.put_file(REPO, branch, ".github/preview.yml", READY_IMAGE);
    let sha = s.sha();
    let (pr, delivery) =
        s.gh.open_pr(
            REPO,
            NewPr {
                author: MAINTAINER.into(),
                head_ref: branch.into(),
                head_sha: sha,
                labels: vec!["preview:keep".into()],
                ..NewPr::default()
            },
        )
        .await;
    assert!(
        delivery.status_code.is_some_and(|c| c < 300),
        "{delivery:?}"
    );
    pr
}

/// B.3: closed and reopened at once, while cleanup is still deleting the namespace: running.
/// Reopened and closed at once: nothing. No manual healing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_reopen_at_once_end_as_the_last_one_says() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.kube = KubeSimOptions {
        namespace_deletion_delay: Duration::from_secs(2),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let pr = s.open_pr_with_config("feature/flip", READY_IMAGE).await;
        let first = s.wait_status(pr.number, PreviewStatus::Running).await;
        s.gh.close_pr(REPO, pr.number, false).await;
        s.wait_status(pr.number, PreviewStatus::Deleting).await;
        s.gh.reopen_pr(REPO, pr.number).await;
        let back = s.wait_status(pr.number, PreviewStatus::Running).await;
        assert!(back.generation > first.generation, "a new life: {back:?}");
        assert!(s.kube.get("namespaces", None, &back.namespace).is_some());
        reconcile_rounds(s, 2).await;
        assert_eq!(
            preview_of(&s.db, pr.number).await.map(|p| p.status),
            Some(PreviewStatus::Running),
            "and it stays"
        );

        // Reopened, then closed at once: ends with nothing.
        s.gh.close_pr(REPO, pr.number, false).await;
        s.wait_status(pr.number, PreviewStatus::Deleted).await;
        s.gh.reopen_pr(REPO, pr.number).await;
        s.gh.close_pr(REPO, pr.number, false).await;
        let gone = s.wait_status(pr.number, PreviewStatus::Deleted).await;
        let kube = s.kube.clone();
        let namespace = gone.namespace.clone();
        wait::until("the namespace to be gone", scenario::DEADLINE, || {
            let (kube, namespace) = (kube.clone(), namespace.clone());
            async move {
                kube.get("namespaces", None, &namespace)
                    .is_none()
                    .then_some(())
            }
        })
        .await?;
        reconcile_rounds(s, 2).await;
        assert_eq!(
            preview_of(&s.db, pr.number).await.map(|p| p.status),
            Some(PreviewStatus::Deleted)
        );
        Ok(())
    })
    .await
}

/// B.4: a force-push back to an earlier commit deploys that commit: it is the head again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_push_back_deploys_the_earlier_commit() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s.open_pr_with_config("feature/back", READY_IMAGE).await;
        running_at(s, pr.number, &pr.head_sha).await;
        let second = s.sha();
        s.gh.push(REPO, pr.number, &second).await;
        running_at(s, pr.number, &second).await;
        s.gh.push(REPO, pr.number, &pr.head_sha).await;
        running_at(s, pr.number, &pr.head_sha).await;
        let runs = s.gh.check_runs(REPO, &pr.head_sha);
        assert_eq!(runs.len(), 2, "a new check run on the old commit: {runs:?}");
        Ok(())
    })
    .await
}

/// B.5: Re-run after a failed build builds again (a fresh build, not the failed Job found
/// again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_a_failed_build_rebuilds() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.kube.set_behaviour_for_image(
            "buildkit",
            Behaviour::JobFails {
                logs: vec!["ERROR: failed to solve: process did not complete".into()],
            },
        );
        let pr = s.open_pr("feature/flaky-build").await;
        let failed = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(failed.conclusion.as_deref(), Some("failure"), "{failed:?}");
        s.kube
            .set_behaviour_for_image("buildkit", Behaviour::Succeed);
        s.gh.rerequest_check_run(REPO, failed.id, MAINTAINER).await;
        running_at(s, pr.number, &pr.head_sha).await;
        let jobs = s
            .kube
            .ever("jobs", None)
            .into_iter()
            .filter(|j| {
                j["metadata"]["namespace"]
                    .as_str()
                    .is_some_and(|n| n.contains("--b"))
            })
            .count();
        assert_eq!(jobs, 2, "two builds");
        Ok(())
    })
    .await
}

/// The repository chart of B.6: `replicas` Deployments pods of the whole default budget's half.
fn chart_with_replicas(s: &Scenario, branch: &str, replicas: u32) {
    s.gh.put_file(
        REPO,
        branch,
        ".github/preview.yml",
        "image: ghcr.io/acme/web:{sha}\nchart: deploy/chart\n",
    );
    s.gh.put_file(
        REPO,
        branch,
        "deploy/chart/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    s.gh.put_file(
        REPO,
        branch,
        "deploy/chart/templates/deployment.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  strategy:\n    type: Recreate\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: \"{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}\"\n"
        ),
    );
}

/// B.6: a quota refusal of an earlier attempt does not fail a later one as "quota exceeded":
/// failures are read from the current attempt's objects only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_attempts_quota_events_do_not_fail_a_later_one() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.settings.push("--deploy-timeout=8s".into());
    scenario::run(options, async |s| {
        // Three pods of half the budget each: the third is refused by the quota.
        chart_with_replicas(s, "feature/quota", 3);
        let pr = s.open_pr("feature/quota").await;
        let failed = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(failed.conclusion.as_deref(), Some("failure"));
        assert!(
            failed
                .title
                .as_deref()
                .unwrap_or_default()
                .contains("quota"),
            "{failed:?}"
        );
        // The fix: one pod. The old ReplicaSet's FailedCreate events are still in the namespace.
        chart_with_replicas(s, "feature/quota", 1);
        let next = s.sha();
        s.gh.push(REPO, pr.number, &next).await;
        let run = s.completed_check_run(&next).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");
        let preview = preview_of(&s.db, pr.number).await.expect("preview");
        let events = s.kube.list("events", Some(&preview.namespace));
        assert!(
            events.iter().any(|e| e["reason"] == "FailedCreate"),
            "the old refusal is still there to be misread"
        );
        Ok(())
    })
    .await
}

/// B.7: `opened` + `labeled`, and `synchronize` + `labeled`, delivered at the same instant:
/// both answered 2xx (no unique-constraint 503), one deploy each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_simultaneous_deliveries_are_both_accepted_and_deploy_once() -> anyhow::Result<()> {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        scenario::run(Options::new(engine), async |s| {
            for i in 0..3 {
                let branch = format!("feature/twin-{i}");
                s.gh.put_file(REPO, &branch, ".github/preview.yml", READY_IMAGE);
                let sha = s.sha();
                let (pr, opened, labeled) =
                    s.gh.open_pr_labelled_at_once(
                        REPO,
                        NewPr {
                            author: MAINTAINER.into(),
                            head_ref: branch,
                            head_sha: sha,
                            ..NewPr::default()
                        },
                        "bug",
                        MAINTAINER,
                    )
                    .await;
                for d in [&opened, &labeled] {
                    assert!(d.status_code.is_some_and(|c| c < 300), "{engine:?}: {d:?}");
                }
                running_at(s, pr.number, &pr.head_sha).await;
                let next = s.sha();
                let (pushed, labeled) =
                    s.gh.push_and_label_at_once(REPO, pr.number, &next, "ready", MAINTAINER)
                        .await;
                for d in [&pushed, &labeled] {
                    assert!(d.status_code.is_some_and(|c| c < 300), "{engine:?}: {d:?}");
                }
                running_at(s, pr.number, &next).await;
                let preview = preview_of(&s.db, pr.number).await.expect("preview");
                let attempts: Vec<_> = attempts_of(s)
                    .await
                    .into_iter()
                    .filter(|a| a.preview_id == preview.id)
                    .collect();
                assert_eq!(
                    attempts.len(),
                    2,
                    "{engine:?}: one deploy per commit: {attempts:?}"
                );
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// B.8: a preview busy with another job counts as an infrastructure error of each try: three
/// tries, then reported — never an error apalis re-schedules on its own. And each try has the
/// whole deploy timeout to itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_preview_is_tried_exactly_three_times_and_reported() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options
        .settings
        .extend(["--deploy-timeout=1s".into(), "--cleanup-timeout=1s".into()]);
    scenario::run(options, async |s| {
        // Someone else holds preview 1's lock (a stuck job elsewhere), renewing it for a minute.
        let client = redis::Client::open(previewd_tests::redis_url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let key = format!("{}:lock:preview:1", s.redis_prefix);
        redis::cmd("SET")
            .arg(&key)
            .arg("someone-else")
            .arg("PX")
            .arg(60_000)
            .query_async::<()>(&mut conn)
            .await?;
        let pr = s.open_pr_with_config("feature/busy", READY_IMAGE).await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        let attempt = attempts_of(s).await.pop().expect("attempt");
        let error = attempt.error.clone().unwrap_or_default();
        assert!(
            error.contains("Gave up after 3 tries") && error.contains("busy"),
            "{attempt:?}"
        );
        assert_eq!(attempt.status, AttemptStatus::Failed);
        // Nothing left for the queue to run again.
        wait::until(
            "the deploy queue to be idle",
            scenario::DEADLINE,
            || async { s.deploy_queue_is_idle().await.ok()?.then_some(()) },
        )
        .await?;
        redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_try_has_the_whole_deploy_timeout() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.settings.push("--deploy-timeout=6s".into());
    options.kube = KubeSimOptions {
        deployment_ready_delay: Duration::from_secs(3),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        // The first try spends 4 s on a slow API server, then fails on a 503.
        s.kube.inject(
            Fault::slow(Duration::from_secs(4))
                .verb("patch")
                .resource("namespaces")
                .times(1),
        );
        s.kube.inject(
            Fault::status(503)
                .verb("patch")
                .resource("resourcequotas")
                .times(1),
        );
        let pr = s.open_pr_with_config("feature/slow", READY_IMAGE).await;
        // The second try needs 3 s of the 6: it has them, though the attempt began 4 s earlier.
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");
        Ok(())
    })
    .await
}

/// B.11: a job lost from Redis (flushed, restarted without persistence) is enqueued again by
/// the reconciler, and its check run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lost_from_redis_is_healed() -> anyhow::Result<()> {
    let mut redis_server = previewd_tests::redis_server::RedisServer::start(false).await?;
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0;
    options
        .settings
        .push(format!("--redis-url={}", redis_server.url()));
    scenario::run(options, async |s| {
        let pr = s.open_pr_with_config("feature/lost", READY_IMAGE).await;
        // Redis goes away and comes back empty before any worker took the job.
        redis_server.kill();
        redis_server.restart().await?;
        s.start_worker("healer").await?;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"));
        s.wait_status(pr.number, PreviewStatus::Running).await;
        // GitHub's redelivery would not have helped: the delivery is a duplicate to previewd.
        let deliveries = webhook_delivery::Entity::find().count(&s.db).await?;
        assert!(deliveries >= 1);
        Ok(())
    })
    .await
}

/// B.8: the database fails as the job starts. The job ends without an error apalis would
/// schedule again (25 times, by default); the attempt stays queued with no job behind it, and
/// the reconciler enqueues it again once the database answers: one attempt, one check run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_at_job_start_is_healed_not_retried_by_the_queue() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0;
    scenario::run(options, async |s| {
        let pr = s.open_pr_with_config("feature/db-down", READY_IMAGE).await;
        // The app has shown the queued check run and recorded its id (a claim cut short by the
        // outage would hold the check run for its lease, which is not this story).
        let db = s.db.clone();
        wait::until(
            "the queued check run's id recorded",
            scenario::DEADLINE,
            || {
                let db = db.clone();
                async move {
                    let attempt = deploy_attempt::Entity::find().one(&db).await.ok()??;
                    attempt.check_run_id.is_some_and(|id| id > 0).then_some(())
                }
            },
        )
        .await?;
        // The attempts' table is gone as the worker takes the job.
        s.db.execute_unprepared("ALTER TABLE deploy_attempts RENAME TO deploy_attempts_away")
            .await?;
        s.start_worker("unlucky").await?;
        let done = previewd::jobs::Queue::Deploy
            .redis_config(&s.redis_prefix)
            .done_jobs_set();
        let client = redis::Client::open(previewd_tests::redis_url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        wait::until("the job to end", scenario::DEADLINE, || {
            let (mut conn, done) = (conn.clone(), done.clone());
            async move {
                let n: i64 = redis::cmd("SCARD")
                    .arg(&done)
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                (n >= 1).then_some(())
            }
        })
        .await?;
        let dead: i64 = redis::cmd("SCARD")
            .arg(
                previewd::jobs::Queue::Deploy
                    .redis_config(&s.redis_prefix)
                    .dead_jobs_set(),
            )
            .query_async(&mut conn)
            .await?;
        assert_eq!(dead, 0, "no error for the queue to bury");
        assert!(s.deploy_queue_is_idle().await?, "nothing scheduled again");

        s.db.execute_unprepared("ALTER TABLE deploy_attempts_away RENAME TO deploy_attempts")
            .await?;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");
        running_at(s, pr.number, &pr.head_sha).await;
        assert_eq!(deploy_attempt::Entity::find().count(&s.db).await?, 1);
        assert_eq!(
            s.gh.check_runs(REPO, &pr.head_sha).len(),
            1,
            "one check run"
        );
        Ok(())
    })
    .await
}

/// B.12: a repository deleted and created again under the same name (a new id), and pull
/// request numbers beyond 32 bits: 2xx and previews, never "redeliver later".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_repositories_and_big_numbers_get_previews() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Postgres), async |s| {
        let old = s.open_pr_with_config("feature/old", READY_IMAGE).await;
        let old_preview = s.wait_status(old.number, PreviewStatus::Running).await;
        // Reported before the repository goes (GitHub's API names repositories; a report still
        // on its way would land on the new repository's pull request of the same number).
        s.wait_comment(old.number, "Preview ready").await;

        s.gh.recreate_repo(REPO);
        s.gh.set_permission(REPO, MAINTAINER, "write");
        let new = s.open_pr_with_config("feature/new", READY_IMAGE).await;
        assert_eq!(new.number, old.number, "numbering starts again");
        let runs = s.completed_check_run(&new.head_sha).await;
        assert_eq!(runs.conclusion.as_deref(), Some("success"), "{runs:?}");
        let previews = previewd_entity::preview::Entity::find().all(&s.db).await?;
        let new_preview = previews
            .iter()
            .find(|p| p.head_sha == new.head_sha)
            .expect("a preview of the new repository's PR");
        assert_ne!(
            new_preview.namespace, old_preview.namespace,
            "distinct namespaces"
        );

        s.gh.set_next_number(REPO, 5_000_000_000);
        let big = s.open_pr_with_config("feature/big", READY_IMAGE).await;
        assert_eq!(big.number, 5_000_000_000);
        let run = s.completed_check_run(&big.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");
        Ok(())
    })
    .await
}

/// B.14: a renamed repository keeps one name everywhere from the moment the rename is seen:
/// check runs, deployments and the namespace's label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_repository_keeps_one_name() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s.open_pr_with_config("feature/rename", READY_IMAGE).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        s.gh.rename_repo(REPO, "acme/site");
        // The namespace label follows within a reconcile round, before any push.
        let kube = s.kube.clone();
        let namespace = preview.namespace.clone();
        let expected = previewd::cluster::label_value("acme/site");
        wait::until("the namespace relabelled", scenario::DEADLINE, || {
            let (kube, namespace, expected) = (kube.clone(), namespace.clone(), expected.clone());
            async move {
                let ns = kube.get("namespaces", None, &namespace)?;
                (ns["metadata"]["labels"]["previewd.dev/repo"] == expected.as_str()).then_some(())
            }
        })
        .await?;
        // A push: reported on the renamed repository (the old name answers 404 here).
        let next = s.sha();
        s.gh.push("acme/site", pr.number, &next).await;
        let gh = s.gh.clone();
        let sha = next.clone();
        wait::until(
            "a completed check run on acme/site",
            scenario::DEADLINE,
            || {
                let (gh, sha) = (gh.clone(), sha.clone());
                async move {
                    gh.check_runs("acme/site", &sha).into_iter().find(|r| {
                        r.status == "completed" && r.conclusion.as_deref() == Some("success")
                    })
                }
            },
        )
        .await?;
        assert!(s.gh.deployments("acme/site").iter().any(|d| d.sha == next));
        let repository = previewd_entity::repository::Entity::find()
            .all(&s.db)
            .await?;
        assert_eq!(repository[0].full_name, "acme/site");
        Ok(())
    })
    .await
}

/// C.1: a namespace of the preview's name that this previewd did not create is never adopted:
/// a clear failure instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_previewd_did_not_create_is_not_adopted() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let client = s.kube.client().await?;
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": "acme-web-pr-1", "labels": { "team": "payments" } }
            }))?;
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
            .create(&Default::default(), &ns)
            .await?;
        let pr = s.open_pr_with_config("feature/taken", READY_IMAGE).await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        let text = format!("{:?} {:?}", run.title, run.summary);
        assert!(text.contains("not created by this previewd"), "{text}");
        let untouched = s
            .kube
            .get("namespaces", None, "acme-web-pr-1")
            .expect("still there");
        assert_eq!(untouched["metadata"]["labels"]["team"], "payments");
        assert!(
            untouched["metadata"]["labels"]
                .get("previewd.dev/install")
                .is_none()
        );
        Ok(())
    })
    .await
}

/// D.2: a chart may only serve its own preview host, and objects it stops rendering are pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_serve_only_their_host_and_dropped_objects_are_pruned() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let branch = "feature/chart";
        chart_with_replicas(s, branch, 1);
        s.gh.put_file(
            REPO,
            branch,
            "deploy/chart/templates/extra.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata: {a: b}\n",
        );
        let pr = s.open_pr(branch).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        assert!(s.kube.get("configmaps", Some(&preview.namespace), "extra").is_some());

        // The next commit drops the ConfigMap: pruned.
        s.gh.put_file(REPO, branch, "deploy/chart/templates/extra.yaml", "");
        let next = s.sha();
        s.gh.push(REPO, pr.number, &next).await;
        let run = s.completed_check_run(&next).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"));
        assert!(s.kube.get("configmaps", Some(&preview.namespace), "extra").is_none());

        // An Ingress for someone else's host: refused, with a message naming both hosts.
        s.gh.put_file(
            REPO,
            branch,
            "deploy/chart/templates/ingress.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: steal\nspec:\n  rules:\n    - host: acme-web-pr-2.preview.example.test\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service: {name: web, port: {number: 80}}\n",
        );
        let third = s.sha();
        s.gh.push(REPO, pr.number, &third).await;
        let refused = s.completed_check_run(&third).await;
        assert_eq!(refused.conclusion.as_deref(), Some("failure"));
        let text = format!("{:?}", refused.summary);
        assert!(
            text.contains("acme-web-pr-2.preview.example.test")
                && text.contains(&format!("{}.preview.example.test", preview.namespace)),
            "{text}"
        );
        assert!(s.kube.get("ingresses", Some(&preview.namespace), "steal").is_none());
        Ok(())
    })
    .await
}

/// B.15: `.github/preview.yml` edge cases are user errors with a clear message, never an
/// infrastructure error tried again; Kubernetes' quantities are accepted as Kubernetes does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edge_cases_are_the_repositorys_to_fix() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.settings.extend([
        "--preview-max-memory=2Ti".into(),
        "--preview-max-ttl=48h".into(),
        "--preview-ttl=24h".into(),
        "--image-registries=ghcr.io/acme".into(),
    ]);
    scenario::run(options, async |s| {
        for (branch, config, expected) in [
            (
                "feature/ttl",
                "image: ghcr.io/acme/web:{sha}\nttl: 100h\n",
                "above this install's maximum of 48h",
            ),
            (
                "feature/registry",
                "image: docker.io/evil/web:{sha}\n",
                "not from a registry this install allows",
            ),
        ] {
            let pr = s.open_pr_with_config(branch, config).await;
            let run = s.completed_check_run(&pr.head_sha).await;
            assert_eq!(run.conclusion.as_deref(), Some("failure"));
            let text = format!("{:?} {:?}", run.title, run.summary);
            assert!(text.contains(expected), "{branch}: {text}");
            assert!(!text.contains("infrastructure"), "{branch}: {text}");
        }
        // Not UTF-8 text (saved as UTF-16, say): the repository's to fix, said plainly; the
        // push that fixes it deploys.
        s.gh.put_file_bytes(
            REPO,
            "feature/utf16",
            ".github/preview.yml",
            b"\xff\xfei\x00m\x00a\x00g\x00e\x00",
        );
        let pr = s.open_pr("feature/utf16").await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        let text = format!("{:?} {:?}", run.title, run.summary);
        assert!(text.contains("is not UTF-8 text"), "{text}");
        assert!(!text.contains("infrastructure"), "{text}");
        let fixed = s.sha();
        s.gh.put_file(
            REPO,
            &fixed,
            ".github/preview.yml",
            "image: ghcr.io/acme/web:{sha}\n",
        );
        s.gh.push(REPO, pr.number, &fixed).await;
        let run = s.completed_check_run(&fixed).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");

        let pr = s
            .open_pr_with_config(
                "feature/big-memory",
                "image: ghcr.io/acme/web:{sha}\nresources: { memory: 1Ti, cpu: \"100000u\" }\n",
            )
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let quota = s
            .kube
            .get(
                "resourcequotas",
                Some(&preview.namespace),
                "previewd-guard-rails",
            )
            .expect("quota");
        assert_eq!(quota["spec"]["hard"]["limits.memory"], "1Ti");
        assert_eq!(quota["spec"]["hard"]["limits.cpu"], "100000u");
        Ok(())
    })
    .await
}

/// `paths` in `.github/preview.yml`: a pull request that changes nothing under them gets a
/// neutral "No preview needed", and the push that touches them deploys — and so does the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_outside_paths_needs_no_preview_until_it_touches_them() -> anyhow::Result<()>
{
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s
            .open_pr_with_config(
                "feature/docs",
                "image: ghcr.io/acme/web:{sha}\npaths: [ \"web/**\" ]\n",
            )
            .await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("neutral"), "{run:?}");
        let text = format!("{:?} {:?}", run.title, run.summary);
        assert!(text.contains("No preview needed"), "{text}");
        assert!(text.contains("web/**"), "names the paths: {text}");
        assert!(
            s.kube.list("deployments", None).is_empty(),
            "nothing was deployed"
        );

        s.gh.put_file(REPO, "feature/docs", "web/index.html", "<h1>hi</h1>\n");
        let touched = s.sha();
        s.gh.push(REPO, pr.number, &touched).await;
        running_at(s, pr.number, &touched).await;
        let again = s.sha();
        s.gh.push(REPO, pr.number, &again).await;
        running_at(s, pr.number, &again).await;
        Ok(())
    })
    .await
}
