//! The synchronisation proxies: locks, conditions, events, semaphores,
//! barriers.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

// The handle, the reply helpers and the protocol types: every proxy here
// is built on them.
use super::*;

/// A lock held on the server: Python's `manager.Lock()` (or `RLock()`).
///
/// Ownership is per connection, that is per thread of a client process.
/// A lock held by a client that disconnects or dies is released by the
/// server, so nobody waits for it forever.
pub struct LockProxy {
    h: Handle,
}
proxy_common!(LockProxy);

/// Holds a [`LockProxy`] (or a [`ConditionProxy`]'s lock) until dropped.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    h: &'a Handle,
    released: bool,
}

impl LockGuard<'_> {
    /// Releases now, reporting a failure (`drop` cannot).
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        done(self.h.quick(Op::Release)?)
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            // Waits for the reply, as `set` does: a process that drops a
            // guard and exits must leave the lock free for its joiner's
            // non-blocking acquire. A failure cannot be reported here; the
            // next call on this thread reports a lost connection anyway.
            let _ = self.h.quick(Op::Release);
        }
    }
}

fn acquire(h: &Handle, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
    let try_once = || {
        boolean(h.quick(Op::Acquire {
            blocking: false,
            timeout: None,
        })?)
    };
    if !blocking {
        return try_once();
    }
    // The server never takes the lock on behalf of a waiting client: it
    // says when the lock is free, and the client, running again, tries.
    // Otherwise the lock would be held by a process still asleep in its
    // wake-up while the others wait: on the article's counter that turned
    // every hand-over into two sleeps.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        if try_once()? {
            return Ok(true);
        }
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(false),
            },
        };
        if !boolean(h.op(Op::AwaitFree(micros(left)), reply_wait(left))?)? {
            return Ok(false);
        }
    }
}

impl LockProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        LockProxy { h }
    }

    /// Waits for the lock and returns a guard that releases it.
    pub fn lock(&self) -> Result<LockGuard<'_>, Error> {
        acquire(&self.h, true, None)?;
        Ok(LockGuard {
            h: &self.h,
            released: false,
        })
    }

    /// Like [`lock`](LockProxy::lock), giving up after `timeout`
    /// (`Ok(None)`).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>, Error> {
        Ok(acquire(&self.h, true, Some(timeout))?.then(|| LockGuard {
            h: &self.h,
            released: false,
        }))
    }

    /// Takes the lock if it is free (`Ok(None)` otherwise).
    pub fn try_lock(&self) -> Result<Option<LockGuard<'_>>, Error> {
        Ok(acquire(&self.h, false, None)?.then(|| LockGuard {
            h: &self.h,
            released: false,
        }))
    }

    /// Python's `acquire(blocking, timeout)`: whether the lock was taken.
    /// Pair it with [`release`](LockProxy::release).
    pub fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        acquire(&self.h, blocking, timeout)
    }

    /// Python's `release()`: an unlocked lock, or an rlock this thread
    /// does not own, is an [`Error::Misuse`].
    pub fn release(&self) -> Result<(), Error> {
        done(self.h.quick(Op::Release)?)
    }
}

/// A condition variable on the server: Python's `manager.Condition()`.
pub struct ConditionProxy {
    h: Handle,
}
proxy_common!(ConditionProxy);

impl ConditionProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        ConditionProxy { h }
    }

    /// Takes the condition's lock; the guard releases it.
    pub fn lock(&self) -> Result<LockGuard<'_>, Error> {
        acquire(&self.h, true, None)?;
        Ok(LockGuard {
            h: &self.h,
            released: false,
        })
    }

    /// Python's `acquire(blocking, timeout)`.
    pub fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        acquire(&self.h, blocking, timeout)
    }

    /// Python's `release()`.
    pub fn release(&self) -> Result<(), Error> {
        done(self.h.quick(Op::Release)?)
    }

    /// Releases the lock, waits for a notification (or the timeout), takes
    /// the lock again; whether it was notified. Calling it without holding
    /// the lock is an [`Error::Misuse`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        boolean(self.h.op(Op::Wait(micros(timeout)), reply_wait(timeout))?)
    }

    /// Waits until `predicate` holds or the timeout passes; the
    /// predicate's last value.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if predicate() {
                return Ok(true);
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => Some(l),
                    _ => return Ok(predicate()),
                },
            };
            self.wait(left)?;
        }
    }

    /// Wakes up to `n` waiters (needs the lock).
    pub fn notify(&self, n: usize) -> Result<(), Error> {
        done(self.h.quick(Op::Notify(n as u64))?)
    }

    /// Wakes every waiter (needs the lock).
    pub fn notify_all(&self) -> Result<(), Error> {
        done(self.h.quick(Op::NotifyAll)?)
    }
}

/// An event on the server: Python's `manager.Event()`.
pub struct EventProxy {
    h: Handle,
}
proxy_common!(EventProxy);

impl EventProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        EventProxy { h }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) -> Result<(), Error> {
        done(self.h.quick(Op::SetFlag)?)
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<(), Error> {
        done(self.h.quick(Op::ClearFlag)?)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool, Error> {
        boolean(self.h.quick(Op::IsSet)?)
    }

    /// Waits until the flag is set or `timeout` passes; whether it is set.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        boolean(
            self.h
                .op(Op::WaitFlag(micros(timeout)), reply_wait(timeout))?,
        )
    }
}

/// A semaphore on the server: Python's `manager.Semaphore(n)` and
/// `BoundedSemaphore(n)`.
pub struct SemaphoreProxy {
    h: Handle,
}
proxy_common!(SemaphoreProxy);

impl SemaphoreProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        SemaphoreProxy { h }
    }

    /// Python's `acquire(blocking, timeout)`: whether a unit was taken.
    pub fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        let wait = if blocking {
            reply_wait(timeout)
        } else {
            Some(call_timeout())
        };
        boolean(self.h.op(
            Op::SemAcquire {
                blocking,
                timeout: micros(timeout),
            },
            wait,
        )?)
    }

    /// Gives a unit back; over the bound of a bounded semaphore it is an
    /// [`Error::Misuse`].
    pub fn release(&self) -> Result<(), Error> {
        done(self.h.quick(Op::SemRelease)?)
    }

    /// The units available now.
    pub fn value(&self) -> Result<usize, Error> {
        count(self.h.quick(Op::SemValue)?)
    }
}

/// A barrier on the server: Python's `manager.Barrier(n)`, without an
/// action (no code crosses the wire).
pub struct BarrierProxy {
    h: Handle,
}
proxy_common!(BarrierProxy);

impl BarrierProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        BarrierProxy { h }
    }

    /// Waits for all parties; returns this party's arrival index. A timeout
    /// breaks the barrier ([`Error::BrokenBarrier`] for every waiter).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<usize, Error> {
        count(
            self.h
                .op(Op::BarrierWait(micros(timeout)), reply_wait(timeout))?,
        )
    }

    /// Breaks the barrier: waiters now and later get [`Error::BrokenBarrier`].
    pub fn abort(&self) -> Result<(), Error> {
        done(self.h.quick(Op::BarrierAbort)?)
    }

    /// Returns the barrier to its empty, unbroken state.
    pub fn reset(&self) -> Result<(), Error> {
        done(self.h.quick(Op::BarrierReset)?)
    }

    /// (parties, waiting now, broken).
    pub fn state(&self) -> Result<(usize, usize, bool), Error> {
        match self.h.quick(Op::BarrierState)? {
            Response::Barrier {
                parties,
                waiting,
                broken,
            } => Ok((parties as usize, waiting as usize, broken)),
            r => Err(unexpected(r)),
        }
    }
}

/// The id of the lock behind a proxy, for a condition over it.
pub(crate) fn lock_id(lock: &LockProxy) -> u64 {
    lock.h.id()
}
