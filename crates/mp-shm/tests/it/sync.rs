//! `Event`, `Semaphore`, `BoundedSemaphore` and `Condition` across processes.

use std::time::Duration;

use mp_process::Process;
use std::sync::atomic::Ordering::SeqCst;

use mp_shm::{
    AtomicU32, Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Semaphore, Value,
};

use crate::{METHODS, at_least};

fn set_later(e: Event) {
    std::thread::sleep(Duration::from_millis(50));
    e.set();
}

#[test]
fn event_set_by_a_child_wakes_the_parent() {
    for method in METHODS {
        let e = Event::new().unwrap();
        assert!(!e.is_set());
        let mut p = Process::new(set_later, e.clone()).start_method(method);
        p.start().unwrap();
        assert!(e.wait_timeout(Duration::from_secs(10)), "{method}");
        p.join().unwrap();
        assert!(e.is_set());
        e.clear();
        assert!(!e.is_set());
    }
}

#[test]
fn event_wait_timeout_returns_no_earlier() {
    let e = Event::new().unwrap();
    assert!(!at_least(Duration::ZERO, || e.wait_timeout(Duration::ZERO)));
    assert!(!at_least(Duration::from_millis(100), || e
        .wait_timeout(Duration::from_millis(100))));
    e.set();
    assert!(e.wait_timeout(Duration::from_secs(5)));
    e.wait();
}

#[test]
fn semaphore_counts_like_python() {
    let s = Semaphore::new(2).unwrap();
    assert!(s.try_acquire());
    assert_eq!(s.get_value(), 1);
    s.acquire();
    assert!(!s.try_acquire());
    assert!(!at_least(Duration::from_millis(100), || s
        .acquire_timeout(Duration::from_millis(100))));
    for want in [1, 2, 3] {
        s.release().unwrap();
        assert_eq!(s.get_value(), want);
    }
    let b = BoundedSemaphore::new(1).unwrap();
    assert!(b.release().is_err());
    assert!(b.try_acquire());
    b.release().unwrap();
    assert_eq!(
        b.release().unwrap_err().to_string(),
        "semaphore or lock released too many times"
    );
}

fn release_later(s: Semaphore) {
    std::thread::sleep(Duration::from_millis(50));
    s.release().unwrap();
}

#[test]
fn semaphore_released_by_a_child_wakes_the_parent() {
    for method in METHODS {
        let s = Semaphore::new(0).unwrap();
        let mut p = Process::new(release_later, s.clone()).start_method(method);
        p.start().unwrap();
        assert!(s.acquire_timeout(Duration::from_secs(10)), "{method}");
        p.join().unwrap();
    }
}

#[test]
fn condition_wait_timeout_returns_no_earlier() {
    let c = Condition::new().unwrap();
    let mut g = c.lock().unwrap();
    assert!(!at_least(Duration::from_millis(100), || g
        .wait_timeout(Duration::from_millis(100))
        .unwrap()));
    assert!(!g.wait_timeout(Duration::ZERO).unwrap());
    let mut calls = 0;
    let r = at_least(Duration::from_millis(100), || {
        g.wait_for(
            || {
                calls += 1;
                false
            },
            Some(Duration::from_millis(100)),
        )
    });
    assert!(!r.unwrap());
    assert!(calls >= 2, "checked before and after waiting");
}

/// Waits on the condition for `flag` to become 1, then counts itself woken.
fn waiter(args: (Condition, Value<i32>, Value<i32>)) -> bool {
    let (c, ready, woken) = args;
    let mut g = c.lock().unwrap();
    *ready.lock().unwrap() += 1;
    let notified = g.wait_timeout(Duration::from_secs(60)).unwrap();
    drop(g);
    if notified {
        *woken.lock().unwrap() += 1;
    }
    notified
}

#[test]
fn notify_wakes_exactly_n_waiters() {
    let c = Condition::new().unwrap();
    let ready = Value::new(0_i32).unwrap();
    let woken = Value::new(0_i32).unwrap();
    let mut ps: Vec<_> = (0..4)
        .map(|_| Process::new(waiter, (c.clone(), ready.clone(), woken.clone())))
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    // All four are waiting once they have counted themselves under the lock
    // and released it in wait.
    while ready.get().unwrap() < 4 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The last one counted itself, then released the lock inside `wait`:
    // taking the lock here proves it is waiting.
    drop(c.lock().unwrap());
    c.lock().unwrap().notify();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(woken.get().unwrap(), 1);
    c.lock().unwrap().notify_n(2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(woken.get().unwrap(), 3);
    c.lock().unwrap().notify_all();
    for p in &mut ps {
        assert!(p.join().unwrap());
    }
    assert_eq!(woken.get().unwrap(), 4);
    // No residue: a notify with nobody waiting has no effect.
    c.lock().unwrap().notify_n(3);
    let mut g = c.lock().unwrap();
    assert!(!g.wait_timeout(Duration::from_millis(20)).unwrap());
}

/// Passes the barrier `passes` times; returns the indices it got. The last
/// arriver bumps `actions` once per pass.
fn barrier_party(args: (Barrier, AtomicU32, u32)) -> Vec<u32> {
    let (b, actions, passes) = args;
    (0..passes)
        .map(|_| {
            b.wait_with(|| {
                actions.fetch_add(1, SeqCst);
            })
            .unwrap()
        })
        .collect()
}

#[test]
fn barrier_releases_parties_together_pass_after_pass() {
    let parties = 4;
    let b = Barrier::new(parties).unwrap();
    let actions = AtomicU32::new(0).unwrap();
    let mut ps: Vec<_> = (0..parties)
        .map(|_| Process::new(barrier_party, (b.clone(), actions.clone(), 10)))
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    let got: Vec<Vec<u32>> = ps.iter_mut().map(|p| p.join().unwrap()).collect();
    for pass in 0..10 {
        let mut idx: Vec<u32> = got.iter().map(|v| v[pass]).collect();
        idx.sort_unstable();
        assert_eq!(idx, [0, 1, 2, 3], "pass {pass}");
    }
    assert_eq!(actions.load(SeqCst), 10, "the action ran once per pass");
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.broken());
}

#[test]
fn barrier_timeout_breaks_it_and_reset_repairs_it() {
    let b = Barrier::new(2).unwrap();
    let r = at_least(Duration::from_millis(100), || {
        b.wait_timeout(Duration::from_millis(100))
    });
    assert_eq!(r, Err(BrokenBarrierError));
    assert!(b.broken());
    assert_eq!(b.wait(), Err(BrokenBarrierError));
    b.reset();
    assert!(!b.broken());
    assert_eq!(b.n_waiting(), 0);
    std::thread::scope(|s| {
        let t = s.spawn(|| b.wait_timeout(Duration::from_secs(20)));
        let mine = b.wait_timeout(Duration::from_secs(20)).unwrap();
        let theirs = t.join().unwrap().unwrap();
        assert_eq!(mine + theirs, 1);
    });
    // Abort wakes a waiter with the error; reset wakes one too.
    std::thread::scope(|s| {
        let t = s.spawn(|| b.wait_timeout(Duration::from_secs(20)));
        while b.n_waiting() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        b.abort();
        assert_eq!(t.join().unwrap(), Err(BrokenBarrierError));
    });
    b.reset();
    std::thread::scope(|s| {
        let t = s.spawn(|| b.wait_timeout(Duration::from_secs(20)));
        while b.n_waiting() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        b.reset();
        assert_eq!(t.join().unwrap(), Err(BrokenBarrierError));
    });
    assert!(!b.broken());
    let one = Barrier::new(1).unwrap();
    assert_eq!(one.wait(), Ok(0));
    assert!(Barrier::new(0).is_err());
}
