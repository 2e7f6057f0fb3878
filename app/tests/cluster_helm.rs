//! `render_chart` against the real `helm` binary and the fixture charts in `tests/fixtures/`:
//! values reach the templates, the objects land in the preview namespace, `helm test` hooks are
//! left out, and charts reaching outside the namespace or failing to render are refused with a
//! message that says why. helm is required: without it the tests fail and say to run
//! `scripts/install-tools`.

mod cluster_support;

use cluster_support::{fixture, helm_bin, meta};
use previewd::cluster::objects::PREVIEW_ID_LABEL;
use previewd::cluster::{HelmError, label_objects, render_chart};
use serde_json::json;

#[tokio::test]
async fn renders_the_chart_with_values_into_the_preview_namespace() {
    let meta = meta();
    let values = json!({
        "greeting": "hi from the PR",
        "image": { "tag": meta.sha },
        "previewd": { "url": "https://acme-web-pr-12.preview.example.com", "sha": meta.sha },
    });
    let mut objects = render_chart(
        &helm_bin(),
        &fixture("chart"),
        "demo",
        &meta.namespace,
        &values,
    )
    .await
    .expect("renders");

    let kinds: Vec<_> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for kind in ["ConfigMap", "Service", "Deployment"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(
        !kinds.contains(&"Pod"),
        "the helm test hook must be skipped"
    );
    for object in &objects {
        // The Service template says `namespace: kube-system`; previewd overrides it.
        assert_eq!(
            object["metadata"]["namespace"],
            meta.namespace.as_str(),
            "{object}"
        );
        assert_eq!(object["metadata"]["name"], "demo-demo");
    }
    let config = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(config["data"]["GREETING"], "hi from the PR");
    assert_eq!(
        config["data"]["PUBLIC_URL"],
        "https://acme-web-pr-12.preview.example.com"
    );
    assert_eq!(config["data"]["COMMIT"], meta.sha.as_str());
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(
        image,
        format!("registry.example.com/acme/demo:{}", meta.sha)
    );
    // Numbers stay numbers through YAML → JSON.
    assert_eq!(deployment["spec"]["replicas"], 1);

    label_objects(&mut objects, &meta);
    for object in &objects {
        assert_eq!(object["metadata"]["labels"][PREVIEW_ID_LABEL], "7");
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/instance"],
            "demo"
        );
    }
}

#[tokio::test]
async fn a_chart_with_a_cluster_role_is_refused() {
    let err = render_chart(
        &helm_bin(),
        &fixture("chart-clusterrole"),
        "greedy",
        "acme-web-pr-12",
        &json!({}),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, HelmError::ForbiddenKind { kind, name, .. } if kind == "ClusterRole" && name == "greedy-everything"),
        "{err:?}"
    );
    assert!(
        message.contains("ClusterRole") && message.contains("may not contain"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failing_template_reports_helms_message() {
    let err = render_chart(
        &helm_bin(),
        &fixture("chart-failing"),
        "r",
        "ns",
        &json!({}),
    )
    .await
    .unwrap_err();
    let HelmError::Failed { stderr, .. } = &err else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(
        stderr.contains("values.database is required by this chart"),
        "{stderr}"
    );
    assert!(stderr.len() <= 2000 * 4 + 3);

    // With the value, the same chart renders.
    let objects = render_chart(
        &helm_bin(),
        &fixture("chart-failing"),
        "r",
        "ns",
        &json!({"database": "pg"}),
    )
    .await
    .expect("renders with the value");
    assert_eq!(objects[0]["data"]["database"], "pg");
}

#[tokio::test]
async fn a_missing_chart_is_a_helm_failure() {
    let err = render_chart(
        &helm_bin(),
        &fixture("no-such-chart"),
        "r",
        "ns",
        &json!({}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HelmError::Failed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_chart_with_a_symbolic_link_is_refused() {
    // helm follows links: `.Files.Get "leak"` would read the worker's own files.
    let dir = cluster_support::TempDir::new("symlink-chart");
    let chart = dir.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::copy(fixture("chart/Chart.yaml"), chart.join("Chart.yaml")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", chart.join("templates/leak")).unwrap();
    let err = render_chart(&helm_bin(), &chart, "r", "ns", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HelmError::Symlink(path) if path == "templates/leak"),
        "{err:?}"
    );
}
