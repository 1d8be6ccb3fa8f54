//! Python's `multiprocessing` for Rust: processes, pools, queues, pipes,
//! shared memory and managers, with typed errors and no hangs.
//!
//! ```
//! fn task(n: u64) -> u64 {
//!     (0..n).sum()
//! }
//!
//! fn main() -> Result<(), mp::Error> {
//!     mp::init(); // first thing in main: children re-enter this program
//!
//!     let mut p = mp::Process::new(task, 10_000);
//!     p.start()?;
//!     assert_eq!(p.join()?, 49_995_000);
//!     Ok(())
//! }
//! ```
//!
//! # Processes
//!
//! - [`Process`]: run a function (any start method) or a closure (fork) in
//!   a child, join it for its result, with exit codes and signals reported.
//! - [`StartMethod`], [`set_start_method`], [`get_context`]: fork, spawn and
//!   forkserver, as in Python.
//! - [`current_process`], [`parent_process`], [`active_children`],
//!   [`cpu_count`].
//! - The whole crate: [`process`] (`mp-process`).
//!
//! # Shared memory and locks
//!
//! [`shm`] (`mp-shm`): `Value`, `Array`, shared atomics, and process-shared
//! `Lock`, `RLock`, `Condition`, `Event`, `Semaphore` and `Barrier`. Being
//! built.
//!
//! # Queues and pipes
//!
//! [`ipc`] (`mp-ipc`): `Pipe`, `Queue`, `SimpleQueue`, `JoinableQueue`,
//! `Listener` and `Client`. Being built.
//!
//! # Pools and executors
//!
//! [`pool`] (`mp-pool`): `Pool`, `ProcessPoolExecutor` and a `ThreadPool`
//! with the same API. Being built.
//!
//! # Managers
//!
//! [`manager`] (`mp-manager`): a `Manager` server and its proxies, local or
//! remote. Being built.
//!
//! Each part is its own crate, so a program that needs only one depends on
//! that crate alone.
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]
// The facade holds re-exports and docs only; it never needs unsafe code.

#[doc(inline)]
pub use mp_process as process;

#[doc(inline)]
pub use mp_process::{
    ActiveChild, Context, CurrentProcess, Error, ErrorKind, ExitStatus, ParentProcess, Process,
    StartMethod, active_children, cpu_count, current_process, get_all_start_methods, get_context,
    get_start_method, init, parent_process, set_start_method, spawn,
};

#[doc(inline)]
pub use mp_shm as shm;

#[doc(inline)]
pub use mp_ipc as ipc;

#[doc(inline)]
pub use mp_pool as pool;

#[doc(inline)]
pub use mp_manager as manager;

/// The README's examples, compiled as doctests so that they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The guide's chapters, compiled and run as doctests.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../../docs/guide/processes.md")]
    pub struct Processes;

    #[doc = include_str!("../../../docs/guide/start-methods.md")]
    pub struct StartMethods;
}
