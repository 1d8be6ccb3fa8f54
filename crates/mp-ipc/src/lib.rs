//! Communication between processes: `Pipe` and `Connection`, `Queue`,
//! `SimpleQueue` and `JoinableQueue`, `Listener` and `Client`.
//!
//! ```
//! use mp_ipc::{Connection, Queue, pipe};
//! use mp_process::Process;
//!
//! fn square_all((jobs, results): (Queue<Option<u64>>, Queue<u64>)) {
//!     while let Some(x) = jobs.get().unwrap() {
//!         results.put(x * x).unwrap();
//!     }
//! }
//!
//! fn answer(mut conn: Connection) {
//!     let question: String = conn.recv().unwrap();
//!     conn.send(&format!("{question}? 42")).unwrap();
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     mp_process::init();
//!
//!     // A queue for many processes: two workers, one result queue.
//!     let jobs: Queue<Option<u64>> = Queue::new()?;
//!     let results: Queue<u64> = Queue::new()?;
//!     let mut workers = Vec::new();
//!     for _ in 0..2 {
//!         let mut p = Process::new(square_all, (jobs.clone(), results.clone()));
//!         p.start()?;
//!         workers.push(p);
//!     }
//!     for x in 1..=10 {
//!         jobs.put(Some(x))?;
//!     }
//!     let total: u64 = (0..10).map(|_| results.get().unwrap()).sum();
//!     for _ in &workers {
//!         jobs.put(None)?;
//!     }
//!     for mut w in workers {
//!         w.join()?;
//!     }
//!     assert_eq!(total, 385);
//!
//!     // A pipe for two.
//!     let (mut mine, theirs) = pipe(true)?;
//!     let mut p = Process::new(answer, theirs);
//!     p.start()?;
//!     mine.send("the question")?;
//!     assert_eq!(mine.recv::<String>()?, "the question? 42");
//!     p.join()?;
//!     Ok(())
//! }
//! ```
//!
//! # Async
//!
//! [`Connection::recv_async`], `recv_bytes_async`, `send_async` and
//! `send_bytes_async`, and the queues' `get_async` and `put_async`, are
//! the async forms, for any executor: they never block the polling
//! thread, woken by mp's reactor (one thread per process on the sockets,
//! one on the queues' futex words). Each is cancel-safe, and says so:
//! a dropped receive or get has taken nothing, a dropped send has sent a
//! whole message or none.
//!
//! # What to use
//!
//! - [`pipe`] gives two [`Connection`]s: `send`/`recv` of serde values,
//!   `send_bytes`/`recv_bytes`/`recv_bytes_into`, `poll` with a timeout.
//!   Two ends, no lock: the fastest way between two processes. [`wait`]
//!   waits on several connections at once.
//! - [`Queue`] for many producers and many consumers, optionally bounded;
//!   [`SimpleQueue`]; [`JoinableQueue`] with `task_done` and `join`.
//! - [`Listener`] and [`Client`]: connections by address (Unix socket path,
//!   abstract name, TCP), with CPython's framing and HMAC authentication, so
//!   that Python's `multiprocessing.connection.Client`/`Listener` can talk
//!   to them with `send_bytes`/`recv_bytes`.
//!
//! Every handle passes to child processes as a process argument under every
//! start method, and every blocking call has a timeout form.
//!
//! # Differences from CPython
//!
//! - `Queue::put` serializes the value at the call (CPython does it later,
//!   in a feeder thread, so a change made after `put` may reach the reader).
//! - Items put on a queue wait in shared memory or in the kernel, not in the
//!   producer: joining a producer that exits with items still queued never
//!   deadlocks, and no item is lost (CPython's "joining processes that use queues" caveat).
//! - Queues can be passed to any process, pool workers included, as
//!   arguments.
//! - `send`/`recv` carry serde values (postcard), not pickles: only the
//!   bytes methods (`send_bytes`/`recv_bytes`/`recv_bytes_into`) are
//!   wire-compatible with Python. Python's `recv()` unpickles, and
//!   unpickling can run code: never call it on data from an untrusted
//!   peer. A message longer than the receiver's limit
//!   ([`DEFAULT_MAX_MESSAGE_SIZE`], 1 GiB) closes the connection.
//! - A keyed [`Listener`] runs handshakes in the background, a bounded
//!   number at once, each within one deadline ([`ListenerConfig`]); a peer
//!   that fails its handshake is dropped and never returned by `accept`
//!   (CPython's `accept` raises `AuthenticationError`).
//! - Under fork, a child inherits every descriptor of its parent, the other
//!   end of a pipe included: a reader sees end of stream only once every
//!   copy of the writing end is closed. Send a final message rather than
//!   rely on end of stream when children are forked.
#![forbid(unsafe_code)]
// Lifting `forbid(unsafe_code)` needs a measured reason: a transport that
// cannot be built on mp-process and mp-shm's safe interfaces. rustix's safe
// socket calls cover what std lacks.
#![doc(test(attr(deny(warnings))))]

mod auth;
mod connection;
mod error;
mod listener;
mod queue;
mod sock;

pub use connection::{Connection, DEFAULT_MAX_MESSAGE_SIZE, Waitable, pipe, wait};
pub use error::{Error, GetError, PutError, TaskDoneError, Timeout};
pub use listener::{
    Address, Client, DEFAULT_MAX_HANDSHAKES, HANDSHAKE_TIMEOUT, Listener, ListenerConfig,
};
pub use queue::{INLINE_LIMIT_MAX, INLINE_LIMIT_MIN, JoinableQueue, Queue, SimpleQueue};
