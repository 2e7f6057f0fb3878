//! Watching a preview come up: waiting for the build Job and the workload's Deployments, and
//! when they do not make it, saying why in the terms a PR author can act on.
//!
//! The cluster is polled with a growing interval (50 ms up to 1 s) until a deadline. Each round
//! reads the Deployments, then the pods and the namespace's events, and classifies the first
//! problem that can only get worse by waiting: an image that cannot be pulled, a container in a
//! crash loop or killed for memory, pods refused by the quota, pods the scheduler cannot place.
//! A readiness probe that never passes is only known at the deadline.
//!
//! Only the **current attempt's** objects count ([`Scope`]): its pods and ReplicaSets (their
//! templates carry the attempt's label), and events about them — or, for other objects, events
//! seen since the attempt started. An earlier attempt's crash or quota refusal never fails a
//! later one.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{Event, Pod},
};
use kube::{
    Api,
    api::{ListParams, LogParams},
};
use tokio::time::Instant;

use super::{
    Cluster, ClusterError,
    objects::{ATTEMPT_LABEL, ROLE_BUILD},
};

/// Which objects of a namespace belong to the attempt being watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Pods and ReplicaSets labelled with this attempt are its own.
    pub attempt_id: i64,
    /// Events about other objects count when seen at or after this time.
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Why a workload is not coming up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    BuildFailed,
    ImagePull,
    CrashLoop,
    OomKilled,
    QuotaExceeded,
    Unschedulable,
    NotReady,
}

/// A problem with the evidence: a message, the last log lines, recent events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub problem: Problem,
    pub message: String,
    pub logs: Option<String>,
    pub events: Vec<String>,
}

/// How waiting ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ready,
    Failed(Diagnosis),
    /// The deadline passed; the diagnosis says what was still missing.
    TimedOut(Diagnosis),
}

/// Lines of log shown for a failing container.
const LOG_LINES: i64 = 50;

fn next_pause(pause: Duration) -> Duration {
    (pause * 3 / 2).min(Duration::from_secs(1))
}

impl Cluster {
    /// Waits for the Job `name` in `namespace` to succeed or fail.
    pub async fn wait_job(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<Outcome, ClusterError> {
        let jobs: Api<Job> = Api::namespaced(self.client().clone(), namespace);
        let mut pause = Duration::from_millis(50);
        loop {
            let job = jobs.get_opt(name).await.map_err(ClusterError::from_kube)?;
            let status = job.as_ref().and_then(|j| j.status.as_ref());
            let condition = |kind: &str| {
                status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
            };
            if status.and_then(|s| s.succeeded).unwrap_or(0) > 0 || condition("Complete") {
                return Ok(Outcome::Ready);
            }
            if status.and_then(|s| s.failed).unwrap_or(0) > 0 || condition("Failed") {
                let logs = self.job_logs(namespace, name).await;
                let events = self.events(namespace).await.unwrap_or_default();
                return Ok(Outcome::Failed(Diagnosis {
                    problem: Problem::BuildFailed,
                    message: format!("the build job {name} failed"),
                    logs,
                    events,
                }));
            }
            // No pod because the build namespace's quota refuses it: waiting will not help.
            let active = status.and_then(|s| s.active).unwrap_or(0);
            if active == 0 {
                let events = self.events(namespace).await?;
                if let Some(quota) = events
                    .iter()
                    .find(|e| e.starts_with("FailedCreate") && e.contains("exceeded quota"))
                {
                    return Ok(Outcome::Failed(Diagnosis {
                        problem: Problem::QuotaExceeded,
                        message: format!("the build job {name} gets no pod: {quota}"),
                        logs: None,
                        events,
                    }));
                }
            }
            if Instant::now() >= deadline {
                let events = self.events(namespace).await.unwrap_or_default();
                return Ok(Outcome::TimedOut(Diagnosis {
                    problem: Problem::BuildFailed,
                    message: format!("the build job {name} did not finish in time"),
                    logs: self.job_logs(namespace, name).await,
                    events,
                }));
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = next_pause(pause);
        }
    }

    /// Waits until every Deployment in `namespace` is Available with all replicas ready,
    /// judging failures by the objects of `scope`.
    pub async fn wait_workloads(
        &self,
        namespace: &str,
        scope: &Scope,
        deadline: Instant,
    ) -> Result<Outcome, ClusterError> {
        let deployments: Api<Deployment> = Api::namespaced(self.client().clone(), namespace);
        let mut pause = Duration::from_millis(50);
        loop {
            let list = deployments
                .list(&ListParams::default())
                .await
                .map_err(ClusterError::from_kube)?;
            let waiting: Vec<String> = list
                .items
                .iter()
                .filter(|d| !deployment_ready(d))
                .map(|d| d.metadata.name.clone().unwrap_or_default())
                .collect();
            if waiting.is_empty() && !list.items.is_empty() {
                return Ok(Outcome::Ready);
            }
            if let Some(diagnosis) = self.diagnose(namespace, scope).await? {
                return Ok(Outcome::Failed(diagnosis));
            }
            if Instant::now() >= deadline {
                let logs = self.workload_logs(namespace, scope).await;
                return Ok(Outcome::TimedOut(Diagnosis {
                    problem: Problem::NotReady,
                    message: if list.items.is_empty() {
                        "the workload has no Deployment to wait for".to_owned()
                    } else {
                        format!("not ready: {}", waiting.join(", "))
                    },
                    logs,
                    events: self
                        .scoped_events(namespace, scope)
                        .await
                        .unwrap_or_default(),
                }));
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = next_pause(pause);
        }
    }

    /// Waits until namespace `name` no longer exists; false when the deadline passed first.
    pub async fn wait_namespace_gone(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<bool, ClusterError> {
        let mut pause = Duration::from_millis(50);
        loop {
            if !self.namespace_exists(name).await? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = next_pause(pause);
        }
    }

    /// The first problem of `scope`'s objects that waiting will not fix, if any.
    async fn diagnose(
        &self,
        namespace: &str,
        scope: &Scope,
    ) -> Result<Option<Diagnosis>, ClusterError> {
        let pods = self.attempt_pods(namespace, scope).await?;
        for pod in &pods {
            if let Some((problem, message, container)) = classify_pod(pod) {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let logs = match (problem, container) {
                    (Problem::CrashLoop | Problem::OomKilled, Some(c)) => {
                        self.pod_logs(namespace, &name, &c).await
                    }
                    _ => None,
                };
                return Ok(Some(Diagnosis {
                    problem,
                    message,
                    logs,
                    events: self
                        .scoped_events(namespace, scope)
                        .await
                        .unwrap_or_default(),
                }));
            }
        }
        let events = self.scoped_event_objects(namespace, scope).await?;
        // A refusal by the quota is final once repeated while nothing else holds the quota:
        // pods of an earlier attempt (a rollout, objects being pruned) free it as they go.
        let refused = events.iter().rev().find(|e| {
            e.reason.as_deref() == Some("FailedCreate")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("exceeded quota"))
        });
        if let Some(refusal) = refused
            && refusal.count.unwrap_or(1) >= QUOTA_REFUSALS
            && !self.older_pods_hold_quota(namespace, scope).await?
        {
            return Ok(Some(Diagnosis {
                problem: Problem::QuotaExceeded,
                message: lines(std::slice::from_ref(refusal)).concat(),
                logs: None,
                events: lines(&events),
            }));
        }
        Ok(None)
    }

    /// Whether workload pods of earlier attempts still run (and so hold quota) in `namespace`.
    async fn older_pods_hold_quota(
        &self,
        namespace: &str,
        scope: &Scope,
    ) -> Result<bool, ClusterError> {
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let selector = format!("{}!={ROLE_BUILD}", super::objects::ROLE_LABEL);
        let current = scope.attempt_id.to_string();
        Ok(pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(ClusterError::from_kube)?
            .items
            .iter()
            .any(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                let labels = p.metadata.labels.clone().unwrap_or_default();
                labels.get(ATTEMPT_LABEL) != Some(&current)
                    && !matches!(phase, Some("Succeeded" | "Failed"))
            }))
    }

    /// The workload pods of `scope`'s attempt (build pods excluded).
    async fn attempt_pods(&self, namespace: &str, scope: &Scope) -> Result<Vec<Pod>, ClusterError> {
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let selector = format!(
            "{}!={ROLE_BUILD},{ATTEMPT_LABEL}={}",
            super::objects::ROLE_LABEL,
            scope.attempt_id
        );
        Ok(pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(ClusterError::from_kube)?
            .items)
    }

    /// Events of the namespace that concern `scope`'s attempt: about its pods and ReplicaSets,
    /// or about anything else when seen since the attempt started. Lines as [`Self::events`].
    async fn scoped_events(
        &self,
        namespace: &str,
        scope: &Scope,
    ) -> Result<Vec<String>, ClusterError> {
        Ok(lines(&self.scoped_event_objects(namespace, scope).await?))
    }

    /// The events of [`Self::scoped_events`], as objects, oldest first.
    pub(super) async fn scoped_event_objects(
        &self,
        namespace: &str,
        scope: &Scope,
    ) -> Result<Vec<Event>, ClusterError> {
        let mut own: std::collections::HashSet<String> = self
            .attempt_pods(namespace, scope)
            .await?
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
            Api::namespaced(self.client().clone(), namespace);
        let selector = format!("{ATTEMPT_LABEL}={}", scope.attempt_id);
        own.extend(
            sets.list(&ListParams::default().labels(&selector))
                .await
                .map_err(ClusterError::from_kube)?
                .items
                .into_iter()
                .filter_map(|r| r.metadata.name),
        );
        let since = jiff_seconds(scope.since);
        self.event_objects(namespace, |e| {
            let kind = e.involved_object.kind.as_deref().unwrap_or_default();
            let name = e.involved_object.name.as_deref().unwrap_or_default();
            match kind {
                "Pod" | "ReplicaSet" => own.contains(name),
                _ => event_seconds(e).is_some_and(|at| at >= since),
            }
        })
        .await
    }

    /// Recent events of the namespace as `Reason object: message` lines, newest last (at most
    /// 10).
    pub async fn events(&self, namespace: &str) -> Result<Vec<String>, ClusterError> {
        self.event_lines(namespace, |_| true).await
    }

    async fn event_lines(
        &self,
        namespace: &str,
        keep: impl Fn(&Event) -> bool,
    ) -> Result<Vec<String>, ClusterError> {
        Ok(lines(&self.event_objects(namespace, keep).await?))
    }

    /// Events of the namespace that `keep` keeps, oldest first.
    async fn event_objects(
        &self,
        namespace: &str,
        keep: impl Fn(&Event) -> bool,
    ) -> Result<Vec<Event>, ClusterError> {
        let api: Api<Event> = Api::namespaced(self.client().clone(), namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(ClusterError::from_kube)?;
        let mut events: Vec<Event> = list.items.into_iter().filter(|e| keep(e)).collect();
        events.sort_by_key(event_seconds);
        Ok(events)
    }

    /// The last lines of one container's log, if they can be read.
    pub async fn pod_logs(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let params = LogParams {
            container: Some(container.to_owned()),
            tail_lines: Some(LOG_LINES),
            ..LogParams::default()
        };
        api.logs(pod, &params)
            .await
            .ok()
            .filter(|l| !l.trim().is_empty())
    }

    /// Logs of the build Job's pod.
    async fn job_logs(&self, namespace: &str, job: &str) -> Option<String> {
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .ok()?;
        let pod = list.items.last()?;
        let name = pod.metadata.name.clone()?;
        let container = pod.spec.as_ref()?.containers.first()?.name.clone();
        self.pod_logs(namespace, &name, &container).await
    }

    /// Logs of the first of the attempt's workload pods that has any.
    async fn workload_logs(&self, namespace: &str, scope: &Scope) -> Option<String> {
        let pods = self.attempt_pods(namespace, scope).await.ok()?;
        for pod in &pods {
            let name = pod.metadata.name.clone()?;
            let container = pod.spec.as_ref()?.containers.first()?.name.clone();
            if let Some(logs) = self.pod_logs(namespace, &name, &container).await {
                return Some(logs);
            }
        }
        None
    }
}

/// The last 10 of `events` as `Reason object: message` lines.
fn lines(events: &[Event]) -> Vec<String> {
    let lines: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.reason.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect();
    let skip = lines.len().saturating_sub(10);
    lines.into_iter().skip(skip).collect()
}

/// How many times in a row the quota must refuse a pod of the attempt (its controller retries)
/// before the refusal is the outcome: a refusal once is often a rollout still freeing room.
const QUOTA_REFUSALS: i32 = 3;

/// When an event was last seen, in seconds since the epoch.
pub(super) fn event_seconds(e: &Event) -> Option<i64> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or(e.event_time.as_ref().map(|t| t.0.as_second()))
        .or(e.first_timestamp.as_ref().map(|t| t.0.as_second()))
}

/// `at` in seconds since the epoch, a second early (event times have second resolution).
fn jiff_seconds(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp() - 1
}

/// Available, with every desired replica updated and ready.
fn deployment_ready(d: &Deployment) -> bool {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return false;
    };
    let available = status.conditions.as_ref().is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    });
    let generation_seen = match (d.metadata.generation, status.observed_generation) {
        (Some(g), Some(o)) => o >= g,
        _ => true,
    };
    available
        && generation_seen
        && status.ready_replicas.unwrap_or(0) >= desired
        && status.updated_replicas.unwrap_or(0) >= desired
}

/// A problem visible in one pod: (problem, message, container to read logs of).
fn classify_pod(pod: &Pod) -> Option<(Problem, String, Option<String>)> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    for c in status.container_statuses.iter().flatten() {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting
            .and_then(|w| w.reason.as_deref())
            .unwrap_or_default();
        let detail = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        let last_terminated = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let now_terminated = c.state.as_ref().and_then(|s| s.terminated.as_ref());
        let oom = [last_terminated, now_terminated]
            .into_iter()
            .flatten()
            .any(|t| t.reason.as_deref() == Some("OOMKilled"));
        if matches!(
            reason,
            "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName"
        ) {
            return Some((
                Problem::ImagePull,
                format!(
                    "pod {name}: container {} cannot pull image {}: {reason} {detail}",
                    c.name, c.image
                ),
                None,
            ));
        }
        if oom {
            return Some((
                Problem::OomKilled,
                format!(
                    "pod {name}: container {} was killed for using more memory than its limit (OOMKilled)",
                    c.name
                ),
                Some(c.name.clone()),
            ));
        }
        if reason == "CrashLoopBackOff" {
            let code = last_terminated.map(|t| t.exit_code).unwrap_or_default();
            return Some((
                Problem::CrashLoop,
                format!(
                    "pod {name}: container {} keeps exiting (last exit code {code}, {} restarts)",
                    c.name, c.restart_count
                ),
                Some(c.name.clone()),
            ));
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(c) = unschedulable {
        return Some((
            Problem::Unschedulable,
            format!(
                "pod {name} cannot be scheduled: {}",
                c.message.clone().unwrap_or_default()
            ),
            None,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": "web-1" }, "status": status }))
            .expect("pod")
    }

    #[test]
    fn pods_are_classified() {
        let p = pod(
            json!({ "containerStatuses": [{ "name": "web", "image": "x:1", "ready": false, "restartCount": 0, "imageID": "",
            "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image" } } }] }),
        );
        assert_eq!(classify_pod(&p).map(|c| c.0), Some(Problem::ImagePull));
        let p = pod(
            json!({ "containerStatuses": [{ "name": "web", "image": "x:1", "ready": false, "restartCount": 4, "imageID": "",
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
            "lastState": { "terminated": { "exitCode": 1, "reason": "Error" } } }] }),
        );
        assert_eq!(classify_pod(&p).map(|c| c.0), Some(Problem::CrashLoop));
        let p = pod(
            json!({ "containerStatuses": [{ "name": "web", "image": "x:1", "ready": false, "restartCount": 1, "imageID": "",
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
            "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } } }] }),
        );
        assert_eq!(classify_pod(&p).map(|c| c.0), Some(Problem::OomKilled));
        let p = pod(
            json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available" }] }),
        );
        assert_eq!(classify_pod(&p).map(|c| c.0), Some(Problem::Unschedulable));
        let p = pod(
            json!({ "phase": "Running", "containerStatuses": [{ "name": "web", "image": "x:1", "ready": false, "restartCount": 0, "imageID": "",
            "state": { "running": {} } }] }),
        );
        assert_eq!(classify_pod(&p), None, "not ready yet is not a failure");
    }
}
