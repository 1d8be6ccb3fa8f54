//! Shared memory between processes: `SharedMemory` blocks, `Value` and
//! `Array`, shared atomics, and process-shared locks that survive a dead owner.
//!
//! ```
//! use mp_process::Process;
//! use mp_shm::{AtomicI64, Lock, SharedMemory};
//! use std::sync::atomic::Ordering::SeqCst;
//!
//! fn add(args: (AtomicI64, Lock, i64)) {
//!     let (counter, lock, n) = args;
//!     for _ in 0..1000 {
//!         let _guard = lock.lock().expect("no owner died");
//!         counter.fetch_add(n, SeqCst);
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     mp_process::init();
//!     let counter = AtomicI64::new(0)?;
//!     let lock = Lock::new()?;
//!     let mut a = Process::new(add, (counter.clone(), lock.clone(), 1));
//!     let mut b = Process::new(add, (counter.clone(), lock.clone(), -1));
//!     a.start()?;
//!     b.start()?;
//!     a.join()?;
//!     b.join()?;
//!     assert_eq!(counter.load(SeqCst), 0);
//!
//!     let block = SharedMemory::new(4096)?;
//!     block.write_at(0, b"shared")?;
//!     Ok(())
//! }
//! ```
//!
//! # Should I use this crate?
//!
//! Use the `mp` facade, which re-exports this crate as `mp::shm` with the
//! rest of the project; depend on `mp-shm` alone only if shared memory and
//! locks are all you need.
//!
//! # What is here
//!
//! - [`SharedMemory`]: a block of bytes, anonymous or named.
//! - Shared atomics: [`AtomicU64`], [`AtomicI64`], [`AtomicU32`],
//!   [`AtomicI32`], [`AtomicUsize`].
//! - Locks and friends, with Python's semantics: [`Lock`], [`RLock`],
//!   [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`],
//!   [`Barrier`].
//! - Typed plain data ([`Plain`]): [`Value`] and [`Array`] with a lock,
//!   [`RawValue`] and [`RawArray`] without.
//!
//! Every handle is `Clone` (a clone is the same shared object), `Send`,
//! `Sync`, and serializable through `mp_process::SharedFd`: pass it in a
//! process's arguments and the child gets the same object, under every
//! start method. Every blocking call has a timeout form, which never returns
//! before its timeout. [`Event::wait_async`], [`Lock::acquire_async`] and
//! the semaphores' `acquire_async` are async forms for any executor, woken
//! by mp's futex reactor (one thread per process), cancel-safe.
//!
//! # Owner death
//!
//! A process that dies holding a [`Lock`] or an [`RLock`] does not
//! deadlock the others: the next acquirer gets the lock together with an
//! [`OwnerDied`] error, within about 100 ms of the death, and the lock works
//! normally afterwards. Semaphores have no owner, so a dead acquirer is not
//! detected; use timeouts there.
//!
//! # Platform support
//!
//! Linux: memfd, futexes and pidfds (Linux 5.3; older kernels fall back to
//! `/proc`). Owners are recognised by pid, so processes sharing a lock must
//! be in one pid namespace.
#![doc(test(attr(deny(warnings))))]

mod asyncs;
mod atomic;
mod barrier;
mod condition;
mod error;
mod event;
mod lock;
mod region;
mod semaphore;
mod shm;
mod sys;
mod value;

#[cfg(test)]
mod tests;

pub use atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};
pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard};
pub use error::{
    BrokenBarrierError, Error, ErrorKind, IndexError, LockResult, OwnerDied, ReleaseError,
    TryLockError, TryLockResult,
};
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};
pub use shm::SharedMemory;

/// The CPU the calling thread runs on, or None where the system does not
/// say. A hint for protocols that poll shared memory: a process waiting
/// for a peer that runs on its own CPU should give the CPU up rather than
/// poll, since the peer cannot run while it does. The thread may move to
/// another CPU at any time.
#[doc(hidden)] // for mp's own crates (the manager's and the pool's rings), not user API
pub fn current_cpu() -> Option<usize> {
    sys::current_cpu()
}

/// Sleeps while `word` holds `expected`, for at most `timeout` (None: no
/// limit); true when woken or the word differs, false on timeout. The word
/// may live in shared memory ([`SharedMemory::atomic_u32_at`]): sleepers
/// and wakers in different processes meet (a non-private futex). A wake
/// may be spurious: check the condition again.
#[doc(hidden)] // for mp's own crates (the manager's and the pool's rings), not user API
pub fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<std::time::Duration>,
) -> bool {
    sys::futex_wait(word, expected, timeout) != sys::Wake::TimedOut
}

/// Wakes up to `n` threads asleep in [`futex_wait`] on `word`, in any
/// process.
#[doc(hidden)] // for mp's own crates (the manager's and the pool's rings), not user API
pub fn futex_wake(word: &std::sync::atomic::AtomicU32, n: u32) {
    sys::futex_wake(word, n);
}
pub use value::{Array, ArrayGuard, Plain, RawArray, RawValue, Value, ValueGuard};
