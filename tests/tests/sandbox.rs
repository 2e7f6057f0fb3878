//! The README's first command on a machine where no Redis answers: `previewd-sandbox --once`
//! starts a private `redis-server`, plays a pull request's whole life with the dashboard up (and
//! signed in through the simulated GitHub), and exits cleanly.

use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use previewd_tests::{process, visitor::Visitor};

fn next_line_with(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(e) => panic!(
                "no line with {needle:?} ({e}); output:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_plays_a_whole_life_on_a_private_redis() -> anyhow::Result<()> {
    // A Redis address where nothing listens: the sandbox must bring its own.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = process::bare(env!("CARGO_BIN_EXE_previewd-sandbox"))
        .arg("--once")
        .env("TEST_REDIS_URL", format!("redis://127.0.0.1:{closed}"))
        .env("RUST_LOG", "warn")
        // Held open until the pages are looked at: closing it lets `--once` stop.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let stdin = child.stdin.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let line = next_line_with(&lines, "started a private redis-server", &mut seen);
    assert!(line.contains(&format!("127.0.0.1:{closed}")), "{line}");
    let private_port: u16 = line
        .split("private redis-server at redis://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no private Redis address in {line:?}"));
    let line = next_line_with(&lines, "dashboard (signed in as maya)", &mut seen);
    let url = line.rsplit(' ').next().expect("url").to_owned();
    let app = url.trim_end_matches("/previews").to_owned();

    // Any browser is signed in to the simulated GitHub as maya; the app's own flow is the real one.
    let mut browser = Visitor::new(&app, "")?;
    let page = browser.sign_in("/previews").await?;
    assert_eq!(page.status, reqwest::StatusCode::OK, "{page:?}");
    assert!(page.body.contains("maya"));

    for step in [
        "a push: the new commit",
        "a failing commit",
        "the dashboard shows why",
        "the fix",
        "a second pull request",
        "its preview is removed",
        "is gone: true",
    ] {
        next_line_with(&lines, step, &mut seen);
    }
    let failing = seen
        .iter()
        .find(|l| l.contains("failing commit"))
        .map(|_| seen.iter().any(|l| l.contains("failure")))
        .unwrap_or(false);
    assert!(
        failing,
        "the failing commit's check run says failure:\n{}",
        seen.join("\n")
    );
    let page = browser.get("/previews?status=deleted").await?;
    assert!(
        page.body.contains("Change feature/hello"),
        "the closed one is listed as deleted"
    );
    drop(stdin);
    // The process's own exit, waited for with a deadline.
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the sandbox did not exit after --once"))???;
    assert!(status.success(), "{status}; output:\n{}", seen.join("\n"));
    // The private Redis went with it.
    assert!(std::net::TcpStream::connect(("127.0.0.1", private_port)).is_err());
    Ok(())
}
