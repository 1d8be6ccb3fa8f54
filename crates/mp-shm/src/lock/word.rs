//! The lock word: a 32-bit futex holding the owner's pid and a waiters
//! bit. The protocol is described in `README.md` next to this file.
//!
//! The protocol is written against [`Futex`], so that the same code runs on
//! a word in shared memory (std's atomics and the kernel's futex) and,
//! under `cfg(mp_loom)`, on loom's model of them (`loom.rs`), which checks
//! every interleaving of a few threads.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::sys::{self, Wake};

/// What the lock protocol needs of its word.
pub(crate) trait Futex {
    fn load(&self, order: Ordering) -> u32;
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    fn swap(&self, value: u32, order: Ordering) -> u32;
    /// Sleeps while the word is `expected`, for at most `timeout`.
    fn wait(&self, expected: u32, timeout: Option<Duration>) -> Wake;
    /// Wakes one sleeper, if any.
    fn wake_one(&self);
    /// Whether process `pid` has ended (false when unsure).
    fn ended(&self, pid: u32) -> bool;
}

impl Futex for AtomicU32 {
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }

    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        AtomicU32::compare_exchange(self, current, new, success, failure)
    }

    fn swap(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::swap(self, value, order)
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) -> Wake {
        sys::futex_wait(self, expected, timeout)
    }

    fn wake_one(&self) {
        sys::futex_wake(self, 1);
    }

    fn ended(&self, pid: u32) -> bool {
        sys::process_ended(pid)
    }
}

/// The owner's pid: Linux pids are below 2^22 (`PID_MAX_LIMIT`).
pub(crate) const PID_MASK: u32 = 0x3fff_ffff;
/// Some process may be asleep in `FUTEX_WAIT` on the word.
pub(crate) const WAITERS: u32 = 0x8000_0000;

/// How long a waiter sleeps before it checks whether the owner is alive.
/// Bounds how late a dead owner is noticed; each check costs a pidfd_open.
const LIVENESS_SLICE: Duration = Duration::from_millis(100);

/// How long a waiter stays away from a lock that was released and taken
/// again while it went to sleep (the timer's slack makes it about 70 us
/// here). Two processes incrementing one locked counter on two CPUs kept
/// the waiters bit set between them and made 50,000 to 97,000 futex calls
/// in a `value_lock_counter_sharedctypes` run, at 19-25M increments/s; with
/// the waiter away they make about 100, at 72-83M. A spin instead made the
/// lock change hands on nearly every increment: 10-13M.
const BACKOFF: Duration = Duration::from_micros(20);

/// How an acquire ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lock is ours.
    Locked,
    /// The lock is ours; its owner, this pid, had died holding it.
    OwnerDied(u32),
    /// Not acquired: held by a live owner until the deadline.
    TimedOut,
}

/// One attempt, no waiting.
pub(crate) fn try_lock<W: Futex + ?Sized>(word: &W, me: u32) -> Acquired {
    match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Acquired::Locked,
        Err(v) => match take_if_dead(word, v, me) {
            Some(pid) => Acquired::OwnerDied(pid),
            None => Acquired::TimedOut,
        },
    }
}

/// Acquires the word for `me` (a pid), waiting until `deadline` (None:
/// forever). A deadline in the past makes this one attempt.
pub(crate) fn lock<W: Futex + ?Sized>(word: &W, me: u32, deadline: Option<Instant>) -> Acquired {
    // Fast path: uncontended.
    if word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return Acquired::Locked;
    }
    lock_slow(word, me, deadline)
}

#[cold]
fn lock_slow<W: Futex + ?Sized>(word: &W, me: u32, deadline: Option<Instant>) -> Acquired {
    let mut checked_once = false;
    loop {
        let v = word.load(Ordering::Relaxed);
        if v == 0 {
            // We may be one of several waiters: keep the bit set so that our
            // unlock wakes the next (a spurious wake at worst).
            if word
                .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Acquired::Locked;
            }
            continue;
        }
        if v & WAITERS == 0
            && word
                .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        let slice = match deadline {
            None => LIVENESS_SLICE,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    // One last look: a dead owner is worth reporting even at
                    // the deadline (try_lock semantics for a zero timeout).
                    if !checked_once {
                        if let Some(pid) = take_if_dead(word, word.load(Ordering::Relaxed), me) {
                            return Acquired::OwnerDied(pid);
                        }
                    }
                    return Acquired::TimedOut;
                }
                (d - now).min(LIVENESS_SLICE)
            }
        };
        let woke = word.wait(v | WAITERS, Some(slice));
        if woke == Wake::Changed && word.load(Ordering::Relaxed) != 0 {
            // Released and taken again before we could sleep: the lock is
            // changing hands faster than a futex round trip, and trying
            // again at once only makes the owner pay a wake-up for every
            // release. Stay away a moment and let it run alone.
            std::thread::sleep(BACKOFF.min(slice));
        }
        if woke == Wake::TimedOut {
            checked_once = true;
            if let Some(pid) = take_if_dead(word, word.load(Ordering::Relaxed), me) {
                return Acquired::OwnerDied(pid);
            }
        }
    }
}

/// If the word `v` names an owner that has ended, takes the lock for `me`
/// (keeping the waiters bit, since others may sleep) and returns the dead
/// pid. The compare-exchange on the exact value makes exactly one of
/// several waiters the recoverer.
pub(crate) fn take_if_dead<W: Futex + ?Sized>(word: &W, v: u32, me: u32) -> Option<u32> {
    let owner = v & PID_MASK;
    if owner == 0 || owner == me || !word.ended(owner) {
        return None;
    }
    word.compare_exchange(v, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| owner)
}

/// Releases the word; wakes one sleeper if any may sleep.
pub(crate) fn unlock<W: Futex + ?Sized>(word: &W) {
    if word.swap(0, Ordering::Release) & WAITERS != 0 {
        word.wake_one();
    }
}

/// Releases the word if it is held, by whoever: whether it was. The
/// compare-exchange keeps two releases of one acquisition from both
/// succeeding.
pub(crate) fn release<W: Futex + ?Sized>(word: &W) -> bool {
    let mut v = word.load(Ordering::Relaxed);
    loop {
        if v & PID_MASK == 0 {
            return false;
        }
        match word.compare_exchange(v, 0, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => {
                if v & WAITERS != 0 {
                    word.wake_one();
                }
                return true;
            }
            Err(now) => v = now,
        }
    }
}

/// The owner's pid, 0 when unlocked.
pub(crate) fn owner<W: Futex + ?Sized>(word: &W) -> u32 {
    word.load(Ordering::Relaxed) & PID_MASK
}

/// The deadline `timeout` from now; None when it does not fit an `Instant`
/// (which then means "forever").
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// How long a wait until `deadline` may still sleep: `Some(None)` for no
/// deadline, `Some(Some(left))` before it, `None` once it has passed.
pub(crate) fn time_left(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => {
            let now = Instant::now();
            (now < d).then(|| Some(d - now))
        }
    }
}
