//! `Pool`: Python's `multiprocessing.Pool`, on worker processes that never
//! leave a result hanging.

use std::fmt;
use std::sync::Weak;
use std::time::{Duration, Instant};

use mp_process::StartMethod;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Config, Engine, FuncKey, Init, Job};
use crate::error::{Error, ErrorKind};
use crate::front::{Backend, pool_api};
use crate::limits::{Limits, PoolLimits};
use crate::result::{Assist, AsyncResult, Callbacks, ImapIter};

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// ```
/// use mp_pool::Pool;
///
/// fn task(n: u64) -> u64 { (0..n).sum() }
///
/// let pool = Pool::new(2)?;
/// let r = pool.apply_async(task, 10_000)?;
/// assert_eq!(pool.map(task, [10, 20], None)?, [45, 190]);
/// pool.close();
/// pool.join()?;
/// assert_eq!(r.get()?, 49_995_000);
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// Workers are started with [`Process`](mp_process::Process), as daemons:
/// they die with the parent. A worker that dies fails only the task it was
/// running ([`ErrorKind::WorkerLost`], with its exit code or signal), and is
/// replaced. Dropping the pool terminates it, like leaving Python's `with`
/// block.
pub struct Pool {
    engine: Engine,
}

/// Sets up a [`Pool`]: processes, initializer, `maxtasksperchild`, start
/// method.
pub struct PoolBuilder {
    processes: Option<usize>,
    init: Option<Result<Init, Error>>,
    max_tasks: Option<u64>,
    method: Option<StartMethod>,
    limits: PoolLimits,
}

impl PoolBuilder {
    /// The number of worker processes (default: [`mp_process::cpu_count`]).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(args)` in each worker before its first task. If it fails
    /// (panics), the failure is reported once: the pool stops starting
    /// workers and every pending and later task fails with an
    /// [`ErrorKind::Initializer`] error (CPython respawns forever instead,
    /// gh-87472). `args` may hold queues, pipes, shared memory and locks:
    /// each worker gets its own handles on them.
    pub fn initializer<F, A, R>(mut self, f: F, args: A) -> Self
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.init = Some(
            crate::front::raw_of(f)
                .map_err(Error::from)
                .and_then(|func| {
                    let (args, fds) =
                        crate::front::encode_task::<A>(|| Ok(mp_process::encode(&args)?))?;
                    Ok(Init {
                        func,
                        args,
                        fds: std::sync::Arc::new(fds),
                    })
                }),
        );
        self
    }

    /// Replaces each worker after it has run `n` tasks (a chunk is one
    /// task), as Python's `maxtasksperchild`. Zero is an error.
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.max_tasks = Some(n);
        self
    }

    /// The start method of the workers (default:
    /// [`mp_process::get_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The default time limits of every task ([`Limits`]; a per-call
    /// field left unset falls back to these). A task still running its
    /// hard limit after its worker picked it up fails with
    /// [`ErrorKind::TimeLimit`]; its worker is stopped (SIGTERM, the
    /// [grace](Self::kill_grace), SIGKILL) and replaced, and no other task
    /// is affected. For `map`, `imap` and `starmap` the limits are per
    /// item: an item over the hard limit fails its whole chunk, as a
    /// worker's death does (each of the chunk's items reports the error),
    /// so use `chunksize` 1 for one error per item.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_pool::{ErrorKind, Limits, Pool};
    ///
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    ///
    /// let pool = Pool::builder()
    ///     .processes(1)
    ///     .limits(Limits::new().time_limit(Duration::from_millis(100)))
    ///     .build()?;
    /// let err = pool.apply(spin, ()).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimeLimit);
    /// assert_eq!(err.time_limit(), Some(Duration::from_millis(100)));
    /// assert_eq!(pool.apply(|x: u8| x + 1, 1)?, 2); // a new worker took over
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits.task = limits;
        self
    }

    /// How long a worker stopped for a time limit has between SIGTERM and
    /// SIGKILL (default 100 ms): a task that catches SIGTERM can clean up
    /// in it. A Rust task that does not dies at SIGTERM.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.limits.grace = Some(grace);
        self
    }

    /// The restart limit: when more than `n` workers die abnormally within
    /// `window` (crashes, kills; not a clean exit, not a stop for a time
    /// or memory limit), the pool stops replacing them and every pending
    /// and later task fails with [`ErrorKind::RestartLimit`]. Without it,
    /// the pool still stops after 6 workers in a row that died before
    /// starting a task (a crashing initializer).
    pub fn max_restarts(mut self, n: u32, window: Duration) -> Self {
        self.limits.max_restarts = Some((n, window));
        self
    }

    /// After each task, a worker whose resident set is above `bytes`
    /// exits (cleanly, as after `maxtasksperchild`) and is replaced
    /// (billiard's `max_memory_per_child`, in bytes). The task that
    /// crossed the line succeeds. One read of `/proc/self/statm` per task.
    pub fn max_memory_per_child(mut self, bytes: u64) -> Self {
        self.limits.max_memory_per_child = Some(bytes);
        self
    }

    /// Caps each worker's memory at `bytes`: RLIMIT_DATA (the heap and
    /// private writable mappings; see
    /// [`Process::memory_limit`](mp_process::Process::memory_limit)), set
    /// in the worker as it starts. A task whose allocation fails past it
    /// fails with [`ErrorKind::MemoryLimit`]; its worker is replaced and
    /// the pool goes on (an executor does not break). Under fork the count
    /// includes the heap the worker inherited from this process. (A cgroup
    /// v2 `memory.max` per worker, which would count the page cache and
    /// kill instead, is not used: it needs a delegated cgroup.)
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory_limit = Some(bytes);
        self
    }

    /// The engine's settings; `executor`: CPython's executor semantics (a
    /// dead worker breaks it, workers start on demand).
    pub(crate) fn config(self, executor: bool) -> Result<Config, Error> {
        Ok(Config {
            processes: self.processes.unwrap_or_else(mp_process::cpu_count),
            init: self.init.transpose()?,
            max_tasks: self.max_tasks,
            method: self.method,
            break_on_death: executor,
            on_demand: executor,
            limits: self.limits,
        })
    }

    /// Starts the workers. If one fails to start, those already started are
    /// killed and the error is returned.
    pub fn build(self) -> Result<Pool, Error> {
        Ok(Pool {
            engine: Engine::start(self.config(false)?)?,
        })
    }
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.init.is_some())
            .field("maxtasksperchild", &self.max_tasks)
            .field("start_method", &self.method)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Backend for Engine {
    fn submit(&self, func: FuncKey<'_>, jobs: Vec<Job>) -> Result<(), Error> {
        Engine::submit(self, func, jobs)
    }

    fn callbacks(&self) -> Weak<Callbacks> {
        Engine::callbacks(self)
    }

    fn processes(&self) -> usize {
        Engine::processes(self)
    }

    fn assist(&self) -> Option<Weak<dyn Assist>> {
        Some(Engine::assist(self))
    }

    fn default_limits(&self) -> Limits {
        Engine::default_limits(self)
    }
}

impl Pool {
    /// A pool of `processes` workers (zero is an
    /// [`ErrorKind::InvalidArgument`] error).
    pub fn new(processes: usize) -> Result<Pool, Error> {
        Pool::builder().processes(processes).build()
    }

    /// A pool of one worker per CPU ([`mp_process::cpu_count`]), as
    /// Python's `Pool()`.
    ///
    /// ```
    /// let pool = mp_pool::Pool::with_cpus()?;
    /// assert_eq!(pool.processes(), mp_process::cpu_count());
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn with_cpus() -> Result<Pool, Error> {
        Pool::builder().build()
    }

    /// A builder, for the initializer, `maxtasksperchild` and start method.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            init: None,
            max_tasks: None,
            method: None,
            limits: PoolLimits::default(),
        }
    }

    fn backend(&self) -> &Engine {
        &self.engine
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.engine.processes()
    }

    /// Each running worker's pid, tasks done, resident set and the running
    /// time of its current task, read now (from the workers' shared blocks
    /// and `/proc`; about 10 us per worker). A worker still starting up
    /// (before it stored its pid) is left out.
    ///
    /// ```
    /// let pool = mp_pool::Pool::new(2)?;
    /// pool.apply(|x: u8| x, 1)?;
    /// let stats = pool.worker_stats();
    /// assert!(stats.iter().any(|w| w.tasks_done == 1 && w.current_task.is_none()));
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn worker_stats(&self) -> Vec<crate::WorkerStats> {
        self.engine.worker_stats()
    }

    /// Starts `f(args)` with time limits for this task (the fields left
    /// unset fall back to the pool's, see [`PoolBuilder::limits`]): past
    /// the hard limit it fails with [`ErrorKind::TimeLimit`] and its
    /// worker is replaced.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_pool::{ErrorKind, Limits, Pool};
    ///
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// let pool = Pool::new(1)?;
    /// let limits = Limits::new().time_limit(Duration::from_millis(50));
    /// let r = pool.apply_async_limited(nap, 10_000, limits)?;
    /// assert_eq!(r.get().unwrap_err().kind(), ErrorKind::TimeLimit);
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn apply_async_limited<F, A, R>(
        &self,
        f: F,
        args: A,
        limits: Limits,
    ) -> Result<AsyncResult<R>, Error>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        crate::front::apply_async_limited(self.backend(), f, args, None, limits)
    }

    /// Takes no more work (later calls fail with
    /// [`ErrorKind::NotRunning`]); the workers exit once the queued work is
    /// done. Results already submitted stay retrievable.
    pub fn close(&self) {
        self.engine.close();
    }

    /// Kills the workers at once. Every unfinished result fails with
    /// [`ErrorKind::Terminated`] (CPython leaves them pending forever).
    /// Returns once the workers are reaped.
    pub fn terminate(&self) {
        self.engine.terminate();
    }

    /// Waits for the workers to exit and the callbacks to run, after
    /// [`close`](Pool::close) or [`terminate`](Pool::terminate); before
    /// either it is an [`ErrorKind::StillRunning`] error.
    pub fn join(&self) -> Result<(), Error> {
        self.engine.join(None).map(|_| ())
    }

    /// Like [`join`](Pool::join), giving up after `timeout` with an
    /// [`ErrorKind::Timeout`] error.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Error> {
        match self.engine.join(Some(Instant::now() + timeout))? {
            true => Ok(()),
            false => Err(Error::new(
                ErrorKind::Timeout,
                "timed out waiting for the workers to exit",
            )),
        }
    }
}

pool_api!(Pool);

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("running", &self.engine.is_running())
            .finish()
    }
}
