//! A real browser for the dashboard tests: headless Chromium driven over the W3C WebDriver
//! protocol by the system's `chromedriver` (both from Debian, installed by
//! `scripts/install-tools`), spoken here directly with reqwest — a handful of JSON calls, no
//! client library.
//!
//! The browser reaches only loopback: every other address goes to a proxy that does not exist,
//! and Chromium's background traffic (updates, sync, safe browsing, DNS prefetch) is off.
//! Screenshots go to `target/dashboard-screenshots/` in the workspace, one per step a test names,
//! so a failing flow can be looked at.

use std::{
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::wait;

/// The key W3C WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; dropping it ends the session and stops the driver.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: PathBuf,
}

/// Where screenshots are kept.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots")
}

impl Browser {
    /// Starts `chromedriver` on a free loopback port and opens a headless Chromium.
    pub async fn start() -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        // In a PID namespace of its own (`unshare`, from util-linux), with the driver as its
        // init: whatever the driver and its browsers signal stays among them — even a signal to
        // "every process" — and when `unshare` goes (`--kill-child`), the kernel ends the whole
        // namespace, browsers and helpers included, so teardown never signals a pid by number.
        // Without root, a user namespace maps us to root inside it first.
        let mut driver = Command::new("unshare");
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !root {
            driver.args(["--user", "--map-root-user"]);
        }
        let driver = driver
            .args(["--pid", "--fork", "--kill-child", "--mount-proc", "--"])
            .arg("/usr/bin/chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot start /usr/bin/chromedriver under unshare (scripts/install-tools \
                 installs it; unshare comes with util-linux)",
            )?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let status_url = format!("{base}/status");
        let probe = http.clone();
        wait::until("chromedriver to be ready", Duration::from_secs(30), || {
            let probe = probe.clone();
            let url = status_url.clone();
            async move {
                let v: Value = probe.get(&url).send().await.ok()?.json().await.ok()?;
                v["value"]["ready"].as_bool().filter(|r| *r)
            }
        })
        .await?;
        let profile = std::env::temp_dir().join(format!(
            "previewd-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.display()),
            // Loopback only: anything else goes to a proxy nobody listens on.
            "--proxy-server=http://127.0.0.1:9".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-default-apps".to_owned(),
            "--disable-extensions".to_owned(),
            "--disable-crash-reporter".to_owned(),
            "--disable-breakpad".to_owned(),
            "--dns-prefetch-disable".to_owned(),
            "--safebrowsing-disable-auto-update".to_owned(),
            "--metrics-recording-only".to_owned(),
        ];
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            }}}))
            .send()
            .await?
            .json()
            .await?;
        let Some(session) = answer["value"]["sessionId"].as_str() else {
            bail!("chromedriver opened no session: {answer}");
        };
        Ok(Self {
            driver,
            base,
            session: session.to_owned(),
            http,
            profile,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!("WebDriver {path}: {error}: {}", answer["value"]["message"]);
        }
        Ok(answer["value"].clone())
    }

    /// Loads `url` and waits for the page.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    pub async fn url(&self) -> anyhow::Result<String> {
        let v = self.call(reqwest::Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> anyhow::Result<String> {
        let v = self.call(reqwest::Method::GET, "/source", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The page's visible text.
    pub async fn text(&self) -> anyhow::Result<String> {
        let body = self.find("body").await?;
        let v = self
            .call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .with_context(|| format!("no element {css}"))?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no element reference for {css}: {v}"))
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Types `text` into the element.
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    /// Sets a cookie for the site of the page now loaded.
    pub async fn add_cookie(&self, name: &str, value: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/cookie",
            Some(json!({"cookie": {"name": name, "value": value, "path": "/"}})),
        )
        .await
        .map(drop)
    }

    /// Waits until the page's text contains `needle` (reloading `reload` meanwhile, if given).
    pub async fn wait_text(&self, needle: &str, reload: Option<&str>) -> anyhow::Result<String> {
        wait::until(
            &format!("the page to say {needle:?}"),
            Duration::from_secs(60),
            || async {
                if let Some(url) = reload {
                    self.goto(url).await.ok()?;
                }
                let text = self.text().await.ok()?;
                text.contains(needle).then_some(text)
            },
        )
        .await
    }

    /// Waits until the page's text passes `test` (`what` says what it waits for): for a page
    /// that replaces one whose text would pass a plain [`Self::wait_text`] too.
    pub async fn wait_text_where(
        &self,
        what: &str,
        test: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        wait::until(what, Duration::from_secs(60), || async {
            let text = self.text().await.ok()?;
            test(&text).then_some(text)
        })
        .await
    }

    /// Saves a screenshot as `target/dashboard-screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("screenshot is not base64")?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

impl Browser {
    /// Ends the session (closing the browser) and stops the driver.
    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(&url).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // First ask the driver to shut down (it closes its browsers as they expect), and give
        // it a few seconds: a browser killed mid-shutdown leaves helpers of its own behind.
        if let Some(addr) = self
            .base
            .strip_prefix("http://")
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            && let Ok(mut conn) =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        {
            use std::io::Write as _;
            let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = conn.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
        }
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until && matches!(self.driver.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Still running: `unshare` is our own child, not yet reaped, so its pid is still its
        // own; killing it ends the namespace and everything the driver left in it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
