//! A worker's death costs exactly the task it was running: every result it
//! finished reaches its caller, the running task fails (`WorkerLost`, or
//! the executor breaks with finished futures keeping their values), and no
//! task runs twice. Each task counts its runs in a shared atomic, so "ran
//! exactly once" is checked across the processes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mp_pool::{ErrorKind, Pool, ProcessPoolExecutor};
use mp_process::StartMethod;
use mp_shm::AtomicU64;
use proptest::prelude::*;

use crate::{METHODS, SOON, inc, shared};

/// Counts a run, then returns `x + 1`.
fn counted(arg: (AtomicU64, i64)) -> i64 {
    arg.0.fetch_add(1, Ordering::SeqCst);
    arg.1 + 1
}

/// Counts a run, then SIGKILLs its own process.
fn killer(runs: AtomicU64) -> i64 {
    runs.fetch_add(1, Ordering::SeqCst);
    crate::kill(std::process::id(), libc::SIGKILL);
    // The signal is on its way; never return a result.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// An item of a chunk: counts its run, and kills its worker if told to.
fn item(arg: (AtomicU64, i64, bool)) -> i64 {
    arg.0.fetch_add(1, Ordering::SeqCst);
    if arg.2 {
        crate::kill(std::process::id(), libc::SIGKILL);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    arg.1 * 2
}

/// Counts a run, then returns `n` bytes: past the ring's inline limit,
/// the bytes go through the worker's socket.
fn big(arg: (AtomicU64, usize)) -> Vec<u8> {
    arg.0.fetch_add(1, Ordering::SeqCst);
    vec![7; arg.1]
}

fn counter() -> AtomicU64 {
    AtomicU64::new(0).unwrap()
}

/// Rounds per start method: spawn starts a replacement worker in tens of
/// milliseconds (a fresh program), so it gets fewer.
fn rounds(m: StartMethod) -> usize {
    if m == StartMethod::Spawn { 15 } else { 50 }
}

#[test]
fn pool_a_finished_result_survives_the_next_task_killing_its_worker() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .build()
            .unwrap();
        for round in 0..rounds(m) as i64 {
            // Quick tasks first, so that the worker has a measured task
            // time and tasks are sent ahead to it.
            assert_eq!(
                pool.map(inc, 0..20, Some(1)).unwrap(),
                (1..21).collect::<Vec<_>>(),
                "{m}"
            );
            let (ca, cb, cc) = (counter(), counter(), counter());
            let a = pool.apply_async(counted, (ca.clone(), round)).unwrap();
            let b = pool.apply_async(killer, cb.clone()).unwrap();
            let c = pool.apply_async(counted, (cc.clone(), -round)).unwrap();
            assert_eq!(a.get_timeout(SOON).unwrap(), round + 1, "{m} round {round}");
            let e = b.get_timeout(SOON).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WorkerLost, "{m} round {round}: {e}");
            assert_eq!(e.exitcode(), Some(-libc::SIGKILL), "{m}: {e}");
            // Sent ahead behind the killer, never started: it runs on the
            // replacement worker.
            assert_eq!(c.get_timeout(SOON).unwrap(), 1 - round, "{m} round {round}");
            assert_eq!(ca.load(Ordering::SeqCst), 1, "{m} round {round}");
            assert_eq!(cb.load(Ordering::SeqCst), 1, "{m} round {round}: ran twice");
            assert_eq!(cc.load(Ordering::SeqCst), 1, "{m} round {round}");
        }
        assert_eq!(pool.apply(inc, 41).unwrap(), 42, "{m}");
    }
}

#[test]
fn a_big_result_survives_the_next_task_killing_its_worker() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .build()
            .unwrap();
        for (round, n) in [100, 300_000, 3_000_000, 1 << 20].into_iter().enumerate() {
            let (ca, cb) = (counter(), counter());
            let a = pool.apply_async(big, (ca.clone(), n)).unwrap();
            let b = pool.apply_async(killer, cb.clone()).unwrap();
            let got = a.get_timeout(SOON).unwrap();
            assert!(
                got.len() == n && got.iter().all(|&b| b == 7),
                "{m} round {round}"
            );
            let e = b.get_timeout(SOON).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WorkerLost, "{m} round {round}: {e}");
            assert_eq!(ca.load(Ordering::SeqCst), 1, "{m} round {round}");
            assert_eq!(cb.load(Ordering::SeqCst), 1, "{m} round {round}: ran twice");
        }
    }
}

#[test]
fn executor_breaks_but_finished_futures_keep_their_values() {
    let _g = shared();
    for m in METHODS {
        for round in 0..rounds(m) as i64 / 2 {
            let ex = ProcessPoolExecutor::builder()
                .max_workers(1)
                .start_method(m)
                .build()
                .unwrap();
            for i in 0..10 {
                assert_eq!(ex.submit(inc, i).unwrap().result().unwrap(), i + 1, "{m}");
            }
            let (ca, cb) = (counter(), counter());
            let a = ex.submit(counted, (ca.clone(), round)).unwrap();
            let b = ex.submit(killer, cb.clone()).unwrap();
            assert_eq!(
                a.result_timeout(SOON).unwrap(),
                round + 1,
                "{m} round {round}"
            );
            let e = b.result_timeout(SOON).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Broken, "{m} round {round}: {e}");
            // Still there after the break.
            assert_eq!(a.result().unwrap(), round + 1, "{m}");
            assert_eq!(ca.load(Ordering::SeqCst), 1, "{m} round {round}");
            assert_eq!(cb.load(Ordering::SeqCst), 1, "{m} round {round}: ran twice");
            let later = ex.submit(inc, 1);
            assert!(
                later.is_err() || later.unwrap().result_timeout(SOON).is_err(),
                "{m}: a broken executor takes no work"
            );
        }
        // A new executor works.
        let ex = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(m)
            .build()
            .unwrap();
        assert_eq!(ex.submit(inc, 1).unwrap().result().unwrap(), 2, "{m}");
    }
}

/// `imap` with chunks of 4 over 16 items, the killer at position `at`: its
/// chunk fails as a whole, its items before the killer ran once and are
/// not re-run, those after it never ran; every other chunk is right.
fn chunk_with_killer(pool: &Pool, m: StartMethod, at: usize) {
    let counts: Vec<AtomicU64> = (0..16).map(|_| counter()).collect();
    let items: Vec<(AtomicU64, i64, bool)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i as i64, i == at))
        .collect();
    let got: Vec<_> = pool.imap(item, items, Some(4)).unwrap().collect();
    let chunk = at / 4;
    for (i, r) in got.iter().enumerate() {
        let runs = counts[i].load(Ordering::SeqCst);
        if i / 4 == chunk {
            let e = r.as_ref().unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::WorkerLost,
                "{m} at {at}, item {i}: {e}"
            );
            let want = u64::from(i <= at);
            assert_eq!(runs, want, "{m} at {at}: item {i} ran {runs} times");
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as i64 * 2, "{m} at {at}, item {i}");
            assert_eq!(runs, 1, "{m} at {at}: item {i} ran {runs} times");
        }
    }
}

#[test]
fn imap_chunks_with_a_killer_at_the_start_middle_and_end() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .build()
            .unwrap();
        // Start, middle and end of the second chunk, then of the first and
        // the last.
        for at in [4, 5, 7, 0, 2, 15] {
            chunk_with_killer(&pool, m, at);
        }
        assert_eq!(pool.map(inc, 0..100, Some(7)).unwrap().len(), 100, "{m}");
    }
}

#[test]
fn a_worker_killed_while_idle_fails_nothing() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .build()
            .unwrap();
        let pid = pool.apply(crate::pid_of, 0).unwrap();
        crate::kill(pid, libc::SIGKILL);
        let c = counter();
        // Whether it reaches the dead worker or its replacement, the task
        // runs once and succeeds.
        assert_eq!(
            pool.apply_async(counted, (c.clone(), 1))
                .unwrap()
                .get_timeout(SOON)
                .unwrap(),
            2,
            "{m}"
        );
        assert_eq!(c.load(Ordering::SeqCst), 1, "{m}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Random tasks on two workers, some of them killers: every other
    /// result equals the serial one, every killer fails, none runs twice.
    #[test]
    fn random_tasks_with_killers(kinds in proptest::collection::vec(0u8..8, 1..24)) {
        let _g = shared();
        let pool = Pool::builder()
            .processes(2)
            .start_method(StartMethod::Fork)
            .build()
            .unwrap();
        let counts: Vec<AtomicU64> = kinds.iter().map(|_| counter()).collect();
        let results: Vec<_> = kinds
            .iter()
            .zip(&counts)
            .enumerate()
            .map(|(i, (k, c))| {
                if *k == 0 {
                    pool.apply_async(killer, c.clone()).unwrap()
                } else {
                    pool.apply_async(counted, (c.clone(), i as i64)).unwrap()
                }
            })
            .collect();
        for (i, (k, r)) in kinds.iter().zip(&results).enumerate() {
            let got = r.get_timeout(SOON);
            if *k == 0 {
                let e = got.unwrap_err();
                prop_assert_eq!(e.kind(), ErrorKind::WorkerLost, "task {}: {}", i, e);
            } else {
                prop_assert_eq!(got.unwrap(), i as i64 + 1, "task {}", i);
            }
            prop_assert_eq!(counts[i].load(Ordering::SeqCst), 1, "task {} runs", i);
        }
    }
}
