//! The controllers: a background task that, after every write (and at the next moment a delay
//! runs out), reconciles the whole store the way kube-controller-manager would — namespaces
//! (Terminating → gone after the delay), garbage collection by owner references, Deployments
//! (a ReplicaSet per pod template, rolling over on a new template), ReplicaSets (pods, with
//! `FailedCreate` Events when quota refuses them), Jobs (pods, `Complete`/`Failed`), quota
//! usage, ingress addresses — plus the kubelet (see [`super::kubelet`]).
//!
//! Each pass is level-triggered and idempotent: it writes only what differs, so passes settle.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::admission;
use super::events::emit;
use super::kubelet::{self, PodSim, pod_ready};
use super::quantity;
use super::resources::{self, ResourceDef};
use super::store::{Key, World, now_string};
use super::verbs::{self, meta_str};
use super::{KubeSimOptions, Shared};

/// How long a ReplicaSet or Job waits before retrying a refused pod create.
const CREATE_RETRY: Duration = Duration::from_millis(500);

/// Side state the controllers keep between passes.
#[derive(Debug, Default)]
pub(crate) struct CtlState {
    /// Namespaces being deleted, since when.
    pub(crate) ns_deleting: HashMap<String, Instant>,
    pub(crate) pods: HashMap<String, PodSim>,
    /// Event series → (event name, count, message).
    pub(crate) events: HashMap<String, (String, i64, String)>,
    /// Owner uid → when a refused pod create may be retried.
    retry_at: HashMap<String, Instant>,
    /// Deployment uid → (new ReplicaSet name, when its rollout started).
    progress: HashMap<String, (String, Instant)>,
    /// Job uid → (started, finished).
    jobs: HashMap<String, (Instant, Option<Instant>)>,
}

fn rd(plural: &str) -> &'static ResourceDef {
    resources::by_plural(plural).unwrap_or(&resources::RESOURCES[0])
}

fn earliest(next: &mut Option<Instant>, at: Instant) {
    *next = Some(next.map_or(at, |n| n.min(at)));
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&Value::Bool(true)))?
        .get("uid")
        .and_then(Value::as_str)
}

fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": meta_str(owner, "name"),
        "uid": meta_str(owner, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn int_at(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// FNV-1a over a canonical (key-sorted) JSON rendering.
fn stable_hash(v: &Value) -> u64 {
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(k);
                    out.push(':');
                    canon(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    canon(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canon(v, &mut s);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A `pod-template-hash`: ten characters of the real server's safe alphabet.
fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = stable_hash(template);
    (0..10)
        .map(|_| {
            let c = ALPHABET[usize::try_from(h % 27).unwrap_or(0)] as char;
            h /= 27;
            c
        })
        .collect()
}

/// The background loop: reconcile, then sleep until woken by a write or a deadline.
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let started = Instant::now();
        let next = {
            let mut w = shared
                .world
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            reconcile(&mut w, &shared.opts, Instant::now())
        };
        let pass = started.elapsed();
        let sleep = match next {
            Some(at) => tokio::time::sleep_until(at.into()),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            () = shared.wake.notified() => {
                // A pass looks at every object: with many previews, reconciling on every write
                // would leave no CPU for anything else. Let writes gather for as long as the last
                // pass took, so the controllers use at most about half of a core.
                tokio::time::sleep(pass).await;
            }
            () = sleep => {}
        }
    }
}

/// One pass over everything; returns when something will next change on its own.
pub(crate) fn reconcile(w: &mut World, opts: &KubeSimOptions, now: Instant) -> Option<Instant> {
    let mut next = None;
    namespaces(w, opts, now, &mut next);
    garbage_collect(w);
    deployments(w, now);
    replicasets(w, now, &mut next);
    jobs(w, now, &mut next);
    if let Some(at) = kubelet::reconcile(w, opts, now) {
        earliest(&mut next, at);
    }
    replicaset_status(w);
    deployment_status(w, now, &mut next);
    jobs(w, now, &mut next);
    quotas(w);
    ingresses(w);
    claims(w);
    next
}

fn namespaces(w: &mut World, opts: &KubeSimOptions, now: Instant, next: &mut Option<Instant>) {
    let deleting: Vec<(String, Instant)> = w
        .ctl
        .ns_deleting
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for (ns, since) in deleting {
        let due = since + opts.namespace_deletion_delay;
        if now >= due {
            for k in w.keys_in_namespace(&ns) {
                w.remove(&k);
            }
            w.remove(&Key::new("namespaces", "", &ns));
            w.ctl.ns_deleting.remove(&ns);
        } else {
            earliest(next, due);
        }
    }
}

/// Deletes namespaced objects whose owners are all gone.
fn garbage_collect(w: &mut World) {
    let mut uids: HashSet<String> = HashSet::new();
    let mut owned: Vec<(Key, Vec<String>)> = Vec::new();
    for r in resources::RESOURCES {
        for (k, s) in w.iter(r.plural, None) {
            uids.insert(meta_str(&s.obj, "uid").to_owned());
            if let Some(refs) = s
                .obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                && !refs.is_empty()
            {
                let owners = refs
                    .iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                    .collect();
                owned.push((k.clone(), owners));
            }
        }
    }
    for (k, owners) in owned {
        if owners.iter().all(|o| !uids.contains(o))
            && let Some(obj) = w.get(&k).map(|s| s.obj.clone())
        {
            verbs::cascade(w, &k.namespace, meta_str(&obj, "uid"));
            w.remove(&k);
        }
    }
}

/// Objects of `plural` in `ns` controlled by `uid` (not being deleted).
fn controlled(w: &World, plural: &'static str, ns: &str, uid: &str) -> Vec<Value> {
    w.iter(plural, Some(ns))
        .filter(|(_, s)| controller_uid(&s.obj) == Some(uid) && !is_deleting(&s.obj))
        .map(|(_, s)| s.obj.clone())
        .collect()
}

fn max_unavailable(d: &Value, desired: i64) -> i64 {
    if d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate") {
        return 0;
    }
    match d.pointer("/spec/strategy/rollingUpdate/maxUnavailable") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) if s.ends_with('%') => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            desired * pct / 100
        }
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => desired / 4,
    }
}

fn scale(w: &mut World, deploy: &Value, rs: &Value, to: i64) {
    let from = int_at(rs, "/spec/replicas", 1);
    if from == to {
        return;
    }
    let ns = meta_str(rs, "namespace").to_owned();
    let name = meta_str(rs, "name").to_owned();
    verbs::controller_patch(
        w,
        rd("replicasets"),
        &ns,
        &name,
        "kube-controller-manager",
        |r| {
            r["spec"]["replicas"] = json!(to);
        },
    );
    let dir = if to > from { "up" } else { "down" };
    emit(
        w,
        deploy,
        "Normal",
        "ScalingReplicaSet",
        &format!("Scaled {dir} replica set {name} from {from} to {to}"),
        "deployment-controller",
        &format!("Scale/{name}/{from}/{to}"),
        1,
    );
}

fn deployments(w: &mut World, now: Instant) {
    for d in w.objs("deployments", None) {
        if is_deleting(&d) {
            continue;
        }
        let ns = meta_str(&d, "namespace").to_owned();
        let name = meta_str(&d, "name").to_owned();
        let uid = meta_str(&d, "uid").to_owned();
        let desired = int_at(&d, "/spec/replicas", 1);
        let Some(template) = d.pointer("/spec/template").cloned() else {
            continue;
        };
        let hash = template_hash(&template);
        let rs_name = format!("{name}-{hash}");
        let owned = controlled(w, "replicasets", &ns, &uid);
        let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
        let old: Vec<&Value> = owned
            .iter()
            .filter(|r| meta_str(r, "name") != rs_name)
            .collect();
        let old_pods: usize = old
            .iter()
            .map(|r| controlled(w, "pods", &ns, meta_str(r, "uid")).len())
            .sum();
        let target = if recreate && old_pods > 0 { 0 } else { desired };
        match owned.iter().find(|r| meta_str(r, "name") == rs_name) {
            None => {
                let revision = owned
                    .iter()
                    .filter_map(|r| {
                        r.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse::<i64>().ok())
                    })
                    .max()
                    .unwrap_or(0)
                    + 1;
                let mut labels = template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels["pod-template-hash"] = json!(hash);
                let mut tmpl = template.clone();
                tmpl["metadata"]["labels"] = labels.clone();
                let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                if !selector.get("matchLabels").is_some_and(Value::is_object) {
                    selector["matchLabels"] = json!({});
                }
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let rs = json!({
                    "metadata": {
                        "name": rs_name,
                        "namespace": ns,
                        "labels": labels,
                        "annotations": {
                            "deployment.kubernetes.io/revision": revision.to_string(),
                            "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        },
                        "ownerReferences": [owner_ref(&d)],
                    },
                    "spec": { "replicas": target, "selector": selector, "template": tmpl },
                });
                if verbs::controller_create(w, "replicasets", &ns, rs).is_ok() {
                    w.ctl.progress.insert(uid.clone(), (rs_name.clone(), now));
                    if target > 0 {
                        emit(
                            w,
                            &d,
                            "Normal",
                            "ScalingReplicaSet",
                            &format!("Scaled up replica set {rs_name} from 0 to {target}"),
                            "deployment-controller",
                            &format!("Scale/{rs_name}/0/{target}"),
                            1,
                        );
                    }
                    verbs::controller_patch(
                        w,
                        rd("deployments"),
                        &ns,
                        &name,
                        "kube-controller-manager",
                        |o| {
                            if !o
                                .pointer("/metadata/annotations")
                                .is_some_and(Value::is_object)
                            {
                                o["metadata"]["annotations"] = json!({});
                            }
                            o["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                                json!(revision.to_string());
                        },
                    );
                }
            }
            Some(new_rs) => {
                let new_rs = new_rs.clone();
                scale(w, &d, &new_rs, target);
                let ready_new = controlled(w, "pods", &ns, meta_str(&new_rs, "uid"))
                    .iter()
                    .filter(|p| pod_ready(p))
                    .count();
                let ready_new = i64::try_from(ready_new).unwrap_or(0);
                if recreate || ready_new >= desired {
                    for r in old {
                        scale(w, &d, r, 0);
                    }
                }
            }
        }
        if w.ctl.progress.get(&uid).is_none_or(|(n, _)| *n != rs_name) {
            w.ctl.progress.insert(uid.clone(), (rs_name.clone(), now));
        }
    }
}

/// Creates one pod for `owner` from its template; on refusal records `FailedCreate` and backs off.
fn create_pod(
    w: &mut World,
    owner: &Value,
    component: &str,
    now: Instant,
    next: &mut Option<Instant>,
) -> bool {
    let uid = meta_str(owner, "uid").to_owned();
    if let Some(at) = w.ctl.retry_at.get(&uid).copied() {
        if now < at {
            earliest(next, at);
            return false;
        }
        w.ctl.retry_at.remove(&uid);
    }
    let ns = meta_str(owner, "namespace").to_owned();
    let template = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(json!({}));
    let pod = json!({
        "metadata": {
            "generateName": format!("{}-", meta_str(owner, "name")),
            "namespace": ns,
            "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
            "ownerReferences": [owner_ref(owner)],
        },
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    });
    let mut pod = pod;
    for field in ["labels", "annotations"] {
        if pod["metadata"][field]
            .as_object()
            .is_some_and(Map::is_empty)
            && let Some(m) = pod["metadata"].as_object_mut()
        {
            m.remove(field);
        }
    }
    match verbs::controller_create(w, "pods", &ns, pod) {
        Ok(p) => {
            let pname = meta_str(&p, "name").to_owned();
            emit(
                w,
                owner,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {pname}"),
                component,
                &format!("SuccessfulCreate/{pname}"),
                1,
            );
            true
        }
        Err(e) => {
            let series = "FailedCreate";
            let count = w
                .ctl
                .events
                .get(&format!("{uid}/{series}"))
                .map_or(1, |(_, c, _)| c + 1);
            emit(
                w,
                owner,
                "Warning",
                "FailedCreate",
                &format!("Error creating: {}", e.message),
                component,
                series,
                count,
            );
            let at = now + CREATE_RETRY;
            w.ctl.retry_at.insert(uid, at);
            earliest(next, at);
            false
        }
    }
}

fn replicasets(w: &mut World, now: Instant, next: &mut Option<Instant>) {
    for rs in w.objs("replicasets", None) {
        if is_deleting(&rs) {
            continue;
        }
        let ns = meta_str(&rs, "namespace").to_owned();
        let desired = usize::try_from(int_at(&rs, "/spec/replicas", 1)).unwrap_or(0);
        let mut pods = controlled(w, "pods", &ns, meta_str(&rs, "uid"));
        let mut have = pods.len();
        while have < desired {
            if !create_pod(w, &rs, "replicaset-controller", now, next) {
                break;
            }
            have += 1;
        }
        if pods.len() > desired {
            // Delete not-ready pods first, then the newest.
            pods.sort_by_key(|p| {
                (
                    pod_ready(p),
                    std::cmp::Reverse(meta_str(p, "creationTimestamp").to_owned()),
                )
            });
            for p in pods.iter().take(pods.len() - desired) {
                let pname = meta_str(p, "name").to_owned();
                if verbs::delete(w, rd("pods"), &ns, &pname, &json!({}), false).is_ok() {
                    emit(
                        w,
                        &rs,
                        "Normal",
                        "SuccessfulDelete",
                        &format!("Deleted pod: {pname}"),
                        "replicaset-controller",
                        &format!("SuccessfulDelete/{pname}"),
                        1,
                    );
                }
            }
        }
    }
}

fn replicaset_status(w: &mut World) {
    for rs in w.objs("replicasets", None) {
        let ns = meta_str(&rs, "namespace").to_owned();
        let pods = controlled(w, "pods", &ns, meta_str(&rs, "uid"));
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let mut status = json!({
            "replicas": pods.len(),
            "observedGeneration": int_at(&rs, "/metadata/generation", 1),
        });
        if !pods.is_empty() {
            status["fullyLabeledReplicas"] = json!(pods.len());
        }
        if ready > 0 {
            status["readyReplicas"] = json!(ready);
            status["availableReplicas"] = json!(ready);
        }
        verbs::write_status(
            w,
            rd("replicasets"),
            &ns,
            meta_str(&rs, "name"),
            status,
            "kube-controller-manager",
        );
    }
}

/// A condition keeping its times while its status (and reason/message) stay the same.
fn keep_times(
    old: Option<&Value>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
    with_update: bool,
) -> Value {
    let prev = old.and_then(Value::as_array).and_then(|cs| {
        cs.iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    });
    let status_s = if status { "True" } else { "False" };
    let same_status =
        prev.is_some_and(|p| p.get("status").and_then(Value::as_str) == Some(status_s));
    let same_all = same_status
        && prev.is_some_and(|p| {
            p.get("reason").and_then(Value::as_str) == Some(reason)
                && p.get("message").and_then(Value::as_str) == Some(message)
        });
    let transition = if same_status {
        prev.and_then(|p| p.get("lastTransitionTime"))
            .cloned()
            .unwrap_or(json!(now))
    } else {
        json!(now)
    };
    let mut c = json!({
        "type": type_,
        "status": status_s,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if with_update {
        c["lastUpdateTime"] = if same_all {
            prev.and_then(|p| p.get("lastUpdateTime"))
                .cloned()
                .unwrap_or(json!(now))
        } else {
            json!(now)
        };
    } else {
        c["lastProbeTime"] = if same_all {
            prev.and_then(|p| p.get("lastProbeTime"))
                .cloned()
                .unwrap_or(json!(now))
        } else {
            json!(now)
        };
    }
    c
}

fn deployment_status(w: &mut World, now: Instant, next: &mut Option<Instant>) {
    let now_s = now_string();
    for d in w.objs("deployments", None) {
        let ns = meta_str(&d, "namespace").to_owned();
        let uid = meta_str(&d, "uid").to_owned();
        let desired = int_at(&d, "/spec/replicas", 1);
        let rses = controlled(w, "replicasets", &ns, &uid);
        let new_name = w
            .ctl
            .progress
            .get(&uid)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let mut replicas = 0i64;
        let mut updated = 0i64;
        let mut ready = 0i64;
        for rs in &rses {
            let pods = controlled(w, "pods", &ns, meta_str(rs, "uid"));
            let n = i64::try_from(pods.len()).unwrap_or(0);
            replicas += n;
            ready += i64::try_from(pods.iter().filter(|p| pod_ready(p)).count()).unwrap_or(0);
            if meta_str(rs, "name") == new_name {
                updated += n;
            }
        }
        let available = ready;
        let old_conditions = d.pointer("/status/conditions");
        let min_available = desired - max_unavailable(&d, desired);
        let is_available = available >= min_available;
        let available_cond = if is_available {
            keep_times(
                old_conditions,
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                &now_s,
                true,
            )
        } else {
            keep_times(
                old_conditions,
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                &now_s,
                true,
            )
        };
        let complete = updated == desired && available >= desired && replicas == desired;
        let deadline = Duration::from_secs(
            u64::try_from(int_at(&d, "/spec/progressDeadlineSeconds", 600)).unwrap_or(600),
        );
        let started = w.ctl.progress.get(&uid).map_or(now, |(_, t)| *t);
        let progressing_cond = if complete {
            keep_times(
                old_conditions,
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                &format!("ReplicaSet {new_name:?} has successfully progressed."),
                &now_s,
                true,
            )
        } else if now >= started + deadline {
            keep_times(
                old_conditions,
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet {new_name:?} has timed out progressing."),
                &now_s,
                true,
            )
        } else {
            earliest(next, started + deadline);
            keep_times(
                old_conditions,
                "Progressing",
                true,
                "ReplicaSetUpdated",
                &format!("ReplicaSet {new_name:?} is progressing."),
                &now_s,
                true,
            )
        };
        let mut status = Map::new();
        status.insert(
            "observedGeneration".to_owned(),
            json!(int_at(&d, "/metadata/generation", 1)),
        );
        for (k, v) in [
            ("replicas", replicas),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("unavailableReplicas", (desired - available).max(0)),
        ] {
            if v > 0 {
                status.insert(k.to_owned(), json!(v));
            }
        }
        status.insert(
            "conditions".to_owned(),
            json!([available_cond, progressing_cond]),
        );
        verbs::write_status(
            w,
            rd("deployments"),
            &ns,
            meta_str(&d, "name"),
            Value::Object(status),
            "kube-controller-manager",
        );
    }
}

fn job_finished(job: &Value) -> Option<&'static str> {
    let conds = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)?;
    for c in conds {
        if c.get("status").and_then(Value::as_str) == Some("True") {
            match c.get("type").and_then(Value::as_str) {
                Some("Complete") => return Some("Complete"),
                Some("Failed") => return Some("Failed"),
                _ => {}
            }
        }
    }
    None
}

fn jobs(w: &mut World, now: Instant, next: &mut Option<Instant>) {
    let now_s = now_string();
    for job in w.objs("jobs", None) {
        if is_deleting(&job) {
            continue;
        }
        let ns = meta_str(&job, "namespace").to_owned();
        let name = meta_str(&job, "name").to_owned();
        let uid = meta_str(&job, "uid").to_owned();
        let (started, finished_at) = *w.ctl.jobs.entry(uid.clone()).or_insert((now, None));
        if job_finished(&job).is_some() {
            let done_at = finished_at.unwrap_or(now);
            w.ctl.jobs.insert(uid.clone(), (started, Some(done_at)));
            if let Some(ttl) = job
                .pointer("/spec/ttlSecondsAfterFinished")
                .and_then(Value::as_u64)
            {
                let due = done_at + Duration::from_secs(ttl);
                if now >= due {
                    let _ = verbs::delete(
                        w,
                        rd("jobs"),
                        &ns,
                        &name,
                        &json!({"propagationPolicy": "Background"}),
                        false,
                    );
                    continue;
                }
                earliest(next, due);
            }
            continue;
        }
        let pods = controlled(w, "pods", &ns, &uid);
        let phase = |p: &Value| {
            p.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count();
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
            .collect();
        let ready = active.iter().filter(|p| pod_ready(p)).count();
        let completions = usize::try_from(int_at(&job, "/spec/completions", 1)).unwrap_or(1);
        let parallelism = usize::try_from(int_at(&job, "/spec/parallelism", 1)).unwrap_or(1);
        let backoff_limit = usize::try_from(int_at(&job, "/spec/backoffLimit", 6)).unwrap_or(6);
        let deadline = job
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);

        let old = job.get("status").cloned().unwrap_or(json!({}));
        let start_time = old.get("startTime").cloned().unwrap_or(json!(now_s));
        let old_conditions = old.get("conditions");
        let mut outcome: Option<(&str, &str, &str, &str)> = None;
        if failed > backoff_limit {
            outcome = Some((
                "FailureTarget",
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ));
        } else if deadline.is_some_and(|dl| now >= started + dl) {
            outcome = Some((
                "FailureTarget",
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ));
        } else if succeeded >= completions {
            outcome = Some((
                "SuccessCriteriaMet",
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ));
        } else {
            if let Some(dl) = deadline {
                earliest(next, started + dl);
            }
            let want = parallelism.min(completions - succeeded);
            let mut have = active.len();
            while have < want {
                if !create_pod(w, &job, "job-controller", now, next) {
                    break;
                }
                have += 1;
            }
        }
        let mut status = Map::new();
        status.insert("startTime".to_owned(), start_time);
        let mut active_n = controlled(w, "pods", &ns, &uid)
            .iter()
            .filter(|p| !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
            .count();
        if let Some((target, final_type, reason, message)) = outcome {
            if final_type == "Failed" {
                for p in &active {
                    let _ =
                        verbs::delete(w, rd("pods"), &ns, meta_str(p, "name"), &json!({}), false);
                }
                active_n = 0;
                emit(
                    w,
                    &job,
                    "Warning",
                    reason,
                    message,
                    "job-controller",
                    reason,
                    1,
                );
            } else {
                emit(
                    w,
                    &job,
                    "Normal",
                    "Completed",
                    "Job completed",
                    "job-controller",
                    "Completed",
                    1,
                );
                status.insert("completionTime".to_owned(), json!(now_s));
            }
            status.insert(
                "conditions".to_owned(),
                json!([
                    keep_times(old_conditions, target, true, reason, message, &now_s, false),
                    keep_times(
                        old_conditions,
                        final_type,
                        true,
                        reason,
                        message,
                        &now_s,
                        false
                    ),
                ]),
            );
            w.ctl.jobs.insert(uid.clone(), (started, Some(now)));
        }
        if active_n > 0 {
            status.insert("active".to_owned(), json!(active_n));
        }
        if succeeded > 0 {
            status.insert("succeeded".to_owned(), json!(succeeded));
        }
        if failed > 0 {
            status.insert("failed".to_owned(), json!(failed));
        }
        status.insert(
            "ready".to_owned(),
            json!(if outcome.is_some() { 0 } else { ready }),
        );
        status.insert("terminating".to_owned(), json!(0));
        status.insert("uncountedTerminatedPods".to_owned(), json!({}));
        verbs::write_status(
            w,
            rd("jobs"),
            &ns,
            &name,
            Value::Object(status),
            "kube-controller-manager",
        );
    }
    let live: HashSet<String> = w
        .iter("jobs", None)
        .map(|(_, s)| meta_str(&s.obj, "uid").to_owned())
        .collect();
    w.ctl.jobs.retain(|uid, _| live.contains(uid));
    let owners: HashSet<String> = w
        .iter("replicasets", None)
        .map(|(_, s)| meta_str(&s.obj, "uid").to_owned())
        .chain(live)
        .collect();
    w.ctl.retry_at.retain(|uid, _| owners.contains(uid));
}

fn quotas(w: &mut World) {
    for q in w.objs("resourcequotas", None) {
        let ns = meta_str(&q, "namespace").to_owned();
        let hard = q
            .pointer("/spec/hard")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let used = admission::usage(w, &ns, &hard);
        let used: Map<String, Value> = used
            .into_iter()
            .map(|(k, v)| (k, json!(quantity::format(v))))
            .collect();
        let status = json!({ "hard": hard, "used": used });
        verbs::write_status(
            w,
            rd("resourcequotas"),
            &ns,
            meta_str(&q, "name"),
            status,
            "kube-controller-manager",
        );
    }
}

fn ingresses(w: &mut World) {
    for ing in w.objs("ingresses", None) {
        if ing.pointer("/status/loadBalancer/ingress").is_some() {
            continue;
        }
        let ns = meta_str(&ing, "namespace").to_owned();
        let status = json!({ "loadBalancer": { "ingress": [{ "ip": "127.0.0.1" }] } });
        verbs::write_status(
            w,
            rd("ingresses"),
            &ns,
            meta_str(&ing, "name"),
            status,
            "ingress-controller",
        );
    }
}

/// PersistentVolumeClaims bind at once (a default StorageClass that provisions immediately).
fn claims(w: &mut World) {
    for pvc in w.objs("persistentvolumeclaims", None) {
        let ns = meta_str(&pvc, "namespace").to_owned();
        let mut status = json!({ "phase": "Bound" });
        if let Some(modes) = pvc.pointer("/spec/accessModes") {
            status["accessModes"] = modes.clone();
        }
        if let Some(size) = pvc.pointer("/spec/resources/requests/storage") {
            status["capacity"] = json!({ "storage": size });
        }
        verbs::write_status(
            w,
            rd("persistentvolumeclaims"),
            &ns,
            meta_str(&pvc, "name"),
            status,
            "persistentvolume-controller",
        );
    }
}
