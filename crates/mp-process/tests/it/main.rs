//! Integration tests of mp-process: real children under every start method.
//!
//! The test binary is itself the children's program: spawned and forkserver
//! children re-enter it before `main`, so no custom harness is needed.

mod errors;
mod fds;
mod function;
mod identity;
mod lifecycle;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

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

/// Held by tests that count this process's fds or children, so that no
/// other test opens or starts any meanwhile.
pub(crate) fn exclusive() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(|p| p.into_inner())
}

/// Open descriptors of this process.
pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process that have ended but are not reaped.
pub(crate) fn zombie_count() -> usize {
    let me = std::process::id().to_string();
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me {
            n += 1;
        }
    }
    n
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
