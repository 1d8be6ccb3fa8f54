//! Failure, never a hang: panics, killed workers (busy and idle), a failing
//! initializer, panicking callbacks, terminate with a long queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mp_pool::{ErrorKind, Pool};

use crate::{
    METHODS, SOON, boom, children, exclusive, inc, kill, pool_with, shared, sleep_ms,
    sleep_then_pid,
};

/// Runs for a long time, after reporting its pid through the result of a
/// first, quick task.
fn pid_then_sleep(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn abort_task(_: ()) -> u8 {
    std::process::abort()
}

fn exit_task(code: i32) -> u8 {
    std::process::exit(code)
}

/// Writes this worker's pid where the test can read it, then sleeps.
fn announce_and_sleep(path: String) -> u8 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn wait_for_pid(path: &str) -> u32 {
    let give_up = Instant::now() + SOON;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(p) = s.trim().parse() {
                return p;
            }
        }
        assert!(Instant::now() < give_up, "the task never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_panicking_task_fails_alone() {
    let _g = shared();
    for m in METHODS {
        let pool = pool_with(m);
        let rs: Vec<_> = (0..6).map(|i| pool.apply_async(boom, i).unwrap()).collect();
        for (i, r) in rs.iter().enumerate() {
            if i == 3 {
                let e = r.get_timeout(SOON).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Panicked, "{m}: {e}");
                let info = e.panic_info().unwrap();
                assert_eq!(info.message(), "task 3 failed", "{m}");
                assert!(info.location().unwrap().file().ends_with("main.rs"), "{m}");
                assert!(!r.successful().unwrap(), "{m}");
            } else {
                assert_eq!(r.get_timeout(SOON).unwrap(), i as i64, "{m}");
            }
        }
        // map reports the failure; imap yields it in place and goes on.
        assert_eq!(
            pool.map(boom, 0..10, Some(1)).unwrap_err().kind(),
            ErrorKind::Panicked,
            "{m}"
        );
        let got: Vec<Result<i64, _>> = pool.imap(boom, 0..6, None).unwrap().collect();
        assert!(got[3].is_err(), "{m}");
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 5, "{m}");
        assert_eq!(pool.apply(inc, 1).unwrap(), 2, "{m}");
    }
}

#[test]
fn a_worker_killed_mid_task_fails_that_task_only() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let path = std::env::temp_dir().join(format!("mp-pool-kill-{}-{m}", std::process::id()));
        let path = path.to_string_lossy().into_owned();
        let _ = std::fs::remove_file(&path);
        let victim = pool.apply_async(announce_and_sleep, path.clone()).unwrap();
        let pid = wait_for_pid(&path);
        let _ = std::fs::remove_file(&path);
        // Queue more work behind it: it must survive the death.
        let later: Vec<_> = (0..10).map(|i| pool.apply_async(inc, i).unwrap()).collect();
        let t = Instant::now();
        kill(pid, libc::SIGKILL);
        let e = victim.get_timeout(SOON).unwrap_err();
        let waited = t.elapsed();
        assert_eq!(e.kind(), ErrorKind::WorkerLost, "{m}: {e}");
        assert_eq!(e.exitcode(), Some(-libc::SIGKILL), "{m}: {e}");
        assert!(waited < SOON, "{m}");
        for (i, r) in later.iter().enumerate() {
            assert_eq!(r.get_timeout(SOON).unwrap(), i as i64 + 1, "{m}");
        }
        // The worker was replaced: two workers serve again (once the new
        // one has started).
        let give_up = Instant::now() + SOON;
        loop {
            let pids: std::collections::HashSet<u32> = pool
                .map(sleep_then_pid, [200, 200], Some(1))
                .unwrap()
                .into_iter()
                .collect();
            assert!(!pids.contains(&pid), "{m}");
            if pids.len() == 2 {
                break;
            }
            assert!(Instant::now() < give_up, "{m}: no replacement worker");
        }
    }
}

#[test]
fn abort_and_exit_in_a_task_are_worker_lost_with_their_status() {
    let _g = shared();
    for m in METHODS {
        let pool = pool_with(m);
        let e = pool
            .apply_async(abort_task, ())
            .unwrap()
            .get_timeout(SOON)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerLost, "{m}: {e}");
        assert_eq!(e.exitcode(), Some(-libc::SIGABRT), "{m}: {e}");
        let e = pool
            .apply_async(exit_task, 7)
            .unwrap()
            .get_timeout(SOON)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerLost, "{m}: {e}");
        assert_eq!(e.exitcode(), Some(7), "{m}: {e}");
        assert_eq!(pool.map(inc, 0..100, None).unwrap().len(), 100, "{m}");
    }
}

#[test]
fn idle_workers_that_die_are_replaced() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let pids: std::collections::HashSet<u32> = pool
            .map(pid_then_sleep, [200, 200], Some(1))
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(pids.len(), 2);
        for p in &pids {
            kill(*p, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            pool.apply_async(inc, 41)
                .unwrap()
                .get_timeout(SOON)
                .unwrap(),
            42,
            "{m}"
        );
        pool.terminate();
    }
}

fn failing_init(path: String) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    writeln!(f, "init").unwrap();
    panic!("initializer refuses");
}

#[test]
fn a_failing_initializer_is_reported_once() {
    let _g = shared();
    for m in METHODS {
        let path = std::env::temp_dir().join(format!("mp-pool-init-{}-{m}", std::process::id()));
        let path = path.to_string_lossy().into_owned();
        let _ = std::fs::remove_file(&path);
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .initializer(failing_init, path.clone())
            .build()
            .unwrap();
        let r = pool.apply_async(inc, 1);
        let e = match r {
            Ok(r) => r.get_timeout(SOON).unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::Initializer, "{m}: {e}");
        assert_eq!(
            e.panic_info().unwrap().message(),
            "initializer refuses",
            "{m}"
        );
        // No respawning: after a while, at most one start per worker.
        std::thread::sleep(Duration::from_millis(500));
        let runs = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!((1..=2).contains(&runs), "{m}: {runs} initializer runs");
        let e = match pool.apply_async(inc, 1) {
            Ok(r) => r.get_timeout(SOON).unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::Initializer, "{m}: {e}");
        pool.close();
        pool.join_timeout(SOON).unwrap();
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_panicking_callback_breaks_nothing() {
    let _g = shared();
    for m in METHODS {
        let pool = pool_with(m);
        let ok = Arc::new(AtomicUsize::new(0));
        let bad = pool
            .apply_async_with(inc, 1, |_: &i64| panic!("callback fails"), |_| {})
            .unwrap();
        assert_eq!(bad.get_timeout(SOON).unwrap(), 2, "{m}");
        // An error callback that panics breaks nothing either.
        let bad_err = pool
            .apply_async_with(boom, 3, |_: &i64| {}, |_| panic!("error callback fails"))
            .unwrap();
        assert_eq!(
            bad_err.get_timeout(SOON).unwrap_err().kind(),
            ErrorKind::Panicked,
            "{m}"
        );
        let o = ok.clone();
        let good = pool
            .apply_async_with(
                inc,
                2,
                move |_: &i64| {
                    o.fetch_add(1, Ordering::SeqCst);
                },
                |_| {},
            )
            .unwrap();
        assert_eq!(good.get_timeout(SOON).unwrap(), 3, "{m}");
        assert_eq!(ok.load(Ordering::SeqCst), 1, "{m}");
        assert_eq!(pool.map(inc, 0..10, None).unwrap().len(), 10, "{m}");
    }
}

#[test]
fn terminate_with_ten_thousand_queued_tasks_is_quick_and_leaves_no_child() {
    let _g = exclusive();
    let before = children().len();
    let pool = Pool::new(2).unwrap();
    let rs: Vec<_> = (0..10_000)
        .map(|_| pool.apply_async(sleep_ms, 1000).unwrap())
        .collect();
    let t = Instant::now();
    pool.terminate();
    assert!(t.elapsed() < Duration::from_secs(5));
    for r in &rs {
        assert_eq!(
            r.get_timeout(SOON).unwrap_err().kind(),
            ErrorKind::Terminated
        );
    }
    pool.join_timeout(SOON).unwrap();
    assert_eq!(children().len(), before, "{:?}", children());
}

#[test]
fn dropping_a_pool_ends_its_iterators() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let it = pool.imap(sleep_ms, [2000, 2000, 2000], None).unwrap();
    drop(pool);
    let got: Vec<_> = it.collect();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|r| r.as_ref().unwrap_err().kind() == ErrorKind::Terminated)
    );
}
