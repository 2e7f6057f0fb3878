//! The webhook door of the `previewd` binary, over real sockets, as an attacker would try it:
//! unsigned uploads are refused before their bodies are read and cost bounded memory, half-sent
//! requests are closed within the time-outs while `/healthz` answers, made-up event names add
//! no metric series, and values GitHub controls that break GitHub's own rules are refused with
//! a reason. `previewd-bench` prints the figures of the same attacks against the release build.

use std::time::Duration;

use previewd_tests::{
    github::signature,
    process::{Running, configured, get, sqlite_path, status_kib},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const BIN: &str = env!("CARGO_BIN_EXE_previewd");
const SECRET: &str = "webhook-secret-value";

/// Sends `head` (the request line and headers, without the blank line) and `body`, and returns
/// the answer's status and body. The answer is read while the body is written: a server that
/// answers before reading the body closes the connection under the writer.
async fn request(addr: &str, head: &str, body: &[u8]) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!("{head}Host: {addr}\r\nConnection: close\r\n\r\n");
    writer.write_all(head.as_bytes()).await.expect("write head");
    let write = async move {
        let _ = writer.write_all(body).await;
        writer
    };
    let read = async {
        let mut raw = Vec::new();
        let mut buffer = vec![0; 16 * 1024];
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(n) = reader.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buffer[..n]);
            }
        })
        .await;
        raw
    };
    let (_writer, raw) = tokio::join!(write, read);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

fn webhook_head(event: &str, guid: &str, signature: &str, length: usize) -> String {
    format!(
        "POST /webhooks/github HTTP/1.1\r\nX-GitHub-Event: {event}\r\nX-GitHub-Delivery: {guid}\r\n\
         X-Hub-Signature-256: {signature}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    )
}

struct App {
    process: Running,
    addr: String,
    db: std::path::PathBuf,
}

impl App {
    fn start() -> Self {
        let db = sqlite_path();
        let process = Running::start(configured(BIN, &db));
        let addr = process.listen_addr();
        Self { process, addr, db }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.process.terminate();
        let _ = self.process.wait_exit(Duration::from_secs(30));
        let _ = std::fs::remove_file(&self.db);
    }
}

/// Items 1 and 3: refused before the body is read; bounded bytes for bodies not yet verified;
/// nothing an unsigned request claims reaches `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_uploads_cost_little_and_name_no_metric() {
    let app = App::start();
    let addr = app.addr.clone();

    // No signature, or one of the wrong shape: 401 with the body never sent.
    for sig in ["", "sha256=00", "sha1=0123456789"] {
        let (status, body) = request(
            &addr,
            &webhook_head("pull_request", "guid-nosig", sig, 1024 * 1024),
            b"",
        )
        .await;
        assert_eq!(status, 401, "{sig:?}: {body}");
    }
    // Announcing more than GitHub ever sends: 413, whatever the signature.
    let shaped = format!("sha256={}", "0".repeat(64));
    let (status, _) = request(
        &addr,
        &webhook_head("push", "guid-huge", &shaped, 26 * 1024 * 1024),
        b"",
    )
    .await;
    assert_eq!(status, 413);

    // 16 concurrent signature-shaped 24 MB uploads: each is refused, 401 once its body is read
    // and fails the check, or 503 when the budget for unverified bodies is spent.
    let upload = std::sync::Arc::new(vec![b' '; 24 * 1024 * 1024]);
    let uploads: Vec<_> = (0..16)
        .map(|i| {
            let (addr, shaped, upload) = (addr.clone(), shaped.clone(), upload.clone());
            tokio::spawn(async move {
                let head = webhook_head(
                    &format!("made-up-event-{i}"),
                    &format!("guid-upload-{i}"),
                    &shaped,
                    upload.len(),
                );
                request(&addr, &head, &upload).await.0
            })
        })
        .collect();
    let (health, _) = get(&addr, "/healthz").await;
    assert_eq!(health, 200, "/healthz answers during the uploads");
    let mut answers = Vec::new();
    for u in uploads {
        answers.push(u.await.expect("upload task"));
    }
    assert!(
        answers.iter().all(|s| *s == 401 || *s == 503),
        "every upload refused: {answers:?}"
    );
    assert!(
        answers.contains(&503),
        "16 × 24 MB exceed the 32 MB budget for unverified bodies: {answers:?}"
    );
    let pid = app.process.child.id();
    let (now, peak) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    println!(
        "unsigned uploads: {answers:?}; RSS {} MB now, peak {} MB",
        now / 1024,
        peak / 1024
    );
    // Reading every body at once took 300 MB before the budget; the budget keeps it far below.
    assert!(
        peak < 160 * 1024,
        "peak RSS {peak} KiB: bodies are held past the budget"
    );

    let (status, metrics) = get(&addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(!metrics.contains("made-up"), "{metrics}");
    assert!(
        metrics.contains("previewd_webhooks_total{event=\"unknown\",result=\"unauthorized\"}"),
        "{metrics}"
    );
}

/// Item 2: slow clients are cut off within the header and body time-outs, and everyone else is
/// answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_while_health_answers() {
    const HALF_SENT: usize = 400;
    let app = App::start();
    let addr = app.addr.clone();
    let shaped = format!("sha256={}", "0".repeat(64));
    let mut streams = Vec::with_capacity(HALF_SENT);
    for i in 0..HALF_SENT {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        let part = if i % 2 == 0 {
            format!("POST /webhooks/github HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Ev")
        } else {
            format!(
                "{}Host: {addr}\r\n\r\n{{",
                webhook_head("ping", &format!("guid-slow-{i}"), &shaped, 100)
            )
        };
        stream.write_all(part.as_bytes()).await.expect("write");
        streams.push(stream);
    }
    for _ in 0..5 {
        let (status, _) = get(&addr, "/healthz").await;
        assert_eq!(status, 200);
    }
    // Both time-outs are 10 s (README); the deadline leaves room for a busy machine.
    let deadline = Duration::from_secs(40);
    let mut open = 0;
    let waits = streams.into_iter().map(|mut stream| {
        tokio::spawn(async move {
            let mut buffer = vec![0; 512];
            tokio::time::timeout(deadline, async {
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await
            .is_ok()
        })
    });
    for w in waits.collect::<Vec<_>>() {
        if !w.await.expect("wait task") {
            open += 1;
        }
    }
    assert_eq!(
        open, 0,
        "{open} of {HALF_SENT} half-sent requests still open"
    );
    let (status, _) = get(&addr, "/healthz").await;
    assert_eq!(status, 200);
}

/// Item 4: a signed delivery whose values break GitHub's own rules is a 400 naming the field,
/// never a string passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_outside_githubs_rules_are_refused_with_a_reason() {
    let app = App::start();
    let addr = app.addr.clone();
    let payload = |sha: &str, branch: &str, login: &str| {
        serde_json::to_vec(&serde_json::json!({
            "action": "opened",
            "number": 7,
            "pull_request": {
                "number": 7, "title": "x", "user": {"login": login},
                "head": {"ref": branch, "sha": sha, "repo": {"id": 1}},
                "base": {"ref": "main", "sha": "b".repeat(40), "repo": {"id": 1}},
                "draft": false, "merged": false, "labels": []
            },
            "repository": {"id": 1, "full_name": "acme/web", "default_branch": "main", "private": true},
            "installation": {"id": 1},
            "sender": {"login": login}
        }))
        .expect("json")
    };
    let good_sha = "a".repeat(40);
    for (body, reason) in [
        (payload("../../../x:y", "f", "octo"), "sha"),
        (payload("$(id);x", "f", "octo"), "sha"),
        (payload(&good_sha, "a/../../etc", "octo"), "branch"),
        (payload(&good_sha, "x\u{7}y", "octo"), "branch"),
        (payload(&good_sha, &"b".repeat(300), "octo"), "branch"),
        (payload(&good_sha, "f", "o;rm -rf /"), "login"),
    ] {
        let head = webhook_head(
            "pull_request",
            "guid-hostile",
            &signature(SECRET, &body),
            body.len(),
        );
        let (status, text) = request(&addr, &head, &body).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(reason), "names the {reason}: {text}");
    }
    // Refused deliveries are not recorded: the ignored-or-accepted counters stay empty.
    let (_, metrics) = get(&addr, "/metrics").await;
    assert!(
        !metrics.contains("result=\"accepted\""),
        "nothing was accepted: {metrics}"
    );
}
