//! Run Rust functions in child processes, the way Python's
//! `multiprocessing.Process` does: fork, spawn and forkserver start methods,
//! results and panics brought back, exit codes and signals reported, every
//! child reaped.
//!
//! ```
//! use mp_process::{Process, StartMethod};
//!
//! fn add(x: (i32, i32)) -> i32 {
//!     x.0 + x.1
//! }
//!
//! fn main() -> Result<(), mp_process::Error> {
//!     mp_process::init(); // first thing in main: see "Entering a child"
//!
//!     let mut p = Process::new(add, (10, 5));
//!     p.start()?;
//!     assert_eq!(p.join()?, 15);
//!
//!     // The same under an explicit start method, and a closure under fork.
//!     let mut q = Process::new(add, (1, 2)).start_method(StartMethod::Spawn);
//!     q.start()?;
//!     assert_eq!(q.join()?, 3);
//!
//!     let base = 100;
//!     let mut r = Process::closure(move || base + 1);
//!     r.start()?;
//!     assert_eq!(r.join()?, 101);
//!     Ok(())
//! }
//! ```
//!
//! # Should I use this crate?
//!
//! Use it to run code in another process: to isolate a crash, memory or
//! global state, to use a library that is not thread-safe, or to run code you
//! do not trust. For pools, queues, shared memory and managers, depend on the
//! `mp` facade, which re-exports this crate with the rest.
//!
//! # Start methods
//!
//! - [`StartMethod::ForkServer`], the default: a server process, a fresh run
//!   of this executable with no threads, forks each child. Safe whatever
//!   threads the parent runs, and cheap per child.
//! - [`StartMethod::Spawn`]: each child is a fresh run of this executable.
//!   Safe whatever threads the parent runs; the slowest to start.
//! - [`StartMethod::Fork`]: the child is a fork of the caller. Fastest, and
//!   the only method that runs closures ([`Process::closure`]), since the
//!   child has a copy of the parent's memory. **Unsound when another thread
//!   may hold a lock at the moment of the fork** (the allocator's excepted:
//!   glibc resets it): the child would wait for a lock nobody will release.
//!   CPython warns about the same since 3.12.
//!
//! Choose one for the whole program with [`set_start_method`], for a group
//! of processes with [`get_context`], or per process with
//! [`Process::start_method`].
//!
//! # Entering a child
//!
//! Under spawn and forkserver, a child runs this same executable again. It
//! takes its role before `main`, in a constructor that mp-process places in
//! the executable's `.init_array` (glibc runs it after the Rust runtime is
//! set up, before any thread exists). So the child never runs your `main`,
//! and this works unchanged in binaries, examples and test binaries,
//! integration or unit tests, with the default test harness: nothing runs
//! before the constructor but the C runtime.
//!
//! [`init`] is the portable entry point: call it first in `main`. On Linux
//! the constructor has done its work before, and `init` only checks; where
//! constructors do not run, `init` takes the child's role itself. A child
//! that runs `main` without ever calling `init` cannot start processes of its
//! own (an [`ErrorKind::NotEntered`] error, never a fork bomb), and its
//! parent reports [`ErrorKind::NotEntered`] when the child does not take its
//! call.
//!
//! Functions reach a re-executed child as their offset from an anchor in
//! this crate, checked twice: the parent refuses a function that lives
//! outside the executable (in a dynamically loaded library), and the child
//! refuses to run one if its executable differs from the parent's (device,
//! inode, size, modification time). A function is never called by a wrong
//! address.
//!
//! # Errors and failures
//!
//! [`Process::join`] gives `Result<R, Error>`. A panic in the child comes
//! back with its message and location ([`ErrorKind::Panicked`]); a child that
//! ends without a result, by `exit(n)` or a signal, gives
//! [`ErrorKind::Died`] with its [`ExitStatus`]. Nothing waits forever unless
//! asked to: every blocking call has a timeout form.
//! With `RUST_BACKTRACE` set in the child's environment, the panic also
//! brings the child's backtrace ([`Error::backtrace`], shown by `{:#}`).
//!
//! [`Process::join_async`] is the async form of `join`, for any executor:
//! it never blocks the polling thread, woken by mp's reactor on the
//! child's pidfd (or the fork server's report) and on its result.
//!
//! # What travels
//!
//! Arguments and results travel by serde in postcard ([`codec`]). A value
//! postcard cannot encode is refused before the child starts; one it
//! cannot decode (a type whose `Deserialize` calls `deserialize_any`:
//! `serde_json::Value`, untagged and flattened enums) is an
//! [`ErrorKind::Serialization`] error that names the type and says why: at
//! `start` (or in the child, for a result) in builds with debug assertions
//! ([`codec::check_sent`]), else where it is decoded, and a result that
//! does not decode keeps its bytes ([`Error::codec_error`]). Wrap such
//! values in [`SelfDescribing`].
//!
//! # Platform support
//!
//! Linux with glibc 2.34 or later (the spawn start method uses
//! `posix_spawn_file_actions_addclosefrom_np`). The fork server uses
//! `signalfd`; timed waits use pidfds (Linux 5.3) and fall back to
//! polling without them. macOS and Windows are not
//! supported yet.
#![doc(test(attr(deny(warnings))))]

mod bootstrap;
pub mod codec;
mod error;
mod fdpass;
mod forkserver;
mod function;
mod process;
#[doc(hidden)]
pub mod reactor;
mod sys;
#[doc(hidden)]
pub mod trace;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

pub use codec::{CodecError, SelfDescribing};
pub use error::{Error, ErrorKind, ExitStatus, Location, PanicInfo};
pub use fdpass::{MAX_FDS_PER_MESSAGE, SharedFd, recv_fds, send_fds};
pub use function::{Function, RawFunction, decode, encode};
pub use process::{ActiveChild, DEFAULT_MAX_MESSAGE_SIZE, Process};

/// The exit code of a child (or pool worker) under a memory limit whose
/// allocation failed: [`Process::memory_limit`] turns Rust's
/// allocation-failure abort into this exit, so that it can be told from
/// other aborts. Reserved: a child under a memory limit should not exit
/// with it for other reasons.
pub const MEMORY_LIMIT_EXIT: i32 = sys::MEMORY_LIMIT_EXIT;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The entry point of a program that starts processes: call it first in
/// `main`.
///
/// On Linux a constructor has already given a child its role before `main`
/// runs, so this returns at once. Where constructors do not run, a child
/// takes its role here and never returns.
pub fn init() {
    // Keep the constructor's section linked even if nothing else in this
    // object file is referenced.
    std::hint::black_box(&sys::CHILD_ENTRY);
    bootstrap::before_main();
}

/// How a child process is started. See the [crate docs](crate#start-methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartMethod {
    /// Fork of the caller: fast, runs closures, unsound with threads that
    /// hold locks.
    Fork = 1,
    /// A fresh run of the current executable.
    Spawn = 2,
    /// A fork of a thread-free server process, itself a fresh run of the
    /// current executable. The default.
    ForkServer = 3,
}

impl StartMethod {
    /// Python's name for the method: `"fork"`, `"spawn"`, `"forkserver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }

    fn from_u8(v: u8) -> Option<StartMethod> {
        [
            StartMethod::Fork,
            StartMethod::Spawn,
            StartMethod::ForkServer,
        ]
        .into_iter()
        .find(|m| *m as u8 == v)
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<StartMethod, Error> {
        get_all_start_methods()
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidStartMethod,
                    format!("cannot find context for {s:?}"),
                )
            })
    }
}

/// The start methods this platform offers, the default first.
pub fn get_all_start_methods() -> &'static [StartMethod] {
    &[
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::Fork,
    ]
}

/// The method set by [`set_start_method`] or [`force_start_method`] (its
/// `u8`), 0 while none is.
static DEFAULT_METHOD: AtomicU8 = AtomicU8::new(0);

/// Sets the process-wide default start method, once.
///
/// A second call is an [`ErrorKind::ContextAlreadySet`] error, as in Python;
/// [`force_start_method`] is Python's `force=True`.
pub fn set_start_method(method: StartMethod) -> Result<(), Error> {
    DEFAULT_METHOD
        .compare_exchange(0, method as u8, Ordering::AcqRel, Ordering::Acquire)
        .map(drop)
        .map_err(|_| {
            Error::new(
                ErrorKind::ContextAlreadySet,
                "the start method has already been set",
            )
        })
}

/// Sets the process-wide default start method whether or not one was set
/// (Python's `set_start_method(method, force=True)`).
pub fn force_start_method(method: StartMethod) {
    DEFAULT_METHOD.store(method as u8, Ordering::Release);
}

/// The process-wide default start method: the one set by
/// [`set_start_method`] or [`force_start_method`]; in a child, the method
/// that started it (as CPython forces it there); else
/// [`StartMethod::ForkServer`].
pub fn get_start_method() -> StartMethod {
    StartMethod::from_u8(DEFAULT_METHOD.load(Ordering::Acquire))
        .or_else(|| bootstrap::current_info().and_then(|i| StartMethod::from_u8(i.method)))
        .unwrap_or(StartMethod::ForkServer)
}

/// A start method bound to a value: Python's `get_context(method)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// The context of `method`: processes made through it use that method.
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The context's start method.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// [`Process::new`] under this context's start method.
    pub fn process<F, A, R>(&self, f: F, args: A) -> Process<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process::new(f, args).start_method(self.method)
    }
}

/// Starts `f(args)` in a child with the default start method.
pub fn spawn<F, A, R>(f: F, args: A) -> Result<Process<R>, Error>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut p = Process::new(f, args);
    p.start()?;
    Ok(p)
}

/// This process as [`current_process`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    daemon: bool,
}

impl CurrentProcess {
    /// `MainProcess` in a program's first process, else the name its parent
    /// gave.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this process is a daemon child.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }
}

/// Describes the calling process: Python's `current_process()`.
pub fn current_process() -> CurrentProcess {
    let pid = sys::getpid();
    match bootstrap::current_info() {
        Some(i) => CurrentProcess {
            name: i.name.clone(),
            pid,
            daemon: i.daemon,
        },
        None => CurrentProcess {
            name: "MainProcess".to_owned(),
            pid,
            daemon: false,
        },
    }
}

/// The process that started this one, as [`parent_process`] gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentProcess {
    name: String,
    pid: u32,
}

impl ParentProcess {
    /// The parent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parent's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the parent still runs: false from the moment it ends, even
    /// before it is reaped (the child watches it through a pidfd).
    pub fn is_alive(&self) -> bool {
        sys::parent_alive(self.pid)
    }
}

/// The mp process that started this one; `None` in a program's first
/// process. Python's `parent_process()`.
pub fn parent_process() -> Option<ParentProcess> {
    bootstrap::current_info().map(|i| ParentProcess {
        name: i.parent_name.clone(),
        pid: i.parent_pid,
    })
}

/// The children of this process that are still running, reaping those that
/// have ended. Python's `active_children()`.
pub fn active_children() -> Vec<ActiveChild> {
    process::active_children()
}

/// The number of online CPUs, at least 1. Python's `cpu_count()`.
pub fn cpu_count() -> usize {
    sys::cpu_count()
}
