//! `Barrier`: parties wait for each other, pass after pass, with Python's
//! abort, reset, timeout and broken-barrier semantics.
//!
//! State (under the barrier's own lock word): `count` arrived this pass,
//! `generation` (bumped when a pass is released or reset), `released`
//! (the last generation released normally), `broken`. `seq` is the futex
//! word waiters sleep on, bumped by every release, abort and reset. A
//! waiter of generation `g` that sees the generation move on was released
//! if `released == g`: a later pass can never be released without it, so
//! any other move was a reset.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{BrokenBarrierError, Error, ErrorKind};
use crate::lock::word;
use crate::region::{self, Kind, Region, Shape};
use crate::sys;

/// Payload: lock (0), seq (4), parties (8), count (12), generation (16),
/// released (20), broken (24), default timeout in ms (28; u32::MAX: none).
const SHAPE: Shape = Shape {
    kind: Kind::Barrier,
    payload_len: 32,
    elem_size: 0,
    elem_align: 0,
    count: 0,
};

/// A barrier shared by processes: Python's `multiprocessing.Barrier`.
///
/// `wait` blocks until `parties` callers (threads of any process) have
/// called it, then releases them all, and the barrier is ready for the
/// next pass. Each party gets a distinct index in `0..parties`.
///
/// A timed-out wait, [`abort`](Barrier::abort), or a panicking action
/// breaks the barrier: waiters and later callers get
/// [`BrokenBarrierError`] until [`reset`](Barrier::reset). A party that
/// dies leaves the others waiting until their timeout, which then breaks
/// the barrier for everyone, as in Python; so give waits a timeout when a
/// party may die.
///
/// Python's `action` argument is the closure of
/// [`wait_with`](Barrier::wait_with): the last party to arrive runs its
/// own, once per pass, before anyone is released.
///
/// ```
/// use mp_shm::Barrier;
///
/// let b = Barrier::new(1)?;
/// assert_eq!(b.wait(), Ok(0)); // one party: never blocks
/// b.abort();
/// assert!(b.wait().is_err());
/// b.reset();
/// assert_eq!(b.wait(), Ok(0));
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    region: Region,
}

/// Releases the barrier's internal lock word on drop, also on unwinding
/// out of an action.
struct Held<'a> {
    b: &'a Barrier,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        word::unlock(self.b.w(0));
    }
}

impl Barrier {
    /// Creates a barrier for `parties` (at least 1) parties.
    pub fn new(parties: u32) -> Result<Barrier, Error> {
        Barrier::with_timeout(parties, None)
    }

    /// Creates a barrier whose [`wait`](Barrier::wait) gives up after
    /// `timeout`, breaking the barrier (Python's `timeout` argument).
    pub fn with_timeout(parties: u32, timeout: Option<Duration>) -> Result<Barrier, Error> {
        if parties == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a barrier needs at least one party",
            ));
        }
        let b = Barrier {
            region: Region::create(SHAPE)?,
        };
        b.w(8).store(parties, Ordering::Relaxed);
        b.w(20).store(u32::MAX, Ordering::Relaxed);
        let ms = timeout.map_or(u32::MAX, |t| {
            u32::try_from(t.as_millis()).unwrap_or(u32::MAX - 1)
        });
        b.w(28).store(ms, Ordering::Relaxed);
        Ok(b)
    }

    fn w(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset < 32);
        // SAFETY: SHAPE's payload is eight 4-byte words, each only ever
        // accessed atomically; callers pass offsets below 32.
        unsafe { self.region.atomic_u32(offset) }
    }

    fn enter(&self) -> Held<'_> {
        // The internal lock is held only for a few loads and stores (and
        // the action); a dead holder is recovered and breaks the barrier,
        // since it may have died mid-update.
        if let word::Acquired::OwnerDied(_) = word::lock(self.w(0), sys::pid(), None) {
            self.w(24).store(1, Ordering::Relaxed);
            self.wake_all();
        }
        Held { b: self }
    }

    fn wake_all(&self) {
        self.w(4).fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(self.w(4), u32::MAX);
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.w(8).load(Ordering::Relaxed)
    }

    /// How many parties wait in the current pass.
    pub fn n_waiting(&self) -> u32 {
        let _held = self.enter();
        self.w(12).load(Ordering::Relaxed)
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.w(24).load(Ordering::SeqCst) != 0
    }

    /// Waits for the other parties, for at most the barrier's default
    /// timeout. Returns this party's index (exactly one party gets 0).
    pub fn wait(&self) -> Result<u32, BrokenBarrierError> {
        self.wait_inner(self.default_timeout(), || {})
    }

    /// Waits for at most `timeout`; if it passes, the barrier breaks for
    /// everyone. Never returns the timeout's error before the timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BrokenBarrierError> {
        self.wait_inner(Some(timeout), || {})
    }

    /// Like [`wait`](Barrier::wait); if this party arrives last, it runs
    /// `action` before anyone is released. A panic in `action` breaks the
    /// barrier and unwinds in this party.
    pub fn wait_with(&self, action: impl FnOnce()) -> Result<u32, BrokenBarrierError> {
        self.wait_inner(self.default_timeout(), action)
    }

    fn default_timeout(&self) -> Option<Duration> {
        match self.w(28).load(Ordering::Relaxed) {
            u32::MAX => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        }
    }

    fn wait_inner(
        &self,
        timeout: Option<Duration>,
        action: impl FnOnce(),
    ) -> Result<u32, BrokenBarrierError> {
        let deadline = timeout.and_then(word::deadline);
        let held = self.enter();
        if self.broken() {
            return Err(BrokenBarrierError);
        }
        let index = self.w(12).fetch_add(1, Ordering::Relaxed);
        let generation = self.w(16).load(Ordering::Relaxed);
        if index + 1 == self.parties() {
            // Last to arrive: run the action, then release the pass. If the
            // action panics, this guard breaks the barrier on the way out.
            struct BreakOnUnwind<'a>(&'a Barrier, bool);
            impl Drop for BreakOnUnwind<'_> {
                fn drop(&mut self) {
                    if !self.1 {
                        self.0.w(24).store(1, Ordering::SeqCst);
                        self.0.w(12).store(0, Ordering::Relaxed);
                        self.0.wake_all();
                    }
                }
            }
            let mut armed = BreakOnUnwind(self, false);
            action();
            armed.1 = true;
            self.w(12).store(0, Ordering::Relaxed);
            self.w(20).store(generation, Ordering::Relaxed);
            self.w(16)
                .store(generation.wrapping_add(1), Ordering::Relaxed);
            self.wake_all();
            drop(held);
            return Ok(index);
        }
        loop {
            let seq = self.w(4).load(Ordering::SeqCst);
            if self.w(16).load(Ordering::Relaxed) != generation {
                let released = self.w(20).load(Ordering::Relaxed) == generation;
                return if released {
                    Ok(index)
                } else {
                    Err(BrokenBarrierError)
                };
            }
            if self.broken() {
                self.leave();
                return Err(BrokenBarrierError);
            }
            let Some(wait) = word::time_left(deadline) else {
                // Timed out: break the barrier for everyone.
                self.w(24).store(1, Ordering::SeqCst);
                self.leave();
                self.wake_all();
                return Err(BrokenBarrierError);
            };
            drop_held(&held);
            sys::futex_wait(self.w(4), seq, wait);
            relock(self);
        }
    }

    /// This party stops waiting in a broken pass.
    fn leave(&self) {
        let c = self.w(12).load(Ordering::Relaxed);
        self.w(12).store(c.saturating_sub(1), Ordering::Relaxed);
    }

    /// Breaks the barrier: current and future waiters get
    /// [`BrokenBarrierError`] until [`reset`](Barrier::reset).
    pub fn abort(&self) {
        let _held = self.enter();
        self.w(24).store(1, Ordering::SeqCst);
        self.wake_all();
    }

    /// Returns the barrier to its initial state: current waiters get
    /// [`BrokenBarrierError`], later callers use it normally.
    pub fn reset(&self) {
        let _held = self.enter();
        let g = self.w(16).load(Ordering::Relaxed);
        self.w(16).store(g.wrapping_add(1), Ordering::Relaxed);
        self.w(12).store(0, Ordering::Relaxed);
        self.w(24).store(0, Ordering::SeqCst);
        self.wake_all();
    }
}

/// Releases the internal lock while a waiter sleeps (the `Held` guard stays
/// alive and is re-armed by [`relock`]).
fn drop_held(held: &Held<'_>) {
    word::unlock(held.b.w(0));
}

fn relock(b: &Barrier) {
    if let word::Acquired::OwnerDied(_) = word::lock(b.w(0), sys::pid(), None) {
        b.w(24).store(1, Ordering::SeqCst);
        b.wake_all();
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("broken", &self.broken())
            .finish()
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Barrier, D::Error> {
        Ok(Barrier {
            region: region::deserialize_region(d, SHAPE)?,
        })
    }
}
