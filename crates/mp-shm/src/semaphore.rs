//! `Semaphore` and `BoundedSemaphore`: a counter on a futex word.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ReleaseError};
use crate::lock::word;
use crate::region::{self, Kind, Region, Shape};
use crate::sys;

/// Payload: value (0), sleepers (4), bound (8; u32::MAX: unbounded).
const SHAPE: Shape = Shape {
    kind: Kind::Semaphore,
    payload_len: 12,
    elem_size: 0,
    elem_align: 0,
    count: 0,
};

/// The shared part of both semaphores.
#[derive(Clone)]
pub(crate) struct Sem {
    region: Region,
}

impl Sem {
    fn new(value: u32, bound: u32) -> Result<Sem, Error> {
        let sem = Sem {
            region: Region::create(SHAPE)?,
        };
        sem.value().store(value, Ordering::Relaxed);
        sem.bound().store(bound, Ordering::Relaxed);
        Ok(sem)
    }

    pub(crate) fn value(&self) -> &AtomicU32 {
        // SAFETY: SHAPE's payload has three 4-byte words, accessed atomically.
        unsafe { self.region.atomic_u32(0) }
    }

    pub(crate) fn sleepers(&self) -> &AtomicU32 {
        // SAFETY: as for `value`.
        unsafe { self.region.atomic_u32(4) }
    }

    fn bound(&self) -> &AtomicU32 {
        // SAFETY: as for `value`.
        unsafe { self.region.atomic_u32(8) }
    }

    pub(crate) fn try_acquire(&self) -> bool {
        let mut v = self.value().load(Ordering::Relaxed);
        while v > 0 {
            match self
                .value()
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.try_acquire() {
                return true;
            }
            let Some(wait) = word::time_left(deadline) else {
                return false;
            };
            // Dekker with `release`: we announce ourselves, then re-read the
            // value; the releaser adds, then reads the sleeper count. SeqCst
            // on both sides means one of us sees the other.
            self.sleepers().fetch_add(1, Ordering::SeqCst);
            if self.value().load(Ordering::SeqCst) == 0 {
                sys::futex_wait(self.value(), 0, wait);
            }
            self.sleepers().fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn release(&self, n: u32) -> Result<(), ReleaseError> {
        let bound = self.bound().load(Ordering::Relaxed);
        let mut v = self.value().load(Ordering::Relaxed);
        loop {
            let new = match v.checked_add(n) {
                Some(new) if new <= bound => new,
                _ => return Err(ReleaseError::TOO_MANY),
            };
            match self
                .value()
                .compare_exchange_weak(v, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if self.sleepers().load(Ordering::SeqCst) > 0 {
            sys::futex_wake(self.value(), n);
        }
        Ok(())
    }
}

/// A counting semaphore shared by processes: Python's
/// `multiprocessing.Semaphore`.
///
/// `acquire` takes one unit, waiting while the value is 0; `release` gives
/// one back and may raise the value above its initial value. A semaphore has
/// no owner, so the death of a process that acquired it is not detected:
/// use a timeout where that matters.
///
/// ```
/// use std::time::Duration;
/// use mp_shm::Semaphore;
///
/// let s = Semaphore::new(1)?;
/// s.acquire();
/// assert!(!s.acquire_timeout(Duration::from_millis(10)));
/// s.release().expect("below u32::MAX");
/// assert_eq!(s.get_value(), 1);
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    pub(crate) sem: Sem,
}

impl Semaphore {
    /// Creates a semaphore with `value` units.
    pub fn new(value: u32) -> Result<Semaphore, Error> {
        Ok(Semaphore {
            sem: Sem::new(value, u32::MAX)?,
        })
    }

    /// Takes one unit, waiting as long as it takes.
    pub fn acquire(&self) {
        self.sem.acquire_until(None);
    }

    /// Takes one unit, giving up (false) after `timeout`, never earlier.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.sem.acquire_until(word::deadline(timeout))
    }

    /// Takes one unit if one is available now.
    pub fn try_acquire(&self) -> bool {
        self.sem.try_acquire()
    }

    /// Gives one unit back, waking one waiter. Fails only past `u32::MAX`.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem.release(1)
    }

    /// Gives `n` units back at once.
    pub fn release_n(&self, n: u32) -> Result<(), ReleaseError> {
        self.sem.release(n)
    }

    /// The current value (a snapshot: other processes may change it).
    pub fn get_value(&self) -> u32 {
        self.sem.value().load(Ordering::Relaxed)
    }
}

/// A semaphore that refuses to go above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// ```
/// use mp_shm::BoundedSemaphore;
///
/// let s = BoundedSemaphore::new(1)?;
/// assert!(s.try_acquire());
/// s.release().expect("back to 1");
/// assert!(s.release().is_err()); // above the bound
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    pub(crate) sem: Sem,
}

impl BoundedSemaphore {
    /// Creates a semaphore with `value` units, never more.
    pub fn new(value: u32) -> Result<BoundedSemaphore, Error> {
        Ok(BoundedSemaphore {
            sem: Sem::new(value, value)?,
        })
    }

    /// Takes one unit, waiting as long as it takes.
    pub fn acquire(&self) {
        self.sem.acquire_until(None);
    }

    /// Takes one unit, giving up (false) after `timeout`, never earlier.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.sem.acquire_until(word::deadline(timeout))
    }

    /// Takes one unit if one is available now.
    pub fn try_acquire(&self) -> bool {
        self.sem.try_acquire()
    }

    /// Gives one unit back; an error if that would exceed the initial value.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem.release(1)
    }

    /// The current value.
    pub fn get_value(&self) -> u32 {
        self.sem.value().load(Ordering::Relaxed)
    }
}

macro_rules! sem_traits {
    ($t:ident) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("value", &self.get_value())
                    .finish()
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.sem.region.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                Ok($t {
                    sem: Sem {
                        region: region::deserialize_region(d, SHAPE)?,
                    },
                })
            }
        }
    };
}

sem_traits!(Semaphore);
sem_traits!(BoundedSemaphore);
