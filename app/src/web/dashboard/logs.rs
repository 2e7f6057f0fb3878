//! The cluster's side of a detail page: which pods and containers the preview has, the log the
//! viewer asked for (pod and container, tail, timestamps, previous container), the current
//! attempt's events and the namespace's usage against its quota — and the live follow, a
//! server-sent event stream of one container's log lines.
//!
//! Everything is read in the preview's namespace as the database knows it, never a name from
//! the request: a pod name in the query only picks among that namespace's pods. Each read is
//! bounded by [`READ_PATIENCE`] and fails on its own, so a slow metrics server costs the page
//! its usage figures, not its answer. Log lines are sanitized (secrets redacted) before they
//! leave, and escaped by the templates like every other value.

use std::{collections::HashMap, convert::Infallible, sync::PoisonError, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt as _};
use previewd_entity::deploy_attempt;
use serde::Deserialize;

use super::{Stop, denied, pages, preview_id, service, signed_in};
use crate::{
    cluster::{
        Cluster, ClusterError,
        inspect::{EventView, LOG_TAILS, LogRequest, PodInfo, Usage},
        observe::Scope,
    },
    previews::access::Verb,
    web::AppState,
};

/// How long one read of the cluster may take before the page goes on without it.
pub const READ_PATIENCE: Duration = Duration::from_secs(3);
/// A log line longer than this is cut (with an ellipsis).
const LINE_CHARS: usize = 4000;
/// How long a followed log may stay open before the server ends it (the page's script opens a
/// new one if it is still shown).
const FOLLOW_FOR: Duration = Duration::from_secs(30 * 60);

/// The log viewer's choices, from the detail page's query.
#[derive(Debug, Deserialize, Default)]
pub struct LogQuery {
    /// `pod/container`.
    #[serde(default)]
    pub c: Option<String>,
    #[serde(default)]
    pub tail: Option<i64>,
    #[serde(default)]
    pub timestamps: Option<String>,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub follow: Option<String>,
}

/// What the viewer shows, resolved against the namespace's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub request: LogRequest,
    pub follow: bool,
}

impl Choice {
    /// The query string that asks for this choice (`follow` as given).
    pub fn query(&self, follow: bool) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair(
            "c",
            &format!("{}/{}", self.request.pod, self.request.container),
        );
        q.append_pair("tail", &self.request.tail.to_string());
        if self.request.timestamps {
            q.append_pair("timestamps", "1");
        }
        if self.request.previous {
            q.append_pair("previous", "1");
        }
        if follow {
            q.append_pair("follow", "1");
        }
        q.finish()
    }
}

/// The cluster's part of a detail page; each `Err` is what to say instead.
#[derive(Debug)]
pub struct ClusterView {
    pub pods: Result<Vec<PodInfo>, String>,
    pub choice: Option<Choice>,
    pub log: Option<Result<String, String>>,
    pub events: Result<Vec<EventView>, String>,
    pub usage: Result<Usage, String>,
}

impl ClusterView {
    /// A page whose cluster could not be reached at all.
    fn unreachable(why: &str) -> Self {
        Self {
            pods: Err(why.to_owned()),
            choice: None,
            log: None,
            events: Err(why.to_owned()),
            usage: Err(why.to_owned()),
        }
    }
}

fn say(e: &ClusterError) -> String {
    match e {
        ClusterError::Rejected { code: 400, .. } => {
            // The API server's own words ("…is waiting to start: ContainerCreating", "previous
            // terminated container … not found") are the useful answer here.
            crate::sanitize::sanitize(&e.to_string(), 300)
        }
        ClusterError::Rejected { code: 403, .. } => {
            "previewd may not read this namespace (its viewer role is not bound here)".into()
        }
        ClusterError::Rejected { code: 404, .. } => "not found in the cluster".into(),
        _ => {
            tracing::warn!(error = %e, "dashboard: cluster read failed");
            "the cluster did not answer".into()
        }
    }
}

async fn bounded<T>(read: impl Future<Output = Result<T, ClusterError>>) -> Result<T, String> {
    match tokio::time::timeout(READ_PATIENCE, read).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(say(&e)),
        Err(_) => Err("the cluster did not answer in time".into()),
    }
}

/// Picks the pod and container to show: the asked one when the namespace has it, else the
/// first container of the newest pod.
pub fn choose(pods: &[PodInfo], query: &LogQuery) -> Option<Choice> {
    let asked = query
        .c
        .as_deref()
        .and_then(|c| c.split_once('/'))
        .filter(|(pod, container)| {
            pods.iter()
                .any(|p| p.name == *pod && p.containers.iter().any(|c| c == container))
        })
        .map(|(p, c)| (p.to_owned(), c.to_owned()));
    let (pod, container) = asked.or_else(|| {
        let p = pods.first()?;
        Some((p.name.clone(), p.containers.first()?.clone()))
    })?;
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty() && v != "0");
    let tail = query
        .tail
        .filter(|t| LOG_TAILS.contains(t))
        .unwrap_or(LOG_TAILS[1]);
    Some(Choice {
        request: LogRequest {
            pod,
            container,
            tail,
            timestamps: on(&query.timestamps),
            previous: on(&query.previous),
        },
        follow: on(&query.follow) && !on(&query.previous),
    })
}

/// Reads what the detail page shows of `namespace`; `current` is the preview's latest attempt.
pub async fn gather(
    state: &AppState,
    namespace: &str,
    current: Option<&deploy_attempt::Model>,
    query: &LogQuery,
) -> ClusterView {
    let cluster = match state.dashboard.cluster().await {
        Ok(c) => c,
        Err(e) => return ClusterView::unreachable(&say(&e)),
    };
    let scope = current.map(|a| Scope {
        attempt_id: a.id,
        since: a.started_at.unwrap_or(a.created_at),
    });
    let events = async {
        match &scope {
            Some(scope) => bounded(cluster.attempt_events(namespace, scope)).await,
            None => Ok(Vec::new()),
        }
    };
    let (pods, events, usage) = tokio::join!(
        bounded(cluster.pods(namespace)),
        events,
        bounded(cluster.usage(namespace)),
    );
    let choice = pods.as_ref().ok().and_then(|p| choose(p, query));
    let log = match &choice {
        Some(choice) => Some(
            bounded(cluster.read_log(namespace, &choice.request))
                .await
                .map(|text| clean_log(&text)),
        ),
        None => None,
    };
    ClusterView {
        pods,
        choice,
        log,
        events,
        usage,
    }
}

/// The most lines the REST API and MCP read from the end of a log.
pub const MAX_TAIL: i64 = 5000;

/// A log as a script or an agent asks for it: the pod and container by name (each optional: the
/// newest pod, its first container), how many lines from the end, timestamps, the previous
/// container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogAsk {
    pub pod: Option<String>,
    pub container: Option<String>,
    pub tail: Option<i64>,
    pub timestamps: bool,
    pub previous: bool,
}

/// A log read for a script or an agent.
#[derive(Debug, Clone)]
pub struct LogRead {
    pub pod: String,
    pub container: String,
    /// Every pod of the preview, for the next choice.
    pub pods: Vec<PodInfo>,
    /// The lines, sanitized.
    pub text: String,
}

/// Why no log was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRefused {
    /// The ask names what the preview does not have (the message lists what it has).
    Invalid(String),
    /// The preview has no pods now.
    NoPods,
    /// The cluster would not or could not answer (in words).
    Cluster(String),
}

/// Reads the log `ask` names in `namespace` (the preview's, from the database), each read
/// bounded by [`READ_PATIENCE`]. Unlike the page, an ask for a pod or container the preview does
/// not have is refused rather than shown something else.
pub async fn read_for(
    state: &AppState,
    namespace: &str,
    ask: &LogAsk,
) -> Result<LogRead, LogRefused> {
    let tail = ask.tail.unwrap_or(LOG_TAILS[1]);
    if !(1..=MAX_TAIL).contains(&tail) {
        return Err(LogRefused::Invalid(format!(
            "tail must be 1 to {MAX_TAIL} lines"
        )));
    }
    let cluster = state
        .dashboard
        .cluster()
        .await
        .map_err(|e| LogRefused::Cluster(say(&e)))?;
    let pods = bounded(cluster.pods(namespace))
        .await
        .map_err(LogRefused::Cluster)?;
    let has = || {
        pods.iter()
            .map(|p| format!("{} ({})", p.name, p.containers.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let pod = match &ask.pod {
        Some(name) => pods.iter().find(|p| p.name == *name).ok_or_else(|| {
            LogRefused::Invalid(format!("the preview has no pod {name:?}; it has {}", has()))
        })?,
        None => pods.first().ok_or(LogRefused::NoPods)?,
    };
    let container = match &ask.container {
        Some(name) => pod.containers.iter().find(|c| *c == name).ok_or_else(|| {
            LogRefused::Invalid(format!(
                "pod {} has no container {name:?}; the preview has {}",
                pod.name,
                has()
            ))
        })?,
        None => pod.containers.first().ok_or(LogRefused::NoPods)?,
    };
    let request = LogRequest {
        pod: pod.name.clone(),
        container: container.clone(),
        tail,
        timestamps: ask.timestamps,
        previous: ask.previous,
    };
    let text = bounded(cluster.read_log(namespace, &request))
        .await
        .map_err(LogRefused::Cluster)?;
    Ok(LogRead {
        pod: request.pod,
        container: request.container,
        text: clean_log(&text),
        pods,
    })
}

/// A log as shown: each line sanitized and capped.
fn clean_log(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&crate::sanitize::sanitize(line, LINE_CHARS));
        out.push('\n');
    }
    out
}

/// `GET /previews/{id}/logs/stream?c=pod/container&tail=&timestamps=`: server-sent events, one
/// `data:` per log line, then `event: end` when the container's log ends. The stream (and the
/// log request to the cluster under it) closes when the page goes away.
pub(super) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Response, Stop> {
    let here = format!("/previews/{}", pages::path_safe(&id));
    let who = signed_in(&state, &headers, &here).await?;
    let id = preview_id(&id)?;
    let row = service(&state)
        .get(&who.actor, id, Verb::View)
        .await
        .map_err(denied)?;
    let namespace = row.preview.namespace.clone();
    let refuse = |text: String| {
        Stop::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "No log to follow".into(),
            text,
        )
    };
    let cluster: Cluster = state
        .dashboard
        .cluster()
        .await
        .map_err(|e| refuse(say(&e)))?
        .clone();
    let pods = bounded(cluster.pods(&namespace)).await.map_err(refuse)?;
    let choice = choose(&pods, &query).ok_or_else(|| refuse("The preview has no pods.".into()))?;
    let lines = bounded(cluster.follow_log(&namespace, &choice.request))
        .await
        .map_err(refuse)?;
    Ok(Sse::new(events(lines))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The log lines as events, then `end` (when the log ends, after [`FOLLOW_FOR`], or after a
/// `problem` event saying why it could not be read on).
fn events(
    lines: impl Stream<Item = Result<String, ClusterError>> + Send + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let lines = until(lines.boxed(), FOLLOW_FOR);
    lines
        .map(|line| match line {
            Ok(line) => Event::default().data(crate::sanitize::sanitize(&line, LINE_CHARS)),
            Err(e) => Event::default().event("problem").data(say(&e)),
        })
        .chain(futures::stream::once(async {
            Event::default().event("end").data("the log ended")
        }))
        .map(Ok)
}

/// `lines` until it ends or `limit` passes.
fn until(
    lines: futures::stream::BoxStream<'static, Result<String, ClusterError>>,
    limit: Duration,
) -> impl Stream<Item = Result<String, ClusterError>> + Send + 'static {
    let deadline = tokio::time::Instant::now() + limit;
    futures::stream::unfold(Some(lines), move |lines| async move {
        let mut lines = lines?;
        match tokio::time::timeout_at(deadline, lines.next()).await {
            Ok(Some(Ok(line))) => Some((Ok(line), Some(lines))),
            // A read error ends the stream after saying so.
            Ok(Some(Err(e))) => Some((Err(e), None)),
            Ok(None) | Err(_) => None,
        }
    })
}

/// How long a namespace's usage is shown again before it is read anew.
const USAGE_FRESH: Duration = Duration::from_secs(20);
/// Namespaces whose usage is read at once.
const USAGE_READS: usize = 8;
/// Live previews an operator's totals add up (the newest).
pub const TOTALS_OF: u64 = 1000;

/// Recently read usage, by namespace, so a list page viewed again (or by several people) does
/// not ask the cluster again within [`USAGE_FRESH`].
#[derive(Debug, Default)]
pub struct UsageCache {
    seen: std::sync::Mutex<HashMap<String, (tokio::time::Instant, Usage)>>,
}

impl UsageCache {
    fn fresh(&self, namespace: &str) -> Option<Usage> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(namespace)
            .filter(|(at, _)| at.elapsed() < USAGE_FRESH)
            .map(|(_, u)| *u)
    }

    fn keep(&self, namespace: &str, usage: Usage) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() > 4 * TOTALS_OF as usize {
            seen.retain(|_, (at, _)| at.elapsed() < USAGE_FRESH);
        }
        seen.insert(namespace.to_owned(), (tokio::time::Instant::now(), usage));
    }
}

/// The usage of each of `namespaces` that answered within [`READ_PATIENCE`] (all together),
/// [`USAGE_READS`] at a time, fresh ones from the cache.
pub async fn usages(state: &AppState, namespaces: &[String]) -> HashMap<String, Usage> {
    let dashboard = &state.dashboard;
    let mut found = HashMap::new();
    let mut missing = Vec::new();
    for ns in namespaces {
        match dashboard.usage.fresh(ns) {
            Some(u) => {
                found.insert(ns.clone(), u);
            }
            None => missing.push(ns.clone()),
        }
    }
    if missing.is_empty() {
        return found;
    }
    let Ok(cluster) = dashboard.cluster().await else {
        return found;
    };
    let mut reads = futures::stream::iter(missing)
        .map(|ns| async move {
            let usage = cluster.usage(&ns).await;
            (ns, usage)
        })
        .buffer_unordered(USAGE_READS);
    let deadline = tokio::time::Instant::now() + READ_PATIENCE;
    while let Ok(Some((ns, usage))) = tokio::time::timeout_at(deadline, reads.next()).await {
        if let Ok(usage) = usage {
            dashboard.usage.keep(&ns, usage);
            found.insert(ns, usage);
        }
    }
    found
}

/// What previews hold in the cluster, for operators: quota and use summed over the live
/// previews that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterTotals {
    pub previews: usize,
    pub answered: usize,
    pub usage: Usage,
}

/// Sums `usages` into totals over `previews` live previews.
pub fn totals(previews: usize, usages: &HashMap<String, Usage>) -> ClusterTotals {
    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    let mut usage = Usage::default();
    for u in usages.values() {
        usage.cpu_used = add(usage.cpu_used, u.cpu_used);
        usage.cpu_quota = add(usage.cpu_quota, u.cpu_quota);
        usage.memory_used = add(usage.memory_used, u.memory_used);
        usage.memory_quota = add(usage.memory_quota, u.memory_quota);
    }
    ClusterTotals {
        previews,
        answered: usages.len(),
        usage,
    }
}
