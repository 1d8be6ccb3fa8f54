//! The pool workloads: `pool_*`, `executor_*` and `cpu_sum_speedup[:limit]`.
//! Pools have 2 workers, are created and warmed once per workload, reused
//! across repetitions, and closed and joined untimed.

use std::time::Instant;

use std::time::Duration;

use mp_pool::{AsyncResult, Limits, Pool, ProcessPoolExecutor};
use mp_process::{Process, StartMethod};

use super::repeat;

/// WORKLOADS.md's `f(x) = x + 1`.
fn f(x: i64) -> i64 {
    x + 1
}

/// WORKLOADS.md's `task(n)`: sums `0..n` in a loop the compiler cannot fold.
fn task(n: u64) -> u64 {
    let mut s = 0u64;
    for i in 0..n {
        s = s.wrapping_add(std::hint::black_box(i));
    }
    s
}

/// `n` such that one native `task(n)` takes about 0.1 s on this machine
/// (measured: about 0.25 ns per iteration in release).
const CPU_N: u64 = 400_000_000;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn pool() -> Result<Pool, String> {
    let pool = Pool::new(2).map_err(err)?;
    // Warm-up: both workers up and every function named once.
    pool.map(f, 0..1000, Some(1)).map_err(err)?;
    Ok(pool)
}

fn finish(pool: Pool) -> Result<(), String> {
    pool.close();
    pool.join().map_err(err)
}

fn check_map(got: &[i64], n: i64) -> Result<(), String> {
    if got.len() as i64 != n || got.iter().enumerate().any(|(i, v)| *v != i as i64 + 1) {
        return Err(format!("wrong map result ({} items)", got.len()));
    }
    Ok(())
}

/// Creates `Pool(2)` and gets `apply(f, 1)` back; ms.
pub(crate) fn startup(quick: bool) -> Result<Vec<f64>, String> {
    let once = || -> Result<f64, String> {
        let start = Instant::now();
        let pool = Pool::new(2).map_err(err)?;
        let r = pool.apply(f, 1).map_err(err)?;
        let t = start.elapsed().as_secs_f64() * 1e3;
        if r != 2 {
            return Err(format!("apply(f, 1) gave {r}"));
        }
        finish(pool)?;
        Ok(t)
    };
    once()?;
    repeat(quick, once)
}

fn throughput(
    quick: bool,
    n: i64,
    mut run: impl FnMut(&Pool) -> Result<Vec<i64>, String>,
) -> Result<Vec<f64>, String> {
    let pool = pool()?;
    check_map(&run(&pool)?, n)?;
    let samples = repeat(quick, || {
        let start = Instant::now();
        let got = run(&pool)?;
        let t = start.elapsed().as_secs_f64();
        check_map(&got, n)?;
        Ok(n as f64 / t)
    })?;
    finish(pool)?;
    Ok(samples)
}

/// `map(f, 0..100_000)` with the default chunksize; tasks/s.
pub(crate) fn map_trivial(quick: bool) -> Result<Vec<f64>, String> {
    throughput(quick, 100_000, |p| p.map(f, 0..100_000, None).map_err(err))
}

/// `map(f, 0..10_000, chunksize=1)`; tasks/s.
pub(crate) fn map_trivial_chunksize1(quick: bool) -> Result<Vec<f64>, String> {
    throughput(quick, 10_000, |p| p.map(f, 0..10_000, Some(1)).map_err(err))
}

/// The tasks of one burst.
const BURST: i64 = 10_000;

/// 10,000 `apply_async(f, i)`, then every `get()`; tasks/s.
pub(crate) fn apply_async(quick: bool) -> Result<Vec<f64>, String> {
    throughput(quick, BURST, burst)
}

fn burst(p: &Pool) -> Result<Vec<i64>, String> {
    let rs = submit(p, None)?;
    rs.iter().map(|r| r.get().map_err(err)).collect()
}

/// A burst's `apply_async(f, i)` calls, with `limits` if given.
fn submit(p: &Pool, limits: Option<Limits>) -> Result<Vec<AsyncResult<i64>>, String> {
    (0..BURST)
        .map(|i| match limits {
            None => p.apply_async(f, i),
            Some(l) => p.apply_async_limited(f, i, l),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)
}

/// A burst's tasks/s against a plain burst's on the same pool, the two
/// alternating: what a feature costs, free of the placement of the
/// pool's threads, which moves a pool's rate by half between pools.
fn paired(
    quick: bool,
    mut run: impl FnMut(&Pool) -> Result<Vec<i64>, String>,
) -> Result<Vec<f64>, String> {
    let pool = pool()?;
    check_map(&run(&pool)?, BURST)?;
    let rate = |run: &mut dyn FnMut(&Pool) -> Result<Vec<i64>, String>| {
        let start = Instant::now();
        let got = run(&pool)?;
        let t = start.elapsed().as_secs_f64();
        check_map(&got, BURST)?;
        Ok::<f64, String>(BURST as f64 / t)
    };
    let samples = repeat(quick, || {
        // Seven of each, the order alternating (plain then feature, then
        // feature then plain): the medians' ratio.
        let mut plain = Vec::new();
        let mut feature = Vec::new();
        for first_plain in [true, false, true, false, true, false, true] {
            if first_plain {
                plain.push(rate(&mut burst)?);
                feature.push(rate(&mut run)?);
            } else {
                feature.push(rate(&mut run)?);
                plain.push(rate(&mut burst)?);
            }
        }
        Ok(median(&mut feature) / median(&mut plain))
    })?;
    finish(pool)?;
    Ok(samples)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The same burst as [`apply_async`], the results awaited (`.await` on
/// each `AsyncResult`, all 10,000 in flight) on a current-thread tokio
/// runtime: what the futures' wakers cost; tasks/s.
pub(crate) fn apply_async_await(quick: bool) -> Result<Vec<f64>, String> {
    let rt = current_thread()?;
    throughput(quick, BURST, |p| burst_awaited(&rt, p))
}

/// `pool_apply_async_await` against `pool_apply_async`, paired on one
/// pool; the share.
pub(crate) fn apply_async_await_paired(quick: bool) -> Result<Vec<f64>, String> {
    let rt = current_thread()?;
    paired(quick, |p| burst_awaited(&rt, p))
}

fn burst_awaited(rt: &tokio::runtime::Runtime, p: &Pool) -> Result<Vec<i64>, String> {
    let rs = submit(p, None)?;
    rt.block_on(async {
        let mut got = Vec::with_capacity(rs.len());
        for r in rs {
            got.push(r.await.map_err(err)?);
        }
        Ok(got)
    })
}

/// A current-thread tokio runtime, as a service's would be.
pub(crate) fn current_thread() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(err)
}

/// `apply_async` with a hard limit (60 s) and a soft one (30 s) that no
/// task reaches: what limits cost a burst (the `LIMITS` frame, a clock
/// read per task on each side); tasks/s.
pub(crate) fn apply_async_limited(quick: bool) -> Result<Vec<f64>, String> {
    throughput(quick, BURST, burst_limited)
}

/// `pool_apply_async_limited` against `pool_apply_async`, paired on one
/// pool; the share.
pub(crate) fn apply_async_limited_paired(quick: bool) -> Result<Vec<f64>, String> {
    paired(quick, burst_limited)
}

fn burst_limited(p: &Pool) -> Result<Vec<i64>, String> {
    let limits = Limits::new()
        .time_limit(Duration::from_secs(60))
        .soft_time_limit(Duration::from_secs(30));
    let rs = submit(p, Some(limits))?;
    rs.iter().map(|r| r.get().map_err(err)).collect()
}

/// Never returns.
fn spin(_: i64) -> i64 {
    loop {
        std::hint::spin_loop();
    }
}

/// On an idle `Pool(1)`: a task that spins, with a hard limit of 50 ms,
/// and `f` queued behind it; the ms from the limit (the spinner's
/// submission plus 50 ms: an idle worker picks it up at once) to `f`'s
/// result, which needs the stop, the reaping and a new worker.
fn timeout_recovery(quick: bool, method: StartMethod) -> Result<Vec<f64>, String> {
    const LIMIT: Duration = Duration::from_millis(50);
    let pool = Pool::builder()
        .processes(1)
        .start_method(method)
        .build()
        .map_err(err)?;
    pool.map(f, 0..100, Some(1)).map_err(err)?;
    let limits = Limits::new().time_limit(LIMIT);
    let once = || -> Result<f64, String> {
        let start = Instant::now();
        let stuck = pool.apply_async_limited(spin, 0, limits).map_err(err)?;
        let next = pool.apply_async(f, 41).map_err(err)?;
        let got = next.get().map_err(err)?;
        let t = start.elapsed().saturating_sub(LIMIT);
        if got != 42 {
            return Err(format!("f(41) gave {got}"));
        }
        match stuck.get() {
            Err(e) if e.kind() == mp_pool::ErrorKind::TimeLimit => {}
            other => return Err(format!("the spinning task gave {other:?}")),
        }
        Ok(t.as_secs_f64() * 1e3)
    };
    once()?;
    let samples = repeat(quick, once)?;
    finish(pool)?;
    Ok(samples)
}

/// [`timeout_recovery`] under fork; ms.
pub(crate) fn timeout_recovery_fork(quick: bool) -> Result<Vec<f64>, String> {
    timeout_recovery(quick, StartMethod::Fork)
}

/// [`timeout_recovery`] under forkserver; ms.
pub(crate) fn timeout_recovery_forkserver(quick: bool) -> Result<Vec<f64>, String> {
    timeout_recovery(quick, StartMethod::ForkServer)
}

/// One `apply(f, i)` at a time on an idle `Pool(2)`, 3,000 calls in
/// sequence; us/call.
pub(crate) fn apply_latency(quick: bool) -> Result<Vec<f64>, String> {
    const CALLS: i64 = 3_000;
    let pool = pool()?;
    let run = |p: &Pool| -> Result<(), String> {
        for i in 0..CALLS {
            let r = p.apply(f, i).map_err(err)?;
            if r != i + 1 {
                return Err(format!("apply(f, {i}) gave {r}"));
            }
        }
        Ok(())
    };
    run(&pool)?;
    let samples = repeat(quick, || {
        let start = Instant::now();
        run(&pool)?;
        Ok(start.elapsed().as_secs_f64() * 1e6 / CALLS as f64)
    })?;
    finish(pool)?;
    Ok(samples)
}

/// `imap(f, 0..100_000, chunksize=64)` collected; tasks/s.
pub(crate) fn imap(quick: bool) -> Result<Vec<f64>, String> {
    throughput(quick, 100_000, |p| {
        p.imap(f, 0..100_000, Some(64))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    })
}

/// The same with `imap_unordered` (sorted before the check, untimed).
pub(crate) fn imap_unordered(quick: bool) -> Result<Vec<f64>, String> {
    let pool = pool()?;
    let run = |p: &Pool| -> Result<Vec<i64>, String> {
        p.imap_unordered(f, 0..100_000, Some(64))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    };
    let check = |mut got: Vec<i64>| {
        got.sort_unstable();
        check_map(&got, 100_000)
    };
    check(run(&pool)?)?;
    let samples = repeat(quick, || {
        let start = Instant::now();
        let got = run(&pool)?;
        let t = start.elapsed().as_secs_f64();
        check(got)?;
        Ok(100_000.0 / t)
    })?;
    finish(pool)?;
    Ok(samples)
}

fn executor() -> Result<ProcessPoolExecutor, String> {
    let ex = ProcessPoolExecutor::new(2).map_err(err)?;
    let warm: Vec<i64> = ex
        .map(f, 0..1000, Some(1), None)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    check_map(&warm, 1000)?;
    Ok(ex)
}

fn executor_throughput(
    quick: bool,
    n: i64,
    run: impl Fn(&ProcessPoolExecutor) -> Result<Vec<i64>, String>,
) -> Result<Vec<f64>, String> {
    let ex = executor()?;
    check_map(&run(&ex)?, n)?;
    let samples = repeat(quick, || {
        let start = Instant::now();
        let got = run(&ex)?;
        let t = start.elapsed().as_secs_f64();
        check_map(&got, n)?;
        Ok(n as f64 / t)
    })?;
    ex.shutdown(true, false).map_err(err)?;
    Ok(samples)
}

/// 10,000 `submit(f, i)`, then every `result()`; tasks/s.
pub(crate) fn executor_submit(quick: bool) -> Result<Vec<f64>, String> {
    executor_throughput(quick, 10_000, |ex| {
        let fs = (0..10_000)
            .map(|i| ex.submit(f, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        fs.iter().map(|x| x.result().map_err(err)).collect()
    })
}

/// Executor `map(f, 0..100_000, chunksize=64)`; tasks/s.
pub(crate) fn executor_map(quick: bool) -> Result<Vec<f64>, String> {
    executor_throughput(quick, 100_000, |ex| {
        ex.map(f, 0..100_000, Some(64), None)
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    })
}

fn serial_seconds() -> Result<f64, String> {
    let start = Instant::now();
    let want = task(CPU_N);
    for _ in 0..4 {
        if task(CPU_N) != want {
            return Err("task(n) is not deterministic".into());
        }
    }
    // Five runs above (one check value); scale to the four of the workload.
    Ok(start.elapsed().as_secs_f64() * 4.0 / 5.0)
}

fn check_sums(got: &[u64]) -> Result<(), String> {
    let want = CPU_N * (CPU_N - 1) / 2;
    if got.len() != 4 || got.iter().any(|s| *s != want) {
        return Err(format!("wrong sums {got:?}"));
    }
    Ok(())
}

/// `task(n)` x4 serially, divided by the same four through `pool.map`.
pub(crate) fn cpu_sum_speedup(quick: bool) -> Result<Vec<f64>, String> {
    let pool = pool()?;
    check_sums(&pool.map(task, [CPU_N; 4], None).map_err(err)?)?;
    let samples = repeat(quick, || {
        let serial = serial_seconds()?;
        let start = Instant::now();
        let got = pool.map(task, [CPU_N; 4], None).map_err(err)?;
        let parallel = start.elapsed().as_secs_f64();
        check_sums(&got)?;
        Ok(serial / parallel)
    })?;
    finish(pool)?;
    Ok(samples)
}

fn two_tasks(n: u64) -> Vec<u64> {
    vec![task(n), task(n)]
}

/// The same four tasks in two raw forked processes (two each), no pool:
/// this machine's parallel limit in this run.
pub(crate) fn cpu_sum_speedup_limit(quick: bool) -> Result<Vec<f64>, String> {
    let run = || -> Result<Vec<u64>, String> {
        let mut ps: Vec<Process<Vec<u64>>> = (0..2)
            .map(|_| Process::new(two_tasks, CPU_N).start_method(StartMethod::Fork))
            .collect();
        for p in &mut ps {
            p.start().map_err(err)?;
        }
        let mut out = Vec::new();
        for p in &mut ps {
            out.extend(p.join().map_err(err)?);
        }
        Ok(out)
    };
    check_sums(&run()?)?;
    repeat(quick, || {
        let serial = serial_seconds()?;
        let start = Instant::now();
        let got = run()?;
        let parallel = start.elapsed().as_secs_f64();
        check_sums(&got)?;
        Ok(serial / parallel)
    })
}
