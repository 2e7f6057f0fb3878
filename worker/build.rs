//! Lays out the release binaries' code so that what a server runs sits together.
//!
//! Most of an idle server's memory is the pages of its own code that it has run, and the kernel
//! maps a binary's code in blocks of 64 KB or more (fault-around, large page-cache folios), not
//! in the 4 KB pages the code was touched in. The few thousand functions the app runs to start
//! and to take deliveries come to about 4 MB, but scattered over the 25 MB of `.text` they left
//! the app with 13 MB of its code resident. `link-order.txt` lists those functions (recorded by
//! `scripts/link-order`, which runs the release app under callgrind); the linker places them
//! first, in that order. A name the build no longer has (code changed, a dependency updated) is
//! skipped without a warning, so a stale list costs memory, never the build:
//! `scripts/release-build` prints how much of the list the binary still has.
//!
//! Only for release builds for `x86_64-unknown-linux-gnu`, whose default linker (rust-lld) takes
//! `--symbol-ordering-file`; `PREVIEWD_LINK_ORDER=off` builds without it.

use std::{env, path::PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=link-order.txt");
    println!("cargo::rerun-if-env-changed=PREVIEWD_LINK_ORDER");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_target = env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    let wanted = !env::var("PREVIEWD_LINK_ORDER").is_ok_and(|v| v == "off");
    if !(release && lld_target && wanted) {
        return;
    }
    let list = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("link-order.txt");
    if !list.is_file() {
        return;
    }
    let list = list.display();
    println!("cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={list}");
    println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
