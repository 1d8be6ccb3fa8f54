//! Why mp-shm has its own locks: raw_sync's process-shared mutex never
//! recovers from an owner that died, where `mp_shm::Lock` reports
//! `OwnerDied` (see `locks::dead_owner_is_reported_and_the_lock_recovers`).
//! This test decided it; docs/ARCHITECTURE.md records the decision.

use std::time::Duration;

use mp_process::Process;
use mp_shm::{Event, SharedMemory};
use raw_sync::Timeout;
use raw_sync::locks::{LockInit, Mutex};

/// Attaches to the raw_sync mutex in `block`, locks it, says so, and waits
/// to be killed.
fn hold_raw_sync(args: (SharedMemory, Event)) {
    let (block, held) = args;
    // SAFETY: `block` holds a mutex that the parent initialised with
    // `Mutex::new` at its start, and stays mapped while this runs.
    let (mutex, _) = unsafe { Mutex::from_existing(block.as_ptr(), block.as_ptr().add(256)) }
        .expect("attach to the raw_sync mutex");
    let _guard = mutex.lock().expect("lock");
    held.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn raw_sync_mutex_never_recovers_from_a_dead_owner() {
    let block = SharedMemory::new(4096).unwrap();
    // SAFETY: the block is 4096 zeroed, mapped bytes owned by this test; the
    // mutex takes fewer than 256 of them and the data pointer stays inside.
    let (mutex, used) = unsafe { Mutex::new(block.as_ptr(), block.as_ptr().add(256)) }
        .expect("create a raw_sync mutex");
    assert!(used <= 256);
    let held = Event::new().unwrap();
    let mut p = Process::new(hold_raw_sync, (block.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait_timeout(Duration::from_secs(10)));
    p.kill().unwrap();
    let _ = p.join();
    // The owner is dead and reaped. A robust lock would hand the lock over;
    // raw_sync's timed lock fails every time: ETIMEDOUT after the timeout,
    // or EINVAL at once when its deadline's nanoseconds overflow (its issue
    // #39). Its untimed `lock()` would wait forever.
    for _ in 0..3 {
        let r = mutex.try_lock(Timeout::Val(Duration::from_millis(300)));
        assert!(r.is_err(), "raw_sync acquired a lock whose owner died");
        if let Err(e) = r {
            eprintln!("raw_sync try_lock after owner death: {e}");
        }
    }
}
