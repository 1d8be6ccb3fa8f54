//! `spawn_join_{fork,spawn,forkserver}`: K sequential start+join cycles of a
//! process running `noop`; one sample is the time per process in microseconds.

use std::time::Instant;

use mp_process::{Process, StartMethod};

use super::repeat;

fn noop(_: ()) {}

pub(crate) fn fork(quick: bool) -> Result<Vec<f64>, String> {
    measure(StartMethod::Fork, quick)
}

pub(crate) fn spawn(quick: bool) -> Result<Vec<f64>, String> {
    measure(StartMethod::Spawn, quick)
}

pub(crate) fn forkserver(quick: bool) -> Result<Vec<f64>, String> {
    measure(StartMethod::ForkServer, quick)
}

fn measure(method: StartMethod, quick: bool) -> Result<Vec<f64>, String> {
    let per_rep = if quick { 20 } else { 50 };
    start_join(method)?; // Warm-up: also starts the fork server, untimed.
    repeat(quick, || {
        let start = Instant::now();
        for _ in 0..per_rep {
            start_join(method)?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(per_rep))
    })
}

/// One start+join; the check is that both succeed (`join` fails on a child
/// that did not exit cleanly).
fn start_join(method: StartMethod) -> Result<(), String> {
    let mut p = Process::new(noop, ()).start_method(method);
    p.start().map_err(|e| format!("start: {e}"))?;
    p.join().map_err(|e| format!("join: {e}"))
}
