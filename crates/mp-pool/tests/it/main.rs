//! Integration tests of mp-pool: real worker processes, real signals.
//!
//! The test binary is itself the workers' program: spawned and forkserver
//! workers re-enter it before `main`, so no custom harness is needed.

mod api;
mod executor;
mod failures;
mod progress;
mod props;
mod resources;
mod thread_executor;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use mp_process::StartMethod;

/// Every start method, for tests that run under each.
pub(crate) const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

static EXCLUSIVE: RwLock<()> = RwLock::new(());

/// Held by ordinary tests, which may run in parallel with each other.
pub(crate) fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|p| p.into_inner())
}

/// Held by tests that count this process's fds or children.
pub(crate) fn exclusive() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(|p| p.into_inner())
}

/// Open descriptors of this process.
pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Live children of this process, zombies included.
pub(crate) fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        if rest.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            out.push((pid, rest[0].chars().next().unwrap_or('?')));
        }
    }
    out
}

/// A generous bound for things that must happen "within about a second".
pub(crate) const SOON: Duration = Duration::from_secs(10);

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

/// Sends `sig` to a worker. std has no kill(2), and unsafe code stays in
/// mp-process and mp-shm, so this runs the kill program.
#[allow(
    clippy::disallowed_methods,
    reason = "the test signals a worker; kill(1) is not a child of the pool"
)]
pub(crate) fn kill(pid: u32, sig: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}
