//! Process pools that never hang: [`Pool`] (`apply_async`, `map`, `imap`,
//! `imap_unordered`, `starmap`), [`ProcessPoolExecutor`] with futures, and a
//! rayon-backed [`ThreadPool`] and [`ThreadPoolExecutor`] with the same API.
//!
//! ```
//! use mp_pool::Pool;
//!
//! fn task(n: u64) -> u64 {
//!     (0..n).sum()
//! }
//!
//! fn main() -> Result<(), mp_pool::Error> {
//!     mp_process::init(); // first thing in main: workers re-enter this program
//!
//!     let pool = Pool::new(2)?;
//!     let r1 = pool.apply_async(task, 10_000)?;
//!     let r2 = pool.apply_async(task, 20_000)?;
//!     pool.close();
//!     pool.join()?;
//!     assert_eq!((r1.get()?, r2.get()?), (49_995_000, 199_990_000));
//!     Ok(())
//! }
//! ```
//!
//! # Async
//!
//! [`AsyncResult`] and the executor's [`Future`] are
//! `std::future::Future`s, woken by the pool's own threads, so they can be
//! awaited on any runtime or none; [`ImapIter::into_stream`] turns `imap`'s
//! results into a `futures_core::Stream`. Dropping one cancels nothing:
//! the task still runs and its result stays for `get`.
//!
//! ```
//! use mp_pool::Pool;
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! let pool = Pool::new(2)?;
//! let results: Vec<_> = (0..10).map(|x| pool.apply_async(square, x)).collect::<Result<_, _>>()?;
//! let all = smol::block_on(async {
//!     let mut all = Vec::new();
//!     for r in results {
//!         all.push(r.await?);
//!     }
//!     Ok::<_, mp_pool::Error>(all)
//! })?;
//! assert_eq!(all.iter().sum::<u64>(), 285);
//! # Ok::<(), mp_pool::Error>(())
//! ```
//!
//! # Should I use this crate?
//!
//! Use it through the `mp` facade (`mp::Pool`, `mp::pool::...`) unless a
//! program needs the pools alone.
//!
//! # Functions and arguments
//!
//! A task is a fn item or a closure that captures nothing (`F: Fn(A) -> R +
//! Copy + 'static`), as for `mp_process::Process::new`: a worker finds it
//! by name. Several arguments travel as one tuple. Arguments and results
//! travel by serde (postcard). Callbacks run in this process and may
//! capture anything.
//!
//! A task's argument, and the initializer's, may hold what a process's
//! argument may: queues, pipes, shared values, arrays and locks (in
//! CPython only a Manager's proxies can go to a pool task). Their
//! descriptors travel beside the task; a worker gets handles of its own
//! on the same objects. At most [`mp_process::MAX_FDS_PER_MESSAGE`]
//! descriptors go with one task (a `map` chunk is one task).
//!
//! # Failure, never a hang
//!
//! - A task that panics fails its result with [`ErrorKind::Panicked`], the
//!   message and the location; the worker goes on.
//! - A worker that dies mid-task (killed, aborted, exited) fails that task,
//!   and only that one, with [`ErrorKind::WorkerLost`] and the exit code or
//!   signal, within moments; every result it finished before reaches its
//!   caller (results are in shared memory the pool maps as soon as a task
//!   returns), the tasks sent to it but not started run on its
//!   replacement, and no task runs twice. Idle workers that die are
//!   replaced and fail nothing. A `map`/`imap`/`starmap` chunk is one
//!   task: a worker that dies inside a chunk fails the whole chunk (each
//!   of its items reports the error), and its finished items are not
//!   re-run. A [`ProcessPoolExecutor`] breaks instead, as CPython's does;
//!   futures that had finished keep their values.
//! - An initializer that fails is reported once ([`ErrorKind::Initializer`]
//!   on every task); no endless respawn.
//! - A task past its hard time limit ([`Limits`], per pool or per call)
//!   fails with [`ErrorKind::TimeLimit`]; its worker is stopped (SIGTERM,
//!   a grace, SIGKILL) and replaced, and no other task is affected. The
//!   task can watch its soft limit with [`time_left`]. A task that
//!   allocates past [`PoolBuilder::memory_limit`] fails with
//!   [`ErrorKind::MemoryLimit`]; [`PoolBuilder::max_memory_per_child`]
//!   recycles leaking workers; workers that crash faster than the restart
//!   limit ([`PoolBuilder::max_restarts`]) stop the pool with
//!   [`ErrorKind::RestartLimit`]. [`Pool::worker_stats`] tells what each
//!   worker is doing. The guide's chapter "Containing untrusted work" maps
//!   pebble's and billiard's names.
//! - A callback that panics breaks nothing.
//! - [`Pool::terminate`] (and dropping a pool) kills the workers and fails
//!   every unfinished result with [`ErrorKind::Terminated`].
//!
//! Every blocking call has a timeout form (`get_timeout`, `next_timeout`,
//! `join_timeout`, `result_timeout`).
//!
//! # Platform support
//!
//! Unix (Linux first), like mp-process.
#![forbid(unsafe_code)]
// Lifting `forbid(unsafe_code)` needs a measured reason: workers are started
// through mp-process, which owns every unsafe call.

mod block;
mod chunk;
mod enc;
mod engine;
mod error;
mod executor;
mod front;
mod imap;
mod limits;
mod pool;
#[doc(hidden)] // the hook for mp-mpi's pool, not user API
pub mod remote;
mod result;
mod thread;
mod wire;
mod worker;

pub use engine::WorkerStats;
pub use error::{Error, ErrorKind};
pub use executor::{
    AsCompleted, ExecutorBuilder, ExecutorMap, Future, ProcessPoolExecutor, ReturnWhen,
    ThreadPoolExecutor, as_completed, wait,
};
pub use front::TaskPool;
pub use imap::ImapStream;
pub use limits::{Limits, hard_time_left, soft_limit_passed, time_left};
pub use pool::{Pool, PoolBuilder};
pub use result::{AsyncResult, ImapIter};
#[doc(hidden)]
pub mod __private {
    //! What `delegate_task_pool!` names when it expands in other crates.
    pub use serde;
}
pub use thread::ThreadPool;

#[cfg(test)]
mod tests;
