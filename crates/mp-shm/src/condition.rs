//! `Condition`: a condition variable with its lock, shared by processes.
//!
//! Wake-ups are counted, so `notify(n)` wakes exactly `n` waiters as in
//! Python: `waiting` counts waiters not yet chosen, `tokens` counts
//! wake-ups granted and not yet taken, both changed under the lock except
//! a waiter's token grab; `seq` is the futex word, bumped by each notify.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, LockResult, OwnerDied, TryLockError, TryLockResult};
use crate::lock::{Lock, LockGuard, word};
use crate::region::{Kind, Region, Shape};
use crate::sys;

/// Payload: seq (0), waiting (4), tokens (8).
const SHAPE: Shape = Shape {
    kind: Kind::Condition,
    payload_len: 12,
    elem_size: 0,
    elem_align: 0,
    count: 0,
};

/// A condition variable shared by processes, with the [`Lock`] it uses:
/// Python's `multiprocessing.Condition`.
///
/// Waiting and notifying happen through the guard of
/// [`lock`](Condition::lock), so that both require holding the lock, which
/// Python checks at run time.
///
/// A waiter that dies while waiting may swallow one notification (the
/// count of waiters still includes it); waits with a timeout still return
/// by their deadline.
///
/// ```
/// use std::time::Duration;
/// use mp_shm::Condition;
///
/// let cond = Condition::new()?;
/// let mut g = cond.lock().expect("no owner died");
/// assert!(!g.wait_timeout(Duration::from_millis(10)).expect("no owner died"));
/// g.notify_all();
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: Lock,
    region: Region,
}

/// Holds a [`Condition`]'s lock; waits and notifies through it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    guard: LockGuard<'a>,
    cond: &'a Condition,
}

impl Condition {
    /// Creates a condition with a new lock.
    pub fn new() -> Result<Condition, Error> {
        Condition::with_lock(Lock::new()?)
    }

    /// Creates a condition that uses `lock`.
    pub fn with_lock(lock: Lock) -> Result<Condition, Error> {
        Ok(Condition {
            lock,
            region: Region::create(SHAPE)?,
        })
    }

    /// The condition's lock.
    pub fn get_lock(&self) -> &Lock {
        &self.lock
    }

    fn seq(&self) -> &AtomicU32 {
        // SAFETY: SHAPE's payload has three 4-byte words, accessed atomically.
        unsafe { self.region.atomic_u32(0) }
    }

    fn waiting(&self) -> &AtomicU32 {
        // SAFETY: as for `seq`.
        unsafe { self.region.atomic_u32(4) }
    }

    fn tokens(&self) -> &AtomicU32 {
        // SAFETY: as for `seq`.
        unsafe { self.region.atomic_u32(8) }
    }

    fn take_token(&self) -> bool {
        let mut t = self.tokens().load(Ordering::SeqCst);
        while t > 0 {
            match self
                .tokens()
                .compare_exchange(t, t - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(now) => t = now,
            }
        }
        false
    }

    /// Acquires the lock, waiting as long as it takes.
    pub fn lock(&self) -> LockResult<ConditionGuard<'_>> {
        match self.lock.lock() {
            Ok(guard) => Ok(ConditionGuard { guard, cond: self }),
            Err(e) => Err(e.map(|guard| ConditionGuard { guard, cond: self })),
        }
    }

    /// Acquires the lock, giving up after `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ConditionGuard<'_>> {
        self.wrap(self.lock.lock_timeout(timeout))
    }

    /// Acquires the lock if it is free now.
    pub fn try_lock(&self) -> TryLockResult<ConditionGuard<'_>> {
        self.wrap(self.lock.try_lock())
    }

    fn wrap<'a>(&'a self, r: TryLockResult<LockGuard<'a>>) -> TryLockResult<ConditionGuard<'a>> {
        match r {
            Ok(guard) => Ok(ConditionGuard { guard, cond: self }),
            Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
            Err(TryLockError::OwnerDied(e)) => Err(TryLockError::OwnerDied(
                e.map(|guard| ConditionGuard { guard, cond: self }),
            )),
        }
    }
}

impl ConditionGuard<'_> {
    /// Releases the lock, waits for a notification, and takes the lock
    /// back.
    pub fn wait(&mut self) -> LockResult<()> {
        self.wait_until(None).map(|_| ()).map_err(|e| e.map(|_| ()))
    }

    /// Like [`wait`](ConditionGuard::wait), giving up after `timeout`;
    /// returns whether it was notified (false no earlier than the timeout).
    pub fn wait_timeout(&mut self, timeout: Duration) -> LockResult<bool> {
        self.wait_until(word::deadline(timeout))
    }

    /// Waits until `pred` is true, checking it first and after each
    /// wake-up, for at most `timeout` (None: forever). Returns the
    /// predicate's last value, as Python's `wait_for` does.
    pub fn wait_for(
        &mut self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> LockResult<bool> {
        let deadline = timeout.and_then(word::deadline);
        let mut ok = pred();
        while !ok {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if let Err(e) = self.wait_until(deadline) {
                return Err(OwnerDied::new(pred(), e.pid()));
            }
            ok = pred();
        }
        Ok(ok)
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> LockResult<bool> {
        let cond = self.cond;
        cond.waiting().fetch_add(1, Ordering::SeqCst);
        let r = self.guard.unlocked(|| {
            loop {
                let s = cond.seq().load(Ordering::SeqCst);
                if cond.take_token() {
                    return true;
                }
                let Some(wait) = word::time_left(deadline) else {
                    return false;
                };
                sys::futex_wait(cond.seq(), s, wait);
            }
        });
        let (woken, died) = match r {
            Ok(w) => (w, None),
            Err(e) => (*e.get_ref(), Some(e.pid())),
        };
        // Under the lock again: a waiter that timed out either takes a
        // wake-up granted meanwhile or leaves the count of waiters, so no
        // residue stays behind (Python's test_notify checks that).
        let woken = woken || cond.take_token() || {
            cond.waiting().fetch_sub(1, Ordering::SeqCst);
            false
        };
        match died {
            None => Ok(woken),
            Some(pid) => Err(OwnerDied::new(woken, pid)),
        }
    }

    /// Wakes one waiter, if any.
    pub fn notify(&mut self) {
        self.notify_n(1);
    }

    /// Wakes `n` waiters (fewer if fewer wait).
    pub fn notify_n(&mut self, n: u32) {
        let cond = self.cond;
        let waiting = cond.waiting().load(Ordering::SeqCst);
        let k = waiting.min(n);
        if k == 0 {
            return;
        }
        cond.waiting().fetch_sub(k, Ordering::SeqCst);
        cond.tokens().fetch_add(k, Ordering::SeqCst);
        cond.seq().fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(cond.seq(), k);
    }

    /// Wakes every waiter.
    pub fn notify_all(&mut self) {
        self.notify_n(u32::MAX);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .field("waiting", &self.waiting().load(Ordering::Relaxed))
            .finish()
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.lock, &self.region).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Condition, D::Error> {
        let (lock, fd) = <(Lock, mp_process::SharedFd)>::deserialize(d)?;
        let region = Region::attach(fd.into_inner(), SHAPE).map_err(serde::de::Error::custom)?;
        Ok(Condition { lock, region })
    }
}
