//! What every pool kind shares: chunking, encoding, result plumbing, and the
//! `TaskPool` trait that makes process and thread pools interchangeable.

use std::any::TypeId;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mp_process::{Function, RawFunction, SharedFd};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::chunk::{Packed, encode_items};
use crate::engine::{FuncKey, Job};
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::result::{
    Assist, AsyncResult, Callbacks, Cell, Collect, Gather, ImapIter, OnDone, Outcome, Stream,
    decode_many, decode_one,
};

/// Where a pool kind sends its tasks.
pub(crate) trait Backend {
    fn submit(&self, func: FuncKey<'_>, jobs: Vec<Job>) -> Result<(), Error>;
    fn callbacks(&self) -> Weak<Callbacks>;
    fn processes(&self) -> usize;
    /// Who can help a caller waiting for a result (see [`Assist`]).
    fn assist(&self) -> Option<Weak<dyn Assist>> {
        None
    }
    /// The default time limits of its tasks (a `map` with limits restarts
    /// the clock at every item).
    fn default_limits(&self) -> Limits {
        Limits::default()
    }
}

fn type_id_of<C: 'static>(_: &C) -> TypeId {
    TypeId::of::<C>()
}

/// `f` over a whole chunk: one call per chunk, so that a chunk of tiny
/// tasks costs one dispatch. It captures only `f`, which is zero-sized, so
/// it is itself a function that a worker can call by name. The results are
/// [`Packed`], for speed (see `chunk`).
fn chunked<F, A, R>(f: F) -> impl Fn(Vec<A>) -> Packed<R> + Copy + 'static
where
    F: Fn(A) -> R + Copy + 'static,
    A: 'static,
    R: 'static,
{
    move |items: Vec<A>| Packed(items.into_iter().map(f).collect())
}

/// [`chunked`] for a pool with time limits: each item after the first
/// restarts the task's clock, so that the limits are per item.
fn chunked_limited<F, A, R>(f: F) -> impl Fn(Vec<A>) -> Packed<R> + Copy + 'static
where
    F: Fn(A) -> R + Copy + 'static,
    A: 'static,
    R: 'static,
{
    move |items: Vec<A>| {
        let mut first = true;
        Packed(
            items
                .into_iter()
                .map(|x| {
                    if !first {
                        crate::limits::item_started();
                    }
                    first = false;
                    f(x)
                })
                .collect(),
        )
    }
}

/// Encodes a task's argument; a failure names the type and says why.
fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
    mp_process::codec::encode(v).map_err(|e| Error::codec("cannot encode the argument", e))
}

/// Encodes a task's argument with `encode`, and collects the descriptors
/// of the `SharedFd`s in it (a queue, a pipe, shared memory, a lock),
/// which travel beside the bytes: so a task can take what a process can.
pub(crate) fn encode_task<T: DeserializeOwned>(
    encode: impl FnOnce() -> Result<Vec<u8>, Error>,
) -> Result<(Vec<u8>, Vec<OwnedFd>), Error> {
    let (bytes, fds) = SharedFd::collect(encode);
    let bytes = bytes?;
    // Refused here, in debug builds, rather than by the worker.
    mp_process::codec::check_sent::<T>(&bytes)
        .map_err(|e| Error::codec("cannot send the task's argument", e))?;
    if fds.len() > mp_process::MAX_FDS_PER_MESSAGE {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "a task's argument holds {} file descriptors (queues, pipes, shared memory); at most {} can travel with one task",
                fds.len(),
                mp_process::MAX_FDS_PER_MESSAGE
            ),
        ));
    }
    Ok((bytes, fds))
}

fn on_done<T: 'static>(
    decode: fn(&[Vec<u8>]) -> Result<T, Error>,
    ok: impl FnOnce(&T) + Send + 'static,
    err: impl FnOnce(&Error) + Send + 'static,
) -> OnDone {
    Box::new(
        move |o: &Outcome| match o.as_ref().map_err(Error::clone).and_then(|b| decode(b)) {
            Ok(v) => ok(&v),
            Err(e) => err(&e),
        },
    )
}

pub(crate) fn apply_async<B, F, A, R>(
    b: &B,
    f: F,
    args: A,
    done: Option<OnDone>,
) -> Result<AsyncResult<R>, Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    apply_async_limited(b, f, args, done, Limits::default())
}

/// [`apply_async`] with per-call time limits (unset fields: the pool's).
pub(crate) fn apply_async_limited<B, F, A, R>(
    b: &B,
    f: F,
    args: A,
    done: Option<OnDone>,
    limits: Limits,
) -> Result<AsyncResult<R>, Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    // As the task will run: the unset fields are the pool's.
    limits.check()?;
    limits.or(b.default_limits()).check()?;
    let (args, fds) = encode_task::<A>(|| encode(&args))?;
    let cell = Arc::new(Cell::default());
    let gather = Gather::new(1, cell.clone(), done, b.callbacks());
    let make = || Function::new(f).map(|f| f.raw().clone());
    b.submit(
        FuncKey {
            id: TypeId::of::<F>(),
            make: &make,
        },
        vec![Job {
            args,
            fds,
            sink: gather,
            index: 0,
            limits,
        }],
    )?;
    Ok(AsyncResult::new(cell, decode_one::<R>).assisted(b.assist()))
}

pub(crate) fn apply_callbacks<R: DeserializeOwned + 'static>(
    ok: impl FnOnce(&R) + Send + 'static,
    err: impl FnOnce(&Error) + Send + 'static,
) -> OnDone {
    on_done(decode_one::<R>, ok, err)
}

pub(crate) fn map_callbacks<R: DeserializeOwned + 'static>(
    ok: impl FnOnce(&Vec<R>) + Send + 'static,
    err: impl FnOnce(&Error) + Send + 'static,
) -> OnDone {
    on_done(decode_many::<R>, ok, err)
}

/// CPython's default: `ceil(len / (4 * workers))`.
pub(crate) fn default_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(4 * workers.max(1)).max(1)
}

/// The items of a `map` and its chunk size: the one given (0 is an
/// error), else CPython's default for this many items and workers.
fn map_input<B: Backend + ?Sized, A>(
    b: &B,
    items: impl IntoIterator<Item = A>,
    chunksize: Option<usize>,
) -> Result<(Vec<A>, usize), Error> {
    let chunksize = check_chunksize(chunksize)?;
    let items: Vec<A> = items.into_iter().collect();
    let cs = chunksize.unwrap_or_else(|| default_chunksize(items.len(), b.processes()));
    Ok((items, cs))
}

pub(crate) fn check_chunksize(c: Option<usize>) -> Result<Option<usize>, Error> {
    match c {
        Some(0) => Err(Error::new(
            ErrorKind::InvalidArgument,
            "chunksize must be at least 1",
        )),
        c => Ok(c),
    }
}

/// Submits `items` in chunks, each to `sink`; returns the chunk size.
fn submit_chunks<B, F, A, R>(
    b: &B,
    f: F,
    items: &[A],
    chunksize: usize,
    sink: Arc<dyn crate::result::Sink>,
) -> Result<(), Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    if b.default_limits().is_empty() {
        submit_chunks_of(b, chunked(f), items, chunksize, sink)
    } else {
        submit_chunks_of(b, chunked_limited(f), items, chunksize, sink)
    }
}

/// [`submit_chunks`] with `c`, the function over a whole chunk.
fn submit_chunks_of<B, C, A, R>(
    b: &B,
    c: C,
    items: &[A],
    chunksize: usize,
    sink: Arc<dyn crate::result::Sink>,
) -> Result<(), Error>
where
    B: Backend + ?Sized,
    C: Fn(Vec<A>) -> Packed<R> + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let make = move || Function::<Vec<A>, Packed<R>>::new(c).map(|f| f.raw().clone());
    // The first chunk per worker goes out at once, each on its own, so that
    // every worker starts while the rest are encoded (the first as soon as
    // its chunk is); the rest go in large batches.
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let n = items.len().div_ceil(chunksize);
    let mut last_len = 0;
    for (index, chunk) in items.chunks(chunksize).enumerate() {
        // Chunks are alike: each is about as large as the one before.
        let (args, fds) = encode_task::<Vec<A>>(|| encode_items(chunk, last_len + last_len / 8))?;
        last_len = args.len();
        batch_bytes += args.len();
        batch.push(Job {
            args,
            fds,
            sink: sink.clone(),
            index,
            limits: Limits::default(),
        });
        if index < b.processes() || batch_bytes >= 64 * 1024 || index + 1 == n {
            b.submit(
                FuncKey {
                    id: type_id_of(&c),
                    make: &make,
                },
                std::mem::take(&mut batch),
            )?;
            batch_bytes = 0;
        }
    }
    Ok(())
}

pub(crate) fn map_async<B, F, A, R, I>(
    b: &B,
    f: F,
    items: I,
    chunksize: Option<usize>,
    done: Option<OnDone>,
) -> Result<AsyncResult<Vec<R>>, Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: IntoIterator<Item = A>,
{
    let (items, cs) = map_input(b, items, chunksize)?;
    let cell = Arc::new(Cell::default());
    let gather = Gather::new(items.len().div_ceil(cs), cell.clone(), done, b.callbacks());
    submit_chunks(b, f, &items, cs, gather)?;
    Ok(AsyncResult::new(cell, decode_many::<R>))
}

/// `map_async` with a progress callback (see `Gather::with_progress`).
pub(crate) fn map_async_progress<B, F, A, R, I>(
    b: &B,
    f: F,
    items: I,
    chunksize: Option<usize>,
    progress: Box<dyn FnMut(usize, usize) + Send>,
) -> Result<AsyncResult<Vec<R>>, Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: IntoIterator<Item = A>,
{
    let (items, cs) = map_input(b, items, chunksize)?;
    let cell = Arc::new(Cell::default());
    let gather =
        Gather::with_progress(items.len(), cs, cell.clone(), None, b.callbacks(), progress);
    submit_chunks(b, f, &items, cs, gather)?;
    Ok(AsyncResult::new(cell, decode_many::<R>))
}

/// `map` with a progress callback, called on the caller's thread (see
/// `Collect::wait_progress`).
pub(crate) fn map_progress<B, F, A, R, I>(
    b: &B,
    f: F,
    items: I,
    chunksize: Option<usize>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<R>, Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: IntoIterator<Item = A>,
{
    let (items, cs) = map_input(b, items, chunksize)?;
    let len = items.len();
    let collect = Collect::counting(len, cs);
    submit_chunks(b, f, &items, cs, collect.clone())?;
    drop(items);
    collect.wait_progress(len, progress)
}

/// `map`: as `map_async(...).get()`, but the caller decodes each chunk as
/// soon as it and those before it have arrived (see `Collect`).
pub(crate) fn map<B, F, A, R, I>(
    b: &B,
    f: F,
    items: I,
    chunksize: Option<usize>,
) -> Result<Vec<R>, Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: IntoIterator<Item = A>,
{
    let (items, cs) = map_input(b, items, chunksize)?;
    let len = items.len();
    let collect = Collect::new(len.div_ceil(cs));
    submit_chunks(b, f, &items, cs, collect.clone())?;
    // The items are encoded: their memory can hold the results.
    drop(items);
    collect.wait(len)
}

pub(crate) fn imap<B, F, A, R, I>(
    b: &B,
    f: F,
    items: I,
    chunksize: Option<usize>,
    ordered: bool,
) -> Result<ImapIter<R>, Error>
where
    B: Backend + ?Sized,
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: IntoIterator<Item = A>,
{
    let cs = check_chunksize(chunksize)?.unwrap_or(1);
    let items: Vec<A> = items.into_iter().collect();
    let stream = Stream::new(ordered, cs, items.len());
    submit_chunks(b, f, &items, cs, stream.clone())?;
    Ok(ImapIter::new(stream))
}

/// Makes a raw function for a backend that runs it in this process.
pub(crate) fn raw_of<F, A, R>(f: F) -> Result<RawFunction, mp_process::Error>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    Function::new(f).map(|f| f.raw().clone())
}

/// The API that [`Pool`](crate::Pool) and [`ThreadPool`](crate::ThreadPool)
/// share, so that code can take either: moving work between processes and
/// threads is a one-word change.
///
/// Functions are fn items or closures that capture nothing
/// (`F: Fn(A) -> R + Copy + 'static`); several arguments travel as one
/// tuple. Arguments and results travel by serde, for threads too, so that
/// both kinds behave alike.
///
/// ```
/// use mp_pool::{Pool, TaskPool, ThreadPool};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// fn squares(pool: &impl TaskPool) -> Vec<u64> {
///     pool.map(square, 0..5, None).unwrap()
/// }
///
/// assert_eq!(squares(&Pool::new(2)?), [0, 1, 4, 9, 16]);
/// assert_eq!(squares(&ThreadPool::new(2)?), [0, 1, 4, 9, 16]);
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub trait TaskPool {
    /// Runs `f(args)` in the pool and waits for its result.
    fn apply<F, A, R>(&self, f: F, args: A) -> Result<R, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static;

    /// Starts `f(args)` in the pool.
    fn apply_async<F, A, R>(&self, f: F, args: A) -> Result<AsyncResult<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static;

    /// `f` over every item, results in input order.
    fn map<F, A, R, I>(&self, f: F, items: I, chunksize: Option<usize>) -> Result<Vec<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>;

    /// Starts `f` over every item.
    fn map_async<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>;

    /// `f` over every item, yielded in input order as results arrive.
    fn imap<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<ImapIter<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>;

    /// `f` over every item, yielded in completion order.
    fn imap_unordered<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<ImapIter<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>;

    /// Takes no more work; the workers exit once the queued work is done.
    fn close(&self);

    /// Stops the workers at once; unfinished results fail with
    /// [`ErrorKind::Terminated`].
    fn terminate(&self);

    /// Waits for the workers to exit, after `close` or `terminate`.
    fn join(&self) -> Result<(), Error>;

    /// Like `join`, giving up after `timeout` with an
    /// [`ErrorKind::Timeout`] error.
    fn join_timeout(&self, timeout: Duration) -> Result<(), Error>;
}

/// The methods of a pool kind, inherent (so that no import is needed) and
/// as its [`TaskPool`] implementation.
macro_rules! pool_api {
    ($pool:ty) => {
        impl $pool {
            /// Runs `f(args)` in the pool and waits for its result
            /// (Python's `apply`). A panic in `f` is an
            /// [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) error with
            /// its message and location.
            pub fn apply<F, A, R>(&self, f: F, args: A) -> Result<R, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
            {
                self.apply_async(f, args)?.get()
            }

            /// Starts `f(args)` in the pool (Python's `apply_async`).
            pub fn apply_async<F, A, R>(&self, f: F, args: A) -> Result<AsyncResult<R>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
            {
                crate::front::apply_async(self.backend(), f, args, None)
            }

            /// Starts `f(args)` with a `callback` for its result and an
            /// `error_callback` for its failure. They run on the pool's
            /// callback thread, before the result is marked ready; a
            /// callback that panics breaks nothing.
            pub fn apply_async_with<F, A, R>(
                &self,
                f: F,
                args: A,
                callback: impl FnOnce(&R) + Send + 'static,
                error_callback: impl FnOnce(&Error) + Send + 'static,
            ) -> Result<AsyncResult<R>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
            {
                let done = crate::front::apply_callbacks(callback, error_callback);
                crate::front::apply_async(self.backend(), f, args, Some(done))
            }

            /// `f` over every item, results in input order (Python's
            /// `map`). The items go in chunks of `chunksize` (default
            /// `ceil(len / (4 * processes))`; zero is an error), each chunk
            /// one task. On failure, the error of the first failed chunk.
            pub fn map<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<Vec<R>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                crate::front::map(self.backend(), f, items, chunksize)
            }

            /// Like [`map`](Self::map), calling `progress(done, total)` on
            /// this thread as chunks complete: `done` items of `total` have
            /// their results (or their error) in. It is called only when
            /// `done` grows, and last with `(total, total)` before `map`
            /// returns (not at all for no items). A panic in `progress`
            /// comes out of this call, as one in a loop body would.
            ///
            /// ```
            #[doc = concat!("use mp_pool::", stringify!($pool), ";")]
            ///
            /// fn square(x: u64) -> u64 { x * x }
            ///
            #[doc = concat!("let pool = ", stringify!($pool), "::new(2)?;")]
            /// let mut seen = Vec::new();
            /// let out = pool.map_with_progress(square, 0..10, Some(3), |done, total| {
            ///     seen.push((done, total));
            /// })?;
            /// assert_eq!(out, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
            /// assert_eq!(seen.last(), Some(&(10, 10)));
            /// # Ok::<(), mp_pool::Error>(())
            /// ```
            pub fn map_with_progress<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
                mut progress: impl FnMut(usize, usize),
            ) -> Result<Vec<R>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                crate::front::map_progress(self.backend(), f, items, chunksize, &mut progress)
            }

            /// Like [`map_async`](Self::map_async), calling
            /// `progress(done, total)` on the pool's callback thread as
            /// chunks complete (with growing `done` only); the last call,
            /// `(total, total)`, runs before the result is marked ready. A
            /// `progress` that panics breaks nothing.
            pub fn map_async_with_progress<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
                progress: impl FnMut(usize, usize) + Send + 'static,
            ) -> Result<AsyncResult<Vec<R>>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                crate::front::map_async_progress(
                    self.backend(),
                    f,
                    items,
                    chunksize,
                    Box::new(progress),
                )
            }

            /// Starts `f` over every item (Python's `map_async`).
            pub fn map_async<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<AsyncResult<Vec<R>>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                crate::front::map_async(self.backend(), f, items, chunksize, None)
            }

            /// Like [`map_async`](Self::map_async), with a `callback` given
            /// the whole result list and an `error_callback`.
            pub fn map_async_with<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
                callback: impl FnOnce(&Vec<R>) + Send + 'static,
                error_callback: impl FnOnce(&Error) + Send + 'static,
            ) -> Result<AsyncResult<Vec<R>>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                let done = crate::front::map_callbacks(callback, error_callback);
                crate::front::map_async(self.backend(), f, items, chunksize, Some(done))
            }

            /// `f` over every item, yielded in input order as results
            /// arrive (Python's `imap`; chunksize default 1). A failed item
            /// yields its error at its place, and iteration goes on.
            pub fn imap<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<ImapIter<R>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                crate::front::imap(self.backend(), f, items, chunksize, true)
            }

            /// `f` over every item, yielded in completion order (Python's
            /// `imap_unordered`).
            pub fn imap_unordered<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<ImapIter<R>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                crate::front::imap(self.backend(), f, items, chunksize, false)
            }

            /// Python's `starmap`: functions here take one argument, so
            /// several arguments are one tuple and `starmap` is
            /// [`map`](Self::map) over tuples.
            pub fn starmap<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<Vec<R>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                self.map(f, items, chunksize)
            }

            /// Python's `starmap_async`: [`map_async`](Self::map_async)
            /// over tuples.
            pub fn starmap_async<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<AsyncResult<Vec<R>>, Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
                I: IntoIterator<Item = A>,
            {
                self.map_async(f, items, chunksize)
            }
        }

        $crate::delegate_task_pool!($pool);
    };
}

pub(crate) use pool_api;

/// Implements [`TaskPool`] for a pool kind by calling its inherent methods
/// of the same names: for this crate's pools (through `pool_api!`) and for
/// pool kinds of other crates (mp-mpi's `MpiPool`), which need the same
/// signatures in their inherent `impl`.
#[doc(hidden)]
#[macro_export]
macro_rules! delegate_task_pool {
    ($pool:ty) => {
        impl $crate::TaskPool for $pool {
            fn apply<F, A, R>(&self, f: F, args: A) -> Result<R, $crate::Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                R: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
            {
                <$pool>::apply(self, f, args)
            }

            fn apply_async<F, A, R>(
                &self,
                f: F,
                args: A,
            ) -> Result<$crate::AsyncResult<R>, $crate::Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                R: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
            {
                <$pool>::apply_async(self, f, args)
            }

            fn map<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<Vec<R>, $crate::Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                R: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                I: IntoIterator<Item = A>,
            {
                <$pool>::map(self, f, items, chunksize)
            }

            fn map_async<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<$crate::AsyncResult<Vec<R>>, $crate::Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                R: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                I: IntoIterator<Item = A>,
            {
                <$pool>::map_async(self, f, items, chunksize)
            }

            fn imap<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<$crate::ImapIter<R>, $crate::Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                R: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                I: IntoIterator<Item = A>,
            {
                <$pool>::imap(self, f, items, chunksize)
            }

            fn imap_unordered<F, A, R, I>(
                &self,
                f: F,
                items: I,
                chunksize: Option<usize>,
            ) -> Result<$crate::ImapIter<R>, $crate::Error>
            where
                F: Fn(A) -> R + Copy + 'static,
                A: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                R: $crate::__private::serde::Serialize
                    + $crate::__private::serde::de::DeserializeOwned
                    + 'static,
                I: IntoIterator<Item = A>,
            {
                <$pool>::imap_unordered(self, f, items, chunksize)
            }

            fn close(&self) {
                <$pool>::close(self)
            }

            fn terminate(&self) {
                <$pool>::terminate(self)
            }

            fn join(&self) -> Result<(), $crate::Error> {
                <$pool>::join(self)
            }

            fn join_timeout(&self, timeout: ::std::time::Duration) -> Result<(), $crate::Error> {
                <$pool>::join_timeout(self, timeout)
            }
        }
    };
}
