//! The article's introduction: threads against processes, in Rust terms.
//!
//! CPython's GIL lets one thread run Python code at a time, so there threads
//! help I/O-bound work and only processes help CPU-bound work. Rust has no
//! GIL: threads run in parallel too. Processes buy isolation (of crashes,
//! memory and global state), not speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mp::{Pool, ThreadPool};

/// A CPU-bound job: sums `0..n` in a loop the compiler must not fold.
fn cpu(n: u64) -> u64 {
    let mut s = 0u64;
    for i in 0..n {
        s = s.wrapping_add(black_box(i));
    }
    s
}

/// An I/O-bound job: waits, as for a network or a disk.
fn io(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn timed<T>(f: impl FnOnce() -> Result<T, mp::pool::Error>) -> Result<(T, f64), mp::pool::Error> {
    let start = Instant::now();
    let out = f()?;
    Ok((out, start.elapsed().as_secs_f64()))
}

/// Runs part 1: the same jobs serially, on two threads and on two processes.
pub(crate) fn run() -> Result<(), mp::Error> {
    println!("Introduction: threads against processes");
    println!("---------------------------------------");
    let n = 200_000_000u64;
    let jobs = vec![n; 4];
    let threads = ThreadPool::new(2)?;
    let processes = Pool::new(2)?;
    // Warm both pools, so that start-up is not what is measured.
    threads.map(cpu, vec![1, 1], None)?;
    processes.map(cpu, vec![1, 1], None)?;

    let (serial, t_serial) = timed(|| Ok(jobs.iter().map(|&n| cpu(n)).collect::<Vec<_>>()))?;
    let (on_threads, t_threads) = timed(|| threads.map(cpu, jobs.clone(), Some(1)))?;
    let (on_processes, t_processes) = timed(|| processes.map(cpu, jobs.clone(), Some(1)))?;
    assert!(serial == on_threads && serial == on_processes);
    println!(
        "CPU-bound, 4 jobs:  serial {t_serial:.2} s   2 threads {t_threads:.2} s   2 processes {t_processes:.2} s"
    );

    let waits = vec![200u64; 4];
    let (_, t_serial) = timed(|| Ok(waits.iter().map(|&ms| io(ms)).collect::<Vec<_>>()))?;
    let (_, t_threads) = timed(|| threads.map(io, waits.clone(), Some(1)))?;
    let (_, t_processes) = timed(|| processes.map(io, waits.clone(), Some(1)))?;
    println!(
        "I/O-bound, 4 waits: serial {t_serial:.2} s   2 threads {t_threads:.2} s   2 processes {t_processes:.2} s"
    );
    processes.close();
    processes.join()?;
    println!(
        "article:     (CPython) 2 processes run CPU-bound jobs A and B in parallel, 2 threads do not (the GIL); threads suit I/O"
    );
    println!("lesson: in Rust threads are parallel too; processes buy isolation, not speed.");
    println!();
    Ok(())
}
