//! First run with the real binaries: `previewd all` started without a GitHub App prints a setup
//! code, registers the App from its manifest against the simulated GitHub when an admin goes
//! through its setup page, keeps the credentials in a private file, and goes on — in the same
//! process — to take webhooks signed with the new App's secret and deploy previews with its key.
//! A lone `previewd-worker` waits for the credentials file instead of failing.

use std::time::Duration;

use previewd_tests::{
    github::{GitHubSim, GitHubSimOptions, NewPr},
    kube::{KubeSim, KubeSimOptions},
    process::{Running, configured, sqlite_path},
    registration::Browser,
    scenario::{MAINTAINER, REPO, fake_sha},
    wait,
};
use secrecy::SecretString;

const PREVIEWD: &str = env!("CARGO_BIN_EXE_previewd");
const WORKER: &str = env!("CARGO_BIN_EXE_previewd-worker");

/// A fresh directory for a credentials file.
fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join("previewd-tests")
        .join(format!("setup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `cmd` without any GitHub App setting, reading (and writing) credentials at `file`.
fn unregistered(program: &str, file: &std::path::Path) -> std::process::Command {
    let mut cmd = configured(program, &sqlite_path());
    cmd.env_remove("GITHUB_APP_ID")
        .env_remove("GITHUB_PRIVATE_KEY_PATH")
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env("GITHUB_APP_CREDENTIALS", file);
    cmd
}

/// Waits for a log line containing `needle`, keeping every line seen in `log`.
fn line_with(process: &Running, needle: &str, log: &mut Vec<String>) -> String {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match process.lines.recv_timeout(left) {
            Ok(line) => {
                log.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!("no log line containing {needle:?}; log so far: {log:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previewd_all_registers_the_app_then_deploys_with_it() -> anyhow::Result<()> {
    let gh = GitHubSim::start(GitHubSimOptions::default()).await?;
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    let dir = temp_dir();
    let file = dir.join("github-app.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let app_url = format!("http://127.0.0.1:{port}");
    let mut cmd = unregistered(PREVIEWD, &file);
    cmd.arg("all")
        .env("GITHUB_API_URL", gh.url())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("PUBLIC_URL", &app_url)
        .env("KUBECONFIG", kube.kubeconfig_path())
        .env("PREVIEW_REGISTRY", "registry.example.test/previews");
    let mut previewd = Running::start(cmd);
    let mut log = Vec::new();

    // The log says where to go and gives the one-time code.
    let line = line_with(&previewd, "setup_code", &mut log);
    let fields: serde_json::Value = serde_json::from_str(&line)?;
    let code = fields["fields"]["setup_code"]
        .as_str()
        .or_else(|| fields["setup_code"].as_str())
        .expect("the code is a field of the line")
        .to_owned();
    assert!(line.contains(&format!("{app_url}/setup")), "{line}");

    // The admin's browser: the page, a wrong code, then the real one and GitHub and back.
    let mut browser = Browser::new();
    let (status, _, page) = browser.get(&format!("{app_url}/setup")).await?;
    assert_eq!(status, 200);
    assert!(page.contains("Register GitHub App"), "{page}");
    let (status, _) = browser
        .start(&app_url, "AAAA-BBBB-CCCC-DDDD", "", "previewd-acme")
        .await?;
    assert_eq!(status, 403, "a wrong code is refused");
    let (status, page) = browser
        .start(&app_url, &code, "acme", "previewd-acme")
        .await?;
    assert_eq!(status, 200, "{page}");
    let trip = browser.to_github_and_back(&page).await?;
    let app = gh.registered_app().expect("GitHub created the App");
    assert_eq!(trip.status, 303, "{}", trip.body);
    assert_eq!(
        trip.location.as_deref(),
        Some(format!("{}/installations/new", app.html_url).as_str()),
        "on to installing the App"
    );
    assert_eq!(
        app.webhook_url.as_deref(),
        Some(format!("{app_url}/webhooks/github").as_str())
    );

    // The credentials: a private file with what GitHub returned.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only previewd's user may read it");
    }
    let stored = previewd::credentials::read(&file)?;
    assert_eq!(stored.app_id, app.id);
    assert_eq!(stored.slug, app.slug);

    // The same process now serves as the App: setup is closed, even to GitHub's redirect.
    let closed = wait::until("the setup to close", Duration::from_secs(30), || {
        let (browser, url) = (&browser, format!("{app_url}/setup"));
        async move { browser.get(&url).await.ok().filter(|r| r.0 == 410) }
    })
    .await;
    assert!(closed.is_ok(), "{closed:?}");
    assert_eq!(browser.get(&trip.callback).await?.0, 410);

    // Installed on acme: a pull request gets a preview, through the new webhook secret and key.
    let installation = gh.add_installation("acme");
    gh.add_repo(installation, REPO);
    gh.set_permission(REPO, MAINTAINER, "write");
    let delivery = gh.installation_event(installation, "created").await;
    assert!(
        delivery.status_code.is_some_and(|c| c < 300),
        "{delivery:?}"
    );
    gh.put_file(
        REPO,
        "feature/first",
        ".github/preview.yml",
        "image: registry.example.test/acme/web:{sha}\n",
    );
    let sha = fake_sha("first-preview");
    let (_, delivery) = gh
        .open_pr(
            REPO,
            NewPr {
                author: MAINTAINER.into(),
                head_ref: "feature/first".into(),
                head_sha: sha.clone(),
                ..NewPr::default()
            },
        )
        .await;
    assert_eq!(delivery.status_code, Some(202), "{delivery:?}");
    let run = wait::until("a successful check run", Duration::from_secs(60), || {
        let (gh, sha) = (gh.clone(), sha.clone());
        async move {
            gh.check_runs(REPO, &sha)
                .into_iter()
                .find(|c| c.status == "completed")
        }
    })
    .await?;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");

    // Nothing GitHub handed over ever reached the log.
    previewd.terminate();
    assert_eq!(previewd.wait_exit(Duration::from_secs(40)), Some(0));
    log.extend(previewd.lines.try_iter());
    let text = log.join("\n");
    let pem_line = stored_pem_body_line(&stored.private_key);
    for secret in [
        app.webhook_secret.as_str(),
        app.client_secret.as_str(),
        pem_line.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret leaked into the log");
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// A line from the middle of a PEM key (its base64 body), to look for in logs.
fn stored_pem_body_line(pem: &SecretString) -> String {
    use secrecy::ExposeSecret as _;
    pem.expose_secret()
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .unwrap_or("no-key-body")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_waits_for_the_app_to_be_registered() -> anyhow::Result<()> {
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    let dir = temp_dir();
    let file = dir.join("github-app.json");
    let mut cmd = unregistered(WORKER, &file);
    cmd.env("KUBECONFIG", kube.kubeconfig_path());
    let mut worker = Running::start(cmd);
    worker.wait_for_line(
        "waiting for the App to be registered",
        Duration::from_secs(30),
    );

    // The setup page of an app stores the credentials: the worker starts with them.
    let key = std::fs::read_to_string(previewd_tests::process::KEY_PATH)?;
    let credentials = previewd::credentials::AppCredentials {
        app_id: 1234,
        slug: "previewd-acme".into(),
        html_url: "https://github.com/apps/previewd-acme".into(),
        owner: "acme".into(),
        private_key: SecretString::from(key),
        webhook_secret: SecretString::from("registered-secret"),
        client_id: "Iv23li-test".into(),
        client_secret: SecretString::from("client-secret"),
    };
    previewd::credentials::write_new(&file, &credentials)?;
    worker.wait_for_line("worker running", Duration::from_secs(30));
    worker.terminate();
    assert_eq!(worker.wait_exit(Duration::from_secs(40)), Some(0));
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
