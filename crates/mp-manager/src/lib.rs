//! A `Manager`: a server process that holds shared objects (values, locks,
//! conditions, events, semaphores, barriers, queues, dicts, lists,
//! namespaces) and proxies that reach them from any process, on this
//! machine or another. Python's `multiprocessing.managers`.
//!
//! ```
//! use mp_manager::Manager;
//! use mp_process::Process;
//!
//! fn work(args: (mp_manager::ValueProxy<i64>, mp_manager::LockProxy, i64)) {
//!     let (num, lock, delta) = args;
//!     for _ in 0..100 {
//!         let _held = lock.lock().unwrap();
//!         let v = num.get().unwrap();
//!         num.set(&(v + delta)).unwrap();
//!     }
//! }
//!
//! let manager = Manager::start()?;
//! let num = manager.value(0i64)?;
//! let lock = manager.lock()?;
//! let mut up = Process::new(work, (num.clone(), lock.clone(), 1));
//! let mut down = Process::new(work, (num.clone(), lock.clone(), -1));
//! up.start()?;
//! down.start()?;
//! up.join()?;
//! down.join()?;
//! assert_eq!(num.get()?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Should I use this crate?
//!
//! A manager is the slow, flexible way to share: every operation is a round
//! trip to the server. Use `mp-shm`'s `Value`, `Array` and locks for speed
//! on one machine; use a manager for dicts and lists, for objects shared
//! with other programs or machines, and where its one-server view is
//! simpler. The `mp` facade re-exports this crate.
//!
//! # Security model
//!
//! - Every connection authenticates with the manager's key (CPython's HMAC
//!   challenge, both ways) before it can send a request. A wrong key is an
//!   authentication error and the connection is closed.
//! - Only data crosses the wire: requests name an object and an operation
//!   from a fixed set, with values as serde bytes that the server stores
//!   without interpreting (it can add numbers). No request makes the server
//!   run code the client chose: unlike CPython's pickle-based manager, a
//!   client holding the key can read and change shared objects, nothing more.
//! - Requests are size-limited ([`DEFAULT_MAX_REQUEST`], 64 MiB); a
//!   malformed, truncated or oversized frame ends that connection only.
//! - On one machine, a connection's messages travel through a
//!   shared-memory block that the server offers on the authenticated
//!   connection and unlinks as soon as its client has attached: no other
//!   process can attach it afterwards, and the same size limits and checks
//!   apply to what arrives through it.
//! - A proxy serializes with the server's address and key, so that a child
//!   process or a pool task can use it: do not serialize proxies to places
//!   the key must not reach.
//!
//! # Locks and failures
//!
//! A lock held by a client that disconnects or dies is *released* by the
//! server (the next acquirer simply gets it). After the manager shuts down
//! or dies, every proxy call fails with [`Error::Connection`] at once (end
//! of stream); a call never waits longer than its own timeout plus a margin
//! while the server lives, and at most two minutes for calls that do not
//! wait by design.
//!
//! # Lifetime of shared objects
//!
//! An object lives on the server until the manager shuts down, however
//! many proxies of it remain: proxies travel to other processes by value,
//! and no process can know when the last one is gone without a reference
//! count kept across processes (CPython keeps one, with a round trip per
//! proxy made or dropped). A program that makes many short-lived objects
//! should reuse them, or use a manager per batch of work.

#![forbid(unsafe_code)]
// Lifting `forbid(unsafe_code)` needs a measured reason: the server and the
// proxies are built on mp-ipc and mp-process, which own every unsafe call.

mod client;
mod error;
mod fast;
mod manager;
mod objects;
mod protocol;
mod proxy;
mod server;

pub use error::Error;
pub use manager::{Manager, ManagerBuilder, ManagerClient, ServerStats, connect};
pub use proxy::{
    BarrierProxy, ConditionProxy, DictProxy, EventProxy, ListProxy, LockGuard, LockProxy,
    NamespaceProxy, Number, QueueProxy, SemaphoreProxy, ValueProxy,
};
pub use server::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUEST, Server, ServerHandle};
