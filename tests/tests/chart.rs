//! The Helm chart that installs previewd (`charts/previewd`), checked the way CI checks it:
//! `helm lint --strict` and `helm template` with the default values and every realistic values
//! file of `charts/previewd/ci/`, each rendering validated by `kubernetes-validate --strict`;
//! the values schema refusing what it must; what the pods look like; and the RBAC compared, both
//! ways, with what the app and the worker actually send the simulated cluster in end-to-end
//! scenarios — every (verb, resource) they use is granted, and nothing they never use is.
//!
//! helm and kubernetes-validate are required (`scripts/install-tools`; `scripts/test` runs it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use previewd_entity::PreviewStatus;
use previewd_tests::{
    db::Engine,
    github::{GitHubSim, GitHubSimOptions},
    kube::{Behaviour, KubeSim, KubeSimOptions, Target},
    registration::{TEST_FIELD_MANAGER, register_into_secret},
    scenario::{APP_CLIENT, MAINTAINER, Options, REPO, Scenario},
    visitor::{Visitor, read_until},
    wait,
};
use serde::Deserialize as _;
use serde_json::{Value, json};

/// Release name and namespace of every rendering (the README's `helm install` uses these).
const RELEASE: &str = "previewd";
const NAMESPACE: &str = "previewd";
const KUBERNETES_VERSION: &str = "1.35.0";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    workspace().join("charts/previewd")
}

/// `$HELM_BIN`, else `.tools/bin/helm`.
fn helm() -> PathBuf {
    let path = std::env::var_os("HELM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".tools/bin/helm"));
    assert!(
        path.is_file(),
        "helm not found at {}: run scripts/install-tools",
        path.display()
    );
    path
}

/// The realistic values files, `charts/previewd/ci/*.yaml`.
fn values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/previewd/ci")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "several realistic values files: {files:?}"
    );
    files
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `helm template` with `args` (values files, `--set`s); the objects, or helm's complaint.
fn render(args: &[String]) -> Result<Vec<Value>, String> {
    let (ok, text) = run(Command::new(helm())
        .args(["template", RELEASE])
        .arg(chart_dir())
        .args([
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBERNETES_VERSION,
        ])
        .args(args));
    if !ok {
        return Err(text);
    }
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| e.to_string())?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn defaults() -> Vec<Value> {
    render(&[]).unwrap_or_else(|e| panic!("the default values render: {e}"))
}

fn with_file(file: &Path) -> Vec<Value> {
    render(&["-f".to_owned(), file.display().to_string()])
        .unwrap_or_else(|e| panic!("{} renders: {e}", file.display()))
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind_name: &str, name: &str) -> &'a Value {
    kind(objects, kind_name)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind_name} {name}"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[test]
fn helm_lint_strict_passes_with_every_values_file() {
    let mut runs: Vec<Vec<String>> = vec![Vec::new()];
    runs.extend(
        values_files()
            .iter()
            .map(|f| vec!["-f".to_owned(), f.display().to_string()]),
    );
    for args in runs {
        let (ok, output) = run(Command::new(helm())
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(["--namespace", NAMESPACE])
            .args(&args));
        assert!(ok, "helm lint --strict {args:?}:\n{output}");
        assert!(output.contains("0 chart(s) failed"), "{output}");
    }
}

#[test]
fn every_rendering_validates_against_the_kubernetes_schemas() {
    let mut renderings = vec![("defaults".to_owned(), defaults())];
    for file in values_files() {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        renderings.push((name, with_file(&file)));
    }
    let dir = std::env::temp_dir()
        .join("previewd-tests")
        .join(format!("chart-{}", uuid::Uuid::new_v4().simple()));
    for (name, objects) in &renderings {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).expect("temp dir");
        let mut files = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let path = sub.join(format!(
                "{i:02}-{}-{}.yaml",
                text(&object["kind"]).to_lowercase(),
                text(&object["metadata"]["name"])
            ));
            std::fs::write(&path, serde_yaml::to_string(object).expect("YAML")).expect("write");
            files.push(path);
        }
        let (ok, output) = run(Command::new("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
            .args(&files));
        assert!(
            ok,
            "{name}: kubernetes-validate failed (missing? run scripts/install-tools):\n{output}"
        );
        for (file, object) in files.iter().zip(objects) {
            let file = file.display().to_string();
            let line = output
                .lines()
                .find(|l| l.contains(&file))
                .unwrap_or_else(|| panic!("{name}: {file} not reported:\n{output}"));
            // The one custom resource: no schema ships for it; its shape is checked below.
            let custom = object["apiVersion"] == "monitoring.coreos.com/v1";
            assert!(
                line.contains("passed") || (custom && line.contains("Couldn't find schema")),
                "{name}: {line}"
            );
        }
        assert!(!output.contains("ERROR"), "{name}: {output}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_values_schema_refuses_unknown_keys_and_misplaced_secrets() {
    for bad in [
        "replicas=3",            // not a key of the chart
        "app.replica=3",         // a typo
        "config.DATABASE_URL=x", // a secret: from existingSecret only
        "config.GITHUB_PRIVATE_KEY=x",
        "config.LISTEN_ADDR=0.0.0.0:80", // set by the chart
        "config.NOT_A_SETTING=1",
        "ingress.tls=true",
        "rbac.fence=maybe",
    ] {
        let result = render(&["--set".to_owned(), bad.to_owned()]);
        assert!(result.is_err(), "--set {bad} was accepted");
    }
    assert!(render(&["--set".to_owned(), "config.PREVIEW_TTL=24h".to_owned()]).is_ok());
}

/// Every setting of `config.rs` is exactly one of: set through `config` (the schema lists it),
/// set by the chart itself, or a secret from `existingSecret` — so a new setting cannot be
/// forgotten by the chart.
#[test]
fn config_keys_are_exactly_previewds_settings() {
    use clap::Args as _;
    let command = previewd::config::Settings::augment_args(clap::Command::new("previewd"));
    let settings: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).expect("schema"),
    )
    .expect("JSON");
    let through_config: BTreeSet<String> = schema["properties"]["config"]["properties"]
        .as_object()
        .expect("config properties")
        .keys()
        .cloned()
        .collect();
    let set_by_chart: BTreeSet<String> = [
        "LISTEN_ADDR",
        "GITHUB_APP_CREDENTIALS",
        "GITHUB_APP_CREDENTIALS_SECRET",
        "PREVIEW_ROLE",
        "WORKER_SERVICE_ACCOUNT",
        "VIEWER_ROLE",
        "APP_SERVICE_ACCOUNT",
        "WORKER_NAME",
        "HELM_BIN",
        // In-cluster configuration: no kubeconfig.
        "KUBECONFIG",
    ]
    .map(str::to_owned)
    .into();
    let from_secret: BTreeSet<String> = [
        "DATABASE_URL",
        "REDIS_URL",
        "GITHUB_APP_ID",
        "GITHUB_PRIVATE_KEY",
        "GITHUB_WEBHOOK_SECRET",
        "GITHUB_CLIENT_ID",
        "GITHUB_CLIENT_SECRET",
        // The key comes as text (GITHUB_PRIVATE_KEY); a path would need a mount of its own.
        "GITHUB_PRIVATE_KEY_PATH",
    ]
    .map(str::to_owned)
    .into();
    let mut all = BTreeSet::new();
    for group in [&through_config, &set_by_chart, &from_secret] {
        for key in group {
            assert!(all.insert(key.clone()), "{key} is in two groups");
        }
    }
    assert_eq!(
        all, settings,
        "the chart's view of the settings is config.rs's"
    );

    // What the chart says it sets, it sets.
    let objects = defaults();
    let env_names: BTreeSet<String> = kind(&objects, "Deployment")
        .iter()
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| text(&e["name"]).to_owned())
        .chain(
            kind(&objects, "ConfigMap")[0]["data"]
                .as_object()
                .map(|d| d.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        )
        .collect();
    for key in set_by_chart.iter().filter(|k| *k != "KUBECONFIG") {
        assert!(env_names.contains(key), "the chart sets {key}");
    }
}

fn containers_of(deployment: &Value) -> &Vec<Value> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
}

#[test]
fn pods_are_restricted_probed_sized_and_replicated() {
    for file in values_files() {
        let objects = with_file(&file);
        let deployments = kind(&objects, "Deployment");
        assert_eq!(deployments.len(), 2, "app and worker");
        for d in &deployments {
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            for c in containers_of(d) {
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{file:?}");
                assert_eq!(sc["readOnlyRootFilesystem"], true);
                assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
                assert!(c["resources"]["requests"]["memory"].is_string());
                assert!(c["resources"]["limits"]["memory"].is_string());
                assert!(
                    c["envFrom"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|s| s["secretRef"]["name"].is_string())),
                    "secrets come from the existing Secret"
                );
            }
        }
        let app = named(&objects, "Deployment", "previewd-app");
        let c = &containers_of(app)[0];
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["command"], json!(["/usr/local/bin/previewd"]));
        let worker = named(&objects, "Deployment", "previewd-worker");
        assert_eq!(
            containers_of(worker)[0]["command"],
            json!(["/usr/local/bin/previewd-worker"])
        );
        assert_ne!(
            app["spec"]["template"]["spec"]["serviceAccountName"],
            worker["spec"]["template"]["spec"]["serviceAccountName"],
            "separate ServiceAccounts"
        );
    }
    let big = with_file(&chart_dir().join("ci/github-com-values.yaml"));
    assert_eq!(
        named(&big, "Deployment", "previewd-app")["spec"]["replicas"],
        3
    );
    assert_eq!(
        named(&big, "Deployment", "previewd-worker")["spec"]["replicas"],
        4
    );
    assert_eq!(kind(&big, "PodDisruptionBudget").len(), 2);
    assert_eq!(kind(&big, "NetworkPolicy").len(), 2);
    let ingress = named(&big, "Ingress", "previewd");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "previewd.acme.dev");
    let config = named(&big, "ConfigMap", "previewd");
    assert_eq!(config["data"]["PUBLIC_URL"], "https://previewd.acme.dev");
    assert_eq!(config["data"]["WORKER_CONCURRENCY"], "8");
    let small = with_file(&chart_dir().join("ci/small-cluster-values.yaml"));
    assert!(kind(&small, "PodDisruptionBudget").is_empty());
    assert!(kind(&small, "NetworkPolicy").is_empty());
    assert!(kind(&small, "ValidatingAdmissionPolicy").is_empty());
}

#[test]
fn the_service_monitor_scrapes_the_apps_metrics_port() {
    let objects = with_file(&chart_dir().join("ci/github-com-values.yaml"));
    let monitor = named(&objects, "ServiceMonitor", "previewd");
    let service = named(&objects, "Service", "previewd");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("a selector");
    let labels = service["metadata"]["labels"].as_object().expect("labels");
    for (k, v) in selector {
        assert_eq!(
            labels.get(k),
            Some(v),
            "the ServiceMonitor selects the Service"
        );
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
}

#[test]
fn the_credentials_secret_is_kept_and_the_app_has_a_token_only_when_it_has_rights() {
    let objects = defaults();
    let secret = named(&objects, "Secret", "previewd-github-app");
    assert_eq!(
        secret["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
        "an uninstall never loses the App"
    );
    assert!(
        secret.get("data").is_none(),
        "created empty: the app fills it"
    );
    let app = named(&objects, "Deployment", "previewd-app");
    let env = containers_of(app)[0]["env"]
        .as_array()
        .expect("env")
        .clone();
    assert!(
        env.iter()
            .any(|e| e["name"] == "GITHUB_APP_CREDENTIALS_SECRET"
                && e["value"] == "previewd/previewd-github-app")
    );

    let by_hand = with_file(&chart_dir().join("ci/enterprise-server-values.yaml"));
    let app = named(&by_hand, "Deployment", "previewd-app");
    assert_eq!(
        app["spec"]["template"]["spec"]["automountServiceAccountToken"], true,
        "the dashboard reads preview namespaces (through the viewer role the worker binds)"
    );
    assert!(
        kind(&by_hand, "Role").is_empty(),
        "no right in the release's namespace"
    );
    assert!(kind(&by_hand, "Secret").is_empty());
    let no_rbac = render(&[
        "--values".into(),
        chart_dir()
            .join("ci/enterprise-server-values.yaml")
            .display()
            .to_string(),
        "--set".into(),
        "rbac.create=false".into(),
    ])
    .expect("renders");
    let app = named(&no_rbac, "Deployment", "previewd-app");
    assert_eq!(
        app["spec"]["template"]["spec"]["automountServiceAccountToken"], false,
        "no registration, no viewer role: no token at all"
    );
}

// ----- RBAC, compared with what previewd does -----

/// One RBAC permission: API group, resource (`pods/log` for a subresource), verb.
type Permission = (String, String, String);

/// A rule's permissions, with its resourceNames.
fn permissions_of(rules: &Value) -> Vec<(Permission, Vec<String>)> {
    let mut out = Vec::new();
    for rule in rules.as_array().cloned().unwrap_or_default() {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map(|a| a.iter().map(|v| text(v).to_owned()).collect())
                .unwrap_or_default()
        };
        let names = list("resourceNames");
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    assert!(
                        ![&group, &resource, &verb].iter().any(|s| s.contains('*')),
                        "no wildcards: {rule}"
                    );
                    out.push(((group.clone(), resource.clone(), verb), names.clone()));
                }
            }
        }
    }
    out
}

/// The RBAC verbs a simulated-cluster request needs: server-side apply is a PATCH that creates
/// the object when it is missing, which Kubernetes authorizes as `create`.
fn rbac_verbs(verb: &str) -> Vec<&str> {
    match verb {
        "apply" => vec!["create", "patch"],
        other => vec![other],
    }
}

fn permissions_used(targets: &[&Target]) -> BTreeSet<Permission> {
    targets
        .iter()
        .flat_map(|t| {
            rbac_verbs(&t.verb)
                .into_iter()
                .map(|v| (t.group.clone(), t.resource.clone(), v.to_owned()))
        })
        .collect()
}

/// Roles bound to `subject` (`namespace/name`) by the chart's bindings of `binding_kind`.
fn bound_roles<'a>(objects: &'a [Value], binding_kind: &str, subject: &str) -> Vec<&'a Value> {
    let (ns, name) = subject.split_once('/').expect("NAMESPACE/NAME");
    kind(objects, binding_kind)
        .into_iter()
        .filter(|b| {
            b["subjects"].as_array().is_some_and(|s| {
                s.iter().any(|s| {
                    s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == ns
                })
            })
        })
        .map(|b| {
            let role_kind = text(&b["roleRef"]["kind"]);
            named(objects, role_kind, text(&b["roleRef"]["name"]))
        })
        .collect()
}

fn worker_env(objects: &[Value], name: &str) -> String {
    let worker = named(objects, "Deployment", "previewd-worker");
    containers_of(worker)[0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| text(&e["value"]).to_owned())
        .unwrap_or_else(|| panic!("the worker gets {name}"))
}

/// The requests previewd sent in a scenario (not the test's own): the worker's, and the app's
/// (`Target::client` is `APP_CLIENT`).
fn worker_targets(kube: &KubeSim) -> Vec<Target> {
    kube.requests()
        .by_target
        .into_keys()
        .filter(|t| t.field_manager.as_deref() != Some(TEST_FIELD_MANAGER))
        .collect()
}

/// A maintainer reads a running preview on the dashboard: the detail page (pods, the log, the
/// attempt's events, usage) and the log followed live.
async fn dashboard_reads(settings: Vec<String>) -> anyhow::Result<Vec<Target>> {
    let mut options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    options.settings.extend(settings);
    let mut s = Scenario::start(options).await?;
    let pr = s.open_pr_with_config("feature/look", READY_IMAGE).await;
    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
    let mut maya = Visitor::new(&s.app_url, MAINTAINER)?;
    let page = maya.sign_in(&format!("/previews/{}", preview.id)).await?;
    assert!(
        page.body.contains("Events of the current attempt") && page.body.contains("CPU"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("may not read"), "{}", page.body);
    let mut live = maya
        .open_stream(&format!("/previews/{}/logs/stream", preview.id))
        .await?;
    let mut seen = String::new();
    assert!(read_until(&mut live, &mut seen, "data: ").await?, "{seen}");
    drop(live);
    let targets = worker_targets(&s.kube);
    s.stop().await?;
    Ok(targets)
}

const READY_IMAGE: &str = "image: registry.example.test/acme/web:{sha}\nport: 8080\n";

async fn start(settings: &[String]) -> anyhow::Result<Scenario> {
    let mut options = Options::new(Engine::Sqlite);
    options.settings.extend(settings.iter().cloned());
    Scenario::start(options).await
}

/// A ready-made image, then the pull request closed: deploy and cleanup.
async fn ready_image_then_cleanup(settings: Vec<String>) -> anyhow::Result<Vec<Target>> {
    let mut s = start(&settings).await?;
    let pr = s.open_pr_with_config("feature/ready", READY_IMAGE).await;
    s.wait_status(pr.number, PreviewStatus::Running).await;
    s.gh.close_pr(REPO, pr.number, false).await;
    s.wait_status(pr.number, PreviewStatus::Deleted).await;
    let targets = worker_targets(&s.kube);
    s.stop().await?;
    Ok(targets)
}

/// No config: the image is built in the cluster, then deployed.
async fn in_cluster_build(settings: Vec<String>) -> anyhow::Result<Vec<Target>> {
    let mut s = start(&settings).await?;
    let pr = s.open_pr("feature/build").await;
    s.wait_status(pr.number, PreviewStatus::Running).await;
    let targets = worker_targets(&s.kube);
    s.stop().await?;
    Ok(targets)
}

/// A build that fails: its log is read for the check run.
async fn failed_build(settings: Vec<String>) -> anyhow::Result<Vec<Target>> {
    let mut s = start(&settings).await?;
    s.kube.set_behaviour_for_image(
        "moby/buildkit",
        Behaviour::JobFails {
            logs: vec!["npm ERR! missing script: build".into()],
        },
    );
    let pr = s.open_pr("feature/broken").await;
    s.wait_status(pr.number, PreviewStatus::Failed).await;
    let targets = worker_targets(&s.kube);
    s.stop().await?;
    Ok(targets)
}

/// A workload that crash-loops: pods, events and logs are read for the report.
async fn crash_loop(settings: Vec<String>) -> anyhow::Result<Vec<Target>> {
    let mut s = start(&settings).await?;
    s.kube.set_behaviour_for_image(
        "registry.example.test/acme/web",
        Behaviour::CrashLoopBackOff {
            logs: vec!["panic: cannot bind :8080".into()],
        },
    );
    let pr = s.open_pr_with_config("feature/crash", READY_IMAGE).await;
    s.wait_status(pr.number, PreviewStatus::Failed).await;
    let targets = worker_targets(&s.kube);
    s.stop().await?;
    Ok(targets)
}

/// A repository chart holding one object of every kind previewd lets a chart apply, rendered by
/// the real helm.
async fn repository_chart(settings: Vec<String>) -> anyhow::Result<Vec<Target>> {
    let mut s = start(&settings).await?;
    let fixture = workspace().join("tests/fixtures/every-kind-chart");
    for file in previewd_tests::files_under(&fixture) {
        let relative = file.strip_prefix(&fixture)?.to_string_lossy().into_owned();
        s.gh.put_file(
            REPO,
            "feature/chart",
            &format!("deploy/chart/{relative}"),
            &std::fs::read_to_string(&file)?,
        );
    }
    let pr = s
        .open_pr_with_config(
            "feature/chart",
            "image: registry.example.test/acme/web:{sha}\nchart: deploy/chart\n",
        )
        .await;
    let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
    for kind in previewd::cluster::kinds::ALLOWED_KINDS {
        assert!(
            !s.kube
                .list(kind.plural, Some(&preview.namespace))
                .is_empty(),
            "the chart's {} was applied",
            kind.kind
        );
    }
    // The next commit drops the chart for the built-in service: everything else is pruned (and
    // the Deployment, whose selector differs, replaced). The one after takes a small chart of
    // one other Deployment: the built-in service's objects are pruned in turn.
    s.gh.put_file(REPO, "feature/chart", ".github/preview.yml", READY_IMAGE);
    let second = s.sha();
    s.gh.push(REPO, pr.number, &second).await;
    assert_eq!(
        s.completed_check_run(&second).await.conclusion.as_deref(),
        Some("success")
    );
    for kind in [
        "configmaps",
        "statefulsets",
        "cronjobs",
        "horizontalpodautoscalers",
    ] {
        assert!(
            s.kube.list(kind, Some(&preview.namespace)).is_empty(),
            "{kind} pruned"
        );
    }
    s.gh.put_file(
        REPO,
        "feature/chart",
        ".github/preview.yml",
        "image: registry.example.test/acme/web:{sha}\nchart: deploy/small\n",
    );
    s.gh.put_file(
        REPO,
        "feature/chart",
        "deploy/small/Chart.yaml",
        "apiVersion: v2\nname: small\nversion: 0.1.0\n",
    );
    s.gh.put_file(
        REPO,
        "feature/chart",
        "deploy/small/templates/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  selector:\n    matchLabels: {app: small}\n  template:\n    metadata:\n      labels: {app: small}\n    spec:\n      containers:\n        - name: app\n          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n",
    );
    let third = s.sha();
    s.gh.push(REPO, pr.number, &third).await;
    assert_eq!(
        s.completed_check_run(&third).await.conclusion.as_deref(),
        Some("success")
    );
    for kind in ["services", "ingresses"] {
        assert!(
            s.kube.list(kind, Some(&preview.namespace)).is_empty(),
            "{kind} pruned"
        );
    }
    let targets = worker_targets(&s.kube);
    s.stop().await?;
    Ok(targets)
}

/// A namespace labelled as this install's with no preview behind it is swept by the reconciler.
async fn orphan_sweep(mut settings: Vec<String>) -> anyhow::Result<Vec<Target>> {
    settings.extend(["--reconcile-interval=1s".into(), "--orphan-grace=0s".into()]);
    let s = start(&settings).await?;
    let install = s.install_id().await?;
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({
        "metadata": { "name": "acme-web-pr-404", "labels": {
            "app.kubernetes.io/managed-by": "previewd", "previewd.dev/install": install
        } }
    }))?;
    let params = kube::api::PostParams {
        field_manager: Some(TEST_FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(s.kube.client().await?)
        .create(&params, &ns)
        .await?;
    let kube = s.kube.clone();
    wait::until(
        "the orphan namespace to go",
        Duration::from_secs(60),
        || {
            let kube = kube.clone();
            async move {
                kube.get("namespaces", None, "acme-web-pr-404")
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await?;
    let targets = worker_targets(&s.kube);
    s.stop().await?;
    Ok(targets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_rbac_is_exactly_what_it_uses() -> anyhow::Result<()> {
    let objects = defaults();
    let preview_role = worker_env(&objects, "PREVIEW_ROLE");
    let account = worker_env(&objects, "WORKER_SERVICE_ACCOUNT");
    let viewer_role = worker_env(&objects, "VIEWER_ROLE");
    let app_account = worker_env(&objects, "APP_SERVICE_ACCOUNT");
    let settings = vec![
        format!("--preview-role={preview_role}"),
        format!("--worker-service-account={account}"),
        format!("--viewer-role={viewer_role}"),
        format!("--app-service-account={app_account}"),
        format!("--helm-bin={}", helm().display()),
    ];
    let stories = futures::future::join_all([
        Box::pin(ready_image_then_cleanup(settings.clone()))
            as std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Vec<Target>>> + Send>>,
        Box::pin(in_cluster_build(settings.clone())),
        Box::pin(failed_build(settings.clone())),
        Box::pin(crash_loop(settings.clone())),
        Box::pin(repository_chart(settings.clone())),
        Box::pin(orphan_sweep(settings.clone())),
        Box::pin(dashboard_reads(settings.clone())),
    ])
    .await;
    let mut targets = Vec::new();
    for story in stories {
        targets.extend(story?);
    }
    let (app_targets, targets): (Vec<Target>, Vec<Target>) = targets
        .into_iter()
        .partition(|t| t.client.as_deref() == Some(APP_CLIENT));

    // Where the worker worked: cluster-wide, and in namespaces it created itself — nowhere else.
    let created: BTreeSet<String> = targets
        .iter()
        .filter(|t| t.resource == "namespaces" && ["create", "apply"].contains(&t.verb.as_str()))
        .filter_map(|t| t.name.clone())
        .collect();
    let cluster_wide: Vec<&Target> = targets.iter().filter(|t| t.namespace.is_none()).collect();
    let bootstrap: Vec<&Target> = targets
        .iter()
        .filter(|t| t.namespace.is_some() && t.resource == "rolebindings")
        .collect();
    let in_previews: Vec<&Target> = targets
        .iter()
        .filter(|t| t.namespace.is_some() && t.resource != "rolebindings")
        .collect();
    for t in in_previews.iter().chain(&bootstrap) {
        let ns = t.namespace.as_deref().unwrap_or_default();
        assert!(
            created.contains(ns),
            "{t:?} is in a namespace the worker did not create"
        );
    }
    let binding_names = [
        previewd::cluster::ACCESS_BINDING_NAME,
        previewd::cluster::VIEWER_BINDING_NAME,
    ];
    assert!(
        bootstrap.iter().all(|t| t
            .name
            .as_deref()
            .is_some_and(|n| binding_names.contains(&n))),
        "{bootstrap:?}"
    );

    // What the chart grants, by binding.
    let cluster_roles = bound_roles(&objects, "ClusterRoleBinding", &account);
    assert_eq!(
        cluster_roles.len(),
        1,
        "one cluster-wide role for the worker"
    );
    assert!(
        bound_roles(&objects, "RoleBinding", &account).is_empty(),
        "no namespaced role is bound by the chart: the worker binds its own"
    );
    let cluster_grants = permissions_of(&cluster_roles[0]["rules"]);
    let preview_grants = permissions_of(&named(&objects, "ClusterRole", &preview_role)["rules"]);
    assert!(
        preview_grants.iter().all(|(_, names)| names.is_empty()),
        "the preview role names no objects"
    );

    // Cluster-wide: exactly what was used there, plus binding the preview role (the RoleBinding
    // create is authorized against it), which is the only rule naming objects.
    let mut want_cluster = permissions_used(&cluster_wide);
    want_cluster.extend(permissions_used(&bootstrap));
    let bind: Permission = (
        "rbac.authorization.k8s.io".into(),
        "clusterroles".into(),
        "bind".into(),
    );
    if !bootstrap.is_empty() {
        want_cluster.insert(bind.clone());
    }
    let granted_cluster: BTreeSet<Permission> =
        cluster_grants.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        granted_cluster, want_cluster,
        "cluster-wide grants == cluster-wide use (left: granted, right: used)"
    );
    for (permission, names) in &cluster_grants {
        if *permission == bind {
            assert_eq!(
                names,
                &vec![preview_role.clone(), viewer_role.clone()],
                "bind only the preview and viewer roles"
            );
        } else {
            assert!(names.is_empty(), "{permission:?}");
        }
    }

    // In each preview namespace: exactly what was used there.
    let granted_preview: BTreeSet<Permission> =
        preview_grants.iter().map(|(p, _)| p.clone()).collect();
    let used_preview = permissions_used(&in_previews);
    assert_eq!(
        granted_preview, used_preview,
        "preview-namespace grants == use there (left: granted, right: used)"
    );

    // The app (the dashboard) reads only in namespaces the worker made, exactly what the viewer
    // role grants; the chart binds it nothing itself (the worker does, per namespace).
    assert!(!app_targets.is_empty(), "the dashboard read the cluster");
    for t in &app_targets {
        let ns = t.namespace.as_deref().unwrap_or_default();
        assert!(created.contains(ns), "{t:?}: the app reads only previews");
    }
    assert!(bound_roles(&objects, "ClusterRoleBinding", &app_account).is_empty());
    let viewer_grants = permissions_of(&named(&objects, "ClusterRole", &viewer_role)["rules"]);
    assert!(viewer_grants.iter().all(|(_, names)| names.is_empty()));
    let granted_viewer: BTreeSet<Permission> =
        viewer_grants.iter().map(|(p, _)| p.clone()).collect();
    let app_used: Vec<&Target> = app_targets.iter().collect();
    assert_eq!(
        granted_viewer,
        permissions_used(&app_used),
        "viewer grants == the dashboard's use (left: granted, right: used)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_rbac_is_exactly_what_registration_uses() -> anyhow::Result<()> {
    let objects = defaults();
    let secret = named(&objects, "Secret", "previewd-github-app");
    let app = named(&objects, "Deployment", "previewd-app");
    let account = format!(
        "{NAMESPACE}/{}",
        text(&app["spec"]["template"]["spec"]["serviceAccountName"])
    );
    assert!(bound_roles(&objects, "ClusterRoleBinding", &account).is_empty());
    let roles = bound_roles(&objects, "RoleBinding", &account);
    assert_eq!(roles.len(), 1);
    assert_eq!(
        roles[0]["kind"], "Role",
        "namespaced, in the release's namespace"
    );
    let granted: BTreeMap<Permission, Vec<String>> =
        permissions_of(&roles[0]["rules"]).into_iter().collect();

    let gh = GitHubSim::start(GitHubSimOptions::default()).await?;
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    let done =
        register_into_secret(&gh, &kube, NAMESPACE, text(&secret["metadata"]["name"])).await?;
    assert_eq!(done.trip.status, 303, "registered: {}", done.trip.body);
    let used: Vec<&Target> = done.app_requests.iter().collect();
    assert!(!used.is_empty());
    for t in &used {
        assert_eq!(t.namespace.as_deref(), Some(NAMESPACE), "{t:?}");
        for verb in rbac_verbs(&t.verb) {
            let permission = (t.group.clone(), t.resource.clone(), verb.to_owned());
            let names = granted
                .get(&permission)
                .unwrap_or_else(|| panic!("{permission:?} is used but not granted"));
            assert!(
                t.name.as_ref().is_some_and(|n| names.contains(n)),
                "{t:?}: granted only on {names:?}"
            );
        }
    }
    let want: BTreeSet<Permission> = permissions_used(&used);
    assert_eq!(
        granted.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "nothing granted that registration does not use"
    );
    Ok(())
}

/// The values example of the README's "Install on Kubernetes" renders and says what it claims.
#[test]
fn the_readmes_values_example_is_valid() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README");
    let start = readme
        .find("<<'VALUES'\n")
        .expect("the README has a values example")
        + "<<'VALUES'\n".len();
    let end = start + readme[start..].find("\nVALUES\n").expect("its end");
    let file = std::env::temp_dir().join("previewd-tests").join(format!(
        "readme-values-{}.yaml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(file.parent().expect("dir")).expect("dir");
    std::fs::write(&file, &readme[start..end]).expect("write");
    let objects = with_file(&file);
    let _ = std::fs::remove_file(&file);
    let config = named(&objects, "ConfigMap", "previewd");
    assert_eq!(config["data"]["PUBLIC_URL"], "https://previewd.example.com");
    assert_eq!(config["data"]["PREVIEW_DOMAIN"], "preview.example.com");
    assert_eq!(
        named(&objects, "Ingress", "previewd")["spec"]["ingressClassName"],
        "nginx"
    );
}
