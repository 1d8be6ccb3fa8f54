//! The lock word's protocol (`word.rs`) under loom: every interleaving of
//! a few threads, with loom's atomics and a model of the futex.
//!
//! Run with `RUSTFLAGS="--cfg mp_loom" cargo test -p mp-shm --release --lib
//! loom` (`cargo xtask ci` does, in its own target directory).
//!
//! The futex model keeps the one property the protocol relies on: a
//! sleeper that saw the expected value cannot miss a wake that follows a
//! change of the word. A waiter checks the word and sleeps under a mutex
//! that the waker takes after changing the word, so a lost wake-up shows
//! as a deadlock, which loom reports. Timed sleeps come in two models:
//! never timing out (so the protocol's liveness slices cannot hide a lost
//! wake-up), or timing out at once (so that the owner-death path runs).

use std::time::Duration;

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU32;
use loom::sync::{Arc, Condvar, Mutex};
use std::sync::atomic::Ordering;

use super::word::{self, Acquired, Futex, WAITERS};
use crate::sys::Wake;

/// A dead process's pid in the models.
const DEAD: u32 = 99;

struct Model {
    word: AtomicU32,
    sleep: Mutex<()>,
    wakes: Condvar,
    /// Timed sleeps end at once with `TimedOut`.
    timeouts: bool,
    /// The data the lock protects.
    data: UnsafeCell<u32>,
}

impl Model {
    fn new(initial: u32, timeouts: bool) -> Arc<Model> {
        Arc::new(Model {
            word: AtomicU32::new(initial),
            sleep: Mutex::new(()),
            wakes: Condvar::new(),
            timeouts,
            data: UnsafeCell::new(0),
        })
    }

    /// A critical section: loom reports a data race if two threads are in
    /// it at once.
    fn bump(&self) {
        self.data.with_mut(|d| {
            // SAFETY: only called while holding the modelled lock; loom
            // checks that claim.
            unsafe { *d += 1 }
        });
    }

    fn total(&self) -> u32 {
        // SAFETY: read once every thread has been joined.
        self.data.with(|d| unsafe { *d })
    }
}

impl Futex for Model {
    fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.word.compare_exchange(current, new, success, failure)
    }

    fn swap(&self, value: u32, order: Ordering) -> u32 {
        self.word.swap(value, order)
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) -> Wake {
        if self.timeouts && timeout.is_some() {
            if self.word.load(Ordering::SeqCst) != expected {
                return Wake::Retry;
            }
            loom::thread::yield_now();
            return Wake::TimedOut;
        }
        let guard = self.sleep.lock().unwrap();
        if self.word.load(Ordering::SeqCst) != expected {
            return Wake::Retry;
        }
        drop(self.wakes.wait(guard).unwrap());
        Wake::Retry
    }

    fn wake_one(&self) {
        let _guard = self.sleep.lock().unwrap();
        self.wakes.notify_one();
    }

    fn ended(&self, pid: u32) -> bool {
        pid == DEAD
    }
}

fn locked_bump(m: &Model, me: u32) -> Acquired {
    let got = word::lock(m, me, None);
    assert_ne!(got, Acquired::TimedOut, "no deadline, no timeout");
    assert_eq!(word::owner(m), me);
    m.bump();
    word::unlock(m);
    got
}

#[test]
fn loom_two_threads_exclude_each_other_and_never_lose_a_wake() {
    loom::model(|| {
        let m = Model::new(0, false);
        let t = {
            let m = m.clone();
            loom::thread::spawn(move || locked_bump(&m, 1))
        };
        assert_eq!(locked_bump(&m, 2), Acquired::Locked);
        assert_eq!(t.join().unwrap(), Acquired::Locked);
        assert_eq!(m.total(), 2);
        assert_eq!(m.load(Ordering::SeqCst), 0, "unlocked at the end");
    });
}

#[test]
fn loom_three_threads_never_lose_a_wake() {
    // The waiters bit with more than one sleeper: a waiter that takes the
    // lock keeps the bit, so its unlock wakes the next one.
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let m = Model::new(0, false);
        let ts: Vec<_> = (1..=2)
            .map(|me| {
                let m = m.clone();
                loom::thread::spawn(move || locked_bump(&m, me))
            })
            .collect();
        locked_bump(&m, 3);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(m.total(), 3);
    });
}

#[test]
fn loom_a_dead_owner_is_taken_over_by_exactly_one_waiter() {
    for initial in [DEAD, DEAD | WAITERS] {
        loom::model(move || {
            let m = Model::new(initial, true);
            let t = {
                let m = m.clone();
                loom::thread::spawn(move || locked_bump(&m, 1))
            };
            let mine = locked_bump(&m, 2);
            let theirs = t.join().unwrap();
            let died = [mine, theirs]
                .iter()
                .filter(|&&a| a == Acquired::OwnerDied(DEAD))
                .count();
            assert_eq!(died, 1, "{mine:?} {theirs:?}");
            assert_eq!(m.total(), 2);
        });
    }
}

#[test]
fn loom_try_lock_against_a_live_and_a_dead_owner() {
    loom::model(|| {
        let m = Model::new(0, true);
        let t = {
            let m = m.clone();
            loom::thread::spawn(move || locked_bump(&m, 1))
        };
        match word::try_lock(&*m, 2) {
            Acquired::Locked => {
                m.bump();
                word::unlock(&*m);
            }
            Acquired::TimedOut => {}
            Acquired::OwnerDied(pid) => panic!("owner {pid} is alive"),
        }
        t.join().unwrap();
        m.word.store(DEAD, Ordering::SeqCst);
        assert_eq!(word::try_lock(&*m, 2), Acquired::OwnerDied(DEAD));
        assert_eq!(word::owner(&*m), 2);
    });
}
