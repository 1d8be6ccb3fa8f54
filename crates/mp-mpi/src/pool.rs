//! `MpiPool`: the pool API, over the worker ranks.

use std::any::TypeId;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mp_pool::remote::{self, Completion, Packed};
use mp_pool::{AsyncResult, ErrorKind, ImapIter};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Engine, PoolShared, Task, lock};
use crate::{Error, World};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Running,
    Closed,
    Terminated,
}

/// A pool whose workers are the other ranks of the MPI job: the API of
/// `mp_pool::Pool` (and its [`TaskPool`](mp_pool::TaskPool) trait), on one machine or many.
///
/// Made on rank 0 from the [`World`] that [`init`](crate::init) returned;
/// its workers are ranks 1 to N. Several pools may share the workers, one
/// after another or at once. Dropping a pool terminates it, as `Pool` does.
///
/// - A task that panics fails its own result
///   ([`ErrorKind::Panicked`](mp_pool::ErrorKind::Panicked), with the
///   message and location); the worker goes on.
/// - A rank that dies ends the whole job (see the [crate
///   docs](crate#failure)).
pub struct MpiPool {
    engine: Arc<Engine>,
    shared: Arc<PoolShared>,
    status: Mutex<Status>,
}

impl std::fmt::Debug for MpiPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiPool")
            .field("processes", &self.engine.workers())
            .field("status", &*lock(&self.status))
            .finish()
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
    Ok(mp_process::encode(v)?)
}

/// `f` over a chunk: one task per chunk. It captures only `f`, which is
/// zero-sized, so it is itself a function that a worker can call by name.
/// The results are [`Packed`], as mp-pool's workers return them, which is
/// what its completions take.
fn chunked<F, A, R>(f: F) -> impl Fn(Vec<A>) -> Packed<R> + Copy + 'static
where
    F: Fn(A) -> R + Copy + 'static,
    A: 'static,
    R: 'static,
{
    move |items: Vec<A>| Packed(items.into_iter().map(f).collect())
}

fn type_id_of<C: 'static>(_: &C) -> TypeId {
    TypeId::of::<C>()
}

fn check_chunksize(c: Option<usize>) -> Result<Option<usize>, Error> {
    match c {
        Some(0) => Err(crate::error(
            ErrorKind::InvalidArgument,
            "chunksize must be at least 1",
        )),
        c => Ok(c),
    }
}

impl MpiPool {
    /// A pool over every worker rank (`size - 1` of them). Fails with
    /// [`ErrorKind::InvalidArgument`](mp_pool::ErrorKind::InvalidArgument)
    /// when the job has no worker ranks (run under `mpirun -n 2` or more).
    pub fn new(world: &World) -> Result<MpiPool, Error> {
        let engine = world.engine()?;
        if engine.workers() == 0 {
            return Err(crate::error(
                ErrorKind::InvalidArgument,
                "the mpi job has no worker ranks: run it under `mpirun -n 2` or more",
            ));
        }
        Ok(MpiPool {
            engine,
            shared: Arc::new(PoolShared {
                id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                ..PoolShared::default()
            }),
            status: Mutex::new(Status::Running),
        })
    }

    /// The number of workers (ranks 1 to N).
    pub fn processes(&self) -> usize {
        self.engine.workers()
    }

    /// Queues calls of `f`: one task per encoded argument.
    fn enqueue<F, A, R>(
        &self,
        id: TypeId,
        f: F,
        tasks: Vec<(Vec<u8>, Completion)>,
    ) -> Result<(), Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        if *lock(&self.status) != Status::Running {
            return Err(crate::error(ErrorKind::NotRunning, "pool not running"));
        }
        let fid = self.engine.function(id, || crate::func::token(f))?;
        *lock(&self.shared.pending) += tasks.len();
        let tasks = tasks
            .into_iter()
            .map(|(args, done)| Task {
                fid,
                args,
                done: Some(done),
                pool: self.shared.clone(),
            })
            .collect();
        self.engine.submit(tasks);
        Ok(())
    }

    /// Runs `f(args)` on a worker and waits for its result (Python's
    /// `apply`).
    pub fn apply<F, A, R>(&self, f: F, args: A) -> Result<R, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// Starts `f(args)` on a worker (Python's `apply_async`).
    pub fn apply_async<F, A, R>(&self, f: F, args: A) -> Result<AsyncResult<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let args = encode(&args)?;
        let (done, result) = remote::async_result::<R>();
        self.enqueue(TypeId::of::<F>(), f, vec![(args, done)])?;
        Ok(result)
    }

    /// The executor's `submit` (`MPIPoolExecutor.submit`): the same as
    /// [`apply_async`](Self::apply_async); the [`AsyncResult`] is the
    /// future.
    pub fn submit<F, A, R>(&self, f: F, args: A) -> Result<AsyncResult<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.apply_async(f, args)
    }

    /// Queues `items` in chunks of `chunksize`, one task per chunk.
    fn chunks<F, A, R>(
        &self,
        f: F,
        items: &[A],
        chunksize: usize,
        done: Vec<Completion>,
    ) -> Result<(), Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let c = chunked(f);
        // The first chunk per worker goes out at once, each on its own, so
        // that the workers start while the rest are encoded; the rest go
        // together. Chunks are alike: each is about as large as the one
        // before, which sizes its buffer (postcard's `to_extend` into a
        // sized vector: several times faster than `mp_process::encode` on
        // many small items).
        let mut tasks = Vec::new();
        let mut last_len = 0;
        let first = self.processes();
        for (index, (chunk, done)) in items.chunks(chunksize).zip(done).enumerate() {
            let args = postcard::to_extend(chunk, Vec::with_capacity(last_len + last_len / 8))
                .map_err(|e| {
                    let e = mp_process::codec::encode_failed(chunk, e);
                    crate::error(
                        ErrorKind::Serialization,
                        format!("cannot encode the items: {e}"),
                    )
                })?;
            last_len = args.len();
            tasks.push((args, done));
            if index < first {
                self.enqueue(type_id_of(&c), c, std::mem::take(&mut tasks))?;
            }
        }
        if tasks.is_empty() {
            return Ok(());
        }
        self.enqueue(type_id_of(&c), c, tasks)
    }

    /// Starts `f` over every item (Python's `map_async`); chunks as in
    /// [`map`](Self::map).
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
        let chunksize = check_chunksize(chunksize)?;
        let items: Vec<A> = items.into_iter().collect();
        let cs = chunksize.unwrap_or_else(|| items.len().div_ceil(4 * self.processes()).max(1));
        let (done, result) = remote::map_result::<R>(items.len().div_ceil(cs));
        self.chunks(f, &items, cs, done)?;
        Ok(result)
    }

    /// `f` over every item, results in input order (Python's `map`). The
    /// items go in chunks of `chunksize` (default `ceil(len / (4 *
    /// processes))`; zero is an error), each chunk one task. On failure,
    /// the error of the first failed chunk.
    pub fn map<F, A, R, I>(&self, f: F, items: I, chunksize: Option<usize>) -> Result<Vec<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_async(f, items, chunksize)?.get()
    }

    fn imap_any<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        ordered: bool,
    ) -> Result<ImapIter<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        let cs = check_chunksize(chunksize)?.unwrap_or(1);
        let items: Vec<A> = items.into_iter().collect();
        let (done, iter) = remote::imap_iter::<R>(ordered, cs, items.len());
        self.chunks(f, &items, cs, done)?;
        Ok(iter)
    }

    /// `f` over every item, yielded in input order as results arrive
    /// (Python's `imap`; chunksize default 1).
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
        self.imap_any(f, items, chunksize, true)
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
        self.imap_any(f, items, chunksize, false)
    }

    /// Python's `starmap`: several arguments are one tuple, so this is
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

    /// Python's `starmap_async`: [`map_async`](Self::map_async) over
    /// tuples.
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

    /// Takes no more work; `join` then waits for the queued work.
    pub fn close(&self) {
        let mut st = lock(&self.status);
        if *st == Status::Running {
            *st = Status::Closed;
        }
    }

    /// Fails every unfinished task of this pool with
    /// [`ErrorKind::Terminated`](mp_pool::ErrorKind::Terminated) at once.
    /// A task a worker has started runs to its end (MPI cannot stop one
    /// rank's work without ending the job); its result is dropped.
    pub fn terminate(&self) {
        *lock(&self.status) = Status::Terminated;
        self.engine.terminate(self.shared.id);
    }

    /// Waits until every task of this pool has completed, after `close`
    /// or `terminate` ([`ErrorKind::StillRunning`](mp_pool::ErrorKind::StillRunning)
    /// before).
    pub fn join(&self) -> Result<(), Error> {
        self.join_until(None)
    }

    /// Like [`join`](Self::join), giving up after `timeout` with an
    /// [`ErrorKind::Timeout`](mp_pool::ErrorKind::Timeout) error.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.join_until(Some(Instant::now() + timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<(), Error> {
        if *lock(&self.status) == Status::Running {
            return Err(crate::error(
                ErrorKind::StillRunning,
                "join called on a running pool: close or terminate it first",
            ));
        }
        let mut pending = lock(&self.shared.pending);
        while *pending > 0 {
            pending = match deadline {
                None => self
                    .shared
                    .cv
                    .wait(pending)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(crate::error(
                            ErrorKind::Timeout,
                            "timed out waiting for the pool's tasks",
                        ));
                    }
                    self.shared
                        .cv
                        .wait_timeout(pending, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        Ok(())
    }
}

impl Drop for MpiPool {
    fn drop(&mut self) {
        self.terminate();
    }
}

mp_pool::delegate_task_pool!(MpiPool);
