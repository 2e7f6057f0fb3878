//! The simulated scheduler and kubelet: each pod moves through Pending → Running → Ready (or
//! Succeeded/Failed for Job pods) on the configured delays, unless a [`Behaviour`] says it fails
//! to schedule, pull, start or stay up — with the container states, conditions, restart counts,
//! Events and logs a real cluster shows. Also serves `pods/{name}/log` and the
//! `metrics.k8s.io` PodMetrics of running pods.
//!
//! A pod's status is a pure function of its behaviour and the time since it started, so
//! re-running the reconcile writes nothing unless time or a behaviour moved it on.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::KubeSimOptions;
use super::events::emit;
use super::quantity;
use super::resources;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::World;
use super::verbs::{self, meta_str};

/// The node every scheduled pod lands on.
pub(crate) const NODE: &str = "previewd-sim-node";

/// How a workload's pods behave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Pods start and become Ready; Job pods succeed.
    #[default]
    Succeed,
    /// The image cannot be pulled: waiting `ImagePullBackOff`, Events `Failed`/`BackOff`.
    ImagePullBackOff,
    /// The container exits 1 over and over: waiting `CrashLoopBackOff`, growing restartCount.
    CrashLoopBackOff { logs: Vec<String> },
    /// The container is killed for memory: lastState terminated `OOMKilled`, exit code 137.
    OomKilled,
    /// Running, never Ready (readiness probe failing).
    NeverReady,
    /// A Job's pod exits 1 after the job duration (for a Deployment: crash loop).
    JobFails { logs: Vec<String> },
    /// No node fits: Pending, `PodScheduled=False` reason `Unschedulable`.
    Unschedulable,
}

/// Behaviours set by tests.
#[derive(Debug, Default)]
pub(crate) struct Behaviours {
    pub(crate) by_workload: HashMap<(String, String), Behaviour>,
    pub(crate) by_image: Vec<(String, Behaviour)>,
}

/// Side state the kubelet keeps per pod (by uid).
#[derive(Debug, Clone)]
pub(crate) struct PodSim {
    started: Instant,
    wall: DateTime<Utc>,
    ip: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero())
}

/// The workload a pod belongs to: its Job, its ReplicaSet's Deployment, or its ReplicaSet.
fn workload_of(w: &World, pod: &Value) -> Option<String> {
    let ns = meta_str(pod, "namespace");
    if let Some(job) = pod
        .pointer("/metadata/labels/batch.kubernetes.io~1job-name")
        .and_then(Value::as_str)
    {
        return Some(job.to_owned());
    }
    let owner = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller") == Some(&Value::Bool(true)))
        })?;
    let kind = owner.get("kind").and_then(Value::as_str)?;
    let name = owner.get("name").and_then(Value::as_str)?;
    match kind {
        "ReplicaSet" => {
            let rs = w.get_obj("replicasets", ns, name);
            let deploy = rs
                .and_then(|r| r.pointer("/metadata/ownerReferences"))
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter()
                        .find(|r| r.get("kind").and_then(Value::as_str) == Some("Deployment"))
                })
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str);
            Some(deploy.unwrap_or(name).to_owned())
        }
        _ => Some(name.to_owned()),
    }
}

/// The behaviour of one container of a pod.
pub(crate) fn behaviour_for(w: &World, pod: &Value, image: &str) -> Behaviour {
    let ns = meta_str(pod, "namespace").to_owned();
    let candidates = [workload_of(w, pod), Some(meta_str(pod, "name").to_owned())];
    for c in candidates.into_iter().flatten() {
        if let Some(b) = w.behaviours.by_workload.get(&(ns.clone(), c)) {
            return b.clone();
        }
    }
    w.behaviours
        .by_image
        .iter()
        .find(|(sub, _)| image.contains(sub.as_str()))
        .map(|(_, b)| b.clone())
        .unwrap_or_default()
}

fn containers(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        c.get("image")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_job_pod(pod: &Value) -> bool {
    pod.pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
        != "Always"
}

/// Restarts of a crash-looping container after `elapsed` (back-off 100ms doubling to 5s),
/// and when the next one happens.
fn restarts(elapsed: Duration) -> (i64, Duration) {
    let mut at = Duration::ZERO;
    let mut gap = Duration::from_millis(100);
    let mut n = 0;
    loop {
        let next = at + gap;
        if next > elapsed {
            return (n, next);
        }
        at = next;
        n += 1;
        gap = (gap * 2).min(Duration::from_secs(5));
    }
}

fn fake_digest(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{h:016x}{:016x}{h:016x}{:016x}",
        h.rotate_left(17),
        h.rotate_left(31)
    )
}

fn qos_class(pod: &Value) -> &'static str {
    let cs = pod.pointer("/spec/containers").and_then(Value::as_array);
    let mut any = false;
    let mut guaranteed = true;
    for c in cs.into_iter().flatten() {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(r)).and_then(quantity::of_value);
            let q = req
                .and_then(|q| q.get(r))
                .and_then(quantity::of_value)
                .or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// An event the kubelet wants recorded: (type, reason, message, component, series, count).
type EventSpec = (
    &'static str,
    &'static str,
    String,
    &'static str,
    String,
    i64,
);

struct Computed {
    status: Value,
    scheduled: bool,
    events: Vec<EventSpec>,
    next: Option<Duration>,
}

fn condition(
    type_: &str,
    ok: bool,
    at: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> Value {
    let mut c = json!({
        "type": type_,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at,
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

fn compute(w: &World, pod: &Value, sim: &PodSim, opts: &KubeSimOptions, now: Instant) -> Computed {
    let name = meta_str(pod, "name");
    let ns = meta_str(pod, "namespace");
    let uid = meta_str(pod, "uid");
    let elapsed = now.saturating_duration_since(sim.started);
    let t0 = ts(sim.wall);
    let job = is_job_pod(pod);
    let cs = containers(pod);
    let behaviours: Vec<Behaviour> = cs
        .iter()
        .map(|(_, image)| behaviour_for(w, pod, image))
        .collect();
    let qos = qos_class(pod);
    let mut events: Vec<EventSpec> = Vec::new();
    let mut next: Option<Duration> = None;
    let mut wake = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));

    if behaviours.contains(&Behaviour::Unschedulable) {
        let msg = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
        events.push((
            "Warning",
            "FailedScheduling",
            msg.to_owned(),
            "default-scheduler",
            "FailedScheduling".to_owned(),
            1,
        ));
        return Computed {
            status: json!({
                "phase": "Pending",
                "conditions": [condition("PodScheduled", false, &t0, Some("Unschedulable"), Some(msg))],
                "qosClass": qos,
            }),
            scheduled: false,
            events,
            next: None,
        };
    }
    events.push((
        "Normal",
        "Scheduled",
        format!("Successfully assigned {ns}/{name} to {NODE}"),
        "default-scheduler",
        "Scheduled".to_owned(),
        1,
    ));

    let mut statuses = Vec::new();
    let mut all_ready = true;
    let mut unready = Vec::new();
    let mut waiting_image = false;
    let mut terminated: Vec<i64> = Vec::new();
    let mut ready_at = sim.wall;
    for ((cname, image), b) in cs.iter().zip(&behaviours) {
        let container_id = format!(
            "containerd://{}",
            &fake_digest(&format!("{uid}/{cname}"))[..64]
        );
        let image_id = format!("{image}@sha256:{}", fake_digest(image));
        let started_events = |events: &mut Vec<EventSpec>| {
            events.push((
                "Normal",
                "Pulled",
                format!("Container image {image:?} already present on machine"),
                "kubelet",
                format!("Pulled/{cname}"),
                1,
            ));
            events.push((
                "Normal",
                "Created",
                format!("Created container: {cname}"),
                "kubelet",
                format!("Created/{cname}"),
                1,
            ));
            events.push((
                "Normal",
                "Started",
                format!("Started container {cname}"),
                "kubelet",
                format!("Started/{cname}"),
                1,
            ));
        };
        let running = json!({ "running": { "startedAt": t0 } });
        let (state, last_state, ready, restart_count, started, with_ids) = match b {
            Behaviour::ImagePullBackOff => {
                waiting_image = true;
                events.push((
                    "Normal",
                    "Pulling",
                    format!("Pulling image {image:?}"),
                    "kubelet",
                    format!("Pulling/{cname}"),
                    1,
                ));
                events.push((
                    "Warning",
                    "Failed",
                    format!("Failed to pull image {image:?}: rpc error: code = NotFound desc = failed to pull and unpack image {image:?}: not found"),
                    "kubelet",
                    format!("FailedPull/{cname}"),
                    1,
                ));
                events.push((
                    "Warning",
                    "Failed",
                    "Error: ErrImagePull".to_owned(),
                    "kubelet",
                    format!("ErrImagePull/{cname}"),
                    1,
                ));
                events.push((
                    "Normal",
                    "BackOff",
                    format!("Back-off pulling image {image:?}"),
                    "kubelet",
                    format!("BackOffPull/{cname}"),
                    1,
                ));
                events.push((
                    "Warning",
                    "Failed",
                    "Error: ImagePullBackOff".to_owned(),
                    "kubelet",
                    format!("ImagePullBackOff/{cname}"),
                    1,
                ));
                (
                    json!({ "waiting": { "reason": "ImagePullBackOff", "message": format!("Back-off pulling image {image:?}") } }),
                    json!({}),
                    false,
                    0,
                    false,
                    false,
                )
            }
            Behaviour::NeverReady if !job => {
                started_events(&mut events);
                events.push((
                    "Warning",
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503".to_owned(),
                    "kubelet",
                    format!("Unhealthy/{cname}"),
                    1,
                ));
                (running, json!({}), false, 0, true, true)
            }
            Behaviour::NeverReady => {
                started_events(&mut events);
                (running, json!({}), false, 0, true, true)
            }
            Behaviour::Succeed if !job => {
                started_events(&mut events);
                let ready = elapsed >= opts.deployment_ready_delay;
                if ready {
                    ready_at = ready_at.max(sim.wall + chrono_dur(opts.deployment_ready_delay));
                } else {
                    wake(opts.deployment_ready_delay);
                }
                (running, json!({}), ready, 0, true, true)
            }
            Behaviour::CrashLoopBackOff { .. }
            | Behaviour::JobFails { .. }
            | Behaviour::OomKilled
                if !job
                    || pod.pointer("/spec/restartPolicy").and_then(Value::as_str)
                        == Some("OnFailure") =>
            {
                started_events(&mut events);
                let (n, at) = restarts(elapsed);
                wake(at);
                let (code, reason) = if *b == Behaviour::OomKilled {
                    (137, "OOMKilled")
                } else {
                    (1, "Error")
                };
                let backoff = 10i64.saturating_mul(1 << n.min(5)).min(300);
                events.push((
                    "Warning",
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"
                    ),
                    "kubelet",
                    format!("BackOff/{cname}"),
                    n + 1,
                ));
                (
                    json!({ "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": format!("back-off {backoff}s restarting failed container={cname} pod={name}_{ns}({uid})"),
                    } }),
                    json!({ "terminated": {
                        "exitCode": code, "reason": reason, "startedAt": t0, "finishedAt": t0,
                        "containerID": container_id,
                    } }),
                    false,
                    n,
                    false,
                    true,
                )
            }
            // A Job pod (restartPolicy Never) runs for the job duration, then exits.
            _ => {
                started_events(&mut events);
                if elapsed >= opts.job_duration {
                    let (code, reason) = match b {
                        Behaviour::Succeed => (0, "Completed"),
                        Behaviour::OomKilled => (137, "OOMKilled"),
                        _ => (1, "Error"),
                    };
                    terminated.push(code);
                    let end = ts(sim.wall + chrono_dur(opts.job_duration));
                    (
                        json!({ "terminated": {
                            "exitCode": code, "reason": reason, "startedAt": t0, "finishedAt": end,
                            "containerID": container_id,
                        } }),
                        json!({}),
                        false,
                        0,
                        false,
                        true,
                    )
                } else {
                    wake(opts.job_duration);
                    (running, json!({}), true, 0, true, true)
                }
            }
        };
        if !ready {
            all_ready = false;
            unready.push(cname.clone());
        }
        let mut st = json!({
            "name": cname,
            "image": image,
            "imageID": if with_ids { image_id } else { String::new() },
            "ready": ready,
            "restartCount": restart_count,
            "started": started,
            "state": state,
            "lastState": last_state,
        });
        if with_ids {
            st["containerID"] = json!(container_id);
        }
        statuses.push(st);
    }

    let finished = job && !cs.is_empty() && terminated.len() == cs.len();
    let phase = if waiting_image {
        "Pending"
    } else if finished {
        if terminated.iter().all(|c| *c == 0) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else {
        "Running"
    };
    let ready_time = if all_ready { ts(ready_at) } else { t0.clone() };
    let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
    let (ready_cond, containers_ready) = if finished {
        (
            condition("Ready", false, &ready_time, Some("PodCompleted"), None),
            condition(
                "ContainersReady",
                false,
                &ready_time,
                Some("PodCompleted"),
                None,
            ),
        )
    } else if all_ready {
        (
            condition("Ready", true, &ready_time, None, None),
            condition("ContainersReady", true, &ready_time, None, None),
        )
    } else {
        (
            condition(
                "Ready",
                false,
                &t0,
                Some("ContainersNotReady"),
                Some(&unready_msg),
            ),
            condition(
                "ContainersReady",
                false,
                &t0,
                Some("ContainersNotReady"),
                Some(&unready_msg),
            ),
        )
    };
    let status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", !finished, &t0, None, None),
            condition("Initialized", true, &t0, None, None),
            ready_cond,
            containers_ready,
            condition("PodScheduled", true, &t0, None, None),
        ],
        "hostIP": "10.0.0.10",
        "hostIPs": [{ "ip": "10.0.0.10" }],
        "podIP": sim.ip,
        "podIPs": [{ "ip": sim.ip }],
        "startTime": t0,
        "containerStatuses": statuses,
        "qosClass": qos,
    });
    Computed {
        status,
        scheduled: true,
        events,
        next,
    }
}

/// Moves every pod on; returns the earliest instant something will change on its own.
pub(crate) fn reconcile(w: &mut World, opts: &KubeSimOptions, now: Instant) -> Option<Instant> {
    let rd = resources::by_plural("pods").unwrap_or(&resources::RESOURCES[0]);
    let pods = w.objs("pods", None);
    let mut next: Option<Instant> = None;
    let mut live: BTreeSet<String> = BTreeSet::new();
    for pod in pods {
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let uid = meta_str(&pod, "uid").to_owned();
        live.insert(uid.clone());
        let sim = match w.ctl.pods.get(&uid) {
            Some(s) => s.clone(),
            None => {
                let n = w.next_counter();
                let s = PodSim {
                    started: now,
                    wall: Utc::now(),
                    ip: format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 2),
                };
                w.ctl.pods.insert(uid.clone(), s.clone());
                s
            }
        };
        let c = compute(w, &pod, &sim, opts, now);
        if let Some(d) = c.next {
            let at = sim.started + d;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        let ns = meta_str(&pod, "namespace").to_owned();
        let name = meta_str(&pod, "name").to_owned();
        if c.scheduled && pod.pointer("/spec/nodeName").is_none() {
            verbs::controller_patch(w, rd, &ns, &name, "kube-scheduler", |p| {
                p["spec"]["nodeName"] = json!(NODE);
            });
        }
        verbs::write_status(w, rd, &ns, &name, c.status, "kubelet");
        let current = w.get_obj("pods", &ns, &name).cloned().unwrap_or(pod);
        for (type_, reason, message, component, series, count) in c.events {
            emit(
                w, &current, type_, reason, &message, component, &series, count,
            );
        }
    }
    w.ctl.pods.retain(|uid, _| live.contains(uid));
    next
}

/// Whether a pod is Ready.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn default_logs(pod: &Value, container: &str, image: &str) -> Vec<String> {
    if is_job_pod(pod) {
        vec![
            format!("{container}: starting job step from {image}"),
            format!("{container}: working"),
            format!("{container}: done"),
        ]
    } else {
        vec![
            format!("{container}: starting {image}"),
            format!("{container}: listening"),
            format!("{container}: ready"),
        ]
    }
}

/// Lines written into containers by tests, after the lines their image prints at start.
#[derive(Debug, Default)]
pub(crate) struct WrittenLogs {
    /// The sequence number of the last line written (over every container).
    pub(crate) seq: u64,
    /// (pod uid, container) → its written lines, oldest first.
    lines: HashMap<(String, String), Vec<WrittenLine>>,
}

#[derive(Debug, Clone)]
struct WrittenLine {
    seq: u64,
    at: DateTime<Utc>,
    text: String,
}

impl WrittenLogs {
    /// Appends `text` (one line per `\n`) to a container's log; returns the last sequence.
    pub(crate) fn write(&mut self, uid: &str, container: &str, text: &str) -> u64 {
        let lines = self
            .lines
            .entry((uid.to_owned(), container.to_owned()))
            .or_default();
        for line in text.lines() {
            self.seq += 1;
            lines.push(WrittenLine {
                seq: self.seq,
                at: Utc::now(),
                text: line.to_owned(),
            });
        }
        self.seq
    }
}

/// One container's log, as a `pods/{name}/log` request named it.
#[derive(Debug, Clone)]
pub(crate) struct LogTarget {
    pub(crate) uid: String,
    pub(crate) container: String,
    pub(crate) timestamps: bool,
}

impl LogTarget {
    /// How a line reads on the wire.
    pub(crate) fn render(&self, at: DateTime<Utc>, text: &str) -> String {
        if self.timestamps {
            format!(
                "{} {text}\n",
                at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            )
        } else {
            format!("{text}\n")
        }
    }

    /// Written lines after sequence `seq`, rendered, and the last sequence among them.
    pub(crate) fn after(&self, w: &World, seq: u64) -> (String, u64) {
        let mut last = seq;
        let mut out = String::new();
        if let Some(lines) = w
            .logs
            .lines
            .get(&(self.uid.clone(), self.container.clone()))
        {
            for l in lines.iter().filter(|l| l.seq > seq) {
                out.push_str(&self.render(l.at, &l.text));
                last = l.seq;
            }
        }
        (out, last)
    }
}

/// The uid and container names of pod `ns/name`, for [`super::KubeSim::write_log`].
pub(crate) fn pod_containers(w: &World, ns: &str, name: &str) -> Option<(String, Vec<String>)> {
    let pod = w.get_obj("pods", ns, name)?;
    Some((
        meta_str(pod, "uid").to_owned(),
        containers(pod).into_iter().map(|(n, _)| n).collect(),
    ))
}

/// `GET pods/{name}/log`: the log text `query` asks for (or the real server's 400s), what it
/// was read from, and the last written line's sequence
/// it includes (a follow continues after it).
pub(crate) fn log_text(
    w: &World,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<(String, LogTarget, u64), ApiError> {
    let rd = resources::by_plural("pods").unwrap_or(&resources::RESOURCES[0]);
    let pod = w
        .get_obj("pods", ns, name)
        .ok_or_else(|| ApiError::not_found(rd, name))?;
    let cs = containers(pod);
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) => {
            if !cs.iter().any(|(n, _)| n == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.clone()
        }
        None if cs.len() == 1 => cs[0].0.clone(),
        None => {
            let names: Vec<&str> = cs.iter().map(|(n, _)| n.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let image = cs
        .iter()
        .find(|(n, _)| *n == container)
        .map(|(_, i)| i.clone())
        .unwrap_or_default();
    let status = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|s| {
            s.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(&container))
        });
    let waiting_reason = status
        .and_then(|s| s.pointer("/state/waiting/reason"))
        .and_then(Value::as_str);
    if status.is_none() {
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: ContainerCreating"
        )));
    }
    if matches!(waiting_reason, Some("ImagePullBackOff" | "ErrImagePull")) {
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: trying and failing to pull image"
        )));
    }
    let restart_count = status
        .and_then(|s| s.get("restartCount"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let previous = query.get("previous").is_some_and(|p| p == "true");
    if previous && restart_count == 0 {
        return Err(ApiError::bad_request(format!(
            "previous terminated container {container:?} in pod {name:?} not found"
        )));
    }
    let printed = match behaviour_for(w, pod, &image) {
        Behaviour::CrashLoopBackOff { logs } | Behaviour::JobFails { logs } => logs,
        Behaviour::OomKilled => {
            let mut l = default_logs(pod, &container, &image);
            l.truncate(2);
            l
        }
        _ => default_logs(pod, &container, &image),
    };
    let target = LogTarget {
        uid: meta_str(pod, "uid").to_owned(),
        container,
        timestamps: query.get("timestamps").is_some_and(|t| t == "true"),
    };
    let start = w
        .ctl
        .pods
        .get(&target.uid)
        .map_or_else(Utc::now, |s| s.wall);
    let mut lines: Vec<String> = printed
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let at = start + chrono::Duration::milliseconds(i64::try_from(i).unwrap_or(0));
            target.render(at, &l)
        })
        .collect();
    // The previous container printed only what its image prints; written lines are the
    // current one's.
    if !previous {
        let (written, _) = target.after(w, 0);
        lines.extend(written.lines().map(|l| format!("{l}\n")));
    }
    if let Some(tail) = query.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    let mut text: String = lines.concat();
    if let Some(limit) = query
        .get("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
        && text.len() > limit
    {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok((text, target, w.logs.seq))
}

fn pod_metrics(pod: &Value) -> Option<Value> {
    if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
        return None;
    }
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)?;
    let mut containers = Vec::new();
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let running = statuses.iter().any(|s| {
            s.get("name").and_then(Value::as_str) == Some(name)
                && s.pointer("/state/running").is_some()
        });
        if !running {
            continue;
        }
        let req = |r: &str| {
            c.pointer(&format!("/resources/requests/{r}"))
                .and_then(quantity::of_value)
        };
        let cpu = req("cpu").map_or(2_000_000, |q| (q / 5).max(1_000_000));
        let mem = req("memory").map_or(24 * (1 << 20) * 1_000_000_000, |q| q / 2);
        containers.push(json!({
            "name": name,
            "usage": { "cpu": quantity::format(cpu), "memory": quantity::format(mem) },
        }));
    }
    if containers.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": meta_str(pod, "name"),
            "namespace": meta_str(pod, "namespace"),
            "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            "creationTimestamp": super::store::now_string(),
        },
        "timestamp": super::store::now_string(),
        "window": "15s",
        "containers": containers,
    }))
}

/// `GET /apis/metrics.k8s.io/v1beta1/[namespaces/{ns}/]pods[/{name}]`.
pub(crate) fn metrics(
    w: &World,
    ns: Option<&str>,
    name: Option<&str>,
    sel: &Selectors,
) -> Result<Value, ApiError> {
    if let (Some(ns), Some(name)) = (ns, name) {
        return w
            .get_obj("pods", ns, name)
            .and_then(pod_metrics)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    format!("podmetrics.metrics.k8s.io {name:?} not found"),
                )
            });
    }
    let items: Vec<Value> = w
        .iter("pods", ns)
        .filter(|(_, s)| sel.matches(&s.obj))
        .filter_map(|(_, s)| pod_metrics(&s.obj))
        .collect();
    Ok(json!({
        "kind": "PodMetricsList",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    }))
}
