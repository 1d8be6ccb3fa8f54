//! Part 2, continued: process pools, the best practice.

use std::time::Instant;

use mp::{Pool, ProcessPoolExecutor};

/// The article's `task(n)`: the sum of `0..n`, in a loop the compiler keeps.
fn task(n: u64) -> u64 {
    let mut s = 0u64;
    for i in 0..n {
        s = s.wrapping_add(std::hint::black_box(i));
    }
    s
}

/// A task that takes long enough to see the order of results (about half a
/// second in release).
const BIG: u64 = 2_000_000_000;
const SMALL: u64 = 1_000;

/// Runs the pool programs: apply_async, imap, imap_unordered, and the
/// same through ProcessPoolExecutor.
pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    println!("Part 2: process pools");
    println!("---------------------");
    let pool = Pool::new(2)?;
    let r1 = pool.apply_async(task, 10_000)?;
    let r2 = pool.apply_async(task, 20_000)?;
    pool.close();
    pool.join()?;
    let (a, b) = (r1.get()?, r2.get()?);
    println!("apply_async(task, 10000).get() = {a}");
    println!("apply_async(task, 20000).get() = {b}");
    assert_eq!((a, b), (49_995_000, 199_990_000), "the article's results");

    let pool = Pool::new(2)?;
    let start = Instant::now();
    for r in pool.imap(task, [BIG, SMALL], None)? {
        println!(
            "imap:           {:>20} after {:.2} s",
            r?,
            start.elapsed().as_secs_f64()
        );
    }
    let start = Instant::now();
    let mut first = None;
    for r in pool.imap_unordered(task, [BIG, SMALL], None)? {
        let v = r?;
        first.get_or_insert(v);
        println!(
            "imap_unordered: {:>20} after {:.2} s",
            v,
            start.elapsed().as_secs_f64()
        );
    }
    assert_eq!(first, Some(task(SMALL)), "the short task comes first");
    pool.close();
    pool.join()?;

    let ex = ProcessPoolExecutor::new(2)?;
    let start = Instant::now();
    let big = ex.submit(task, BIG)?;
    let small = ex.submit(task, SMALL)?;
    let fs = [big, small];
    for i in mp::pool::as_completed(&fs, None) {
        let i = i?;
        println!(
            "executor:       {:>20} after {:.2} s ({} task)",
            fs[i].result()?,
            start.elapsed().as_secs_f64(),
            ["big", "small"][i]
        );
    }
    let all: Vec<u64> = ex
        .map(task, [10_000, 20_000], None, None)?
        .collect::<Result<_, _>>()?;
    println!("executor.map(task, [10000, 20000]) = {all:?}");
    ex.shutdown(true, false)?;
    println!("lesson: a pool runs many tasks on a few processes; imap keeps input order,");
    println!("imap_unordered and as_completed give each result as soon as it is ready.");
    println!();
    Ok(())
}
