//! `ProcessPoolExecutor`, `ThreadPoolExecutor` and their `Future`s
//! (Python's `concurrent.futures`), with `wait` and `as_completed`.

use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mp_process::StartMethod;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Engine, FuncKey, Job};
use crate::error::{Error, ErrorKind};
use crate::front::Backend;
use crate::limits::Limits;
use crate::pool::PoolBuilder;
use crate::result::{AsyncResult, Cell, Gather, ImapIter, Notify, Sink, decode_one, lock};
use crate::thread::ThreadPool;

/// What a [`Future`] asks to cancel it: the engine of a process executor or
/// the pool of a thread executor.
pub(crate) trait Cancel: Send + Sync {
    /// Removes the task of `sink` if it has not started; whether it did.
    fn cancel(&self, sink: &Arc<dyn Sink>) -> bool;
}

impl Cancel for Engine {
    fn cancel(&self, sink: &Arc<dyn Sink>) -> bool {
        Engine::cancel(self, sink)
    }
}

impl Cancel for ThreadPool {
    fn cancel(&self, sink: &Arc<dyn Sink>) -> bool {
        ThreadPool::cancel(self, sink)
    }
}

/// `submit` of both executors: one task, its future.
fn submit_to<B, F, A, R>(
    b: &B,
    canceller: Weak<dyn Cancel>,
    f: F,
    args: A,
    limits: Limits,
) -> Result<Future<R>, Error>
where
    B: Backend,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    // As the task will run: the unset fields are the pool's.
    limits.check()?;
    limits.or(b.default_limits()).check()?;
    let (args, fds) = crate::front::encode_task::<A>(|| Ok(mp_process::encode(&args)?))?;
    let cell = Arc::new(Cell::default());
    let gather = Gather::new(1, cell.clone(), None, b.callbacks());
    let sink: Arc<dyn Sink> = gather;
    let make = || crate::front::raw_of(f);
    b.submit(
        FuncKey {
            id: std::any::TypeId::of::<F>(),
            make: &make,
        },
        vec![Job {
            args,
            fds,
            sink: sink.clone(),
            index: 0,
            limits,
        }],
    )?;
    Ok(Future {
        result: AsyncResult::new(cell, decode_one::<R>).assisted(b.assist()),
        sink,
        canceller,
    })
}

/// `map` of both executors.
fn map_on<B, F, A, R, I>(
    b: &B,
    f: F,
    items: I,
    chunksize: Option<usize>,
    timeout: Option<Duration>,
) -> Result<ExecutorMap<R>, Error>
where
    B: Backend,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: IntoIterator<Item = A>,
{
    let deadline = timeout.map(|t| Instant::now() + t);
    let inner = crate::front::imap(b, f, items, chunksize, true)?;
    Ok(ExecutorMap {
        inner,
        deadline,
        timed_out: false,
    })
}

fn after_shutdown() -> Error {
    Error::new(
        ErrorKind::NotRunning,
        "cannot schedule new futures after shutdown",
    )
}

/// A process pool with futures (Python's
/// `concurrent.futures.ProcessPoolExecutor`).
///
/// ```
/// use mp_pool::ProcessPoolExecutor;
///
/// fn task(n: u64) -> u64 { (0..n).sum() }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let fut = ex.submit(task, 10_000)?;
/// let all: Vec<u64> = ex.map(task, [10, 20], None, None)?.collect::<Result<_, _>>()?;
/// assert_eq!(fut.result()?, 49_995_000);
/// assert_eq!(all, [45, 190]);
/// ex.shutdown(true, false)?;
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// As in CPython, a worker that dies (even an idle one) breaks the
/// executor: every pending future fails with an [`ErrorKind::Broken`] error
/// carrying the worker's exit code or signal, and later `submit` calls fail
/// at once. Dropping the executor shuts it down and waits for the pending
/// futures (Python's `with` block).
///
/// Workers start on demand, as in CPython 3.9 and later: a task that finds
/// no idle worker starts one, up to `max_workers`, so sequential calls
/// reuse one process. ([`Pool`](crate::Pool) starts all of its workers at
/// once, as CPython's does.)
pub struct ProcessPoolExecutor {
    engine: Arc<Engine>,
}

/// Sets up a [`ProcessPoolExecutor`].
#[derive(Debug)]
pub struct ExecutorBuilder {
    inner: PoolBuilder,
}

impl ExecutorBuilder {
    /// The number of worker processes (default: the number of CPUs).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.inner = self.inner.processes(n);
        self
    }

    /// Runs `f(args)` in each worker first; if it fails, the executor is
    /// broken ([`ErrorKind::Initializer`] on every future).
    pub fn initializer<F, A, R>(mut self, f: F, args: A) -> Self
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.inner = self.inner.initializer(f, args);
        self
    }

    /// Replaces each worker after `n` tasks (Python's `max_tasks_per_child`).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.inner = self.inner.maxtasksperchild(n);
        self
    }

    /// The start method of the workers.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.inner = self.inner.start_method(method);
        self
    }

    /// The default time limits of every task, as
    /// [`PoolBuilder::limits`]: a task past its hard limit fails with
    /// [`ErrorKind::TimeLimit`] and its worker is replaced; the executor
    /// does not break.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.inner = self.inner.limits(limits);
        self
    }

    /// SIGTERM to SIGKILL for a worker stopped for a time limit, as
    /// [`PoolBuilder::kill_grace`].
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.inner = self.inner.kill_grace(grace);
        self
    }

    /// Caps each worker's memory, as [`PoolBuilder::memory_limit`]: a task
    /// past it fails with [`ErrorKind::MemoryLimit`] and the executor does
    /// not break.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.inner = self.inner.memory_limit(bytes);
        self
    }

    /// Recycles a worker whose resident set is above `bytes` after a task,
    /// as [`PoolBuilder::max_memory_per_child`].
    pub fn max_memory_per_child(mut self, bytes: u64) -> Self {
        self.inner = self.inner.max_memory_per_child(bytes);
        self
    }

    /// Starts the workers.
    ///
    /// As in CPython, `max_tasks_per_child` with the fork start method is
    /// an [`ErrorKind::InvalidArgument`] error: a replacement worker would
    /// be forked from a process whose pool threads may hold locks.
    pub fn build(self) -> Result<ProcessPoolExecutor, Error> {
        let config = self.inner.config(true)?;
        Ok(ProcessPoolExecutor {
            engine: Arc::new(Engine::start(config)?),
        })
    }
}

impl ProcessPoolExecutor {
    /// An executor with `max_workers` processes (zero is an
    /// [`ErrorKind::InvalidArgument`] error).
    pub fn new(max_workers: usize) -> Result<ProcessPoolExecutor, Error> {
        ProcessPoolExecutor::builder()
            .max_workers(max_workers)
            .build()
    }

    /// An executor of up to one worker per CPU
    /// ([`mp_process::cpu_count`]), as Python's `ProcessPoolExecutor()`.
    pub fn with_cpus() -> Result<ProcessPoolExecutor, Error> {
        ProcessPoolExecutor::builder().build()
    }

    /// A builder, for the initializer, `max_tasks_per_child` and start
    /// method.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder {
            inner: crate::Pool::builder(),
        }
    }

    fn check(&self) -> Result<(), Error> {
        match self.engine.broken() {
            Some(e) => Err(e),
            None if !self.engine.is_running() => Err(after_shutdown()),
            None => Ok(()),
        }
    }

    /// Schedules `f(args)` and returns its future.
    pub fn submit<F, A, R>(&self, f: F, args: A) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.check()?;
        self.submit_limited(f, args, Limits::default())
    }

    /// Each running worker's pid, tasks done, resident set and the running
    /// time of its current task, as [`Pool::worker_stats`](crate::Pool::worker_stats).
    pub fn worker_stats(&self) -> Vec<crate::WorkerStats> {
        self.engine.worker_stats()
    }

    /// Like [`submit`](Self::submit), with time limits for this task (the
    /// fields left unset fall back to the executor's): past the hard
    /// limit, the worker is stopped and replaced and the future fails
    /// with [`ErrorKind::TimeLimit`]; the executor does not break.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_pool::{ErrorKind, Limits, ProcessPoolExecutor};
    ///
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let limits = Limits::new().time_limit(Duration::from_millis(100));
    /// let err = ex.submit_limited(spin, (), limits)?.result().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimeLimit);
    /// assert_eq!(ex.submit(|x: u8| x + 1, 1)?.result()?, 2);
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn submit_limited<F, A, R>(&self, f: F, args: A, limits: Limits) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.check()?;
        let canceller: Weak<Engine> = Arc::downgrade(&self.engine);
        submit_to(&*self.engine, canceller, f, args, limits)
    }

    /// `f` over every item, in input order (Python's `Executor.map`). All
    /// items are submitted now, in chunks of `chunksize` (default 1; zero is
    /// an error). With a `timeout`, counted from this call, an item not
    /// ready in time yields an [`ErrorKind::Timeout`] error and ends the
    /// iteration. A failed item yields its error at its place.
    pub fn map<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        timeout: Option<Duration>,
    ) -> Result<ExecutorMap<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        self.check()?;
        map_on(&*self.engine, f, items, chunksize, timeout)
    }

    /// Takes no more work. With `cancel_futures`, the futures that no
    /// worker has received yet are cancelled; with `wait`, returns once
    /// the others are done and the workers have exited.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) -> Result<(), Error> {
        if cancel_futures {
            self.engine.cancel_queued();
        }
        self.engine.close();
        if wait {
            self.engine.join(None)?;
        }
        Ok(())
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        let _ = self.shutdown(true, false);
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.engine.processes())
            .finish()
    }
}

/// A thread pool with futures (Python's
/// `concurrent.futures.ThreadPoolExecutor`): the API of
/// [`ProcessPoolExecutor`] on threads, so that moving work between the two
/// is a one-word change. Its futures are the same [`Future`]s, for
/// [`wait`] and [`as_completed`] alike.
///
/// ```
/// use mp_pool::{ThreadPoolExecutor, as_completed};
///
/// fn task(n: u64) -> u64 { (0..n).sum() }
///
/// let ex = ThreadPoolExecutor::new(2)?;
/// let futs = [ex.submit(task, 10_000)?, ex.submit(task, 20_000)?];
/// let all: Vec<u64> = ex.map(task, [10, 20], None, None)?.collect::<Result<_, _>>()?;
/// assert_eq!(as_completed(&futs, None).count(), 2);
/// assert_eq!(futs[0].result()?, 49_995_000);
/// assert_eq!(futs[1].result()?, 199_990_000);
/// assert_eq!(all, [45, 190]);
/// ex.shutdown(true, false)?;
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// Tasks run on a [`ThreadPool`](crate::ThreadPool) (rayon); arguments and
/// results still go through serde, so that a program behaves the same on
/// threads and processes. A task that panics fails its future with
/// [`ErrorKind::Panicked`], the message and the location; the executor goes
/// on. A running thread cannot be stopped: `cancel` and
/// `shutdown(_, true)` cancel only the tasks no thread has started.
/// Dropping the executor shuts it down and waits for the pending futures
/// (Python's `with` block).
pub struct ThreadPoolExecutor {
    pool: Arc<ThreadPool>,
}

impl ThreadPoolExecutor {
    /// An executor with `max_workers` threads (zero is an
    /// [`ErrorKind::InvalidArgument`] error).
    pub fn new(max_workers: usize) -> Result<ThreadPoolExecutor, Error> {
        let pool = ThreadPool::new(max_workers).map_err(|e| {
            if e.kind() == ErrorKind::InvalidArgument {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "max_workers must be greater than 0",
                )
            } else {
                e
            }
        })?;
        Ok(ThreadPoolExecutor {
            pool: Arc::new(pool),
        })
    }

    /// Schedules `f(args)` and returns its future.
    pub fn submit<F, A, R>(&self, f: F, args: A) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        if !self.pool.is_running() {
            return Err(after_shutdown());
        }
        let canceller: Weak<ThreadPool> = Arc::downgrade(&self.pool);
        submit_to(&*self.pool, canceller, f, args, Limits::default())
    }

    /// `f` over every item, in input order (Python's `Executor.map`), as
    /// [`ProcessPoolExecutor::map`]: chunks of `chunksize` (default 1; zero
    /// is an error), a `timeout` counted from this call, a failed item's
    /// error at its place.
    pub fn map<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        timeout: Option<Duration>,
    ) -> Result<ExecutorMap<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        if !self.pool.is_running() {
            return Err(after_shutdown());
        }
        map_on(&*self.pool, f, items, chunksize, timeout)
    }

    /// Takes no more work. With `cancel_futures`, the futures that no
    /// thread has started yet are cancelled; with `wait`, returns once the
    /// others are done and their callbacks have run.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) -> Result<(), Error> {
        if cancel_futures {
            self.pool.cancel_queued();
        }
        self.pool.close();
        if wait {
            self.pool.join()?;
        }
        Ok(())
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        let _ = self.shutdown(true, false);
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.pool.processes())
            .finish()
    }
}

/// The results of [`ProcessPoolExecutor::map`] and
/// [`ThreadPoolExecutor::map`], in input order.
pub struct ExecutorMap<R> {
    inner: ImapIter<R>,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl<R: DeserializeOwned> Iterator for ExecutorMap<R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Result<R, Error>> {
        if self.timed_out {
            return None;
        }
        let item = self.inner.next_until(self.deadline);
        if matches!(&item, Some(Err(e)) if e.is_timeout()) {
            self.timed_out = true;
        }
        item
    }
}

impl<R> fmt::Debug for ExecutorMap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorMap").finish_non_exhaustive()
    }
}

/// The eventual result of [`ProcessPoolExecutor::submit`] or
/// [`ThreadPoolExecutor::submit`] (Python's `concurrent.futures.Future`).
///
/// # In async code
///
/// `Future<R>` is also a [`std::future::Future`] with `Output = Result<R,
/// Error>`, what [`result`](Future::result) returns (the task's error,
/// [`ErrorKind::Cancelled`], [`ErrorKind::Broken`]), decoded on the
/// polling thread. It needs no runtime: the executor's thread that
/// delivers the result wakes the awaiting task, no thread waits per
/// pending future, and `poll` never blocks. Clones may be awaited at
/// once; each is woken.
///
/// Cancellation safety: dropping the future (or the task awaiting it)
/// before it completes does not cancel the task, which still runs; its
/// result stays available to every clone and its done-callbacks run.
/// This is the detach of tokio's `JoinHandle`, not the kill of pebble's
/// asyncio pool: to cancel a task that has not started, call
/// [`cancel`](Future::cancel), which never blocks either.
///
/// ```
/// use mp_pool::ProcessPoolExecutor;
///
/// fn task(n: u64) -> u64 { (0..n).sum() }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let fut = ex.submit(task, 10_000)?;
/// assert_eq!(smol::block_on(fut)?, 49_995_000);
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub struct Future<R> {
    result: AsyncResult<R>,
    sink: Arc<dyn Sink>,
    canceller: Weak<dyn Cancel>,
}

impl<R: DeserializeOwned> Future<R> {
    /// Waits for the result; the task's error, an [`ErrorKind::Cancelled`]
    /// error if it was cancelled, or [`ErrorKind::Broken`].
    pub fn result(&self) -> Result<R, Error> {
        self.result.get()
    }

    /// Like [`result`](Future::result), giving up after `timeout` with an
    /// [`ErrorKind::Timeout`] error (the future is not affected).
    pub fn result_timeout(&self, timeout: Duration) -> Result<R, Error> {
        self.result.get_timeout(timeout)
    }
}

impl<R> Future<R> {
    /// Waits for the future and returns its error, if it failed.
    pub fn exception(&self) -> Option<Error> {
        self.result.wait();
        self.result.cell().error()
    }

    /// Like [`exception`](Future::exception), giving up after `timeout`
    /// with an [`ErrorKind::Timeout`] error.
    pub fn exception_timeout(&self, timeout: Duration) -> Result<Option<Error>, Error> {
        if self.result.wait_timeout(timeout) {
            Ok(self.result.cell().error())
        } else {
            Err(Error::timeout())
        }
    }

    /// Whether the future has completed (or was cancelled).
    pub fn done(&self) -> bool {
        self.result.ready()
    }

    /// Cancels the future if no worker has received it yet (no thread has
    /// started it, for a [`ThreadPoolExecutor`]); whether it did.
    pub fn cancel(&self) -> bool {
        if self.cancelled() {
            return true;
        }
        match self.canceller.upgrade() {
            Some(c) => c.cancel(&self.sink),
            None => false,
        }
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.result
            .cell()
            .error()
            .is_some_and(|e| e.kind() == ErrorKind::Cancelled)
    }

    /// Runs `f` with this future once it completes: on the executor's
    /// callback thread, or here and now if it already has. A panic in `f`
    /// is caught.
    pub fn add_done_callback(&self, f: impl FnOnce(&Future<R>) + Send + 'static)
    where
        R: 'static,
    {
        let me = self.clone();
        self.result.cell().on_set(Box::new(move || f(&me)));
    }
}

impl<R> std::future::Future for Future<R> {
    type Output = Result<R, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R, Error>> {
        Pin::new(&mut self.get_mut().result).poll(cx)
    }
}

impl<R> Clone for Future<R> {
    fn clone(&self) -> Self {
        Future {
            result: self.result.clone(),
            sink: self.sink.clone(),
            canceller: self.canceller.clone(),
        }
    }
}

impl<R> fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Future")
            .field("done", &self.result.ready())
            .finish()
    }
}

/// When [`wait`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as one future completes.
    FirstCompleted,
    /// As soon as one future fails, or all complete.
    FirstException,
    /// When all futures complete.
    AllCompleted,
}

/// Waits for `futures` (Python's `concurrent.futures.wait`); returns the
/// indices of those done and of those not done, when `return_when` is met
/// or `timeout` passes.
pub fn wait<R>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> (Vec<usize>, Vec<usize>) {
    let deadline = timeout.map(|t| Instant::now() + t);
    let notify = Arc::new(Notify::default());
    for (i, f) in futures.iter().enumerate() {
        f.result.cell().watch(&notify, i);
    }
    let mut done = HashSet::new();
    let mut failed = false;
    let mut q = lock(&notify.done);
    loop {
        while let Some(i) = q.pop_front() {
            failed |= futures[i].result.cell().error().is_some();
            done.insert(i);
        }
        let met = match return_when {
            ReturnWhen::FirstCompleted => !done.is_empty(),
            ReturnWhen::FirstException => failed || done.len() == futures.len(),
            ReturnWhen::AllCompleted => done.len() == futures.len(),
        };
        if met || done.len() == futures.len() {
            break;
        }
        match deadline {
            None => q = notify.cv.wait(q).unwrap_or_else(|p| p.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    break;
                }
                q = notify
                    .cv
                    .wait_timeout(q, d - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
    drop(q);
    let (mut d, mut n): (Vec<usize>, Vec<usize>) =
        (0..futures.len()).partition(|i| done.contains(i));
    d.sort_unstable();
    n.sort_unstable();
    (d, n)
}

/// Yields the indices of `futures` as they complete (Python's
/// `as_completed`). With a `timeout` (counted from this call), yields an
/// [`ErrorKind::Timeout`] error if it passes first, then ends.
pub fn as_completed<R>(futures: &[Future<R>], timeout: Option<Duration>) -> AsCompleted {
    let notify = Arc::new(Notify::default());
    for (i, f) in futures.iter().enumerate() {
        f.result.cell().watch(&notify, i);
    }
    AsCompleted {
        notify,
        left: futures.len(),
        deadline: timeout.map(|t| Instant::now() + t),
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted {
    notify: Arc<Notify>,
    left: usize,
    deadline: Option<Instant>,
}

impl Iterator for AsCompleted {
    type Item = Result<usize, Error>;

    fn next(&mut self) -> Option<Result<usize, Error>> {
        if self.left == 0 {
            return None;
        }
        let mut q = lock(&self.notify.done);
        loop {
            if let Some(i) = q.pop_front() {
                self.left -= 1;
                return Some(Ok(i));
            }
            match self.deadline {
                None => q = self.notify.cv.wait(q).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        self.left = 0;
                        return Some(Err(Error::timeout()));
                    }
                    q = self
                        .notify
                        .cv
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

impl fmt::Debug for AsCompleted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .finish()
    }
}
