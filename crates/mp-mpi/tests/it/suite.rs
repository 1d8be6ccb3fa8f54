//! The suite that rank 0 runs against the worker ranks: the pool API,
//! properties against the serial computation (proptest), the shared
//! counter under contention, and the pool's life cycle.

use std::collections::HashSet;
use std::time::Duration;

use mp_mpi::{ErrorKind, MpiPool, SharedCounter, TaskPool, World};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn task(n: u64) -> u64 {
    (0..n).sum()
}

fn triple(x: i64) -> i64 {
    x.wrapping_mul(3) - 1
}

fn add(p: (i64, i64)) -> i64 {
    p.0.wrapping_add(p.1)
}

fn words(s: String) -> Vec<String> {
    s.split(' ').map(str::to_owned).collect()
}

fn bump(c: SharedCounter) -> i64 {
    c.fetch_add(1).expect("fetch_add")
}

fn bump_many(args: (SharedCounter, u32)) -> u32 {
    for _ in 0..args.1 {
        args.0.fetch_add(1).expect("fetch_add");
    }
    args.1
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Code written against the trait runs on any pool.
fn squares_sum(pool: &impl TaskPool) -> u64 {
    pool.map(task, 0..50u64, Some(7)).unwrap().iter().sum()
}

fn api(world: &World) {
    let pool = MpiPool::new(world).unwrap();
    assert_eq!(pool.processes(), 2);
    assert_eq!(pool.apply(task, 10_000).unwrap(), 49_995_000);
    let rs: Vec<_> = (0..100u64)
        .map(|n| pool.apply_async(task, n).unwrap())
        .collect();
    for (n, r) in rs.iter().enumerate() {
        assert_eq!(r.get().unwrap(), task(n as u64));
    }
    assert_eq!(pool.submit(add, (2, 3)).unwrap().get().unwrap(), 5);
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)], None).unwrap(), [3, 7]);
    assert_eq!(
        pool.map(words, ["a b".to_owned(), "c".to_owned()], None)
            .unwrap(),
        [vec!["a".to_owned(), "b".to_owned()], vec!["c".to_owned()]]
    );
    assert!(
        pool.map(triple, Vec::<i64>::new(), None)
            .unwrap()
            .is_empty()
    );
    let e = pool.map(triple, [1], Some(0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let local = mp_pool::ThreadPool::new(2).unwrap();
    assert_eq!(squares_sum(&pool), squares_sum(&local));
    let r = pool.apply_async(nap, 300).unwrap();
    let e = r.get_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(r.get().unwrap(), 300);
    println!("api: ok");
}

fn properties(world: &World) {
    let pool = MpiPool::new(world).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let inputs = (
        proptest::collection::vec(any::<i64>(), 0..300),
        proptest::option::of(1usize..40),
    );
    runner
        .run(&inputs, |(items, chunksize)| {
            let serial: Vec<i64> = items.iter().copied().map(triple).collect();
            let got = pool.map(triple, items.clone(), chunksize).unwrap();
            prop_assert_eq!(&got, &serial);
            let ordered: Vec<i64> = pool
                .imap(triple, items.clone(), chunksize)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            prop_assert_eq!(&ordered, &serial);
            let mut unordered: Vec<i64> = pool
                .imap_unordered(triple, items.clone(), chunksize)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let mut sorted = serial.clone();
            unordered.sort_unstable();
            sorted.sort_unstable();
            prop_assert_eq!(unordered, sorted);
            let async_map = pool.map_async(triple, items, chunksize).unwrap();
            prop_assert_eq!(async_map.get().unwrap(), serial);
            Ok(())
        })
        .unwrap();
    println!("properties: ok");
}

fn counter(world: &World) {
    let pool = MpiPool::new(world).unwrap();
    let c = SharedCounter::new(world, 0).unwrap();
    // Every increment returns a distinct old value, from both workers and
    // from rank 0 at the same time.
    let n = 600;
    let pending = pool.map_async(bump, vec![c; n], Some(1)).unwrap();
    let mine: Vec<i64> = (0..200).map(|_| c.fetch_add(1).unwrap()).collect();
    let theirs = pending.get().unwrap();
    let all: HashSet<i64> = mine.iter().chain(&theirs).copied().collect();
    assert_eq!(all.len(), n + 200, "an old value came twice: lost update");
    assert_eq!(all, (0..(n as i64 + 200)).collect::<HashSet<_>>());
    assert_eq!(c.get().unwrap(), n as i64 + 200);
    // A second counter, with a start value; contention in long bursts.
    let d = SharedCounter::new(world, 1000).unwrap();
    let done = pool.map(bump_many, vec![(d, 500u32); 8], Some(1)).unwrap();
    assert_eq!(done.iter().sum::<u32>(), 4000);
    assert_eq!(d.get().unwrap(), 5000);
    assert_eq!(c.get().unwrap(), n as i64 + 200);
    println!("counter: ok");
}

fn life_cycle(world: &World) {
    let pool = MpiPool::new(world).unwrap();
    let r = pool.apply_async(task, 100).unwrap();
    let e = pool.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StillRunning);
    pool.close();
    pool.join().unwrap();
    assert_eq!(r.get().unwrap(), 4950);
    let e = pool.apply(task, 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRunning);

    // Terminate: queued and running tasks fail at once; the workers are
    // free again for the next pool once their current task ends.
    let pool = MpiPool::new(world).unwrap();
    let naps: Vec<_> = (0..6)
        .map(|_| pool.apply_async(nap, 200).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    pool.terminate();
    pool.join_timeout(Duration::from_secs(5)).unwrap();
    for r in &naps {
        assert_eq!(r.get().unwrap_err().kind(), ErrorKind::Terminated);
    }
    let next = MpiPool::new(world).unwrap();
    assert_eq!(next.map(task, [10, 20], None).unwrap(), [45, 190]);
    let slow = next.apply_async(nap, 500).unwrap();
    next.close();
    let e = next.join_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    next.join().unwrap();
    assert_eq!(slow.get().unwrap(), 500);
    println!("life cycle: ok");
}

pub(crate) fn run() {
    let world = mp_mpi::init().expect("init");
    assert_eq!(world.size(), 3);
    api(&world);
    properties(&world);
    counter(&world);
    life_cycle(&world);
    println!("mp-mpi suite: all passed");
}
