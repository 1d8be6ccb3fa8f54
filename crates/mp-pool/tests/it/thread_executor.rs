//! ThreadPoolExecutor: the ProcessPoolExecutor API on threads, with the same
//! futures, wait and as_completed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mp_pool::{ErrorKind, Future, ReturnWhen, ThreadPoolExecutor, as_completed, wait};

use crate::{SOON, boom, inc, shared, sleep_ms};

#[test]
fn submit_map_and_shutdown() {
    let _g = shared();
    let ex = ThreadPoolExecutor::new(2).unwrap();
    let f = ex.submit(inc, 41).unwrap();
    assert_eq!(f.result_timeout(SOON).unwrap(), 42);
    assert!(f.done());
    assert!(f.exception().is_none());
    for cs in [None, Some(3), Some(40)] {
        let got: Vec<i64> = ex
            .map(inc, 0..100, cs, None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (1..=100).collect::<Vec<_>>());
    }
    assert_eq!(
        ex.map(inc, 0..1, Some(0), None).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let e = ThreadPoolExecutor::new(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(e.to_string(), "max_workers must be greater than 0");
    ex.shutdown(true, false).unwrap();
    assert_eq!(ex.submit(inc, 1).unwrap_err().kind(), ErrorKind::NotRunning);
    assert_eq!(
        ex.map(inc, 0..1, None, None).unwrap_err().kind(),
        ErrorKind::NotRunning
    );
}

#[test]
fn a_panicking_task_fails_its_future_with_message_and_location() {
    let _g = shared();
    let ex = ThreadPoolExecutor::new(2).unwrap();
    let fs: Vec<Future<i64>> = (0..6).map(|i| ex.submit(boom, i).unwrap()).collect();
    for (i, f) in fs.iter().enumerate() {
        if i == 3 {
            let e = f.result_timeout(SOON).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Panicked, "{e}");
            let info = e.panic_info().unwrap();
            assert_eq!(info.message(), "task 3 failed");
            assert!(info.location().unwrap().file().ends_with("main.rs"));
            assert_eq!(f.exception().unwrap().kind(), ErrorKind::Panicked);
        } else {
            assert_eq!(f.result_timeout(SOON).unwrap(), i as i64);
        }
    }
    // map yields the failure at its place and goes on.
    let got: Vec<_> = ex.map(boom, 0..6, None, None).unwrap().collect();
    assert_eq!(got[3].as_ref().unwrap_err().kind(), ErrorKind::Panicked);
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 5);
    assert_eq!(ex.submit(inc, 1).unwrap().result().unwrap(), 2);
}

#[test]
fn map_timeout_counts_from_the_call() {
    let _g = shared();
    let ex = ThreadPoolExecutor::new(2).unwrap();
    let mut it = ex
        .map(
            sleep_ms,
            [0, 0, 1500],
            None,
            Some(Duration::from_millis(300)),
        )
        .unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert!(it.next().unwrap().unwrap_err().is_timeout());
    assert!(it.next().is_none());
    // Shutting down without waiting does not wait for the sleeper.
    ex.shutdown(false, false).unwrap();
}

/// Tasks started by `started_then_sleep` (its own counter: tests run in
/// parallel).
static STARTED: AtomicUsize = AtomicUsize::new(0);

fn started_then_sleep(ms: u64) -> u64 {
    STARTED.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn cancel_only_before_a_thread_has_started_it() {
    let _g = shared();
    let ex = ThreadPoolExecutor::new(2).unwrap();
    let fs: Vec<_> = (0..10)
        .map(|_| ex.submit(started_then_sleep, 300).unwrap())
        .collect();
    // Both threads busy: the first two have started, the rest wait.
    let give_up = Instant::now() + SOON;
    while STARTED.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < give_up, "the tasks never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!fs[0].cancel(), "a running task cannot be cancelled");
    assert!(fs[9].cancel());
    assert!(fs[9].cancelled());
    assert!(fs[9].done());
    assert!(fs[9].cancel(), "cancelling again still says cancelled");
    assert_eq!(fs[9].result().unwrap_err().kind(), ErrorKind::Cancelled);
    // shutdown(cancel_futures) cancels the others that wait.
    ex.shutdown(true, true).unwrap();
    let cancelled = fs.iter().filter(|f| f.cancelled()).count();
    let finished = fs.iter().filter(|f| f.result().is_ok()).count();
    assert_eq!(cancelled + finished, 10);
    assert!(cancelled >= 6, "{cancelled}");
    assert!(!fs[0].cancelled());
    assert_eq!(fs[0].result().unwrap(), 300);
    // Only the tasks that were not cancelled ever ran.
    assert_eq!(STARTED.load(Ordering::SeqCst), finished);
}

/// `boom` for any `x` but 3, after sleeping `x` ms.
fn sleep_or_boom(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(x as u64));
    boom(x)
}

#[test]
fn wait_and_as_completed_work_on_its_futures() {
    let _g = shared();
    let ex = ThreadPoolExecutor::new(2).unwrap();
    let fs = vec![
        ex.submit(sleep_ms, 800).unwrap(),
        ex.submit(sleep_ms, 10).unwrap(),
    ];
    let (done, not_done) = wait(&fs, Some(SOON), ReturnWhen::FirstCompleted);
    assert_eq!((done, not_done), (vec![1], vec![0]));
    let (done, _) = wait(&fs, None, ReturnWhen::AllCompleted);
    assert_eq!(done, vec![0, 1]);

    let fs = vec![
        ex.submit(boom, 3).unwrap(),
        ex.submit(sleep_or_boom, 500).unwrap(),
    ];
    let (done, not_done) = wait(&fs, Some(SOON), ReturnWhen::FirstException);
    assert_eq!((done, not_done), (vec![0], vec![1]));
    // Both threads free again, for the order below.
    let (done, _) = wait(&fs, Some(SOON), ReturnWhen::AllCompleted);
    assert_eq!(done, vec![0, 1]);

    let fs = vec![
        ex.submit(sleep_ms, 600).unwrap(),
        ex.submit(sleep_ms, 5).unwrap(),
    ];
    let order: Vec<usize> = as_completed(&fs, Some(SOON)).map(Result::unwrap).collect();
    assert_eq!(order, [1, 0]);
    ex.shutdown(false, true).unwrap();
}

#[test]
fn done_callbacks_run_once_even_if_one_panics() {
    let _g = shared();
    let n = Arc::new(AtomicUsize::new(0));
    let f = {
        let ex = ThreadPoolExecutor::new(2).unwrap();
        let f = ex.submit(sleep_ms, 100).unwrap();
        f.add_done_callback(|_| panic!("callback fails"));
        let n2 = n.clone();
        f.add_done_callback(move |f| {
            assert!(f.done());
            n2.fetch_add(1, Ordering::SeqCst);
        });
        // Dropping the executor waits for its futures and their callbacks.
        f
    };
    assert!(f.done());
    assert_eq!(f.result().unwrap(), 100);
    assert_eq!(n.load(Ordering::SeqCst), 1);
    let n3 = n.clone();
    f.add_done_callback(move |_| {
        n3.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(n.load(Ordering::SeqCst), 2);
    // The executor is gone: cancel finds nothing to cancel.
    assert!(!f.cancel());
}
