//! `previewd-bench`: the figures of DESIGN.md §11, measured on this machine, printed, asserted
//! nowhere. Build it with `--release` (the `previewd` and `previewd-worker` binaries beside it
//! are the ones measured, as operators run them):
//!
//! ```sh
//! cargo build --release -p previewd -p previewd-worker -p previewd-tests && target/release/previewd-bench
//! ```
//!
//! The app and the worker run as their own processes (their CPU time and memory are read from
//! `/proc`), against the simulated GitHub and Kubernetes in this process, the local Redis and a
//! SQLite file (or `BENCH_DATABASE=postgres` for a fresh PostgreSQL database). Every load loop is
//! bounded in count and time, and all traffic stays on 127.0.0.1.

use std::{
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use futures::future::join_all;
use previewd::{github::webhook::sign, jobs::Queue};
use previewd_tests::{
    db::{Engine, TestDatabase},
    github::{GitHubSim, GitHubSimOptions, NewPr},
    kube::{KubeSim, KubeSimOptions},
    process::{KEY_PATH, Running, status_kib},
    scenario::{MAINTAINER, REPO, fake_sha},
    visitor::{Visitor, read_until},
    wait,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const SECRET: &str = "webhook-secret-value";
/// The operator the dashboard phase signs in as (sees every preview).
const OPERATOR: &str = "olga";

fn bin(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// (user + system CPU time, current RSS KiB, peak RSS KiB) of a process.
fn proc_stats(pid: u32) -> (Duration, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 0, utime 11, stime 12 (clock ticks, 100 Hz).
    let cpu = Duration::from_millis((ticks(11) + ticks(12)) * 10);
    (cpu, status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"))
}

/// CPU time used so far by every process named `postgres` (the server and its backends, the
/// app's connections among them): the database's own share of a run, read before and after it.
fn postgres_cpu() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "postgres").then(|| proc_stats(pid).0)
    })
    .sum()
}

/// The anonymous part of `pid`'s RSS in KiB: memory the process holds, without the pages of its
/// binary and libraries that it has run (those the kernel may drop and read again).
fn anon_rss(pid: u32) -> u64 {
    status_kib(pid, "RssAnon")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Environment shared by the app and worker processes.
struct World {
    gh: GitHubSim,
    kube: KubeSim,
    installation: i64,
    repo_id: i64,
}

async fn world() -> anyhow::Result<World> {
    world_with(KubeSimOptions::default()).await
}

async fn world_with(kube: KubeSimOptions) -> anyhow::Result<World> {
    // GitHub Enterprise Cloud grants installations 15,000 requests an hour; 500 PRs need ~4,500
    // plus the other phases, above the 5,000 of a plain installation.
    let gh = GitHubSim::start(GitHubSimOptions {
        rate_limit: 15_000,
        ..GitHubSimOptions::default()
    })
    .await?;
    let kube = KubeSim::start(kube).await?;
    let installation = gh.add_installation("acme");
    let repo_id = gh.add_repo(installation, REPO);
    gh.set_permission(REPO, MAINTAINER, "write");
    gh.put_file(
        REPO,
        "main",
        ".github/preview.yml",
        "image: ghcr.io/acme/web:{sha}\n",
    );
    Ok(World {
        gh,
        kube,
        installation,
        repo_id,
    })
}

fn configure(cmd: &mut Command, world: &World, database_url: &str, prefix: &str, port: u16) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_APP_ID", "1234")
        .env("GITHUB_PRIVATE_KEY_PATH", KEY_PATH)
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("GITHUB_API_URL", world.gh.url())
        .env("PREVIEW_DOMAIN", "preview.example.test")
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", previewd_tests::redis_url())
        .env("REDIS_PREFIX", prefix)
        .env("KUBECONFIG", world.kube.kubeconfig_path())
        .env("GITHUB_CLIENT_ID", world.gh.oauth_client_id())
        .env(
            "GITHUB_CLIENT_SECRET",
            GitHubSimOptions::default().oauth_client_secret,
        )
        .env("OPERATORS", OPERATOR)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKER_CONCURRENCY", "16")
        // Healing rounds run every few minutes in production; the bench counts per-PR calls.
        .env("RECONCILE_INTERVAL", "off")
        .env("REDELIVERY_INTERVAL", "off")
        .env("EXPIRY_INTERVAL", "off")
        .env("LOG_FORMAT", "json")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
}

/// A signed `pull_request.opened` of about 24 KB for PR `number`.
fn opened_payload(world: &World, number: u64) -> Vec<u8> {
    let body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(400);
    serde_json::to_vec(&serde_json::json!({
        "action": "opened",
        "number": number,
        "pull_request": {
            "id": 100_000 + number, "number": number, "state": "open", "title": format!("Change {number}"),
            "body": body, "user": {"login": MAINTAINER, "id": 1, "type": "User"},
            "head": {"ref": format!("feature/{number}"), "sha": fake_sha(&format!("bench-{number}")), "repo": {"id": world.repo_id, "full_name": REPO}},
            "base": {"ref": "main", "sha": fake_sha("main"), "repo": {"id": world.repo_id, "full_name": REPO}},
            "draft": false, "merged": false, "labels": [], "author_association": "MEMBER"
        },
        "repository": {"id": world.repo_id, "name": "web", "full_name": REPO, "owner": {"login": "acme"}, "private": true, "default_branch": "main"},
        "installation": {"id": world.installation},
        "sender": {"login": MAINTAINER, "id": 1, "type": "User"}
    }))
    .unwrap_or_default()
}

async fn send(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Duration) {
    let signature = sign(SECRET, &body);
    let started = Instant::now();
    let status = client
        .post(url)
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (status, started.elapsed())
}

async fn database(engine: Engine) -> anyhow::Result<TestDatabase> {
    TestDatabase::create(engine).await
}

/// The app alone on `db` and `prefix` against `world`; returns it and its base URL.
fn start_app(world: &World, db: &TestDatabase, prefix: &str) -> (Running, String) {
    let port = free_port();
    let mut cmd = Command::new(bin("previewd"));
    configure(&mut cmd, world, &db.url, prefix, port);
    (Running::start(cmd), format!("http://127.0.0.1:{port}"))
}

/// The app's `previewd_webhook_answer_seconds` histogram: cumulative (bound, count) buckets,
/// the count and the sum.
struct AnswerTimes {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

async fn answer_times(client: &reqwest::Client, url: &str) -> anyhow::Result<AnswerTimes> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut times = AnswerTimes {
        buckets: Vec::new(),
        count: 0,
        sum: 0.0,
    };
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Some(bound) = name
            .strip_prefix("previewd_webhook_answer_seconds_bucket{le=\"")
            .and_then(|rest| rest.strip_suffix("\"}"))
        {
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse()?
            };
            times.buckets.push((bound, value.parse()?));
        } else if name == "previewd_webhook_answer_seconds_count" {
            times.count = value.parse()?;
        } else if name == "previewd_webhook_answer_seconds_sum" {
            times.sum = value.parse()?;
        }
    }
    anyhow::ensure!(
        !times.buckets.is_empty(),
        "no answer-time histogram on /metrics"
    );
    Ok(times)
}

/// Phase 1: the app alone — start-up, idle memory, intake throughput and latency.
async fn intake(engine: Engine) -> anyhow::Result<()> {
    let (world, db, prefix) = (
        world().await?,
        database(engine).await?,
        previewd_tests::redis_prefix(),
    );
    let started = Instant::now();
    let (app, url) = start_app(&world, &db, &prefix);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let first_answer = wait::until("the app's first answer", Duration::from_secs(30), || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let ok = client
                .get(format!("{url}/healthz"))
                .send()
                .await
                .ok()?
                .status()
                .is_success();
            ok.then(|| started.elapsed())
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = app.child.id();
    let (_, idle_rss, _) = proc_stats(pid);
    println!("app start → first HTTP answer:        {}", ms(first_answer));
    println!(
        "app RSS idle:                          {:.1} MB",
        idle_rss as f64 / 1024.0
    );

    // Throughput: 3,000 signed 24 KB webhooks from 32 concurrent senders.
    let hook = format!("{url}/webhooks/github");
    let total: u64 = 3000;
    let senders: u64 = 32;
    let payload_size = opened_payload(&world, 1).len();
    let (cpu_before, _, _) = proc_stats(pid);
    let db_cpu_before = postgres_cpu();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (client, hook) = (client.clone(), hook.clone());
        let payloads: Vec<Vec<u8>> = (0..total / senders)
            .map(|i| opened_payload(&world, 10_000 + s * 1000 + i))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            for p in payloads {
                if send(&client, &hook, p).await.0 == 202 {
                    accepted += 1;
                }
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap_or(0);
    }
    let elapsed = t0.elapsed();
    let (cpu_after, _, _) = proc_stats(pid);
    let db_cpu = postgres_cpu().saturating_sub(db_cpu_before);
    let sent = (total / senders) * senders;
    println!(
        "intake throughput ({} KB payloads):   {:.0} webhooks/s ({accepted}/{sent} accepted in {:.2} s)",
        payload_size / 1024,
        sent as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "app CPU per webhook:                   {:.3} CPU-ms",
        (cpu_after - cpu_before).as_secs_f64() * 1000.0 / sent as f64
    );
    if engine == Engine::Postgres {
        println!(
            "PostgreSQL's own CPU per webhook:      {:.3} CPU-ms (every postgres process)",
            db_cpu.as_secs_f64() * 1000.0 / sent as f64
        );
    }

    // What one durable commit costs at least on this disk: PostgreSQL flushes its log at every
    // commit, SQLite (`synchronous = NORMAL`) at every checkpoint.
    let flushes = disk_flushes(200)?;
    println!(
        "disk flush (8 KB write + fdatasync, {}): p50 {}  p99 {}",
        flushes.len(),
        ms(percentile(&flushes, 0.50)),
        ms(percentile(&flushes, 0.99))
    );

    // Latency at a steady 200 webhooks/s for 10 s.
    let answers_before = answer_times(&client, &url).await?;
    let rate = 200u64;
    let count = rate * 10;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    for i in 0..count {
        let due = t0 + Duration::from_micros(i * 1_000_000 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (client, hook, tx) = (client.clone(), hook.clone(), tx.clone());
        let payload = opened_payload(&world, 200_000 + i);
        tokio::spawn(async move {
            let _ = tx.send(send(&client, &hook, payload).await);
        });
    }
    drop(tx);
    let mut latencies = Vec::new();
    while let Some((status, latency)) = rx.recv().await {
        if status == 202 {
            latencies.push(latency);
        }
    }
    latencies.sort();
    println!(
        "webhook latency at {rate}/s ({} ok):      p50 {}  p99 {}  max {}",
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    let answers = answer_times(&client, &url).await?;
    let (count, sum) = (
        answers.count - answers_before.count,
        answers.sum - answers_before.sum,
    );
    // The first bucket holding 99 % of this phase's answers, from the app's own histogram.
    let p99_bound = answers
        .buckets
        .iter()
        .zip(&answers_before.buckets)
        .find(|((_, after), (_, before))| (after - before) as f64 >= count as f64 * 0.99)
        .map_or(f64::INFINITY, |((bound, _), _)| *bound);
    println!(
        "  the app's own answer time (/metrics): mean {:.2} ms, p99 ≤ {} ms ({count} answers)",
        sum * 1000.0 / count.max(1) as f64,
        p99_bound * 1000.0
    );
    let (_, _, peak) = proc_stats(pid);
    println!(
        "app peak RSS under load:               {:.1} MB",
        peak as f64 / 1024.0
    );
    drop(app);
    db.drop_database().await?;
    previewd_tests::clear_redis_prefix(&prefix).await
}

/// `count` times an 8 KB write and `fdatasync` of a file in the temporary directory (the
/// filesystem the bench's databases are on here), sorted.
fn disk_flushes(count: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::Write as _;
    let path = std::env::temp_dir().join(format!("previewd-bench-flush-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = vec![0x5a_u8; 8192];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(start.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    times.sort();
    Ok(times)
}

/// Hostile traffic at the webhook door, against an app of its own (so that its peak is the
/// attack's, not an earlier load's): what 16 concurrent unsigned 24 MB uploads cost in RSS —
/// before, at the peak and once they are over — and how soon 2,000 half-sent requests are closed.
async fn hostile(engine: Engine) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (world, db, prefix) = (
        world().await?,
        database(engine).await?,
        previewd_tests::redis_prefix(),
    );
    let (app, url) = start_app(&world, &db, &prefix);
    let client = reqwest::Client::new();
    wait::until("the app's first answer", Duration::from_secs(30), || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client.get(format!("{url}/healthz")).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = app.child.id();
    let (_, before, _) = proc_stats(pid);
    let anon_before = anon_rss(pid);

    let hook = format!("{url}/webhooks/github");
    let shaped = format!("sha256={}", "0".repeat(64));
    let upload = vec![b' '; 24 * 1024 * 1024];
    let mut tasks = Vec::new();
    for i in 0..16 {
        let request = client
            .post(&hook)
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("guid-upload-{i}"))
            .header("x-hub-signature-256", &shaped)
            .body(upload.clone());
        tasks.push(tokio::spawn(async move {
            match request.timeout(Duration::from_secs(60)).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            }
        }));
    }
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for t in tasks {
        *answers.entry(t.await.unwrap_or(0)).or_default() += 1;
    }
    let (_, _, peak) = proc_stats(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after, _) = proc_stats(pid);
    let anon_after = anon_rss(pid);
    println!(
        "16 concurrent unsigned 24 MB uploads:  RSS {:.1} MB before, peak {:.1} MB, {:.1} MB after; of it anonymous {:.1} MB before, {:.1} MB after (answers {answers:?}; 0 = cut off)",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0,
        anon_before as f64 / 1024.0,
        anon_after as f64 / 1024.0
    );

    let addr = url.trim_start_matches("http://").to_owned();
    let t0 = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..2000 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream
            .write_all(
                format!("POST /webhooks/github HTTP/1.1\r\nHost: {addr}\r\nX-Git").as_bytes(),
            )
            .await?;
        streams.push(stream);
    }
    let healthy = client
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let closed = join_all(streams.into_iter().map(|mut stream| async move {
        let mut buffer = [0u8; 256];
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(n) = stream.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await
        .is_ok()
    }))
    .await;
    println!(
        "2,000 half-sent requests:              all closed {:.1} s after the first was opened ({} closed; /healthz answered meanwhile: {healthy})",
        t0.elapsed().as_secs_f64(),
        closed.iter().filter(|c| **c).count()
    );
    drop(app);
    db.drop_database().await?;
    previewd_tests::clear_redis_prefix(&prefix).await
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ping {
    sent_at_nanos: u128,
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn ping(
    job: Ping,
    tx: Data<Arc<mpsc::UnboundedSender<Duration>>>,
) -> Result<(), BoxDynError> {
    let latency = now_nanos().saturating_sub(job.sent_at_nanos);
    let _ = tx.send(Duration::from_nanos(
        u64::try_from(latency).unwrap_or(u64::MAX),
    ));
    Ok(())
}

/// Phase 2: the queue — enqueue → job start through Redis and the wake-up path.
async fn queue_latency() -> anyhow::Result<()> {
    let prefix = previewd_tests::redis_prefix();
    let client = redis::Client::open(previewd_tests::redis_url())?;
    let conn = redis::aio::ConnectionManager::new(client.clone()).await?;
    let storage =
        RedisStorage::<Ping>::new(conn.clone()).with_config(Queue::Deploy.redis_config(&prefix));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let monitor = {
        let (storage, client, prefix) = (storage.clone(), client.clone(), prefix.clone());
        tokio::spawn(
            Monitor::new()
                .register(move |_| {
                    WorkerBuilder::new("bench-worker")
                        .backend(storage.clone().poll_with_stream(
                            previewd_worker::wake::wake_stream(
                                client.clone(),
                                &prefix,
                                Queue::Deploy,
                            ),
                        ))
                        .data(tx.clone())
                        .concurrency(8)
                        .build(ping)
                })
                .run_with_signal(async move {
                    let _ = stop_rx.await;
                    Ok(())
                }),
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut push = storage.clone();
    let mut publisher = conn.clone();
    let channel = Queue::Deploy.wake_channel(&prefix);
    let mut latencies = Vec::new();
    for _ in 0..500 {
        push.push(Ping {
            sent_at_nanos: now_nanos(),
        })
        .await?;
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(1)
            .query_async::<i64>(&mut publisher)
            .await?;
        if let Ok(Some(latency)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            latencies.push(latency);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    latencies.sort();
    println!(
        "enqueue → job start ({} jobs, one at a time): p50 {}  p99 {}",
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99))
    );
    let burst = 3000;
    let t0 = Instant::now();
    for _ in 0..burst {
        push.push(Ping {
            sent_at_nanos: now_nanos(),
        })
        .await?;
    }
    redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(1)
        .query_async::<i64>(&mut publisher)
        .await?;
    let mut done = 0;
    while done < burst {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(_)) => done += 1,
            _ => break,
        }
    }
    println!(
        "queue throughput (no-op jobs, concurrency 8): {:.0} jobs/s ({done}/{burst})",
        f64::from(done) / t0.elapsed().as_secs_f64()
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), monitor).await;
    previewd_tests::clear_redis_prefix(&prefix).await
}

/// The app and a worker as processes, with the simulated GitHub delivering to the app.
fn start_app_and_worker(world: &World, db: &TestDatabase, prefix: &str) -> (Running, Running) {
    let (app, worker, _) = start_app_and_worker_at(world, db, prefix);
    (app, worker)
}

/// As [`start_app_and_worker`], with the app's URL (also its public URL, for sign-in).
fn start_app_and_worker_at(
    world: &World,
    db: &TestDatabase,
    prefix: &str,
) -> (Running, Running, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut app_cmd = Command::new(bin("previewd"));
    configure(&mut app_cmd, world, &db.url, prefix, port);
    app_cmd.env("PUBLIC_URL", &url);
    let app = Running::start(app_cmd);
    app.listen_addr();
    let mut worker_cmd = Command::new(bin("previewd-worker"));
    configure(&mut worker_cmd, world, &db.url, prefix, 0);
    worker_cmd
        .env("WORKER_NAME", "bench-worker")
        .env("PUBLIC_URL", &url);
    let worker = Running::start(worker_cmd);
    worker.wait_for_line("worker running", Duration::from_secs(30));
    world.gh.set_webhook_url(&format!("{url}/webhooks/github"));
    (app, worker, url)
}

/// Phase 4: cleanup with a realistic cluster — namespaces take 5 s to terminate, pods 2 s to
/// become ready. 10 previews closed at once; wall time until every namespace is gone.
async fn realistic_cleanup(engine: Engine) -> anyhow::Result<()> {
    let world = world_with(KubeSimOptions {
        namespace_deletion_delay: Duration::from_secs(5),
        deployment_ready_delay: Duration::from_secs(2),
        ..KubeSimOptions::default()
    })
    .await?;
    let db = database(engine).await?;
    let prefix = previewd_tests::redis_prefix();
    let (app, worker) = start_app_and_worker(&world, &db, &prefix);
    let opened = join_all((0..10u64).map(|i| {
        let gh = world.gh.clone();
        async move {
            let sha = fake_sha(&format!("real-{i}"));
            gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: format!("real/{i}"),
                    head_sha: sha.clone(),
                    ..NewPr::default()
                },
            )
            .await
            .0
        }
    }))
    .await;
    let conn = db.connect().await?;
    wait::until("10 running previews", Duration::from_secs(120), || {
        let conn = conn.clone();
        async move {
            use sea_orm::{
                ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _,
            };
            let running = previewd_entity::preview::Entity::find()
                .filter(
                    previewd_entity::preview::Column::Status
                        .eq(previewd_entity::PreviewStatus::Running),
                )
                .count(&conn)
                .await
                .ok()?;
            (running == 10).then_some(())
        }
    })
    .await?;
    let t0 = Instant::now();
    join_all(
        opened
            .iter()
            .map(|pr| world.gh.close_pr(REPO, pr.number, false)),
    )
    .await;
    let kube = world.kube.clone();
    let gone = wait::until("10 namespaces gone", Duration::from_secs(120), || {
        let kube = kube.clone();
        async move {
            kube.namespaces()
                .iter()
                .all(|n| !n.starts_with("acme-web"))
                .then_some(())
        }
    })
    .await;
    if let Err(e) = gone {
        // A figure that cannot be measured says why: what is left, and what the processes said.
        let left: Vec<String> = kube
            .namespaces()
            .into_iter()
            .filter(|n| n.starts_with("acme-web"))
            .collect();
        eprintln!("namespaces left: {left:?}");
        for (name, process) in [("app", &app), ("worker", &worker)] {
            let path = std::env::temp_dir().join(format!("previewd-bench-cleanup-{name}.log"));
            std::fs::write(&path, process.drain().join("\n"))?;
            eprintln!("{name}'s log: {}", path.display());
        }
        return Err(e);
    }
    println!(
        "cleanup of 10 previews, realistic delays: {:.2} s (namespaces terminate in 5 s)",
        t0.elapsed().as_secs_f64()
    );
    drop(worker);
    drop(app);
    db.drop_database().await?;
    previewd_tests::clear_redis_prefix(&prefix).await
}

/// Phase 3: whole lifecycles — webhook → check run in progress, N PRs at once, calls, memory.
async fn lifecycles(engine: Engine) -> anyhow::Result<()> {
    let world = world().await?;
    let db = database(engine).await?;
    let prefix = previewd_tests::redis_prefix();
    let (app, worker) = start_app_and_worker(&world, &db, &prefix);

    // Webhook → the check run on the PR (the app's "queued" one), one PR at a time.
    let mut latencies = Vec::new();
    for i in 0..20u64 {
        let sha = fake_sha(&format!("single-{i}"));
        let t0 = Instant::now();
        let (_, _) = world
            .gh
            .open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: format!("single/{i}"),
                    head_sha: sha.clone(),
                    ..NewPr::default()
                },
            )
            .await;
        let gh = world.gh.clone();
        let latency = wait::until("the check run on the PR", Duration::from_secs(30), || {
            let (gh, sha) = (gh.clone(), sha.clone());
            async move { (!gh.check_runs(REPO, &sha).is_empty()).then(|| t0.elapsed()) }
        })
        .await?;
        latencies.push(latency);
        let gh = world.gh.clone();
        wait::until("the single PR's preview", Duration::from_secs(30), || {
            let (gh, sha) = (gh.clone(), sha.clone());
            async move {
                gh.check_runs(REPO, &sha)
                    .iter()
                    .any(|c| c.status == "completed")
                    .then_some(())
            }
        })
        .await?;
    }
    latencies.sort();
    println!(
        "webhook → check run on the PR:         p50 {}  p99 {} (20 PRs, includes the simulator's delivery)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99))
    );

    let mut before = 20;
    for (label, n) in [("50", 50u64), ("500", 500u64)] {
        world.gh.reset_calls();
        let t0 = Instant::now();
        let opens = (0..n).map(|i| {
            let gh = world.gh.clone();
            let sha = fake_sha(&format!("burst-{label}-{i}"));
            async move {
                gh.open_pr(
                    REPO,
                    NewPr {
                        author: MAINTAINER.into(),
                        head_ref: format!("burst-{label}/{i}"),
                        head_sha: sha.clone(),
                        ..NewPr::default()
                    },
                )
                .await;
                sha
            }
        });
        let shas = join_all(opens).await;
        // Watch the database (cheap), then confirm on GitHub once: polling 500 check-run lists
        // in the simulator would cost more CPU than previewd itself.
        let conn = db.connect().await?;
        let expected = n as usize;
        let finished = async {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                use sea_orm::{
                    ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _,
                };
                let running = previewd_entity::preview::Entity::find()
                    .filter(
                        previewd_entity::preview::Column::Status
                            .eq(previewd_entity::PreviewStatus::Running),
                    )
                    .count(&conn)
                    .await
                    .unwrap_or(0) as usize;
                let reported = running >= expected + before
                    && shas.iter().all(|sha| {
                        world
                            .gh
                            .check_runs(REPO, sha)
                            .iter()
                            .any(|c| c.conclusion.as_deref() == Some("success"))
                    });
                if reported {
                    return Ok(t0.elapsed());
                }
                if Instant::now() > deadline {
                    anyhow::bail!("timed out after 300 s waiting for {n} previews");
                }
                tokio::time::sleep(Duration::from_millis(if running >= expected + before {
                    50
                } else {
                    200
                }))
                .await;
            }
        }
        .await;
        let calls = world.gh.calls();
        match finished {
            Ok(wall) => {
                before += n as usize;
                println!(
                    "{label:>3} PRs opened at once → all running:  {:.2} s; GitHub calls per PR {:.1} (+{} token mints)",
                    wall.as_secs_f64(),
                    (calls.total - calls.tokens_minted) as f64 / n as f64,
                    calls.tokens_minted
                );
                let routes: Vec<String> = calls
                    .by_route
                    .iter()
                    .filter(|(route, _)| !route.contains("access_tokens"))
                    .map(|(route, count)| format!("{route} {:.2}", *count as f64 / n as f64))
                    .collect();
                println!("     per PR, by route: {}", routes.join("; "));
            }
            Err(e) => {
                let done = shas
                    .iter()
                    .filter(|sha| {
                        world
                            .gh
                            .check_runs(REPO, sha)
                            .iter()
                            .any(|c| c.conclusion.as_deref() == Some("success"))
                    })
                    .count();
                let mut codes = std::collections::BTreeMap::<String, u32>::new();
                for d in world.gh.deliveries() {
                    *codes.entry(format!("{:?}", d.status_code)).or_default() += 1;
                }
                println!("{label:>3} PRs: {e} ({done} done; deliveries by status: {codes:?})");
                if let Ok(conn) = db.connect().await {
                    use sea_orm::EntityTrait as _;
                    let attempts = previewd_entity::deploy_attempt::Entity::find()
                        .all(&conn)
                        .await
                        .unwrap_or_default();
                    let mut by = std::collections::BTreeMap::<String, u32>::new();
                    for a in &attempts {
                        *by.entry(format!("{:?} {:?}", a.status, a.error_kind))
                            .or_default() += 1;
                    }
                    println!("     attempts: {by:?}");
                    for a in attempts.iter().filter(|a| a.error.is_some()).take(3) {
                        println!("     e.g. {:?}", a.error);
                    }
                    let mut last = Vec::new();
                    while let Ok(line) = worker.lines.try_recv() {
                        last.push(line);
                    }
                    for line in last.iter().rev().take(12).rev() {
                        println!(
                            "     worker: {}",
                            line.chars().take(300).collect::<String>()
                        );
                    }
                    println!(
                        "     kube requests {} github calls {}",
                        world.kube.requests().total,
                        world.gh.calls().total
                    );
                }
            }
        }
    }
    // The reconciler over everything open (570 pull requests): one round in a fresh worker,
    // then three more with nothing changed, which should cost no counted call (304s only).
    world.gh.reset_calls();
    let mut reconciler_cmd = Command::new(bin("previewd-worker"));
    configure(&mut reconciler_cmd, &world, &db.url, &prefix, 0);
    reconciler_cmd
        .env("WORKER_NAME", "bench-reconciler")
        .env("RECONCILE_INTERVAL", "2s")
        // Rounds with nothing to heal are logged at debug.
        .env("RUST_LOG", "info,previewd_worker::periodic=debug");
    let t0 = Instant::now();
    let reconciler = Running::start(reconciler_cmd);
    let line = reconciler.wait_for_line("reconciled", Duration::from_secs(120));
    let summary = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v["summary"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let first = world.gh.calls();
    println!(
        "reconcile round, {} open PRs:       {:.2} s (incl. worker start), {} GitHub calls ({} answered 304); {summary}",
        before,
        t0.elapsed().as_secs_f64(),
        first.total,
        first.not_modified
    );
    world.gh.reset_calls();
    for _ in 0..3 {
        reconciler.wait_for_line("reconciled", Duration::from_secs(60));
    }
    let idle = world.gh.calls();
    println!(
        "idle reconcile rounds, {} open PRs:  {:.1} counted GitHub calls per round ({:.1} answered 304, free)",
        before,
        idle.total as f64 / 3.0,
        idle.not_modified as f64 / 3.0
    );
    drop(reconciler);

    // A whole lifecycle under the quota-admitting cluster: open → push → push → close, and the
    // cleanup.
    world.gh.reset_calls();
    let life = Instant::now();
    let sha = fake_sha("life-1");
    let (pr, _) = world
        .gh
        .open_pr(
            REPO,
            NewPr {
                author: MAINTAINER.into(),
                head_ref: "life/1".into(),
                head_sha: sha.clone(),
                ..NewPr::default()
            },
        )
        .await;
    let success = |sha: String| {
        let gh = world.gh.clone();
        async move {
            wait::until("a successful check run", Duration::from_secs(60), || {
                let (gh, sha) = (gh.clone(), sha.clone());
                async move {
                    gh.check_runs(REPO, &sha)
                        .iter()
                        .any(|c| c.conclusion.as_deref() == Some("success"))
                        .then_some(())
                }
            })
            .await
        }
    };
    success(sha).await?;
    for push in ["life-2", "life-3"] {
        let pushed = fake_sha(push);
        world.gh.push(REPO, pr.number, &pushed).await;
        success(pushed).await?;
    }
    let namespace = format!("acme-web-pr-{}", pr.number);
    let t0 = Instant::now();
    world.gh.close_pr(REPO, pr.number, false).await;
    let kube = world.kube.clone();
    wait::until("the namespace to go", Duration::from_secs(60), || {
        let (kube, namespace) = (kube.clone(), namespace.clone());
        async move {
            kube.get("namespaces", None, &namespace)
                .is_none()
                .then_some(())
        }
    })
    .await?;
    let cleanup = t0.elapsed();
    let gh = world.gh.clone();
    wait::until(
        "the removal to be reported",
        Duration::from_secs(60),
        || {
            let gh = gh.clone();
            async move {
                gh.comments(REPO, pr.number)
                    .iter()
                    .any(|c| c.body.contains("Preview removed"))
                    .then_some(())
            }
        },
    )
    .await?;
    let life = life.elapsed();
    let calls = world.gh.calls();
    println!(
        "whole life, open → 2 pushes → close:   {} wall (quota admission on, zero simulated delays)",
        ms(life)
    );
    println!(
        "GitHub calls, open → 2 pushes → close: {} (+{} token mints, {} answered 304)",
        calls.total - calls.tokens_minted,
        calls.tokens_minted,
        calls.not_modified
    );
    println!(
        "cleanup, close → namespace gone:       {} (zero simulated delays)",
        ms(cleanup)
    );

    for (name, process) in [("app", &app), ("worker", &worker)] {
        let mut seen = std::collections::BTreeMap::<String, u32>::new();
        while let Ok(line) = process.lines.try_recv() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if matches!(entry["level"].as_str(), Some("WARN" | "ERROR")) {
                let message = entry["message"].as_str().unwrap_or_default().to_owned();
                *seen.entry(message).or_default() += 1;
            }
        }
        for (message, count) in seen {
            println!(
                "   {name} logged {count}× {}",
                message.chars().take(160).collect::<String>()
            );
        }
    }
    let (_, _, app_peak) = proc_stats(app.child.id());
    let (_, _, worker_peak) = proc_stats(worker.child.id());
    println!(
        "app peak RSS:                          {:.1} MB",
        app_peak as f64 / 1024.0
    );
    println!(
        "worker peak RSS (500 PRs):             {:.1} MB",
        worker_peak as f64 / 1024.0
    );
    drop(worker);
    drop(app);
    db.drop_database().await?;
    previewd_tests::clear_redis_prefix(&prefix).await
}

/// `n` GETs of `path` one after another: (p50, p99, bytes of the last answer).
async fn page_times(
    visitor: &mut Visitor,
    path: &str,
    n: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t0 = Instant::now();
        let page = visitor.get(path).await?;
        times.push(t0.elapsed());
        anyhow::ensure!(page.status == 200, "{path}: {}", page.status);
        bytes = page.body.len();
    }
    times.sort();
    Ok((percentile(&times, 0.50), percentile(&times, 0.99), bytes))
}

/// Phase 5: the dashboard over 500 running previews — the list page as an operator sees it (its
/// totals add up every live preview's usage), a detail page (pods, log, events, usage read from
/// the cluster), and a log line written in a pod until it arrives on the followed stream.
async fn dashboard_pages(engine: Engine) -> anyhow::Result<()> {
    const PREVIEWS: u64 = 500;
    let world = world().await?;
    let db = database(engine).await?;
    let prefix = previewd_tests::redis_prefix();
    let (app, worker, url) = start_app_and_worker_at(&world, &db, &prefix);
    let opens = (0..PREVIEWS).map(|i| {
        let gh = world.gh.clone();
        async move {
            gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: format!("dash/{i}"),
                    head_sha: fake_sha(&format!("dash-{i}")),
                    ..NewPr::default()
                },
            )
            .await;
        }
    });
    join_all(opens).await;
    let conn = db.connect().await?;
    let running = wait::until("500 previews running", Duration::from_secs(300), || async {
        use sea_orm::{ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _};
        let n = previewd_entity::preview::Entity::find()
            .filter(
                previewd_entity::preview::Column::Status
                    .eq(previewd_entity::PreviewStatus::Running),
            )
            .count(&conn)
            .await
            .unwrap_or(0);
        (n >= PREVIEWS).then_some(n)
    })
    .await?;
    let newest = {
        use sea_orm::{EntityTrait as _, QueryOrder as _};
        previewd_entity::preview::Entity::find()
            .order_by_desc(previewd_entity::preview::Column::Id)
            .one(&conn)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no preview"))?
    };

    let mut olga = Visitor::new(&url, OPERATOR)?;
    let t0 = Instant::now();
    olga.sign_in("/previews").await?;
    let cold = t0.elapsed();
    let (p50, p99, bytes) = page_times(&mut olga, "/previews", 50).await?;
    println!(
        "dashboard list, operator, {running} previews: first (sign-in + every usage read) {}; then p50 {}  p99 {}  {:.1} KB (50 loads)",
        ms(cold),
        ms(p50),
        ms(p99),
        bytes as f64 / 1024.0
    );
    // `pr-1` matches the namespaces acme-web-pr-1, -10…-19 and -100…-199: 111 previews.
    let (p50, p99, bytes) = page_times(&mut olga, "/previews?q=pr-1&page=3", 50).await?;
    println!(
        "dashboard list, searched, page 3 of 5: p50 {}  p99 {}  {:.1} KB (50 loads)",
        ms(p50),
        ms(p99),
        bytes as f64 / 1024.0
    );
    let detail = format!("/previews/{}", newest.id);
    let (p50, p99, bytes) = page_times(&mut olga, &detail, 50).await?;
    println!(
        "dashboard detail page:                 p50 {}  p99 {}  {:.1} KB (50 loads; pods, log, events, usage from the cluster)",
        ms(p50),
        ms(p99),
        bytes as f64 / 1024.0
    );

    // A line written in the pod → the same line on the followed stream.
    let pod = world
        .kube
        .list("pods", Some(&newest.namespace))
        .into_iter()
        .find_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("no pod in {}", newest.namespace))?;
    let mut live = olga
        .open_stream(&format!("{detail}/logs/stream?tail=50"))
        .await?;
    let mut seen = String::new();
    anyhow::ensure!(read_until(&mut live, &mut seen, "data: ").await?, "no tail");
    let mut latencies = Vec::new();
    for i in 0..50 {
        let line = format!("bench line {i}");
        let t0 = Instant::now();
        world.kube.write_log(&newest.namespace, &pod, None, &line)?;
        anyhow::ensure!(
            read_until(&mut live, &mut seen, &format!("data: {line}\n")).await?,
            "the stream ended"
        );
        latencies.push(t0.elapsed());
    }
    drop(live);
    latencies.sort();
    println!(
        "log line in the pod → followed stream: p50 {}  p99 {} (50 lines)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99))
    );
    api_and_mcp(&url, &conn, running).await?;
    drop(worker);
    drop(app);
    db.drop_database().await?;
    previewd_tests::clear_redis_prefix(&prefix).await
}

/// The REST list and MCP's `list_preview_environments` over the same previews, as the operator
/// (who sees every one) with an API token: 50 calls one after another each.
async fn api_and_mcp(
    url: &str,
    conn: &sea_orm::DatabaseConnection,
    running: u64,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret as _;
    let made = previewd::previews::tokens::create(
        conn,
        previewd_tests::github::user_id(OPERATOR),
        "bench",
        None,
    )
    .await?;
    let token = made.secret.expose_secret().to_owned();
    let http = reqwest::Client::new();
    for per_page in [25, 100] {
        let mut times = Vec::with_capacity(50);
        let mut bytes = 0;
        for _ in 0..50 {
            let t0 = Instant::now();
            let answer = http
                .get(format!("{url}/api/v1/previews?per_page={per_page}"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(answer.status() == 200, "REST list: {}", answer.status());
            bytes = answer.bytes().await?.len();
            times.push(t0.elapsed());
        }
        times.sort();
        println!(
            "REST GET /api/v1/previews, {running} previews, per_page {per_page}: p50 {}  p99 {}  {:.1} KB (50 calls)",
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            bytes as f64 / 1024.0
        );
    }
    let t0 = Instant::now();
    let client = previewd_tests::agent::connect(url, &token, true).await?;
    let connect = t0.elapsed();
    let mut times = Vec::with_capacity(50);
    for _ in 0..50 {
        let t0 = Instant::now();
        let result = previewd_tests::agent::call(
            &client,
            "list_preview_environments",
            serde_json::json!({}),
        )
        .await?;
        anyhow::ensure!(result.is_error != Some(true), "MCP list: {result:?}");
        times.push(t0.elapsed());
    }
    times.sort();
    println!(
        "MCP list_preview_environments round trip ({running} previews, 25 a page): p50 {}  p99 {} (50 calls; discovery first: {})",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(connect)
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let engine = match std::env::var("BENCH_DATABASE").as_deref() {
        Ok("postgres") => Engine::Postgres,
        _ => Engine::Sqlite,
    };
    for name in ["previewd", "previewd-worker"] {
        anyhow::ensure!(
            bin(name).is_file(),
            "{} is missing: build it next to this binary",
            bin(name).display()
        );
    }
    println!(
        "previewd-bench — {} cores, database {engine:?}, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let phases = std::env::var("BENCH_PHASES")
        .unwrap_or_else(|_| "intake,hostile,queue,lifecycles,cleanup,dashboard".to_owned());
    if phases.contains("intake") {
        intake(engine).await?;
    }
    if phases.contains("hostile") {
        hostile(engine).await?;
    }
    if phases.contains("queue") {
        queue_latency().await?;
    }
    if phases.contains("lifecycles") {
        lifecycles(engine).await?;
    }
    if phases.contains("cleanup") {
        realistic_cleanup(engine).await?;
    }
    if phases.contains("dashboard") {
        dashboard_pages(engine).await?;
    }
    Ok(())
}
