//! Integration tests of mp-shm: shared objects used by real children under
//! every start method.
//!
//! The test binary is itself the children's program: spawned and forkserver
//! children re-enter it before `main`, so no custom harness is needed.

mod blocks;
mod locks;
mod props;
mod raw_sync_gap;
mod sync;
mod values;

use std::time::{Duration, Instant};

use mp_process::StartMethod;

/// Every start method, for tests that run under each.
pub(crate) const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

/// Runs `f` and asserts it took at least `min` (a timed wait's promise:
/// never return before the timeout).
pub(crate) fn at_least<R>(min: Duration, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    assert!(
        took >= min,
        "returned after {took:?}, before the {min:?} timeout"
    );
    r
}

/// The entries of /dev/shm now, to check that nothing is left behind.
pub(crate) fn dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
