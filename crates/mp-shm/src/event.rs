//! `Event`: a flag on a futex word that processes can wait for.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::lock::word;
use crate::region::{self, Kind, Region, Shape};
use crate::sys;

/// Payload: flag (0), sleepers (4).
const SHAPE: Shape = Shape {
    kind: Kind::Event,
    payload_len: 8,
    elem_size: 0,
    elem_align: 0,
    count: 0,
};

/// A flag shared by processes: Python's `multiprocessing.Event`.
///
/// ```
/// use std::time::Duration;
/// use mp_shm::Event;
///
/// let e = Event::new()?;
/// assert!(!e.wait_timeout(Duration::from_millis(10)));
/// e.set();
/// assert!(e.is_set());
/// e.wait();
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    region: Region,
}

impl Event {
    /// Creates an event, not set.
    pub fn new() -> Result<Event, Error> {
        Ok(Event {
            region: Region::create(SHAPE)?,
        })
    }

    pub(crate) fn flag(&self) -> &AtomicU32 {
        // SAFETY: SHAPE's payload has two 4-byte words, accessed atomically.
        unsafe { self.region.atomic_u32(0) }
    }

    pub(crate) fn sleepers(&self) -> &AtomicU32 {
        // SAFETY: as for `flag`.
        unsafe { self.region.atomic_u32(4) }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        // SeqCst pairs with the waiter's announce-then-check in `wait_until`.
        if self.flag().swap(1, Ordering::SeqCst) == 0 && self.sleepers().load(Ordering::SeqCst) > 0
        {
            sys::futex_wake(self.flag(), u32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.flag().store(0, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag().load(Ordering::Acquire) == 1
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Waits until the flag is set or `timeout` has passed; returns whether
    /// it is set. Returns false no earlier than the timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(word::deadline(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.is_set() {
                return true;
            }
            let Some(wait) = word::time_left(deadline) else {
                return false;
            };
            self.sleepers().fetch_add(1, Ordering::SeqCst);
            if self.flag().load(Ordering::SeqCst) == 0 {
                sys::futex_wait(self.flag(), 0, wait);
            }
            self.sleepers().fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        Ok(Event {
            region: region::deserialize_region(d, SHAPE)?,
        })
    }
}
