//! Watches: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) streamed over a chunked 200 response, like the real server. A watch starts after
//! the given `resourceVersion` (replayed from the store's bounded history; too old → one
//! `ERROR` event carrying a `410 Expired` Status, then the stream ends), or from "now" with
//! synthetic `ADDED` events for what exists (no version, `0`, or `sendInitialEvents=true`,
//! which ends the initial burst with a bookmark annotated `k8s.io/initial-events-end`).
//! Selectors apply (an object leaving the selection is `DELETED`, entering it `ADDED`);
//! `timeoutSeconds`, [`super::KubeSim::cut_watches`] and client disconnects end the stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::resources::ResourceDef;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{Change, ChangeType};
use super::{Shared, lock};

fn line(type_: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({ "type": type_, "object": object })).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(rd: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line(
        "BOOKMARK",
        &json!({ "kind": rd.kind, "apiVersion": rd.api_version(), "metadata": meta }),
    )
}

/// The single-event stream the real server sends when a watch cannot resume.
pub(crate) fn expired_response(message: &str) -> Response {
    let body = line("ERROR", &ApiError::expired(message).to_value());
    stream_response(Body::from(body))
}

fn stream_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// What one change looks like to a watch with these filters (None: not for it).
fn event_for(c: &Change, rd: &ResourceDef, ns: Option<&str>, sel: &Selectors) -> Option<Bytes> {
    if c.resource != rd.plural || ns.is_some_and(|n| n != c.namespace) {
        return None;
    }
    let now = sel.matches(&c.object);
    match c.kind {
        ChangeType::Added => now.then(|| line("ADDED", &c.object)),
        ChangeType::Deleted => now.then(|| line("DELETED", &c.object)),
        ChangeType::Modified => {
            let before = c.old.as_ref().is_some_and(|o| sel.matches(o));
            match (before, now) {
                (true, true) => Some(line("MODIFIED", &c.object)),
                (false, true) => Some(line("ADDED", &c.object)),
                (true, false) => Some(line("DELETED", &c.object)),
                (false, false) => None,
            }
        }
    }
}

/// Opens a watch; the response streams until timeout, cut, or the client goes away.
pub(crate) fn start(
    shared: &Arc<Shared>,
    rd: &'static ResourceDef,
    ns: Option<String>,
    query: &HashMap<String, String>,
    sel: Selectors,
) -> Result<Response, ApiError> {
    let rv = query.get("resourceVersion").cloned().unwrap_or_default();
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let initial = query
        .get("sendInitialEvents")
        .is_some_and(|v| v == "true" || v == "1");
    if initial && query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return Err(ApiError::invalid_kind(
            "ListOptions.meta.k8s.io",
            "ListOptions",
            "meta.k8s.io",
            "",
            &[super::status::Cause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
            )],
        ));
    }
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);

    let mut first: Vec<Bytes> = Vec::new();
    let (rx, start_rv) = {
        let w = lock(&shared.world);
        let rx = w.subscribe();
        let current = w.rv();
        if initial || rv.is_empty() || rv == "0" {
            for (_, s) in w.iter(rd.plural, ns.as_deref()) {
                if sel.matches(&s.obj) {
                    first.push(line("ADDED", &s.render()));
                }
            }
            if initial {
                first.push(bookmark(rd, current, true));
            }
        } else {
            let from: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
            match w.since(from) {
                Ok(changes) => {
                    first.extend(
                        changes
                            .iter()
                            .filter_map(|c| event_for(c, rd, ns.as_deref(), &sel)),
                    );
                }
                Err(floor) => {
                    return Ok(expired_response(&format!(
                        "too old resource version: {from} ({floor})"
                    )));
                }
            }
        }
        (rx, current)
    };
    let cut = shared.cut.subscribe();
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    let interval = shared
        .opts
        .watch_bookmark_interval
        .max(Duration::from_millis(10));
    tokio::spawn(pump(PumpArgs {
        rx,
        cut,
        tx,
        first,
        rd,
        ns,
        sel,
        start_rv,
        bookmarks: bookmarks.then_some(interval),
        timeout,
    }));
    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Ok(stream_response(Body::from_stream(stream)))
}

struct PumpArgs {
    rx: broadcast::Receiver<Arc<Change>>,
    cut: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Bytes>,
    first: Vec<Bytes>,
    rd: &'static ResourceDef,
    ns: Option<String>,
    sel: Selectors,
    start_rv: u64,
    bookmarks: Option<Duration>,
    timeout: Option<Duration>,
}

/// Feeds one watch stream.
async fn pump(a: PumpArgs) {
    let PumpArgs {
        mut rx,
        mut cut,
        tx,
        first,
        rd,
        ns,
        sel,
        start_rv,
        bookmarks,
        timeout,
    } = a;
    for b in first {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let mut last_rv = start_rv;
    let deadline = tokio::time::Instant::now() + timeout.unwrap_or(Duration::from_secs(24 * 3600));
    let mut tick = tokio::time::interval(bookmarks.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(change) => {
                    last_rv = last_rv.max(change.rv);
                    if let Some(b) = event_for(&change, rd, ns.as_deref(), &sel)
                        && tx.send(b).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let e = ApiError::expired(format!("too old resource version: {last_rv}"));
                    let _ = tx.send(line("ERROR", &e.to_value())).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = cut.changed() => return,
            () = tokio::time::sleep_until(deadline) => return,
            _ = tick.tick(), if bookmarks.is_some() => {
                if tx.send(bookmark(rd, last_rv, false)).await.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}
