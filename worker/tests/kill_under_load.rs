//! What a 2xx promises, tried the hard way: the `previewd` app is killed with SIGKILL while
//! clients keep sending deliveries, then the database and Redis are read. Every delivery it
//! answered 2xx has its rows and a live deploy job; every delivery it recorded at all (some were
//! committed with no answer sent) is whole — pull request, preview, attempt and job — and
//! GitHub's redelivery of the unanswered ones, to a restarted app, completes the set with no
//! duplicate.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use previewd::jobs::{JobState, Queues};
use previewd_entity::{DeliveryOutcome, deploy_attempt, preview, pull_request, webhook_delivery};
use previewd_tests::{
    db::{Engine, TestDatabase},
    github::signature,
    process::{Running, configured, sqlite_path},
    wait,
};
use sea_orm::{EntityTrait, PaginatorTrait};

const BIN: &str = env!("CARGO_BIN_EXE_previewd");
const SECRET: &str = "webhook-secret-value";
/// Concurrent clients, as GitHub's delivery workers would be.
const CLIENTS: usize = 12;
/// Most deliveries sent before the kill (a bound, not a target).
const MOST: u64 = 3_000;
/// Deliveries answered 2xx before the app is killed.
const KILL_AFTER: u64 = 150;

fn opened(number: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number, "title": format!("change {number}"), "user": {"login": "maya"},
            "head": {"ref": format!("feature/{number}"), "sha": format!("{number:040x}"), "repo": {"id": 1}},
            "base": {"ref": "main", "sha": "b".repeat(40), "repo": {"id": 1}},
            "draft": false, "merged": false, "labels": []
        },
        "repository": {"id": 1, "full_name": "acme/web", "default_branch": "main", "private": true},
        "installation": {"id": 1},
        "sender": {"login": "maya"}
    }))
    .expect("json")
}

/// Sends delivery `number` with `guid`; the status, or `None` when no answer came.
async fn deliver(client: &reqwest::Client, addr: &str, number: u64, guid: &str) -> Option<u16> {
    let body = opened(number);
    let answer = client
        .post(format!("http://{addr}/webhooks/github"))
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", guid)
        .header("X-Hub-Signature-256", signature(SECRET, &body))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    Some(answer.status().as_u16())
}

/// Delivery number → (GUID, answer); `None` while in flight or when no answer came.
type Sent = BTreeMap<u64, (String, Option<u16>)>;

fn app(db: &TestDatabase, prefix: &str) -> Running {
    let mut cmd = configured(BIN, &sqlite_path());
    cmd.env("DATABASE_URL", &db.url).env("REDIS_PREFIX", prefix);
    Running::start(cmd)
}

async fn killed_under_load(engine: Engine) -> anyhow::Result<()> {
    let db = TestDatabase::create(engine).await?;
    let prefix = previewd_tests::redis_prefix();
    let first = app(&db, &prefix);
    let addr = first.listen_addr();

    let sent: Arc<Mutex<Sent>> = Arc::default();
    let next = Arc::new(AtomicU64::new(1));
    let accepted = Arc::new(AtomicU64::new(0));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, addr, sent, next, accepted) = (
                client.clone(),
                addr.clone(),
                sent.clone(),
                next.clone(),
                accepted.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let number = next.fetch_add(1, Ordering::Relaxed);
                    if number > MOST {
                        return;
                    }
                    let guid = uuid::Uuid::new_v4().to_string();
                    sent.lock()
                        .expect("lock")
                        .insert(number, (guid.clone(), None));
                    let status = deliver(&client, &addr, number, &guid).await;
                    if let Some(entry) = sent.lock().expect("lock").get_mut(&number) {
                        entry.1 = status;
                    }
                    match status {
                        Some(s) if (200..300).contains(&s) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(s) => panic!("delivery {number} answered {s} under load"),
                        None => return, // the app is gone
                    }
                }
            })
        })
        .collect();

    let seen = accepted.clone();
    wait::until(
        "deliveries accepted before the kill",
        Duration::from_secs(120),
        || {
            let seen = seen.clone();
            async move { (seen.load(Ordering::Relaxed) >= KILL_AFTER).then_some(()) }
        },
    )
    .await?;
    first.signal("KILL");
    for c in clients {
        c.await?;
    }
    drop(first);

    let sent = std::mem::take(&mut *sent.lock().expect("lock"));
    let answered: BTreeSet<String> = sent
        .values()
        .filter(|(_, status)| status.is_some_and(|s| (200..300).contains(&s)))
        .map(|(guid, _)| guid.clone())
        .collect();
    assert!(
        answered.len() as u64 >= KILL_AFTER,
        "{} answered",
        answered.len()
    );
    assert!(
        answered.len() < sent.len(),
        "the kill came with deliveries in flight"
    );

    // Every recorded delivery is whole, and every 2xx is recorded.
    let conn = db.connect().await?;
    let redis = redis::Client::open(previewd_tests::redis_url())?
        .get_connection_manager()
        .await?;
    let queues = Queues::new(redis, &prefix);
    let recorded: BTreeSet<String> = webhook_delivery::Entity::find()
        .all(&conn)
        .await?
        .into_iter()
        .inspect(|d| assert_eq!(d.outcome, DeliveryOutcome::Accepted, "{d:?}"))
        .map(|d| d.guid)
        .collect();
    let missing: Vec<_> = answered.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "answered 2xx, not recorded: {missing:?}"
    );
    let attempts = deploy_attempt::Entity::find().all(&conn).await?;
    let recorded_n = recorded.len() as u64;
    assert_eq!(pull_request::Entity::find().count(&conn).await?, recorded_n);
    assert_eq!(preview::Entity::find().count(&conn).await?, recorded_n);
    assert_eq!(attempts.len() as u64, recorded_n);
    for attempt in &attempts {
        assert_eq!(
            queues.deploy_job_state(attempt.id).await?,
            JobState::Live,
            "the job of attempt {}",
            attempt.id
        );
    }
    println!(
        "{engine:?}: {} sent, {} answered 2xx, {} recorded when the app was killed",
        sent.len(),
        answered.len(),
        recorded.len()
    );

    // GitHub redelivers what got no answer: each is processed once, or found a duplicate.
    let second = app(&db, &prefix);
    let addr = second.listen_addr();
    for (number, (guid, status)) in &sent {
        if status.is_some() {
            continue;
        }
        let status = deliver(&client, &addr, *number, guid).await;
        let expected = if recorded.contains(guid) { 200 } else { 202 };
        assert_eq!(status, Some(expected), "redelivery of {number}");
    }
    let all = sent.len() as u64;
    assert_eq!(webhook_delivery::Entity::find().count(&conn).await?, all);
    assert_eq!(deploy_attempt::Entity::find().count(&conn).await?, all);
    second.terminate();
    drop(second);
    conn.close().await?;
    previewd_tests::clear_redis_prefix(&prefix).await?;
    db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_app_killed_under_load_keeps_every_2xx() -> anyhow::Result<()> {
    killed_under_load(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_app_killed_under_load_keeps_every_2xx() -> anyhow::Result<()> {
    killed_under_load(Engine::Postgres).await
}
