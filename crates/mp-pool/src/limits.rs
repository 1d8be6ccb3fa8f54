//! Containing untrusted work: per-task time limits ([`Limits`]), what a
//! task sees of them ([`time_left`]), the restart limit and a worker's
//! resident set.
//!
//! The clock of a task starts when its worker picks it up (queue time does
//! not count), on the monotonic clock. A task with a limit is preceded on
//! the task stream by a `LIMITS` frame; the worker stores every task's start
//! in its block (`Block::set_task_start`, before `started`: a vDSO clock
//! read, which the worker stats use too) and keeps a limited task's
//! deadlines in a thread-local for [`time_left`]. A task without limits
//! costs nothing more: no frame, no thread-local. The supervisor compares
//! the stamp with the hard limit (`engine::watch`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::block::Block;
use crate::error::{Error, ErrorKind};

/// The time limits of a task: a hard limit, after which the worker running
/// it is stopped (SIGTERM, a grace, SIGKILL) and replaced and the task
/// fails with [`ErrorKind::TimeLimit`], and a soft limit before it, which
/// the task can watch with [`time_left`].
///
/// Set on a pool as a default ([`PoolBuilder::limits`](crate::PoolBuilder::limits))
/// or per call ([`Pool::apply_async_limited`](crate::Pool::apply_async_limited),
/// [`ProcessPoolExecutor::submit_limited`](crate::ProcessPoolExecutor::submit_limited));
/// a per-call field that is unset falls back to the pool's.
///
/// ```
/// use std::time::Duration;
/// use mp_pool::Limits;
///
/// let l = Limits::new()
///     .time_limit(Duration::from_secs(10))
///     .soft_time_limit(Duration::from_secs(8));
/// assert_eq!(l.hard(), Some(Duration::from_secs(10)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    hard: Option<Duration>,
    soft: Option<Duration>,
}

impl Limits {
    /// No limits.
    pub fn new() -> Limits {
        Limits::default()
    }

    /// The hard limit (billiard's `timeout`, pebble's `timeout`): a task
    /// still running this long after its worker picked it up fails with
    /// [`ErrorKind::TimeLimit`], and its worker is stopped and replaced.
    /// For `map`, `imap` and `starmap` the limit is per item; an item over
    /// it fails its whole chunk (see the crate docs).
    pub fn time_limit(mut self, hard: Duration) -> Limits {
        self.hard = Some(hard);
        self
    }

    /// The soft limit (billiard's `soft_timeout`): after it,
    /// [`time_left`] returns zero. Nothing is stopped at the soft limit; a
    /// task that returns after it (and before the hard limit) succeeds.
    pub fn soft_time_limit(mut self, soft: Duration) -> Limits {
        self.soft = Some(soft);
        self
    }

    /// The hard limit, if set.
    pub fn hard(&self) -> Option<Duration> {
        self.hard
    }

    /// The soft limit, if set.
    pub fn soft(&self) -> Option<Duration> {
        self.soft
    }

    /// Whether neither limit is set.
    pub fn is_empty(&self) -> bool {
        self.hard.is_none() && self.soft.is_none()
    }

    /// These limits, with the unset fields taken from `default`.
    pub(crate) fn or(self, default: Limits) -> Limits {
        Limits {
            hard: self.hard.or(default.hard),
            soft: self.soft.or(default.soft),
        }
    }

    /// Refuses a zero limit and a soft limit that is not below the hard one.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::new(ErrorKind::InvalidArgument, what));
        if self.hard == Some(Duration::ZERO) || self.soft == Some(Duration::ZERO) {
            return bad("a time limit must be greater than zero");
        }
        if let (Some(h), Some(s)) = (self.hard, self.soft) {
            if s >= h {
                return bad("the soft time limit must be below the hard one");
            }
        }
        Ok(())
    }

    /// The `LIMITS` frame's body: `[soft ns u64][hard ns u64]`, 0 for none.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for d in [self.soft, self.hard] {
            out.extend_from_slice(&d.map_or(0, |d| nanos(d).max(1)).to_le_bytes());
        }
    }

    /// The inverse of [`Limits::encode`]; `None` for a short body.
    pub(crate) fn decode(body: &[u8]) -> Option<Limits> {
        let word = |at: usize| {
            body.get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let d = |ns: u64| (ns != 0).then(|| Duration::from_nanos(ns));
        Some(Limits {
            soft: d(word(0)?),
            hard: d(word(8)?),
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The monotonic clock in nanoseconds, the same in every process of the
/// machine (`CLOCK_MONOTONIC`, read through the vDSO: no system call).
pub(crate) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// A monotonic clock at the kernel's tick (a few ms), never ahead of
/// [`monotonic_ns`], and cheaper to read: for `pump`'s alarm check, where
/// early is safe (at worst a needless wake-up).
pub(crate) fn coarse_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

thread_local! {
    /// The limits of the task this thread runs now, in a worker.
    static LIMITS: Cell<Option<Limits>> = const { Cell::new(None) };
    /// When it (or its current item) started, on [`monotonic_ns`].
    static START: Cell<u64> = const { Cell::new(0) };
    /// The worker's block, set once as it starts serving.
    static BLOCK: RefCell<Option<Block>> = const { RefCell::new(None) };
}

/// The time the current task has left before its soft limit (or, without
/// one, its hard limit): zero once the limit has passed, `None` outside a
/// task with a time limit (in the parent, in a thread pool, in a task
/// without limits).
///
/// A task that can stop early polls it, as a task under billiard catches
/// `SoftTimeLimitExceeded`:
///
/// ```no_run
/// fn crunch(n: u64) -> Option<u64> {
///     let mut acc = 0u64;
///     for i in 0..n {
///         if mp_pool::time_left() == Some(std::time::Duration::ZERO) {
///             return None; // out of time: give up cleanly, before the hard limit
///         }
///         acc = acc.wrapping_add(i);
///     }
///     Some(acc)
/// }
/// ```
///
/// In a `map` with limits the clock restarts at every item. A call reads
/// the clock (vDSO, no system call).
pub fn time_left() -> Option<Duration> {
    let limits = LIMITS.get()?;
    Some(limits.soft.or(limits.hard)?.saturating_sub(elapsed()))
}

/// The time the current task has left before its hard limit, when it is
/// stopped; `None` outside a task with a hard limit.
pub fn hard_time_left() -> Option<Duration> {
    Some(LIMITS.get()?.hard?.saturating_sub(elapsed()))
}

/// Whether the current task is past its soft limit (false without one).
pub fn soft_limit_passed() -> bool {
    LIMITS
        .get()
        .and_then(|l| l.soft)
        .is_some_and(|s| elapsed() >= s)
}

fn elapsed() -> Duration {
    Duration::from_nanos(monotonic_ns().saturating_sub(START.get()))
}

/// The worker, before its first task: the block that [`item_started`]
/// restamps.
pub(crate) fn install(block: &Block) {
    BLOCK.with(|b| *b.borrow_mut() = Some(block.clone()));
}

/// The worker starts a task with `limits`, which it stamped at `start`
/// (ns): sets the thread-local for [`time_left`]. The guard clears it when
/// the task returns.
pub(crate) fn begin(limits: Limits, start: u64) -> TaskGuard {
    LIMITS.set(Some(limits));
    START.set(start);
    TaskGuard(())
}

/// Clears the task's limits when dropped.
pub(crate) struct TaskGuard(());

impl Drop for TaskGuard {
    fn drop(&mut self) {
        LIMITS.set(None);
    }
}

/// The next item of a chunk starts: its clock restarts (the limits of a
/// `map` are per item). Called only by the chunk function of a pool with
/// limits, so unlimited chunks pay nothing.
pub(crate) fn item_started() {
    if LIMITS.get().is_none() {
        return;
    }
    let now = monotonic_ns();
    START.set(now);
    BLOCK.with(|b| {
        if let Some(b) = b.borrow().as_ref() {
            b.set_task_start(now);
        }
    });
}

/// A process's resident set in bytes, from `/proc/<pid>/statm` (a counter
/// the kernel keeps: about 10 us per read whatever the size).
pub(crate) fn rss_of(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/statm"),
        None => "/proc/self/statm".to_owned(),
    };
    let statm = std::fs::read_to_string(path).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size() as u64))
}

/// The restart limit: when workers die faster than it allows, the pool
/// stops replacing them and fails its work with
/// [`ErrorKind::RestartLimit`] instead of forking without end.
///
/// Two rules. Consecutive workers that die before they start a task (a
/// crashing initializer, a library that aborts as it loads) are counted
/// always: more than [`STARTUP_DEATHS`] in a row break the pool. And with
/// `max_restarts(n, window)`, more than `n` abnormal deaths within any
/// `window` do. Deaths the pool caused (a time or memory limit) and clean
/// exits (`maxtasksperchild`, `max_memory_per_child`) are not counted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Restarts {
    /// `max_restarts(n, window)`, if set.
    pub(crate) rate: Option<(u32, Duration)>,
    startup: u32,
    deaths: VecDeque<Instant>,
}

/// Consecutive workers that may die before starting a task (see
/// [`Restarts`]).
pub(crate) const STARTUP_DEATHS: u32 = 5;

impl Restarts {
    pub(crate) fn new(rate: Option<(u32, Duration)>) -> Restarts {
        Restarts {
            rate,
            ..Restarts::default()
        }
    }

    /// A worker died abnormally, having started `started` tasks: the error
    /// that breaks the pool if this death is one too many.
    pub(crate) fn note_death(&mut self, started: u64) -> Option<Error> {
        if started == 0 {
            self.startup += 1;
        } else {
            self.startup = 0;
        }
        if self.startup > STARTUP_DEATHS {
            return Some(Error::new(
                ErrorKind::RestartLimit,
                format!(
                    "{} workers in a row died before they started a task (a crashing initializer?): the pool stopped replacing them",
                    self.startup
                ),
            ));
        }
        let (n, window) = self.rate?;
        let now = Instant::now();
        self.deaths.push_back(now);
        while self
            .deaths
            .front()
            .is_some_and(|&t| now.duration_since(t) > window)
        {
            self.deaths.pop_front();
        }
        (self.deaths.len() > n as usize).then(|| {
            Error::new(
                ErrorKind::RestartLimit,
                format!(
                    "{} workers died within {window:?}, more than max_restarts allows ({n}): the pool stopped replacing them",
                    self.deaths.len()
                ),
            )
        })
    }
}

/// How long a worker stopped for a time limit has between SIGTERM and
/// SIGKILL, unless set (billiard's: a task that catches SIGTERM gets this
/// long to clean up; a Rust task that does not dies at once).
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_millis(100);

/// A pool's limits, as its builder set them.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolLimits {
    /// The default time limits of its tasks.
    pub(crate) task: Limits,
    /// SIGTERM to SIGKILL (default [`DEFAULT_GRACE`]).
    pub(crate) grace: Option<Duration>,
    /// `max_restarts(n, window)`.
    pub(crate) max_restarts: Option<(u32, Duration)>,
    /// Recycle a worker whose resident set is above this after a task.
    pub(crate) max_memory_per_child: Option<u64>,
    /// Cap each worker's memory (RLIMIT_DATA).
    pub(crate) memory_limit: Option<u64>,
}

impl PoolLimits {
    /// Refuses zero limits.
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.task.check()?;
        let bad = |what: &str| Err(Error::new(ErrorKind::InvalidArgument, what));
        if self.max_restarts.is_some_and(|(_, w)| w.is_zero()) {
            return bad("the window of max_restarts must be greater than zero");
        }
        if self.max_memory_per_child == Some(0) || self.memory_limit == Some(0) {
            return bad("a memory limit must be greater than zero");
        }
        Ok(())
    }

    pub(crate) fn grace(&self) -> Duration {
        self.grace.unwrap_or(DEFAULT_GRACE)
    }

    /// What a worker is told about memory.
    pub(crate) fn worker_memory(&self) -> WorkerMemory {
        WorkerMemory {
            recycle_above: self.max_memory_per_child,
        }
    }
}

/// A worker's memory settings, sent with its arguments (the cap,
/// `memory_limit`, is the worker process's own: `Process::memory_limit`).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct WorkerMemory {
    /// `max_memory_per_child`: after a task, exit (cleanly) if the
    /// resident set is above this.
    pub(crate) recycle_above: Option<u64>,
}

impl WorkerMemory {
    /// After a task: whether the worker may go on (its resident set is
    /// not above `max_memory_per_child`). One read of `/proc/self/statm`,
    /// only when the limit is set.
    pub(crate) fn keep(&self) -> bool {
        self.recycle_above
            .is_none_or(|max| rss_of(None).is_none_or(|rss| rss <= max))
    }
}
