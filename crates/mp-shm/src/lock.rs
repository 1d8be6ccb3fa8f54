//! `Lock` and `RLock`: process-shared mutual exclusion on a futex word,
//! robust against an owner that dies holding it.

pub(crate) mod word;

#[cfg(all(test, mp_loom))]
mod loom_model;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, LockResult, OwnerDied, ReleaseError, TryLockError, TryLockResult};
use crate::region::{self, Kind, Region, Shape};
use crate::sys;
use word::Acquired;

/// A lock shared by processes: Python's `multiprocessing.Lock`.
///
/// [`lock`](Lock::lock) blocks until the lock is free and returns a guard;
/// dropping the guard releases it. Clones, and copies passed to children
/// (under every start method), are the same lock.
///
/// **Owner death.** If a process dies holding the lock, the next acquirer
/// gets the lock with an [`OwnerDied`] error instead of waiting forever
/// (within about 100 ms of the death). The lock works normally afterwards.
///
/// A lock is not re-entrant: locking it twice from one thread waits for
/// ever (or until the timeout); use [`RLock`] for that.
///
/// ```
/// use mp_shm::Lock;
///
/// let lock = Lock::new()?;
/// {
///     let _guard = lock.lock().expect("no owner died");
///     assert!(lock.try_lock().is_err());
/// }
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    region: Region,
}

/// The lock word sits at offset 0 of the payload.
const LOCK_SHAPE: Shape = Shape {
    kind: Kind::Lock,
    payload_len: 4,
    elem_size: 0,
    elem_align: 0,
    count: 0,
};

/// Holds a [`Lock`]; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    word: &'a AtomicU32,
    // A guard is tied to the thread that took it, like std's MutexGuard.
    _not_send: PhantomData<*const ()>,
}

impl Lock {
    /// Creates an unlocked lock.
    pub fn new() -> Result<Lock, Error> {
        Ok(Lock {
            region: Region::create(LOCK_SHAPE)?,
        })
    }

    pub(crate) fn word(&self) -> &AtomicU32 {
        // SAFETY: LOCK_SHAPE's payload is one 4-byte word at offset 0, only
        // ever accessed atomically.
        unsafe { self.region.atomic_u32(0) }
    }

    /// Acquires the lock, waiting as long as it takes.
    ///
    /// `Err(OwnerDied)` still holds the lock: its previous owner died
    /// holding it. See the [type docs](Lock#owner-death).
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        // Without a deadline the word protocol never gives up, so the loop
        // runs once; it stands in for an `unreachable!` that could panic.
        loop {
            match self.acquire_until(None) {
                Ok(g) => return Ok(g),
                Err(TryLockError::OwnerDied(e)) => return Err(e),
                Err(TryLockError::WouldBlock) => continue,
            }
        }
    }

    /// Acquires the lock, giving up after `timeout` with
    /// [`TryLockError::WouldBlock`]. Never returns that error before the
    /// timeout has passed.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        self.acquire_until(word::deadline(timeout))
    }

    /// Acquires the lock and leaves it held, with no guard (Python's
    /// `acquire()`), until [`release`](Lock::release). Any thread or
    /// process may release it: a plain lock has no owning thread, as in
    /// Python. Prefer [`lock`](Lock::lock) when the release belongs to the
    /// same scope.
    ///
    /// `Err(OwnerDied)` holds the lock too: its previous owner died
    /// holding it.
    ///
    /// ```
    /// use mp_shm::Lock;
    ///
    /// let lock = Lock::new()?;
    /// lock.acquire().expect("no owner died");
    /// let other = lock.clone();
    /// std::thread::spawn(move || other.release().unwrap()).join().unwrap();
    /// assert!(!lock.is_locked());
    /// assert!(lock.release().is_err()); // released too many times
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<(), OwnerDied<()>> {
        self.lock()
            .map(LockGuard::keep)
            .map_err(|e| e.map(LockGuard::keep))
    }

    /// [`acquire`](Lock::acquire), giving up after `timeout`: `Ok(false)`,
    /// never before the timeout has passed.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, OwnerDied<()>> {
        match self.lock_timeout(timeout) {
            Ok(g) => {
                g.keep();
                Ok(true)
            }
            Err(TryLockError::OwnerDied(e)) => Err(e.map(LockGuard::keep)),
            Err(TryLockError::WouldBlock) => Ok(false),
        }
    }

    /// Releases the lock, whoever acquired it (Python's `release()`).
    /// Releasing a lock that is not held is an error, as CPython's
    /// `ValueError`. A guard of the acquisition released here would
    /// release the lock again when dropped: release an acquisition one way.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if word::release(self.word()) {
            Ok(())
        } else {
            Err(ReleaseError::TOO_MANY)
        }
    }

    /// Acquires the lock if it is free now.
    pub fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        match word::try_lock(self.word(), sys::pid()) {
            Acquired::Locked => Ok(self.guard()),
            Acquired::OwnerDied(pid) => Err(OwnerDied::new(self.guard(), pid).into()),
            Acquired::TimedOut => Err(TryLockError::WouldBlock),
        }
    }

    fn acquire_until(&self, deadline: Option<std::time::Instant>) -> TryLockResult<LockGuard<'_>> {
        match word::lock(self.word(), sys::pid(), deadline) {
            Acquired::Locked => Ok(self.guard()),
            Acquired::OwnerDied(pid) => Err(OwnerDied::new(self.guard(), pid).into()),
            Acquired::TimedOut => Err(TryLockError::WouldBlock),
        }
    }

    fn guard(&self) -> LockGuard<'_> {
        LockGuard::from_word(self.word())
    }

    /// Whether some process holds the lock now (Python's `locked()`).
    pub fn is_locked(&self) -> bool {
        word::owner(self.word()) != 0
    }

    /// The pid of the process holding the lock, if any.
    pub fn owner_pid(&self) -> Option<u32> {
        Some(word::owner(self.word())).filter(|&p| p != 0)
    }

    /// Whether `self` and `other` are the same lock.
    pub fn same_as(&self, other: &Lock) -> bool {
        self.region.same(&other.region)
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner_pid", &self.owner_pid())
            .finish()
    }
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lock, D::Error> {
        Ok(Lock {
            region: region::deserialize_region(d, LOCK_SHAPE)?,
        })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        word::unlock(self.word);
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl<'a> LockGuard<'a> {
    /// Releases the lock, waits `f` while it is released (a condition
    /// variable's sleep), and takes it back.
    pub(crate) fn unlocked<R>(&mut self, f: impl FnOnce() -> R) -> LockResult<R> {
        word::unlock(self.word);
        let r = f();
        match word::lock(self.word, sys::pid(), None) {
            Acquired::OwnerDied(pid) => Err(OwnerDied::new(r, pid)),
            _ => Ok(r),
        }
    }

    /// The word this guard holds.
    pub(crate) fn word(&self) -> &AtomicU32 {
        self.word
    }

    /// Ends the guard without releasing the lock.
    fn keep(self) {
        std::mem::forget(self);
    }

    /// A guard for a lock word the caller has just acquired.
    pub(crate) fn from_word(word: &'a AtomicU32) -> LockGuard<'a> {
        LockGuard {
            word,
            _not_send: PhantomData,
        }
    }
}

/// A re-entrant lock shared by processes: Python's `multiprocessing.RLock`.
///
/// The thread that holds it may lock it again; it is free once every guard
/// is dropped. Ownership is per thread of one process, as in Python.
/// Owner death is reported as for [`Lock`].
///
/// ```
/// use mp_shm::RLock;
///
/// let lock = RLock::new()?;
/// let a = lock.lock().expect("no owner died");
/// let b = lock.lock().expect("re-entry");
/// assert_eq!(lock.count(), 2);
/// drop((a, b));
/// assert!(!lock.is_locked());
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    region: Region,
}

/// Payload: lock word (0), recursion count (4), owner thread id (8, u64).
const RLOCK_SHAPE: Shape = Shape {
    kind: Kind::RLock,
    payload_len: 16,
    elem_size: 0,
    elem_align: 0,
    count: 0,
};

/// Holds one level of an [`RLock`]; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl RLock {
    /// Creates an unlocked re-entrant lock.
    pub fn new() -> Result<RLock, Error> {
        Ok(RLock {
            region: Region::create(RLOCK_SHAPE)?,
        })
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: RLOCK_SHAPE's payload has the lock word at offset 0,
        // accessed only atomically.
        unsafe { self.region.atomic_u32(0) }
    }

    fn count_word(&self) -> &AtomicU32 {
        // SAFETY: the count at offset 4 is accessed only atomically.
        unsafe { self.region.atomic_u32(4) }
    }

    fn owner_thread(&self) -> &AtomicU64 {
        // SAFETY: offset 8 of the 64-byte-aligned payload is 8-aligned and
        // in bounds (payload 16 bytes); the word is accessed only atomically.
        unsafe { AtomicU64::from_ptr(self.region.payload().add(8).cast()) }
    }

    fn mine(&self) -> bool {
        word::owner(self.word()) == sys::pid()
            && self.owner_thread().load(Ordering::Relaxed) == sys::thread_id()
    }

    /// Acquires one level of the lock, waiting as long as it takes.
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        // Without a deadline only a count overflow gives up (2^32 levels);
        // never return a guard we do not have.
        loop {
            match self.acquire(None) {
                Ok(g) => return Ok(g),
                Err(TryLockError::OwnerDied(e)) => return Err(e),
                Err(TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        }
    }

    /// Acquires one level, giving up after `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<RLockGuard<'_>> {
        self.acquire(word::deadline(timeout))
    }

    /// Acquires one level if that needs no waiting.
    pub fn try_lock(&self) -> TryLockResult<RLockGuard<'_>> {
        self.acquire(Some(std::time::Instant::now()))
    }

    fn acquire(&self, deadline: Option<std::time::Instant>) -> TryLockResult<RLockGuard<'_>> {
        if self.mine() {
            // Only the owner thread touches the count while it holds the lock.
            let c = self.count_word().load(Ordering::Relaxed);
            if c == u32::MAX {
                return Err(TryLockError::WouldBlock);
            }
            self.count_word().store(c + 1, Ordering::Relaxed);
            return Ok(self.guard());
        }
        let got = word::lock(self.word(), sys::pid(), deadline);
        let died = match got {
            Acquired::TimedOut => return Err(TryLockError::WouldBlock),
            Acquired::Locked => None,
            Acquired::OwnerDied(pid) => Some(pid),
        };
        self.owner_thread()
            .store(sys::thread_id(), Ordering::Relaxed);
        self.count_word().store(1, Ordering::Relaxed);
        match died {
            None => Ok(self.guard()),
            Some(pid) => Err(OwnerDied::new(self.guard(), pid).into()),
        }
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Releases one level held by the calling thread: Python's `release()`
    /// for code that cannot keep a guard (pair it with
    /// [`std::mem::forget`] on the guard). Releasing a lock this thread does
    /// not hold is an error, as in Python.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if !self.mine() {
            return Err(ReleaseError::NOT_OWNER);
        }
        let c = self.count_word().load(Ordering::Relaxed);
        if c <= 1 {
            self.count_word().store(0, Ordering::Relaxed);
            self.owner_thread().store(0, Ordering::Relaxed);
            word::unlock(self.word());
        } else {
            self.count_word().store(c - 1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether some thread of some process holds the lock.
    pub fn is_locked(&self) -> bool {
        word::owner(self.word()) != 0
    }

    /// How many levels the calling thread holds (0 if it is not the owner).
    pub fn count(&self) -> u32 {
        if self.mine() {
            self.count_word().load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// The pid of the process holding the lock, if any.
    pub fn owner_pid(&self) -> Option<u32> {
        Some(word::owner(self.word())).filter(|&p| p != 0)
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner_pid", &self.owner_pid())
            .finish()
    }
}

impl Serialize for RLock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RLock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RLock, D::Error> {
        Ok(RLock {
            region: region::deserialize_region(d, RLOCK_SHAPE)?,
        })
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard proves this thread holds a level, so this cannot fail.
        let _ = self.lock.release();
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}
