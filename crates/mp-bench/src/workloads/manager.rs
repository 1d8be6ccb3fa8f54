//! The manager workloads: `value_lock_counter_manager` (the article's
//! counter through a manager Value and Lock) and `manager_dict_ops`.
//!
//! Children are gated (WORKLOADS.md) with the manager's own objects: each
//! connects, releases `ready` and waits for `go`; the clock runs from `go`
//! to the last `done`.

use std::time::{Duration, Instant};

use mp_manager::{DictProxy, EventProxy, LockProxy, Manager, SemaphoreProxy, ValueProxy};
use mp_process::Process;

use super::repeat;

const WAIT: Duration = Duration::from_secs(120);

/// The gate every child passes: ready, go, done.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Gate {
    ready: SemaphoreProxy,
    go: EventProxy,
    done: SemaphoreProxy,
}

impl Gate {
    fn new(m: &Manager) -> Result<Gate, String> {
        Ok(Gate {
            ready: m.semaphore(0).map_err(s)?,
            go: m.event().map_err(s)?,
            done: m.semaphore(0).map_err(s)?,
        })
    }

    fn enter(&self) {
        self.ready.release().expect("ready");
        self.go.wait(Some(WAIT)).expect("go");
    }

    fn leave(&self) {
        self.done.release().expect("done");
    }

    /// Parent side: waits for `n` ready children, opens the gate, and times
    /// until `n` are done.
    fn time(&self, n: usize) -> Result<Duration, String> {
        for _ in 0..n {
            if !self.ready.acquire(true, Some(WAIT)).map_err(s)? {
                return Err("a child never became ready".into());
            }
        }
        let start = Instant::now();
        self.go.set().map_err(s)?;
        for _ in 0..n {
            if !self.done.acquire(true, Some(WAIT)).map_err(s)? {
                return Err("a child never finished".into());
            }
        }
        Ok(start.elapsed())
    }
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The article's task1/task2: `n` times lock, read, write `v + delta`.
fn counter_child(args: (Gate, ValueProxy<i64>, LockProxy, i64, u32)) {
    let (gate, num, lock, delta, n) = args;
    num.get().expect("connect");
    gate.enter();
    for _ in 0..n {
        let _held = lock.lock().expect("lock");
        let v = num.get().expect("get");
        num.set(&(v + delta)).expect("set");
    }
    gate.leave();
}

pub(crate) fn value_lock_counter(quick: bool) -> Result<Vec<f64>, String> {
    let n: u32 = if quick { 2_000 } else { 10_000 };
    let manager = Manager::start().map_err(s)?;
    let rep = || -> Result<f64, String> {
        let gate = Gate::new(&manager)?;
        let num = manager.value(0i64).map_err(s)?;
        let lock = manager.lock().map_err(s)?;
        let mut ps: Vec<_> = [1i64, -1]
            .into_iter()
            .map(|d| {
                Process::new(
                    counter_child,
                    (gate.clone(), num.clone(), lock.clone(), d, n),
                )
            })
            .collect();
        for p in &mut ps {
            p.start().map_err(s)?;
        }
        let took = gate.time(2)?;
        for p in &mut ps {
            p.join().map_err(s)?;
        }
        let end = num.get().map_err(s)?;
        if end != 0 {
            return Err(format!("the counter ended at {end}, not 0"));
        }
        Ok(f64::from(2 * n) / took.as_secs_f64())
    };
    rep()?; // warm-up
    repeat(quick, rep)
}

/// One child: `n` sets then `n` gets on the manager dict.
fn dict_child(args: (Gate, DictProxy<u32, u32>, u32)) {
    let (gate, d, n) = args;
    d.len().expect("connect");
    gate.enter();
    for i in 0..n {
        d.set(&i, &(i * 2)).expect("set");
    }
    for i in 0..n {
        assert_eq!(d.get(&i).expect("get"), Some(i * 2));
    }
    gate.leave();
}

pub(crate) fn dict_ops(quick: bool) -> Result<Vec<f64>, String> {
    let n: u32 = if quick { 5_000 } else { 20_000 };
    let manager = Manager::start().map_err(s)?;
    let rep = || -> Result<f64, String> {
        let gate = Gate::new(&manager)?;
        let d = manager.dict::<u32, u32>().map_err(s)?;
        let mut p = Process::new(dict_child, (gate.clone(), d.clone(), n));
        p.start().map_err(s)?;
        let took = gate.time(1)?;
        p.join().map_err(s)?;
        if d.len().map_err(s)? != n as usize {
            return Err("the dict lost entries".into());
        }
        Ok(f64::from(2 * n) / took.as_secs_f64())
    };
    rep()?;
    repeat(quick, rep)
}
