//! Where results land: one-shot cells behind `AsyncResult` and `Future`,
//! the sinks that gather a task's chunks into them (`sink`), and the
//! callback thread (the streams behind `imap` are in `imap`).
//!
//! Results stay encoded until the caller asks for them: the pool's reader
//! threads never see the result type, and decoding happens in `get`, in
//! the iterator or in a blocking `map` (`Collect`), on the caller's thread.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};
pub use crate::imap::ImapIter;
pub(crate) use crate::imap::Stream;

mod sink;

pub(crate) use sink::{Collect, Gather, Sink, decode_many, decode_one};

/// A task's outcome: its encoded result, or why it failed.
pub(crate) type Blob = Result<Vec<u8>, Error>;

/// A whole call's outcome: the encoded result of each task (chunk).
pub(crate) type Outcome = Result<Vec<Vec<u8>>, Error>;

/// User code to run on the callback thread.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// What runs when a call completes, before its result is marked ready.
pub(crate) type OnDone = Box<dyn FnOnce(&Outcome) + Send>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// State that counts its waiters, so that completing it notifies (a
/// syscall) only when someone waits.
pub(crate) trait Waiters {
    fn waiters(&mut self) -> &mut usize;
}

pub(crate) fn wait_until<'a, T: Waiters>(
    cv: &Condvar,
    mut g: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    mut done: impl FnMut(&T) -> bool,
) -> (MutexGuard<'a, T>, bool) {
    loop {
        if done(&g) {
            return (g, true);
        }
        *g.waiters() += 1;
        g = wait_once(cv, g, deadline);
        *g.waiters() -= 1;
        if deadline.is_some_and(|d| Instant::now() >= d) && !done(&g) {
            return (g, false);
        }
    }
}

fn wait_once<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> MutexGuard<'a, T> {
    match deadline {
        None => cv.wait(g).unwrap_or_else(|p| p.into_inner()),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return g;
            }
            cv.wait_timeout(g, d - now)
                .unwrap_or_else(|p| p.into_inner())
                .0
        }
    }
}

/// Runs user code so that a panic in it breaks nothing of the pool.
pub(crate) fn run_caught(job: Job) {
    if catch_unwind(AssertUnwindSafe(job)).is_err() {
        // The panic hook has printed the message; the pool goes on.
    }
}

/// The pool's callback thread: runs callbacks in submission order, each
/// under `catch_unwind` (gh-79492: a raising callback must not take the
/// result handling down with it).
pub(crate) struct Callbacks {
    tx: Mutex<mpsc::Sender<Job>>,
}

/// The callback thread's handle, owned by the pool.
pub(crate) struct CallbackThread {
    shared: Option<Arc<Callbacks>>,
    thread: Option<JoinHandle<()>>,
    id: Option<ThreadId>,
}

impl CallbackThread {
    pub(crate) fn start() -> Result<CallbackThread, Error> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("mp-pool-callbacks".into())
            .spawn(move || {
                for job in rx {
                    run_caught(job);
                }
            })
            .map_err(|e| Error::new(ErrorKind::Process, format!("cannot start a thread: {e}")))?;
        Ok(CallbackThread {
            id: Some(thread.thread().id()),
            shared: Some(Arc::new(Callbacks { tx: Mutex::new(tx) })),
            thread: Some(thread),
        })
    }

    pub(crate) fn handle(&self) -> Weak<Callbacks> {
        self.shared.as_ref().map(Arc::downgrade).unwrap_or_default()
    }

    /// Lets the thread finish the callbacks queued so far, and waits for
    /// it (unless this is the callback thread itself: a callback that
    /// drops its pool).
    pub(crate) fn finish(&mut self) {
        self.shared = None;
        if self.id == Some(std::thread::current().id()) {
            return;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for CallbackThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackThread").finish_non_exhaustive()
    }
}

/// Runs `job` on the callback thread, or here when the pool is gone.
pub(crate) fn dispatch(callbacks: &Weak<Callbacks>, job: Job) {
    let job = match callbacks.upgrade() {
        Some(cb) => match lock(&cb.tx).send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    run_caught(job);
}

/// Wakes the waiters of [`wait`](crate::wait) and
/// [`as_completed`](crate::as_completed): each watched cell, when it
/// completes, queues its number here.
#[derive(Default)]
pub(crate) struct Notify {
    pub(crate) done: Mutex<VecDeque<usize>>,
    pub(crate) cv: Condvar,
}

impl Notify {
    fn ping(&self, id: usize) {
        lock(&self.done).push_back(id);
        self.cv.notify_all();
    }
}

/// A one-shot result cell.
#[derive(Default)]
pub(crate) struct Cell {
    state: Mutex<CellState>,
    cv: Condvar,
}

#[derive(Default)]
struct CellState {
    waiters: usize,
    value: Option<Outcome>,
    done_callbacks: Vec<Job>,
    watchers: Vec<(Weak<Notify>, usize)>,
    /// The tasks awaiting the cell (`AsyncResult` polled as a future),
    /// each under the key its future holds: a future polled again
    /// replaces its own waker, one dropped removes it, and every clone
    /// awaited at once has its own entry, so all of them wake. Empty
    /// unless someone awaits: `set` then only sees an empty vector, under
    /// the lock it takes anyway.
    wakers: Vec<(u64, Waker)>,
    next_key: u64,
}

impl Cell {
    /// Sets the value (once) and returns the done-callbacks to run.
    pub(crate) fn set(&self, value: Outcome) -> Vec<Job> {
        let mut st = lock(&self.state);
        if st.value.is_some() {
            return Vec::new();
        }
        st.value = Some(value);
        let callbacks = std::mem::take(&mut st.done_callbacks);
        let watchers = std::mem::take(&mut st.watchers);
        let wakers = std::mem::take(&mut st.wakers);
        let wake = st.waiters > 0;
        drop(st);
        if wake {
            self.cv.notify_all();
        }
        // Whoever sets the cell (a reader thread, the callback thread, a
        // thread pool's thread, a canceller) wakes the awaiting tasks: no
        // runtime needs to look, and no thread waits per future.
        for (_, w) in wakers {
            w.wake();
        }
        for (w, id) in watchers {
            if let Some(w) = w.upgrade() {
                w.ping(id);
            }
        }
        callbacks
    }

    pub(crate) fn is_set(&self) -> bool {
        lock(&self.state).value.is_some()
    }

    /// The error, if the cell holds one (`None` while not ready too).
    pub(crate) fn error(&self) -> Option<Error> {
        match &lock(&self.state).value {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Queues `id` on `n` when the cell completes (at once if it has).
    pub(crate) fn watch(&self, n: &Arc<Notify>, id: usize) {
        let mut st = lock(&self.state);
        if st.value.is_some() {
            drop(st);
            n.ping(id);
        } else {
            st.watchers.push((Arc::downgrade(n), id));
        }
    }

    /// Adds a callback to run when the cell is set; runs it here and now if
    /// it is set already.
    pub(crate) fn on_set(&self, job: Job) {
        let mut st = lock(&self.state);
        if st.value.is_none() {
            st.done_callbacks.push(job);
            return;
        }
        drop(st);
        run_caught(job);
    }

    /// For a future's `poll`: maps the value if the cell is set; else
    /// registers `waker` under `*key` (a new key the first time), to be
    /// woken by `set`, and returns `None`. Never waits.
    fn poll_with<T>(
        &self,
        key: &mut Option<u64>,
        waker: &Waker,
        f: impl FnOnce(&Outcome) -> T,
    ) -> Option<T> {
        let mut st = lock(&self.state);
        if let Some(v) = &st.value {
            // `set` took the wakers: ours is gone.
            *key = None;
            return Some(f(v));
        }
        let st = &mut *st;
        match key.and_then(|k| st.wakers.iter_mut().find(|(x, _)| *x == k)) {
            Some((_, w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
            }
            None => {
                let k = st.next_key;
                st.next_key += 1;
                st.wakers.push((k, waker.clone()));
                *key = Some(k);
            }
        }
        None
    }

    /// A future that registered under `key` is dropped unfinished.
    fn forget(&self, key: u64) {
        lock(&self.state).wakers.retain(|(k, _)| *k != key);
    }

    /// Waits for the value, then maps it; `None` on timeout.
    fn with<T>(&self, deadline: Option<Instant>, f: impl FnOnce(&Outcome) -> T) -> Option<T> {
        let g = lock(&self.state);
        let (g, ok) = wait_until(&self.cv, g, deadline, |s| s.value.is_some());
        ok.then(|| f(g.value.as_ref().expect("set")))
    }
}

impl Waiters for CellState {
    fn waiters(&mut self) -> &mut usize {
        &mut self.waiters
    }
}

/// How long after its first miss an awaited result of a process pool
/// asks to be polled again at once (`get` polls the rings as long).
const EAGER: Duration = Duration::from_micros(100);

/// The result of an asynchronous call: Python's `AsyncResult` (and
/// `MapResult`). `get` may be called any number of times; the value stays.
///
/// # In async code
///
/// `AsyncResult<T>` is a [`std::future::Future`] with `Output =
/// Result<T, Error>`, the value (or error) `get` returns, decoded on the
/// polling thread as `get` decodes it. It needs no runtime: polling checks
/// the result, and if it is not there registers the task's waker, which
/// the pool's thread that delivers the result wakes (the worker's reader
/// thread, the callback thread for a call with a callback, a thread
/// pool's thread). No thread waits per pending future, and `poll` never
/// blocks or spins: it looks once at the workers' rings, taking the
/// results already published there, then registers; for the first
/// 100 µs of a wait (as long as `get` polls the rings) it also asks to be
/// polled again at once, after the executor's other ready tasks. Awaiting a result that is ready returns at once; a
/// future polled after it completed returns the value again.
///
/// Clones share the result: any number of clones may be awaited at once
/// (on one task or many), and each is woken.
///
/// Cancellation safety: dropping an `AsyncResult` (or the task awaiting
/// it) before it completes cancels nothing and never blocks. The task
/// still runs, its callbacks still run, and its result is still there for
/// every clone (`get`, or another `await`).
///
/// ```
/// use mp_pool::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = Pool::new(2)?;
/// let results: Vec<_> = (0..10).map(|x| pool.apply_async(square, x)).collect::<Result<_, _>>()?;
/// let sum = smol::block_on(async {
///     let mut sum = 0;
///     for r in results {
///         sum += r.await?;
///     }
///     Ok::<_, mp_pool::Error>(sum)
/// })?;
/// assert_eq!(sum, 285);
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub struct AsyncResult<T> {
    cell: Arc<Cell>,
    decode: fn(&[Vec<u8>]) -> Result<T, Error>,
    assist: Option<Weak<dyn Assist>>,
    /// This future's entry in the cell's wakers, once it was polled and
    /// found the result missing.
    key: Option<u64>,
    /// Until when a poll that finds the result missing asks to be polled
    /// again at once (set by the first such poll): see `poll`.
    eager_until: Option<Instant>,
}

/// A pool that can fetch results on a waiting caller's thread (the
/// process pool's engine polls its workers' rings): a lone call's result
/// then needs no thread to wake up.
pub(crate) trait Assist: Send + Sync {
    /// Works towards `ready` for a short while (never past `deadline`);
    /// whether it holds.
    fn assist(&self, ready: &dyn Fn() -> bool, deadline: Option<Instant>) -> bool;
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(cell: Arc<Cell>, decode: fn(&[Vec<u8>]) -> Result<T, Error>) -> Self {
        AsyncResult {
            cell,
            decode,
            assist: None,
            key: None,
            eager_until: None,
        }
    }

    /// `get` and `wait` first let `assist` fetch the result.
    pub(crate) fn assisted(mut self, assist: Option<Weak<dyn Assist>>) -> Self {
        self.assist = assist;
        self
    }

    fn assist(&self, deadline: Option<Instant>) {
        if let Some(a) = self.assist.as_ref().and_then(Weak::upgrade) {
            if !self.cell.is_set() {
                let cell = &self.cell;
                a.assist(&|| cell.is_set(), deadline);
            }
        }
    }

    pub(crate) fn cell(&self) -> &Arc<Cell> {
        &self.cell
    }

    fn get_deadline(&self, deadline: Option<Instant>) -> Result<T, Error> {
        self.assist(deadline);
        let decode = self.decode;
        match self.cell.with(deadline, |v| match v {
            Ok(blobs) => decode(blobs),
            Err(e) => Err(e.clone()),
        }) {
            Some(r) => r,
            None => Err(Error::timeout()),
        }
    }

    /// Waits for the result and returns it, or the task's error.
    pub fn get(&self) -> Result<T, Error> {
        self.get_deadline(None)
    }

    /// Like [`get`](AsyncResult::get), giving up after `timeout` with an
    /// [`ErrorKind::Timeout`] error; the result is not lost, and a later
    /// `get` returns it.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.get_deadline(Some(Instant::now() + timeout))
    }

    /// Waits until the result is ready.
    pub fn wait(&self) {
        self.assist(None);
        self.cell.with(None, |_| ());
    }

    /// Waits until the result is ready or `timeout` passes; returns whether
    /// it is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell
            .with(Some(Instant::now() + timeout), |_| ())
            .is_some()
    }

    /// Whether the call has completed.
    pub fn ready(&self) -> bool {
        self.cell.is_set()
    }

    /// Whether the call completed without error; an
    /// [`ErrorKind::NotReady`] error before it completed.
    pub fn successful(&self) -> Result<bool, Error> {
        match &lock(&self.cell.state).value {
            None => Err(Error::new(ErrorKind::NotReady, "the result is not ready")),
            Some(v) => Ok(v.is_ok()),
        }
    }
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult {
            cell: self.cell.clone(),
            decode: self.decode,
            assist: self.assist.clone(),
            key: None,
            eager_until: None,
        }
    }
}

impl<T> std::future::Future for AsyncResult<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let this = self.get_mut();
        let decode = this.decode;
        // One look at the workers' rings, bounded by now (never a wait):
        // results already published are taken on this thread, which saves
        // the reader's wake-up and the runtime's for each of them.
        let now = Instant::now();
        this.assist(Some(now));
        match this.cell.poll_with(&mut this.key, cx.waker(), |v| match v {
            Ok(blobs) => decode(blobs),
            Err(e) => Err(e.clone()),
        }) {
            Some(r) => Poll::Ready(r),
            None => {
                // For as long as `get` polls the rings before it sleeps,
                // ask to be polled again at once rather than wait for the
                // pool's thread to wake the runtime: the executor runs its
                // other tasks in between, so no thread is held. After that
                // the registered waker alone brings the result.
                if this.assist.is_some() {
                    let until = *this.eager_until.get_or_insert(now + EAGER);
                    if now < until {
                        cx.waker().wake_by_ref();
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for AsyncResult<T> {
    /// A future dropped while it waits takes its waker out of the cell
    /// (a lock the pool holds only for moments; nothing else waits).
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.cell.forget(k);
        }
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}
