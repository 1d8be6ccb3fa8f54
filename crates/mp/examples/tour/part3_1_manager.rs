//! Section 3-1 of the article, through a Manager: slower than shared memory,
//! but shareable with other programs and machines.

use std::time::{Duration, Instant};

use mp::manager::{LockProxy, ValueProxy};
use mp::{Barrier, Manager, Process, Value};

/// Adds `n` to the manager's value; returns what it became.
fn add(args: (ValueProxy<i64>, i64)) -> i64 {
    let (num, n) = args;
    num.fetch_add(n).expect("manager reachable") + n
}

/// How many times each of the two children adds its `delta`, as in the
/// article.
const ROUNDS: u32 = 10_000;

/// The article's task1/task2 with a manager lock: `delta` ten thousand
/// times, each a read and a write of the manager's value under the lock.
/// Returns how long its loop took, in seconds, so that process start-up
/// is not what is compared.
fn count(args: (ValueProxy<i64>, LockProxy, Barrier, i64)) -> f64 {
    let (num, lock, start, delta) = args;
    let _ = start.wait_timeout(Duration::from_secs(30));
    let t = Instant::now();
    for _ in 0..ROUNDS {
        let _held = lock.lock().expect("manager reachable");
        let v = num.get().expect("manager reachable");
        num.set(&(v + delta)).expect("manager reachable");
    }
    t.elapsed().as_secs_f64()
}

/// The same loop on a sharedctypes `Value` and its own lock.
fn count_shared(args: (Value<i64>, Barrier, i64)) -> f64 {
    let (num, start, delta) = args;
    let _ = start.wait_timeout(Duration::from_secs(30));
    let t = Instant::now();
    for _ in 0..ROUNDS {
        *num.lock().unwrap_or_else(|died| died.into_inner()) += delta;
    }
    t.elapsed().as_secs_f64()
}

/// Runs the article's two Manager programs.
pub(crate) fn run() -> Result<(), mp::Error> {
    println!("3-1. Shared memory through a Manager: objects in a server, reached by proxies");
    println!("-----------------------------------------------------------------------------");
    let manager = Manager::start()?;
    let num = manager.value(10i64)?;
    println!("manager.value(10): {}", num.get()?);
    let mut p1 = Process::new(add, (num.clone(), 5));
    p1.start()?;
    let after1 = p1.join()?;
    let mut p2 = Process::new(add, (num.clone(), 10));
    p2.start()?;
    let after2 = p2.join()?;
    println!("child 1 adds 5:  {after1}");
    println!("child 2 adds 10: {after2}");
    assert_eq!((after1, after2), (15, 25), "the article's results");

    println!("article:     15, 25");

    let total = manager.value(0i64)?;
    let lock = manager.lock()?;
    let start = Barrier::new(2)?;
    let mut up = Process::new(count, (total.clone(), lock.clone(), start.clone(), 1));
    let mut down = Process::new(count, (total.clone(), lock.clone(), start.clone(), -1));
    up.start()?;
    down.start()?;
    let t_manager = up.join()?.max(down.join()?);
    let end = total.get()?;
    println!(
        "+1 x 10,000 and -1 x 10,000 under a manager lock: {end} ({:.1} ms)",
        t_manager * 1e3
    );
    assert_eq!(end, 0, "the article's result");
    println!("article:     0");
    manager.shutdown()?;

    let total = Value::new(0i64)?;
    let start = Barrier::new(2)?;
    let mut up = Process::new(count_shared, (total.clone(), start.clone(), 1));
    let mut down = Process::new(count_shared, (total.clone(), start.clone(), -1));
    up.start()?;
    down.start()?;
    let t_shared = up.join()?.max(down.join()?);
    let end = total.get()?;
    assert_eq!(end, 0, "a shared lock loses no update");
    println!(
        "the same on a sharedctypes Value and its lock:   {end} ({:.2} ms): {:.0}x faster than the Manager",
        t_shared * 1e3,
        t_manager / t_shared.max(1e-9)
    );
    println!(
        "article:     sharedctypes is about two orders of magnitude (100x) faster than a Manager"
    );
    println!(
        "lesson: a Manager shares objects by round trips to its server; it works across machines."
    );
    println!();
    Ok(())
}
