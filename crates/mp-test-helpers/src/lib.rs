//! Helpers shared by the mp crates' integration tests: every start method,
//! a lock that keeps counting tests apart from the others, and what
//! `/proc` says about this process's descriptors and children.
//!
//! ```
//! use mp_test_helpers::{exclusive, fd_count};
//!
//! let _alone = exclusive();
//! let before = fd_count();
//! drop(std::fs::File::open("/proc/self/stat").unwrap());
//! assert_eq!(fd_count(), before);
//! ```

pub mod codec;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use mp_process::StartMethod;

/// Every start method, for tests that run under each.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

static EXCLUSIVE: RwLock<()> = RwLock::new(());

/// Held by ordinary tests, which may run in parallel with each other.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|p| p.into_inner())
}

/// Held by tests that count this process's descriptors or children, so
/// that no other test of the binary opens or starts any meanwhile.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(|p| p.into_inner())
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `(state, parent pid)` of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command, in parentheses, may hold spaces: parse after its end.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// This process's children, zombies included: `(pid, state)`.
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| match stat(pid) {
            Some((state, ppid)) if ppid == me => Some((pid, state)),
            _ => None,
        })
        .collect()
}

/// Children of this process that have ended but are not reaped.
pub fn zombie_count() -> usize {
    children().iter().filter(|(_, state)| *state == 'Z').count()
}

/// Whether a process with this pid exists and is not a zombie.
pub fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Sends signal `sig` to `pid`. Unsafe code stays in mp-process and
/// mp-shm, so this runs the kill program.
pub fn kill(pid: u32, sig: i32) {
    #[allow(clippy::disallowed_methods)] // kill(1), reaped at once; not a library child.
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{sig} {pid}");
}

/// Runs the one test `test` of this test binary again, in a process of its
/// own whose environment has `RUST_BACKTRACE` set to `backtrace` (or unset)
/// and `flag` set to the same value (`"off"` for unset), and asserts that it
/// passed. For a test about what children inherit from the environment:
/// the other half of the test, run this way, reads `flag` and checks, and
/// this process's environment never changes under its other threads.
#[allow(clippy::disallowed_methods)] // This test binary again, under an environment of its own: not a child of mp's.
pub fn run_again(test: &str, flag: &str, backtrace: Option<&str>) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads=1"])
        .env(flag, backtrace.unwrap_or("off"))
        .env_remove("RUST_LIB_BACKTRACE");
    match backtrace {
        Some(v) => cmd.env("RUST_BACKTRACE", v),
        None => cmd.env_remove("RUST_BACKTRACE"),
    };
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
