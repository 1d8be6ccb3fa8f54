//! Progress of long jobs: `map_with_progress` reports on the caller's
//! thread, `map_async_with_progress` on the callback thread, both with
//! growing counts ending at (total, total).

use std::sync::{Arc, Mutex};

use mp_pool::{ErrorKind, Pool, ThreadPool};

use crate::{SOON, boom, inc, shared, sleep_ms};

/// The reports are (done, total) with `done` growing strictly to `total`.
fn check_reports(seen: &[(usize, usize)], total: usize) {
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|&(_, t)| t == total), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    assert!(seen[0].0 > 0, "{seen:?}");
    assert_eq!(seen.last(), Some(&(total, total)));
}

#[test]
fn map_with_progress_reports_on_the_callers_thread() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let me = std::thread::current().id();
    for cs in [Some(1), Some(7), None] {
        let mut seen = Vec::new();
        let out = pool
            .map_with_progress(sleep_ms, [20; 30], cs, |done, total| {
                assert_eq!(std::thread::current().id(), me);
                seen.push((done, total));
            })
            .unwrap();
        assert_eq!(out, [20; 30]);
        check_reports(&seen, 30);
    }
    // Chunks of one item that take a while: more than one report.
    let mut seen = Vec::new();
    pool.map_with_progress(sleep_ms, [50; 6], Some(1), |d, t| seen.push((d, t)))
        .unwrap();
    check_reports(&seen, 6);
    assert!(seen.len() > 1, "{seen:?}");
    // No items: no report.
    let mut calls = 0;
    let out: Vec<i64> = pool
        .map_with_progress(inc, Vec::<i64>::new(), None, |_, _| calls += 1)
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(calls, 0);
    // A failed chunk counts as done; the call fails as `map` does.
    let mut seen = Vec::new();
    let e = pool
        .map_with_progress(boom, 0..10, Some(2), |d, t| seen.push((d, t)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    check_reports(&seen, 10);
    // chunksize 0 is an error, as for map.
    assert_eq!(
        pool.map_with_progress(inc, 0..3, Some(0), |_, _| {})
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn thread_pool_map_with_progress_is_the_same() {
    let _g = shared();
    let pool = ThreadPool::new(2).unwrap();
    let mut seen = Vec::new();
    let out = pool
        .map_with_progress(inc, 0..100, Some(10), |d, t| seen.push((d, t)))
        .unwrap();
    assert_eq!(out, (1..=100).collect::<Vec<_>>());
    check_reports(&seen, 100);
}

#[test]
fn map_async_with_progress_reports_before_the_result_is_ready() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let r = pool
        .map_async_with_progress(sleep_ms, [10; 12], Some(1), move |d, t| {
            s.lock().unwrap().push((d, t));
        })
        .unwrap();
    assert_eq!(r.get_timeout(SOON).unwrap(), [10; 12]);
    // Once `get` returns, the last report has been made.
    check_reports(&seen.lock().unwrap(), 12);

    // A progress callback that panics breaks nothing.
    let r = pool
        .map_async_with_progress(inc, 0..20, Some(5), |_, _| panic!("progress fails"))
        .unwrap();
    assert_eq!(r.get_timeout(SOON).unwrap(), (1..=20).collect::<Vec<_>>());
    assert_eq!(pool.map(inc, 0..5, None).unwrap(), [1, 2, 3, 4, 5]);

    // On a thread pool too.
    let pool = ThreadPool::new(2).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let r = pool
        .map_async_with_progress(inc, 0..50, Some(4), move |d, t| {
            s.lock().unwrap().push((d, t));
        })
        .unwrap();
    assert_eq!(r.get_timeout(SOON).unwrap().len(), 50);
    check_reports(&seen.lock().unwrap(), 50);
}
