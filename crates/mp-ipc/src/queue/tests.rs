//! Unit tests of the ring's recovery: processes that die holding the
//! producer or the consumer lock, half-way through a put or a get.

use std::time::Duration;

use mp_process::Process;
use serde_bytes::ByteBuf;

use super::*;

/// Long enough that no test waits in vain; never a speed assertion.
const GENEROUS: Duration = Duration::from_secs(10);

/// Dies holding the producer lock after writing half a record (and, with
/// `orphan`, after sending a socket message whose record never comes).
fn die_mid_put((q, orphan): (Queue<ByteBuf>, bool)) {
    let core = &q.h.core;
    let guard = core.ring.producer.lock().expect("no owner died yet");
    let tail = core.ring.tail().unwrap();
    // A header promising 100 bytes, and only part of them.
    core.ring
        .write(tail, &ring::header(KIND_INLINE, 100).to_le_bytes())
        .unwrap();
    core.ring.write(tail + 8, &[0xee; 40]).unwrap();
    if orphan {
        let seq = core.ring.next_seq().unwrap();
        let mut bytes = vec![TAG_INLINE];
        bytes.extend_from_slice(&seq.to_le_bytes());
        bytes.extend_from_slice(&[0xee; 6000]);
        assert!(core.send(&bytes, None).unwrap());
    }
    // The process ends with the lock held.
    std::mem::forget(guard);
}

fn item(tag: u8, len: usize) -> ByteBuf {
    ByteBuf::from(vec![tag; len])
}

#[test]
fn a_producer_dying_mid_put_loses_and_blocks_nothing() {
    for (orphan, len) in [(false, 10), (true, 10), (true, 6000)] {
        let q: Queue<ByteBuf> = Queue::new().unwrap();
        q.put(item(1, len)).unwrap();
        let mut p = Process::new(die_mid_put, (q.clone(), orphan));
        p.start().unwrap();
        p.join().unwrap();
        assert!(q.h.core.ring.producer.is_locked(), "died holding it");
        // The next put takes the lock over and writes over the half record.
        q.put_timeout(item(2, len), GENEROUS).unwrap();
        q.put_timeout(item(3, len), GENEROUS).unwrap();
        for tag in 1..=3 {
            assert_eq!(q.get_timeout(GENEROUS).unwrap(), item(tag, len));
        }
        assert!(matches!(q.try_get(), Err(GetError::Empty)));
    }
}

/// How far a dying consumer gets.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Stage {
    /// Holds the lock, has read nothing.
    Locked,
    /// Has also received the record's socket message.
    Received,
    /// Has also moved the head past the record.
    Advanced,
}

fn die_mid_get((q, stage): (Queue<ByteBuf>, Stage)) {
    let core = &q.h.core;
    let guard = core.ring.consumer.lock().expect("no owner died yet");
    let head = core.ring.head.load(Ordering::Relaxed);
    core.ring.set_taking(head).unwrap();
    match stage {
        Stage::Locked => {}
        Stage::Received => {
            let mut buf = vec![0; 1 << 16];
            core.recv(&mut buf, RecvFlags::DONTWAIT).unwrap();
        }
        Stage::Advanced => {
            let mut h = [0; 8];
            core.ring.read(head, &mut h).unwrap();
            let size = ring::record_len(u64::from_le_bytes(h)).unwrap();
            core.ring.head.store(head + size as u64, Ordering::Release);
        }
    }
    std::mem::forget(guard);
}

#[test]
fn a_consumer_dying_mid_get_leaves_the_others_working() {
    // (stage, item length, which of items 1..=3 the survivors get)
    let cases: [(Stage, usize, &[u8]); 4] = [
        (Stage::Locked, 10, &[1, 2, 3]),
        (Stage::Locked, 6000, &[1, 2, 3]),
        // The dead consumer had item 1 in hand: it died with it.
        (Stage::Received, 6000, &[2, 3]),
        (Stage::Advanced, 10, &[2, 3]),
    ];
    for (stage, len, want) in cases {
        // Bounded, to see that the dead consumer's slot comes back.
        let q: Queue<ByteBuf> = Queue::with_maxsize(3).unwrap();
        for tag in 1..=3 {
            q.put(item(tag, len)).unwrap();
        }
        let mut p = Process::new(die_mid_get, (q.clone(), stage));
        p.start().unwrap();
        p.join().unwrap();
        assert!(q.h.core.ring.consumer.is_locked(), "died holding it");
        for &tag in want {
            assert_eq!(q.get_timeout(GENEROUS).unwrap(), item(tag, len));
        }
        assert!(matches!(q.try_get(), Err(GetError::Empty)));
        assert_eq!(q.qsize(), 0);
        // Every slot is free again.
        for tag in 0..3 {
            q.try_put(item(tag, 1)).unwrap();
        }
        assert!(matches!(q.try_put(item(9, 1)), Err(PutError::Full(_))));
    }
}

#[test]
fn records_wrap_around_the_ring_end() {
    // Sizes that do not divide the ring, many times round it, with the
    // ring never more than a few records full.
    let q: Queue<ByteBuf> = Queue::new().unwrap();
    let mut written = 0usize;
    let mut n = 0u32;
    while written < 5 * CAP {
        let len = 1 + (n as usize * 37) % 3000;
        let v = ByteBuf::from((0..len).map(|i| (i as u32 ^ n) as u8).collect::<Vec<u8>>());
        q.put(v.clone()).unwrap();
        assert_eq!(q.get().unwrap(), v);
        written += len;
        n += 1;
    }
    assert!(q.h.core.ring.head.load(Ordering::Relaxed) > 5 * CAP as u64);
}

fn put_later((q, n): (Queue<ByteBuf>, u8)) {
    std::thread::sleep(Duration::from_millis(300));
    for tag in 0..n {
        q.put(item(tag, 8)).unwrap();
    }
}

/// Consumers that have gone to sleep on the bell (past their polling) are
/// woken by puts from another process, every one of them, and `sleepers`
/// comes back to 0.
#[test]
fn sleeping_consumers_are_woken_by_puts() {
    let q: Queue<ByteBuf> = Queue::new().unwrap();
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || q.get_timeout(GENEROUS))
        })
        .collect();
    let mut p = Process::new(put_later, (q.clone(), 3));
    p.start().unwrap();
    let mut got: Vec<u8> = consumers
        .into_iter()
        .map(|c| c.join().unwrap().expect("woken with an item")[0])
        .collect();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2]);
    p.join().unwrap();
    let sleepers = q.h.core.ring.sleepers().unwrap();
    assert_eq!(sleepers.load(Ordering::SeqCst), 0);
}
