//! The synchronisation objects: locks and rlocks, conditions,
//! semaphores, barriers. Each waits through [`wait_until`], which also
//! notices a client that has gone.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Alive, ConnId, Object, Waited, lock, wait_until};
use crate::protocol::Failure;

/// A lock or rlock: an owner (connection) and a recursion count.
///
/// Waiters are told when the lock is free and their clients try again
/// (`proxy::acquire`); the server never takes a lock for a client that is
/// not running. A release does not wake the waiters at once: its
/// connection's thread settles that after the releaser's next request
/// ([`HeldLocks::settle`](super::HeldLocks::settle)), so that a client
/// that takes the lock straight back, as in the article's counter loop,
/// does not wake the others for nothing each time (each such wake-up took the CPU the running pair
/// needed, and the loop fell to a fifth of its speed). The lock is not
/// fair, as Python's is not, but bounded: once a waiter has waited
/// [`STARVING`], the next release hands the lock to the longest waiter.
#[derive(Debug)]
pub(crate) struct LockObj {
    pub(super) recursive: bool,
    pub(super) state: Mutex<LockState>,
    pub(super) cv: Condvar,
}

/// How long a waiter may wait while others take the lock back before
/// the lock is handed to it: the bound of the lock's unfairness. Each
/// hand-over costs the new owner's wake-up, so not much less.
pub(super) const STARVING: Duration = Duration::from_millis(20);

/// How long a hand-over waits for its waiter's client to come and take
/// the lock: past it the waiter is taken to be gone, and anyone may.
pub(super) const HANDED_FOR: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub(super) struct LockState {
    pub(super) owner: Option<(ConnId, u64)>,
    /// Connections waiting, oldest first, with when they began.
    pub(super) waiters: VecDeque<(ConnId, Instant)>,
    /// A release left the waiters asleep (see [`LockObj`]).
    pub(super) wake_pending: bool,
    /// Kept for this waiter, since then (see [`STARVING`]).
    pub(super) handed: Option<(ConnId, Instant)>,
}

impl LockState {
    /// Whether `conn` may take the free lock now.
    pub(super) fn may_take(&self, conn: ConnId) -> bool {
        self.owner.is_none()
            && match self.handed {
                Some((to, since)) => to == conn || since.elapsed() >= HANDED_FOR,
                None => true,
            }
    }

    pub(super) fn take(&mut self, conn: ConnId) {
        self.owner = Some((conn, 1));
        self.wake_pending = false;
        self.handed = None;
    }
}

impl LockObj {
    pub(super) fn new(recursive: bool) -> LockObj {
        LockObj {
            recursive,
            state: Mutex::new(LockState::default()),
            cv: Condvar::new(),
        }
    }

    /// Waits as a waiter until `conn` may take the lock, or `deadline`, or
    /// its client is gone. A gone waiter the lock was handed to gives the
    /// hand-over up, so that the others need not wait for it.
    pub(super) fn wait_turn<'a>(
        &self,
        g: MutexGuard<'a, LockState>,
        conn: ConnId,
        deadline: Option<Instant>,
        alive: Alive<'_>,
        consume: bool,
    ) -> (MutexGuard<'a, LockState>, Waited) {
        let mut g = g;
        g.waiters.push_back((conn, Instant::now()));
        let (mut g, waited) =
            wait_until(&self.cv, g, deadline, alive, consume, |s| s.may_take(conn));
        if let Some(at) = g.waiters.iter().position(|&(c, _)| c == conn) {
            g.waiters.remove(at);
        }
        if waited == Waited::Gone && g.handed.is_some_and(|(to, _)| to == conn) {
            g.handed = None;
            self.cv.notify_all();
        }
        (g, waited)
    }

    pub(super) fn acquire(
        &self,
        conn: ConnId,
        blocking: bool,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        let mut g = lock(&self.state);
        if let Some((owner, count)) = g.owner.as_mut() {
            if self.recursive && *owner == conn {
                *count = count
                    .checked_add(1)
                    .ok_or_else(|| Failure::Overflow("rlock acquired too many times".into()))?;
                return Ok(true);
            }
        }
        if g.may_take(conn) {
            g.take(conn);
            return Ok(true);
        }
        if !blocking {
            return Ok(false);
        }
        let (mut g, waited) = self.wait_turn(g, conn, deadline, alive, true);
        match waited {
            Waited::Ready => {
                g.take(conn);
                Ok(true)
            }
            Waited::Timeout => Ok(false),
            Waited::Gone => Err(Failure::PeerGone),
        }
    }

    /// Waits until `conn` may take the lock (true) or `deadline` passes
    /// (false), without taking it.
    pub(super) fn await_free(
        &self,
        conn: ConnId,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        match self
            .wait_turn(lock(&self.state), conn, deadline, alive, false)
            .1
        {
            Waited::Ready => Ok(true),
            Waited::Timeout => Ok(false),
            Waited::Gone => Err(Failure::PeerGone),
        }
    }

    pub(super) fn owned_by(&self, conn: ConnId) -> bool {
        matches!(lock(&self.state).owner, Some((o, _)) if o == conn)
    }

    /// Releases; true when waking the waiters is left to [`Self::settle`].
    pub(super) fn release(&self, conn: ConnId) -> Result<bool, Failure> {
        let mut g = lock(&self.state);
        match g.owner.as_mut() {
            None => return Err(Failure::Misuse("release unlocked lock".into())),
            // A plain lock may be released by anyone, as in Python.
            Some((owner, count)) if self.recursive => {
                if *owner != conn {
                    return Err(Failure::Misuse("cannot release un-acquired lock".into()));
                }
                *count -= 1;
                if *count > 0 {
                    return Ok(false);
                }
            }
            Some(_) => {}
        }
        g.owner = None;
        let Some(&(oldest, since)) = g.waiters.front() else {
            return Ok(false);
        };
        if since.elapsed() >= STARVING {
            g.handed = Some((oldest, Instant::now()));
            drop(g);
            self.cv.notify_all();
            return Ok(false);
        }
        g.wake_pending = true;
        Ok(true)
    }

    /// Wakes the waiters if a release left them asleep and the lock is
    /// still free. All of them: the one told "free" leaves the taking to
    /// its client, which may lose the race or be gone.
    pub(super) fn settle(&self) {
        let mut g = lock(&self.state);
        if std::mem::take(&mut g.wake_pending) && g.owner.is_none() {
            drop(g);
            self.cv.notify_all();
        }
    }

    /// Releases the lock fully if `conn` owns it; returns the recursion
    /// count it had.
    pub(super) fn release_all(&self, conn: ConnId) -> u64 {
        let mut g = lock(&self.state);
        match g.owner {
            Some((owner, count)) if owner == conn => {
                g.owner = None;
                g.wake_pending = false;
                drop(g);
                self.cv.notify_all();
                count
            }
            _ => 0,
        }
    }

    /// Takes the lock back for a condition's waiter with its recursion
    /// count; false (and the lock not taken) if its client is gone.
    pub(super) fn restore(&self, conn: ConnId, count: u64, alive: Alive<'_>) -> bool {
        let g = lock(&self.state);
        let (mut g, waited) = if g.may_take(conn) {
            (g, Waited::Ready)
        } else {
            self.wait_turn(g, conn, None, alive, true)
        };
        if waited != Waited::Ready {
            return false;
        }
        g.take(conn);
        if let Some((_, c)) = g.owner.as_mut() {
            *c = count.max(1);
        }
        true
    }
}

/// A condition variable over a lock, with Python's notify order (first
/// come, first notified).
#[derive(Debug)]
pub(crate) struct CondObj {
    pub(super) lock: Arc<Object>,
    pub(super) state: Mutex<CondState>,
    pub(super) cv: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct CondState {
    pub(super) next: u64,
    pub(super) waiting: VecDeque<u64>,
    pub(super) notified: HashSet<u64>,
}

impl CondObj {
    pub(super) fn new(lock: Arc<Object>) -> CondObj {
        CondObj {
            lock,
            state: Mutex::new(CondState::default()),
            cv: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> &LockObj {
        match &*self.lock {
            Object::Lock(l) => l,
            _ => unreachable!("checked at creation"),
        }
    }

    /// Python's `wait`. A waiter whose client is gone leaves the queue;
    /// a notification it was given goes to the next waiter.
    pub(super) fn wait(
        &self,
        conn: ConnId,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        if !self.lock().owned_by(conn) {
            return Err(Failure::Misuse("cannot wait on un-acquired lock".into()));
        }
        let token = {
            let mut s = lock(&self.state);
            s.next = s
                .next
                .checked_add(1)
                .ok_or_else(|| Failure::Overflow("condition waits".into()))?;
            let t = s.next;
            s.waiting.push_back(t);
            t
        };
        let count = self.lock().release_all(conn);
        let (mut s, waited) = wait_until(&self.cv, lock(&self.state), deadline, alive, true, |s| {
            s.notified.contains(&token)
        });
        let notified = s.notified.remove(&token);
        if !notified {
            s.waiting.retain(|&t| t != token);
        }
        if waited == Waited::Gone {
            if notified {
                if let Some(next) = s.waiting.pop_front() {
                    s.notified.insert(next);
                    drop(s);
                    self.cv.notify_all();
                }
            }
            return Err(Failure::PeerGone);
        }
        drop(s);
        if !self.lock().restore(conn, count, alive) {
            return Err(Failure::PeerGone);
        }
        Ok(notified)
    }

    pub(super) fn notify(&self, conn: ConnId, n: u64) -> Result<(), Failure> {
        if !self.lock().owned_by(conn) {
            return Err(Failure::Misuse("cannot notify on un-acquired lock".into()));
        }
        let mut s = lock(&self.state);
        let mut n = n;
        while n > 0 {
            let Some(t) = s.waiting.pop_front() else {
                break;
            };
            s.notified.insert(t);
            n -= 1;
        }
        drop(s);
        self.cv.notify_all();
        Ok(())
    }
}

/// A counting semaphore, bounded or not.
#[derive(Debug)]
pub(crate) struct SemObj {
    pub(super) value: Mutex<u64>,
    pub(super) bound: Option<u64>,
    pub(super) cv: Condvar,
}

impl SemObj {
    pub(super) fn new(value: u64, bound: Option<u64>) -> SemObj {
        SemObj {
            value: Mutex::new(value),
            bound,
            cv: Condvar::new(),
        }
    }

    /// Takes a unit, waiting for one with `blocking`; a unit is taken
    /// only for a client that is there.
    pub(super) fn acquire(
        &self,
        blocking: bool,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        let g = lock(&self.value);
        if *g == 0 && !blocking {
            return Ok(false);
        }
        let (mut g, waited) = wait_until(&self.cv, g, deadline, alive, true, |v| *v > 0);
        match waited {
            Waited::Ready => {
                *g -= 1;
                Ok(true)
            }
            Waited::Timeout => Ok(false),
            Waited::Gone => {
                // Another waiter may have been passed over for us.
                drop(g);
                self.cv.notify_one();
                Err(Failure::PeerGone)
            }
        }
    }

    pub(super) fn release(&self) -> Result<(), Failure> {
        let mut g = lock(&self.value);
        if self.bound.is_some_and(|b| *g >= b) {
            return Err(Failure::Misuse("semaphore released too many times".into()));
        }
        *g = g
            .checked_add(1)
            .ok_or_else(|| Failure::Overflow("semaphore value at its largest".into()))?;
        drop(g);
        self.cv.notify_one();
        Ok(())
    }

    /// Returns a unit an undeliverable `acquire` had taken.
    pub(super) fn give_back(&self) {
        let mut g = lock(&self.value);
        *g = g.saturating_add(1);
        drop(g);
        self.cv.notify_one();
    }
}

/// Python's `threading.Barrier` without an action (no code crosses the
/// wire).
#[derive(Debug)]
pub(crate) struct BarrierObj {
    pub(super) parties: u64,
    pub(super) state: Mutex<BarrierState>,
    pub(super) cv: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct BarrierState {
    pub(super) count: u64,
    pub(super) generation: u64,
    pub(super) broken: bool,
}

impl BarrierObj {
    pub(super) fn new(parties: u64) -> BarrierObj {
        BarrierObj {
            parties,
            state: Mutex::new(BarrierState::default()),
            cv: Condvar::new(),
        }
    }

    /// Waits for all parties; a party whose client is gone leaves the
    /// barrier as if it had never come.
    pub(super) fn wait(&self, deadline: Option<Instant>, alive: Alive<'_>) -> Result<u64, Failure> {
        let mut g = lock(&self.state);
        if g.broken {
            return Err(Failure::BrokenBarrier);
        }
        let index = g.count;
        g.count += 1;
        if g.count == self.parties {
            g.count = 0;
            g.generation += 1;
            drop(g);
            self.cv.notify_all();
            return Ok(index);
        }
        let generation = g.generation;
        let (mut g, waited) = wait_until(&self.cv, g, deadline, alive, false, |s| {
            s.generation != generation || s.broken
        });
        if g.generation != generation {
            return Ok(index);
        }
        if waited == Waited::Gone {
            if !g.broken {
                g.count = g.count.saturating_sub(1);
            }
            return Err(Failure::PeerGone);
        }
        if waited == Waited::Timeout {
            // A timeout breaks the barrier for everyone, as in Python.
            g.broken = true;
            g.count = g.count.saturating_sub(1);
            drop(g);
            self.cv.notify_all();
        }
        Err(Failure::BrokenBarrier)
    }

    pub(super) fn abort(&self) {
        lock(&self.state).broken = true;
        self.cv.notify_all();
    }

    pub(super) fn reset(&self) {
        let mut g = lock(&self.state);
        if g.count > 0 {
            // Waiters see the barrier broken; later ones find it fresh.
            g.broken = true;
            drop(g);
            self.cv.notify_all();
            g = lock(&self.state);
        }
        g.count = 0;
        g.generation += 1;
        g.broken = false;
    }
}
