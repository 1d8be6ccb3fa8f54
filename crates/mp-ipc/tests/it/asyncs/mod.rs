//! The async forms under tokio (current-thread and multi-thread) and smol:
//! cancellation by select against a timeout, resumption, and no thread per
//! pending future.

mod join;
mod pipe;
mod queue;

use std::future::Future;
use std::time::Duration;

/// The runtimes every async test runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rt {
    TokioCurrentThread,
    TokioMultiThread,
    Smol,
}

pub(crate) const RUNTIMES: [Rt; 3] = [Rt::TokioCurrentThread, Rt::TokioMultiThread, Rt::Smol];

impl Rt {
    /// Runs `f` to its end: on the test's thread (tokio current-thread,
    /// smol), or spawned onto a worker of a two-worker tokio runtime.
    pub(crate) fn run<F: Future<Output = ()> + Send + 'static>(self, f: F) {
        match self {
            Rt::TokioCurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
                .block_on(f),
            Rt::TokioMultiThread => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_time()
                    .build()
                    .unwrap();
                rt.block_on(rt.spawn(f)).unwrap()
            }
            Rt::Smol => smol::block_on(f),
        }
    }

    /// `f`, or `None` once `d` has passed first: `f` is dropped then, the
    /// cancellation under test. Uses the runtime's own timer and select.
    pub(crate) async fn timeout<F: Future>(self, d: Duration, f: F) -> Option<F::Output> {
        match self {
            Rt::TokioCurrentThread | Rt::TokioMultiThread => {
                tokio::select! {
                    v = f => Some(v),
                    _ = tokio::time::sleep(d) => None,
                }
            }
            Rt::Smol => {
                smol::future::or(async { Some(f.await) }, async {
                    smol::Timer::after(d).await;
                    None
                })
                .await
            }
        }
    }

    /// Sleeps on the runtime's timer.
    pub(crate) async fn sleep(self, d: Duration) {
        match self {
            Rt::TokioCurrentThread | Rt::TokioMultiThread => tokio::time::sleep(d).await,
            Rt::Smol => {
                smol::Timer::after(d).await;
            }
        }
    }
}

/// This process's threads.
pub(crate) fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Polls every future once (with a waker that does nothing), asserting
/// that each is pending, so that each has registered; the process's
/// threads then.
pub(crate) fn threads_with_all_pending<F: Future + Unpin>(futs: &mut [F]) -> usize {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for f in futs.iter_mut() {
        assert!(std::pin::Pin::new(f).poll(&mut cx).is_pending());
    }
    threads()
}
