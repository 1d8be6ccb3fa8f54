//! `peer-procspawn`: procspawn 1.x, the Rust crate for processes and a pool,
//! on the rows it serves: `spawn_join_*` (its one way to start a process,
//! a re-exec of this program, against each of mp's start methods),
//! `pool_apply_latency` (a lone `Pool::spawn` then `join`) and
//! `pool_apply_async` (a burst of `Pool::spawn`, then every `join`).

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::Instant;

use mp_bench_peers::{Better, Workload, err, warm_and_repeat};

/// WORKLOADS.md's `noop()`.
fn noop(_: ()) {}

/// WORKLOADS.md's `f(x) = x + 1`.
fn f(x: i64) -> i64 {
    x + 1
}

/// K sequential `spawn` + `join` of `noop`; us per process.
fn spawn_join(quick: bool) -> Result<Vec<f64>, String> {
    let per_rep = if quick { 20 } else { 50 };
    warm_and_repeat(quick, || {
        let start = Instant::now();
        for _ in 0..per_rep {
            procspawn::spawn((), noop).join().map_err(err)?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(per_rep))
    })
}

/// A warmed `Pool(2)`: both workers have run a task.
fn pool() -> Result<procspawn::Pool, String> {
    let pool = procspawn::Pool::new(2).map_err(err)?;
    let hs: Vec<_> = (0..2).map(|i| pool.spawn(i, f)).collect();
    for h in hs {
        h.join().map_err(err)?;
    }
    Ok(pool)
}

/// One `spawn(f, i)` + `join` at a time on an idle `Pool(2)`; us per call.
fn apply_latency(quick: bool) -> Result<Vec<f64>, String> {
    let calls: i64 = if quick { 1_000 } else { 3_000 };
    let pool = pool()?;
    let samples = warm_and_repeat(quick, || {
        let start = Instant::now();
        for i in 0..calls {
            let r = pool.spawn(i, f).join().map_err(err)?;
            if r != i + 1 {
                return Err(format!("f({i}) gave {r}"));
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / calls as f64)
    })?;
    pool.shutdown();
    Ok(samples)
}

/// How many tasks may be queued at once. procspawn holds two socket pairs
/// per queued task until it is joined, so 10,000 at once exceed a
/// descriptor limit of 20,000 (EMFILE); the burst keeps this many in
/// flight, joining the oldest before it submits more.
const IN_FLIGHT: usize = 2_000;

/// 10,000 `spawn(f, i)`, then every `join`, at most [`IN_FLIGHT`] queued;
/// tasks/s.
fn apply_async(quick: bool) -> Result<Vec<f64>, String> {
    const N: i64 = 10_000;
    let pool = pool()?;
    let samples = warm_and_repeat(quick, || {
        let start = Instant::now();
        let mut queued = VecDeque::with_capacity(IN_FLIGHT);
        let mut sum = 0;
        for i in 0..N {
            if queued.len() == IN_FLIGHT {
                let h: procspawn::JoinHandle<i64> = queued.pop_front().ok_or("empty")?;
                sum += h.join().map_err(err)?;
            }
            queued.push_back(pool.spawn(i, f));
        }
        for h in queued {
            sum += h.join().map_err(err)?;
        }
        let t = start.elapsed().as_secs_f64();
        if sum != N * (N + 1) / 2 {
            return Err(format!("results sum to {sum}"));
        }
        Ok(N as f64 / t)
    })?;
    pool.shutdown();
    Ok(samples)
}

const ALL: &[Workload] = &[
    Workload {
        name: "spawn_join_fork",
        unit: "us/process",
        better: Better::Lower,
        run: spawn_join,
    },
    Workload {
        name: "spawn_join_spawn",
        unit: "us/process",
        better: Better::Lower,
        run: spawn_join,
    },
    Workload {
        name: "spawn_join_forkserver",
        unit: "us/process",
        better: Better::Lower,
        run: spawn_join,
    },
    Workload {
        name: "pool_apply_async",
        unit: "tasks/s",
        better: Better::Higher,
        run: apply_async,
    },
    Workload {
        name: "pool_apply_latency",
        unit: "us/call",
        better: Better::Lower,
        run: apply_latency,
    },
];

fn main() -> ExitCode {
    // Children re-enter this program: procspawn takes them over here.
    procspawn::init();
    mp_bench_peers::main("peer-procspawn", ALL)
}
