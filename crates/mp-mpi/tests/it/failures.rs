//! Scenarios that end the job (or fail a task) on purpose; the launcher
//! checks how each ends.

use std::time::Duration;

use mp_mpi::{ErrorKind, MpiPool};

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A panic in a thread the task started: it escapes the task.
fn panic_in_thread(_: ()) -> u8 {
    let t = std::thread::spawn(|| panic!("escaped from a task's thread"));
    let _ = t.join();
    0
}

fn kill_self(_: ()) -> u8 {
    // SIGKILL by the `kill` program: no unsafe code needed here.
    let pid = std::process::id().to_string();
    #[allow(clippy::disallowed_methods)] // `kill` is a program, not a Rust function.
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();
    // Not reached: the signal ends this rank.
    std::thread::sleep(Duration::from_secs(60));
    1
}

fn boom(x: u32) -> u32 {
    if x.is_multiple_of(3) {
        panic!("task {x} failed on purpose");
    }
    x * 2
}

pub(crate) fn run(name: &str) {
    let world = mp_mpi::init().expect("init");
    let pool = MpiPool::new(&world).expect("pool");
    match name {
        "escape-main" => {
            // A worker is busy meanwhile: the abort must end it too.
            let _busy = pool.apply_async(nap, 30_000).expect("submit");
            std::thread::sleep(Duration::from_millis(200));
            panic!("rank 0's main panics on purpose");
        }
        "escape-worker" => {
            let r = pool.apply(panic_in_thread, ());
            // Not reached: the job is aborted first.
            println!("escape-worker: got {r:?}");
        }
        "kill-worker" => {
            let _other = pool.apply_async(nap, 30_000).expect("submit");
            // Waits with no timeout: only the end of the job ends this.
            let r = pool.apply(kill_self, ());
            println!("kill-worker: got {r:?}");
        }
        "task-panic" => {
            let results: Vec<_> = (0..12)
                .map(|x| pool.apply_async(boom, x).expect("submit"))
                .collect();
            for (x, r) in results.iter().enumerate() {
                let x = x as u32;
                match r.get() {
                    Ok(v) => assert_eq!(v, x * 2),
                    Err(e) => {
                        assert_eq!(x % 3, 0, "task {x}: {e}");
                        assert_eq!(e.kind(), ErrorKind::Panicked);
                        let info = e.panic_info().expect("panic info");
                        assert_eq!(info.message(), format!("task {x} failed on purpose"));
                        assert!(
                            info.location()
                                .is_some_and(|l| l.file().ends_with("failures.rs"))
                        );
                    }
                }
            }
            // A map with a panicking chunk fails; later work still runs.
            let e = pool.map(boom, 0..10, Some(2)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Panicked);
            assert_eq!(pool.map(boom, [1, 2, 4], None).unwrap(), [2, 4, 8]);
            println!("task-panic: worker went on");
        }
        other => panic!("unknown scenario {other}"),
    }
}
