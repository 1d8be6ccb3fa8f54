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
//! - [`Value`] and [`Array`]: typed plain data ([`Plain`]) in shared memory
//!   with a lock; [`RawValue`] and [`RawArray`] without.
//! - [`SharedMemory`]: a block of bytes, anonymous or named; nothing is ever
//!   left in `/dev/shm`.
//! - Process-shared [`Lock`], [`RLock`], [`Condition`], [`Event`],
//!   [`Semaphore`], [`BoundedSemaphore`] and [`Barrier`]; a lock whose owner
//!   dies is reported ([`OwnerDied`]) to the next acquirer, never a hang.
//! - Shared atomics: [`shm::AtomicU64`], [`shm::AtomicI64`] and friends.
//! - The whole crate: [`shm`] (`mp-shm`).
//!
//! # Queues and pipes
//!
//! - [`pipe`]: two [`Connection`]s sending serde values or raw bytes, with
//!   `poll`, timeouts, and end of stream after the peer closed or died.
//! - [`Queue`], [`SimpleQueue`], [`JoinableQueue`]: many producers and
//!   consumers, optionally bounded; items wait in the kernel, so a producer
//!   that exits loses none and is never waited for.
//! - [`ipc::Listener`], [`ipc::Client`] and [`ipc::wait`]: connections by
//!   address (Unix, abstract, TCP) with CPython's framing and HMAC
//!   authentication, wire-compatible with `multiprocessing.connection`.
//! - The whole crate: [`ipc`] (`mp-ipc`).
//!
//! # Pools and executors
//!
//! - [`Pool`]: `apply_async`, `map`, `imap`, `imap_unordered`, `starmap`,
//!   with callbacks, chunking, an initializer and `maxtasksperchild`. A
//!   worker that dies fails its task with the exit code or signal and is
//!   replaced: no hangs.
//! - [`ProcessPoolExecutor`]: `submit` gives a [`Future`]; `map`,
//!   `shutdown`, [`pool::wait`] and [`pool::as_completed`].
//! - [`ThreadPool`]: the same API on threads; [`TaskPool`] lets code take
//!   either kind.
//! - [`ThreadPoolExecutor`]: the executor API on threads, with the same
//!   [`Future`]s.
//! - For untrusted work: per-task time limits ([`pool::Limits`], a soft
//!   one a task watches with [`pool::time_left`]), per-worker memory
//!   limits, a restart limit and [`Pool::worker_stats`]; failures are
//!   [`ErrorKind::TimeLimit`], [`ErrorKind::MemoryLimit`] and
//!   [`ErrorKind::RestartLimit`].
//! - The whole crate: [`pool`] (`mp-pool`).
//!
//! # Managers
//!
//! - [`Manager`]: a server process holding shared values, locks,
//!   conditions, events, semaphores, barriers, queues, dicts, lists and
//!   namespaces; its proxies work from any process, and only data crosses
//!   the wire.
//! - [`manager::Server`] and [`manager::connect`]: the same objects served
//!   to other programs and machines over TCP, with an authentication key.
//! - The whole crate: [`manager`] (`mp-manager`).
//!
//! # Many machines (MPI)
//!
//! - `mpi::MpiPool` (with the `mpi` feature): the pool API over the ranks
//!   of an MPI job, on one machine or many; it implements [`TaskPool`].
//!   `mpi::SharedCounter` is a counter every rank shares. The whole crate:
//!   `mpi` (`mp-mpi`).
//!
//! # Async
//!
//! Every call that waits has an async form that never blocks the thread
//! polling it, on any runtime (tokio, smol, async-std) or none, with no
//! feature to turn on: [`AsyncResult`] and [`Future`] are
//! `std::future::Future`s, [`ImapIter::into_stream`] gives a
//! `futures_core::Stream`, and [`Process::join_async`],
//! [`Connection::recv_async`] and `send_async`, [`Queue::get_async`] and
//! `put_async`, [`Event::wait_async`], [`Lock::acquire_async`] and
//! [`Semaphore::acquire_async`] are `async fn`s. Each says what it keeps
//! when it is dropped before it completes (nothing is lost); the guide's
//! chapter on async has the table.
//!
//! ```
//! use mp::{Pool, Process, Queue};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn produce(q: Queue<u64>) {
//!     for i in 0..10 {
//!         q.put(i).unwrap();
//!     }
//! }
//!
//! fn main() -> Result<(), mp::Error> {
//!     mp::init();
//!     let rt = tokio::runtime::Builder::new_current_thread().build()?;
//!     rt.block_on(async {
//!         let pool = Pool::new(2)?;
//!         assert_eq!(pool.apply_async(square, 7)?.await?, 49);
//!
//!         let q: Queue<u64> = Queue::new()?;
//!         let mut child = Process::new(produce, q.clone());
//!         child.start()?;
//!         let mut sum = 0;
//!         for _ in 0..10 {
//!             sum += q.get_async().await?;
//!         }
//!         child.join_async().await?;
//!         assert_eq!(sum, 45);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! # Errors
//!
//! Each part returns its own precise error type; all of them convert into
//! [`Error`] with `?`, which sorts them into one [`ErrorKind`] and keeps the
//! part's error inside ([`Error::downcast_ref`]).
//!
//! Each part is its own crate, so a program that needs only one depends on
//! that crate alone.
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]
// The facade holds re-exports and docs only; it never needs unsafe code.

#[doc(inline)]
pub use mp_process as process;

mod error;

pub use error::{Error, ErrorKind};

#[doc(inline)]
pub use mp_process::{
    ActiveChild, CodecError, Context, CurrentProcess, ExitStatus, ParentProcess, Process,
    SelfDescribing, StartMethod, active_children, cpu_count, current_process, force_start_method,
    get_all_start_methods, get_context, get_start_method, init, parent_process, set_start_method,
    spawn,
};

#[doc(inline)]
pub use mp_shm as shm;

#[doc(inline)]
pub use mp_shm::{
    Array, Barrier, BoundedSemaphore, Condition, Event, Lock, OwnerDied, Plain, RLock, RawArray,
    RawValue, Semaphore, SharedMemory, Value,
};

#[doc(inline)]
pub use mp_ipc as ipc;

#[doc(inline)]
pub use mp_ipc::{Connection, JoinableQueue, Queue, SimpleQueue, pipe};

#[doc(inline)]
pub use mp_pool as pool;

#[doc(inline)]
pub use mp_pool::{
    AsyncResult, Future, ImapIter, Pool, PoolBuilder, ProcessPoolExecutor, TaskPool, ThreadPool,
    ThreadPoolExecutor,
};

#[doc(inline)]
pub use mp_manager as manager;

#[doc(inline)]
pub use mp_manager::Manager;

#[cfg(feature = "mpi")]
#[doc(inline)]
pub use mp_mpi as mpi;
