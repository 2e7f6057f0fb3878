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
