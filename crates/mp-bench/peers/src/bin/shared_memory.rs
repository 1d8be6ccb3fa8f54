//! `peer-shared-memory`: shared_memory 0.12 (a named POSIX shared memory
//! segment) with raw_sync 0.1's process-shared `Mutex` in it, the pair a
//! Rust user would pick for shared memory and locks, on
//! `value_lock_counter_sharedctypes`: 2 processes x 100,000 locked `+= 1` of
//! one `i32`; the final count must be exact.
//!
//! Both crates hand out raw pointers only (`Shmem::as_ptr`, raw_sync's
//! `unsafe fn new(mem, data)`), so this program has `unsafe` blocks: it is
//! one of tidy's documented exceptions, because a peer must be measured as
//! its users would write it.
//!
//! Children are this program run again (`--child OS_ID N`). The gate is
//! three atomics at the start of the segment: each child counts itself
//! ready and spins until go; the parent, sleeping in short naps, times from
//! go to the second done.

use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mp_bench_peers::{Better, Workload, err, warm_and_repeat};
use raw_sync::locks::{LockInit, Mutex};
use shared_memory::{Shmem, ShmemConf};

/// The segment: the gate, the mutex, the counter.
const SIZE: usize = 4096;
const READY: usize = 0;
const GO: usize = 4;
const DONE: usize = 8;
const MUTEX: usize = 64;
const COUNTER: usize = 1024;

/// How long the parent naps between looks at the gate.
const NAP: Duration = Duration::from_micros(20);
/// A generous bound on a child's start and its increments.
const WAIT: Duration = Duration::from_secs(120);

fn gate(shm: &Shmem, at: usize) -> &AtomicU32 {
    // SAFETY: `at` is one of the gate offsets, 4-aligned and inside the
    // segment (page-aligned, SIZE bytes), which lives as long as `shm`;
    // every process touches these words only through atomics.
    unsafe { AtomicU32::from_ptr(shm.as_ptr().add(at).cast()) }
}

fn wait_for(shm: &Shmem, at: usize, want: u32, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while gate(shm, at).load(SeqCst) < want {
        if Instant::now() > deadline {
            return Err(format!("children never {what}"));
        }
        std::thread::sleep(NAP);
    }
    Ok(())
}

fn counter_child(os_id: &str, n: u32) -> Result<(), String> {
    let shm = ShmemConf::new().os_id(os_id).open().map_err(err)?;
    let base = shm.as_ptr();
    // SAFETY: the parent initialised a raw_sync Mutex at MUTEX guarding the
    // i32 at COUNTER, both inside the SIZE-byte segment mapped here.
    let (mutex, _) = unsafe { Mutex::from_existing(base.add(MUTEX), base.add(COUNTER)) }
        .map_err(|e| e.to_string())?;
    gate(&shm, READY).fetch_add(1, SeqCst);
    while gate(&shm, GO).load(SeqCst) == 0 {
        std::hint::spin_loop();
    }
    for _ in 0..n {
        let guard = mutex.lock().map_err(|e| e.to_string())?;
        let data: *mut i32 = (*guard).cast();
        // SAFETY: `data` is the aligned i32 at COUNTER, and the mutex is
        // held: no other process reads or writes it now.
        unsafe { *data += 1 };
        drop(guard);
    }
    gate(&shm, DONE).fetch_add(1, SeqCst);
    Ok(())
}

#[allow(
    clippy::disallowed_methods,
    reason = "a peer starts its children as its crate's users do, without mp-process"
)]
fn child(os_id: &str, n: u32) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(err)?;
    Command::new(exe)
        .args(["--child", os_id, &n.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .map_err(err)
}

/// 2 processes x 100,000 locked increments; increments/s.
fn value_lock_counter(quick: bool) -> Result<Vec<f64>, String> {
    let n: u32 = 100_000;
    warm_and_repeat(quick, || {
        let shm = ShmemConf::new().size(SIZE).create().map_err(err)?;
        let base = shm.as_ptr();
        // SAFETY: a fresh, zeroed, page-aligned segment of SIZE bytes; the
        // mutex and its i32 fit at their offsets and nothing else uses them.
        let (mutex, _) =
            unsafe { Mutex::new(base.add(MUTEX), base.add(COUNTER)) }.map_err(|e| e.to_string())?;
        let kids = [child(shm.get_os_id(), n)?, child(shm.get_os_id(), n)?];
        wait_for(&shm, READY, 2, "became ready")?;
        let start = Instant::now();
        gate(&shm, GO).store(1, SeqCst);
        wait_for(&shm, DONE, 2, "finished")?;
        let secs = start.elapsed().as_secs_f64();
        for mut k in kids {
            let status = k.wait().map_err(err)?;
            if !status.success() {
                return Err(format!("child {status}"));
            }
        }
        let guard = mutex.lock().map_err(|e| e.to_string())?;
        // SAFETY: the aligned i32 at COUNTER, read under the mutex.
        let got = unsafe { *(*guard).cast::<i32>() };
        drop(guard);
        if got != 2 * n as i32 {
            return Err(format!("counter is {got}, expected {}", 2 * n));
        }
        Ok(f64::from(2 * n) / secs)
    })
}

const ALL: &[Workload] = &[Workload {
    name: "value_lock_counter_sharedctypes",
    unit: "incs/s",
    better: Better::Higher,
    run: value_lock_counter,
}];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, os_id, n] = args.as_slice() {
        if flag == "--child" {
            return match counter_child(os_id, n.parse().unwrap_or(0)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("peer-shared-memory child: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    mp_bench_peers::main("peer-shared-memory", ALL)
}
