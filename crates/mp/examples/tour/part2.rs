//! Section 1 of the article: processes share no data.

use std::sync::atomic::{AtomicI64, Ordering};

use mp::{Process, StartMethod};

/// The article's global `num = 10`.
static NUM: AtomicI64 = AtomicI64::new(10);

/// The article's `work1`/`work2`: add to this process's `num` and return
/// what it became, with the pid that saw it.
fn add_to_num(n: i64) -> (i64, u32) {
    (NUM.fetch_add(n, Ordering::SeqCst) + n, std::process::id())
}

/// Runs part 2: the unshared `num` under fork and under the default
/// method, then a glimpse of what isolation buys.
pub(crate) fn run() -> Result<(), mp::Error> {
    println!("1. Processes share no data");
    println!("--------------------------");
    for method in [StartMethod::Fork, mp::get_start_method()] {
        unshared_num(method)?;
    }
    println!("article:     child 1 num: 15, child 2 num: 20, parent num: 10");
    println!("lesson: each child works on its own copy of `num`; the parent's stays 10.");
    println!();
    println!("A child that fails is reported, and the parent goes on:");
    crash_isolation()?;
    println!();
    Ok(())
}

/// Two children add 5 and 10 to `num`; the parent still has 10.
fn unshared_num(method: StartMethod) -> Result<(), mp::Error> {
    let (mut p1, mut p2) = if method == StartMethod::Fork {
        // Under fork, a closure runs in a copy of this process.
        (
            Process::closure(|| add_to_num(5)).name("child 1"),
            Process::closure(|| add_to_num(10)).name("child 2"),
        )
    } else {
        // Under spawn and forkserver, a function runs in a fresh process.
        (
            Process::new(add_to_num, 5)
                .name("child 1")
                .start_method(method),
            Process::new(add_to_num, 10)
                .name("child 2")
                .start_method(method),
        )
    };
    p1.start()?;
    p2.start()?;
    let (n1, pid1) = p1.join()?;
    let (n2, pid2) = p2.join()?;
    let label = format!("[{method}]");
    println!("{label:<13}child 1 (pid {pid1}) adds 5:  num = {n1}");
    println!("{label:<13}child 2 (pid {pid2}) adds 10: num = {n2}");
    println!(
        "{label:<13}parent  (pid {}) after join: num = {}",
        std::process::id(),
        NUM.load(Ordering::SeqCst)
    );
    assert_eq!(
        (n1, n2, NUM.load(Ordering::SeqCst)),
        (15, 20, 10),
        "the article's results"
    );
    Ok(())
}

fn divide(x: (i64, i64)) -> i64 {
    x.0 / x.1
}

/// Isolation is what processes buy in Rust: a panic or a crash in a child
/// is a value in the parent.
///
/// The dividing child is forked: a forked child reports its panic on
/// stderr without a backtrace, where std's hook in a spawned one would add a
/// backtrace when `RUST_BACKTRACE` is set.
fn crash_isolation() -> Result<(), mp::Error> {
    println!(
        "  (expected) a child divides by zero; its report on stderr follows, without a backtrace:"
    );
    let mut p = Process::new(divide, (1, 0)).start_method(StartMethod::Fork);
    p.start()?;
    match p.join() {
        Err(e) => {
            let info = e.panic_info().map(|i| i.to_string()).unwrap_or_default();
            println!(
                "  divide(1, 0) in a child: {:?} ({info}), exitcode {:?}",
                e.kind(),
                p.exitcode()
            );
        }
        Ok(v) => println!("  divide(1, 0) in child returned {v}?"),
    }
    let mut q = Process::<()>::closure(|| std::process::abort());
    q.start()?;
    let e = q.join().expect_err("abort ends the child");
    println!("  abort() in a child: {e}, exitcode {:?}", q.exitcode());
    Ok(())
}
