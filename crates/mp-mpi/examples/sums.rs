//! The article's `task(n)` sums, computed across the ranks of an MPI job:
//! `mpirun -n 3 target/release/examples/sums` (see the README for several
//! hosts, running as root and forcing TCP).

use std::time::Instant;

use mp_mpi::{MpiPool, SharedCounter};

fn task(n: u64) -> u64 {
    (0..n).sum()
}

/// Counts a finished task in the counter every rank shares.
fn counted(args: (u64, SharedCounter)) -> u64 {
    let r = task(args.0);
    args.1
        .fetch_add(1)
        .expect("the counter lives as long as the job");
    r
}

fn main() -> Result<(), mp_mpi::Error> {
    // Ranks 1..N serve here as workers and never return.
    let world = mp_mpi::init()?;
    let pool = MpiPool::new(&world)?;
    println!("rank 0 of {}: {} workers", world.size(), pool.processes());

    let r = pool.apply_async(task, 10_000)?;
    println!("task(10000) = {}", r.get()?);
    assert_eq!(r.get()?, 49_995_000);

    let ns: Vec<u64> = (0..20).map(|i| 10_000 * (i + 1)).collect();
    let t = Instant::now();
    let sums = pool.map(task, ns.clone(), None)?;
    println!("map over {} tasks in {:?}", ns.len(), t.elapsed());
    for (n, s) in ns.iter().zip(&sums) {
        assert_eq!(*s, n * (n - 1) / 2);
    }
    println!("task(200000) = {}", sums[19]);

    let counter = SharedCounter::new(&world, 0)?;
    let jobs: Vec<(u64, SharedCounter)> = ns.iter().map(|&n| (n, counter)).collect();
    let total: u64 = pool
        .imap_unordered(counted, jobs, None)?
        .map(|r| r.unwrap())
        .sum();
    println!(
        "sum of all = {total}, tasks counted across ranks = {}",
        counter.get()?
    );
    assert_eq!(counter.get()?, 20);
    Ok(())
}
