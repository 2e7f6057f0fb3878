//! Webhook intake: what forged, malformed, duplicate, huge and unknown deliveries get, and that
//! a burst of pull requests is deployed exactly once each.

use std::time::Duration;

use futures::future::join_all;
use previewd::{github::webhook::sign, previews::report::COMMENT_MARKER};
use previewd_entity::{PreviewStatus, deploy_attempt, preview, pull_request, webhook_delivery};
use previewd_tests::{
    db::Engine,
    github::NewPr,
    scenario::{self, MAINTAINER, Options, REPO, Scenario},
    wait,
};
use sea_orm::{EntityTrait, PaginatorTrait};

const SECRET: &str = "webhook-secret-value";

async fn post(
    s: &Scenario,
    event: &str,
    guid: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{}/webhooks/github", s.app_url))
        .header("x-github-event", event)
        .header("x-github-delivery", guid)
        .header("content-type", "application/json")
        .body(body);
    if let Some(sig) = signature {
        request = request.header("x-hub-signature-256", sig);
    }
    let response = request.send().await.expect("app answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A POST with `signature` that announces `length` bytes but sends none; returns the status.
async fn post_headers_only(s: &Scenario, signature: &str, length: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.app_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: guid-huge\r\n\
         X-Hub-Signature-256: {signature}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0; 256];
    let n = stream.read(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn rows(s: &Scenario) -> anyhow::Result<(u64, u64, u64)> {
    Ok((
        webhook_delivery::Entity::find().count(&s.db).await?,
        pull_request::Entity::find().count(&s.db).await?,
        deploy_attempt::Entity::find().count(&s.db).await?,
    ))
}

fn pull_request_payload(number: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number, "title": "x", "user": {"login": MAINTAINER},
            "head": {"ref": "f", "sha": "a".repeat(40), "repo": {"id": 1}},
            "base": {"ref": "main", "sha": "b".repeat(40), "repo": {"id": 1}},
            "draft": false, "merged": false, "labels": []
        },
        "repository": {"id": 1, "full_name": REPO, "default_branch": "main", "private": true},
        "installation": {"id": 1},
        "sender": {"login": MAINTAINER}
    }))
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_get_clear_answers_and_change_nothing() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let body = pull_request_payload(7);

        // Forged: signed with another secret, or not signed at all → 401, nothing recorded.
        let (status, text) = post(
            s,
            "pull_request",
            "guid-forged",
            body.clone(),
            Some(sign("not-the-secret", &body)),
        )
        .await;
        assert_eq!(status, 401, "{text}");
        let (status, _) = post(s, "pull_request", "guid-unsigned", body.clone(), None).await;
        assert_eq!(status, 401);
        let mut tampered = body.clone();
        let signature = sign(SECRET, &body);
        tampered.push(b' ');
        let (status, _) = post(
            s,
            "pull_request",
            "guid-tampered",
            tampered,
            Some(signature),
        )
        .await;
        assert_eq!(status, 401, "a signature covers the exact bytes");
        assert_eq!(
            rows(s).await?,
            (0, 0, 0),
            "a forged delivery has no side effect at all"
        );

        // Malformed JSON, correctly signed → 400.
        let junk = b"{\"action\": \"opened\", ".to_vec();
        let (status, text) = post(
            s,
            "pull_request",
            "guid-junk",
            junk.clone(),
            Some(sign(SECRET, &junk)),
        )
        .await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("malformed pull_request payload"), "{text}");
        let wrong_shape = br#"{"action": "opened", "pull_request": 5}"#.to_vec();
        let (status, _) = post(
            s,
            "pull_request",
            "guid-shape",
            wrong_shape.clone(),
            Some(sign(SECRET, &wrong_shape)),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(rows(s).await?, (0, 0, 0));

        // Unknown events and actions → 2xx, recorded as ignored.
        let star = br#"{"action": "created", "starred_at": null}"#.to_vec();
        let (status, text) = post(
            s,
            "star",
            "guid-star",
            star.clone(),
            Some(sign(SECRET, &star)),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("ignored"));
        let ping = s.gh.ping().await;
        assert_eq!(ping.status_code, Some(200));

        // Too big → 413 (GitHub caps payloads at 25 MB). The app answers from Content-Length alone
        // and may close before a body is read, so the request is sent the way a careful client
        // would: headers first, then read the answer (a client streaming 26 MB would just see the
        // connection close mid-write).
        let shaped = format!("sha256={}", "0".repeat(64));
        assert_eq!(post_headers_only(s, &shaped, 26 * 1024 * 1024).await, 413);
        // No signature worth checking: refused before a byte of the body is read.
        assert_eq!(post_headers_only(s, "sha256=00", 1024 * 1024).await, 401);
        assert_eq!(post_headers_only(s, "", 1024 * 1024).await, 401);

        // What an unsigned request claims adds no metric series.
        let (status, _) = post(s, "made-up-event-1234", "guid-made-up", body.clone(), None).await;
        assert_eq!(status, 401);
        let metrics = reqwest::get(format!("{}/metrics", s.app_url))
            .await?
            .text()
            .await?;
        assert!(!metrics.contains("made-up"), "{metrics}");
        assert!(
            !metrics.contains("event=\"pull_request\",result=\"unauthorized\""),
            "{metrics}"
        );
        assert!(
            metrics.contains("previewd_webhooks_total{event=\"unknown\",result=\"unauthorized\"}"),
            "{metrics}"
        );
        assert_eq!(
            rows(s).await?,
            (2, 0, 0),
            "only the star and the ping are recorded"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_is_one_deploy() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.gh.put_file(
            REPO,
            "feature/x",
            ".github/preview.yml",
            "image: ghcr.io/acme/web:{sha}\n",
        );
        let sha = s.sha();
        let (pr, delivery) =
            s.gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: "feature/x".into(),
                    head_sha: sha,
                    ..NewPr::default()
                },
            )
            .await;
        assert_eq!(delivery.status_code, Some(202));
        let again = s.gh.redeliver(delivery.id).await;
        assert_eq!(
            again.status_code,
            Some(200),
            "a known GUID is answered without new work"
        );
        s.wait_status(pr.number, PreviewStatus::Running).await;
        assert_eq!(deploy_attempt::Entity::find().count(&s.db).await?, 1);
        assert_eq!(s.gh.check_runs(REPO, &pr.head_sha).len(), 1);
        assert_eq!(webhook_delivery::Entity::find().count(&s.db).await?, 1);
        Ok(())
    })
    .await
}

async fn fifty_pull_requests_at_once(engine: Engine) -> anyhow::Result<()> {
    let mut options = Options::new(engine);
    options.workers = 2;
    scenario::run(options, async |s| {
        let mut opened = Vec::new();
        for i in 0..50 {
            let branch = format!("feature/{i}");
            s.gh.put_file(
                REPO,
                &branch,
                ".github/preview.yml",
                "image: ghcr.io/acme/web:{sha}\n",
            );
            let sha = s.sha();
            let gh = s.gh.clone();
            opened.push(async move {
                gh.open_pr(
                    REPO,
                    NewPr {
                        author: MAINTAINER.into(),
                        head_ref: branch,
                        head_sha: sha,
                        ..NewPr::default()
                    },
                )
                .await
            });
        }
        let prs = join_all(opened).await;
        assert!(
            prs.iter().all(|(_, d)| d.status_code == Some(202)),
            "every webhook accepted"
        );

        let db = s.db.clone();
        wait::until("50 running previews", Duration::from_secs(120), || {
            let db = db.clone();
            async move {
                let all = preview::Entity::find().all(&db).await.ok()?;
                (all.len() == 50 && all.iter().all(|p| p.status == PreviewStatus::Running))
                    .then_some(())
            }
        })
        .await?;
        let gh = s.gh.clone();
        let numbers: Vec<u64> = prs.iter().map(|(pr, _)| pr.number).collect();
        wait::until("50 sticky comments", Duration::from_secs(60), || {
            let (gh, numbers) = (gh.clone(), numbers.clone());
            async move {
                numbers
                    .iter()
                    .all(|n| {
                        gh.comments(REPO, *n)
                            .iter()
                            .any(|c| c.body.contains("Preview ready"))
                    })
                    .then_some(())
            }
        })
        .await?;
        for (pr, _) in &prs {
            let ours: Vec<_> =
                s.gh.comments(REPO, pr.number)
                    .into_iter()
                    .filter(|c| c.body.contains(COMMENT_MARKER))
                    .collect();
            assert_eq!(ours.len(), 1, "one comment on #{}", pr.number);
            let runs = s.gh.check_runs(REPO, &pr.head_sha);
            assert_eq!(runs.len(), 1, "one check run on #{}", pr.number);
            assert_eq!(runs[0].conclusion.as_deref(), Some("success"));
        }
        assert_eq!(deploy_attempt::Entity::find().count(&s.db).await?, 50);
        assert_eq!(s.gh.deployments(REPO).len(), 50);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fifty_pull_requests_at_once() -> anyhow::Result<()> {
    fifty_pull_requests_at_once(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fifty_pull_requests_at_once() -> anyhow::Result<()> {
    fifty_pull_requests_at_once(Engine::Postgres).await
}

/// Deliveries arriving together share one transaction (the app's group commit): one among them
/// that cannot be stored (a pull request number past what the database holds), and a GUID sent
/// twice at once, spoil nothing for the others — each answered as if it had come alone.
async fn a_bad_delivery_in_a_group_spoils_none(engine: Engine) -> anyhow::Result<()> {
    let mut options = Options::new(engine);
    options.workers = 0;
    scenario::run(options, async |s| {
        let mut sends: Vec<(String, Vec<u8>)> = (1..=30u64)
            .map(|n| (format!("group-{n}"), pull_request_payload(n)))
            .collect();
        sends.push(("group-hostile".into(), pull_request_payload(1 << 63)));
        sends.push(("group-twice".into(), pull_request_payload(40)));
        sends.push(("group-twice".into(), pull_request_payload(40)));
        let s = &*s;
        let answers = join_all(sends.into_iter().map(|(guid, body)| async move {
            let signature = sign(SECRET, &body);
            let (status, text) = post(s, "pull_request", &guid, body, Some(signature)).await;
            (guid, status, text)
        }))
        .await;
        for (guid, status, text) in &answers {
            match guid.as_str() {
                "group-hostile" => {
                    assert_eq!(*status, 200, "{text}");
                    assert!(text.contains("rejected"), "{text}");
                }
                "group-twice" => assert!(*status == 202 || *status == 200, "{text}"),
                _ => assert_eq!(*status, 202, "{guid}: {text}"),
            }
        }
        let twice: Vec<_> = answers
            .iter()
            .filter(|(guid, _, _)| guid == "group-twice")
            .map(|(_, status, text)| (*status, text.contains("duplicate")))
            .collect();
        assert!(
            twice.contains(&(202, false)) && twice.contains(&(200, true)),
            "one of the two is processed, the other is its duplicate: {twice:?}"
        );
        // 30 + the one sent twice are whole; the hostile one is recorded as rejected, nothing else.
        assert_eq!(rows(s).await?, (32, 31, 31));
        let hostile = webhook_delivery::Entity::find()
            .all(&s.db)
            .await?
            .into_iter()
            .find(|d| d.guid == "group-hostile")
            .expect("the hostile delivery is recorded");
        assert_eq!(hostile.outcome, previewd_entity::DeliveryOutcome::Rejected);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_bad_delivery_in_a_group_spoils_none() -> anyhow::Result<()> {
    a_bad_delivery_in_a_group_spoils_none(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_bad_delivery_in_a_group_spoils_none() -> anyhow::Result<()> {
    a_bad_delivery_in_a_group_spoils_none(Engine::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_503_and_a_redelivery_recovers() -> anyhow::Result<()> {
    let mut redis = previewd_tests::redis_server::RedisServer::start(false).await?;
    let mut options = Options::new(Engine::Sqlite);
    options
        .settings
        .push(format!("--redis-url={}", redis.url()));
    scenario::run(options, async |s| {
        s.gh.put_file(
            REPO,
            "feature/r",
            ".github/preview.yml",
            "image: ghcr.io/acme/web:{sha}\n",
        );

        redis.kill();
        let sha = s.sha();
        let (pr, delivery) =
            s.gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: "feature/r".into(),
                    head_sha: sha,
                    ..NewPr::default()
                },
            )
            .await;
        assert_eq!(
            delivery.status_code,
            Some(503),
            "GitHub sees a failed delivery"
        );
        redis.restart().await?;
        recovers_on_redelivery(s, delivery.id, pr.number).await
    })
    .await
}

/// After an outage that failed delivery `delivery_id`: nothing was half-written, and GitHub's
/// redelivery deploys pull request `number` once.
async fn recovers_on_redelivery(s: &Scenario, delivery_id: i64, number: u64) -> anyhow::Result<()> {
    let (_, pull_requests, attempts) = rows(s).await?;
    assert_eq!((pull_requests, attempts), (0, 0), "nothing half-written");
    let again = s.gh.redeliver(delivery_id).await;
    assert_eq!(again.status_code, Some(202), "the redelivery is processed");
    s.wait_status(number, PreviewStatus::Running).await;
    assert_eq!(deploy_attempt::Entity::find().count(&s.db).await?, 1);
    Ok(())
}

/// PostgreSQL refusing connections (every session cut, no new ones allowed) while a delivery
/// arrives: a 503 naming the database, nothing half-written, and GitHub's redelivery deploys
/// once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_means_503_and_a_redelivery_recovers() -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait as _, Database};
    scenario::run(Options::new(Engine::Postgres), async |s| {
        s.gh.put_file(
            REPO,
            "feature/d",
            ".github/preview.yml",
            "image: ghcr.io/acme/web:{sha}\n",
        );
        let name: String =
            s.db.query_one_raw(sea_orm::Statement::from_string(
                s.db.get_database_backend(),
                "SELECT current_database()",
            ))
            .await?
            .expect("a row")
            .try_get_by_index(0)?;
        let admin = Database::connect(previewd_tests::db::postgres_admin_url()).await?;
        let outage = |on: bool| {
            let sql = if on {
                format!(
                    "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
                     SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                )
            } else {
                format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")
            };
            let admin = admin.clone();
            async move { admin.execute_unprepared(&sql).await }
        };

        let sha = s.sha();
        outage(true).await?;
        let (pr, delivery) =
            s.gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: "feature/d".into(),
                    head_sha: sha,
                    ..NewPr::default()
                },
            )
            .await;
        let answered = s.gh.delivery_response(delivery.id).unwrap_or_default();
        outage(false).await?;
        assert_eq!(
            delivery.status_code,
            Some(503),
            "GitHub sees a failed delivery: {answered}"
        );
        assert!(
            answered.contains("redeliver later") && !answered.contains("postgres://"),
            "{answered}"
        );
        recovers_on_redelivery(s, delivery.id, pr.number).await
    })
    .await
}

/// Clients that send part of a request and then nothing (the slow-loris way) are closed within
/// the header or body time-out, and the app answers everyone else all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_and_the_app_answers_throughout() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HALF_SENT: usize = 2000;
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let addr = s.app_url.trim_start_matches("http://").to_owned();
        let shaped = format!("sha256={}", "0".repeat(64));
        let mut streams = Vec::with_capacity(HALF_SENT);
        for i in 0..HALF_SENT {
            let mut stream = tokio::net::TcpStream::connect(&addr).await?;
            // Half of them stop inside the headers, half inside a signed-looking body.
            let part = if i % 2 == 0 {
                format!("POST /webhooks/github HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Ev")
            } else {
                format!(
                    "POST /webhooks/github HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Event: ping\r\n\
                     X-GitHub-Delivery: guid-slow-{i}\r\nX-Hub-Signature-256: {shaped}\r\n\
                     Content-Length: 100\r\n\r\n{{"
                )
            };
            stream.write_all(part.as_bytes()).await?;
            streams.push(stream);
        }
        // Everyone else is answered meanwhile.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        for _ in 0..5 {
            let health = client.get(format!("{}/healthz", s.app_url)).send().await?;
            assert_eq!(health.status(), 200);
        }
        // Each half-sent request is closed (after a 408 for the slow body) within its time-out.
        let deadline = previewd::web::HEADER_READ_TIMEOUT
            .max(previewd::github::webhook::extract::BODY_READ_TIMEOUT)
            + Duration::from_secs(20);
        let closed = join_all(streams.into_iter().map(|mut stream| async move {
            let mut buffer = vec![0; 512];
            tokio::time::timeout(deadline, async {
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await
            .is_ok()
        }))
        .await;
        let open = closed.iter().filter(|c| !**c).count();
        assert_eq!(
            open, 0,
            "{open} of {HALF_SENT} half-sent requests still open"
        );
        let health = client.get(format!("{}/healthz", s.app_url)).send().await?;
        assert_eq!(health.status(), 200);
        Ok(())
    })
    .await
}
