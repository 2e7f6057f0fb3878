//! The `Dockerfile` keeps to what CI runs. No container builder can reach a base image on the
//! machines this project is built on (Debian's buildah works there, but no registry answers), so
//! CI cannot build the image; instead it runs the image's own build command
//! (`scripts/release-build`, in `.ci/run`) and this test checks that the Dockerfile builds with
//! exactly that script and that toolchain, copies every file that build reads, stubs every
//! workspace member for its dependency layer, takes helm from where the tests take it, and ends
//! in the non-root runtime the Helm chart expects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(workspace().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuations joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions() -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.split_whitespace().collect::<Vec<_>>().join(" "),
                });
                current.clear();
            }
        }
    }
    out
}

/// The instructions of each stage, by the stage's name (`AS x`; the last one is the runtime).
fn stages() -> Vec<(String, Vec<Instruction>)> {
    let mut stages: Vec<(String, Vec<Instruction>)> = Vec::new();
    for i in instructions() {
        if i.keyword == "FROM" {
            let name = i
                .args
                .split_once(" AS ")
                .map_or("runtime", |(_, n)| n)
                .to_owned();
            stages.push((name, Vec::new()));
        } else if let Some((_, list)) = stages.last_mut() {
            list.push(i);
        }
    }
    stages
}

fn stage(name: &str) -> Vec<Instruction> {
    stages()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, i)| i)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn arg_default(name: &str) -> String {
    instructions()
        .iter()
        .filter(|i| i.keyword == "ARG")
        .find_map(|i| i.args.strip_prefix(&format!("{name}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no ARG {name}"))
}

/// Workspace members, from the root manifest.
fn members() -> Vec<String> {
    let manifest: toml_lite::Table = toml_lite::parse(&read("Cargo.toml"));
    manifest.members
}

/// The few facts of the root manifest this test needs, read without a TOML dependency.
mod toml_lite {
    pub struct Table {
        pub members: Vec<String>,
        pub rust_version: String,
    }

    pub fn parse(text: &str) -> Table {
        let value_of = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|rest| rest.trim_start().strip_prefix('='))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let members = value_of("members")
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|m| m.trim().trim_matches('"').to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        Table {
            members,
            rust_version: value_of("rust-version").trim_matches('"').to_owned(),
        }
    }
}

#[test]
fn the_image_is_built_with_the_script_ci_runs() {
    let build = stage("build");
    let runs: Vec<&Instruction> = build.iter().filter(|i| i.keyword == "RUN").collect();
    for run in &runs {
        assert!(
            !run.args.split_whitespace().any(|w| w == "cargo"),
            "the Dockerfile calls the repository's scripts, never cargo itself: {run:?}"
        );
    }
    let release_builds: Vec<&&Instruction> = runs
        .iter()
        .filter(|r| r.args.contains("scripts/release-build"))
        .collect();
    assert_eq!(
        release_builds.len(),
        2,
        "dependencies, then sources: {runs:?}"
    );
    assert!(
        release_builds[0]
            .args
            .starts_with("scripts/stub-workspace &&"),
        "the first build is of the stubbed workspace: {:?}",
        release_builds[0]
    );

    // The script is the one CI runs, and it builds what the image copies.
    let script = read("scripts/release-build");
    let command = script
        .lines()
        .map(|l| l.trim_start())
        .find(|l| l.starts_with("cargo build") || l.starts_with("exec cargo build"))
        .expect("scripts/release-build runs cargo build");
    for flag in ["--release", "--locked", "-p previewd-worker"] {
        assert!(command.contains(flag), "{flag} in {command}");
    }
    assert!(
        read(".ci/run")
            .lines()
            .any(|l| l.trim() == "./scripts/release-build"),
        ".ci/run builds the image's binaries"
    );
    let worker_manifest = read("worker/Cargo.toml");
    let runtime = stage("runtime");
    let copied_binaries = runtime
        .iter()
        .find(|i| i.keyword == "COPY" && i.args.starts_with("--from=build"))
        .expect("the runtime copies the binaries")
        .args
        .clone();
    for bin in ["previewd", "previewd-worker"] {
        assert!(command.contains(&format!("--bin {bin}")), "{command}");
        assert!(
            worker_manifest.contains(&format!("name = \"{bin}\"")),
            "{bin} is a [[bin]] of previewd-worker"
        );
        assert!(
            copied_binaries.contains(&format!("/src/target/release/{bin} ")),
            "{copied_binaries}"
        );
    }
    assert!(
        copied_binaries.ends_with("/usr/local/bin/"),
        "{copied_binaries}"
    );
}

#[test]
fn the_builder_is_the_toolchain_ci_builds_with() {
    let image = arg_default("RUST_IMAGE");
    let version = image
        .strip_prefix("rust:")
        .and_then(|t| t.split('-').next())
        .unwrap_or_else(|| panic!("RUST_IMAGE is rust:X.Y-…: {image}"))
        .to_owned();
    let out = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .expect("rustc");
    let rustc = String::from_utf8_lossy(&out.stdout).into_owned();
    let ci: Vec<&str> = rustc
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split('.')
        .take(2)
        .collect();
    assert_eq!(
        version,
        ci.join("."),
        "the image builds with the rustc CI runs ({rustc})"
    );
    let minimum = toml_lite::parse(&read("Cargo.toml")).rust_version;
    let number = |v: &str| -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    assert!(
        number(&version) >= number(&minimum),
        "{version} meets rust-version {minimum}"
    );
}

#[test]
fn the_build_sees_every_file_it_reads() {
    let build = stage("build");
    let copies: Vec<String> = build
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| i.args.clone())
        .collect();
    let copied = |path: &str| {
        copies
            .iter()
            .any(|c| c.split_whitespace().any(|w| w == path))
    };
    // The dependency layer has every member's manifest, so the workspace resolves, and the
    // build settings (the bundled SQLite's flags are in them).
    assert!(copied("Cargo.lock"), "{copies:?}");
    assert!(copied(".cargo"), "{copies:?}");
    for member in members() {
        assert!(
            copied(&format!("{member}/Cargo.toml")),
            "{member}/Cargo.toml is in the dependency layer"
        );
    }
    // The shipped crates' sources, and every file they include at compile time.
    for krate in ["app", "entity", "migration", "worker"] {
        assert!(copied(krate), "{krate} sources are copied");
        for (file, included) in includes(&workspace().join(krate).join("src")) {
            let resolved = file.parent().expect("a directory").join(&included);
            let resolved = normalize(&resolved);
            let relative = resolved
                .strip_prefix(workspace())
                .unwrap_or(&resolved)
                .to_string_lossy()
                .into_owned();
            // Test fixtures are included by unit tests only, which the image does not build.
            if relative.starts_with("tests/") {
                continue;
            }
            let top = relative.split('/').next().unwrap_or_default();
            assert!(
                copied(&relative) || copied(top),
                "{} includes {relative}, which the Dockerfile does not copy",
                file.display()
            );
        }
    }
    let ignored: BTreeSet<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for path in ["target", ".tools", ".git", "github-app.json"] {
        assert!(ignored.contains(path), ".dockerignore leaves out {path}");
    }
}

/// `include_str!`/`include_bytes!` paths in the `.rs` files under `dir`.
fn includes(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(includes(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for (i, _) in text.match_indices(macro_name) {
                    let rest = &text[i + macro_name.len()..];
                    if let Some(end) = rest.find('"') {
                        out.push((path.clone(), rest[..end].to_owned()));
                    }
                }
            }
        }
    }
    out
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn helm_comes_from_where_the_tests_get_theirs() {
    let helm = stage("helm");
    assert!(
        helm.iter()
            .any(|i| i.keyword == "RUN" && i.args.starts_with("fetch-helm ")),
        "{helm:?}"
    );
    assert!(read("scripts/install-tools").contains("scripts/fetch-helm"));
    assert!(
        stage("runtime")
            .iter()
            .any(|i| i.keyword == "COPY" && i.args == "--from=helm /out/helm /usr/local/bin/helm"),
        "helm lands where the chart's HELM_BIN says"
    );
    assert!(
        read("charts/previewd/templates/worker-deployment.yaml")
            .contains("value: /usr/local/bin/helm")
    );
}

#[test]
fn the_runtime_is_non_root_with_ca_certificates() {
    let runtime = stage("runtime");
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("a USER")
        .args
        .clone();
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("a numeric uid: {user}"));
    assert_ne!(uid, 0, "not root");
    let helpers = read("charts/previewd/templates/_helpers.tpl");
    assert!(
        helpers.contains(&format!("runAsUser: {uid}")),
        "the chart runs as the image's user"
    );
    assert!(
        runtime.iter().any(|i| i.keyword == "RUN"
            && i.args
                .contains("install -y --no-install-recommends ca-certificates")),
        "CA certificates for GitHub and the API server"
    );
    let entrypoint = runtime
        .iter()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    assert_eq!(entrypoint.args, r#"["/usr/local/bin/previewd"]"#);
    for template in ["app-deployment.yaml", "worker-deployment.yaml"] {
        let text = read(&format!("charts/previewd/templates/{template}"));
        assert!(
            text.contains("command: [\"/usr/local/bin/previewd"),
            "{template}"
        );
    }
}
