//! The simulated Kubernetes API server, proven with the real client previewd uses: kube-rs
//! typed `Api<T>` over the kubeconfig the simulator writes, `await_condition`, the `watcher`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, LimitRange, Namespace, Pod, ResourceQuota};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, Status};
use kube::runtime::wait::{Condition as _, await_condition, conditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use previewd_tests::kube::{Behaviour, Fault, FaultKind, KubeSim, KubeSimOptions};
use previewd_tests::wait::until;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(5);

/// A simulator and a client built the way previewd builds one: from the kubeconfig file.
async fn start(opts: KubeSimOptions) -> anyhow::Result<(KubeSim, Client)> {
    let sim = KubeSim::start(opts).await?;
    let kubeconfig = Kubeconfig::read_from(sim.kubeconfig_path())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        sim.url()
    );
    let client = Client::try_from(config)?;
    Ok((sim, client))
}

fn apply() -> PatchParams {
    PatchParams::apply("previewd").force()
}

/// The Status a failed call carried.
fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn namespace(client: &Client, name: &str) -> anyhow::Result<Namespace> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
    Ok(api.patch(name, &apply(), &Patch::Apply(ns)).await?)
}

fn deployment(name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "web", "image": image, "ports": [{ "containerPort": 8080 }] }] },
            },
        },
    })
}

fn job(name: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{ "name": "build", "image": "moby/buildkit:rootless" }],
            } },
        },
    })
}

fn is_available(d: Option<&Deployment>) -> bool {
    d.and_then(|d| d.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        })
}

fn job_condition(kind: &'static str) -> impl Fn(Option<&Job>) -> bool {
    move |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
    }
}

/// The pods of a workload, found by label.
async fn pods_of(client: &Client, ns: &str, selector: &str) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// Waits until the first pod matching `selector` satisfies `check`.
async fn wait_pod(
    client: &Client,
    ns: &str,
    selector: &str,
    what: &str,
    check: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    until(what, DEADLINE, || async {
        pods_of(client, ns, selector)
            .await
            .ok()?
            .into_iter()
            .find(|p| check(p))
    })
    .await
}

fn container_status(p: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn waiting_reason(p: &Pod) -> Option<String> {
    container_status(p)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

#[tokio::test]
async fn server_side_apply_creates_then_updates() -> anyhow::Result<()> {
    let (sim, client) = start(KubeSimOptions::default()).await?;

    // Namespace: created, then updated (new labels, new resourceVersion).
    let ns1 = namespace(&client, "preview-acme-web-1").await?;
    assert_eq!(
        ns1.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Active")
    );
    assert_eq!(
        ns1.labels()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("preview-acme-web-1")
    );
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let labelled = json!({ "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": "preview-acme-web-1", "labels": { "app.kubernetes.io/managed-by": "previewd" } } });
    let ns2 = ns_api
        .patch("preview-acme-web-1", &apply(), &Patch::Apply(labelled))
        .await?;
    assert_eq!(
        ns2.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("previewd")
    );
    let rv = |o: &Namespace| {
        o.resource_version()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or(0)
    };
    assert!(rv(&ns2) > rv(&ns1));
    assert_eq!(ns2.uid(), ns1.uid());
    let managers: Vec<String> = ns2
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"previewd".to_owned()), "{managers:?}");
    // Inspection shows the stored object without managedFields.
    let stored = sim
        .get("namespaces", None, "preview-acme-web-1")
        .expect("stored");
    assert!(stored.pointer("/metadata/managedFields").is_none());
    assert!(stored.pointer("/metadata/uid").is_some());

    // ConfigMap: create, update, and a key dropped from the applied config is pruned.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "preview-acme-web-1");
    let cm = |data: Value| json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "env" }, "data": data });
    let c1 = cms
        .patch(
            "env",
            &apply(),
            &Patch::Apply(cm(json!({ "A": "1", "B": "2" }))),
        )
        .await?;
    let c2 = cms
        .patch("env", &apply(), &Patch::Apply(cm(json!({ "A": "9" }))))
        .await?;
    let data = c2.data.clone().unwrap_or_default();
    assert_eq!(data.get("A").map(String::as_str), Some("9"));
    assert!(!data.contains_key("B"), "pruned: {data:?}");
    assert_ne!(c1.resource_version(), c2.resource_version());
    // Re-applying the same config writes nothing.
    let c3 = cms
        .patch("env", &apply(), &Patch::Apply(cm(json!({ "A": "9" }))))
        .await?;
    assert_eq!(c3.resource_version(), c2.resource_version());

    // Deployment: generation moves with the spec; status cannot be applied.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "preview-acme-web-1");
    let mut body = deployment("web", "ghcr.io/acme/web:aaa", 1);
    body["status"] = json!({ "replicas": 42 });
    let d1 = deploys.patch("web", &apply(), &Patch::Apply(body)).await?;
    assert_eq!(d1.metadata.generation, Some(1));
    assert_ne!(d1.status.as_ref().and_then(|s| s.replicas), Some(42));
    let d2 = deploys
        .patch(
            "web",
            &apply(),
            &Patch::Apply(deployment("web", "ghcr.io/acme/web:bbb", 1)),
        )
        .await?;
    assert_eq!(d2.metadata.generation, Some(2));
    let image = d2
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers[0].image.clone());
    assert_eq!(image.flatten().as_deref(), Some("ghcr.io/acme/web:bbb"));
    // Defaults the server fills in.
    assert_eq!(
        d2.spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref()),
        Some("RollingUpdate")
    );

    assert_eq!(sim.requests().count("apply", "configmaps"), 3);

    // 201 on create, 200 on update, over the raw wire.
    let raw_apply = |name: &str| {
        let body = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name } });
        axum::http::Request::patch(format!(
            "/api/v1/namespaces/preview-acme-web-1/configmaps/{name}?fieldManager=previewd"
        ))
        .header("Content-Type", "application/apply-patch+yaml")
        .body(kube::client::Body::from(
            serde_json::to_vec(&body).unwrap_or_default(),
        ))
    };
    assert_eq!(client.send(raw_apply("raw")?).await?.status().as_u16(), 201);
    assert_eq!(client.send(raw_apply("raw")?).await?.status().as_u16(), 200);
    // YAML bodies are accepted too.
    let yaml = axum::http::Request::patch(
        "/api/v1/namespaces/preview-acme-web-1/configmaps/yaml?fieldManager=previewd",
    )
    .header("Content-Type", "application/apply-patch+yaml")
    .body(kube::client::Body::from(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  k: v\n".to_vec(),
    ))?;
    assert_eq!(client.send(yaml).await?.status().as_u16(), 201);
    assert_eq!(
        cms.get("yaml")
            .await?
            .data
            .unwrap_or_default()
            .get("k")
            .map(String::as_str),
        Some("v")
    );
    Ok(())
}

#[tokio::test]
async fn apply_errors_missing_field_manager_and_conflicts() -> anyhow::Result<()> {
    let (_sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p1");
    let body = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" }, "data": { "x": "1" } });

    let s = status_of(
        cms.patch("c", &PatchParams::default(), &Patch::Apply(&body))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message.contains("fieldManager: Required value"),
        "{}",
        s.message
    );

    // Another manager owns data.x; previewd changing it without force conflicts.
    cms.patch("c", &PatchParams::apply("kubectl"), &Patch::Apply(&body))
        .await?;
    let mine = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" }, "data": { "x": "2" } });
    let s = status_of(
        cms.patch("c", &PatchParams::apply("previewd"), &Patch::Apply(&mine))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains(r#"conflict with "kubectl""#) && s.message.contains(".data.x"),
        "{}",
        s.message
    );
    // Force takes the field over.
    let forced = cms.patch("c", &apply(), &Patch::Apply(&mine)).await?;
    assert_eq!(
        forced.data.unwrap_or_default().get("x").map(String::as_str),
        Some("2")
    );
    // Merge patches work too (and strategic ones are treated as merge).
    let patched = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "y": "3" } })),
        )
        .await?;
    assert_eq!(patched.data.unwrap_or_default().len(), 2);
    Ok(())
}

#[tokio::test]
async fn create_get_replace_and_validation_errors() -> anyhow::Result<()> {
    let (_sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p1");
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "a" }, "data": { "k": "v" } }))?;
    let created = cms.create(&PostParams::default(), &cm).await?;
    assert!(created.uid().is_some() && created.creation_timestamp().is_some());

    let s = status_of(cms.create(&PostParams::default(), &cm).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(s.message, r#"configmaps "a" already exists"#);

    let s = status_of(cms.get("missing").await);
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (404, "NotFound", r#"configmaps "missing" not found"#)
    );
    assert!(cms.get_opt("missing").await?.is_none());

    // Optimistic concurrency on replace.
    let mut stale = created.clone();
    cms.patch("a", &apply(), &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "a" }, "data": { "k": "w" } }))).await?;
    stale.data = Some(BTreeMap::from([("k".to_owned(), "stale".to_owned())]));
    let s = status_of(cms.replace("a", &PostParams::default(), &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    let fresh = cms.get("a").await?;
    let mut next = fresh.clone();
    next.data = Some(BTreeMap::from([("k".to_owned(), "new".to_owned())]));
    let replaced = cms.replace("a", &PostParams::default(), &next).await?;
    assert_eq!(
        replaced
            .data
            .unwrap_or_default()
            .get("k")
            .map(String::as_str),
        Some("new")
    );

    // Invalid names and missing names are 422; a missing namespace is 404.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let bad: Namespace = serde_json::from_value(json!({ "metadata": { "name": "Bad_Name" } }))?;
    let s = status_of(namespaces.create(&PostParams::default(), &bad).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("RFC 1123 label"), "{}", s.message);
    let nameless: ConfigMap = serde_json::from_value(json!({ "metadata": {} }))?;
    let s = status_of(cms.create(&PostParams::default(), &nameless).await);
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains("name or generateName is required"),
        "{}",
        s.message
    );
    let bad_label: ConfigMap = serde_json::from_value(
        json!({ "metadata": { "name": "l", "labels": { "repo": "acme/web" } } }),
    )?;
    assert_eq!(
        status_of(cms.create(&PostParams::default(), &bad_label).await).code,
        422
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let s = status_of(elsewhere.create(&PostParams::default(), &cm).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, r#"namespaces "nope" not found"#)
    );
    // A Job must say how its pods restart.
    let jobs: Api<Job> = Api::namespaced(client.clone(), "p1");
    let mut j = job("no-policy");
    j["spec"]["template"]["spec"]
        .as_object_mut()
        .map(|m| m.remove("restartPolicy"));
    assert_eq!(
        status_of(jobs.patch("no-policy", &apply(), &Patch::Apply(j)).await).code,
        422
    );
    Ok(())
}

#[tokio::test]
async fn deployment_becomes_available_and_rolls_out() -> anyhow::Result<()> {
    let opts = KubeSimOptions {
        deployment_ready_delay: Duration::from_millis(300),
        ..KubeSimOptions::default()
    };
    let (sim, client) = start(opts).await?;
    namespace(&client, "p1").await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "p1");
    let started = Instant::now();
    deploys
        .patch(
            "web",
            &apply(),
            &Patch::Apply(deployment("web", "ghcr.io/acme/web:aaa", 2)),
        )
        .await?;
    let d = tokio::time::timeout(
        DEADLINE,
        await_condition(deploys.clone(), "web", is_available),
    )
    .await??;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "ready before the delay"
    );
    let status = d.and_then(|d| d.status).expect("status");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas,
            status.updated_replicas,
            status.observed_generation
        ),
        (Some(2), Some(2), Some(2), Some(2), Some(1))
    );

    // Pods are named {deployment}-{hash}-{random}, labelled by the selector, owned by a ReplicaSet.
    let pods = pods_of(&client, "p1", "app=web").await?;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let name = p.name_any();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(
            (parts.len(), parts[0], parts[1].len(), parts[2].len()),
            (3, "web", 10, 5),
            "{}",
            p.name_any()
        );
        assert_eq!(p.owner_references()[0].kind, "ReplicaSet");
        assert_eq!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
    }
    // previewd's own await on a completed rollout works too.
    tokio::time::timeout(
        DEADLINE,
        await_condition(
            deploys.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await??;

    // A new image rolls out new pods and retires the old ones.
    deploys
        .patch(
            "web",
            &apply(),
            &Patch::Apply(deployment("web", "ghcr.io/acme/web:bbb", 2)),
        )
        .await?;
    until("the new image everywhere", DEADLINE, || async {
        let pods = pods_of(&client, "p1", "app=web").await.ok()?;
        let images: Vec<String> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
            .collect();
        (images.len() == 2 && images.iter().all(|i| i.ends_with(":bbb"))).then_some(())
    })
    .await?;
    tokio::time::timeout(
        DEADLINE,
        await_condition(
            deploys.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await??;
    assert_eq!(sim.list("replicasets", Some("p1")).len(), 2);
    // The deployment's events say what the controller did.
    let events: Api<Event> = Api::namespaced(client.clone(), "p1");
    let scaled = events
        .list(&ListParams::default().fields("involvedObject.name=web,reason=ScalingReplicaSet"))
        .await?;
    assert!(
        scaled.items.len() >= 2,
        "{:?}",
        scaled
            .items
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn jobs_complete_or_fail() -> anyhow::Result<()> {
    let opts = KubeSimOptions {
        job_duration: Duration::from_millis(100),
        ..KubeSimOptions::default()
    };
    let (sim, client) = start(opts).await?;
    namespace(&client, "p1").await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "p1");

    jobs.patch("build-ok", &apply(), &Patch::Apply(job("build-ok")))
        .await?;
    let done = tokio::time::timeout(
        DEADLINE,
        await_condition(jobs.clone(), "build-ok", job_condition("Complete")),
    )
    .await??;
    let status = done.and_then(|j| j.status).expect("status");
    assert_eq!(status.succeeded, Some(1));
    assert!(status.completion_time.is_some());
    assert!(
        conditions::is_job_completed().matches_object(jobs.get("build-ok").await.ok().as_ref())
    );

    let logs = vec![
        "step 1/3: FROM node:22".to_owned(),
        "error: npm ci failed".to_owned(),
    ];
    sim.set_behaviour(
        "p1",
        "build-bad",
        Behaviour::JobFails { logs: logs.clone() },
    );
    jobs.patch("build-bad", &apply(), &Patch::Apply(job("build-bad")))
        .await?;
    let failed = tokio::time::timeout(
        DEADLINE,
        await_condition(jobs.clone(), "build-bad", job_condition("Failed")),
    )
    .await??;
    let status = failed.and_then(|j| j.status).expect("status");
    assert_eq!(status.failed, Some(1));
    let reason = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
    let pod = pods_of(&client, "p1", "batch.kubernetes.io/job-name=build-bad")
        .await?
        .remove(0);
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed")
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "p1");
    let text = pods.logs(&pod.name_any(), &LogParams::default()).await?;
    assert_eq!(text, "step 1/3: FROM node:22\nerror: npm ci failed\n");
    Ok(())
}

#[tokio::test]
async fn pod_logs_and_crash_loop_status() -> anyhow::Result<()> {
    let (sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let lines: Vec<String> = (1..=5).map(|i| format!("line {i}")).collect();
    sim.set_behaviour(
        "p1",
        "api",
        Behaviour::CrashLoopBackOff {
            logs: lines.clone(),
        },
    );
    let mut body = deployment("api", "ghcr.io/acme/api:1", 1);
    body["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({ "name": "sidecar", "image": "envoy:1" }));
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "p1");
    deploys.patch("api", &apply(), &Patch::Apply(body)).await?;

    let pod = wait_pod(
        &client,
        "p1",
        "app=api",
        "a crash-looping pod restarted twice",
        |p| container_status(p).is_some_and(|c| c.restart_count >= 2),
    )
    .await?;
    assert_eq!(waiting_reason(&pod).as_deref(), Some("CrashLoopBackOff"));
    let last = container_status(&pod)
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert!(!is_available(deploys.get("api").await.ok().as_ref()));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "p1");
    let name = pod.name_any();
    let lp = LogParams {
        container: Some("web".to_owned()),
        tail_lines: Some(2),
        timestamps: true,
        ..LogParams::default()
    };
    let text = pods.logs(&name, &lp).await?;
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 2, "{text}");
    assert!(
        got[0].ends_with(" line 4") && got[1].ends_with(" line 5"),
        "{text}"
    );
    let stamp = got[0].split(' ').next().unwrap_or("");
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        "{stamp}"
    );

    let unknown = LogParams {
        container: Some("nope".to_owned()),
        ..LogParams::default()
    };
    let s = status_of(pods.logs(&name, &unknown).await);
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        s.message,
        format!("container nope is not valid for pod {name}")
    );
    let s = status_of(pods.logs(&name, &LogParams::default()).await);
    assert!(
        s.message.contains("a container name must be specified"),
        "{}",
        s.message
    );
    Ok(())
}

#[tokio::test]
async fn failure_behaviours_show_real_pod_status_and_events() -> anyhow::Result<()> {
    let (sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "p1");
    sim.set_behaviour_for_image("does-not-exist", Behaviour::ImagePullBackOff);
    sim.set_behaviour("p1", "oom", Behaviour::OomKilled);
    sim.set_behaviour("p1", "stuck", Behaviour::Unschedulable);
    sim.set_behaviour("p1", "slow", Behaviour::NeverReady);
    for (name, image) in [
        ("pull", "ghcr.io/acme/does-not-exist:1"),
        ("oom", "app:1"),
        ("stuck", "app:1"),
        ("slow", "app:1"),
    ] {
        deploys
            .patch(name, &apply(), &Patch::Apply(deployment(name, image, 1)))
            .await?;
    }

    let pull = wait_pod(&client, "p1", "app=pull", "ImagePullBackOff", |p| {
        waiting_reason(p).as_deref() == Some("ImagePullBackOff")
    })
    .await?;
    assert_eq!(
        pull.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "p1");
    let pod_events = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={}", pull.name_any())))
        .await?
        .items;
    let has = |reason: &str, text: &str| {
        pod_events.iter().any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.message.as_deref().is_some_and(|m| m.contains(text))
        })
    };
    assert!(has(
        "BackOff",
        "Back-off pulling image \"ghcr.io/acme/does-not-exist:1\""
    ));
    assert!(has("Failed", "Failed to pull image"));
    let s = status_of(
        Api::<Pod>::namespaced(client.clone(), "p1")
            .logs(&pull.name_any(), &LogParams::default())
            .await,
    );
    assert!(s.message.contains("is waiting to start"), "{}", s.message);

    let oom = wait_pod(&client, "p1", "app=oom", "OOMKilled", |p| {
        container_status(p)
            .and_then(|c| c.last_state.as_ref()?.terminated.as_ref())
            .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
    })
    .await?;
    let t = container_status(&oom)
        .and_then(|c| c.last_state.as_ref()?.terminated.clone())
        .expect("terminated");
    assert_eq!(t.exit_code, 137);

    let stuck = wait_pod(&client, "p1", "app=stuck", "Unschedulable", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
    })
    .await?;
    assert_eq!(
        stuck.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    until("a FailedScheduling event", DEADLINE, || async {
        let evs = events
            .list(&ListParams::default().fields("reason=FailedScheduling"))
            .await
            .ok()?;
        (!evs.items.is_empty()).then_some(())
    })
    .await?;

    let slow = wait_pod(&client, "p1", "app=slow", "running, not ready", |p| {
        container_status(p)
            .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()) && !c.ready)
    })
    .await?;
    assert_eq!(
        slow.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    assert!(!is_available(deploys.get("slow").await.ok().as_ref()));
    Ok(())
}

#[tokio::test]
async fn quota_refuses_pods_with_failed_create_events() -> anyhow::Result<()> {
    let (sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "p1");
    quotas.patch("preview", &apply(), &Patch::Apply(json!({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": { "name": "preview" },
        "spec": { "hard": { "requests.cpu": "500m", "requests.memory": "512Mi", "limits.cpu": "1", "limits.memory": "1Gi", "pods": "3" } },
    }))).await?;
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), "p1");
    ranges.patch("defaults", &apply(), &Patch::Apply(json!({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": { "name": "defaults" },
        "spec": { "limits": [{ "type": "Container",
            "default": { "cpu": "200m", "memory": "128Mi" }, "defaultRequest": { "cpu": "100m", "memory": "64Mi" } }] },
    }))).await?;

    // A Deployment asking for more than the quota gets no pod, and an Event says why.
    let mut big = deployment("big", "app:1", 1);
    big["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({ "requests": { "cpu": "2", "memory": "64Mi" }, "limits": { "cpu": "2", "memory": "64Mi" } });
    Api::<Deployment>::namespaced(client.clone(), "p1")
        .patch("big", &apply(), &Patch::Apply(big))
        .await?;
    let events: Api<Event> = Api::namespaced(client.clone(), "p1");
    let event = until("a FailedCreate event", DEADLINE, || async {
        events
            .list(&ListParams::default().fields("reason=FailedCreate"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await?;
    let message = event.message.unwrap_or_default();
    assert!(
        message.contains("is forbidden: exceeded quota: preview"),
        "{message}"
    );
    assert!(
        message.contains("requested: limits.cpu=2,requests.cpu=2"),
        "{message}"
    );
    assert_eq!(event.involved_object.kind.as_deref(), Some("ReplicaSet"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(pods_of(&client, "p1", "app=big").await?.is_empty());

    // A direct pod create over quota is 403; a small one gets LimitRange defaults and counts.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "p1");
    let greedy: Pod = serde_json::from_value(
        json!({ "metadata": { "name": "greedy" }, "spec": { "containers": [{
        "name": "c", "image": "app:1", "resources": { "requests": { "memory": "1Gi" }, "limits": { "memory": "1Gi" } } }] } }),
    )?;
    let s = status_of(pods.create(&PostParams::default(), &greedy).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert!(
        s.message
            .starts_with(r#"pods "greedy" is forbidden: exceeded quota: preview"#),
        "{}",
        s.message
    );
    let small: Pod = serde_json::from_value(
        json!({ "metadata": { "name": "small" }, "spec": { "containers": [{ "name": "c", "image": "app:1" }] } }),
    )?;
    let created = pods.create(&PostParams::default(), &small).await?;
    let limits = created
        .spec
        .as_ref()
        .and_then(|s| s.containers[0].resources.as_ref())
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("200m"));
    until("quota usage", DEADLINE, || async {
        let used = quotas.get("preview").await.ok()?.status?.used?;
        (used.get("requests.cpu").map(|q| q.0.as_str()) == Some("100m")).then_some(())
    })
    .await?;
    assert!(sim.get("resourcequotas", Some("p1"), "preview").is_some());
    Ok(())
}

#[tokio::test]
async fn namespace_delete_goes_terminating_then_gone() -> anyhow::Result<()> {
    let opts = KubeSimOptions {
        namespace_deletion_delay: Duration::from_millis(300),
        ..KubeSimOptions::default()
    };
    let (sim, client) = start(opts).await?;
    let ns = namespace(&client, "p1").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p1");
    let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } });
    cms.patch("c", &apply(), &Patch::Apply(&cm)).await?;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deleted = namespaces.delete("p1", &DeleteParams::foreground()).await?;
    let terminating = deleted
        .left()
        .expect("a namespace delete returns the namespace");
    assert_eq!(
        terminating.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(sim.namespaces().contains(&"p1".to_owned()));
    assert!(
        cms.get_opt("c").await?.is_none(),
        "content is deleted at once"
    );

    let s = status_of(cms.patch("c", &apply(), &Patch::Apply(&cm)).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        r#"configmaps "c" is forbidden: unable to create new content in namespace p1 because it is being terminated"#
    );
    let s = status_of(namespaces.delete("p1", &DeleteParams::background()).await);
    assert_eq!(s.code, 409);

    let uid = ns.uid().expect("uid");
    tokio::time::timeout(
        DEADLINE,
        await_condition(namespaces.clone(), "p1", conditions::is_deleted(&uid)),
    )
    .await??;
    assert!(!sim.namespaces().contains(&"p1".to_owned()));
    let s = status_of(cms.patch("c", &apply(), &Patch::Apply(&cm)).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, r#"namespaces "p1" not found"#)
    );
    Ok(())
}

#[tokio::test]
async fn watcher_recovers_after_cut_and_after_410() -> anyhow::Result<()> {
    let (sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p1");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let stream = watcher(cms.clone(), watcher::Config::default());
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let entry = match ev {
                Ok(watcher::Event::Init) => "init".to_owned(),
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => cm.name_any(),
                Ok(_) => continue,
                Err(e) => format!("error: {e}"),
            };
            log.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(entry);
        }
    });
    let create = |name: &'static str| {
        let cms = cms.clone();
        async move {
            let cm =
                json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name } });
            cms.patch(name, &apply(), &Patch::Apply(cm)).await
        }
    };
    let saw = |what: &'static str| {
        let seen = seen.clone();
        async move {
            until(what, DEADLINE, || async {
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .any(|s| s.starts_with(what))
                    .then_some(())
            })
            .await
        }
    };
    let count = |what: &str| {
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|s| s.starts_with(what))
            .count()
    };

    create("a").await?;
    saw("a").await?;
    let watches = sim.requests().count("watch", "configmaps");

    // A cut stream is resumed from the last resourceVersion: no re-list, nothing missed.
    sim.cut_watches();
    create("b").await?;
    saw("b").await?;
    assert_eq!(count("init"), 1);
    // The cut reaches the stream asynchronously: "b" may still come on the old one, so wait for
    // the new watch rather than expect it already.
    until("a resumed watch", DEADLINE, || async {
        (sim.requests().count("watch", "configmaps") > watches).then_some(())
    })
    .await?;

    // A resume from a compacted version gets 410 Expired; the watcher re-lists and goes on.
    sim.expire_watch_history();
    sim.cut_watches();
    saw("error").await?;
    until("a re-list", DEADLINE, || async {
        (count("init") == 2).then_some(())
    })
    .await?;
    create("c").await?;
    saw("c").await?;
    assert!(
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|s| s.contains("410") || s.contains("Expired"))
    );

    // An injected 410 on the next watch does the same.
    sim.inject(Fault {
        verb: Some("watch".to_owned()),
        resource: Some("configmaps".to_owned()),
        kind: FaultKind::Status(410),
        times: 1,
    });
    sim.cut_watches();
    until("another re-list", DEADLINE, || async {
        (count("init") == 3).then_some(())
    })
    .await?;
    create("d").await?;
    saw("d").await?;
    task.abort();

    // await_condition (list with fieldSelector, then watch) survives a cut stream.
    let waiter = tokio::spawn(await_condition(
        cms.clone(),
        "e",
        |cm: Option<&ConfigMap>| {
            cm.and_then(|c| c.data.as_ref())
                .is_some_and(|d| d.contains_key("ready"))
        },
    ));
    create("e").await?;
    sim.cut_watches();
    let ready = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "e" }, "data": { "ready": "yes" } });
    cms.patch("e", &apply(), &Patch::Apply(ready)).await?;
    let got = tokio::time::timeout(DEADLINE, waiter).await???;
    assert_eq!(got.map(|c| c.name_any()).as_deref(), Some("e"));
    Ok(())
}

#[tokio::test]
async fn streaming_list_watch_and_bookmarks() -> anyhow::Result<()> {
    let opts = KubeSimOptions {
        watch_bookmark_interval: Duration::from_millis(50),
        ..KubeSimOptions::default()
    };
    let (_sim, client) = start(opts).await?;
    namespace(&client, "p1").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p1");
    for name in ["x", "y"] {
        cms.patch(
            name,
            &apply(),
            &Patch::Apply(
                json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name } }),
            ),
        )
        .await?;
    }
    // sendInitialEvents=true: synthetic ADDED for what exists, then the initial-events-end bookmark.
    let stream = watcher(cms.clone(), watcher::Config::default().streaming_lists());
    let mut stream = std::pin::pin!(stream);
    let mut initial = Vec::new();
    let done = tokio::time::timeout(DEADLINE, async {
        while let Some(ev) = stream.next().await {
            match ev? {
                watcher::Event::InitApply(cm) => initial.push(cm.name_any()),
                watcher::Event::InitDone => return Ok::<_, anyhow::Error>(()),
                _ => {}
            }
        }
        anyhow::bail!("stream ended")
    })
    .await;
    done??;
    assert_eq!(initial, vec!["x", "y"]);

    // Raw watch (kube's typed watch): bookmarks arrive, label selectors filter.
    let mut raw = std::pin::pin!(
        cms.watch(&kube::api::WatchParams::default().labels("keep=yes"), "0")
            .await?
    );
    cms.patch("z", &apply(), &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "z", "labels": { "keep": "no" } } }))).await?;
    cms.patch("w", &apply(), &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "w", "labels": { "keep": "yes" } } }))).await?;
    let (mut added, mut bookmarks) = (Vec::new(), 0);
    tokio::time::timeout(DEADLINE, async {
        while let Some(ev) = raw.next().await {
            match ev? {
                kube::api::WatchEvent::Added(cm) => added.push(cm.name_any()),
                kube::api::WatchEvent::Bookmark(_) => bookmarks += 1,
                _ => {}
            }
            if bookmarks >= 2 && !added.is_empty() {
                return Ok::<_, kube::Error>(());
            }
        }
        Ok(())
    })
    .await??;
    assert_eq!(added, vec!["w"]);

    // timeoutSeconds ends the stream.
    let started = Instant::now();
    let timed = cms
        .watch(&kube::api::WatchParams::default().timeout(1), "0")
        .await?;
    let events = tokio::time::timeout(DEADLINE, timed.collect::<Vec<_>>()).await?;
    assert!(events.len() >= 4, "initial ADDED events and bookmarks");
    assert!(started.elapsed() >= Duration::from_secs(1));
    Ok(())
}

#[tokio::test]
async fn list_with_label_and_field_selectors() -> anyhow::Result<()> {
    let (_sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p1");
    for (name, labels) in [
        ("a", json!({ "app": "web", "tier": "fe" })),
        ("b", json!({ "app": "web", "tier": "be", "legacy": "true" })),
        ("c", json!({ "app": "api", "tier": "be" })),
    ] {
        cms.patch(name, &apply(), &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name, "labels": labels } }))).await?;
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(cms.list(&ListParams::default().labels("app=web")).await?),
        ["a", "b"]
    );
    assert_eq!(
        names(cms.list(&ListParams::default().labels("app!=web")).await?),
        ["c"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("tier in (be),!legacy"))
                .await?
        ),
        ["c"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app notin (web)"))
                .await?
        ),
        ["c"]
    );
    assert_eq!(
        names(cms.list(&ListParams::default().labels("legacy")).await?),
        ["b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await?
        ),
        ["b"]
    );
    let list = cms.list(&ListParams::default().limit(2)).await?;
    assert_eq!(list.items.len(), 2);
    let rest = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(list.metadata.continue_.as_deref().unwrap_or("")),
        )
        .await?;
    assert_eq!(names(rest), ["c"]);
    let s = status_of(cms.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (400, "field label not supported: data.x")
    );
    // Cluster-wide list across namespaces.
    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default().labels("app"))
            .await?
            .items
            .len(),
        3
    );
    Ok(())
}

#[tokio::test]
async fn faults_counters_and_unimplemented_paths() -> anyhow::Result<()> {
    let (sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p1");
    cms.patch(
        "c",
        &apply(),
        &Patch::Apply(
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } }),
        ),
    )
    .await?;

    // 500 twice, then the call succeeds.
    sim.inject(
        Fault::status(500)
            .verb("get")
            .resource("configmaps")
            .times(2),
    );
    for _ in 0..2 {
        let s = status_of(cms.get("c").await);
        assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
    }
    cms.get("c").await?;
    assert_eq!(sim.requests().count("get", "configmaps"), 3);

    // 503s are retried by kube's client on its own; a slow answer is just slow.
    sim.inject(Fault::status(503).verb("list").times(2));
    cms.list(&ListParams::default()).await?;
    assert_eq!(sim.requests().count("list", "configmaps"), 3);
    sim.inject(Fault::slow(Duration::from_millis(200)).verb("get"));
    let t = Instant::now();
    cms.get("c").await?;
    assert!(t.elapsed() >= Duration::from_millis(200));

    // Anything not implemented is a 404 Status saying so, and is recorded.
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), "p1");
    let s = status_of(roles.list(&ListParams::default()).await);
    assert_eq!(s.code, 404);
    assert_eq!(
        s.message,
        "kubernetes simulator: not implemented: GET /apis/rbac.authorization.k8s.io/v1/namespaces/p1/roles"
    );
    let requests = sim.requests();
    assert_eq!(
        requests.unimplemented,
        vec!["GET /apis/rbac.authorization.k8s.io/v1/namespaces/p1/roles".to_owned()]
    );
    assert!(requests.total >= 9);
    Ok(())
}

#[tokio::test]
async fn discovery_version_and_pod_metrics() -> anyhow::Result<()> {
    let opts = KubeSimOptions::default();
    let (_sim, client) = start(opts).await?;
    let version = client.apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "35")
    );
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    let gvk = kube::api::GroupVersionKind::gvk("apps", "v1", "Deployment");
    let (resource, _caps) = discovery
        .resolve_gvk(&gvk)
        .expect("apps/v1 Deployment is discoverable");
    assert_eq!(resource.plural, "deployments");

    namespace(&client, "p1").await?;
    let mut body = deployment("web", "app:1", 1);
    body["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({ "requests": { "cpu": "100m", "memory": "128Mi" } });
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "p1");
    deploys.patch("web", &apply(), &Patch::Apply(body)).await?;
    tokio::time::timeout(
        DEADLINE,
        await_condition(deploys.clone(), "web", is_available),
    )
    .await??;
    let ar = ApiResource {
        group: "metrics.k8s.io".to_owned(),
        version: "v1beta1".to_owned(),
        api_version: "metrics.k8s.io/v1beta1".to_owned(),
        kind: "PodMetrics".to_owned(),
        plural: "pods".to_owned(),
    };
    let metrics: Api<DynamicObject> = Api::namespaced_with(client.clone(), "p1", &ar);
    let list = metrics
        .list(&ListParams::default().labels("app=web"))
        .await?;
    assert_eq!(list.items.len(), 1);
    let usage = &list.items[0].data["containers"][0]["usage"];
    assert_eq!(usage["cpu"], "20m");
    assert_eq!(usage["memory"], "64Mi");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_logs_stream_written_lines_until_the_pod_goes() -> anyhow::Result<()> {
    use futures::AsyncBufReadExt as _;
    let (sim, client) = start(KubeSimOptions::default()).await?;
    namespace(&client, "p1").await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "p1");
    deploys
        .patch(
            "web",
            &apply(),
            &Patch::Apply(deployment("web", "ghcr.io/acme/web:1", 1)),
        )
        .await?;
    let pod = wait_pod(&client, "p1", "app=web", "a running pod", |p| {
        container_status(p).is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
    })
    .await?;
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "p1");
    assert!(
        sim.write_log("p1", "nope", None, "x").is_err(),
        "no such pod"
    );
    assert!(sim.write_log("p1", &name, Some("nope"), "x").is_err());
    sim.write_log("p1", &name, None, "first written\nsecond written")?;

    // A plain read: the image's own lines, then the written ones; the tail counts both.
    let text = pods.logs(&name, &LogParams::default()).await?;
    assert!(text.ends_with("first written\nsecond written\n"), "{text}");
    let tail = LogParams {
        tail_lines: Some(1),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&name, &tail).await?, "second written\n");

    // Followed: the tail, then each line as written; the pod's deletion ends the stream.
    let follow = LogParams {
        follow: true,
        tail_lines: Some(1),
        timestamps: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream(&name, &follow).await?.lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next())
        .await?
        .expect("a line")?;
    assert!(first.ends_with(" second written"), "{first}");
    until("the follow to open", Duration::from_secs(10), || async {
        (sim.open_log_follows() == 1).then_some(())
    })
    .await?;
    sim.write_log("p1", &name, None, "third written")?;
    let next = tokio::time::timeout(Duration::from_secs(10), lines.next())
        .await?
        .expect("a line")?;
    assert!(next.ends_with(" third written"), "{next}");
    let at = next.split(' ').next().unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    pods.delete(&name, &DeleteParams::default()).await?;
    let end = tokio::time::timeout(Duration::from_secs(10), lines.next()).await?;
    assert!(end.is_none(), "the stream ends with the pod: {end:?}");
    until("the follow to close", Duration::from_secs(10), || async {
        (sim.open_log_follows() == 0).then_some(())
    })
    .await?;

    // A client that goes away closes its follow too.
    let other = wait_pod(&client, "p1", "app=web", "the replacement pod", |p| {
        p.name_any() != name
            && container_status(p)
                .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
    })
    .await?;
    let stream = pods.log_stream(&other.name_any(), &follow).await?;
    until(
        "the second follow to open",
        Duration::from_secs(10),
        || async { (sim.open_log_follows() == 1).then_some(()) },
    )
    .await?;
    drop(stream);
    until(
        "the dropped follow to close",
        Duration::from_secs(10),
        || async { (sim.open_log_follows() == 0).then_some(()) },
    )
    .await?;
    Ok(())
}
