//! The Pool API: results, ordering, chunking, lifecycle errors, callbacks,
//! initializer and worker recycling.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mp_pool::{ErrorKind, Pool, TaskPool, ThreadPool};

use crate::{METHODS, SOON, inc, pid_of, shared, sleep_ms};

fn task(n: u64) -> u64 {
    (0..n).map(std::hint::black_box).sum()
}

fn add(xy: (i64, i64)) -> i64 {
    xy.0 + xy.1
}

#[test]
fn apply_and_apply_async_give_the_article_results() {
    let _g = shared();
    for m in METHODS {
        let pool = crate::pool_with(m);
        let r1 = pool.apply_async(task, 10_000).unwrap();
        let r2 = pool.apply_async(task, 20_000).unwrap();
        assert_eq!(pool.apply(task, 4).unwrap(), 6, "{m}");
        pool.close();
        pool.join().unwrap();
        assert_eq!(r1.get().unwrap(), 49_995_000, "{m}");
        assert_eq!(r2.get().unwrap(), 199_990_000, "{m}");
        assert!(r1.ready());
        assert!(r1.successful().unwrap());
    }
}

#[test]
fn async_result_timeouts_lose_nothing() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let r = pool.apply_async(sleep_ms, 400).unwrap();
    assert!(!r.ready());
    assert_eq!(
        r.successful().unwrap_err().kind(),
        ErrorKind::NotReady,
        "successful before ready"
    );
    let t = Instant::now();
    let e = r.get_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(e.is_timeout());
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(!r.wait_timeout(Duration::from_millis(10)));
    assert_eq!(r.get_timeout(SOON).unwrap(), 400);
    assert!(r.wait_timeout(Duration::ZERO));
    r.wait();
}

#[test]
fn map_starmap_and_async_forms_keep_input_order() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let want: Vec<i64> = (1..=1000).collect();
    for cs in [None, Some(1), Some(7), Some(100), Some(5000)] {
        assert_eq!(pool.map(inc, 0..1000, cs).unwrap(), want, "{cs:?}");
        assert_eq!(
            pool.map_async(inc, 0..1000, cs).unwrap().get().unwrap(),
            want
        );
    }
    let pairs: Vec<(i64, i64)> = (0..100).map(|i| (i, 2 * i)).collect();
    let sums: Vec<i64> = (0..100).map(|i| 3 * i).collect();
    assert_eq!(pool.starmap(add, pairs.clone(), None).unwrap(), sums);
    assert_eq!(
        pool.starmap_async(add, pairs, Some(3))
            .unwrap()
            .get()
            .unwrap(),
        sums
    );
}

#[test]
fn empty_input_gives_empty_results() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    assert!(pool.map(inc, Vec::new(), None).unwrap().is_empty());
    assert!(
        pool.map_async(inc, Vec::new(), None)
            .unwrap()
            .get()
            .unwrap()
            .is_empty()
    );
    assert_eq!(pool.imap(inc, Vec::new(), None).unwrap().count(), 0);
    assert_eq!(
        pool.imap_unordered(inc, Vec::new(), None).unwrap().count(),
        0
    );
}

#[test]
fn chunksize_zero_is_an_error() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    for e in [
        pool.map(inc, 0..3, Some(0)).unwrap_err(),
        pool.imap(inc, 0..3, Some(0)).unwrap_err(),
        pool.imap_unordered(inc, 0..3, Some(0)).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    assert_eq!(Pool::new(0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        Pool::builder()
            .processes(1)
            .maxtasksperchild(0)
            .build()
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn imap_yields_in_input_order_and_unordered_in_completion_order() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let got: Vec<i64> = pool
        .imap(inc, 0..1000, Some(100))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, (1..=1001).take(1000).collect::<Vec<_>>());
    // A long task first and a short one second: imap keeps the order,
    // imap_unordered yields the short one first.
    let ordered: Vec<u64> = pool
        .imap(sleep_ms, [600, 10], None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, [600, 10]);
    let mut it = pool.imap_unordered(sleep_ms, [600, 10], None).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 10);
    assert_eq!(it.progress().1, 2);
    assert_eq!(it.next().unwrap().unwrap(), 600);
    assert!(it.next().is_none());
}

#[test]
fn imap_next_timeout_leaves_the_iterator_usable() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let mut it = pool.imap(sleep_ms, [300, 1], None).unwrap();
    let t = Instant::now();
    let e = it
        .next_timeout(Duration::from_millis(30))
        .unwrap()
        .unwrap_err();
    assert!(e.is_timeout());
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(it.next_timeout(SOON).unwrap().unwrap(), 300);
    assert_eq!(it.next_timeout(SOON).unwrap().unwrap(), 1);
    assert!(it.next_timeout(SOON).is_none());
}

#[test]
fn a_closed_pool_refuses_work_and_join_needs_close() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.join().unwrap_err().kind(), ErrorKind::StillRunning);
    let r = pool.apply_async(sleep_ms, 100).unwrap();
    pool.close();
    assert_eq!(
        pool.apply(inc, 1).unwrap_err().kind(),
        ErrorKind::NotRunning
    );
    assert_eq!(
        pool.map(inc, [1], None).unwrap_err().kind(),
        ErrorKind::NotRunning
    );
    pool.join_timeout(SOON).unwrap();
    // Submitted before close: still retrievable.
    assert_eq!(r.get().unwrap(), 100);
    pool.terminate();
    assert_eq!(
        pool.apply(inc, 1).unwrap_err().kind(),
        ErrorKind::NotRunning
    );
}

#[test]
fn callbacks_run_before_results_are_ready_and_before_join_returns() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut results = Vec::new();
    for i in 0..20 {
        let s = seen.clone();
        let e = errors.clone();
        results.push(
            pool.apply_async_with(
                inc,
                i,
                move |r: &i64| s.lock().unwrap().push(*r),
                move |_| {
                    e.fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap(),
        );
    }
    let total = Arc::new(Mutex::new(None));
    let t2 = total.clone();
    let failed = Arc::new(Mutex::new(None));
    let f2 = failed.clone();
    pool.map_async_with(
        inc,
        0..10,
        Some(3),
        move |v: &Vec<i64>| *t2.lock().unwrap() = Some(v.iter().sum::<i64>()),
        |_| {},
    )
    .unwrap();
    pool.map_async_with(
        crate::boom,
        0..10,
        Some(2),
        |_: &Vec<i64>| {},
        move |e| *f2.lock().unwrap() = Some(e.kind()),
    )
    .unwrap();
    // The result is marked ready after its callback ran.
    results[0].get().unwrap();
    assert!(seen.lock().unwrap().contains(&1));
    pool.close();
    pool.join().unwrap();
    let mut got = seen.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    assert_eq!(*total.lock().unwrap(), Some(55));
    assert_eq!(*failed.lock().unwrap(), Some(ErrorKind::Panicked));
}

#[test]
fn each_chunk_runs_in_one_worker() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let pids = pool.map(pid_of, 0..400, Some(50)).unwrap();
    for chunk in pids.chunks(50) {
        assert!(chunk.iter().all(|p| *p == chunk[0]), "{chunk:?}");
    }
}

#[test]
fn maxtasksperchild_recycles_workers() {
    let _g = shared();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(2)
        .build()
        .unwrap();
    let pids = pool.map(pid_of, 0..20, Some(1)).unwrap();
    let mut per_pid: HashMap<u32, usize> = HashMap::new();
    for p in &pids {
        *per_pid.entry(*p).or_default() += 1;
    }
    assert!(per_pid.values().all(|n| *n <= 2), "{per_pid:?}");
    assert!(per_pid.len() >= 10, "{per_pid:?}");
    // maxtasksperchild = 1 with close + join finishes every task.
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let rs: Vec<_> = (0..6).map(|i| pool.apply_async(inc, i).unwrap()).collect();
    pool.close();
    pool.join_timeout(SOON).unwrap();
    let got: Vec<i64> = rs.iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(got, [1, 2, 3, 4, 5, 6]);
}

static INIT_VALUE: AtomicUsize = AtomicUsize::new(0);

fn init_worker(v: usize) {
    INIT_VALUE.store(v, Ordering::SeqCst);
}

fn read_init(_: ()) -> usize {
    INIT_VALUE.load(Ordering::SeqCst)
}

#[test]
fn the_initializer_runs_in_each_worker_first() {
    let _g = shared();
    for m in METHODS {
        let pool = Pool::builder()
            .processes(2)
            .initializer(init_worker, 42)
            .start_method(m)
            .build()
            .unwrap();
        let got = pool.map(read_init, vec![(); 8], Some(1)).unwrap();
        assert!(got.iter().all(|v| *v == 42), "{m}: {got:?}");
    }
}

#[test]
fn the_thread_pool_has_the_same_api() {
    let _g = shared();
    fn run(pool: &impl TaskPool) {
        assert_eq!(pool.apply(task, 10_000).unwrap(), 49_995_000);
        assert_eq!(pool.apply_async(inc, 1).unwrap().get().unwrap(), 2);
        assert_eq!(
            pool.map(inc, 0..100, None).unwrap(),
            (1..=100).collect::<Vec<_>>()
        );
        assert_eq!(
            pool.map_async(inc, 0..10, Some(3))
                .unwrap()
                .get()
                .unwrap()
                .len(),
            10
        );
        let got: Vec<i64> = pool
            .imap(inc, 0..50, Some(4))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (1..=50).collect::<Vec<_>>());
        let got: HashSet<i64> = pool
            .imap_unordered(inc, 0..50, None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got.len(), 50);
        let e = pool.apply(crate::boom, 3).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.panic_info().unwrap().message(), "task 3 failed");
        assert!(e.panic_info().unwrap().location().is_some());
        assert_eq!(pool.join().unwrap_err().kind(), ErrorKind::StillRunning);
        pool.close();
        pool.join_timeout(SOON).unwrap();
        assert_eq!(
            pool.apply(inc, 1).unwrap_err().kind(),
            ErrorKind::NotRunning
        );
    }
    run(&Pool::new(2).unwrap());
    run(&ThreadPool::new(2).unwrap());
}

fn my_name(_: ()) -> String {
    mp_process::current_process().name().to_string()
}

/// Workers are named as CPython names them: `<Method>PoolWorker-<n>`.
#[test]
fn workers_are_named_after_their_start_method() {
    let _g = shared();
    for (m, prefix) in [
        (mp_process::StartMethod::Fork, "ForkPoolWorker-"),
        (mp_process::StartMethod::Spawn, "SpawnPoolWorker-"),
        (mp_process::StartMethod::ForkServer, "ForkServerPoolWorker-"),
    ] {
        let pool = Pool::builder()
            .processes(1)
            .start_method(m)
            .build()
            .unwrap();
        let name = pool.apply(my_name, ()).unwrap();
        assert!(name.starts_with(prefix), "{m:?}: {name}");
        assert!(name[prefix.len()..].parse::<u64>().is_ok(), "{name}");
    }
}

/// A result whose serialization fails.
struct Unsendable;

impl serde::Serialize for Unsendable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value stays here"))
    }
}

impl<'de> serde::Deserialize<'de> for Unsendable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unsendable)
    }
}

fn unsendable(_: u32) -> Unsendable {
    Unsendable
}

/// A result that cannot be serialized fails its task with a
/// serialization error, again and again, and costs no worker.
#[test]
fn results_that_fail_to_serialize_fail_their_task_only() {
    let _g = shared();
    let pool = Pool::new(1).unwrap();
    let pid = pool.apply(crate::pid_of, 0).unwrap();
    for i in 0..20 {
        let e = pool.apply(unsendable, i).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization, "{e}");
        assert!(e.to_string().contains("cannot encode the result"), "{e}");
    }
    assert_eq!(pool.apply(crate::pid_of, 0).unwrap(), pid, "same worker");
}
