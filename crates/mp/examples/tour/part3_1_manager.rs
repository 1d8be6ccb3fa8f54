//! Part 3-1 of the article, through a Manager: slower than shared memory,
//! but shareable with other programs and machines.

use std::error::Error;

use mp::Manager;
use mp::Process;
use mp::manager::{LockProxy, ValueProxy};

/// Adds `n` to the manager's value; returns what it became.
fn add(args: (ValueProxy<i64>, i64)) -> i64 {
    let (num, n) = args;
    num.fetch_add(n).expect("manager reachable") + n
}

/// The article's task1/task2 with a manager lock: `delta` ten thousand
/// times, each a read and a write of the manager's value under the lock.
fn count(args: (ValueProxy<i64>, LockProxy, i64)) {
    let (num, lock, delta) = args;
    for _ in 0..10_000 {
        let _held = lock.lock().expect("manager reachable");
        let v = num.get().expect("manager reachable");
        num.set(&(v + delta)).expect("manager reachable");
    }
}

/// Runs the article's two Manager programs.
pub(crate) fn run() -> Result<(), Box<dyn Error>> {
    println!("Part 3-1 (Manager): objects in a server process, reached by proxies");
    println!("--------------------------------------------------------------------");
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

    let total = manager.value(0i64)?;
    let lock = manager.lock()?;
    let start = std::time::Instant::now();
    let mut up = Process::new(count, (total.clone(), lock.clone(), 1));
    let mut down = Process::new(count, (total.clone(), lock.clone(), -1));
    up.start()?;
    down.start()?;
    up.join()?;
    down.join()?;
    let end = total.get()?;
    println!(
        "+1 x 10,000 and -1 x 10,000 under a manager lock: {end} ({:.2} s)",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(end, 0, "the article's result");
    manager.shutdown()?;
    println!(
        "lesson: a Manager shares objects by round trips to its server; it works across machines."
    );
    println!();
    Ok(())
}
