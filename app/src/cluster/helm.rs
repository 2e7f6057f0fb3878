//! Rendering a repository's Helm chart into objects previewd can apply.
//!
//! [`render_chart`] refuses charts containing symbolic links (helm follows them — a chart must
//! not read the worker's files), runs the real `helm template` (nothing contacts the cluster;
//! values go in on stdin, so they never touch the disk) under a timeout, then [`parse_rendered`]
//! splits the multi-document YAML into JSON objects and vets them: only the namespaced kinds of
//! `kinds.rs`, each forced into the preview namespace, none whose pods carry previewd's own
//! labels (a pod labelled `previewd.dev/role=build` would get the build pods' internet access).
//! [`label_objects`] then adds the preview's labels, so that objects a later render no longer
//! contains can be found and pruned. The chart is the repository's code: every error says what
//! in the chart is wrong, and helm's stderr is capped before it goes into a message.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize as _;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use super::kinds::{ALLOWED_KINDS, allowed_kind};
use super::objects::{ATTEMPT_LABEL, PART_LABEL, PART_WORKLOAD, PREVIEWD_PREFIX, PreviewMeta};

/// Longest a `helm template` may run.
pub const HELM_TIMEOUT: Duration = Duration::from_secs(60);
/// Most rendered YAML accepted (a preview's manifests are kilobytes; this stops a runaway loop).
pub const MAX_RENDERED_BYTES: usize = 8 << 20;
/// Most of helm's stderr kept in an error message.
const MAX_STDERR_CHARS: usize = 2000;

/// Why a chart could not be rendered into objects.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("could not run helm ({path}): {source}")]
    Spawn {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the chart contains a symbolic link ({0}); charts are rendered from plain files only")]
    Symlink(String),
    #[error("could not talk to helm: {0}")]
    Io(#[source] std::io::Error),
    #[error("helm template did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("helm template failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("the chart renders more than {} MiB of manifests", MAX_RENDERED_BYTES >> 20)]
    TooLarge,
    #[error("rendered document {index} is not valid YAML: {message}")]
    Yaml { index: usize, message: String },
    #[error("rendered document {index} is not a Kubernetes object: {reason}")]
    NotAnObject { index: usize, reason: String },
    #[error(
        "the chart renders {kind} {name:?} ({api_version}), which a preview may not contain; \
         allowed kinds: {}",
        allowed_list()
    )]
    ForbiddenKind {
        api_version: String,
        kind: String,
        name: String,
    },
    #[error(
        "the chart's {kind} {name:?} sets the label {label:?} on its pods; labels under \
         {PREVIEWD_PREFIX} are previewd's own"
    )]
    ReservedLabel {
        kind: String,
        name: String,
        label: String,
    },
    #[error(
        "the chart's Ingress {name:?} {problem}; a preview's Ingresses may only serve its own \
         host {host}"
    )]
    ForeignHost {
        name: String,
        problem: String,
        host: String,
    },
}

fn allowed_list() -> String {
    ALLOWED_KINDS
        .iter()
        .map(|k| format!("{}/{}", k.api_version, k.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders `chart_dir` as release `release` in `namespace` with `values`, and vets the objects
/// ([`parse_rendered`]). Runs `helm template <release> <chart_dir> --namespace <namespace>
/// --values - --skip-tests` with the values as JSON on stdin (JSON is YAML).
pub async fn render_chart(
    helm_bin: &Path,
    chart_dir: &Path,
    release: &str,
    namespace: &str,
    values: &Value,
) -> Result<Vec<Value>, HelmError> {
    let values = serde_json::to_vec(values).map_err(|e| HelmError::Io(e.into()))?;
    let dir = chart_dir.to_path_buf();
    let link = tokio::task::spawn_blocking(move || find_symlink(&dir))
        .await
        .map_err(|e| HelmError::Io(std::io::Error::other(e)))?;
    if let Some(link) = link {
        return Err(HelmError::Symlink(link));
    }
    let mut child = Command::new(helm_bin)
        .arg("template")
        .arg(release)
        .arg(chart_dir)
        .args(["--namespace", namespace, "--values", "-", "--skip-tests"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HelmError::Spawn {
            path: helm_bin.display().to_string(),
            source,
        })?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(HelmError::Io(std::io::Error::other(
            "helm's pipes are missing",
        )));
    };

    let run = async {
        let feed = async {
            let written = stdin.write_all(&values).await;
            drop(stdin); // EOF: helm reads the values to the end.
            written
        };
        let (fed, out, err) = tokio::join!(
            feed,
            read_capped(stdout, MAX_RENDERED_BYTES),
            read_capped(stderr, MAX_STDERR_CHARS * 4)
        );
        let status = child.wait().await.map_err(HelmError::Io)?;
        let (stdout, too_large) = out.map_err(HelmError::Io)?;
        let (stderr, _) = err.map_err(HelmError::Io)?;
        if !status.success() {
            return Err(HelmError::Failed {
                status: status.to_string(),
                stderr: cap(&String::from_utf8_lossy(&stderr)),
            });
        }
        // A broken pipe while feeding values is only worth reporting if helm then succeeded.
        fed.map_err(HelmError::Io)?;
        if too_large {
            return Err(HelmError::TooLarge);
        }
        Ok(stdout)
    };
    let stdout = tokio::time::timeout(HELM_TIMEOUT, run)
        .await
        .map_err(|_| HelmError::Timeout(HELM_TIMEOUT))??;
    parse_rendered(&String::from_utf8_lossy(&stdout), namespace)
}

/// Splits `helm template` output into objects, skipping empty and comment-only documents;
/// refuses kinds outside the allow-list and pods with previewd's labels; sets every object's
/// `metadata.namespace` to `namespace`.
pub fn parse_rendered(yaml: &str, namespace: &str) -> Result<Vec<Value>, HelmError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(document).map_err(|e| HelmError::Yaml {
            index,
            message: e.to_string(),
        })?;
        let mut object = match value {
            Value::Null => continue,
            Value::Object(_) => value,
            other => {
                return Err(HelmError::NotAnObject {
                    index,
                    reason: format!("a {} instead of a mapping", json_type(&other)),
                });
            }
        };
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| HelmError::NotAnObject {
                    index,
                    reason: format!("no {}", pointer[1..].replace('/', ".")),
                })
        };
        let api_version = text("/apiVersion")?;
        let kind = text("/kind")?;
        let name = text("/metadata/name")?;
        let Some(allowed) = allowed_kind(&api_version, &kind) else {
            return Err(HelmError::ForbiddenKind {
                api_version,
                kind,
                name,
            });
        };
        if let Some(labels) = allowed
            .pod_labels
            .and_then(|pointer| object.pointer(pointer))
            .and_then(Value::as_object)
            && let Some(label) = labels.keys().find(|k| k.starts_with(PREVIEWD_PREFIX))
        {
            return Err(HelmError::ReservedLabel {
                kind,
                name,
                label: label.clone(),
            });
        }
        // `metadata.name` is a string, so `metadata` is a mapping.
        if let Some(metadata) = object
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
        {
            metadata.insert("namespace".to_owned(), namespace.into());
        }
        objects.push(object);
    }
    Ok(objects)
}

/// Refuses Ingresses that would serve anything but the preview's own `host` (every rule names
/// it; TLS is for it alone; no default backend, which would catch every host of the ingress
/// class). A chart is the repository's code: without this it could claim another preview's
/// host, or any host under the preview domain.
pub fn vet_ingresses(objects: &[Value], host: &str) -> Result<(), HelmError> {
    for object in objects {
        if object.get("kind").and_then(Value::as_str) != Some("Ingress") {
            continue;
        }
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let refuse = |problem: String| HelmError::ForeignHost {
            name: name.clone(),
            problem,
            host: host.to_owned(),
        };
        if object.pointer("/spec/defaultBackend").is_some() {
            return Err(refuse(
                "has a default backend (it would serve every host)".into(),
            ));
        }
        let rules = object
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if rules.is_empty() {
            return Err(refuse("has no rules".into()));
        }
        for rule in &rules {
            match rule.get("host").and_then(Value::as_str) {
                Some(h) if h.eq_ignore_ascii_case(host) => {}
                Some(h) => return Err(refuse(format!("serves the host {h:?}"))),
                None => {
                    return Err(refuse(
                        "has a rule without a host (it would serve every host)".into(),
                    ));
                }
            }
        }
        for tls in object
            .pointer("/spec/tls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for h in tls
                .get("hosts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let h = h.as_str().unwrap_or_default();
                if !h.eq_ignore_ascii_case(host) {
                    return Err(refuse(format!("asks for a certificate for {h:?}")));
                }
            }
        }
    }
    Ok(())
}

/// Adds the preview's labels and the workload mark ([`PART_LABEL`]) to every object
/// (overriding any of the same keys), so the objects of a preview can be selected for pruning,
/// and labels the pod templates with the attempt, so every deploy rolls the pods and failures
/// are read from this attempt's pods only. A Job's template is left alone: it cannot change
/// once created.
pub fn label_objects(objects: &mut [Value], meta: &PreviewMeta) {
    let mut labels = meta.labels();
    labels.insert(PART_LABEL.to_owned(), PART_WORKLOAD.to_owned());
    for object in objects {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(map) = object.as_object_mut() else {
            continue;
        };
        let target = labels_at(map, &["metadata", "labels"]);
        for (key, value) in &labels {
            target.insert(key.clone(), value.clone().into());
        }
        let template = allowed_kind(&api_version, &kind).and_then(|k| k.pod_labels);
        if let Some(pointer) = template.filter(|_| kind != "Job") {
            let path: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
            let target = labels_at(map, &path);
            target.insert(ATTEMPT_LABEL.to_owned(), meta.attempt_id.to_string().into());
        }
    }
}

/// The mapping at `path` under `map`, created (and replacing whatever is not a mapping) on the
/// way.
fn labels_at<'a>(map: &'a mut Map<String, Value>, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut current = map;
    for key in path {
        let entry = current
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        current = match entry {
            Value::Object(next) => next,
            _ => unreachable!("replaced by a mapping just above"),
        };
    }
    current
}

/// The first symbolic link under `dir` (relative to it), if any. helm follows links, so a
/// repository's chart could otherwise pull any file the worker can read (its service-account
/// token, say) into an object of the preview. Unreadable directories are left for helm to
/// report.
fn find_symlink(dir: &Path) -> Option<String> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if file_type.is_symlink() {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                return Some(relative.display().to_string());
            }
            if file_type.is_dir() {
                pending.push(path);
            }
        }
    }
    None
}

/// Reads `reader` to the end, keeping the first `limit` bytes; says whether more came.
async fn read_capped(
    mut reader: impl AsyncRead + Unpin,
    limit: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    (&mut reader)
        .take(limit as u64)
        .read_to_end(&mut kept)
        .await?;
    let rest = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await?;
    Ok((kept, rest > 0))
}

/// `text` trimmed and cut to [`MAX_STDERR_CHARS`] characters.
fn cap(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_STDERR_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::objects::{PREVIEW_ID_LABEL, ROLE_LABEL};

    const RENDERED: &str = r#"---
# Source: demo/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo-config
  namespace: somewhere-else
data:
  greeting: "hello"
---
# Source: demo/templates/empty.yaml
# nothing rendered here
---

---
# Source: demo/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
  labels:
    app: demo
spec:
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
        - name: demo
          image: nginx
"#;

    fn meta() -> PreviewMeta {
        crate::cluster::objects::tests::meta()
    }

    #[test]
    fn splits_documents_skipping_empty_ones_and_forces_the_namespace() {
        let objects = parse_rendered(RENDERED, "acme-web-pr-12").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["kind"], "ConfigMap");
        assert_eq!(objects[0]["data"]["greeting"], "hello");
        assert_eq!(objects[1]["kind"], "Deployment");
        for object in &objects {
            assert_eq!(object["metadata"]["namespace"], "acme-web-pr-12");
        }
        assert_eq!(parse_rendered("", "ns").unwrap(), Vec::<Value>::new());
        assert_eq!(
            parse_rendered("# only a comment\n---\n", "ns").unwrap(),
            Vec::<Value>::new()
        );
    }

    #[test]
    fn refuses_cluster_scoped_and_unknown_kinds() {
        for (api_version, kind) in [
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("v1", "Namespace"),
            ("v1", "PersistentVolume"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ("example.com/v1", "Widget"),
        ] {
            let yaml = format!("apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: x\n");
            let err = parse_rendered(&yaml, "ns").unwrap_err();
            assert!(
                matches!(err, HelmError::ForbiddenKind { .. }),
                "{kind}: {err}"
            );
            let message = err.to_string();
            assert!(
                message.contains(kind) && message.contains("apps/v1/Deployment"),
                "{message}"
            );
        }
    }

    #[test]
    fn refuses_pods_wearing_previewd_labels() {
        let yaml = RENDERED.replace(
            "labels: {app: demo}",
            "labels: {app: demo, previewd.dev/role: build}",
        );
        let err = parse_rendered(&yaml, "ns").unwrap_err();
        assert!(
            matches!(err, HelmError::ReservedLabel { ref label, .. } if label == ROLE_LABEL),
            "{err}"
        );
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    previewd.dev/role: build\n";
        assert!(matches!(
            parse_rendered(pod, "ns"),
            Err(HelmError::ReservedLabel { .. })
        ));
        let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels: {previewd.dev/x: y}\n";
        assert!(matches!(
            parse_rendered(cron, "ns"),
            Err(HelmError::ReservedLabel { .. })
        ));
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for (yaml, expected) in [
            ("- a\n- b\n", "list"),
            ("just text\n", "string"),
            ("kind: ConfigMap\nmetadata: {name: x}\n", "apiVersion"),
            ("apiVersion: v1\nmetadata: {name: x}\n", "kind"),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
                "metadata.name",
            ),
        ] {
            let err = parse_rendered(yaml, "ns").unwrap_err();
            assert!(
                matches!(err, HelmError::NotAnObject { .. }),
                "{yaml}: {err}"
            );
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = parse_rendered("a: [unclosed\n", "ns").unwrap_err();
        assert!(matches!(err, HelmError::Yaml { index: 0, .. }), "{err}");
    }

    #[test]
    fn labels_objects_for_pruning() {
        let mut objects = parse_rendered(RENDERED, "acme-web-pr-12").unwrap();
        objects.push(serde_json::json!({"metadata": {"labels": null}}));
        label_objects(&mut objects, &meta());
        for object in &objects {
            let labels = object["metadata"]["labels"].as_object().unwrap();
            for (key, value) in meta().labels() {
                assert_eq!(labels[&key], value.as_str());
            }
        }
        assert_eq!(objects[1]["metadata"]["labels"]["app"], "demo");
        assert_eq!(objects[0]["metadata"]["labels"][PREVIEW_ID_LABEL], "7");
        assert_eq!(objects[0]["metadata"]["labels"][PART_LABEL], PART_WORKLOAD);
        assert_eq!(
            objects[1]["spec"]["template"]["metadata"]["labels"][ATTEMPT_LABEL],
            "41"
        );
    }

    #[test]
    fn ingresses_serve_only_the_preview_host() {
        let host = "acme-web-pr-12.preview.example.com";
        let ingress = |spec: Value| {
            vec![serde_json::json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web"}, "spec": spec
            })]
        };
        let rule = |h: &str| serde_json::json!({"host": h, "http": {"paths": []}});
        assert!(
            vet_ingresses(
                &ingress(serde_json::json!({"rules": [rule(host)], "tls": [{"hosts": [host]}]})),
                host
            )
            .is_ok()
        );
        assert!(
            vet_ingresses(
                &ingress(
                    serde_json::json!({"rules": [rule("ACME-web-pr-12.preview.example.com")]})
                ),
                host
            )
            .is_ok()
        );
        for (spec, expected) in [
            (
                serde_json::json!({"rules": [rule("other-pr-1.preview.example.com")]}),
                "other-pr-1",
            ),
            (
                serde_json::json!({"rules": [rule("evil.example.org")]}),
                "evil.example.org",
            ),
            (
                serde_json::json!({"rules": [{"http": {"paths": []}}]}),
                "without a host",
            ),
            (
                serde_json::json!({"defaultBackend": {"service": {"name": "x"}}}),
                "default backend",
            ),
            (
                serde_json::json!({"rules": [rule(host)], "tls": [{"hosts": ["*.preview.example.com"]}]}),
                "certificate",
            ),
            (serde_json::json!({}), "no rules"),
        ] {
            let err = vet_ingresses(&ingress(spec), host).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
            assert!(err.to_string().contains(host), "{err}");
        }
    }

    #[test]
    fn stderr_is_capped() {
        let long = "x".repeat(MAX_STDERR_CHARS * 3);
        assert_eq!(cap(&long).chars().count(), MAX_STDERR_CHARS + 1);
        assert_eq!(cap("  short \n"), "short");
    }

    #[tokio::test]
    async fn a_missing_helm_binary_is_a_spawn_error() {
        let err = render_chart(
            Path::new("/nonexistent/helm"),
            Path::new("."),
            "r",
            "ns",
            &serde_json::json!({}),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, HelmError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/helm"));
    }
}
