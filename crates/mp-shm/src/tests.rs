//! Unit tests of the region checks and the lock word, in one process.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::lock::word::{self, Acquired, WAITERS};
use crate::region::{Kind, Region, Shape};
use crate::sys;

fn dup(region: &Region) -> OwnedFd {
    region.fd().try_clone_to_owned().unwrap()
}

#[test]
fn attach_refuses_another_kind_or_type() {
    let lock = Region::create(Shape::untyped(Kind::Lock, 4)).unwrap();
    assert!(Region::attach(dup(&lock), Shape::untyped(Kind::Lock, 4)).is_ok());
    assert!(Region::attach(dup(&lock), Shape::untyped(Kind::Event, 4)).is_err());
    assert!(Region::attach(dup(&lock), Shape::untyped(Kind::Lock, 8)).is_err());
    let typed = Shape {
        kind: Kind::Value,
        payload_len: 16,
        elem_size: 8,
        elem_align: 8,
        count: 1,
    };
    let v = Region::create(typed).unwrap();
    let other = Shape {
        elem_size: 4,
        elem_align: 4,
        ..typed
    };
    assert!(Region::attach(dup(&v), other).is_err());
}

#[test]
fn attach_refuses_a_file_that_is_not_sealed() {
    let f = std::fs::File::open("/proc/self/exe").unwrap();
    assert!(Region::attach(f.into(), Shape::untyped(Kind::Lock, 4)).is_err());
}

#[test]
fn word_protocol_in_one_process() {
    let w = AtomicU32::new(0);
    let me = sys::pid();
    assert_eq!(word::lock(&w, me, None), Acquired::Locked);
    assert_eq!(word::owner(&w), me);
    // The owner is alive (it is us): a timed attempt times out, no earlier.
    let start = Instant::now();
    let r = word::lock(&w, me, Some(start + Duration::from_millis(120)));
    assert_eq!(r, Acquired::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(120));
    assert_ne!(
        w.load(Ordering::Relaxed) & WAITERS,
        0,
        "the waiter set the bit"
    );
    word::unlock(&w);
    assert_eq!(w.load(Ordering::Relaxed), 0);
}

#[test]
fn a_dead_pid_in_the_word_is_taken_over() {
    // A child that has exited and been reaped: its pid names no process.
    let mut p = mp_process::Process::closure(|| ()).start_method(mp_process::StartMethod::Fork);
    p.start().unwrap();
    let dead = p.pid().unwrap();
    p.join().unwrap();
    assert!(sys::process_ended(dead));
    assert!(!sys::process_ended(sys::pid()));
    let w = AtomicU32::new(dead);
    assert_eq!(word::try_lock(&w, sys::pid()), Acquired::OwnerDied(dead));
    assert_eq!(word::owner(&w), sys::pid());
}

#[test]
fn atomics_in_a_block_are_checked_and_shared_between_handles() {
    let block = crate::SharedMemory::create(64).unwrap();
    let other = crate::SharedMemory::attach(block.name().unwrap()).unwrap();
    block.atomic_u64_at(8).unwrap().store(7, Ordering::SeqCst);
    assert_eq!(other.atomic_u64_at(8).unwrap().load(Ordering::SeqCst), 7);
    let mut bytes = [0; 8];
    other.read_at(8, &mut bytes).unwrap();
    assert_eq!(u64::from_le_bytes(bytes), 7);
    assert!(block.atomic_u64_at(4).is_err(), "misaligned");
    assert!(block.atomic_u64_at(64).is_err(), "past the end");
    assert!(block.atomic_u64_at(usize::MAX - 3).is_err(), "overflow");
}

#[test]
fn a_futex_word_in_a_block_sleeps_and_wakes() {
    let block = crate::SharedMemory::create(64).unwrap();
    assert!(block.atomic_u32_at(2).is_err(), "misaligned");
    assert!(block.atomic_u32_at(62).is_err(), "past the end");
    let word = block.atomic_u32_at(4).unwrap();
    // Not the expected value: returns at once; expected: times out.
    assert!(crate::futex_wait(word, 1, Some(Duration::from_secs(5))));
    let start = Instant::now();
    assert!(!crate::futex_wait(word, 0, Some(Duration::from_millis(30))));
    assert!(start.elapsed() >= Duration::from_millis(30));
    // A waker through another handle of the block.
    let other = crate::SharedMemory::attach(block.name().unwrap()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            let w = other.atomic_u32_at(4).unwrap();
            w.store(1, Ordering::SeqCst);
            crate::futex_wake(w, 1);
        });
        while word.load(Ordering::SeqCst) == 0 {
            crate::futex_wait(word, 0, Some(Duration::from_secs(10)));
        }
    });
    assert!(crate::current_cpu().is_some());
}
