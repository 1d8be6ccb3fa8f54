//! `Queue`, `SimpleQueue` and `JoinableQueue`.

use std::time::{Duration, Instant};

use mp_ipc::{GetError, JoinableQueue, PutError, Queue, SimpleQueue, TaskDoneError, Timeout};
use mp_process::Process;
use serde_bytes::ByteBuf;

use super::{GENEROUS, METHODS};

#[test]
fn put_get_sizes_and_errors_in_one_process() {
    let q: Queue<String> = Queue::with_maxsize(2).unwrap();
    assert!(q.empty() && !q.full() && q.qsize() == 0 && q.maxsize() == 2);
    q.put("a".into()).unwrap();
    q.try_put("b".into()).unwrap();
    assert!(q.full() && q.qsize() == 2);
    match q.try_put("c".into()) {
        Err(PutError::Full(v)) => assert_eq!(v, "c"),
        other => panic!("{other:?}"),
    }
    let t = Duration::from_millis(100);
    let start = Instant::now();
    let e = q.put_timeout("d".into(), t).unwrap_err();
    assert!(start.elapsed() >= t && start.elapsed() < GENEROUS);
    assert_eq!(e.into_inner(), "d");
    assert_eq!(q.get().unwrap(), "a");
    assert_eq!(q.try_get().unwrap(), "b");
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
    let start = Instant::now();
    assert!(matches!(q.get_timeout(t), Err(GetError::Empty)));
    assert!(start.elapsed() >= t && start.elapsed() < GENEROUS);
    q.close();
    q.close();
    assert!(matches!(q.put("x".into()), Err(PutError::Closed(v)) if v == "x"));
    assert!(matches!(q.get(), Err(GetError::Closed)));
}

#[test]
fn an_unbounded_queue_takes_more_than_the_socket_buffer_in_one_process() {
    // More items than the kernel buffer holds: the rest wait in the feeder.
    let q: Queue<u64> = Queue::new().unwrap();
    for i in 0..30_000 {
        q.put(i).unwrap();
    }
    for i in 0..30_000 {
        assert_eq!(q.get_timeout(GENEROUS).unwrap(), i);
    }
    assert!(q.empty());
}

fn produce((q, id, n): (Queue<(u32, u32)>, u32, u32)) {
    for i in 0..n {
        q.put_timeout((id, i), GENEROUS).unwrap();
    }
}

fn consume((q, n): (Queue<(u32, u32)>, u32)) -> Vec<(u32, u32)> {
    (0..n).map(|_| q.get_timeout(GENEROUS).unwrap()).collect()
}

#[test]
fn many_producers_and_consumers_under_every_method() {
    for m in METHODS {
        let q: Queue<(u32, u32)> = Queue::with_maxsize(50).unwrap();
        let producers: Vec<_> = (0..3)
            .map(|id| {
                let mut p = Process::new(produce, (q.clone(), id, 300)).start_method(m);
                p.start().unwrap();
                p
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let mut p = Process::new(consume, (q.clone(), 450)).start_method(m);
                p.start().unwrap();
                p
            })
            .collect();
        let mut all = Vec::new();
        for mut c in consumers {
            let got = c.join().unwrap();
            // Each producer's items keep their order in each consumer.
            for id in 0..3 {
                let seq: Vec<u32> = got.iter().filter(|x| x.0 == id).map(|x| x.1).collect();
                assert!(
                    seq.windows(2).all(|w| w[0] < w[1]),
                    "{m}: order of producer {id}"
                );
            }
            all.extend(got);
        }
        for mut p in producers {
            p.join().unwrap();
        }
        all.sort();
        let want: Vec<_> = (0..3)
            .flat_map(|id| (0..300).map(move |i| (id, i)))
            .collect();
        assert_eq!(all, want, "{m}: every item exactly once");
    }
}

fn put_and_exit((q, n): (Queue<ByteBuf>, usize)) {
    for i in 0..n {
        q.put(ByteBuf::from(vec![i as u8; 10 << 20])).unwrap();
    }
    q.put(ByteBuf::from(b"small".to_vec())).unwrap();
}

#[test]
fn a_child_that_exits_with_items_queued_loses_none_and_join_does_not_wait() {
    for m in METHODS {
        let q: Queue<ByteBuf> = Queue::new().unwrap();
        let mut p = Process::new(put_and_exit, (q.clone(), 2)).start_method(m);
        p.start().unwrap();
        // Joined before anything is taken: CPython deadlocks here.
        p.join_timeout(GENEROUS).unwrap();
        for i in 0..2 {
            let b = q.get_timeout(GENEROUS).unwrap();
            assert!(b.len() == 10 << 20 && b.iter().all(|&x| x == i as u8));
        }
        assert_eq!(&q.get().unwrap()[..], b"small");
    }
}

fn stream_bytes((q, n): (Queue<ByteBuf>, usize)) {
    for i in 0..n {
        let mut v = vec![0u8; 10 << 20];
        v[0] = i as u8;
        v[(10 << 20) - 1] = i as u8;
        v[5 << 20] = 0xAB;
        q.put_timeout(ByteBuf::from(v), GENEROUS).unwrap();
    }
}

#[test]
fn ten_mib_items_and_256_mib_in_total_arrive_intact() {
    let q: Queue<ByteBuf> = Queue::with_maxsize(4).unwrap();
    let mut p = Process::new(stream_bytes, (q.clone(), 26));
    p.start().unwrap();
    let mut total = 0;
    for i in 0..26 {
        let b = q.get_timeout(GENEROUS).unwrap();
        assert_eq!(b.len(), 10 << 20);
        assert!(b[0] == i as u8 && b[(10 << 20) - 1] == i as u8 && b[5 << 20] == 0xAB);
        total += b.len();
    }
    assert!(total >= 256 << 20);
    p.join().unwrap();
}

fn joinable_worker(q: JoinableQueue<Option<u32>>) -> u32 {
    let mut n = 0;
    while let Some(_x) = q.get_timeout(GENEROUS).unwrap() {
        std::thread::sleep(Duration::from_millis(5));
        n += 1;
        q.task_done().unwrap();
    }
    q.task_done().unwrap();
    n
}

#[test]
fn joinable_queue_join_waits_for_every_task_done() {
    let q: JoinableQueue<Option<u32>> = JoinableQueue::new().unwrap();
    let ws: Vec<_> = (0..4)
        .map(|_| {
            let mut p = Process::new(joinable_worker, q.clone());
            p.start().unwrap();
            p
        })
        .collect();
    for i in 0..10 {
        q.put(Some(i)).unwrap();
    }
    q.join_timeout(GENEROUS).unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.empty());
    for _ in 0..4 {
        q.put(None).unwrap();
    }
    let done: u32 = ws.into_iter().map(|mut p| p.join().unwrap()).sum();
    assert_eq!(done, 10);
    assert_eq!(q.task_done(), Err(TaskDoneError), "one task_done too many");
}

#[test]
fn joinable_join_timeout_returns_no_earlier() {
    let q: JoinableQueue<u8> = JoinableQueue::new().unwrap();
    q.put(1).unwrap();
    let t = Duration::from_millis(100);
    let start = Instant::now();
    assert_eq!(q.join_timeout(t), Err(Timeout));
    assert!(start.elapsed() >= t && start.elapsed() < GENEROUS);
    q.get().unwrap();
    q.task_done().unwrap();
    q.join();
}

fn simple_child(q: SimpleQueue<String>) -> bool {
    let saw = !q.empty();
    let got = q.get().unwrap();
    q.put(format!("{got} back")).unwrap();
    saw
}

#[test]
fn simple_queue_empty_is_reliable_across_processes() {
    for m in METHODS {
        let q: SimpleQueue<String> = SimpleQueue::new().unwrap();
        assert!(q.empty());
        q.put("hi".into()).unwrap();
        let mut p = Process::new(simple_child, q.clone()).start_method(m);
        p.start().unwrap();
        assert!(p.join().unwrap(), "the child sees the parent's item");
        assert!(!q.empty(), "the parent sees the child's item");
        assert_eq!(q.get().unwrap(), "hi back");
        q.close();
        q.close();
        assert!(matches!(q.get(), Err(GetError::Closed)));
    }
}

#[test]
fn put_serializes_at_the_call() {
    let q: Queue<Vec<u32>> = Queue::new().unwrap();
    let mut v = vec![1, 2, 3];
    q.put(v.clone()).unwrap();
    v.push(4); // a change after put never reaches the reader
    assert_eq!(q.get().unwrap(), vec![1, 2, 3]);
}

/// The size of producer item `i`: small ones through the ring, others
/// through the socket (inline datagram) or a memfd (3 MiB), interleaved.
fn mixed_size(i: u32) -> usize {
    match i % 7 {
        0 => 3,
        1 => 5000,
        2 => 100,
        3 => 70_000,
        4 => 4000,
        5 if i % 21 == 5 => 3 << 20,
        _ => 0,
    }
}

fn mixed_producer((q, id, n): (Queue<(u8, u32, ByteBuf)>, u8, u32)) {
    for i in 0..n {
        let v = ByteBuf::from(vec![id; mixed_size(i)]);
        q.put_timeout((id, i, v), GENEROUS).unwrap();
    }
}

fn mixed_consumer((q, n): (Queue<(u8, u32, ByteBuf)>, u32)) -> Vec<(u8, u32)> {
    (0..n)
        .map(|_| {
            let (id, i, v) = q.get_timeout(GENEROUS).unwrap();
            assert_eq!(v.len(), mixed_size(i));
            assert!(v.iter().all(|&b| b == id));
            (id, i)
        })
        .collect()
}

#[test]
fn mixed_sizes_keep_each_producers_order() {
    const PRODUCERS: u8 = 3;
    const PER: u32 = 60;
    let q: Queue<(u8, u32, ByteBuf)> = Queue::with_maxsize(8).unwrap();
    let ps: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let mut p = Process::new(mixed_producer, (q.clone(), id, PER));
            p.start().unwrap();
            p
        })
        .collect();
    let total = u32::from(PRODUCERS) * PER;
    let cs: Vec<_> = [total / 2, total - total / 2]
        .into_iter()
        .map(|n| {
            let mut p = Process::new(mixed_consumer, (q.clone(), n));
            p.start().unwrap();
            p
        })
        .collect();
    let mut all = Vec::new();
    for mut c in cs {
        let got = c.join().unwrap();
        for id in 0..PRODUCERS {
            let seq: Vec<u32> = got.iter().filter(|x| x.0 == id).map(|x| x.1).collect();
            assert!(seq.windows(2).all(|w| w[0] < w[1]), "producer {id} order");
        }
        all.extend(got);
    }
    for mut p in ps {
        p.join().unwrap();
    }
    all.sort_unstable();
    let want: Vec<(u8, u32)> = (0..PRODUCERS)
        .flat_map(|id| (0..PER).map(move |i| (id, i)))
        .collect();
    assert_eq!(all, want);
    assert!(q.empty());
}

#[test]
fn items_beyond_the_rings_room_wait_in_the_feeder_in_order() {
    // About 6 MiB of 3 KiB items unread: far more than the ring holds, so
    // most wait in this process's feeder thread; mixed with larger items.
    let q: Queue<ByteBuf> = Queue::new().unwrap();
    let item = |i: u32| {
        let len = if i.is_multiple_of(100) { 20_000 } else { 3000 };
        ByteBuf::from(vec![i as u8; len])
    };
    for i in 0..2000 {
        q.put(item(i)).unwrap();
    }
    for i in 0..2000 {
        assert_eq!(q.get_timeout(GENEROUS).unwrap(), item(i));
    }
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
}
