//! The queues' async forms.

use std::time::Duration;

use mp_ipc::{GetError, JoinableQueue, Queue, SimpleQueue};
use mp_process::Process;

use super::{RUNTIMES, threads, threads_with_all_pending};

/// Puts `0..n`, a large item (through the socket) every 101st, in bursts
/// with pauses, so that gets are cut at any moment.
fn produce((q, n): (Queue<Vec<u32>>, u32)) {
    for i in 0..n {
        let item = if i % 101 == 0 {
            vec![i; 3000] // 12 KB: past the ring's 4 KiB limit
        } else {
            vec![i]
        };
        q.put(item).unwrap();
        if i % 5 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn a_get_dropped_by_a_timeout_loses_no_item_from_a_producer_process() {
    const N: u32 = 2000;
    for rt in RUNTIMES {
        let q: Queue<Vec<u32>> = Queue::new().unwrap();
        let mut p = Process::new(produce, (q.clone(), N));
        p.start().unwrap();
        rt.run(async move {
            let (mut got, mut cancelled) = (0u32, 0u32);
            while got < N {
                match rt.timeout(Duration::from_micros(100), q.get_async()).await {
                    None => cancelled += 1,
                    Some(item) => {
                        let item = item.unwrap();
                        let want = if got % 101 == 0 { 3000 } else { 1 };
                        assert_eq!(item.len(), want, "item {got}");
                        assert!(
                            item.iter().all(|&x| x == got),
                            "item {got}: {:?}",
                            &item[..1]
                        );
                        got += 1;
                    }
                }
            }
            assert!(cancelled > 0, "no get was cancelled");
            assert!(matches!(q.try_get(), Err(GetError::Empty)));
        });
        p.join().unwrap();
    }
}

#[test]
fn bounded_put_waits_for_a_slot_and_a_dropped_put_puts_nothing() {
    for rt in RUNTIMES {
        let q: Queue<u32> = Queue::with_maxsize(2).unwrap();
        rt.run(async move {
            q.put_async(1).await.unwrap();
            q.put_async(2).await.unwrap();
            // Full: the third put waits, and is dropped by the timeout.
            assert!(
                rt.timeout(Duration::from_millis(30), q.put_async(3))
                    .await
                    .is_none()
            );
            assert_eq!(q.qsize(), 2);
            // A consumer in another thread makes room.
            let q2 = q.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                q2.get().unwrap()
            });
            q.put_async(4).await.unwrap();
            assert_eq!(t.join().unwrap(), 1);
            assert_eq!(q.get_async().await.unwrap(), 2);
            assert_eq!(q.get_async().await.unwrap(), 4);
            assert!(matches!(q.try_get(), Err(GetError::Empty)));
        });
    }
}

#[test]
fn simple_and_joinable_queues_have_the_async_forms() {
    for rt in RUNTIMES {
        let s: SimpleQueue<String> = SimpleQueue::new().unwrap();
        let j: JoinableQueue<u8> = JoinableQueue::new().unwrap();
        rt.run(async move {
            s.put_async("a".into()).await.unwrap();
            assert_eq!(s.get_async().await.unwrap(), "a");
            j.put_async(7).await.unwrap();
            assert_eq!(j.unfinished_tasks(), 1);
            assert_eq!(j.get_async().await.unwrap(), 7);
            j.task_done().unwrap();
            j.join_timeout(Duration::from_secs(5)).unwrap();
            // A get waits for a put from another thread.
            let s2 = s.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                s2.put("late".into()).unwrap();
            });
            assert_eq!(s.get_async().await.unwrap(), "late");
            t.join().unwrap();
        });
    }
}

#[test]
fn pending_gets_add_no_thread_each() {
    let _alone = mp_test_helpers::exclusive();
    for rt in RUNTIMES {
        rt.run(async move {
            let shared: Queue<u32> = Queue::new().unwrap();
            let own: Vec<Queue<u32>> = (0..150).map(|_| Queue::new().unwrap()).collect();
            // One pending get first, so the reactor thread exists.
            assert!(
                rt.timeout(Duration::from_millis(20), shared.get_async())
                    .await
                    .is_none()
            );
            let before = threads();
            let mut futs: Vec<_> = (0..200)
                .map(|_| Box::pin(shared.get_async()))
                .chain(own.iter().map(|q| Box::pin(q.get_async())))
                .collect();
            let during = threads_with_all_pending(&mut futs);
            assert!(
                during <= before + 2,
                "{before} threads before 350 pending gets, {during} with them"
            );
            // Every one of them is woken by a put on its queue (past the
            // 127 words one futex_waitv takes, too).
            for q in &own {
                q.put(1).unwrap();
            }
            for _ in 0..200 {
                shared.put(2).unwrap();
            }
            let mut sum = 0;
            for f in futs {
                sum += rt
                    .timeout(Duration::from_secs(10), f)
                    .await
                    .expect("woken")
                    .unwrap();
            }
            assert_eq!(sum, 150 + 400);
        });
    }
}
