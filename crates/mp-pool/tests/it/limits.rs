//! Containing untrusted work, under every start method: a task past its
//! hard time limit fails with `TimeLimit` and its worker is replaced, the
//! soft limit is seen before the hard one, other tasks are untouched, a
//! crash loop stops at the restart limit, and nothing is left behind.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mp_pool::{ErrorKind, Limits, Pool, ProcessPoolExecutor};
use mp_process::StartMethod;
use mp_shm::AtomicU64;

use crate::{METHODS, SOON, children, exclusive, fd_count, inc, pid_of, shared};

/// The grace a stopped worker gets (the pool's default).
const GRACE: Duration = Duration::from_millis(100);

/// Never returns.
fn spin(_: ()) -> u32 {
    loop {
        std::hint::spin_loop();
    }
}

/// Runs until its soft limit has passed, then returns how long it had
/// left before the hard one (in ms).
fn until_soft(_: ()) -> u64 {
    while !mp_pool::soft_limit_passed() {
        std::hint::spin_loop();
    }
    assert_eq!(mp_pool::time_left(), Some(Duration::ZERO));
    mp_pool::hard_time_left().expect("a hard limit").as_millis() as u64
}

/// What a task sees of its limits: (soft left, hard left) in ms.
fn seen(_: ()) -> (Option<u64>, Option<u64>) {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    (ms(mp_pool::time_left()), ms(mp_pool::hard_time_left()))
}

fn nap_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Sleeps `ms`, or spins for ever when `ms` is 0.
fn nap_or_spin(ms: u64) -> u64 {
    if ms == 0 {
        spin(());
    }
    nap_ms(ms)
}

fn one_worker(m: StartMethod) -> Pool {
    Pool::builder()
        .processes(1)
        .start_method(m)
        .build()
        .unwrap()
}

#[test]
fn a_looping_task_fails_with_time_limit_and_its_worker_is_replaced() {
    let _g = shared();
    let limit = Duration::from_millis(200);
    for m in METHODS {
        let pool = one_worker(m);
        let before = pool.apply(pid_of, 0).unwrap();
        let t0 = Instant::now();
        let r = pool
            .apply_async_limited(spin, (), Limits::new().time_limit(limit))
            .unwrap();
        let err = r.get_timeout(SOON).unwrap_err();
        let took = t0.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimeLimit, "{m}: {err}");
        assert_eq!(err.time_limit(), Some(limit), "{m}");
        assert!(err.elapsed().unwrap() >= limit, "{m}: {err:?}");
        assert_eq!(err.exitcode(), Some(-libc::SIGTERM), "{m}: {err:?}");
        assert!(
            took < limit + GRACE + Duration::from_millis(100),
            "{m}: the result came after {took:?}"
        );
        // The next task runs on a new worker.
        let after = pool.apply(pid_of, 0).unwrap();
        assert_ne!(before, after, "{m}");
        assert_eq!(pool.apply(inc, 41).unwrap(), 42, "{m}");
        pool.close();
        pool.join_timeout(SOON).unwrap();
    }
}

#[test]
fn tasks_queued_behind_a_stopped_task_run_and_nothing_else_fails() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .limits(Limits::new().time_limit(Duration::from_millis(300)))
            .build()
            .unwrap();
        // Quick tasks first, so that tasks are sent ahead to the workers.
        assert_eq!(pool.map(inc, 0..20, Some(1)).unwrap().len(), 20);
        let mut rs = Vec::new();
        for i in 0..12u64 {
            let ms = if i == 3 || i == 8 { 0 } else { 20 };
            rs.push((ms, pool.apply_async(nap_or_spin, ms).unwrap()));
        }
        for (ms, r) in rs {
            match r.get_timeout(SOON) {
                Ok(v) => assert_eq!(v, ms, "{m}"),
                Err(e) => {
                    assert_eq!(ms, 0, "{m}: a task under its limit failed: {e}");
                    assert_eq!(e.kind(), ErrorKind::TimeLimit, "{m}: {e}");
                }
            }
        }
        pool.close();
        pool.join_timeout(SOON).unwrap();
    }
}

#[test]
fn the_soft_limit_is_seen_before_the_hard_one() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .limits(
                Limits::new()
                    .soft_time_limit(Duration::from_millis(100))
                    .time_limit(Duration::from_secs(5)),
            )
            .build()
            .unwrap();
        let left = pool.apply(until_soft, ()).unwrap();
        assert!(left > 0 && left <= 4_900, "{m}: {left} ms left");
        // A per-call field replaces the pool's; the other stays.
        let (soft, hard) = pool
            .apply_async_limited(
                seen,
                (),
                Limits::new().soft_time_limit(Duration::from_secs(2)),
            )
            .unwrap()
            .get_timeout(SOON)
            .unwrap();
        assert!(
            soft.is_some_and(|s| s > 1_000 && s <= 2_000),
            "{m}: {soft:?}"
        );
        assert!(
            hard.is_some_and(|h| h > 4_000 && h <= 5_000),
            "{m}: {hard:?}"
        );
        pool.close();
        pool.join_timeout(SOON).unwrap();
    }
    // Outside a limited task there is nothing to see.
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.apply(seen, ()).unwrap(), (None, None));
    assert_eq!(mp_pool::time_left(), None);
}

#[test]
fn map_limits_are_per_item_and_an_item_over_it_fails_its_chunk() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .limits(Limits::new().time_limit(Duration::from_millis(250)))
            .build()
            .unwrap();
        // Each chunk takes 3 x 100 ms, more than the limit; each item less.
        assert_eq!(
            pool.map(nap_ms, [100; 6], Some(3)).unwrap(),
            [100; 6],
            "{m}"
        );
        // One item spins: its chunk (items 3 to 5) fails, the rest do not.
        let items = [5, 5, 5, 5, 0, 5, 5];
        let out: Vec<_> = pool
            .imap(nap_or_spin, items, Some(3))
            .unwrap()
            .map(|r| r.map_err(|e| e.kind()))
            .collect();
        let tl = Err(ErrorKind::TimeLimit);
        assert_eq!(out, [Ok(5), Ok(5), Ok(5), tl, tl, tl, Ok(5)], "{m}");
        pool.close();
        pool.join_timeout(SOON).unwrap();
    }
}

#[test]
fn executor_time_limits_fail_the_future_and_do_not_break_it() {
    let _g = shared();
    for m in METHODS {
        let ex = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(m)
            .build()
            .unwrap();
        let limit = Duration::from_millis(150);
        let t0 = Instant::now();
        let f = ex
            .submit_limited(spin, (), Limits::new().time_limit(limit))
            .unwrap();
        let queued = ex.submit(inc, 1).unwrap();
        let err = f.result_timeout(SOON).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimeLimit, "{m}: {err}");
        assert!(t0.elapsed() < limit + GRACE + Duration::from_millis(100) + Duration::from_secs(1));
        assert_eq!(queued.result_timeout(SOON).unwrap(), 2, "{m}");
        assert_eq!(ex.submit(inc, 2).unwrap().result_timeout(SOON).unwrap(), 3);
        // A default limit on the executor.
        let ex2 = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(m)
            .limits(Limits::new().time_limit(limit))
            .build()
            .unwrap();
        let err = ex2
            .submit(spin, ())
            .unwrap()
            .result_timeout(SOON)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimeLimit, "{m}");
        assert_eq!(ex2.submit(inc, 5).unwrap().result_timeout(SOON).unwrap(), 6);
        ex.shutdown(true, false).unwrap();
        ex2.shutdown(true, false).unwrap();
    }
}

/// Counts a start, then aborts: a crashing initializer.
fn crash_init(starts: AtomicU64) {
    starts.fetch_add(1, Ordering::SeqCst);
    std::process::abort();
}

/// Counts a run, then SIGKILLs its own worker.
fn killer(runs: AtomicU64) -> u32 {
    runs.fetch_add(1, Ordering::SeqCst);
    crate::kill(std::process::id(), libc::SIGKILL);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_crashing_initializer_stops_at_the_restart_limit() {
    let _g = shared();
    for m in METHODS {
        let starts = AtomicU64::new(0).unwrap();
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .initializer(crash_init, starts.clone())
            .build()
            .unwrap();
        let err = pool
            .apply_async(inc, 1)
            .unwrap()
            .get_timeout(SOON)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RestartLimit, "{m}: {err}");
        // Later tasks fail at once, and no more workers start.
        let again = pool.apply_async(inc, 2).map(|r| r.get_timeout(SOON));
        assert!(
            matches!(&again, Err(e) | Ok(Err(e)) if e.kind() == ErrorKind::RestartLimit),
            "{m}: {again:?}"
        );
        // A worker already on its way when the pool broke may still run
        // its initializer; then nothing more starts.
        std::thread::sleep(Duration::from_millis(500));
        let n = starts.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(starts.load(Ordering::SeqCst), n, "{m}: workers still start");
        // Six deaths in a row break it; the second slot may have one more.
        assert!((6..=8).contains(&n), "{m}: {n} starts");
        pool.terminate();
    }
}

#[test]
fn max_restarts_bounds_the_rate_of_deaths() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .max_restarts(3, Duration::from_secs(60))
            .build()
            .unwrap();
        let runs = AtomicU64::new(0).unwrap();
        for round in 0..3 {
            let e = pool.apply(killer, runs.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WorkerLost, "{m} round {round}: {e}");
        }
        // The fourth death is one too many.
        let e = pool
            .apply_async(killer, runs.clone())
            .unwrap()
            .get_timeout(SOON)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RestartLimit, "{m}: {e}");
        let e = pool.apply_async(inc, 1).map(|r| r.get_timeout(SOON));
        assert!(
            matches!(&e, Err(e) | Ok(Err(e)) if e.kind() == ErrorKind::RestartLimit),
            "{m}: {e:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 4, "{m}");
        // Stops for time limits are not counted.
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .max_restarts(1, Duration::from_secs(60))
            .limits(Limits::new().time_limit(Duration::from_millis(50)))
            .build()
            .unwrap();
        for _ in 0..3 {
            let e = pool.apply_async(spin, ()).unwrap().get_timeout(SOON);
            assert_eq!(e.unwrap_err().kind(), ErrorKind::TimeLimit, "{m}");
        }
        assert_eq!(pool.apply(inc, 1).unwrap(), 2, "{m}");
    }
}

#[test]
fn limits_that_make_no_sense_are_refused() {
    let _g = shared();
    let zero = Limits::new().time_limit(Duration::ZERO);
    let inverted = Limits::new()
        .time_limit(Duration::from_secs(1))
        .soft_time_limit(Duration::from_secs(2));
    for l in [zero, inverted] {
        let e = Pool::builder().processes(1).limits(l).build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    let pool = Pool::new(1).unwrap();
    let e = pool.apply_async_limited(inc, 1, inverted).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // A per-call soft limit past the pool's hard one, as merged.
    let pool = Pool::builder()
        .processes(1)
        .limits(Limits::new().time_limit(Duration::from_secs(1)))
        .build()
        .unwrap();
    let soft = Limits::new().soft_time_limit(Duration::from_secs(2));
    let e = pool.apply_async_limited(inc, 1, soft).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn stopped_workers_leave_no_zombies_and_no_descriptors() {
    let _g = exclusive();
    // Warm up: the fork server and lazily opened descriptors.
    one_worker(StartMethod::ForkServer).apply(inc, 1).unwrap();
    let fds = fd_count();
    let kids = children().len();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .limits(Limits::new().time_limit(Duration::from_millis(50)))
            .build()
            .unwrap();
        for _ in 0..3 {
            let e = pool.apply_async(spin, ()).unwrap().get_timeout(SOON);
            assert_eq!(e.unwrap_err().kind(), ErrorKind::TimeLimit, "{m}");
        }
        assert_eq!(pool.apply(inc, 1).unwrap(), 2);
        pool.close();
        pool.join_timeout(SOON).unwrap();
    }
    let give_up = Instant::now() + SOON;
    while (fd_count() > fds || children().len() > kids) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fd_count(), fds);
    assert_eq!(children().len(), kids, "{:?}", children());
}

/// The worker's resident set, in bytes.
fn rss(_: ()) -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Leaks `mib` MiB of touched memory; returns its pid.
fn leak(mib: usize) -> u32 {
    std::mem::forget(vec![1u8; mib << 20]);
    std::process::id()
}

#[test]
fn a_leaking_worker_is_recycled_by_max_memory_per_child() {
    let _g = shared();
    for m in METHODS {
        let base = one_worker(m).apply(rss, ()).unwrap();
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .max_memory_per_child(base + (100 << 20))
            .build()
            .unwrap();
        // 64 MiB: under the line, the worker stays; 128 MiB: over it, the
        // task succeeds and the worker is replaced after it.
        let first = pool.apply(leak, 64).unwrap();
        let second = pool.apply(leak, 64).unwrap();
        let third = pool.apply(leak, 1).unwrap();
        assert_eq!(first, second, "{m}");
        assert_ne!(second, third, "{m}: the leaking worker was not recycled");
        // Tasks queued behind the recycling run on the next worker.
        let rs: Vec<_> = (0..4).map(|i| pool.apply_async(inc, i).unwrap()).collect();
        drop(pool.apply_async(leak, 128).unwrap());
        for (i, r) in rs.into_iter().enumerate() {
            assert_eq!(r.get_timeout(SOON).unwrap(), i as i64 + 1, "{m}");
        }
        pool.close();
        pool.join_timeout(SOON).unwrap();
    }
}

/// Grows a vector, touching it, to `mib` MiB.
fn hog(mib: usize) -> usize {
    let chunk = vec![1u8; 1 << 20];
    let mut v: Vec<u8> = Vec::new();
    for _ in 0..mib {
        v.extend_from_slice(&chunk);
    }
    v.len()
}

#[test]
fn a_task_past_memory_limit_fails_with_memory_limit_and_the_pool_goes_on() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .memory_limit(256 << 20)
            .build()
            .unwrap();
        assert_eq!(pool.apply(hog, 16).unwrap(), 16 << 20, "{m}");
        let queued: Vec<_> = (0..3).map(|i| (i, pool.apply_async(inc, i))).collect();
        let err = pool
            .apply_async(hog, 1024)
            .unwrap()
            .get_timeout(SOON)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MemoryLimit, "{m}: {err}");
        assert_eq!(err.memory_limit(), Some(256 << 20));
        for (i, r) in queued {
            assert_eq!(r.unwrap().get_timeout(SOON).unwrap(), i + 1, "{m}");
        }
        assert_eq!(pool.apply(hog, 16).unwrap(), 16 << 20, "{m}");
        pool.close();
        pool.join_timeout(SOON).unwrap();
        // The executor does not break.
        let ex = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(m)
            .memory_limit(256 << 20)
            .build()
            .unwrap();
        let err = ex
            .submit(hog, 1024)
            .unwrap()
            .result_timeout(SOON)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MemoryLimit, "{m}: {err}");
        assert_eq!(ex.submit(inc, 1).unwrap().result_timeout(SOON).unwrap(), 2);
    }
}

#[test]
fn worker_stats_report_pid_tasks_rss_and_the_current_task() {
    let _g = shared();
    for m in METHODS {
        let pool = one_worker(m);
        let pid = pool.apply(pid_of, 0).unwrap();
        assert_eq!(pool.apply(inc, 1).unwrap(), 2);
        let idle = pool.worker_stats();
        assert_eq!(idle.len(), 1, "{m}: {idle:?}");
        assert_eq!((idle[0].slot, idle[0].pid), (0, pid), "{m}");
        assert_eq!(idle[0].tasks_done, 2, "{m}");
        assert!(idle[0].rss.is_some_and(|r| r > 0), "{m}");
        assert_eq!(idle[0].current_task, None, "{m}");
        let r = pool.apply_async(nap_ms, 300).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let busy = pool.worker_stats();
        let t = busy[0].current_task.expect("a task runs");
        assert!(t >= Duration::from_millis(100) && t < SOON, "{m}: {t:?}");
        assert_eq!(r.get_timeout(SOON).unwrap(), 300);
        let ex = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(m)
            .build()
            .unwrap();
        assert_eq!(ex.worker_stats(), []);
        let pid = ex.submit(pid_of, 0).unwrap().result_timeout(SOON).unwrap();
        assert_eq!(ex.worker_stats()[0].pid, pid, "{m}");
    }
}

/// Stops its own worker (SIGSTOP): SIGTERM then stays pending, as for a
/// task that ignores it, and only the SIGKILL after the grace ends it.
fn freeze(_: ()) -> u32 {
    crate::kill(std::process::id(), libc::SIGSTOP);
    spin(())
}

#[test]
fn a_worker_that_outlives_sigterm_is_killed_after_the_grace() {
    let _g = shared();
    let (limit, grace) = (Duration::from_millis(100), Duration::from_millis(300));
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .kill_grace(grace)
            .build()
            .unwrap();
        let before = pool.apply(pid_of, 0).unwrap();
        let t0 = Instant::now();
        let err = pool
            .apply_async_limited(freeze, (), Limits::new().time_limit(limit))
            .unwrap()
            .get_timeout(SOON)
            .unwrap_err();
        let took = t0.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimeLimit, "{m}: {err}");
        assert_eq!(err.exitcode(), Some(-libc::SIGKILL), "{m}: {err:?}");
        assert!(took >= limit + grace, "{m}: {took:?}");
        assert_ne!(pool.apply(pid_of, 0).unwrap(), before, "{m}");
        pool.close();
        pool.join_timeout(SOON).unwrap();
    }
}

/// An initializer that allocates past the worker's cap.
fn hog_init(starts: AtomicU64) {
    starts.fetch_add(1, Ordering::SeqCst);
    hog(1024);
}

#[test]
fn an_initializer_past_memory_limit_stops_at_the_restart_limit() {
    let _g = shared();
    for m in METHODS {
        let starts = AtomicU64::new(0).unwrap();
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .memory_limit(256 << 20)
            .initializer(hog_init, starts.clone())
            .build()
            .unwrap();
        let err = pool
            .apply_async(inc, 1)
            .unwrap()
            .get_timeout(SOON)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RestartLimit, "{m}: {err}");
        assert_eq!(starts.load(Ordering::SeqCst), 6, "{m}");
    }
}
