//! A child's own limits, under every start method: a busy child is stopped
//! at its time limit and `join` says so; a child that allocates past its
//! memory limit fails with `MemoryLimit`, not a bare SIGABRT; other aborts
//! stay aborts; a child within its limits is untouched. (That joined
//! children leave no zombie is `lifecycle`'s business.)

use std::time::{Duration, Instant};

use mp_process::{ErrorKind, Process};

use crate::{METHODS, exclusive, fd_count, shared, zombie_count};

fn spin(_: ()) -> u8 {
    loop {
        std::hint::spin_loop();
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

fn aborts(_: ()) -> u8 {
    std::process::abort()
}

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn a_busy_child_is_stopped_at_its_time_limit() {
    let _g = shared();
    for m in METHODS {
        let limit = Duration::from_millis(200);
        let mut p = Process::new(spin, ()).start_method(m).time_limit(limit);
        let t0 = Instant::now();
        p.start().unwrap();
        let err = p.join_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimeLimit, "{m}: {err}");
        assert_eq!(
            err.exit_status().and_then(|s| s.signal()),
            Some(libc::SIGALRM)
        );
        assert!(t0.elapsed() >= limit, "{m}");
        // Within its limits, a child is untouched.
        let mut p = Process::new(double, 21)
            .start_method(m)
            .time_limit(Duration::from_secs(30))
            .memory_limit(1 << 30);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(10)).unwrap(), 42, "{m}");
    }
}

#[test]
fn a_child_past_its_memory_limit_fails_with_memory_limit() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(hog, 1024)
            .start_method(m)
            .memory_limit(256 << 20);
        p.start().unwrap();
        let err = p.join_timeout(Duration::from_secs(30)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MemoryLimit, "{m}: {err}");
        assert_eq!(
            err.exit_status().and_then(|s| s.code()),
            Some(mp_process::MEMORY_LIMIT_EXIT)
        );
        // Under the cap the same child succeeds.
        let mut p = Process::new(hog, 16)
            .start_method(m)
            .memory_limit(256 << 20);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), 16 << 20);
        // An abort that is not an allocation failure stays SIGABRT.
        let mut p = Process::new(aborts, ())
            .start_method(m)
            .memory_limit(256 << 20);
        p.start().unwrap();
        let err = p.join_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Died, "{m}: {err}");
        assert_eq!(
            err.exit_status().and_then(|s| s.signal()),
            Some(libc::SIGABRT)
        );
    }
}

#[test]
fn stopped_children_leave_no_zombies_and_no_descriptors() {
    let _g = exclusive();
    for m in METHODS {
        // Warm up: the fork server and the lifeline are created once.
        let mut p = Process::new(double, 1).start_method(m).daemon(true);
        p.start().unwrap();
        p.join().unwrap();
        let (fds, zombies) = (fd_count(), zombie_count());
        for daemon in [false, true] {
            let mut p = Process::new(spin, ())
                .start_method(m)
                .daemon(daemon)
                .time_limit(Duration::from_millis(50));
            p.start().unwrap();
            let e = p.join_timeout(Duration::from_secs(10)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimeLimit, "{m}");
            let mut p = Process::new(hog, 1024)
                .start_method(m)
                .daemon(daemon)
                .memory_limit(128 << 20);
            p.start().unwrap();
            let e = p.join_timeout(Duration::from_secs(30)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::MemoryLimit, "{m}");
        }
        assert!(
            fd_count() <= fds,
            "{m}: {} descriptors, {fds} before",
            fd_count()
        );
        assert!(zombie_count() <= zombies, "{m}: zombies left");
    }
}
