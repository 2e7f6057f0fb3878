//! Every object previewd's builders make, and the objects of a rendered chart, validated with
//! `kubernetes-validate --strict` against the Kubernetes 1.35 schemas (offline, the schemas ship
//! in the package). Unit tests check what the objects say; this checks Kubernetes would accept
//! their shape: field names and types, required fields, no unknown fields.
//!
//! The validator is required: without it the test fails and says to run `scripts/install-tools`.

mod cluster_support;

use std::process::Command;

use cluster_support::{
    TOKEN, TempDir, build_spec, fixture, guard_rails, helm_bin, kubernetes_validate, meta,
    web_service,
};
use previewd::cluster::{
    BuildBudget, EgressTarget, access_binding, build_job, build_namespace, build_network_policies,
    build_quota, build_secret, deployment, ingress, label_objects, limit_range, namespace,
    network_policies, render_chart, resource_quota, service, to_apply_json,
};
use previewd::config::{NamespaceAccess, SecretName};
use secrecy::SecretString;
use serde_json::{Value, json};

const KUBERNETES_VERSION: &str = "1.35.0";

/// Every object a preview can consist of, as apply bodies.
async fn all_objects() -> Vec<Value> {
    let meta = meta();
    let rails = guard_rails();
    let build = meta.for_build();
    let budget = BuildBudget::default();
    let egress = [
        EgressTarget::Cidr {
            cidr: "140.82.112.3/32".into(),
            port: 443,
        },
        EgressTarget::Namespace {
            name: "registry".into(),
            port: 5000,
        },
    ];
    let mut objects = vec![
        to_apply_json(&namespace(&meta)),
        to_apply_json(&resource_quota(&meta, &rails)),
        to_apply_json(&limit_range(&meta, &rails)),
        to_apply_json(&build_namespace(&build)),
        to_apply_json(&build_quota(&build, &budget)),
        to_apply_json(&access_binding(
            &meta.namespace,
            meta.labels(),
            &NamespaceAccess {
                cluster_role: "previewd-preview".into(),
                service_account: SecretName {
                    namespace: "previewd".into(),
                    name: "previewd-worker".into(),
                },
                viewer: None,
            },
        )),
    ];
    objects.extend(network_policies(&meta, &rails).iter().map(to_apply_json));
    objects.extend(
        build_network_policies(&build, &egress, "kube-system")
            .iter()
            .map(to_apply_json),
    );
    objects.push(to_apply_json(&build_secret(
        &build,
        &SecretString::from(TOKEN),
    )));
    objects.push(to_apply_json(&build_job(&build, &build_spec(), &budget)));
    for web in [web_service(Some("preview-wildcard-tls")), web_service(None)] {
        objects.push(to_apply_json(&deployment(&meta, &web)));
        objects.push(to_apply_json(&service(&meta, &web)));
        objects.push(to_apply_json(&ingress(&meta, &web)));
    }
    let values = json!({ "previewd": { "url": "https://example.test", "sha": meta.sha } });
    let mut rendered = render_chart(
        &helm_bin(),
        &fixture("chart"),
        "demo",
        &meta.namespace,
        &values,
    )
    .await
    .expect("the fixture chart renders");
    assert_eq!(
        rendered.len(),
        3,
        "ConfigMap, Service, Deployment: {rendered:#?}"
    );
    label_objects(&mut rendered, &meta);
    objects.extend(rendered);
    objects
}

/// Writes `objects` one per file and runs the validator over them; returns (success, output).
fn validate(objects: &[Value]) -> (bool, String, Vec<String>) {
    let validator = kubernetes_validate();
    let dir = TempDir::new("k8s-schemas");
    let mut files = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let kind = object["kind"].as_str().unwrap_or("unknown").to_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap_or("unnamed");
        let path = dir.path().join(format!("{i:02}-{kind}-{name}.yaml"));
        let yaml = serde_yaml::to_string(object).expect("objects serialize to YAML");
        std::fs::write(&path, yaml).expect("write object");
        files.push(path.display().to_string());
    }
    let output = Command::new(&validator)
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e}; run scripts/install-tools",
                validator.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text, files)
}

#[tokio::test]
async fn every_object_validates_against_the_kubernetes_schemas() {
    let objects = all_objects().await;
    let (ok, output, files) = validate(&objects);
    assert!(
        ok,
        "kubernetes-validate failed (if it is missing: run scripts/install-tools):\n{output}"
    );
    for file in &files {
        let passed = output
            .lines()
            .any(|line| line.contains(file.as_str()) && line.contains("passed"));
        assert!(passed, "{file} was not reported as passed:\n{output}");
    }
    assert!(!output.contains("ERROR"), "{output}");
}

#[tokio::test]
async fn the_validator_rejects_what_kubernetes_rejects() {
    // A control: were the validator a no-op, the test above would prove nothing.
    let mut job = to_apply_json(&build_job(&meta(), &build_spec(), &BuildBudget::default()));
    job["spec"]["backoffLimitt"] = json!(0);
    let mut deployment = to_apply_json(&deployment(&meta(), &web_service(None)));
    deployment["spec"]["replicas"] = json!("one");
    for bad in [job, deployment] {
        let (ok, output, _) = validate(std::slice::from_ref(&bad));
        assert!(
            !ok,
            "kubernetes-validate accepted an invalid {}:\n{output}",
            bad["kind"]
        );
    }
}

#[test]
fn the_token_is_only_in_the_secret() {
    let meta = meta();
    let secret = to_apply_json(&build_secret(&meta, &SecretString::from(TOKEN))).to_string();
    assert!(
        !secret.contains(TOKEN),
        "the token is base64 in data, never plain"
    );
    let job = to_apply_json(&build_job(&meta, &build_spec(), &BuildBudget::default())).to_string();
    assert!(!job.contains(TOKEN) && !job.contains("ghs_"));
}
