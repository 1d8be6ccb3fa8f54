//! The async forms (`AsyncResult` and the executors' `Future` as std
//! futures, `ImapIter` as a `Stream`) under real runtimes: tokio's
//! multi-thread and current-thread runtimes, and smol. Nothing in mp-pool
//! knows the runtime: the pool's own threads wake the awaiting tasks, so
//! every test here also checks that an awaited result is delivered when
//! no thread calls `get`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mp_pool::{AsyncResult, ErrorKind, ProcessPoolExecutor, ThreadPoolExecutor};
use mp_process::StartMethod;
use mp_shm::AtomicU64;
use smol::stream::StreamExt;

use crate::{METHODS, SOON, exclusive, inc, pool_with, shared, sleep_ms};

/// A task of its own, for [`Rt::spawn_all`].
type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The runtimes every test runs under.
#[derive(Clone, Copy, Debug)]
enum Rt {
    TokioMulti,
    TokioCurrent,
    Smol,
}

const RUNTIMES: [Rt; 3] = [Rt::TokioMulti, Rt::TokioCurrent, Rt::Smol];

impl Rt {
    /// A new tokio runtime of this kind (`None` for smol).
    fn tokio(self) -> Option<tokio::runtime::Runtime> {
        let mut b = match self {
            Rt::TokioMulti => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
            Rt::TokioCurrent => tokio::runtime::Builder::new_current_thread(),
            Rt::Smol => return None,
        };
        Some(b.enable_time().build().unwrap())
    }

    fn block_on<F: Future>(self, f: F) -> F::Output {
        match self.tokio() {
            Some(rt) => rt.block_on(f),
            None => smol::block_on(f),
        }
    }

    /// Runs each future as a task of its own, all at once; their outputs
    /// in order. Bounded: panics if they are not all done within a minute.
    fn spawn_all<T: Send + 'static>(self, futs: Vec<BoxFut<T>>) -> Vec<T> {
        let bound = Duration::from_secs(60);
        match self {
            Rt::Smol => {
                let ex = smol::Executor::new();
                smol::block_on(ex.run(async {
                    let hs: Vec<_> = futs.into_iter().map(|f| ex.spawn(f)).collect();
                    self.within(bound, async {
                        let mut out = Vec::with_capacity(hs.len());
                        for h in hs {
                            out.push(h.await);
                        }
                        out
                    })
                    .await
                    .expect("every task done in time")
                }))
            }
            _ => self.block_on(async {
                let hs: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
                self.within(bound, async {
                    let mut out = Vec::with_capacity(hs.len());
                    for h in hs {
                        out.push(h.await.unwrap());
                    }
                    out
                })
                .await
                .expect("every task done in time")
            }),
        }
    }

    /// `f`'s output, or `None` if `d` passes first (a select between `f`
    /// and the runtime's timer; `f` is dropped then).
    async fn within<T>(self, d: Duration, f: impl Future<Output = T>) -> Option<T> {
        match self {
            Rt::Smol => {
                smol::future::or(async { Some(f.await) }, async {
                    smol::Timer::after(d).await;
                    None
                })
                .await
            }
            _ => tokio::time::timeout(d, f).await.ok(),
        }
    }

    async fn sleep(self, d: Duration) {
        match self {
            Rt::Smol => {
                smol::Timer::after(d).await;
            }
            _ => tokio::time::sleep(d).await,
        }
    }
}

/// Counts a run, then returns `x + 1`.
fn counted(arg: (AtomicU64, i64)) -> i64 {
    arg.0.fetch_add(1, Ordering::SeqCst);
    arg.1 + 1
}

/// Sleeps `ms`, counts a run, then returns `x + 1`.
fn slow_counted(arg: (AtomicU64, u64, i64)) -> i64 {
    std::thread::sleep(Duration::from_millis(arg.1));
    arg.0.fetch_add(1, Ordering::SeqCst);
    arg.2 + 1
}

/// Waits (at most 60 s) until the file at `path` exists, then returns `x`.
fn gated(arg: (String, i64)) -> i64 {
    let until = Instant::now() + Duration::from_secs(60);
    while !Path::new(&arg.0).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    arg.1
}

/// Counts a run, then SIGKILLs its own process.
fn killer(runs: AtomicU64) -> i64 {
    runs.fetch_add(1, Ordering::SeqCst);
    crate::kill(std::process::id(), libc::SIGKILL);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn counter() -> AtomicU64 {
    AtomicU64::new(0).unwrap()
}

/// A path no test has used, for a gate.
fn gate_path(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "mp-pool-gate-{what}-{}-{nanos}",
        std::process::id()
    ))
}

/// This process's threads.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

const N: i64 = 10_000;

#[test]
fn ten_thousand_concurrent_awaits_under_each_runtime_and_start_method() {
    let _g = shared();
    for m in METHODS {
        let pool = pool_with(m);
        for rt in RUNTIMES {
            let futs: Vec<BoxFut<Result<i64, mp_pool::Error>>> = (0..N)
                .map(|i| Box::pin(pool.apply_async(inc, i).unwrap()) as BoxFut<_>)
                .collect();
            let got = rt.spawn_all(futs);
            let got: Vec<i64> = got.into_iter().map(Result::unwrap).collect();
            assert_eq!(got, (1..=N).collect::<Vec<_>>(), "{m} {rt:?}");
        }
    }
}

#[test]
fn awaits_on_one_task_and_a_result_that_is_ready() {
    let _g = shared();
    let pool = pool_with(StartMethod::Fork);
    for rt in RUNTIMES {
        // Awaited one after the other on one task: most are ready by the
        // time they are polled, the others are woken.
        let rs: Vec<AsyncResult<i64>> = (0..1000)
            .map(|i| pool.apply_async(inc, i).unwrap())
            .collect();
        let sum = rt.block_on(async {
            let mut sum = 0;
            for r in rs {
                sum += r.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (1..=1000).sum::<i64>(), "{rt:?}");
        // A result that is ready completes at first poll, and awaiting
        // leaves it there for `get` and for later awaits.
        let r = pool.apply_async(inc, 1).unwrap();
        assert_eq!(r.get_timeout(SOON).unwrap(), 2);
        let mut again = r.clone();
        assert_eq!(rt.block_on(&mut again).unwrap(), 2, "{rt:?}");
        assert_eq!(
            rt.block_on(&mut again).unwrap(),
            2,
            "{rt:?}: polled after completion"
        );
        assert_eq!(r.get().unwrap(), 2);
    }
}

#[test]
fn clones_awaited_at_once_all_wake() {
    let _g = shared();
    let pool = pool_with(StartMethod::Fork);
    for rt in RUNTIMES {
        let runs = counter();
        let r = pool
            .apply_async(slow_counted, (runs.clone(), 100, 7))
            .unwrap();
        let futs: Vec<BoxFut<Result<i64, mp_pool::Error>>> =
            (0..8).map(|_| Box::pin(r.clone()) as BoxFut<_>).collect();
        let got = rt.spawn_all(futs);
        assert!(
            got.iter().all(|x| *x.as_ref().unwrap() == 8),
            "{rt:?}: {got:?}"
        );
        // Two clones on one task, at once.
        let r = pool
            .apply_async(slow_counted, (runs.clone(), 50, 1))
            .unwrap();
        let (a, b) = (r.clone(), r.clone());
        let (x, y) = rt.block_on(async { smol::future::zip(a, b).await });
        assert_eq!((x.unwrap(), y.unwrap()), (2, 2), "{rt:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{rt:?}: each task ran once");
    }
}

#[test]
fn executor_futures_are_awaited() {
    let _g = shared();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    let tex = ThreadPoolExecutor::new(2).unwrap();
    for rt in RUNTIMES {
        let futs: Vec<BoxFut<Result<i64, mp_pool::Error>>> = (0..1000)
            .map(|i| Box::pin(ex.submit(inc, i).unwrap()) as BoxFut<_>)
            .chain((0..1000).map(|i| Box::pin(tex.submit(inc, i).unwrap()) as BoxFut<_>))
            .collect();
        let got: Vec<i64> = rt.spawn_all(futs).into_iter().map(Result::unwrap).collect();
        let want: Vec<i64> = (1..=1000).chain(1..=1000).collect();
        assert_eq!(got, want, "{rt:?}");
        // A cancelled future resolves to its error when awaited.
        let slow = ex.submit(sleep_ms, 300).unwrap();
        let more: Vec<_> = (0..4).map(|_| ex.submit(sleep_ms, 300).unwrap()).collect();
        let last = ex.submit(inc, 1).unwrap();
        let cancelled = last.cancel();
        let out = rt.block_on(async { rt.within(SOON, async { (slow.await, last.await) }).await });
        let (a, b) = out.expect("awaited in time");
        assert_eq!(a.unwrap(), 300);
        if cancelled {
            assert_eq!(b.unwrap_err().kind(), ErrorKind::Cancelled, "{rt:?}");
        } else {
            assert_eq!(b.unwrap(), 2, "{rt:?}");
        }
        for f in more {
            assert_eq!(f.result_timeout(SOON).unwrap(), 300);
        }
    }
}

#[test]
fn an_executor_future_of_a_dead_worker_wakes_with_broken() {
    let _g = shared();
    for rt in RUNTIMES {
        let ex = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(StartMethod::ForkServer)
            .build()
            .unwrap();
        let runs = counter();
        let f = ex.submit(killer, runs.clone()).unwrap();
        let got = rt.block_on(async { rt.within(SOON, f).await });
        let e = got.expect("woken in time").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Broken, "{rt:?}: {e}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{rt:?}");
    }
}

#[test]
fn imap_streams_are_consumed() {
    let _g = shared();
    let pool = pool_with(StartMethod::Fork);
    for rt in RUNTIMES {
        for cs in [1, 7, 64] {
            let mut s = pool.imap(inc, 0..2000, Some(cs)).unwrap().into_stream();
            let got = rt.block_on(async {
                let mut got = Vec::new();
                while let Some(x) = s.next().await {
                    got.push(x.unwrap());
                }
                got
            });
            assert_eq!(got, (1..=2000).collect::<Vec<_>>(), "{rt:?} chunksize {cs}");
            let s = pool
                .imap_unordered(inc, 0..2000, Some(cs))
                .unwrap()
                .into_stream();
            let mut got: Vec<i64> =
                rt.block_on(async { s.map(Result::unwrap).collect::<Vec<_>>().await });
            got.sort_unstable();
            assert_eq!(got, (1..=2000).collect::<Vec<_>>(), "{rt:?} chunksize {cs}");
        }
        // The iterator and the stream take from one place: mixing them
        // loses nothing.
        let mut s = pool.imap(inc, 0..100, Some(3)).unwrap();
        let first: Vec<i64> = s.by_ref().take(10).map(Result::unwrap).collect();
        let mut s = s.into_stream();
        let mid: Vec<i64> =
            rt.block_on(async { (&mut s).take(40).map(Result::unwrap).collect().await });
        assert_eq!(s.progress().1, 100);
        let rest: Vec<i64> = s.into_inner().map(Result::unwrap).collect();
        assert_eq!(
            [first, mid, rest].concat(),
            (1..=100).collect::<Vec<_>>(),
            "{rt:?}"
        );
    }
}

/// An item of a chunk: counts its run, and kills its worker if told to.
fn item(arg: (AtomicU64, i64, bool)) -> i64 {
    arg.0.fetch_add(1, Ordering::SeqCst);
    if arg.2 {
        crate::kill(std::process::id(), libc::SIGKILL);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    arg.1 * 2
}

#[test]
fn a_stream_whose_worker_dies_yields_the_chunk_failed_and_ends() {
    let _g = shared();
    let pool = pool_with(StartMethod::Fork);
    for rt in RUNTIMES {
        let runs = counter();
        let items: Vec<_> = (0..40).map(|i| (runs.clone(), i, i == 13)).collect();
        let s = pool.imap(item, items, Some(5)).unwrap().into_stream();
        let got: Vec<Result<i64, mp_pool::Error>> = rt
            .block_on(async { rt.within(SOON, s.collect::<Vec<_>>()).await })
            .expect("the stream ended in time");
        assert_eq!(got.len(), 40, "{rt:?}");
        for (i, r) in got.iter().enumerate() {
            if (10..15).contains(&i) {
                assert_eq!(
                    r.as_ref().unwrap_err().kind(),
                    ErrorKind::WorkerLost,
                    "{rt:?} {i}"
                );
            } else {
                assert_eq!(*r.as_ref().unwrap(), 2 * i as i64, "{rt:?} {i}");
            }
        }
        // The chunk's items before the killer ran once, the rest of it
        // never; nothing ran twice.
        assert_eq!(runs.load(Ordering::SeqCst), 35 + 4, "{rt:?}");
    }
}

#[test]
fn a_future_dropped_before_completion_loses_nothing() {
    let _g = shared();
    let pool = pool_with(StartMethod::Fork);
    for rt in RUNTIMES {
        let runs = counter();
        let r = pool
            .apply_async(slow_counted, (runs.clone(), 300, 41))
            .unwrap();
        let mut keep = r.clone();
        // Polled (its waker registered), then dropped by the timeout.
        let out = rt.block_on(async { rt.within(Duration::from_millis(20), r).await });
        assert!(out.is_none(), "{rt:?}: the timer should have won");
        // A task awaiting a clone, dropped by its runtime while pending.
        let dropped = pool
            .apply_async(slow_counted, (runs.clone(), 300, 1))
            .unwrap();
        let witness = dropped.clone();
        match rt {
            Rt::Smol => {
                let ex = smol::Executor::new();
                smol::block_on(ex.run(async {
                    let t = ex.spawn(dropped);
                    rt.sleep(Duration::from_millis(20)).await;
                    drop(t); // cancels the task, dropping the future
                }));
            }
            _ => rt.block_on(async {
                let t = tokio::spawn(dropped);
                rt.sleep(Duration::from_millis(20)).await;
                t.abort();
                assert!(t.await.unwrap_err().is_cancelled());
            }),
        }
        // The task still ran, once, and its result is there for the
        // clones, by await and by get.
        let v = rt.block_on(async { rt.within(SOON, &mut keep).await });
        assert_eq!(v.expect("in time").unwrap(), 42, "{rt:?}");
        assert_eq!(witness.get_timeout(SOON).unwrap(), 2, "{rt:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{rt:?}: each task ran once");
        // Dropping a pending future many times over never blocks, and
        // leaves the pool's work alone.
        let rs: Vec<_> = (0..1000)
            .map(|i| pool.apply_async(counted, (runs.clone(), i)).unwrap())
            .collect();
        let futs: Vec<BoxFut<Option<Result<i64, mp_pool::Error>>>> = rs
            .iter()
            .map(|r| {
                let r = r.clone();
                Box::pin(async move { rt.within(Duration::from_micros(1), r).await }) as BoxFut<_>
            })
            .collect();
        rt.spawn_all(futs);
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(r.get_timeout(SOON).unwrap(), i as i64 + 1, "{rt:?}");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1002, "{rt:?}");
    }
}

#[test]
fn select_between_a_result_and_a_timer() {
    let _g = shared();
    let pool = pool_with(StartMethod::Fork);
    for rt in RUNTIMES {
        let mut slow = pool.apply_async(sleep_ms, 400).unwrap();
        let fast = pool.apply_async(inc, 1).unwrap();
        rt.block_on(async {
            // The timer wins over the slow task; the task is not lost.
            assert!(
                rt.within(Duration::from_millis(30), &mut slow)
                    .await
                    .is_none(),
                "{rt:?}"
            );
            // The result wins over a long timer.
            let v = rt.within(SOON, fast).await;
            assert_eq!(v.expect("before the timer").unwrap(), 2, "{rt:?}");
            // The same future, awaited again after losing.
            let v = rt.within(SOON, &mut slow).await;
            assert_eq!(v.expect("before the timer").unwrap(), 400, "{rt:?}");
        });
        // tokio's select! on both, the result first.
        if !matches!(rt, Rt::Smol) {
            let r = pool.apply_async(inc, 5).unwrap();
            let won = rt.block_on(async {
                tokio::select! {
                    v = r => v.unwrap(),
                    _ = tokio::time::sleep(SOON) => -1,
                }
            });
            assert_eq!(won, 6, "{rt:?}");
        }
    }
}

#[test]
fn an_awaited_result_of_a_dead_worker_or_a_terminated_pool_wakes() {
    let _g = shared();
    for rt in RUNTIMES {
        let pool = pool_with(StartMethod::Fork);
        let runs = counter();
        let k = pool.apply_async(killer, runs.clone()).unwrap();
        let e = rt
            .block_on(async { rt.within(SOON, k).await })
            .expect("woken in time")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerLost, "{rt:?}: {e}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{rt:?}");
        // Terminated from another thread while awaited.
        let r = pool.apply_async(sleep_ms, 5000).unwrap();
        let e = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                pool.terminate();
            });
            rt.block_on(async { rt.within(SOON, r).await })
        })
        .expect("woken in time")
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Terminated, "{rt:?}: {e}");
    }
}

#[test]
fn awaits_complete_while_another_thread_polls_in_get() {
    let _g = shared();
    let pool = pool_with(StartMethod::Fork);
    for rt in RUNTIMES {
        // A caller in `get` polls the rings and keeps the workers from
        // ringing the reader: what it reads for others must still reach
        // the awaiting tasks.
        let awaited: Vec<BoxFut<Result<i64, mp_pool::Error>>> = (0..2000)
            .map(|i| Box::pin(pool.apply_async(inc, i).unwrap()) as BoxFut<_>)
            .collect();
        let got = std::thread::scope(|s| {
            let p = &pool;
            let getter = s.spawn(move || {
                for i in 0..2000 {
                    assert_eq!(
                        p.apply_async(inc, -i).unwrap().get_timeout(SOON).unwrap(),
                        1 - i
                    );
                }
            });
            let got = rt.spawn_all(awaited);
            getter.join().unwrap();
            got
        });
        let got: Vec<i64> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, (1..=2000).collect::<Vec<_>>(), "{rt:?}");
    }
}

#[test]
fn no_thread_is_blocked_per_pending_future() {
    let _g = exclusive();
    let pool = pool_with(StartMethod::Fork);
    // Warm up: every thread the pool starts is up.
    assert_eq!(pool.apply(inc, 1).unwrap(), 2);
    for rt in RUNTIMES {
        // One runtime for both counts: a runtime's threads may outlive it
        // for a moment.
        let tok = rt.tokio();
        let gate = gate_path(&format!("{rt:?}"));
        let gate_s = gate.to_string_lossy().into_owned();
        let rs: Vec<AsyncResult<i64>> = (0..N)
            .map(|i| pool.apply_async(gated, (gate_s.clone(), i)).unwrap())
            .collect();
        let pending = |k: usize| -> Vec<BoxFut<Result<i64, mp_pool::Error>>> {
            rs[..k]
                .iter()
                .map(|r| Box::pin(r.clone()) as BoxFut<_>)
                .collect()
        };
        let (few, many) = (pending(10), pending(N as usize));
        let counts = |futs: Vec<BoxFut<Result<i64, mp_pool::Error>>>| -> (usize, usize) {
            // The futures are spawned and polled (pending: the gate is
            // shut), then the threads are counted; the tasks are dropped
            // with the runtime, which cancels nothing.
            let count = async {
                rt.sleep(Duration::from_millis(200)).await;
                threads()
            };
            match &tok {
                None => {
                    let ex = smol::Executor::new();
                    smol::block_on(ex.run(async {
                        let hs: Vec<_> = futs.into_iter().map(|f| ex.spawn(f)).collect();
                        let n = hs.len();
                        (n, count.await)
                    }))
                }
                Some(tok) => tok.block_on(async {
                    let hs: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
                    let n = hs.len();
                    let t = count.await;
                    for h in &hs {
                        assert!(!h.is_finished(), "{rt:?}: a gated task finished");
                    }
                    (n, t)
                }),
            }
        };
        let (n_few, t_few) = counts(few);
        let (n_many, t_many) = counts(many);
        assert_eq!((n_few, n_many), (10, N as usize));
        assert!(rs.iter().all(|r| !r.ready()), "{rt:?}: the gate is shut");
        assert!(
            t_many <= t_few + 2,
            "{rt:?}: {t_few} threads with 10 pending futures, {t_many} with {N}"
        );
        // Open the gate: every result arrives, awaited again.
        std::fs::write(&gate, b"").unwrap();
        let got: Vec<i64> = rt
            .spawn_all(pending(N as usize))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let _ = std::fs::remove_file(&gate);
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "{rt:?}");
    }
}
