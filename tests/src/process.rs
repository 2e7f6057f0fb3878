//! Helpers for tests that run the real binaries: a clean environment with a valid
//! configuration, a started process whose log lines can be awaited, and a minimal HTTP client.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The test App's private key (a key made for tests only).
pub const KEY_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/app-key.pem");

/// A command for `program` that inherits nothing of the environment but `PATH` (and, under a
/// coverage run, where to write its profile, so the processes tests start are measured too).
pub fn bare(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
        cmd.env("LLVM_PROFILE_FILE", profile);
    }
    cmd
}

/// A command for `program` with no inherited environment except [`bare`]'s, and a valid
/// configuration on a fresh SQLite file and the machine's Redis.
pub fn configured(program: &str, sqlite: &std::path::Path) -> Command {
    let mut cmd = bare(program);
    cmd.env("GITHUB_APP_ID", "1234")
        .env("GITHUB_PRIVATE_KEY_PATH", KEY_PATH)
        .env("GITHUB_WEBHOOK_SECRET", "webhook-secret-value")
        .env("PREVIEW_DOMAIN", "preview.example.com")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", sqlite.display()),
        )
        .env("REDIS_URL", crate::redis_url())
        .env("REDIS_PREFIX", crate::redis_prefix())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        // Nothing leaves loopback: GitHub is a closed local port, and the periodic rounds that
        // would call it are off.
        .env("GITHUB_API_URL", "http://127.0.0.1:9")
        .env("RECONCILE_INTERVAL", "off")
        .env("REDELIVERY_INTERVAL", "off")
        .env("EXPIRY_INTERVAL", "off")
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null());
    cmd
}

/// A fresh path for a SQLite file.
pub fn sqlite_path() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("previewd-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()))
}

/// Runs `cmd` to completion and returns (exit code, stderr).
pub fn run_to_end(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running process, its stderr lines forwarded to a channel.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a log line containing `needle`, returning it.
    pub fn wait_for_line(&self, needle: &str, deadline: Duration) -> String {
        let until = std::time::Instant::now() + deadline;
        let mut seen: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => {
                    if seen.len() == 20 {
                        seen.pop_front();
                    }
                    seen.push_back(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no log line containing {needle:?} within {deadline:?}; last lines:\n{}",
                    Vec::from(seen).join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "the process ended before logging {needle:?}; last lines:\n{}",
                    Vec::from(seen).join("\n")
                ),
            }
        }
    }

    /// Every line logged so far that no wait has consumed, without waiting for more.
    pub fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Reads the bound address from the "listening" log line.
    pub fn listen_addr(&self) -> String {
        let line = self.wait_for_line("listening", Duration::from_secs(30));
        let json: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        json["addr"].as_str().expect("addr field").to_owned()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, returning its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let until = std::time::Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < until,
                "process did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/<pid>/status` given in KiB (`"VmRSS"`, `"VmHWM"`, `"RssAnon"`); 0 when the
/// process or the field is not there.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A minimal HTTP/1.1 GET: returns (status code, body).
pub async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}
