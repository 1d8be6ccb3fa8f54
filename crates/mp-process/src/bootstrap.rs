//! The child's side: how a child process takes its role and reports back.
//!
//! A re-executed child (spawn, or the fork server) is recognised before
//! `main` by the constructor in `sys`, which calls [`before_main`]. A forked
//! child continues in `Process::start` and ends in [`report`].

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Location, PanicInfo};
use crate::sys;
use crate::wire::{self, CallHeader, ChildFailure, ChildInfo, Outcome};

/// Set in a re-executed child: `"<conn fd>"` or `"<conn fd>,<lifeline fd>"`.
pub(crate) const ENV_CHILD: &str = "MP_PROCESS_CHILD";
/// Set in the fork server: `"<control fd>"`.
pub(crate) const ENV_SERVER: &str = "MP_PROCESS_FORKSERVER";

/// Largest call header a child accepts (the header holds names, not data).
const HEADER_LIMIT: u64 = 1 << 20;

/// The identity given to this process by its parent, if it has one.
pub(crate) fn current_info() -> Option<&'static ChildInfo> {
    sys::current_identity()
}

/// Runs before `main` in every process of a program that links mp-process.
/// Takes the fork-server or child role when the environment says so, and
/// never returns then; otherwise returns at once.
pub(crate) fn before_main() {
    let server = std::env::var(ENV_SERVER).ok();
    let child = std::env::var(ENV_CHILD).ok();
    if server.is_none() && child.is_none() {
        return;
    }
    // SAFETY: this runs from the `.init_array` constructor (or from `init`
    // at the top of `main`), before any thread of this program exists.
    unsafe {
        sys::remove_env_single_threaded(ENV_SERVER);
        sys::remove_env_single_threaded(ENV_CHILD);
    }
    if let Some(fd) = server.and_then(|v| parse_fds(&v).first().copied()) {
        // SAFETY: the parent put this fd number in our environment after
        // clearing its close-on-exec flag: it is open and ours alone.
        let ctrl = unsafe { OwnedFd::from_raw_fd(fd) };
        crate::forkserver::serve(ctrl);
    }
    if let Some(fds) = child.map(|v| parse_fds(&v)) {
        let Some(&conn) = fds.first() else {
            sys::exit_now(70)
        };
        // SAFETY: as above, these fds were handed to us through exec.
        let (conn, lifeline) = unsafe {
            (
                OwnedFd::from_raw_fd(conn),
                fds.get(1).map(|&fd| OwnedFd::from_raw_fd(fd)),
            )
        };
        run_child(UnixStream::from(conn), lifeline);
    }
}

fn parse_fds(v: &str) -> Vec<RawFd> {
    v.split(',').filter_map(|s| s.parse().ok()).collect()
}

/// Runs a child of the spawn or forkserver method: reads the call, runs it,
/// reports, exits.
pub(crate) fn run_child(mut conn: UnixStream, lifeline: Option<OwnedFd>) -> ! {
    sys::ignore_sigpipe();
    install_panic_hook();
    let Ok((wire::CALL, header)) = wire::read_frame(&mut conn, HEADER_LIMIT) else {
        sys::exit_now(70)
    };
    let Ok(header) = postcard::from_bytes::<CallHeader>(&header) else {
        sys::exit_now(70)
    };
    let limit = header.info.max_message;
    become_child(header.info.clone(), lifeline);
    let Ok((wire::ARGS, args)) = wire::read_frame(&mut conn, limit) else {
        sys::exit_now(70)
    };
    if header.nfds > 0 {
        let Ok(fds) = wire::recv_fds(&conn, header.nfds as usize) else {
            sys::exit_now(70)
        };
        crate::fdpass::provide(fds);
    }
    let outcome = if header.fingerprint != exe_fingerprint() {
        Outcome::Failed(ChildFailure::Unresolvable(format!(
            "the executable changed between parent and child; cannot find `{}`",
            header.entry_name
        )))
    } else {
        // SAFETY: the fingerprint check above shows that this process runs
        // the parent's executable, where `entry` was encoded.
        let entry = unsafe { sys::decode_entry(header.entry) };
        entry(&args)
    };
    report(conn, outcome, limit, true)
}

/// Takes on the identity the parent gave, and if this is a daemon, arranges
/// to die with the parent: a thread waits for end-of-stream on the lifeline,
/// which comes when the parent (the only writer) has exited.
pub(crate) fn become_child(info: ChildInfo, lifeline: Option<OwnedFd>) {
    crate::function::adopt_key(info.key);
    if let (true, Some(fd)) = (info.daemon, lifeline) {
        let mut line = UnixStream::from(fd);
        let watcher = std::thread::Builder::new()
            .name("mp-lifeline".into())
            .spawn(move || {
                let mut b = [0u8; 1];
                loop {
                    match line.read(&mut b) {
                        Ok(0) => break,
                        Err(e) if e.kind() != std::io::ErrorKind::Interrupted => break,
                        _ => {}
                    }
                }
                let _ = sys::kill(sys::getpid(), sys::SIGKILL);
            });
        if watcher.is_err() {
            // Without the watcher the daemon could outlive its parent.
            sys::exit_now(71);
        }
    }
    // A forked child has its parent's default; CPython forces the method
    // that started the child instead.
    if let Some(m) = crate::StartMethod::from_u8(info.method) {
        crate::force_start_method(m);
    }
    sys::watch_parent(info.parent_pid);
    // A limit that cannot be set must not leave the child unlimited.
    if let Some(bytes) = info.limits.memory {
        if sys::set_memory_limit(bytes).is_err() {
            sys::exit_now(sys::MEMORY_LIMIT_EXIT);
        }
    }
    if let Some(t) = info.limits.time {
        if sys::set_time_limit(t).is_err() {
            sys::exit_now(71);
        }
    }
    sys::set_current_identity(info);
}

/// Sends the outcome to the parent and ends the process: exit code 0 after a
/// result, 1 after a panic or failure (Python's code for an exception).
///
/// `flush` flushes Rust's stdout and stderr first. A forked child skips it:
/// another thread of the parent may have held their lock at the fork, and
/// the child would wait for it forever. `println!` output is line-buffered
/// and written already; only a trailing `print!` without newline is lost.
pub(crate) fn report(mut conn: UnixStream, outcome: Outcome, limit: u64, flush: bool) -> ! {
    let outcome = match outcome {
        Outcome::Ok(bytes) if bytes.len() as u64 > limit => {
            Outcome::Failed(ChildFailure::TooLarge {
                size: bytes.len() as u64,
                limit,
            })
        }
        other => other,
    };
    let code = if matches!(outcome, Outcome::Ok(_)) {
        0
    } else {
        1
    };
    // A parent that no longer listens (it dropped the handle) is no reason
    // to fail: the write error is ignored and the exit code stands.
    if let Ok(frame) = postcard::to_stdvec(&outcome) {
        let _ = wire::write_frame(&mut conn, wire::OUTCOME, &frame);
    }
    if flush {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        sys::flush_c_stdio();
    }
    sys::exit_now(code)
}

/// Decodes the arguments, calls `f` and encodes what it returned or how it
/// panicked. Called by the entry trampolines of `sys`.
pub(crate) fn call<F, A, R>(f: F, args: &[u8]) -> Outcome
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    match crate::codec::decode::<A>(args) {
        Ok(a) => run_caught(move || f(a)),
        Err(e) => Outcome::Failed(ChildFailure::Serialization(format!(
            "cannot decode the arguments in the child: {e}"
        ))),
    }
}

/// Runs `f`, catching a panic, and encodes its result.
pub(crate) fn run_caught<R: Serialize + DeserializeOwned>(f: impl FnOnce() -> R) -> Outcome {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => match crate::codec::encode(&r)
            .and_then(|b| crate::codec::check_sent::<R>(&b).map(|()| b))
        {
            Ok(bytes) => Outcome::Ok(bytes),
            Err(e) => Outcome::Failed(ChildFailure::Serialization(format!(
                "cannot encode the result in the child: {e}"
            ))),
        },
        Err(payload) => {
            let message = payload_message(&*payload);
            let (location, backtrace) = LAST_PANIC
                .with(|l| l.borrow_mut().take())
                .unwrap_or_default();
            // Resolved to text only now, for a panic that travels: symbol
            // lookup is the slow part.
            let backtrace = backtrace.map(|b| b.to_string());
            Outcome::Panic(PanicInfo::new(message, location, backtrace))
        }
    }
}

thread_local! {
    /// Where the last panic on this thread happened and its backtrace (when
    /// captured), as the hook saw them.
    static LAST_PANIC: RefCell<Option<(Option<Location>, Option<Backtrace>)>> =
        const { RefCell::new(None) };
}

/// Set in a forked child: locks copied from the parent may be held by
/// threads that do not exist here.
static FORKED: AtomicBool = AtomicBool::new(false);

/// How many threads are inside the panic hook (which may hold std's
/// backtrace lock). A forked child's copy is the count at the fork.
static IN_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Set in a forked child if a thread of the parent was inside the panic
/// hook at the fork: std's backtrace lock may be held by a thread that
/// does not exist here, so this child captures no backtrace.
static HOOK_BUSY_AT_FORK: AtomicBool = AtomicBool::new(false);

/// Marks this process as a forked child (see [`install_panic_hook`]).
pub(crate) fn mark_forked() {
    FORKED.store(true, Ordering::Relaxed);
    HOOK_BUSY_AT_FORK.store(IN_HOOK.load(Ordering::SeqCst) > 0, Ordering::Relaxed);
}

/// Chains a panic hook that remembers the location of each panic (the
/// payload does not carry it) and its backtrace, then runs the previous
/// hook, which prints the message as usual.
///
/// The backtrace is `Backtrace::capture`: captured only when
/// `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` asks for it (otherwise it costs
/// one cached check), and resolved to text in the process whose symbols
/// it names when the panic is reported (`run_caught`), to travel to the
/// parent as a string. Capturing takes
/// std's backtrace lock, so a forked child skips it when a thread of the
/// parent was inside this hook at the fork (it may have held the lock);
/// the environment is read for it once, here, before any fork (std keeps
/// the answer), so a forked child never takes the environment's lock for
/// it. One narrow case remains: another thread of the parent capturing or
/// printing a backtrace itself, outside a panic, at the very moment of
/// the fork, with `RUST_BACKTRACE` set.
///
/// In a forked child the previous hook is skipped: std's default hook takes
/// a lock that another thread of the parent may have held at the fork (it
/// was printing a panic of its own), and the child would wait for it
/// forever. The message is written to fd 2 directly instead.
pub(crate) fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // Reads RUST_BACKTRACE now; std caches whether capture is enabled.
        drop(Backtrace::capture());
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            IN_HOOK.fetch_add(1, Ordering::SeqCst);
            let loc = info.location().map(Location::from_std);
            let bt = if FORKED.load(Ordering::Relaxed) && HOOK_BUSY_AT_FORK.load(Ordering::Relaxed)
            {
                None
            } else {
                let bt = Backtrace::capture();
                (bt.status() == BacktraceStatus::Captured).then_some(bt)
            };
            if FORKED.load(Ordering::Relaxed) {
                let msg = payload_message(info.payload());
                let at = loc.as_ref().map(|l| format!(" at {l}")).unwrap_or_default();
                sys::write_stderr(format!("child process panicked{at}:\n{msg}\n").as_bytes());
            } else {
                prev(info);
            }
            let _ = LAST_PANIC.try_with(|l| *l.borrow_mut() = Some((loc, bt)));
            IN_HOOK.fetch_sub(1, Ordering::SeqCst);
        }));
    });
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Identifies the running executable: device, inode, size and modification
/// time of the file behind `/proc/self/exe`.
pub(crate) fn exe_fingerprint() -> (u64, u64, u64, i64) {
    use std::os::unix::fs::MetadataExt;
    static FP: OnceLock<(u64, u64, u64, i64)> = OnceLock::new();
    *FP.get_or_init(|| match std::fs::metadata("/proc/self/exe") {
        Ok(m) => (m.dev(), m.ino(), m.size(), m.mtime()),
        Err(_) => (0, 0, 0, 0),
    })
}
