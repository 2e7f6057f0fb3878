//! Crashes lose nothing: a worker killed with SIGKILL in the middle of a deploy, and another
//! worker finishes the job — real processes, the real Redis.

use std::time::{Duration, Instant};

use previewd_entity::PreviewStatus;
use previewd_tests::{
    db::Engine,
    kube::KubeSimOptions,
    process::Running,
    scenario::{self, Options, REPO},
};

const BIN: &str = env!("CARGO_BIN_EXE_previewd-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_deploy_is_replaced_within_30_seconds() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0; // workers are processes here
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(3),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let first = Running::start(s.worker_process(BIN, "crash-worker-1"));
        first.wait_for_line("worker running", Duration::from_secs(30));

        let pr = s.open_pr("feature/crash").await;
        s.wait_build_running().await?;
        first.signal("KILL");
        let killed_at = Instant::now();
        drop(first);

        let second = Running::start(s.worker_process(BIN, "crash-worker-2"));
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let recovered = killed_at.elapsed();
        assert!(
            recovered < Duration::from_secs(30),
            "another worker finished the job in {recovered:?}"
        );

        // Consistent: one check run on the commit, completed successfully; one comment.
        let runs = s.gh.check_runs(REPO, &pr.head_sha);
        assert_eq!(runs.len(), 1, "{runs:?}");
        s.completed_check_run(&pr.head_sha).await;
        assert_eq!(
            s.gh.check_runs(REPO, &pr.head_sha)[0].conclusion.as_deref(),
            Some("success")
        );
        assert!(s.kube.get("namespaces", None, &preview.namespace).is_some());
        s.wait_comment(pr.number, "Preview ready").await;
        second.signal("TERM");
        drop(second);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_queued_job() -> anyhow::Result<()> {
    let mut redis = previewd_tests::redis_server::RedisServer::start(true).await?;
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0; // the job waits in Redis
    options
        .settings
        .push(format!("--redis-url={}", redis.url()));
    scenario::run(options, async |s| {
        let pr = s
            .open_pr_with_config("feature/aof", "image: ghcr.io/acme/web:{sha}\n")
            .await;

        redis.kill();
        redis.restart().await?;

        let worker = Running::start(s.worker_process(BIN, "aof-worker"));
        s.wait_status(pr.number, PreviewStatus::Running).await;
        assert_eq!(
            s.completed_check_run(&pr.head_sha)
                .await
                .conclusion
                .as_deref(),
            Some("success")
        );
        worker.signal("TERM");
        drop(worker);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_job_in_flight_finish() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0;
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(2),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let mut worker = Running::start(s.worker_process(BIN, "graceful-worker"));
        worker.wait_for_line("worker running", Duration::from_secs(30));
        let pr = s.open_pr("feature/graceful").await;
        s.wait_build_running().await?;
        worker.signal("TERM");
        assert_eq!(
            worker.wait_exit(Duration::from_secs(40)),
            Some(0),
            "a clean exit"
        );
        let preview = scenario::preview_of(&s.db, pr.number)
            .await
            .expect("preview");
        assert_eq!(
            preview.status,
            PreviewStatus::Running,
            "the deploy in flight finished before the exit"
        );
        Ok(())
    })
    .await
}

/// A worker restarted under the same name right after a crash takes its job back without a
/// restart loop (before the fix: hundreds of queue-worker restarts in a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_its_name_takes_its_job_back_quietly() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0;
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(3),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let first = Running::start(s.worker_process(BIN, "same-name"));
        first.wait_for_line("worker running", Duration::from_secs(30));
        let pr = s.open_pr("feature/same-name").await;
        s.wait_build_running().await?;
        first.signal("KILL");
        drop(first);

        let second = Running::start(s.worker_process(BIN, "same-name"));
        second.wait_for_line("worker running", Duration::from_secs(30));
        s.wait_status(pr.number, PreviewStatus::Running).await;
        let restarts = second
            .drain()
            .iter()
            .filter(|l| l.contains("queue worker stopped; restarting it"))
            .count();
        assert!(restarts <= 1, "{restarts} queue-worker restarts");
        second.signal("TERM");
        drop(second);
        Ok(())
    })
    .await
}

/// A deploy job the queue gave up on (what its own time-out does: the task goes to the dead
/// set, its attempt left running) is closed as timed out by the reconciler and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_queue_killed_is_closed_and_reported() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0;
    options.kube = KubeSimOptions {
        job_duration: Duration::from_secs(120),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let first = Running::start(s.worker_process(BIN, "killed-by-queue"));
        first.wait_for_line("worker running", Duration::from_secs(30));
        let pr = s.open_pr("feature/killed").await;
        s.wait_build_running().await?;
        first.signal("KILL");
        drop(first);
        // The queue's time-out: the in-flight task moves to the dead set, never to run again.
        let config = previewd::jobs::Queue::Deploy.redis_config(&s.redis_prefix);
        let client = redis::Client::open(previewd_tests::redis_url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let inflight = format!("{}:killed-by-queue-deploy", config.inflight_jobs_set());
        let tasks: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&inflight)
            .query_async(&mut conn)
            .await?;
        assert_eq!(tasks.len(), 1, "the deploy was in flight");
        redis::cmd("DEL")
            .arg(&inflight)
            .query_async::<()>(&mut conn)
            .await?;
        redis::cmd("SADD")
            .arg(config.dead_jobs_set())
            .arg(&tasks[0])
            .query_async::<()>(&mut conn)
            .await?;

        let second = Running::start(s.worker_process(BIN, "after-the-kill"));
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("timed_out"), "{run:?}");
        let preview = s.wait_status(pr.number, PreviewStatus::Failed).await;
        assert!(
            preview
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("stopped without an outcome")),
            "{preview:?}"
        );
        second.signal("TERM");
        drop(second);
        Ok(())
    })
    .await
}

/// A worker lost in the middle of a cleanup: another finishes it; the preview does not stay
/// `deleting`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_interrupted_by_a_lost_worker_is_finished() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.workers = 0;
    options.kube = KubeSimOptions {
        namespace_deletion_delay: Duration::from_secs(4),
        ..KubeSimOptions::default()
    };
    scenario::run(options, async |s| {
        let first = Running::start(s.worker_process(BIN, "cleaner-1"));
        first.wait_for_line("worker running", Duration::from_secs(30));
        let pr = s
            .open_pr_with_config("feature/clean", "image: ghcr.io/acme/web:{sha}\n")
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        s.gh.close_pr(REPO, pr.number, false).await;
        // The namespace is terminating: the cleanup is waiting for it.
        let kube = s.kube.clone();
        let ns = preview.namespace.clone();
        previewd_tests::wait::until(
            "the namespace to terminate",
            Duration::from_secs(30),
            || {
                let (kube, ns) = (kube.clone(), ns.clone());
                async move {
                    kube.get("namespaces", None, &ns)?
                        .pointer("/metadata/deletionTimestamp")
                        .map(drop)
                }
            },
        )
        .await?;
        first.signal("KILL");
        drop(first);
        let second = Running::start(s.worker_process(BIN, "cleaner-2"));
        s.wait_status(pr.number, PreviewStatus::Deleted).await;
        assert!(s.kube.get("namespaces", None, &preview.namespace).is_none());
        s.wait_comment(pr.number, "Preview removed").await;
        second.signal("TERM");
        drop(second);
        Ok(())
    })
    .await
}
