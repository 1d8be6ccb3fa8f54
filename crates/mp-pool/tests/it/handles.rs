//! Tasks and initializers that take queues, shared values and locks: what
//! a process can take as an argument, a pool's task can take too.

use std::sync::OnceLock;
use std::time::Duration;

use mp_ipc::Queue;
use mp_pool::{ErrorKind, Pool, ProcessPoolExecutor, TaskPool, ThreadPool};
use mp_shm::Value;

use crate::{METHODS, SOON, exclusive, fd_count, shared};

/// Puts `i` on the queue and adds it to the shared value, under its lock.
fn put_and_add(args: (Queue<i64>, Value<i64>, i64)) -> i64 {
    let (q, v, i) = args;
    q.put(i).unwrap();
    *v.lock().unwrap() += i;
    i * 10
}

fn drain(q: &Queue<i64>, n: usize) -> Vec<i64> {
    let mut got: Vec<i64> = (0..n).map(|_| q.get_timeout(SOON).unwrap()).collect();
    got.sort_unstable();
    got
}

/// `apply_async`, `map` and `imap` carry handles, under every start method.
#[test]
fn tasks_take_queues_and_shared_values_under_every_method() {
    let _g = shared();
    for m in METHODS {
        let pool = crate::pool_with(m);
        let q: Queue<i64> = Queue::new().unwrap();
        let v = Value::new(0i64).unwrap();
        let rs: Vec<_> = (0..10)
            .map(|i| {
                pool.apply_async(put_and_add, (q.clone(), v.clone(), i))
                    .unwrap()
            })
            .collect();
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(r.get().unwrap(), i as i64 * 10, "{m:?}");
        }
        let items: Vec<_> = (10..40).map(|i| (q.clone(), v.clone(), i)).collect();
        let out = pool.map(put_and_add, items, Some(7)).unwrap();
        assert_eq!(out, (10..40).map(|i| i * 10).collect::<Vec<_>>(), "{m:?}");
        let items: Vec<_> = (40..50).map(|i| (q.clone(), v.clone(), i)).collect();
        let out: Vec<i64> = pool
            .imap(put_and_add, items, Some(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (40..50).map(|i| i * 10).collect::<Vec<_>>(), "{m:?}");
        assert_eq!(drain(&q, 50), (0..50).collect::<Vec<_>>(), "{m:?}");
        assert_eq!(v.get().unwrap(), (0..50).sum::<i64>(), "{m:?}");
        pool.close();
        pool.join().unwrap();
    }
}

/// The executor and the thread pool take them too.
#[test]
fn the_executor_and_the_thread_pool_take_them_too() {
    let _g = shared();
    let q: Queue<i64> = Queue::new().unwrap();
    let v = Value::new(0i64).unwrap();
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let f = ex.submit(put_and_add, (q.clone(), v.clone(), 1)).unwrap();
    assert_eq!(f.result().unwrap(), 10);
    ex.shutdown(true, false).unwrap();
    let threads = ThreadPool::new(2).unwrap();
    assert_eq!(
        TaskPool::apply(&threads, put_and_add, (q.clone(), v.clone(), 2)).unwrap(),
        20
    );
    assert_eq!(drain(&q, 2), [1, 2]);
    assert_eq!(v.get().unwrap(), 3);
}

static WORKER_QUEUE: OnceLock<Queue<u32>> = OnceLock::new();

fn keep_queue(q: Queue<u32>) {
    let _ = WORKER_QUEUE.set(q);
}

fn report_pid(_: ()) -> bool {
    match WORKER_QUEUE.get() {
        Some(q) => q.put(std::process::id()).is_ok(),
        None => false,
    }
}

/// Each worker gets its own handle on a queue given to the initializer,
/// replacement workers included.
#[test]
fn the_initializer_takes_a_queue_each_worker_keeps() {
    let _g = shared();
    for m in METHODS {
        let q: Queue<u32> = Queue::new().unwrap();
        let pool = Pool::builder()
            .processes(2)
            .maxtasksperchild(1)
            .initializer(keep_queue, q.clone())
            .start_method(m)
            .build()
            .unwrap();
        let oks = pool.map(report_pid, vec![(); 4], Some(1)).unwrap();
        assert_eq!(oks, [true; 4], "{m:?}");
        let mut pids: Vec<u32> = (0..4).map(|_| q.get_timeout(SOON).unwrap()).collect();
        pids.sort_unstable();
        pids.dedup();
        // maxtasksperchild(1): every task ran in a new worker.
        assert_eq!(pids.len(), 4, "{m:?}");
        pool.close();
        pool.join().unwrap();
    }
}

fn sleep_then_exit(ms: u64) -> u8 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::exit(3)
}

/// A task sent to a worker that dies before running it goes to the next
/// worker with its descriptors.
#[test]
fn a_requeued_task_brings_its_descriptors_to_the_next_worker() {
    let _g = shared();
    let pool = Pool::new(1).unwrap();
    let q: Queue<i64> = Queue::new().unwrap();
    let v = Value::new(0i64).unwrap();
    let doomed = pool.apply_async(sleep_then_exit, 200).unwrap();
    let after = pool
        .apply_async(put_and_add, (q.clone(), v.clone(), 7))
        .unwrap();
    let e = doomed.get_timeout(SOON).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerLost);
    assert_eq!(after.get_timeout(SOON).unwrap(), 70);
    assert_eq!(q.get_timeout(SOON).unwrap(), 7);
    assert_eq!(v.get().unwrap(), 7);
}

fn count(vs: Vec<Value<i64>>) -> usize {
    vs.len()
}

/// More descriptors than one message carries is a clear error at the
/// call, and the pool goes on.
#[test]
fn too_many_descriptors_in_one_task_is_an_error() {
    let _g = shared();
    let pool = Pool::new(1).unwrap();
    let vs: Vec<Value<i64>> = (0..=mp_process::MAX_FDS_PER_MESSAGE as i64)
        .map(|i| Value::new(i).unwrap())
        .collect();
    let e = pool.apply(count, vs).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("file descriptors"), "{e}");
    let few: Vec<Value<i64>> = (0..3).map(|i| Value::new(i).unwrap()).collect();
    assert_eq!(pool.apply(count, few).unwrap(), 3);
}

/// Handles sent with tasks leave no descriptor behind in the parent.
#[test]
fn handles_sent_with_tasks_leak_no_descriptors() {
    let _g = exclusive();
    let pool = Pool::new(2).unwrap();
    let q: Queue<i64> = Queue::new().unwrap();
    let v = Value::new(0i64).unwrap();
    // Warm up: both workers have run a task with handles.
    pool.map(
        put_and_add,
        (0..4)
            .map(|i| (q.clone(), v.clone(), i))
            .collect::<Vec<_>>(),
        Some(1),
    )
    .unwrap();
    drain(&q, 4);
    let before = fd_count();
    for round in 0..20 {
        let items: Vec<_> = (0..10)
            .map(|i| (q.clone(), v.clone(), round * 10 + i))
            .collect();
        pool.map(put_and_add, items, Some(2)).unwrap();
        drain(&q, 10);
    }
    assert_eq!(fd_count(), before);
    pool.close();
    pool.join().unwrap();
}
