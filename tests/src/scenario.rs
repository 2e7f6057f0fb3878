//! The end-to-end stage: previewd's app and worker running in this process against the
//! simulated GitHub and Kubernetes, a fresh database and a fresh Redis prefix.
//!
//! [`Scenario::start`] brings everything up the way the binaries do — the same configuration
//! parsing, the same `Stores::open`, the same router and worker — with only the outside worlds
//! swapped for the simulators, through their URLs and a kubeconfig. Tests then speak the
//! vocabulary of a pull request's life: `open_pr`, `push`, `close`, and wait on what GitHub and
//! the cluster show.

use std::time::Duration;

use clap::Parser;
use previewd::{
    config::Settings,
    store::Stores,
    web::{self, AppState},
};
use previewd_entity::{PreviewStatus, preview, pull_request};
use previewd_worker::Worker;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    db::{Engine, TestDatabase},
    github::{CheckRun, Comment, GitHubSim, GitHubSimOptions, NewPr, Pr},
    kube::{KubeSim, KubeSimOptions},
    process::KEY_PATH,
    wait,
};

/// The repository every scenario works in.
pub const REPO: &str = "acme/web";
/// A user with write permission on [`REPO`].
pub const MAINTAINER: &str = "maya";
/// A user without it.
pub const OUTSIDER: &str = "otto";
/// [`crate::kube::Target::client`] of the app's requests to the simulated cluster.
pub const APP_CLIENT: &str = "previewd-app";
/// How long a scenario waits for anything.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Knobs of a scenario.
#[derive(Debug, Clone)]
pub struct Options {
    pub engine: Engine,
    pub workers: usize,
    pub concurrency: usize,
    pub github: GitHubSimOptions,
    pub kube: KubeSimOptions,
    /// Extra `--flag=value` settings for app and worker.
    pub settings: Vec<String>,
    /// previewd's log filter; default `TEST_LOG`, else `warn`.
    pub log: Option<String>,
    /// The Redis to use; default [`crate::redis_url`].
    pub redis_url: Option<String>,
}

impl Options {
    /// Serves the app on a fixed free loopback port that is also its `PUBLIC_URL`, as the
    /// dashboard needs (its cookie is `Secure`: HTTPS, or plain HTTP on loopback only).
    pub fn with_loopback_public_url(mut self) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        self.settings
            .push(format!("--listen-addr=127.0.0.1:{port}"));
        self.settings
            .push(format!("--public-url=http://127.0.0.1:{port}"));
        Ok(self)
    }

    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            workers: 1,
            concurrency: 8,
            github: GitHubSimOptions::default(),
            kube: KubeSimOptions::default(),
            settings: Vec::new(),
            log: None,
            redis_url: None,
        }
    }
}

#[derive(Debug, Parser)]
#[command(args_override_self = true)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// A running previewd with its simulated world.
pub struct Scenario {
    pub gh: GitHubSim,
    pub kube: KubeSim,
    pub db: DatabaseConnection,
    pub app_url: String,
    pub installation: i64,
    pub redis_prefix: String,
    /// The Redis app and workers use.
    pub redis_url: String,
    /// The settings app and workers run with, as `--flag=value` (a worker process started by
    /// a test gets the same).
    pub settings: Vec<String>,
    test_db: Option<TestDatabase>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    next_sha: u64,
    /// What a worker started later ([`Scenario::start_worker`]) runs with.
    worker_parts: WorkerParts,
}

/// The configuration and connections workers of a scenario are made from.
struct WorkerParts {
    stores: Stores,
    github: previewd::config::GithubConfig,
    config: previewd::config::WorkerConfig,
    public_url: url::Url,
}

impl Scenario {
    /// Starts the simulators, the app and `options.workers` workers.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        // previewd's own logs, shown with a failing test's output (TEST_LOG=debug for more).
        let filter = options
            .log
            .clone()
            .or_else(|| std::env::var("TEST_LOG").ok())
            .unwrap_or_else(|| "warn".to_owned());
        previewd::telemetry::init(previewd::config::LogFormat::Text, &filter)?;
        let gh = GitHubSim::start(options.github.clone()).await?;
        let kube = KubeSim::start(options.kube.clone()).await?;
        let test_db = TestDatabase::create(options.engine).await?;
        let redis_prefix = crate::redis_prefix();
        let redis_url = options.redis_url.clone().unwrap_or_else(crate::redis_url);

        let mut args: Vec<String> = vec![
            "previewd".into(),
            "--github-app-id=1234".into(),
            format!("--github-private-key-path={KEY_PATH}"),
            "--github-webhook-secret=webhook-secret-value".into(),
            format!("--github-api-url={}", gh.url()),
            format!("--database-url={}", test_db.url),
            format!("--redis-url={redis_url}"),
            format!("--redis-prefix={redis_prefix}"),
            format!("--kubeconfig={}", kube.kubeconfig_path().display()),
            "--preview-domain=preview.example.test".into(),
            "--listen-addr=127.0.0.1:0".into(),
            "--public-url=http://previewd.example.test".into(),
            "--preview-registry=10.96.0.50:5000/previews".into(),
            format!("--worker-concurrency={}", options.concurrency),
            "--deploy-timeout=30s".into(),
            "--cleanup-timeout=30s".into(),
            // The healing rounds run beside every story, as in a real install.
            "--reconcile-interval=1s".into(),
            "--expiry-interval=1s".into(),
            "--redelivery-interval=off".into(),
            format!("--helm-bin={}", helm_bin()),
            // The dashboard signs people in with the App's OAuth client, as GitHub knows it.
            format!("--github-client-id={}", gh.oauth_client_id()),
            format!(
                "--github-client-secret={}",
                options.github.oauth_client_secret
            ),
        ];
        args.extend(options.settings.iter().cloned());
        let settings = Cli::try_parse_from(&args)?.settings;
        let store_config = settings.store_config()?;
        let github = settings.github_config()?;
        let mut server = settings.server_config()?;
        // The app reaches the cluster as a ServiceAccount of its own (requests tell it apart:
        // `Target::client` is `APP_CLIENT`), the worker with the main kubeconfig.
        server.kubeconfig = Some(kube.kubeconfig_for(APP_CLIENT)?);
        let worker_config = settings.worker_config()?;

        let (stop, stopped) = watch::channel(false);
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let stores = Stores::open(&store_config).await?;
        let db = stores.db.clone();
        let listener = web::bind(server.listen_addr).await?;
        let app_url = format!("http://{}", listener.local_addr()?);
        let public_url = server.public_url.clone();
        let state = AppState::new(stores.clone(), &github, server)?;
        let mut tasks = vec![tokio::spawn(web::serve(
            listener,
            web::router(state),
            signal(stopped.clone()),
        ))];
        let worker_parts = WorkerParts {
            stores: stores.clone(),
            github: github.clone(),
            config: worker_config.clone(),
            public_url: public_url.clone(),
        };
        for i in 0..options.workers {
            tasks.push(
                spawn_worker(&worker_parts, &format!("test-worker-{i}"), stopped.clone()).await?,
            );
        }

        gh.set_webhook_url(&format!("{app_url}/webhooks/github"));
        let installation = gh.add_installation("acme");
        gh.add_repo(installation, REPO);
        gh.set_permission(REPO, MAINTAINER, "write");
        gh.set_permission(REPO, OUTSIDER, "read");
        Ok(Self {
            gh,
            kube,
            db,
            app_url,
            installation,
            redis_prefix,
            redis_url,
            settings: last_of_each_flag(&args[1..]),
            test_db: Some(test_db),
            stop,
            tasks,
            next_sha: 0,
            worker_parts,
        })
    }

    /// Starts one more worker, in this process, named `name` (stopped with the scenario).
    pub async fn start_worker(&mut self, name: &str) -> anyhow::Result<()> {
        let task = spawn_worker(&self.worker_parts, name, self.stop.subscribe()).await?;
        self.tasks.push(task);
        Ok(())
    }

    /// A `previewd-worker` process (binary at `bin`) named `name`, configured like this scenario.
    pub fn worker_process(&self, bin: &str, name: &str) -> std::process::Command {
        let mut cmd = crate::process::bare(bin);
        cmd.args(&self.settings)
            .arg(format!("--worker-name={name}"))
            .arg("--log-format=json")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// A fresh, realistic-looking commit sha.
    pub fn sha(&mut self) -> String {
        self.next_sha += 1;
        fake_sha(&format!("{}-{}", self.redis_prefix, self.next_sha))
    }

    /// A maintainer opens a pull request from a branch of [`REPO`].
    pub async fn open_pr(&mut self, branch: &str) -> Pr {
        self.open_pr_as(MAINTAINER, branch, false).await
    }

    /// `author` opens a pull request, from a fork or not.
    pub async fn open_pr_as(&mut self, author: &str, branch: &str, from_fork: bool) -> Pr {
        let sha = self.sha();
        let (pr, delivery) = self
            .gh
            .open_pr(
                REPO,
                NewPr {
                    author: author.into(),
                    head_ref: branch.into(),
                    head_sha: sha,
                    from_fork,
                    title: format!("Change {branch}"),
                    ..NewPr::default()
                },
            )
            .await;
        assert!(
            delivery.status_code.is_some_and(|c| c < 300),
            "the app accepted the webhook: {delivery:?}"
        );
        pr
    }

    /// A maintainer opens a pull request whose head commit carries `.github/preview.yml`.
    pub async fn open_pr_with_config(&mut self, branch: &str, config: &str) -> Pr {
        // The file lives on the branch; the pull request's head sha sees it.
        self.gh
            .put_file(REPO, branch, ".github/preview.yml", config);
        self.open_pr(branch).await
    }

    /// A writer of another installation's repository (`account/name`) opens a pull request
    /// there, titled `title`, with a ready-made image: a preview the people of
    /// [`REPO`] cannot reach.
    pub async fn open_pr_elsewhere(
        &mut self,
        account: &str,
        repo: &str,
        author: &str,
        title: &str,
    ) -> Pr {
        let installation = self.gh.add_installation(account);
        self.gh.add_repo(installation, repo);
        self.gh.set_permission(repo, author, "write");
        self.gh.put_file(
            repo,
            "feature/elsewhere",
            ".github/preview.yml",
            "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n",
        );
        let sha = self.sha();
        let (pr, delivery) = self
            .gh
            .open_pr(
                repo,
                NewPr {
                    author: author.into(),
                    head_ref: "feature/elsewhere".into(),
                    head_sha: sha,
                    title: title.into(),
                    ..NewPr::default()
                },
            )
            .await;
        assert!(
            delivery.status_code.is_some_and(|c| c < 300),
            "the app accepted the webhook: {delivery:?}"
        );
        pr
    }

    /// Like [`Self::open_pr_with_config`], without requiring the webhook to arrive.
    pub async fn open_pr_with_config_unchecked(&mut self, branch: &str, config: &str) -> Pr {
        self.gh
            .put_file(REPO, branch, ".github/preview.yml", config);
        let sha = self.sha();
        let new = NewPr {
            author: MAINTAINER.into(),
            head_ref: branch.into(),
            head_sha: sha,
            title: format!("Change {branch}"),
            ..NewPr::default()
        };
        self.gh.open_pr(REPO, new).await.0
    }

    /// Waits until pull request `number` has a comment containing `needle`; returns all comments.
    pub async fn wait_comment(&self, number: u64, needle: &str) -> Vec<Comment> {
        let gh = self.gh.clone();
        let needle = needle.to_owned();
        let found = wait::until(
            &format!("a comment containing {needle:?}"),
            DEADLINE,
            || {
                let (gh, needle) = (gh.clone(), needle.clone());
                async move {
                    let comments = gh.comments(REPO, number);
                    comments
                        .iter()
                        .any(|c| c.body.contains(&needle))
                        .then_some(comments)
                }
            },
        )
        .await;
        found.unwrap_or_else(|e| panic!("{e}; comments: {:?}", self.gh.comments(REPO, number)))
    }

    /// Waits until `who`'s request to `what` on pull request `number` was refused (one reply
    /// on the pull request), and returns how many such replies there are.
    pub async fn wait_refusal(&self, number: u64, who: &str, what: &str) -> usize {
        let needle =
            format!("@{who}: only people with write permission on this repository can {what}");
        self.wait_comment(number, &needle)
            .await
            .iter()
            .filter(|c| c.body.contains(&needle))
            .count()
    }

    /// Waits until the first pull request's image build runs in the cluster (its Job exists,
    /// in a build namespace of the preview).
    pub async fn wait_build_running(&self) -> anyhow::Result<()> {
        let kube = self.kube.clone();
        wait::until("the build to run in the cluster", DEADLINE, || {
            let kube = kube.clone();
            async move {
                kube.list("jobs", None)
                    .iter()
                    .any(|j| {
                        j["metadata"]["namespace"]
                            .as_str()
                            .is_some_and(|ns| ns.starts_with("acme-web-pr-1--b"))
                    })
                    .then_some(())
            }
        })
        .await
    }

    /// True when no deploy job is waiting or scheduled in Redis: nothing will run again.
    pub async fn deploy_queue_is_idle(&self) -> anyhow::Result<bool> {
        let config = previewd::jobs::Queue::Deploy.redis_config(&self.redis_prefix);
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let active: i64 = redis::cmd("LLEN")
            .arg(config.active_jobs_list())
            .query_async(&mut conn)
            .await?;
        let scheduled: i64 = redis::cmd("ZCARD")
            .arg(config.scheduled_jobs_set())
            .query_async(&mut conn)
            .await?;
        Ok(active == 0 && scheduled == 0)
    }

    /// Waits until the preview of pull request `number` has `status`.
    pub async fn wait_status(&self, number: u64, status: PreviewStatus) -> preview::Model {
        let db = self.db.clone();
        let found = wait::until(
            &format!("preview of #{number} to be {status:?}"),
            DEADLINE,
            || {
                let db = db.clone();
                async move {
                    let p = preview_of(&db, number).await?;
                    (p.status == status).then_some(p)
                }
            },
        )
        .await;
        match found {
            Ok(p) => p,
            Err(e) => {
                let now = preview_of(&self.db, number).await;
                panic!("{e}; preview is {now:?}");
            }
        }
    }

    /// Waits until pull request `number`'s preview runs commit `sha`.
    pub async fn wait_head_running(&self, number: u64, sha: &str) -> preview::Model {
        let db = self.db.clone();
        let sha = sha.to_owned();
        wait::until(
            &format!("preview of #{number} to run {sha}"),
            DEADLINE,
            || {
                let db = db.clone();
                let sha = sha.clone();
                async move {
                    let p = preview_of(&db, number).await?;
                    (p.status == PreviewStatus::Running && p.head_sha == sha).then_some(p)
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until the check run on `sha` is completed, and returns it.
    pub async fn completed_check_run(&self, sha: &str) -> CheckRun {
        let gh = self.gh.clone();
        let sha = sha.to_owned();
        let result = wait::until("a completed check run", DEADLINE, || {
            let (gh, sha) = (gh.clone(), sha.clone());
            async move {
                gh.check_runs(REPO, &sha)
                    .into_iter()
                    .find(|c| c.status == "completed")
            }
        })
        .await;
        result.unwrap_or_else(|e| panic!("{e}; check runs: {:?}", self.gh.check_runs(REPO, &sha)))
    }

    /// This install's id (the label on everything previewd creates in the cluster).
    pub async fn install_id(&self) -> anyhow::Result<String> {
        Ok(
            previewd::previews::records::install_setting(&self.db, "install_id", || {
                uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
            })
            .await?,
        )
    }

    /// What must hold after any story: one sticky comment per pull request, at most one check
    /// run per attempt.
    pub async fn check_invariants(&self) -> anyhow::Result<()> {
        use previewd_entity::deploy_attempt;
        let current: Vec<i64> = previewd_entity::repository::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|r| r.removed_at.is_none())
            .map(|r| r.id)
            .collect();
        for pr in pull_request::Entity::find().all(&self.db).await? {
            if !current.contains(&pr.repository_id) {
                continue;
            }
            let number = u64::try_from(pr.number).unwrap_or_default();
            let sticky: Vec<String> = self
                .gh
                .comments(REPO, number)
                .into_iter()
                .filter(|c| c.body.contains(previewd::previews::report::COMMENT_MARKER))
                .map(|c| c.body)
                .collect();
            anyhow::ensure!(
                sticky.len() <= 1,
                "#{number} has {} sticky comments: {sticky:#?}",
                sticky.len()
            );
        }
        for attempt in deploy_attempt::Entity::find().all(&self.db).await? {
            let runs = self
                .gh
                .check_runs(REPO, &attempt.sha)
                .into_iter()
                .filter(|r| r.external_id.as_deref() == Some(attempt.id.to_string().as_str()))
                .count();
            anyhow::ensure!(runs <= 1, "attempt {} has {runs} check runs", attempt.id);
        }
        Ok(())
    }

    /// Stops app and workers and removes the database and Redis keys.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let invariants = self.check_invariants().await;
        let stopped = self.shut_down().await;
        invariants.and(stopped)
    }

    async fn shut_down(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            match tokio::time::timeout(Duration::from_secs(40), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => anyhow::bail!("a previewd task failed: {e:#}"),
                Ok(Err(e)) => anyhow::bail!("a previewd task panicked: {e}"),
                Err(_) => anyhow::bail!("a previewd task did not stop in time"),
            }
        }
        self.db.clone().close().await?;
        if let Some(db) = self.test_db.take() {
            db.drop_database().await?;
        }
        crate::clear_redis_prefix_at(&self.redis_url, &self.redis_prefix).await
    }
}

/// A worker named `name` running until `stopped` turns true.
async fn spawn_worker(
    parts: &WorkerParts,
    name: &str,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let mut config = parts.config.clone();
    config.name = name.to_owned();
    let mut worker = Worker::connect(
        config,
        parts.stores.clone(),
        &parts.github,
        parts.public_url.clone(),
    )
    .await?;
    worker.retry_backoff = Duration::from_millis(50);
    Ok(tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    })))
}

/// Runs `story` on a fresh scenario, then tears it down whatever happened: on success, the
/// teardown's checks decide; on an error or a panic, that is reported after the teardown ran.
pub async fn run(
    options: Options,
    story: impl AsyncFnOnce(&mut Scenario) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use futures::FutureExt as _;
    let mut s = Scenario::start(options).await?;
    let outcome = std::panic::AssertUnwindSafe(story(&mut s))
        .catch_unwind()
        .await;
    let teardown = s.stop().await;
    match outcome {
        Err(panic) => {
            if let Err(e) = teardown {
                eprintln!("teardown after the panic also failed: {e:#}");
            }
            std::panic::resume_unwind(panic)
        }
        Ok(Err(e)) => {
            if let Err(t) = teardown {
                eprintln!("teardown after the failure also failed: {t:#}");
            }
            Err(e)
        }
        Ok(Ok(())) => teardown,
    }
}

/// The `helm` the tests render charts with: `HELM_BIN`, else the one `scripts/install-tools`
/// puts in `.tools/bin`, else `helm` on the PATH.
pub fn helm_bin() -> String {
    std::env::var("HELM_BIN").unwrap_or_else(|_| {
        let tools = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/bin/helm");
        if std::path::Path::new(tools).is_file() {
            tools.to_owned()
        } else {
            "helm".to_owned()
        }
    })
}

/// `--flag=value` settings with only the last value of each flag (later ones override), for a
/// binary whose parser refuses repeated flags.
fn last_of_each_flag(args: &[String]) -> Vec<String> {
    let flag = |a: &String| a.split_once('=').map_or(a.clone(), |(f, _)| f.to_owned());
    args.iter()
        .enumerate()
        .filter(|(i, a)| !args[i + 1..].iter().any(|later| flag(later) == flag(a)))
        .map(|(_, a)| a.clone())
        .collect()
}

/// A commit sha made from `seed`: 40 hex digits that look like git's.
pub fn fake_sha(seed: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..20])
}

/// The preview row of pull request `number` of [`REPO`].
pub async fn preview_of(db: &DatabaseConnection, number: u64) -> Option<preview::Model> {
    let pr = pull_request::Entity::find()
        .filter(pull_request::Column::Number.eq(i32::try_from(number).ok()?))
        .one(db)
        .await
        .ok()??;
    preview::Entity::find()
        .filter(preview::Column::PullRequestId.eq(pr.id))
        .one(db)
        .await
        .ok()?
}
