//! Handing freed memory back to the system. glibc's allocator keeps what a burst of large
//! allocations freed — webhook bodies read and refused, most of all — inside its arenas, so the
//! process would stay at the burst's peak for good (its mmap threshold rises after the first big
//! free, and it trims only the top of each arena). The webhook extractor calls
//! [`release_freed_soon`] when the budget for unverified bodies is idle again after holding a
//! big one, and the app calls [`release_freed`] once it is up; both end in `malloc_trim`, which
//! returns the free pages of every arena. Elsewhere than glibc they do nothing.
#![allow(unsafe_code)]

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

/// Set while a release is scheduled, so a burst schedules one.
static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// How long after the request that asks for it the release runs: long enough for the rest of a
/// burst's buffers to be dropped.
const SETTLE: Duration = Duration::from_millis(200);

/// Schedules one [`release_freed`] shortly, on a blocking thread (it walks every arena). Calls
/// while one is scheduled are folded into it. Needs a Tokio runtime.
pub fn release_freed_soon() {
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(SETTLE).await;
        SCHEDULED.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(release_freed).await;
    });
}

/// Returns the allocator's free pages to the system now.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes a padding size and works on the allocator's own state,
    // under its own locks; glibc allows it from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
