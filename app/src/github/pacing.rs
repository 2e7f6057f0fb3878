//! Pacing: how previewd stays inside GitHub's secondary rate limits without letting one slow
//! request stall everything else.
//!
//! - **Writes of one installation go one at a time** ([`Pacer::write_slot`]), as GitHub asks of
//!   integrations. The slot is a lease, not a lock held to the end: a write that has not been
//!   answered within [`WRITE_SLOT_LEASE`] hands the slot to the next writer and goes on alone
//!   until its own time-out. So a hung request delays other pull requests' reporting by at most
//!   the lease, and no more than `WRITE_TIMEOUT / WRITE_SLOT_LEASE` + 1 writes of an
//!   installation are ever in flight together.
//! - **A rate-limit answer pauses its caller** (the App, or one installation): the wait GitHub
//!   asks for (`Retry-After`, or `x-ratelimit-reset` when the budget is spent) applies to every
//!   request of that caller, not only to the one that was refused ([`Pacer::pause`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use super::client::Auth;

/// How long a write holds its installation's slot before the next write may start anyway.
pub const WRITE_SLOT_LEASE: Duration = Duration::from_secs(3);

#[derive(Default)]
pub(crate) struct Pacer {
    slots: Mutex<HashMap<i64, Arc<Semaphore>>>,
    pauses: Mutex<HashMap<Auth, Instant>>,
}

impl Pacer {
    /// Waits for the installation's write slot. Dropping the permit passes the slot on.
    pub async fn write_slot(&self, installation: i64) -> Option<OwnedSemaphorePermit> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots
                .entry(installation)
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        slot.acquire_owned().await.ok()
    }

    /// Makes every request of `auth` wait `wait` from now (a longer pause already set stays).
    pub fn pause(&self, auth: Auth, wait: Duration) {
        let until = Instant::now() + wait;
        let mut pauses = self
            .pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = pauses.entry(auth).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// Waits out a pause of `auth`, if one is set; at most `limit`.
    pub async fn wait_out_pause(&self, auth: Auth, limit: Duration) {
        let until = {
            let mut pauses = self
                .pauses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match pauses.get(&auth) {
                Some(t) if *t > Instant::now() => Some(*t),
                Some(_) => {
                    pauses.remove(&auth);
                    None
                }
                None => None,
            }
        };
        if let Some(until) = until {
            tokio::time::sleep_until(until.min(Instant::now() + limit)).await;
        }
    }
}

/// Runs `write` holding `permit` for at most [`WRITE_SLOT_LEASE`]; after that the permit is
/// released and `write` goes on to its end.
pub(crate) async fn within_lease<F: Future>(
    permit: Option<OwnedSemaphorePermit>,
    lease: Duration,
    write: F,
) -> F::Output {
    let mut permit = permit;
    let write = std::pin::pin!(write);
    let mut write = write;
    tokio::select! {
        out = &mut write => out,
        () = tokio::time::sleep(lease) => {
            if permit.take().is_some() {
                tracing::warn!(
                    lease_ms = lease.as_millis() as u64,
                    "a GitHub write is slow; letting the installation's next write go ahead"
                );
            }
            write.await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_write_hands_the_slot_on_after_its_lease() {
        let pacer = Arc::new(Pacer::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let slow = {
            let (pacer, order) = (pacer.clone(), order.clone());
            tokio::spawn(async move {
                let permit = pacer.write_slot(1).await;
                within_lease(permit, WRITE_SLOT_LEASE, async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    order.lock().expect("order").push("slow done");
                })
                .await;
            })
        };
        tokio::task::yield_now().await;
        let fast = {
            let (pacer, order) = (pacer.clone(), order.clone());
            tokio::spawn(async move {
                let permit = pacer.write_slot(1).await;
                within_lease(permit, WRITE_SLOT_LEASE, async {
                    order.lock().expect("order").push("fast done");
                })
                .await;
            })
        };
        fast.await.expect("fast");
        slow.await.expect("slow");
        assert_eq!(*order.lock().expect("order"), ["fast done", "slow done"]);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_of_one_installation_go_one_at_a_time() {
        let pacer = Arc::new(Pacer::default());
        let inside = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (pacer, inside, most) = (pacer.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let permit = pacer.write_slot(7).await;
                within_lease(permit, WRITE_SLOT_LEASE, async {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
                .await;
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_its_caller_only() {
        let pacer = Pacer::default();
        pacer.pause(Auth::Installation(1), Duration::from_secs(5));
        let start = Instant::now();
        pacer
            .wait_out_pause(Auth::Installation(2), Duration::from_secs(60))
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer
            .wait_out_pause(Auth::Installation(1), Duration::from_secs(60))
            .await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }
}
