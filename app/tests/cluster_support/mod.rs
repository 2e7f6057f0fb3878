//! Shared by the cluster tests: finding the real tools they run, temporary directories, and the
//! objects of a typical preview.
//!
//! The tools are required, not optional: a missing one fails the test with the command that
//! installs it (`scripts/install-tools`, which CI runs), so a machine without them can never
//! report these tests as passed.

#![allow(dead_code, reason = "each test file uses a part of the helpers")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use previewd::cluster::{BuildSpec, GuardRails, PreviewMeta, WebService, namespace_name};

/// The workspace root (the parent of `app/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("app/ has a parent")
        .to_path_buf()
}

/// A test fixture under `app/tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The `helm` binary: `$HELM_BIN`, else `<workspace>/.tools/bin/helm`, else `helm` on `PATH`.
pub fn helm_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "HELM_BIN={} does not exist", path.display());
        return path;
    }
    let tools = workspace_root().join(".tools/bin/helm");
    if tools.is_file() {
        return tools;
    }
    on_path("helm").unwrap_or_else(|| {
        panic!(
            "helm not found (HELM_BIN, {}, PATH): run scripts/install-tools",
            tools.display()
        )
    })
}

/// The `kubernetes-validate` program on `PATH`.
pub fn kubernetes_validate() -> PathBuf {
    on_path("kubernetes-validate").unwrap_or_else(|| {
        panic!("kubernetes-validate not found on PATH: run scripts/install-tools")
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "previewd-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The installation token used in the tests; it must never appear where it should not.
pub const TOKEN: &str = "ghs_TestInstallationToken0123456789abcdef";

pub fn meta() -> PreviewMeta {
    PreviewMeta {
        namespace: namespace_name("Acme/Web", 12),
        repo_full_name: "Acme/Web".to_owned(),
        pr_number: 12,
        preview_id: 7,
        sha: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        install_id: "test-install".to_owned(),
        attempt_id: 3,
    }
}

pub fn guard_rails() -> GuardRails {
    GuardRails::default()
}

pub fn build_spec() -> BuildSpec {
    BuildSpec {
        clone_url: "https://github.com/Acme/Web.git".to_owned(),
        sha: meta().sha,
        dockerfile: "Dockerfile".to_owned(),
        context: "web".to_owned(),
        image: format!("registry.example.com/acme/web:{}", meta().sha),
        builder_image: "moby/buildkit:v0.26.2-rootless".to_owned(),
        registry_insecure: true,
    }
}

pub fn web_service(tls_secret: Option<&str>) -> WebService {
    WebService {
        image: format!("registry.example.com/acme/web:{}", meta().sha),
        port: 8080,
        health_path: "/healthz".to_owned(),
        env: BTreeMap::from([("FEATURE_X".to_owned(), "1".to_owned())]),
        cpu: "250m".to_owned(),
        memory: "256Mi".to_owned(),
        host: format!("{}.preview.example.com", meta().namespace),
        ingress_class: Some("nginx".to_owned()),
        tls_secret: tls_secret.map(str::to_owned),
    }
}
