//! What the dashboard reads of a preview's namespace, to show it: the pods and their containers,
//! a container's log (read once, or followed line by line), the events of the current attempt,
//! and the CPU and memory the pods use against the namespace's quota (`metrics.k8s.io`).
//!
//! Reads only, all in the preview's own namespace — the app's rights there come from the
//! viewer RoleBinding the worker makes beside its own (`objects/access.rs`). Every failure is a
//! [`ClusterError`]; the pages show what could be read and say what could not.

use futures::{AsyncBufReadExt as _, Stream, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, ListParams, LogParams},
};
use serde_json::Value;

use super::{
    Cluster, ClusterError,
    objects::{ATTEMPT_LABEL, ROLE_BUILD, ROLE_LABEL},
    observe::Scope,
};
use crate::units::Quantity;

/// The tails a log can be read with (lines).
pub const LOG_TAILS: [i64; 3] = [50, 200, 1000];

/// One pod, as the log picker lists it (and the REST API and MCP answer it).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct PodInfo {
    pub name: String,
    /// Its containers, init containers first.
    pub containers: Vec<String>,
    pub phase: String,
    pub ready: bool,
    /// Restarts over its containers (a previous container's log exists when > 0).
    pub restarts: i32,
    /// The deploy attempt that made it, from its labels.
    pub attempt: Option<i64>,
}

/// What log to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub pod: String,
    pub container: String,
    /// Lines from the end (one of [`LOG_TAILS`] on the page; up to 5000 for the API and MCP).
    pub tail: i64,
    pub timestamps: bool,
    /// The previous (terminated) container's log instead of the running one's.
    pub previous: bool,
}

impl LogRequest {
    fn params(&self, follow: bool) -> LogParams {
        LogParams {
            container: Some(self.container.clone()),
            tail_lines: Some(self.tail),
            timestamps: self.timestamps,
            previous: self.previous,
            follow,
            // A log line is shown, not stored: a megabyte per read bounds what one page holds.
            limit_bytes: (!follow).then_some(1 << 20),
            ..LogParams::default()
        }
    }
}

/// One event, as the detail page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    /// `Warning` or `Normal`.
    pub kind: String,
    pub reason: String,
    /// `Pod/web-5d9…`.
    pub object: String,
    pub message: String,
    pub count: i32,
    /// When it was last seen.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The CPU (millicores) and memory (bytes) the namespace's pods use now, and what its quota
/// allows (`limits.*`, else `requests.*`). `None`: not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub cpu_used: Option<u64>,
    pub cpu_quota: Option<u64>,
    pub memory_used: Option<u64>,
    pub memory_quota: Option<u64>,
}

impl Usage {
    /// Use over quota in percent, when both are known.
    pub fn percent(used: Option<u64>, quota: Option<u64>) -> Option<u64> {
        match (used, quota) {
            (Some(u), Some(q)) if q > 0 => Some(u.saturating_mul(100) / q),
            _ => None,
        }
    }

    /// At or over 80 % of the quota, on CPU or memory.
    pub fn near_quota(&self) -> bool {
        [
            Self::percent(self.cpu_used, self.cpu_quota),
            Self::percent(self.memory_used, self.memory_quota),
        ]
        .into_iter()
        .flatten()
        .any(|p| p >= 80)
    }
}

fn pod_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    }
}

impl Cluster {
    /// The workload pods of `namespace` (build pods excluded), newest attempt first, then by
    /// name.
    pub async fn pods(&self, namespace: &str) -> Result<Vec<PodInfo>, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let selector = format!("{ROLE_LABEL}!={ROLE_BUILD}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(ClusterError::from_kube)?;
        let mut pods: Vec<PodInfo> = list.items.iter().map(pod_info).collect();
        pods.sort_by(|a, b| b.attempt.cmp(&a.attempt).then(a.name.cmp(&b.name)));
        Ok(pods)
    }

    /// One container's log, read once.
    pub async fn read_log(
        &self,
        namespace: &str,
        request: &LogRequest,
    ) -> Result<String, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        api.logs(&request.pod, &request.params(false))
            .await
            .map_err(ClusterError::from_kube)
    }

    /// One container's log, followed: its last lines, then each new line as it is written,
    /// until the container ends or the stream is dropped.
    pub async fn follow_log(
        &self,
        namespace: &str,
        request: &LogRequest,
    ) -> Result<impl Stream<Item = Result<String, ClusterError>> + Send + use<>, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let reader = api
            .log_stream(&request.pod, &request.params(true))
            .await
            .map_err(ClusterError::from_kube)?;
        Ok(reader.lines().map_err(|e| ClusterError::Unavailable {
            message: format!("reading the log stream: {e}"),
        }))
    }

    /// The events of `scope`'s attempt, oldest first (at most the last 50).
    pub async fn attempt_events(
        &self,
        namespace: &str,
        scope: &Scope,
    ) -> Result<Vec<EventView>, ClusterError> {
        let events = self.scoped_event_objects(namespace, scope).await?;
        let skip = events.len().saturating_sub(50);
        Ok(events
            .into_iter()
            .skip(skip)
            .map(|e| {
                let at = super::observe::event_seconds(&e)
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0));
                EventView {
                    kind: e.type_.unwrap_or_default(),
                    reason: e.reason.unwrap_or_default(),
                    object: format!(
                        "{}/{}",
                        e.involved_object.kind.unwrap_or_default(),
                        e.involved_object.name.unwrap_or_default()
                    ),
                    message: e.message.unwrap_or_default(),
                    count: e.count.unwrap_or(1),
                    at,
                }
            })
            .collect())
    }

    /// What the namespace's pods use now, against its quota.
    pub async fn usage(&self, namespace: &str) -> Result<Usage, ClusterError> {
        let quotas: Api<ResourceQuota> = Api::namespaced(self.client().clone(), namespace);
        let quotas = quotas
            .list(&ListParams::default())
            .await
            .map_err(ClusterError::from_kube)?;
        let hard = |key: &str, parse: fn(&str) -> Result<Quantity, String>| {
            quotas
                .items
                .iter()
                .filter_map(|q| q.spec.as_ref()?.hard.as_ref()?.get(key))
                .filter_map(|v| parse(&v.0).ok().map(|q| q.value))
                .min()
        };
        let metrics: Api<DynamicObject> =
            Api::namespaced_with(self.client().clone(), namespace, &pod_metrics_resource());
        let mut usage = Usage {
            cpu_quota: hard("limits.cpu", Quantity::cpu).or(hard("requests.cpu", Quantity::cpu)),
            memory_quota: hard("limits.memory", Quantity::memory)
                .or(hard("requests.memory", Quantity::memory)),
            ..Usage::default()
        };
        // No metrics server (or not yet a sample): usage unknown, the quota still shown.
        if let Ok(list) = metrics.list(&ListParams::default()).await {
            let (mut cpu, mut memory) = (0u64, 0u64);
            for pod in &list.items {
                let containers = pod.data.get("containers").and_then(Value::as_array);
                for c in containers.into_iter().flatten() {
                    let read = |r: &str| c.pointer(&format!("/usage/{r}")).and_then(Value::as_str);
                    cpu += read("cpu")
                        .and_then(|q| Quantity::cpu(q).ok())
                        .map_or(0, |q| q.value);
                    memory += read("memory")
                        .and_then(|q| Quantity::memory(q).ok())
                        .map_or(0, |q| q.value);
                }
            }
            usage.cpu_used = Some(cpu);
            usage.memory_used = Some(memory);
        }
        Ok(usage)
    }
}

fn pod_info(pod: &Pod) -> PodInfo {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let containers = spec
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let statuses = status.and_then(|s| s.container_statuses.as_ref());
    PodInfo {
        name: pod.metadata.name.clone().unwrap_or_default(),
        containers,
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        restarts: statuses.map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum()),
        attempt: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ATTEMPT_LABEL))
            .and_then(|a| a.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_quota_is_eighty_percent_of_either() {
        let mut u = Usage {
            cpu_used: Some(399),
            cpu_quota: Some(500),
            memory_used: Some(10),
            memory_quota: Some(100),
        };
        assert!(!u.near_quota());
        u.cpu_used = Some(400);
        assert!(u.near_quota());
        u.cpu_used = None;
        u.memory_used = Some(120);
        assert!(u.near_quota(), "over the quota is near it too");
        assert_eq!(Usage::percent(Some(5), Some(0)), None);
        assert_eq!(Usage::percent(Some(120), Some(100)), Some(120));
    }
}
