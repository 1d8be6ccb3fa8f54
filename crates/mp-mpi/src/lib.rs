//! The mp pool API across many machines, on MPI: rank 0 runs `main`, the
//! other ranks are the pool's workers.
//!
#![cfg_attr(feature = "mpi", doc = "```no_run")]
#![cfg_attr(not(feature = "mpi"), doc = "```ignore")]
//! use mp_mpi::{MpiPool, SharedCounter};
//!
//! fn task(n: u64) -> u64 {
//!     (0..n).sum()
//! }
//!
//! fn count(c: SharedCounter) -> i64 {
//!     c.fetch_add(1).unwrap()
//! }
//!
//! fn main() -> Result<(), mp_mpi::Error> {
//!     // First thing in main: ranks 1..N serve as workers here and never return.
//!     let world = mp_mpi::init()?;
//!
//!     let pool = MpiPool::new(&world)?;
//!     let r = pool.apply_async(task, 10_000)?;
//!     assert_eq!(r.get()?, 49_995_000);
//!     assert_eq!(pool.map(task, [10, 100], None)?, [45, 4950]);
//!
//!     let counter = SharedCounter::new(&world, 0)?;
//!     pool.map(count, vec![counter; 1000], Some(1))?;
//!     assert_eq!(counter.get()?, 1000);
//!     Ok(())
//! }
//! ```
//!
//! Run it with `mpirun -n 3 target/release/my-program` (one rank 0 and
//! two workers); see "Running" below and the README for several hosts.
//!
//! # Should I use this crate?
//!
//! Use it when a program outgrows one machine: code written against
//! [`mp_pool::TaskPool`] runs on a `Pool` (processes on this machine), a
//! `ThreadPool` or an [`MpiPool`] (ranks on many machines), by changing
//! its construction only. On one machine, `mp_pool::Pool` is simpler (no
//! `mpirun`) and as fast. Through the facade: `mp::mpi`, with the facade's
//! `mpi` feature.
//!
//! # The job
//!
//! [`init`] initialises MPI. On ranks 1 to N it then serves tasks until
//! rank 0 ends the job, and exits: it never returns there, so nothing of
//! `main` after it runs on a worker. On rank 0 it returns the [`World`];
//! keep it until the end of `main`: dropping it ends the job (the workers
//! finalize and exit) and finalizes MPI.
//!
//! Functions travel as mp-process sends them to its children: a fn item
//! or a closure that captures nothing (`F: Fn(A) -> R + Copy + 'static`)
//! is sent as its offset in the executable, so every rank must run the
//! same executable (copy the same file to every host). [`init`] checks it:
//! every rank hashes its executable's contents and compares with rank
//! 0's; a rank that differs aborts the job at start-up. Arguments and
//! results travel by serde (postcard), as in mp-pool.
//!
//! # Failure
//!
//! - A task that panics fails its own result with
//!   [`ErrorKind::Panicked`], its message and location; the worker goes
//!   on.
//! - A panic that escapes, on any rank (in `main` on rank 0, in a thread a
//!   task started on a worker), aborts the whole job with `MPI_Abort`
//!   through a panic hook, instead of leaving the other ranks waiting. The
//!   hook cannot tell a panic that some code would catch from one that
//!   escapes, so every panic outside a task counts: on rank 0, do not
//!   rely on `catch_unwind` (mp-pool's callback threads use it: a callback
//!   of a local `Pool` that panics aborts the job here).
//! - A rank that dies (killed, crashed) ends the job: `mpirun` kills the
//!   other ranks and reports which rank died and how, e.g. "mpirun noticed
//!   that process rank 1 with PID 1234 on node a exited on signal 9
//!   (Killed)". MPI gives the survivors no way to go on without a rank.
//! - Every blocking call has a timeout form (`get_timeout`,
//!   `next_timeout`, `join_timeout`).
//!
//! # Running
//!
//! ```text
//! mpirun -n 3 target/release/my-program                 # this machine
//! mpirun -n 9 --hostfile hosts target/release/my-program
//! OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
//!     mpirun --oversubscribe -n 3 ...                     # as root, more ranks than cores
//! mpirun --mca btl tcp,self --mca pml ob1 -n 3 ...        # force TCP, as between hosts
//! ```
//!
//! # Unsafe code
//!
//! House style keeps `unsafe` in mp-process and mp-shm. This crate is the
//! documented exception, for two reasons: the MPI calls that the `mpi`
//! crate has no safe form for (`MPI_Win_allocate`, `MPI_Fetch_and_op`,
//! `MPI_Win_flush`, `MPI_Win_lock_all`/`unlock_all`, `MPI_Win_free`, in
//! `counter.rs`), and turning a function's offset received from rank 0
//! back into a function pointer (`func.rs`), which mp-process does for its
//! own children but cannot do for ranks that `mpirun` started (each has
//! its own key, and another host has another file). Every block is small
//! and argued by a `// SAFETY:` comment.
//!
//! # Crate features
//!
//! - `mpi` (off by default): everything in this crate. It needs an MPI
//!   library with `mpicc` (Open MPI 4.1: `libopenmpi-dev openmpi-bin`) and
//!   libclang (`libclang-dev`) to build; without it the crate is empty, so
//!   that `cargo build --workspace` needs neither. `cargo xtask ci` turns it
//!   on and runs the tests under `mpirun` when `mpirun` is installed (CI
//!   installs it and always runs them).
//!
//! # Platform support
//!
//! Linux, with Open MPI 4.1 or any MPI 3 library with
//! `MPI_THREAD_MULTIPLE` (rank 0 runs a communication thread besides the
//! caller's). Tested with Open MPI's shared-memory and TCP transports.
//!
//! [`ErrorKind::Panicked`]: mp_pool::ErrorKind::Panicked
#![cfg_attr(
    feature = "mpi",
    doc = "[`MpiPool`]: crate::MpiPool\n[`init`]: crate::init\n[`World`]: crate::World"
)]
// Without the `mpi` feature these items do not exist: the links point at
// the section that says why.
#![cfg_attr(
    not(feature = "mpi"),
    doc = "[`MpiPool`]: self#crate-features\n[`init`]: self#crate-features\n[`World`]: self#crate-features"
)]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "mpi")]
mod counter;
#[cfg(feature = "mpi")]
mod engine;
#[cfg(feature = "mpi")]
mod func;
#[cfg(feature = "mpi")]
mod pool;
#[cfg(feature = "mpi")]
mod wire;
#[cfg(feature = "mpi")]
mod worker;

#[cfg(feature = "mpi")]
pub use counter::SharedCounter;
pub use mp_pool::{AsyncResult, Error, ErrorKind, ImapIter, TaskPool};
#[cfg(feature = "mpi")]
pub use pool::MpiPool;
#[cfg(feature = "mpi")]
pub use world::{World, init};

#[cfg(feature = "mpi")]
mod world;

#[cfg(all(test, feature = "mpi"))]
mod tests;

#[cfg(feature = "mpi")]
pub(crate) fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    mp_pool::remote::error(kind, message)
}

#[cfg(feature = "mpi")]
pub(crate) fn ended() -> Error {
    error(ErrorKind::NotRunning, "the mpi world has ended")
}
