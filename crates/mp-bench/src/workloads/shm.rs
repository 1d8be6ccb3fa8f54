//! The shared-memory workloads: `value_lock_counter_sharedctypes`,
//! `raw_value_no_lock`, `atomic_counter`, `array_sum`, `shared_memory_block`
//! and `lock_uncontended`.
//!
//! Children are gated (WORKLOADS.md): each attaches, releases `ready`, and
//! waits for `go`; the clock runs from `go` to the last `done`. Start-up,
//! exit and result checks are untimed.

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use mp_process::Process;
use mp_shm::{Array, AtomicI64, Event, Lock, RawValue, Semaphore, SharedMemory, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::repeat;

const WAIT: Duration = Duration::from_secs(120);

/// The gate every child passes: ready, go, and done.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Gate {
    ready: Semaphore,
    go: Event,
    done: Semaphore,
}

impl Gate {
    fn new() -> Result<Gate, String> {
        Ok(Gate {
            ready: Semaphore::new(0).map_err(|e| e.to_string())?,
            go: Event::new().map_err(|e| e.to_string())?,
            done: Semaphore::new(0).map_err(|e| e.to_string())?,
        })
    }

    /// Child side: report ready and wait for go.
    fn enter(&self) {
        let _ = self.ready.release();
        self.go.wait();
    }

    /// Child side: report done.
    fn leave(&self) {
        let _ = self.done.release();
    }
}

/// Starts one child per argument running `f(gate, arg)`, times from go to
/// the last done, joins them and returns (seconds, their results).
fn gated<F, A, R>(f: F, args: Vec<A>) -> Result<(f64, Vec<R>), String>
where
    F: Fn((Gate, A)) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let gate = Gate::new()?;
    let n = args.len();
    let mut ps: Vec<Process<R>> = args
        .into_iter()
        .map(|a| Process::new(f, (gate.clone(), a)))
        .collect();
    for p in &mut ps {
        p.start().map_err(|e| format!("start: {e}"))?;
    }
    for _ in 0..n {
        if !gate.ready.acquire_timeout(WAIT) {
            return Err("a child never became ready".into());
        }
    }
    let start = Instant::now();
    gate.go.set();
    for _ in 0..n {
        if !gate.done.acquire_timeout(WAIT) {
            return Err("a child never finished".into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let results = ps
        .iter_mut()
        .map(|p| p.join().map_err(|e| format!("join: {e}")))
        .collect::<Result<Vec<R>, String>>()?;
    Ok((secs, results))
}

fn locked_incs(args: (Gate, (Value<i32>, u32))) {
    let (gate, (v, n)) = args;
    gate.enter();
    for _ in 0..n {
        *v.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
    gate.leave();
}

/// `Value(i32)` with its lock; 2 processes x 100,000 locked `+= 1`.
pub(crate) fn value_lock_counter(quick: bool) -> Result<Vec<f64>, String> {
    let n = 100_000;
    let once = || -> Result<f64, String> {
        let v = Value::new(0_i32).map_err(|e| e.to_string())?;
        let (secs, _) = gated(locked_incs, vec![(v.clone(), n), (v.clone(), n)])?;
        let got = v.get().map_err(|e| e.to_string())?;
        if got != 2 * n as i32 {
            return Err(format!("counter is {got}, expected {}", 2 * n));
        }
        Ok(f64::from(2 * n) / secs)
    };
    once()?;
    repeat(quick, once)
}

fn raw_incs(args: (Gate, (RawValue<i32>, u32))) {
    let (gate, (v, n)) = args;
    gate.enter();
    for _ in 0..n {
        v.set(v.get() + 1);
    }
    gate.leave();
}

/// Unlocked value, 2 processes x 100,000 `+= 1`; lost updates are expected
/// (reported on stderr), the check is that the count is plausible.
pub(crate) fn raw_value_no_lock(quick: bool) -> Result<Vec<f64>, String> {
    let n = 100_000;
    let once = || -> Result<f64, String> {
        let v = RawValue::new(0_i32).map_err(|e| e.to_string())?;
        let (secs, _) = gated(raw_incs, vec![(v.clone(), n), (v.clone(), n)])?;
        let got = v.get();
        if got < n as i32 || got > 2 * n as i32 {
            return Err(format!("counter is {got}, outside {n}..={}", 2 * n));
        }
        eprintln!(
            "raw_value_no_lock: {} of {} updates lost",
            2 * n as i32 - got,
            2 * n
        );
        Ok(f64::from(2 * n) / secs)
    };
    once()?;
    repeat(quick, once)
}

fn atomic_incs(args: (Gate, (AtomicI64, u32))) {
    let (gate, (v, n)) = args;
    gate.enter();
    for _ in 0..n {
        v.fetch_add(1, Relaxed);
    }
    gate.leave();
}

/// Shared atomic, 2 processes x 1,000,000 `fetch_add`; exact.
pub(crate) fn atomic_counter(quick: bool) -> Result<Vec<f64>, String> {
    let n = 1_000_000;
    let once = || -> Result<f64, String> {
        let v = AtomicI64::new(0).map_err(|e| e.to_string())?;
        let (secs, _) = gated(atomic_incs, vec![(v.clone(), n), (v.clone(), n)])?;
        let got = v.load(Relaxed);
        if got != 2 * i64::from(n) {
            return Err(format!("counter is {got}, expected {}", 2 * n));
        }
        Ok(f64::from(2 * n) / secs)
    };
    once()?;
    repeat(quick, once)
}

fn sum_half(args: (Gate, (Array<f64>, usize, usize))) -> f64 {
    let (gate, (a, start, end)) = args;
    gate.enter();
    let g = a.lock().unwrap_or_else(|e| e.into_inner());
    let s: f64 = g[start..end].iter().sum();
    drop(g);
    gate.leave();
    black_box(s)
}

/// `Array(f64, 10_000_000)` filled by the parent; 2 children sum halves.
pub(crate) fn array_sum(quick: bool) -> Result<Vec<f64>, String> {
    let len = 10_000_000;
    let a = Array::<f64>::new(len).map_err(|e| e.to_string())?;
    {
        let mut g = a.lock().map_err(|e| e.to_string())?;
        for (i, x) in g.iter_mut().enumerate() {
            *x = i as f64;
        }
    }
    let want = (len as f64 - 1.0) * len as f64 / 2.0;
    let once = || -> Result<f64, String> {
        let (secs, sums) = gated(
            sum_half,
            vec![(a.clone(), 0, len / 2), (a.clone(), len / 2, len)],
        )?;
        let got: f64 = sums.iter().sum();
        if got != want {
            return Err(format!("sum is {got}, expected {want}"));
        }
        Ok((len * 8) as f64 / (1024.0 * 1024.0) / secs)
    };
    once()?;
    repeat(quick, once)
}

/// Waits for the block's name, attaches, writes every byte.
fn write_block(args: (Gate, (SharedMemory, usize))) {
    let (gate, (names, len)) = args;
    let payload = vec![0xAB_u8; len];
    gate.enter();
    let mut n = [0u8; 1];
    let _ = names.read_at(0, &mut n);
    let mut name = vec![0u8; usize::from(n[0])];
    let _ = names.read_at(1, &mut name);
    let block = String::from_utf8(name)
        .ok()
        .and_then(|name| SharedMemory::attach(&name).ok());
    if let Some(b) = block {
        let _ = b.write_at(0, &payload);
    }
    gate.leave();
}

/// 100 MiB named block: create, a child attaches and writes all, the parent
/// reads all.
pub(crate) fn shared_memory_block(quick: bool) -> Result<Vec<f64>, String> {
    let len = 100 << 20;
    let mut buf = vec![0u8; len];
    let mut once = || -> Result<f64, String> {
        let names = SharedMemory::new(256).map_err(|e| e.to_string())?;
        let gate = Gate::new()?;
        let mut p = Process::new(write_block, (gate.clone(), (names.clone(), len)));
        p.start().map_err(|e| format!("start: {e}"))?;
        if !gate.ready.acquire_timeout(WAIT) {
            return Err("the child never became ready".into());
        }
        let start = Instant::now();
        let block = SharedMemory::create(len).map_err(|e| e.to_string())?;
        let name = block.name().unwrap_or_default().as_bytes().to_vec();
        names
            .write_at(0, &[name.len() as u8])
            .and_then(|()| names.write_at(1, &name))
            .map_err(|e| e.to_string())?;
        gate.go.set();
        if !gate.done.acquire_timeout(WAIT) {
            return Err("the child never finished".into());
        }
        block.read_at(0, &mut buf).map_err(|e| e.to_string())?;
        let secs = start.elapsed().as_secs_f64();
        p.join().map_err(|e| format!("join: {e}"))?;
        if buf.iter().any(|&b| b != 0xAB) {
            return Err("the parent read bytes the child did not write".into());
        }
        buf.fill(0);
        Ok(len as f64 / (1u64 << 30) as f64 / secs)
    };
    once()?;
    repeat(quick, once)
}

/// One uncontended acquire + release of a `Lock`, in ns (in-process).
pub(crate) fn lock_uncontended(quick: bool) -> Result<Vec<f64>, String> {
    let n = if quick { 2_000_000 } else { 5_000_000 };
    let lock = Lock::new().map_err(|e| e.to_string())?;
    let once = || -> Result<f64, String> {
        let start = Instant::now();
        for _ in 0..n {
            drop(black_box(lock.lock().map_err(|e| e.to_string())?));
        }
        let ns = start.elapsed().as_secs_f64() * 1e9 / f64::from(n);
        if lock.is_locked() {
            return Err("the lock is still held".into());
        }
        Ok(ns)
    };
    once()?;
    repeat(quick, once)
}
