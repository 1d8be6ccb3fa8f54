//! The async forms of `Event::wait`, `Lock::acquire` and the semaphores'
//! `acquire`: futures that never block the thread that polls them.
//!
//! Each tries the non-blocking form first; when it would block it counts
//! itself among the primitive's sleepers (or sets the lock's waiters bit),
//! so that the waking side issues its `FUTEX_WAKE` as for a blocked thread,
//! then tries once more and registers the futex word, with the value it
//! saw, with mp's futex reactor (`mp_process::reactor::FutexWaiter`). A
//! change between the look and the registration makes the reactor wake it
//! at once: no wake-up is lost. Lock waiters are also woken every 100 ms to
//! look for a dead owner, so `OwnerDied` is reported as the blocking forms
//! report it.
//!
//! Cancellation: these futures take nothing until they complete. A future
//! dropped after a wake that was meant for one waiter (a semaphore
//! release, a lock unlock) passes the wake on, so that no other waiter is
//! left asleep by it.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::Poll;

use mp_process::reactor::FutexWaiter;

use crate::error::OwnerDied;
use crate::event::Event;
use crate::lock::{Lock, word};
use crate::semaphore::{BoundedSemaphore, Sem, Semaphore};
use crate::sys;

/// Counted among a primitive's sleepers while it lives.
struct Sleeper<'a> {
    sleepers: &'a AtomicU32,
}

impl<'a> Sleeper<'a> {
    fn new(sleepers: &'a AtomicU32) -> Sleeper<'a> {
        // SeqCst: the waking side changes the word, then reads the sleepers
        // (SeqCst); we raise the sleepers, then read the word.
        sleepers.fetch_add(1, Ordering::SeqCst);
        Sleeper { sleepers }
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A reactor registration failed (out of memory or threads): the future
/// cannot be woken, so it falls back to a bounded blocking wait rather than
/// hang or spin. Never expected in practice.
fn fallback_wait(word: &AtomicU32, expected: u32) {
    sys::futex_wait(word, expected, Some(std::time::Duration::from_millis(1)));
}

async fn acquire_sem(sem: &Sem) {
    if sem.try_acquire() {
        return;
    }
    let value = sem.value();
    let sleeper = Sleeper::new(sem.sleepers());
    // Passes a release's wake on if the future is dropped without taking a
    // unit while units are there (dropped before `sleeper`, so the count
    // still includes us).
    struct PassOn<'a>(&'a AtomicU32, &'a AtomicU32, &'a AtomicBool);
    impl Drop for PassOn<'_> {
        fn drop(&mut self) {
            if !self.2.load(Ordering::Relaxed)
                && self.0.load(Ordering::SeqCst) > 0
                && self.1.load(Ordering::SeqCst) > 1
            {
                sys::futex_wake(self.0, 1);
            }
        }
    }
    let done = AtomicBool::new(false);
    let _pass = PassOn(value, sleeper.sleepers, &done);
    let mut waiter = FutexWaiter::new();
    poll_fn(|cx| {
        loop {
            if sem.try_acquire() {
                done.store(true, Ordering::Relaxed);
                return Poll::Ready(());
            }
            let v = value.load(Ordering::SeqCst);
            if v != 0 {
                continue; // raced with another taker: try again
            }
            if waiter.arm(value, 0, false, cx.waker()).is_err() {
                fallback_wait(value, 0);
                continue;
            }
            return Poll::Pending;
        }
    })
    .await
}

impl Semaphore {
    /// Takes a unit, waiting without blocking the thread: the async form
    /// of [`acquire`](Semaphore::acquire), for any executor. Cancel-safe:
    /// a dropped future has taken nothing (and passes on a release's
    /// wake-up it may have received).
    pub async fn acquire_async(&self) {
        acquire_sem(&self.sem).await
    }
}

impl BoundedSemaphore {
    /// Takes a unit, waiting without blocking the thread: the async form
    /// of [`acquire`](BoundedSemaphore::acquire). Cancel-safe as
    /// [`Semaphore::acquire_async`] is.
    pub async fn acquire_async(&self) {
        acquire_sem(&self.sem).await
    }
}

impl Event {
    /// Waits until the flag is set, without blocking the thread: the async
    /// form of [`wait`](Event::wait). Cancel-safe: waiting takes nothing.
    pub async fn wait_async(&self) {
        if self.is_set() {
            return;
        }
        let _sleeper = Sleeper::new(self.sleepers());
        let flag = self.flag();
        let mut waiter = FutexWaiter::new();
        poll_fn(|cx| {
            loop {
                if flag.load(Ordering::SeqCst) != 0 {
                    return Poll::Ready(());
                }
                if waiter.arm(flag, 0, false, cx.waker()).is_err() {
                    fallback_wait(flag, 0);
                    continue;
                }
                return Poll::Pending;
            }
        })
        .await
    }
}

impl Lock {
    /// Acquires the lock without blocking the thread: the async form of
    /// [`acquire`](Lock::acquire) (release it with
    /// [`release`](Lock::release), from any thread or process). A previous
    /// owner that died holding the lock is reported as
    /// [`OwnerDied`] within about 100 ms, the lock then held by the caller,
    /// as the blocking forms report it.
    ///
    /// Cancel-safe: a dropped future does not hold the lock (and passes on
    /// an unlock's wake-up it may have received).
    pub async fn acquire_async(&self) -> Result<(), OwnerDied<()>> {
        let w = self.word();
        let me = sys::pid();
        if w.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        // Passes an unlock's wake on if the future is dropped without the
        // lock while it is free and others wait.
        struct PassOn<'a>(&'a AtomicU32, &'a AtomicBool);
        impl Drop for PassOn<'_> {
            fn drop(&mut self) {
                let v = self.0.load(Ordering::Relaxed);
                if !self.1.load(Ordering::Relaxed)
                    && v & word::PID_MASK == 0
                    && v & word::WAITERS != 0
                {
                    sys::futex_wake(self.0, 1);
                }
            }
        }
        let done = AtomicBool::new(false);
        let _pass = PassOn(w, &done);
        let mut waiter = FutexWaiter::new();
        poll_fn(|cx| {
            loop {
                let v = w.load(Ordering::Relaxed);
                if v == 0 {
                    // Keep the waiters bit: others may sleep on the word still.
                    if w.compare_exchange(
                        0,
                        me | word::WAITERS,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                    {
                        done.store(true, Ordering::Relaxed);
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                if let Some(pid) = word::take_if_dead(w, v, me) {
                    done.store(true, Ordering::Relaxed);
                    return Poll::Ready(Err(OwnerDied::new((), pid)));
                }
                if v & word::WAITERS == 0
                    && w.compare_exchange(
                        v,
                        v | word::WAITERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    continue;
                }
                // `recheck`: woken every 100 ms anyway, to look for a dead owner.
                if waiter.arm(w, v | word::WAITERS, true, cx.waker()).is_err() {
                    fallback_wait(w, v | word::WAITERS);
                    continue;
                }
                return Poll::Pending;
            }
        })
        .await
    }
}
