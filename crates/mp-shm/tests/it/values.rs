//! `Value`, `Array`, `RawValue`, `RawArray` and shared atomics across
//! processes.

use std::sync::atomic::Ordering::SeqCst;

use mp_process::Process;
use mp_shm::{Array, AtomicI64, AtomicU64, Plain, RawArray, RawValue, Value};

use crate::METHODS;

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Point {
    x: i32,
    y: f64,
    z: i64,
}

// SAFETY: repr(C) numbers only: any bits are a valid Point, no pointers.
unsafe impl Plain for Point {}

fn update(args: (Value<f64>, Value<Point>, RawValue<i16>, Array<i32>)) {
    let (d, p, r, a) = args;
    d.set(d.get().unwrap() * 2.0).unwrap();
    p.lock().unwrap().z += 1;
    r.set(r.get() - 1);
    let mut g = a.lock().unwrap();
    for i in 1..g.len() {
        g[i] += g[i - 1];
    }
}

#[test]
fn a_childs_writes_are_visible_after_join() {
    for method in METHODS {
        let d = Value::new(1.25_f64).unwrap();
        let p = Value::new(Point { x: 1, y: 2.5, z: 3 }).unwrap();
        let r = RawValue::new(7_i16).unwrap();
        let a = Array::from_slice(&[1, 2, 3, 4]).unwrap();
        let mut c =
            Process::new(update, (d.clone(), p.clone(), r.clone(), a.clone())).start_method(method);
        c.start().unwrap();
        c.join().unwrap();
        assert_eq!(d.get().unwrap(), 2.5);
        assert_eq!(p.get().unwrap(), Point { x: 1, y: 2.5, z: 4 });
        assert_eq!(r.get(), 6);
        assert_eq!(a.to_vec().unwrap(), [1, 3, 6, 10]);
    }
}

#[test]
fn arrays_start_zeroed_and_check_bounds() {
    let a = Array::<u64>::new(1000).unwrap();
    assert!(a.to_vec().unwrap().iter().all(|&x| x == 0));
    assert_eq!(a.len(), 1000);
    let r = RawArray::<u8>::new(3).unwrap();
    assert_eq!(r.get(3), None);
    assert!(r.set(3, 1).is_err());
    assert!(r.copy_from_slice(2, &[1, 2]).is_err());
    r.copy_from_slice(1, &[5, 6]).unwrap();
    assert_eq!(r.to_vec(), [0, 5, 6]);
    let empty = Array::<i32>::new(0).unwrap();
    assert!(empty.is_empty());
}

fn add_atomic(args: (AtomicI64, AtomicU64, i64)) {
    let (a, b, n) = args;
    for _ in 0..10_000 {
        a.fetch_add(n, SeqCst);
        b.fetch_add(1, SeqCst);
    }
}

#[test]
fn atomics_count_exactly_across_processes() {
    for method in METHODS {
        let a = AtomicI64::new(0).unwrap();
        let b = AtomicU64::new(0).unwrap();
        let mut ps: Vec<_> = [1, -1, 1]
            .into_iter()
            .map(|n| Process::new(add_atomic, (a.clone(), b.clone(), n)).start_method(method))
            .collect();
        for p in &mut ps {
            p.start().unwrap();
        }
        for p in &mut ps {
            p.join().unwrap();
        }
        assert_eq!(a.load(SeqCst), 10_000);
        assert_eq!(b.load(SeqCst), 30_000);
        assert_eq!(b.compare_exchange(30_000, 1, SeqCst, SeqCst), Ok(30_000));
    }
}

/// Moves one unit from `from` to `to` `n` times, and counts the moves in
/// `log`, each time under one acquisition of the lock the three share.
fn transfer(args: (Value<i64>, Value<i64>, Array<i64>, u32)) {
    let (from, to, log, n) = args;
    for _ in 0..n {
        let mut g = from.lock().expect("no owner died");
        *g -= 1;
        *g.value(&to).unwrap() += 1;
        g.array(&log).unwrap()[0] += 1;
    }
}

/// Values and an array made with one lock (Python's `lock=`) change
/// together under one guard, in children of every start method, while the
/// parent sees their sum unchanged at every look.
#[test]
fn values_sharing_one_lock_change_together() {
    for m in METHODS {
        let lock = mp_shm::Lock::new().unwrap();
        let from = Value::with_lock(10_000_i64, &lock).unwrap();
        let to = Value::with_lock(0_i64, &lock).unwrap();
        let log = Array::<i64>::with_lock(1, &lock).unwrap();
        let mut ps: Vec<_> = (0..4)
            .map(|_| {
                let mut p = Process::new(transfer, (from.clone(), to.clone(), log.clone(), 1000))
                    .start_method(m);
                p.start().unwrap();
                p
            })
            .collect();
        for _ in 0..200 {
            let mut g = from.lock().unwrap();
            let sum = *g + *g.value(&to).unwrap();
            assert_eq!(sum, 10_000, "{m:?}");
        }
        for p in &mut ps {
            p.join().unwrap();
        }
        assert_eq!(from.get().unwrap(), 6_000, "{m:?}");
        assert_eq!(to.get().unwrap(), 4_000, "{m:?}");
        assert_eq!(log.to_vec().unwrap(), [4_000], "{m:?}");
        // One lock: while a guard is out, the others wait.
        let g = from.lock().unwrap();
        assert!(to.try_lock().is_err() && log.try_lock().is_err() && lock.try_lock().is_err());
        drop(g);
        // A value with a lock of its own is not reachable under the guard.
        let own = Value::new(1_i64).unwrap();
        assert!(from.lock().unwrap().value(&own).is_err());
        assert!(own.lock().unwrap().value(&to).is_err());
    }
}
