//! The MPI workloads, `mpi_pool_map_trivial` and `mpi_pool_apply_async`:
//! `pool_map_trivial` and `pool_apply_async` on an `MpiPool` with 2 worker
//! ranks. A program of its own, run under `mpirun -n 3` by `cargo xtask
//! bench`, with mp-bench's CLI (`--list`, `--workload NAME [--quick]`, one
//! JSON line from rank 0). It needs MPI, so it is built as mp-mpi's example
//! `mpi-bench` (`--features mpi`), not into mp-bench; its mpi4py twin is
//! `python/bench_mpi4py.py`.

use std::process::ExitCode;
use std::time::Instant;

use mp_mpi::{MpiPool, World};

/// WORKLOADS.md's `f(x) = x + 1`.
fn f(x: i64) -> i64 {
    x + 1
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn repetitions(quick: bool) -> usize {
    if quick { 3 } else { 5 }
}

fn check_map(got: &[i64], n: i64) -> Result<(), String> {
    if got.len() as i64 != n || got.iter().enumerate().any(|(i, v)| *v != i as i64 + 1) {
        return Err(format!("wrong map result ({} items)", got.len()));
    }
    Ok(())
}

fn throughput(
    world: &World,
    quick: bool,
    n: i64,
    run: impl Fn(&MpiPool) -> Result<Vec<i64>, String>,
) -> Result<Vec<f64>, String> {
    let pool = MpiPool::new(world).map_err(err)?;
    // Warm-up: both workers busy once and every function named once.
    pool.map(f, 0..1000, Some(1)).map_err(err)?;
    check_map(&run(&pool)?, n)?;
    let samples = (0..repetitions(quick))
        .map(|_| {
            let start = Instant::now();
            let got = run(&pool)?;
            let t = start.elapsed().as_secs_f64();
            check_map(&got, n)?;
            Ok(n as f64 / t)
        })
        .collect::<Result<Vec<f64>, String>>()?;
    pool.close();
    pool.join().map_err(err)?;
    Ok(samples)
}

/// `map(f, 0..100_000)` with the default chunksize (12,500 with 2
/// workers); tasks/s.
fn map_trivial(world: &World, quick: bool) -> Result<Vec<f64>, String> {
    throughput(world, quick, 100_000, |p| {
        p.map(f, 0..100_000, None).map_err(err)
    })
}

/// 10,000 `apply_async(f, i)`, then every `get()`; tasks/s.
fn apply_async(world: &World, quick: bool) -> Result<Vec<f64>, String> {
    throughput(world, quick, 10_000, |p| {
        let rs = (0..10_000)
            .map(|i| p.apply_async(f, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rs.iter().map(|r| r.get().map_err(err)).collect()
    })
}

type Run = fn(&World, bool) -> Result<Vec<f64>, String>;

const ALL: &[(&str, Run)] = &[
    ("mpi_pool_map_trivial", map_trivial),
    ("mpi_pool_apply_async", apply_async),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if args == ["--list"] {
        // Listing needs no MPI job.
        for (name, _) in ALL {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let (name, quick) = match args.as_slice() {
        ["--workload", name] => (*name, false),
        ["--workload", name, "--quick"] | ["--quick", "--workload", name] => (*name, true),
        _ => {
            eprintln!("usage: mpi-bench --list | --workload NAME [--quick] (under mpirun -n 3)");
            return ExitCode::from(2);
        }
    };
    // Ranks 1 and 2 serve here as workers and never return.
    let world = match mp_mpi::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("mpi-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((_, run)) = ALL.iter().find(|(n, _)| *n == name) else {
        eprintln!("mpi-bench: unknown workload `{name}` (see --list)");
        return ExitCode::from(2);
    };
    match run(&world, quick) {
        Ok(samples) => {
            let samples: Vec<String> = samples.iter().map(|s| format!("{s:?}")).collect();
            println!(
                r#"{{"name": "{name}", "unit": "tasks/s", "better": "higher", "samples": [{}], "check": "ok"}}"#,
                samples.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpi-bench: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
