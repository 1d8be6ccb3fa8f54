//! `Process::join_async`: joins awaited beside each other and beside the
//! runtime's own work, cancelled and resumed, of children that die, under
//! every start method, with no thread per pending join.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use mp_process::{ErrorKind, Process};
use mp_test_helpers::METHODS;

use super::{RUNTIMES, threads, threads_with_all_pending};

fn nap_then((ms, value): (u64, u64)) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    value
}

/// A result longer than the socket holds: the child blocks writing it
/// until the parent reads, so a join that waited only for the exit would
/// never end.
fn long_result(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

fn nap_then_abort(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::abort();
}

fn nap_then_panic(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    panic!("deliberate, after {ms} ms");
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Awaits every future together (a join without a runtime's macro).
async fn join_all<T>(futs: Vec<Boxed<'_, T>>) -> Vec<T> {
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (f, o) in futs.iter_mut().zip(&mut out) {
            if let Some(fut) = f {
                if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                    *o = Some(v);
                    *f = None;
                }
            }
        }
        if futs.iter().all(Option::is_none) {
            Poll::Ready(out.iter_mut().map(|o| o.take().unwrap()).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

#[test]
fn joins_are_awaited_side_by_side_while_the_runtime_goes_on() {
    for rt in RUNTIMES {
        for method in METHODS {
            rt.run(async move {
                let mut ps: Vec<Process<u64>> = (0..6u64)
                    .map(|i| Process::new(nap_then, ((6 - i) * 15, i)).start_method(method))
                    .collect();
                for p in &mut ps {
                    p.start().unwrap();
                }
                let done = Arc::new(AtomicBool::new(false));
                let ticks = Arc::new(AtomicUsize::new(0));
                let (d, t) = (done.clone(), ticks.clone());
                let ticker: Boxed<'_, Option<Vec<u64>>> = Box::pin(async move {
                    // Runs on the same thread under a current-thread
                    // runtime: a join that blocked would stop it.
                    while !d.load(Ordering::Acquire) {
                        rt.sleep(Duration::from_millis(2)).await;
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                    None
                });
                let joins: Boxed<'_, Option<Vec<u64>>> = Box::pin(async {
                    let futs = ps
                        .iter_mut()
                        .map(|p| Box::pin(p.join_async()) as Boxed<'_, _>)
                        .collect();
                    let got = join_all(futs).await;
                    done.store(true, Ordering::Release);
                    Some(got.into_iter().map(Result::unwrap).collect())
                });
                let mut both = join_all(vec![joins, ticker]).await;
                assert_eq!(
                    both[0].take().unwrap(),
                    (0..6).collect::<Vec<_>>(),
                    "{method:?}"
                );
                assert!(
                    ticks.load(Ordering::Relaxed) > 0,
                    "{method:?}: the runtime stalled"
                );
                for p in &ps {
                    assert_eq!(p.exitcode(), Some(0));
                }
            });
        }
    }
}

#[test]
fn a_join_cancelled_by_a_timeout_is_resumed_by_the_next_join_of_either_form() {
    const LEN: usize = 4 << 20;
    for rt in RUNTIMES {
        for method in METHODS {
            for sync_after in [false, true] {
                let mut p = Process::new(long_result, LEN).start_method(method);
                p.start().unwrap();
                rt.run(async move {
                    let mut cancelled = 0;
                    let got = loop {
                        if cancelled == 3 && sync_after {
                            break p.join().unwrap();
                        }
                        match rt.timeout(Duration::from_micros(300), p.join_async()).await {
                            None => cancelled += 1,
                            Some(r) => break r.unwrap(),
                        }
                    };
                    assert!(cancelled > 0, "{method:?}: no join was cancelled");
                    assert_eq!(got, long_result(LEN), "{method:?}");
                    assert_eq!(p.exitcode(), Some(0));
                    let again = p.join_async().await.unwrap_err();
                    assert_eq!(again.kind(), ErrorKind::AlreadyJoined);
                });
            }
        }
    }
}

#[test]
fn children_that_die_while_awaited_give_their_status() {
    for rt in RUNTIMES {
        for method in METHODS {
            rt.run(async move {
                let mut aborts = Process::new(nap_then_abort, 30).start_method(method);
                let mut panics = Process::new(nap_then_panic, 10).start_method(method);
                let mut not_started = Process::new(nap_then, (0, 0));
                aborts.start().unwrap();
                panics.start().unwrap();
                let e = not_started.join_async().await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::NotStarted);
                let e = panics.join_async().await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Panicked, "{method:?}: {e}");
                assert!(e.to_string().contains("deliberate, after 10 ms"), "{e}");
                let e = aborts.join_async().await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Died, "{method:?}: {e}");
                assert_eq!(aborts.exitcode(), Some(-6), "{method:?}");
            });
        }
    }
}

#[test]
fn pending_joins_add_no_thread_each() {
    let _alone = mp_test_helpers::exclusive();
    for rt in RUNTIMES {
        rt.run(async move {
            let mut ps: Vec<Process<u64>> =
                (0..30).map(|i| Process::new(nap_then, (300, i))).collect();
            for p in &mut ps {
                p.start().unwrap();
            }
            // One pending join first, so the reactor thread exists.
            assert!(
                rt.timeout(Duration::from_millis(5), ps[0].join_async())
                    .await
                    .is_none()
            );
            let before = threads();
            let mut futs: Vec<_> = ps.iter_mut().map(|p| Box::pin(p.join_async())).collect();
            let during = threads_with_all_pending(&mut futs);
            assert!(
                during <= before + 1,
                "30 pending joins: {before} threads became {during}"
            );
            let futs = futs.into_iter().map(|f| f as Boxed<'_, _>).collect();
            let got: Vec<u64> = join_all(futs)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, (0..30).collect::<Vec<_>>());
        });
    }
}
