//! `GET pods/{name}/log?follow=true`: the log so far, then each line as the container writes it
//! ([`super::KubeSim::write_log`]), over one chunked `text/plain` response — as the kubelet
//! streams it through the API server. The stream ends when the pod is deleted or finishes
//! (Succeeded/Failed), when [`super::KubeSim::cut_watches`] cuts streams, or when the client goes
//! away. `previous=true` is answered at once: a terminated container writes nothing more.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::kubelet::{self, LogTarget};
use super::status::ApiError;
use super::store::ChangeType;
use super::{Shared, lock};

fn text_response(body: Body) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// Answers a log request, following it when asked.
pub(crate) fn respond(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let follow = query.get("follow").is_some_and(|f| f == "true");
    let previous = query.get("previous").is_some_and(|p| p == "true");
    let (written, changes, cut, (text, target, seq)) = {
        let w = lock(&shared.world);
        // Subscribed before the text is read, so nothing written after it is missed.
        (
            shared.log_written.subscribe(),
            w.subscribe(),
            shared.cut.subscribe(),
            kubelet::log_text(&w, ns, name, query)?,
        )
    };
    if !follow || previous {
        return Ok(text_response(Body::from(text)));
    }
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    shared.log_follows.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(pump(Pump {
        shared: shared.clone(),
        ns: ns.to_owned(),
        name: name.to_owned(),
        target,
        seq,
        first: text,
        written,
        changes,
        cut,
        tx,
    }));
    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Ok(text_response(Body::from_stream(stream)))
}

struct Pump {
    shared: Arc<Shared>,
    ns: String,
    name: String,
    target: LogTarget,
    seq: u64,
    first: String,
    written: tokio::sync::watch::Receiver<u64>,
    changes: broadcast::Receiver<Arc<super::store::Change>>,
    cut: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Bytes>,
}

/// Whether a change ends the followed pod's log: it was deleted, or it finished.
fn ends(change: &super::store::Change, ns: &str, name: &str) -> bool {
    if change.resource != "pods"
        || change.namespace != ns
        || super::verbs::meta_str(&change.object, "name") != name
    {
        return false;
    }
    change.kind == ChangeType::Deleted
        || matches!(
            change
                .object
                .pointer("/status/phase")
                .and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
}

/// Counts a follow as closed when its pump ends, however it ends.
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.log_follows.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn pump(p: Pump) {
    let _open = Open(p.shared.clone());
    let Pump {
        shared,
        ns,
        name,
        target,
        mut seq,
        first,
        mut written,
        mut changes,
        mut cut,
        tx,
    } = p;
    if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
        return;
    }
    loop {
        let done = tokio::select! {
            r = written.changed() => r.is_err(),
            r = changes.recv() => match r {
                Ok(change) => ends(&change, &ns, &name),
                Err(broadcast::error::RecvError::Lagged(_)) => false,
                Err(broadcast::error::RecvError::Closed) => true,
            },
            _ = cut.changed() => true,
            () = tx.closed() => return,
        };
        let (more, last) = target.after(&lock(&shared.world), seq);
        seq = last;
        if !more.is_empty() && tx.send(Bytes::from(more)).await.is_err() {
            return;
        }
        if done {
            return;
        }
    }
}
