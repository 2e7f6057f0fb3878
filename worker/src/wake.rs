//! The worker's side of the wake-up path: a stream that yields whenever the app publishes on a
//! queue's wake channel, and at least every [`FALLBACK_POLL`] in case a message was missed
//! (Redis restarted, subscription re-established).

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt as _};
use previewd::jobs::{FALLBACK_POLL, Queue};
use tokio::sync::mpsc;

/// A stream of wake-ups for `queue`.
pub fn wake_stream(
    client: redis::Client,
    prefix: &str,
    queue: Queue,
) -> Pin<Box<dyn Stream<Item = ()> + Send>> {
    let channel = queue.wake_channel(prefix);
    let (tx, rx) = mpsc::channel::<()>(64);
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if let Err(e) = pubsub.subscribe(&channel).await {
                        tracing::warn!(channel = %channel, error = %e, "cannot subscribe to wake-ups");
                    } else {
                        pause = Duration::from_millis(100);
                        let mut messages = pubsub.on_message();
                        while messages.next().await.is_some() {
                            // A full channel already holds a wake-up: nothing is lost by dropping.
                            if tx.is_closed() {
                                return;
                            }
                            let _ = tx.try_send(());
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(channel = %channel, error = %e, "wake-up subscription down; polling")
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
    let messages =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
        );
    let ticks = futures::stream::unfold(
        tokio::time::interval(FALLBACK_POLL),
        |mut interval| async move {
            interval.tick().await;
            Some(((), interval))
        },
    );
    Box::pin(futures::stream::select(messages, ticks))
}
