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
//! - [`Manager::start`]'s server listens on a Unix socket in a fresh
//!   directory that only this user can enter (mode 0700, removed at
//!   shutdown), and refuses peers the kernel reports as another user
//!   (`SO_PEERCRED`). A [`Server`] you bind yourself can do the same
//!   ([`Server::same_user_only`]).
//! - Every connection authenticates with the manager's key (CPython's HMAC
//!   challenge, both ways) before it can send a request. A wrong key is an
//!   authentication error and the connection is closed. The default key is
//!   32 bytes from the OS random source.
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
//!   apply to what arrives through it. Over TCP the server never offers it.
//! - A proxy serializes with the server's address and key, so that a child
//!   process or a pool task can use it: do not serialize proxies to places
//!   the key must not reach.
//!
//! # What a client can cost the server
//!
//! - Connections and threads: one thread per connection, at most
//!   [`DEFAULT_MAX_CONNECTIONS`] connections at once
//!   ([`ManagerBuilder::max_connections`], [`Server::max_connections`]). A
//!   client beyond the cap gets [`Error::TooManyConnections`] at once, and
//!   the connections already served go on. Each process using a manager
//!   has one connection per thread that made calls, plus one for its
//!   references (below).
//! - Blocked operations: an operation waiting for a client that has gone
//!   (killed in `get`, `acquire`, `wait`) is noticed within 50 ms; it takes
//!   nothing (the item or unit goes to the next waiter, a barrier forgets
//!   the party, a notification goes to the next waiter), and its thread and
//!   descriptors are freed. An item or unit whose reply could not be
//!   written goes back (an item to the front of its queue).
//! - Memory: what its objects hold, each value once, and one request in
//!   flight per connection.
//!
//! # Lifetime of shared objects
//!
//! An object lives while a proxy of it does in some process, or while a
//! name refers to it ([`Server::register_value`] and the like), as in
//! CPython: each process counts its proxies of each object, and holds one
//! reference per object on the server through one connection of its own
//! (its *session*), taken when its first proxy of the object appears
//! (made, looked up, or received from another process) and dropped with
//! its last. A process that dies closes its session, and its references
//! go with it. [`ManagerClient::server_stats`] says how many objects the
//! server holds.
//!
//! A proxy in transit (serialized, not yet received) holds nothing: the
//! sender must keep its own proxy until the receiver has its copy, as when
//! passing proxies to a child process that the parent then joins.
//! A proxy a forked child inherits in memory (captured by a closure under
//! the fork method) is not counted in the child until cloned there: the
//! parent's proxy keeps the object, as it does for arguments, which travel
//! serialized and are counted where they arrive.
//!
//! # Locks and failures
//!
//! A lock held by a client that disconnects or dies is *released* by the
//! server (the next acquirer simply gets it). After the manager shuts down
//! or dies, every proxy call fails with [`Error::Connection`] at once (end
//! of stream, or refused); a call never waits longer than its own timeout
//! plus a margin while the server lives, and at most two minutes for calls
//! that do not wait by design.
//!
//! # The client's connections
//!
//! Every connection a process makes to a server is closed when the last of
//! its proxies and clients of that server is dropped, or when the
//! [`Manager`] shuts down (in every thread; one busy in a call is closed as
//! the call returns), and when a thread ends. [`connect`] checks a kept
//! connection before it uses it, so that a stopped server is reported as
//! refused and a new server at the same address is reached at once.

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
