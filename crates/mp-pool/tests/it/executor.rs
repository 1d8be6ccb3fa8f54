//! ProcessPoolExecutor: futures, map with timeout, broken pool, shutdown,
//! wait and as_completed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mp_pool::{ErrorKind, ProcessPoolExecutor, ReturnWhen, as_completed, wait};

use crate::{SOON, boom, inc, kill, shared, sleep_ms, sleep_then_pid};

#[test]
fn submit_and_map() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let f = ex.submit(inc, 41).unwrap();
    assert_eq!(f.result().unwrap(), 42);
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
    let f = ex.submit(boom, 3).unwrap();
    assert_eq!(f.exception().unwrap().kind(), ErrorKind::Panicked);
    assert_eq!(
        ProcessPoolExecutor::new(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    ex.shutdown(true, false).unwrap();
    assert_eq!(ex.submit(inc, 1).unwrap_err().kind(), ErrorKind::NotRunning);
}

#[test]
fn map_timeout_counts_from_the_call() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let mut it = ex
        .map(
            sleep_ms,
            [0, 0, 3000],
            None,
            Some(Duration::from_millis(500)),
        )
        .unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert!(it.next().unwrap().unwrap_err().is_timeout());
    assert!(it.next().is_none());
}

#[test]
fn a_dead_worker_breaks_the_executor() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let pid = ex.submit(sleep_then_pid, 0).unwrap().result().unwrap();
    let pending: Vec<_> = (0..4).map(|_| ex.submit(sleep_ms, 2000).unwrap()).collect();
    kill(pid, libc::SIGKILL);
    for f in &pending {
        let e = f.result_timeout(SOON).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Broken, "{e}");
    }
    let e = ex.submit(inc, 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken);
    assert_eq!(e.exitcode(), Some(-libc::SIGKILL));
    ex.shutdown(true, false).unwrap();
}

#[test]
fn shutdown_cancel_futures_cancels_the_queued_ones() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let fs: Vec<_> = (0..20).map(|_| ex.submit(sleep_ms, 100).unwrap()).collect();
    ex.shutdown(true, true).unwrap();
    let cancelled = fs.iter().filter(|f| f.cancelled()).count();
    let finished = fs.iter().filter(|f| f.result().is_ok()).count();
    assert_eq!(cancelled + finished, 20);
    assert!(cancelled >= 10, "{cancelled}");
    assert_eq!(
        fs.iter()
            .find(|f| f.cancelled())
            .unwrap()
            .result()
            .unwrap_err()
            .kind(),
        ErrorKind::Cancelled
    );
}

#[test]
fn cancel_only_before_a_worker_has_it() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    // A worker is up and idle (workers start on demand).
    assert_eq!(ex.submit(inc, 1).unwrap().result().unwrap(), 2);
    let fs: Vec<_> = (0..10).map(|_| ex.submit(sleep_ms, 200).unwrap()).collect();
    assert!(!fs[0].cancel(), "the first went to the idle worker at once");
    assert!(fs[9].cancel());
    assert!(fs[9].cancelled());
    assert!(fs[9].done());
    assert_eq!(fs[0].result().unwrap(), 200);
}

#[test]
fn wait_and_as_completed() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let fs = vec![
        ex.submit(sleep_ms, 800).unwrap(),
        ex.submit(sleep_ms, 10).unwrap(),
    ];
    let (done, not_done) = wait(&fs, Some(SOON), ReturnWhen::FirstCompleted);
    assert_eq!((done, not_done), (vec![1], vec![0]));
    let t = Instant::now();
    let (done, not_done) = wait(
        &fs,
        Some(Duration::from_millis(50)),
        ReturnWhen::AllCompleted,
    );
    assert!(t.elapsed() >= Duration::from_millis(50) || not_done.is_empty());
    assert_eq!(done.len() + not_done.len(), 2);
    let (done, _) = wait(&fs, None, ReturnWhen::AllCompleted);
    assert_eq!(done, vec![0, 1]);

    let fs = vec![ex.submit(boom, 3).unwrap(), ex.submit(boom, 1).unwrap()];
    let (done, _) = wait(&fs, Some(SOON), ReturnWhen::FirstException);
    assert!(done.contains(&0));

    let fs = vec![
        ex.submit(sleep_ms, 600).unwrap(),
        ex.submit(sleep_ms, 5).unwrap(),
    ];
    let order: Vec<usize> = as_completed(&fs, Some(SOON)).map(Result::unwrap).collect();
    assert_eq!(order, [1, 0]);
    let fs = vec![ex.submit(sleep_ms, 2000).unwrap()];
    let mut it = as_completed(&fs, Some(Duration::from_millis(50)));
    assert!(it.next().unwrap().unwrap_err().is_timeout());
    assert!(it.next().is_none());
}

#[test]
fn done_callbacks_run_once_even_if_one_panics() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let f = ex.submit(sleep_ms, 100).unwrap();
    f.add_done_callback(|_| panic!("callback fails"));
    let n2 = n.clone();
    f.add_done_callback(move |f| {
        assert!(f.done());
        n2.fetch_add(1, Ordering::SeqCst);
    });
    f.result().unwrap();
    ex.shutdown(true, false).unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 1);
    // On a finished future the callback runs at once.
    let n3 = n.clone();
    f.add_done_callback(move |_| {
        n3.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

/// `max_tasks_per_child` replaces workers; zero workers, zero tasks per
/// child and `max_tasks_per_child` under fork are errors that say which.
#[test]
fn max_tasks_per_child_recycles_and_bad_settings_are_named() {
    let _g = shared();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .start_method(mp_process::StartMethod::ForkServer)
        .build()
        .unwrap();
    let mut pids: Vec<u32> = (0..4)
        .map(|_| ex.submit(crate::pid_of, 0).unwrap().result().unwrap())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 4);
    ex.shutdown(true, false).unwrap();

    let e = ProcessPoolExecutor::new(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("max_workers"), "{e}");
    let e = ProcessPoolExecutor::builder()
        .max_tasks_per_child(0)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("max_tasks_per_child"), "{e}");
    let e = ProcessPoolExecutor::builder()
        .max_tasks_per_child(2)
        .start_method(mp_process::StartMethod::Fork)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("fork"), "{e}");
}

/// An idle worker that dies breaks the executor too, as in CPython.
#[test]
fn an_idle_worker_that_dies_breaks_the_executor() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let pid = ex.submit(sleep_then_pid, 0).unwrap().result().unwrap();
    kill(pid, libc::SIGKILL);
    let give_up = Instant::now() + SOON;
    let e = loop {
        match ex.submit(inc, 1) {
            Err(e) => break e,
            Ok(f) => {
                // Submitted before the death was noticed: it fails or
                // succeeds, but never hangs.
                let _ = f.result_timeout(SOON);
            }
        }
        assert!(Instant::now() < give_up, "the death was never noticed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(e.kind(), ErrorKind::Broken, "{e}");
    assert_eq!(e.exitcode(), Some(-libc::SIGKILL));
}

/// `shutdown(wait = false)` returns at once; the futures still complete,
/// and new work is refused.
#[test]
fn shutdown_without_waiting_returns_at_once_and_futures_complete() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let f = ex.submit(sleep_ms, 2000).unwrap();
    let start = Instant::now();
    ex.shutdown(false, false).unwrap();
    // A bound on behaviour, not speed: waiting would take the task's 2 s.
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "shutdown waited"
    );
    assert!(!f.done());
    assert_eq!(ex.submit(inc, 1).unwrap_err().kind(), ErrorKind::NotRunning);
    assert_eq!(f.result_timeout(SOON).unwrap(), 2000);
}

fn failing_init(_: ()) {
    panic!("no setup today");
}

/// A failing initializer breaks the executor once: every future fails
/// with the initializer's error, and no worker is respawned for ever.
#[test]
fn a_failing_initializer_fails_every_future() {
    let _g = shared();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(failing_init, ())
        .build()
        .unwrap();
    let fs: Vec<_> = (0..3).filter_map(|i| ex.submit(inc, i).ok()).collect();
    for f in &fs {
        let e = f.result_timeout(SOON).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Initializer, "{e}");
        assert!(e.to_string().contains("no setup today"), "{e}");
    }
    let e = ex.submit(inc, 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Initializer, "{e}");
}

/// As CPython's (3.9 and later), the executor starts workers when work
/// finds none idle: sequential calls reuse one, concurrent ones get their
/// own, up to `max_workers`.
#[test]
fn workers_start_on_demand() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(4).unwrap();
    let mut pids: Vec<u32> = (0..3)
        .map(|_| ex.submit(crate::pid_of, 0).unwrap().result().unwrap())
        .collect();
    pids.dedup();
    assert_eq!(pids.len(), 1, "sequential calls reuse the idle worker");
    let both: Vec<_> = (0..2)
        .map(|_| ex.submit(sleep_then_pid, 300).unwrap())
        .collect();
    let mut pids: Vec<u32> = both.iter().map(|f| f.result().unwrap()).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 2, "a second worker started for the second");
    let many: Vec<_> = (0..8)
        .map(|_| ex.submit(sleep_then_pid, 100).unwrap())
        .collect();
    let mut pids: Vec<u32> = many.iter().map(|f| f.result().unwrap()).collect();
    pids.sort_unstable();
    pids.dedup();
    assert!(pids.len() <= 4, "at most max_workers: {pids:?}");
    ex.shutdown(true, false).unwrap();
}

/// An executor that never had work starts no worker, and shuts down at
/// once.
#[test]
fn an_executor_without_work_starts_nothing_and_shuts_down() {
    let _g = shared();
    let ex = ProcessPoolExecutor::new(4).unwrap();
    ex.shutdown(true, false).unwrap();
    let ex = ProcessPoolExecutor::new(4).unwrap();
    drop(ex);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let f = ex.submit(inc, 1).unwrap();
    ex.shutdown(true, false).unwrap();
    assert_eq!(f.result().unwrap(), 2, "queued before shutdown, still run");
}
