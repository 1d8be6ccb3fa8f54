//! `Lock` and `RLock` across processes: exclusion, owner death, timeouts.

use std::time::Duration;

use mp_process::{ErrorKind, Process, StartMethod};
use mp_shm::{Event, Lock, RLock, TryLockError, Value};

use crate::{METHODS, at_least};

/// The article's task: add `delta` to the value `n` times, each under the
/// shared lock, as a read then a write (so only the lock makes it exact).
fn add_locked(args: (Value<i64>, i64, u32)) {
    let (v, delta, n) = args;
    for _ in 0..n {
        let mut g = v.lock().expect("no owner died");
        let x = *g;
        *g = x + delta;
    }
}

#[test]
fn article_counter_ends_at_zero_under_every_start_method() {
    for method in METHODS {
        let v = Value::new(0_i64).unwrap();
        let mut up = Process::new(add_locked, (v.clone(), 1, 10_000)).start_method(method);
        let mut down = Process::new(add_locked, (v.clone(), -1, 10_000)).start_method(method);
        up.start().unwrap();
        down.start().unwrap();
        up.join().unwrap();
        down.join().unwrap();
        assert_eq!(v.get().unwrap(), 0, "{method}");
    }
}

#[test]
fn eight_processes_times_ten_thousand_locked_increments() {
    let v = Value::new(0_i64).unwrap();
    let mut ps: Vec<_> = (0..8)
        .map(|_| Process::new(add_locked, (v.clone(), 1, 10_000)).start_method(StartMethod::Fork))
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for p in &mut ps {
        p.join().unwrap();
    }
    assert_eq!(v.get().unwrap(), 80_000);
}

/// Takes the lock, says so, and never lets go.
fn hold_forever(args: (Lock, Event)) {
    let (lock, held) = args;
    let guard = lock.lock().expect("no owner died");
    held.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let _ = &guard;
    }
}

#[test]
fn dead_owner_is_reported_and_the_lock_recovers() {
    for method in [StartMethod::Fork, StartMethod::ForkServer] {
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let mut p = Process::new(hold_forever, (lock.clone(), held.clone())).start_method(method);
        p.start().unwrap();
        assert!(
            held.wait_timeout(Duration::from_secs(10)),
            "child took the lock"
        );
        assert_eq!(lock.owner_pid(), p.pid());
        assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
        p.kill().unwrap();
        // Not joined yet: the child is a zombie, which counts as dead.
        match lock.lock_timeout(Duration::from_secs(2)) {
            Err(TryLockError::OwnerDied(e)) => {
                assert_eq!(Some(e.pid()), p.pid());
                drop(e.into_inner());
            }
            Err(TryLockError::WouldBlock) => panic!("{method}: owner death not seen within 2 s"),
            Ok(_) => panic!("{method}: acquired without news of the dead owner"),
        }
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Died);
        // Recovered: the lock works normally for everyone afterwards.
        let g = lock.lock().expect("no second owner-died report");
        assert!(lock.is_locked());
        drop(g);
        let v = Value::new(0_i64).unwrap();
        let mut q = Process::new(add_locked, (v.clone(), 1, 100));
        q.start().unwrap();
        q.join().unwrap();
        assert_eq!(v.get().unwrap(), 100);
    }
}

fn hold_value_forever(args: (Value<i64>, Event)) {
    let (v, held) = args;
    let mut g = v.lock().expect("no owner died");
    *g = 42;
    held.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn dead_owner_of_a_value_lock_is_reported() {
    let v = Value::new(0_i64).unwrap();
    let held = Event::new().unwrap();
    let mut p = Process::new(hold_value_forever, (v.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait_timeout(Duration::from_secs(10)));
    p.kill().unwrap();
    let _ = p.join();
    let e = v.get().unwrap_err();
    assert_eq!(e.into_inner(), 42);
    assert_eq!(v.get().unwrap(), 42);
}

#[test]
fn lock_timeout_returns_no_earlier_than_the_timeout() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let mut p = Process::new(hold_forever, (lock.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait_timeout(Duration::from_secs(10)));
    for ms in [0, 50, 250] {
        let d = Duration::from_millis(ms);
        let r = at_least(d, || lock.lock_timeout(d));
        assert!(matches!(r, Err(TryLockError::WouldBlock)));
    }
    p.kill().unwrap();
    let _ = p.join();
    // In-process too: the holder is this very process.
    let lock = Lock::new().unwrap();
    let _g = lock.lock().unwrap();
    let r = at_least(Duration::from_millis(150), || {
        lock.lock_timeout(Duration::from_millis(150))
    });
    assert!(matches!(r, Err(TryLockError::WouldBlock)));
}

#[test]
fn rlock_is_reentrant_and_owned_by_one_thread() {
    let lock = RLock::new().unwrap();
    let a = lock.lock().unwrap();
    let b = lock.lock().unwrap();
    let c = lock.try_lock().unwrap();
    assert_eq!(lock.count(), 3);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Another thread neither owns it nor may release it.
            assert_eq!(lock.count(), 0);
            assert!(lock.release().is_err());
            assert!(matches!(
                lock.lock_timeout(Duration::from_millis(20)),
                Err(TryLockError::WouldBlock)
            ));
        });
    });
    drop((a, b, c));
    assert!(!lock.is_locked());
    assert!(lock.release().is_err(), "a fourth release is an error");
}

fn rlock_try(lock: RLock) -> bool {
    lock.try_lock().is_ok()
}

#[test]
fn rlock_held_here_is_busy_for_a_child() {
    let lock = RLock::new().unwrap();
    let _g = lock.lock().unwrap();
    let mut p = Process::new(rlock_try, lock.clone());
    p.start().unwrap();
    assert!(!p.join().unwrap());
}

fn release_it(lock: Lock) -> bool {
    lock.release().is_ok()
}

fn acquire_it(lock: Lock) -> bool {
    lock.acquire().is_ok()
}

/// A plain lock has no owning thread, as in Python: one process acquires
/// it without a guard, another releases it; a release too many is an
/// error.
#[test]
fn a_lock_is_released_by_another_process_and_once_only() {
    for m in METHODS {
        let lock = Lock::new().unwrap();
        lock.acquire().unwrap();
        assert!(!lock.acquire_timeout(Duration::from_millis(20)).unwrap());
        let mut p = Process::new(release_it, lock.clone()).start_method(m);
        p.start().unwrap();
        assert!(p.join().unwrap(), "{m:?}");
        assert!(!lock.is_locked(), "{m:?}");
        assert!(lock.release().is_err(), "{m:?}");

        let mut p = Process::new(acquire_it, lock.clone()).start_method(m);
        p.start().unwrap();
        assert!(p.join().unwrap(), "{m:?}");
        // The child exited holding it; releasing it here is allowed.
        assert!(lock.is_locked(), "{m:?}");
        lock.release().unwrap();
        assert!(
            lock.acquire_timeout(Duration::from_millis(20)).unwrap(),
            "{m:?}"
        );
        lock.release().unwrap();
    }
}
