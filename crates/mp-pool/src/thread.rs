//! `ThreadPool`: the same API on a rayon thread pool (Python's
//! `multiprocessing.pool.ThreadPool`).

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use mp_process::RawFunction;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{FuncKey, Job};
use crate::error::{Error, ErrorKind};
use crate::front::{Backend, pool_api};
use crate::result::{AsyncResult, CallbackThread, Callbacks, ImapIter, Sink, lock};

/// A pool of threads with the API of [`Pool`](crate::Pool): switching
/// between processes and threads is a one-word change (see
/// [`TaskPool`](crate::TaskPool)).
///
/// ```
/// use mp_pool::ThreadPool;
///
/// fn task(n: u64) -> u64 { (0..n).sum() }
///
/// let pool = ThreadPool::new(2)?;
/// assert_eq!(pool.apply(task, 10_000)?, 49_995_000);
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// Tasks run on a rayon pool of their own. Arguments and results still go
/// through serde, so that a program behaves the same on both kinds. A
/// panicking task fails its result with the message and location, as in a
/// process pool. Threads cannot be killed: `terminate` fails the tasks not
/// yet started, and tasks already running finish in the background.
pub struct ThreadPool {
    inner: Arc<Inner>,
    threads: usize,
    rayon: rayon::ThreadPool,
    callbacks: Mutex<CallbackThread>,
    handle: Weak<Callbacks>,
}

struct Inner {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Closed,
    Terminated,
}

struct State {
    status: Status,
    pending: usize,
    funcs: HashMap<TypeId, Arc<RawFunction>>,
    /// Tasks no thread has taken yet, in submission order. Each rayon job
    /// takes the first one when it runs (not a task of its own), so that a
    /// task can be cancelled while it waits here
    /// ([`ThreadPoolExecutor`](crate::ThreadPoolExecutor)).
    queue: VecDeque<(Arc<RawFunction>, Job)>,
}

impl ThreadPool {
    /// A pool of `threads` threads (zero is an
    /// [`ErrorKind::InvalidArgument`] error).
    pub fn new(threads: usize) -> Result<ThreadPool, Error> {
        if threads == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "number of threads must be at least 1",
            ));
        }
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mp-thread-pool-{i}"))
            .build()
            .map_err(|e| Error::new(ErrorKind::Process, format!("cannot start threads: {e}")))?;
        let callbacks = CallbackThread::start()?;
        Ok(ThreadPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    status: Status::Running,
                    pending: 0,
                    funcs: HashMap::new(),
                    queue: VecDeque::new(),
                }),
                cv: Condvar::new(),
            }),
            threads,
            rayon,
            handle: callbacks.handle(),
            callbacks: Mutex::new(callbacks),
        })
    }

    fn backend(&self) -> &ThreadPool {
        self
    }

    /// The number of threads.
    pub fn processes(&self) -> usize {
        self.threads
    }

    /// Takes no more work; queued work still runs.
    pub fn close(&self) {
        let mut st = lock(&self.inner.state);
        if st.status == Status::Running {
            st.status = Status::Closed;
        }
    }

    /// Fails the tasks not yet started with [`ErrorKind::Terminated`];
    /// tasks already running finish in the background.
    pub fn terminate(&self) {
        lock(&self.inner.state).status = Status::Terminated;
    }

    /// Waits for the queued tasks and their callbacks, after `close` or
    /// `terminate`; before either it is an [`ErrorKind::StillRunning`]
    /// error.
    pub fn join(&self) -> Result<(), Error> {
        self.join_deadline(None)
    }

    /// Like [`join`](ThreadPool::join), giving up after `timeout` with an
    /// [`ErrorKind::Timeout`] error.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.join_deadline(Some(Instant::now() + timeout))
    }

    fn join_deadline(&self, deadline: Option<Instant>) -> Result<(), Error> {
        let mut st = lock(&self.inner.state);
        if st.status == Status::Running {
            return Err(Error::new(
                ErrorKind::StillRunning,
                "cannot join a running pool: close or terminate it first",
            ));
        }
        while st.pending > 0 {
            match deadline {
                None => st = self.inner.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            "timed out waiting for the tasks to finish",
                        ));
                    }
                    st = self
                        .inner
                        .cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        drop(st);
        lock(&self.callbacks).finish();
        Ok(())
    }
}

impl Backend for ThreadPool {
    fn submit(&self, func: FuncKey<'_>, jobs: Vec<Job>) -> Result<(), Error> {
        let mut st = lock(&self.inner.state);
        if st.status != Status::Running {
            return Err(Error::not_running());
        }
        let raw = match st.funcs.get(&func.id) {
            Some(raw) => raw.clone(),
            None => {
                let raw = Arc::new((func.make)()?);
                st.funcs.insert(func.id, raw.clone());
                raw
            }
        };
        let n = jobs.len();
        st.pending += n;
        st.queue.extend(jobs.into_iter().map(|j| (raw.clone(), j)));
        drop(st);
        for _ in 0..n {
            let inner = self.inner.clone();
            self.rayon.spawn(move || run_next(&inner));
        }
        Ok(())
    }

    fn callbacks(&self) -> Weak<Callbacks> {
        self.handle.clone()
    }

    fn processes(&self) -> usize {
        self.threads
    }
}

impl ThreadPool {
    /// Removes a task that no thread has taken yet and fails it with
    /// [`ErrorKind::Cancelled`]; whether it did.
    pub(crate) fn cancel(&self, sink: &Arc<dyn Sink>) -> bool {
        let mut st = lock(&self.inner.state);
        let Some(pos) = st
            .queue
            .iter()
            .position(|(_, j)| Arc::ptr_eq(&j.sink, sink))
        else {
            return false;
        };
        let (_, job) = st.queue.remove(pos).expect("present");
        st.pending -= 1;
        drop(st);
        self.inner.cv.notify_all();
        job.sink.complete(job.index, Err(Error::cancelled()));
        true
    }

    /// Cancels every task that no thread has taken yet.
    pub(crate) fn cancel_queued(&self) {
        let mut st = lock(&self.inner.state);
        let jobs: Vec<_> = st.queue.drain(..).collect();
        st.pending -= jobs.len();
        drop(st);
        self.inner.cv.notify_all();
        for (_, job) in jobs {
            job.sink.complete(job.index, Err(Error::cancelled()));
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        lock(&self.inner.state).status == Status::Running
    }
}

/// Runs the first queued task (one rayon job per submitted task; a job
/// finds nothing if its task was cancelled meanwhile).
fn run_next(inner: &Inner) {
    let mut st = lock(&inner.state);
    let Some((raw, job)) = st.queue.pop_front() else {
        return;
    };
    let terminated = st.status == Status::Terminated;
    drop(st);
    // Time limits need a process to stop: a thread pool has none.
    let Job {
        args,
        fds,
        sink,
        index,
        limits: _,
    } = job;
    let blob = if terminated {
        Err(Error::terminated())
    } else {
        mp_process::SharedFd::receive(fds, || raw.call(&args)).map_err(|e| Error::from_process(&e))
    };
    sink.complete(index, blob);
    lock(&inner.state).pending -= 1;
    inner.cv.notify_all();
}

pool_api!(ThreadPool);

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.terminate();
        lock(&self.callbacks).finish();
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads)
            .finish()
    }
}
