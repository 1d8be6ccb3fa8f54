//! Integration tests of mp-pool: real worker processes, real signals.
//!
//! The test binary is itself the workers' program: spawned and forkserver
//! workers re-enter it before `main`, so no custom harness is needed.

mod api;
mod asyncs;
mod codec;
mod durability;
mod executor;
mod failures;
mod handles;
mod limits;
mod progress;
mod props;
mod resources;
mod thread_executor;

use std::time::Duration;

pub(crate) use mp_test_helpers::{METHODS, children, exclusive, fd_count, kill, shared};

/// A generous bound for things that must happen "within about a second".
pub(crate) const SOON: Duration = Duration::from_secs(10);

/// A pool of two workers started by `m`.
pub(crate) fn pool_with(m: mp_process::StartMethod) -> mp_pool::Pool {
    mp_pool::Pool::builder()
        .processes(2)
        .start_method(m)
        .build()
        .unwrap()
}

/// Task helpers shared by the test modules.
pub(crate) fn inc(x: i64) -> i64 {
    x + 1
}

pub(crate) fn pid_of(_: u64) -> u32 {
    std::process::id()
}

pub(crate) fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

pub(crate) fn sleep_then_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

pub(crate) fn boom(x: i64) -> i64 {
    if x == 3 {
        panic!("task {x} failed");
    }
    x
}
