//! Results, exit codes, signals, timeouts and reaping, under each start
//! method.

use std::time::{Duration, Instant};

use mp_process::{ErrorKind, Process, StartMethod};

use crate::{METHODS, exclusive, fd_count, running, shared, zombie_count};

fn add(x: (i64, i64)) -> i64 {
    x.0 + x.1
}

fn noop(_: ()) {}

fn echo(v: Vec<u8>) -> Vec<u8> {
    v
}

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn kill_self(sig: i32) {
    // SAFETY: raise takes a plain signal number; the process ends here.
    unsafe { libc::raise(sig) };
    std::thread::sleep(Duration::from_secs(10));
}

#[test]
fn result_round_trip() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(add, (40, 2)).start_method(m);
        assert_eq!(p.exitcode(), None);
        assert!(!p.is_alive());
        p.start().unwrap();
        assert!(p.pid().is_some());
        assert_eq!(p.join().unwrap(), 42, "{m}");
        assert_eq!(p.exitcode(), Some(0), "{m}");
        assert!(!p.is_alive());
    }
}

#[test]
fn sixteen_mib_payload_both_ways() {
    let _g = shared();
    let payload: Vec<u8> = (0..16 << 20).map(|i: u32| (i * 7 + 3) as u8).collect();
    for m in METHODS {
        let mut p = Process::new(echo, payload.clone()).start_method(m);
        p.start().unwrap();
        let back = p.join().unwrap();
        assert!(back == payload, "{m}: payload changed");
    }
}

#[test]
fn exit_code_comes_back() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(exit_with, 3).start_method(m);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Died, "{m}");
        assert_eq!(err.exit_status().unwrap().code(), Some(3), "{m}");
        assert_eq!(err.exitcode(), Some(3));
        assert_eq!(p.exitcode(), Some(3));
    }
}

#[test]
fn death_by_signal_comes_back() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(kill_self, libc::SIGKILL).start_method(m);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Died, "{m}");
        assert_eq!(err.exit_status().unwrap().signal(), Some(9), "{m}");
        assert_eq!(p.exitcode(), Some(-9), "{m}");
        assert!(err.to_string().contains("SIGKILL"), "{err}");

        let mut p = Process::new(kill_self, libc::SIGABRT).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap_err().exitcode(), Some(-6), "{m}");
    }
}

#[test]
fn join_timeout_expires_then_kill_and_reap() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(sleep_ms, 30_000).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        let t = Instant::now();
        let err = p.join_timeout(Duration::from_millis(200)).unwrap_err();
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{m}: returned early"
        );
        assert!(err.is_timeout(), "{m}: {err}");
        assert!(p.is_alive());
        assert_eq!(p.exitcode(), None);
        p.kill().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(p.exitcode(), Some(-9), "{m}: {err}");
        assert!(!running(pid), "{m}: child {pid} still there");
    }
}

#[test]
fn terminate_gives_minus_sigterm() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(sleep_ms, 30_000).start_method(m);
        p.start().unwrap();
        p.terminate().unwrap();
        assert!(p.join().is_err());
        assert_eq!(p.exitcode(), Some(-15), "{m}");
        // Signalling an ended child is a no-op.
        p.terminate().unwrap();
        p.kill().unwrap();
    }
}

#[test]
fn a_timed_join_that_succeeds() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(sleep_ms, 50).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), 50);
        assert_eq!(p.join().unwrap_err().kind(), ErrorKind::AlreadyJoined);
    }
}

#[test]
fn starts_while_eight_threads_are_busy() {
    let _g = shared();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Allocate and lock, to hold the locks a fork could copy.
                    let v = std::hint::black_box(vec![x; 64]);
                    x = x.wrapping_add(v[0]).wrapping_add(1);
                }
                x
            })
        })
        .collect();
    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        for i in 0..20 {
            let mut p = Process::new(add, (i, 1)).start_method(m);
            p.start().unwrap();
            assert_eq!(
                p.join_timeout(Duration::from_secs(60)).unwrap(),
                i + 1,
                "{m}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in busy {
        t.join().unwrap();
    }
}

#[test]
fn a_thousand_cycles_leak_nothing() {
    let _g = exclusive();
    for m in METHODS {
        // Warm up: the fork server and the lifeline are created once.
        let mut p = Process::new(noop, ()).start_method(m).daemon(true);
        p.start().unwrap();
        p.join().unwrap();
        let (fds, zombies) = (fd_count(), zombie_count());
        for i in 0..1000 {
            let mut p = Process::new(noop, ()).start_method(m).daemon(i % 2 == 0);
            p.start().unwrap();
            p.join().unwrap();
        }
        // At most the baseline: a reaper thread of an earlier test may
        // still have closed its last descriptor meanwhile.
        assert!(
            fd_count() <= fds,
            "{m}: fds leaked: {} after, {fds} before",
            fd_count()
        );
        assert!(zombie_count() <= zombies, "{m}: zombies left");
    }
}

#[test]
fn dropped_handles_are_reaped() {
    let _g = exclusive();
    let zombies = zombie_count();
    let mut pids = Vec::new();
    for m in METHODS {
        // A daemon is killed and reaped by drop.
        let mut d = Process::new(sleep_ms, 30_000).start_method(m).daemon(true);
        d.start().unwrap();
        let pid = d.pid().unwrap();
        drop(d);
        assert!(!running(pid), "{m}: daemon {pid} survived its handle");
        // A non-daemon runs on, detached, and is reaped when it ends.
        let mut n = Process::new(sleep_ms, 100).start_method(m);
        n.start().unwrap();
        pids.push(n.pid().unwrap());
        drop(n);
    }
    let t = Instant::now();
    while zombie_count() > zombies || pids.iter().any(|&p| running(p)) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "detached children not reaped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn closures_run_under_fork() {
    let _g = shared();
    let captured = String::from("captured by a closure");
    let mut p = Process::closure(move || captured.len());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 21);
}

/// Starts a sleeping daemon grandchild and returns its pid at once.
fn start_daemon_grandchild(m: u8) -> u32 {
    let method = match m {
        1 => StartMethod::Fork,
        2 => StartMethod::Spawn,
        _ => StartMethod::ForkServer,
    };
    let mut p = Process::new(sleep_ms, 60_000)
        .start_method(method)
        .daemon(true);
    p.start().unwrap();
    let pid = p.pid().unwrap();
    // Exit without dropping the handle: the lifeline alone must do the work.
    std::mem::forget(p);
    pid
}

#[test]
fn daemons_die_with_their_parent() {
    let _g = shared();
    for m in METHODS {
        for inner in 1..=3u8 {
            let mut p = Process::new(start_daemon_grandchild, inner).start_method(m);
            p.start().unwrap();
            let grandchild = p.join().unwrap();
            let t = Instant::now();
            while running(grandchild) {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "{m}/{inner}: daemon {grandchild} outlived its parent"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn a_child_that_never_entered_cannot_start_children() {
    let _g = shared();
    let mut p = Process::closure(|| {
        // What a child that skipped mp's entry would look like: the marker
        // is still in its environment.
        // SAFETY: a forked child has a single thread.
        unsafe { std::env::set_var("MP_PROCESS_CHILD", "999") };
        let mut q = Process::new(noop, ());
        q.start()
            .map_err(|e| e.kind() == ErrorKind::NotEntered)
            .err()
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), Some(true));
}

/// This process's fork server, found by the marker in its initial
/// environment.
fn fork_server_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .to_owned();
        let env = std::fs::read(e.path().join("environ")).ok()?;
        let marked = env
            .split(|&b| b == 0)
            .any(|kv| kv.starts_with(b"MP_PROCESS_FORKSERVER="));
        (ppid == me && marked && running(pid)).then_some(pid)
    })
}

#[test]
fn a_killed_fork_server_is_replaced() {
    let _g = exclusive();
    let zombies = zombie_count();
    let mut p = Process::new(add, (1, 1)).start_method(StartMethod::ForkServer);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 2);
    let server = fork_server_pid().expect("a fork server runs");
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    let t = Instant::now();
    while running(server) {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut p = Process::new(add, (2, 3)).start_method(StartMethod::ForkServer);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 5);
    let replacement = fork_server_pid().expect("a new fork server runs");
    assert_ne!(replacement, server);
    assert!(zombie_count() <= zombies, "the dead server was not reaped");
}

/// Starts a sleeping daemon, reports its pid through `out`, then sleeps
/// until killed.
fn start_daemon_and_wait(out: mp_process::SharedFd) {
    use std::io::Write;
    let mut p = Process::new(sleep_ms, 60_000).daemon(true);
    p.start().unwrap();
    let mut out = std::os::unix::net::UnixStream::from(out.into_inner());
    writeln!(out, "{}", p.pid().unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// A parent killed by SIGKILL (no destructor, no exit handler) still takes
/// its daemon children with it.
#[test]
fn daemons_die_with_a_parent_killed_by_sigkill() {
    let _g = shared();
    for m in METHODS {
        let (mut lines, theirs) = crate::lines_from_child();
        let mut p = Process::new(start_daemon_and_wait, theirs).start_method(m);
        p.start().unwrap();
        let daemon: u32 = lines.next().unwrap().unwrap().trim().parse().unwrap();
        p.kill().unwrap();
        let _ = p.join();
        let t = Instant::now();
        while running(daemon) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{m}: daemon {daemon} outlived its killed parent"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn child_daemon_default(_: ()) -> (bool, bool) {
    let default = Process::new(noop, ()).is_daemon();
    let chosen = Process::new(noop, ()).daemon(false).is_daemon();
    (default, chosen)
}

/// A process's `daemon` flag defaults to its creator's, as in Python.
#[test]
fn the_daemon_flag_defaults_to_the_creators() {
    let _g = shared();
    assert!(!Process::new(noop, ()).is_daemon());
    for daemon in [false, true] {
        let mut p = Process::new(child_daemon_default, ()).daemon(daemon);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), (daemon, false));
    }
}

/// A hundred children started at once all exit 0; a hundred sleeping ones
/// terminated all report SIGTERM.
#[test]
fn a_hundred_children_at_once() {
    let _g = shared();
    let mut ps: Vec<Process<()>> = (0..100).map(|_| Process::new(noop, ())).collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for p in &mut ps {
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }
    let mut ps: Vec<Process<u64>> = (0..100).map(|_| Process::new(sleep_ms, 60_000)).collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for p in &ps {
        p.terminate().unwrap();
    }
    for p in &mut ps {
        let _ = p.join();
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
    }
}
