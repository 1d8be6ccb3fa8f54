//! `pool_apply_latency`: one `apply(f, i)` at a time on an idle, warmed
//! `Pool(2)`, 3,000 calls in sequence (1,000 with `--quick`); us per call.
//! Kept apart from the other pool workloads so that a fuller version of the
//! row can replace this function alone.

use std::time::Instant;

use mp_pool::Pool;

use super::repeat;

/// WORKLOADS.md's `f(x) = x + 1`.
fn f(x: i64) -> i64 {
    x + 1
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub(crate) fn pool_apply_latency(quick: bool) -> Result<Vec<f64>, String> {
    let calls: i64 = if quick { 1_000 } else { 3_000 };
    let pool = Pool::new(2).map_err(err)?;
    // Warm-up: both workers up and `f` named once.
    pool.map(f, 0..1000, Some(1)).map_err(err)?;
    let rep = || -> Result<f64, String> {
        let start = Instant::now();
        for i in 0..calls {
            let r = pool.apply(f, i).map_err(err)?;
            if r != i + 1 {
                return Err(format!("apply(f, {i}) gave {r}"));
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / calls as f64)
    };
    rep()?;
    let samples = repeat(quick, rep)?;
    pool.close();
    pool.join().map_err(err)?;
    Ok(samples)
}
