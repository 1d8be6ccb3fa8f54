//! Section 2 of the article: process pools, the best practice.

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

/// The article's inputs to `imap` and `imap_unordered`. CPython takes
/// about 5 s over them; compiled Rust about 2 ms, too little to see an
/// order in.
const ARTICLE: [u64; 2] = [2_000_000, 200_000];
/// So the order is shown on the article's inputs scaled 1,000 times (the
/// big task about half a second in release, the small one a tenth of it).
const SCALE: u64 = 1_000;
const BIG: u64 = ARTICLE[0] * SCALE;
const SMALL: u64 = ARTICLE[1] * SCALE;

/// Runs the pool programs: apply_async, imap, imap_unordered, and the
/// same through ProcessPoolExecutor.
pub(crate) fn run() -> Result<(), mp::Error> {
    println!("2. Process pools");
    println!("----------------");
    let pool = Pool::new(2)?;
    let r1 = pool.apply_async(task, 10_000)?;
    let r2 = pool.apply_async(task, 20_000)?;
    pool.close();
    pool.join()?;
    let (a, b) = (r1.get()?, r2.get()?);
    println!("apply_async(task, 10000).get() = {a}");
    println!("apply_async(task, 20000).get() = {b}");
    assert_eq!((a, b), (49_995_000, 199_990_000), "the article's results");
    println!("article:     49995000, 199990000");

    let pool = Pool::new(2)?;
    let on_article: Vec<u64> = pool.imap(task, ARTICLE, None)?.collect::<Result<_, _>>()?;
    println!("imap(task, [2000000, 200000]) = {on_article:?}");
    assert_eq!(
        on_article,
        [1_999_999_000_000, 19_999_900_000],
        "the article's results"
    );
    println!("article:     1999999000000, 19999900000 (after about 5 s in CPython)");
    println!("the same inputs x {SCALE}, so that the order shows:");
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
    println!(
        "article:     imap gives both at the end (5 s); imap_unordered the small one first (1 s), then the big one (4 s)"
    );
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
