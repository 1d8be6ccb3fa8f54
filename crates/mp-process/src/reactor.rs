//! The wake-up source of mp's async forms: one lazily started reactor per
//! process, so that mp's futures run on any executor (tokio, smol,
//! async-std, a hand-written `block_on`) without a runtime's glue.
//!
//! Two kinds of readiness, two threads, each started on first use:
//!
//! - descriptors ([`FdWaiter`]): one thread in `epoll_wait` on every
//!   registered descriptor (a pidfd for a join, a connection's socket),
//!   each registration one-shot, so a descriptor that stays ready wakes
//!   once per registration, not in a loop;
//! - futex words in shared memory ([`FutexWaiter`]): one thread in
//!   `futex_waitv` (Linux 5.16) on every registered word at once, plus a
//!   private word of its own that registrations bump so that it rebuilds
//!   its set.
//!
//! Either thread, when a source is ready, takes the wakers registered on it
//! and wakes them; a future then polls its operation's non-blocking form
//! again and registers again if it still cannot finish. A thread blocks
//! per reactor, never per pending future.
//!
//! After a fork the child has no reactor threads (only the forking thread
//! survives): each reactor is keyed by the pid that made it, and the first
//! use in the child starts the child's own (the parent's is left, never
//! freed, in the child's copy of memory).
//!
//! This module is what mp-shm and mp-ipc build their futures on; it is not
//! meant as a general-purpose reactor.

mod fd;
mod futex;

pub use fd::{FdWaiter, Interest};
pub use futex::FutexWaiter;

/// This process's pid, read from the kernel each time (a reactor must know
/// whether it was made before a fork).
fn pid() -> u32 {
    std::process::id()
}
