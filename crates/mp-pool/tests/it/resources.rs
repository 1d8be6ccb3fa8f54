//! Resources: pools created and destroyed, and recycled workers, leave the
//! fd count and the children unchanged.

use mp_pool::Pool;

use crate::{SOON, children, exclusive, fd_count, inc};

fn settle(want_fds: usize) -> usize {
    // Reapers of other tests' children may close their fds a moment late.
    let give_up = std::time::Instant::now() + SOON;
    loop {
        let n = fd_count();
        if n <= want_fds || std::time::Instant::now() > give_up {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn pools_and_recycling_leak_no_fds_and_no_children() {
    let _g = exclusive();
    // Warm up: the fork server and lazily opened descriptors.
    Pool::new(2).unwrap().apply(inc, 1).unwrap();
    let fds = settle(0);
    let kids = children().len();
    for _ in 0..20 {
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.apply(inc, 1).unwrap(), 2);
        pool.close();
        pool.join().unwrap();
    }
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(10)
        .build()
        .unwrap();
    let rs: Vec<_> = (0..1000)
        .map(|i| pool.apply_async(inc, i).unwrap())
        .collect();
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.get().unwrap(), i as i64 + 1);
    }
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert_eq!(settle(fds), fds);
    assert_eq!(children().len(), kids, "{:?}", children());
}

/// This process's resident set, in bytes (`VmRSS` of /proc/self/status,
/// which is in kB and so needs no page size).
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kb * 1024
}

const QUEUED: usize = 1_000_000;

#[test]
fn a_million_queued_tasks_take_no_fds_and_bounded_memory() {
    let _g = exclusive();
    let pool = Pool::new(2).unwrap();
    // Both workers up (and their descriptors open) before counting.
    assert_eq!(pool.map(inc, 0..4, Some(1)).unwrap(), [1, 2, 3, 4]);
    // Both workers busy for the whole test, so the tasks below stay queued
    // (but for each worker's short run-ahead).
    let busy: Vec<_> = (0..2)
        .map(|_| pool.apply_async(crate::sleep_ms, 60_000).unwrap())
        .collect();
    let fds = fd_count();
    let rss = rss_bytes();
    let queued: Vec<_> = (0..QUEUED as i64)
        .map(|i| pool.apply_async(inc, i).unwrap())
        .collect();
    // Nothing per queued task but its data: no descriptor ...
    assert_eq!(fd_count(), fds);
    // ... and bounded memory: the task, its result cell and the caller's
    // `AsyncResult` handle, far below 1 KiB each.
    let grown = rss_bytes().saturating_sub(rss);
    assert!(
        grown < QUEUED * 1024,
        "{} bytes per queued task",
        grown / QUEUED
    );
    assert!(!queued[QUEUED - 1].ready(), "the tasks were not queued");
    let t = std::time::Instant::now();
    pool.terminate();
    assert!(t.elapsed() < SOON);
    let terminated = |e: mp_pool::Error| assert_eq!(e.kind(), mp_pool::ErrorKind::Terminated);
    for r in &busy {
        terminated(r.get_timeout(SOON).unwrap_err());
    }
    for r in [&queued[0], &queued[QUEUED - 1]] {
        terminated(r.get_timeout(SOON).unwrap_err());
    }
    pool.join_timeout(SOON).unwrap();
    eprintln!("{} bytes per queued task", grown / QUEUED);
}
