//! Section 3-1 of the article: shared memory, and why it needs a lock.

use std::time::Duration;

use mp::{Barrier, Process, RawValue, Value};

/// The article's `work1`/`work2` on a shared `num`: add under the value's
/// lock and return what it became.
fn add_to_shared(args: (Value<i64>, i64)) -> i64 {
    let (num, n) = args;
    let mut g = num.lock().unwrap_or_else(|died| died.into_inner());
    *g += n;
    *g
}

/// The article's task1/task2 with the shared lock: `delta` ten thousand
/// times, each a read and a write of the shared value under its lock.
fn count_locked(args: (Value<i64>, Barrier, i64)) {
    let (total, start, delta) = args;
    let _ = start.wait_timeout(Duration::from_secs(30));
    for _ in 0..10_000 {
        let mut g = total.lock().unwrap_or_else(|died| died.into_inner());
        let x = *g;
        // A yield between the read and the write widens the window, as an
        // interpreter's slowness does in Python.
        std::thread::yield_now();
        *g = x + delta;
    }
}

/// The same without any lock: reads and writes of the two processes
/// interleave, and updates are lost.
fn count_unlocked(args: (RawValue<i64>, Barrier, i64)) {
    let (total, start, delta) = args;
    let _ = start.wait_timeout(Duration::from_secs(30));
    for _ in 0..10_000 {
        let x = total.get();
        std::thread::yield_now();
        total.set(x + delta);
    }
}

/// Runs part 3-1.
pub(crate) fn run() -> Result<(), mp::Error> {
    println!("3-1. Shared memory (sharedctypes: Value, RawValue)");
    println!("--------------------------------------------------");

    let num = Value::new(10_i64)?;
    println!("parent: num = {}", num.get()?);
    let mut p1 = Process::new(add_to_shared, (num.clone(), 5)).name("child 1");
    let mut p2 = Process::new(add_to_shared, (num.clone(), 10)).name("child 2");
    p1.start()?;
    p2.start()?;
    let (a, b) = (p1.join()?, p2.join()?);
    println!("child 1 adds 5:  num = {a}");
    println!("child 2 adds 10: num = {b}");
    println!("parent after join: num = {}", num.get()?);
    println!("article:     shared, num would be 15, then 25");
    println!("lesson: a Value lives in shared memory; both children changed the parent's num.");
    println!();

    let total = Value::new(0_i64)?;
    let start = Barrier::new(2)?;
    let mut up = Process::new(count_locked, (total.clone(), start.clone(), 1));
    let mut down = Process::new(count_locked, (total.clone(), start.clone(), -1));
    up.start()?;
    down.start()?;
    up.join()?;
    down.join()?;
    println!(
        "with a shared lock:    +1 x 10,000 and -1 x 10,000 end at {}",
        total.get()?
    );
    println!("article:     0 (with a Manager's lock)");

    let total = RawValue::new(0_i64)?;
    let start = Barrier::new(2)?;
    let mut up = Process::new(count_unlocked, (total.clone(), start.clone(), 1));
    let mut down = Process::new(count_unlocked, (total.clone(), start.clone(), -1));
    up.start()?;
    down.start()?;
    up.join()?;
    down.join()?;
    let end = total.get();
    println!(
        "without a lock:        the same end at {end}: at least {} of 20,000 updates were lost",
        end.abs()
    );
    println!(
        "lesson: the kernel does not synchronise shared memory; only a lock all processes share does."
    );
    println!();
    Ok(())
}
