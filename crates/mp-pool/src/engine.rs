//! The process pool's engine: the task queue, the workers and the threads
//! that drive them. `Pool` and `ProcessPoolExecutor` are thin fronts on it.
//!
//! Threads (per pool): a supervisor that owns the worker processes (starts,
//! reaps, replaces and kills them, and checks every 200 ms that they are
//! alive); per worker a writer, which writes the frames that the worker's
//! non-blocking task socket did not take at once (see `Outbox`), and a
//! reader, which reads result batches and hands them to their sinks; and
//! the callback thread (see `result`). All share one `State` behind a
//! mutex; whoever changes it (a submitter, a reader, the supervisor) also
//! moves queued tasks to workers with room (`pump`).
//!
//! A task whose argument holds descriptors (a queue, a pipe, shared memory,
//! a lock: their `SharedFd`s) keeps them until it completes. `pump` sends
//! them on the worker's descriptor socket (`mp_process::send_fds`, one
//! message per task, without blocking) before the task's frame goes to
//! the outbox; the worker takes one message per `TASK_FDS` frame, in the
//! same order. A task requeued after its worker died sends them again to
//! the next.

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mp_process::{Process, RawFunction, SharedFd, StartMethod};

use crate::block::{Block, Port, PortInner};
use crate::error::{Error, ErrorKind, WireError};
use crate::limits::{Limits, PoolLimits};
use crate::result::{Assist, Blob, CallbackThread, Callbacks, Sink, lock};
use crate::wire;
use crate::worker::{WorkerArgs, worker_main};

mod stats;
mod watch;

pub use stats::WorkerStats;

/// A worker may have this many bytes of unstarted arguments queued.
const BYTE_BUDGET: usize = 1 << 20;
/// Run-ahead per worker: enough queued tasks to cover about this much of
/// the worker's time, so that it never idles on the round trip.
const RUN_AHEAD_NS: f64 = 2_000_000.0;
const MAX_RUN_AHEAD: usize = 512;
/// How often the supervisor checks that workers are alive (a worker's
/// socket may stay open in another process forked meanwhile, hiding its
/// death from the reader).
const SWEEP: Duration = Duration::from_millis(200);
/// A caller waiting for a result polls the workers' rings this long
/// before it sleeps (see `Shared::assist`).
const ASSIST: Duration = Duration::from_micros(100);

/// How the pool is set up.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) init: Option<Init>,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) method: Option<StartMethod>,
    /// Executor semantics: a dead worker breaks the pool.
    pub(crate) break_on_death: bool,
    /// Workers start when there is work for them and none is idle, up to
    /// `processes` (the executor, as CPython's since 3.9); otherwise all
    /// start with the pool (`Pool`, as CPython's).
    pub(crate) on_demand: bool,
    /// Time and memory limits, the restart limit (see `limits`).
    pub(crate) limits: PoolLimits,
}

impl Config {
    /// Refuses zero processes and zero tasks per child, naming the
    /// settings as the caller's API does (`processes` and
    /// `maxtasksperchild` for `Pool`, `max_workers` and
    /// `max_tasks_per_child` for the executor), and for the executor, as
    /// CPython's, tasks per child under the fork method: a replacement
    /// worker would be forked from a process whose pool threads may hold
    /// locks.
    fn check(&self) -> Result<(), Error> {
        let executor = self.break_on_death;
        let (processes, max_tasks) = if executor {
            ("max_workers", "max_tasks_per_child")
        } else {
            ("the number of processes", "maxtasksperchild")
        };
        let bad = |what: String| Err(Error::new(ErrorKind::InvalidArgument, what));
        if self.processes == 0 {
            return bad(format!("{processes} must be greater than 0"));
        }
        if self.max_tasks == Some(0) {
            return bad(format!("{max_tasks} must be at least 1"));
        }
        let method = self.method.unwrap_or_else(mp_process::get_start_method);
        self.limits.check()?;
        if executor && self.max_tasks.is_some() && method == StartMethod::Fork {
            return bad(
                "max_tasks_per_child is incompatible with the fork start method; use spawn or forkserver"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The initializer: its function, its encoded argument and the
/// descriptors of the `SharedFd`s in it, which each worker gets a copy of.
#[derive(Clone)]
pub(crate) struct Init {
    pub(crate) func: RawFunction,
    pub(crate) args: Vec<u8>,
    pub(crate) fds: Arc<Vec<OwnedFd>>,
}

/// A function reference: its type's id, and how to name it the first time.
pub(crate) struct FuncKey<'a> {
    pub(crate) id: TypeId,
    pub(crate) make: &'a dyn Fn() -> Result<RawFunction, mp_process::Error>,
}

/// One task to submit: encoded argument, and where its outcome goes.
pub(crate) struct Job {
    pub(crate) args: Vec<u8>,
    /// The descriptors of the `SharedFd`s in `args`, by index.
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) index: usize,
    /// Per-call time limits; unset fields fall back to the pool's.
    pub(crate) limits: Limits,
}

struct Task {
    fid: u32,
    args: Vec<u8>,
    fds: Vec<OwnedFd>,
    sink: Arc<dyn Sink>,
    index: usize,
    limits: Limits,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Running,
    Closed,
    Terminated,
}

struct State {
    status: Status,
    /// Set when the pool can no longer run tasks (a failed initializer, a
    /// broken executor, workers that cannot start): every task fails so.
    broken: Option<Error>,
    queue: VecDeque<Task>,
    workers: Vec<Slot>,
    /// Tasks submitted and not yet complete (queued or outstanding).
    pending: usize,
    funcs: Vec<RawFunction>,
    by_type: HashMap<TypeId, u32>,
    /// The supervisor has ended: every worker is gone.
    finished: bool,
}

#[derive(Default)]
struct Slot {
    generation: u64,
    outbox: Option<Arc<Outbox>>,
    /// The worker's result ring.
    port: Option<Arc<Port>>,
    /// Tasks sent to the worker, oldest first; the first is the one it runs.
    outstanding: VecDeque<Task>,
    /// Results the worker has given (its tasks that left `outstanding`).
    completed: u64,
    out_bytes: usize,
    known: Vec<bool>,
    avg_ns: Option<f64>,
    assigned: u64,
    accepting: bool,
    /// The supervisor was asked to start a worker here (on demand).
    spawning: bool,
}

impl Slot {
    /// No worker here, and none on its way.
    fn vacant(&self) -> bool {
        !self.accepting && self.outbox.is_none() && !self.spawning
    }

    fn cap(&self) -> usize {
        match self.avg_ns {
            None => 2,
            Some(a) => ((RUN_AHEAD_NS / a.max(1.0)) as usize).clamp(2, MAX_RUN_AHEAD),
        }
    }

    fn can_take(&self, size: usize, max_tasks: Option<u64>) -> bool {
        self.accepting
            && self.outstanding.len() < self.cap()
            && (self.outstanding.is_empty() || self.out_bytes + size <= BYTE_BUDGET)
            && max_tasks.is_none_or(|m| self.assigned < m)
    }
}

/// A queued batch this large is written by whoever queues it (see
/// [`Outbox`]).
const DIRECT_WRITE: usize = 8 * 1024;

/// A worker's queue of bytes to write.
///
/// Whoever queues [`DIRECT_WRITE`] bytes or more writes them at once, as
/// far as the (non-blocking) socket takes them; the rest, and smaller
/// batches, go to the worker's writer thread. Handing every batch to the
/// writer cost a thread wake-up per batch (each a cross-CPU interrupt on a
/// VM) and delayed the workers' start, at `map(f, 0..100_000)`; small
/// batches still go through the writer, which gathers those that come
/// while it writes into one write (10,000 `apply_async`: a write per task
/// from the submitting thread was slower).
struct Outbox {
    state: Mutex<OutboxState>,
    cv: Condvar,
    /// The parent's end of the task stream (non-blocking).
    sock: UnixStream,
    /// The parent's end of the descriptor socket (non-blocking).
    fd_sock: UnixStream,
    /// The worker's block, whose `sent` count each write bumps.
    block: Block,
}

#[derive(Default)]
struct OutboxState {
    /// Bytes not yet written: empty unless `busy`.
    buf: Vec<u8>,
    /// The writer thread owns the socket (it writes `buf`).
    busy: bool,
    /// The writer thread is writing a batch it took from `buf`: nobody
    /// else may write before it is done.
    writing: bool,
    closed: bool,
    waiting: bool,
}

impl Outbox {
    /// Queues what `f` appends; `direct`: write it from this thread even if
    /// it is short (see `Shared::waited`).
    fn push(&self, direct: bool, f: impl FnOnce(&mut Vec<u8>)) {
        let mut st = lock(&self.state);
        if st.closed {
            return;
        }
        f(&mut st.buf);
        if !st.busy {
            if direct || st.buf.len() >= DIRECT_WRITE {
                match write_some(&self.sock, &st.buf, &self.block) {
                    Ok(n) if n == st.buf.len() => {
                        st.buf.clear();
                        return;
                    }
                    Ok(n) => {
                        st.buf.drain(..n);
                    }
                    // The worker is gone; the reader sees it too.
                    Err(_) => {
                        st.closed = true;
                        st.buf.clear();
                        drop(st);
                        // The writer thread ends when closed and idle.
                        self.cv.notify_one();
                        return;
                    }
                }
            }
            st.busy = true;
        }
        let wake = st.waiting;
        drop(st);
        if wake {
            self.cv.notify_one();
        }
    }

    /// Writes what is queued from this thread, as far as the socket takes
    /// it, unless the writer thread is writing: a caller about to wait for
    /// a result does not wait for the writer to wake up first.
    fn flush_here(&self) {
        let mut st = lock(&self.state);
        if st.closed || st.writing || st.buf.is_empty() {
            return;
        }
        match write_some(&self.sock, &st.buf, &self.block) {
            Ok(n) => {
                st.buf.drain(..n);
            }
            // The worker is gone; the reader sees it too.
            Err(_) => {
                st.closed = true;
                st.buf.clear();
                drop(st);
                self.cv.notify_one();
            }
        }
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_one();
    }
}

enum SupMsg {
    Exited {
        slot: usize,
        generation: u64,
    },
    /// Start a worker in this vacant slot (on demand).
    Grow(usize),
    Wake,
    Terminate,
}

/// What the threads share.
pub(crate) struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    config: Config,
    sup_tx: Mutex<mpsc::Sender<SupMsg>>,
    callbacks: Weak<Callbacks>,
    /// A caller polled for a result (`assist`) since the last task written
    /// from a submitting thread (see `pump`).
    waited: AtomicBool,
    /// When the supervisor wakes next to check time limits (see `watch`).
    alarm: watch::Alarm,
}

/// The engine: the pool's handle on its threads.
pub(crate) struct Engine {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    callbacks: Mutex<CallbackThread>,
}

type Done = Vec<(Arc<dyn Sink>, usize, Blob)>;

/// A worker's port, with its slot and generation.
type PortOf = (usize, u64, Arc<Port>);

/// Hands each outcome to its sink; consecutive outcomes for one sink (the
/// chunks of one `imap`) go in one call.
fn deliver(done: Done) {
    let mut it = done.into_iter().peekable();
    while let Some((sink, index, blob)) = it.next() {
        if it.peek().is_some_and(|(s, _, _)| Arc::ptr_eq(s, &sink)) {
            let mut batch = vec![(index, blob)];
            while let Some((_, i, b)) = it.next_if(|(s, _, _)| Arc::ptr_eq(s, &sink)) {
                batch.push((i, b));
            }
            sink.complete_many(batch);
        } else {
            sink.complete(index, blob);
        }
    }
}

impl Engine {
    /// Starts the supervisor, which starts the workers; fails if `config`
    /// fails [`Config::check`], or if any worker fails to start (the others
    /// are killed).
    pub(crate) fn start(config: Config) -> Result<Engine, Error> {
        config.check()?;
        let callbacks = CallbackThread::start()?;
        let (sup_tx, sup_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                status: Status::Running,
                broken: None,
                queue: VecDeque::new(),
                workers: (0..config.processes).map(|_| Slot::default()).collect(),
                pending: 0,
                funcs: Vec::new(),
                by_type: HashMap::new(),
                finished: false,
            }),
            cv: Condvar::new(),
            config,
            sup_tx: Mutex::new(sup_tx),
            callbacks: callbacks.handle(),
            waited: AtomicBool::new(false),
            alarm: watch::Alarm::new(),
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let sup_shared = shared.clone();
        let supervisor = std::thread::Builder::new()
            .name("mp-pool-supervisor".into())
            .spawn(move || Supervisor::run(sup_shared, sup_rx, ready_tx))
            .map_err(|e| Error::new(ErrorKind::Process, format!("cannot start a thread: {e}")))?;
        let engine = Engine {
            shared,
            supervisor: Mutex::new(Some(supervisor)),
            callbacks: Mutex::new(callbacks),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(engine),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                ErrorKind::Process,
                "the pool's supervisor ended while starting workers",
            )),
        }
    }

    pub(crate) fn processes(&self) -> usize {
        self.shared.config.processes
    }

    pub(crate) fn callbacks(&self) -> Weak<Callbacks> {
        self.shared.callbacks.clone()
    }

    pub(crate) fn default_limits(&self) -> Limits {
        self.shared.config.limits.task
    }

    /// The engine's help for callers waiting in `get`.
    pub(crate) fn assist(&self) -> Weak<dyn Assist> {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        weak
    }

    pub(crate) fn submit(&self, func: FuncKey<'_>, jobs: Vec<Job>) -> Result<(), Error> {
        let mut st = lock(&self.shared.state);
        if st.status != Status::Running {
            return Err(Error::not_running());
        }
        if let Some(e) = &st.broken {
            return Err(e.clone());
        }
        let fid = match st.by_type.get(&func.id) {
            Some(&fid) => fid,
            None => {
                let raw = (func.make)()?;
                let fid = st.funcs.len() as u32;
                st.funcs.push(raw);
                st.by_type.insert(func.id, fid);
                fid
            }
        };
        st.pending += jobs.len();
        let defaults = self.shared.config.limits.task;
        st.queue.extend(jobs.into_iter().map(|j| Task {
            fid,
            args: j.args,
            fds: j.fds,
            sink: j.sink,
            index: j.index,
            limits: j.limits.or(defaults),
        }));
        self.shared.pump(&mut st);
        Ok(())
    }

    /// Removes a task that no worker has received yet; whether it did.
    pub(crate) fn cancel(&self, sink: &Arc<dyn Sink>) -> bool {
        let mut st = lock(&self.shared.state);
        let Some(pos) = st.queue.iter().position(|t| Arc::ptr_eq(&t.sink, sink)) else {
            return false;
        };
        let task = st.queue.remove(pos).expect("present");
        st.pending -= 1;
        self.shared.after_completion(&mut st);
        drop(st);
        task.sink.complete(
            task.index,
            Err(Error::new(ErrorKind::Cancelled, "the future was cancelled")),
        );
        true
    }

    /// Cancels every task that no worker has received yet.
    pub(crate) fn cancel_queued(&self) {
        let mut st = lock(&self.shared.state);
        let tasks: Vec<Task> = st.queue.drain(..).collect();
        st.pending -= tasks.len();
        self.shared.after_completion(&mut st);
        drop(st);
        for t in tasks {
            t.sink.complete(
                t.index,
                Err(Error::new(ErrorKind::Cancelled, "the future was cancelled")),
            );
        }
    }

    pub(crate) fn close(&self) {
        let mut st = lock(&self.shared.state);
        if st.status == Status::Running {
            st.status = Status::Closed;
            self.shared.after_completion(&mut st);
        }
    }

    /// Kills the workers and fails every unfinished task; returns when the
    /// workers are reaped.
    pub(crate) fn terminate(&self) {
        let mut st = lock(&self.shared.state);
        let first = st.status != Status::Terminated;
        st.status = Status::Terminated;
        let done = if first {
            let err = Error::terminated();
            let done = st.take_all(&err);
            for w in &mut st.workers {
                w.accepting = false;
                if let Some(o) = &w.outbox {
                    o.close();
                }
            }
            done
        } else {
            Vec::new()
        };
        drop(st);
        deliver(done);
        let _ = lock(&self.shared.sup_tx).send(SupMsg::Terminate);
        self.wait_supervisor();
        lock(&self.callbacks).finish();
    }

    fn wait_supervisor(&self) {
        let handle = lock(&self.supervisor).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        lock(&self.shared.state).status == Status::Running
    }

    /// Waits for the workers to exit after `close` (or `terminate`), and for
    /// the callbacks; `false` on timeout.
    pub(crate) fn join(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        let mut st = lock(&self.shared.state);
        if st.status == Status::Running {
            return Err(Error::new(
                ErrorKind::StillRunning,
                "cannot join a running pool: close or terminate it first",
            ));
        }
        while !st.finished {
            match deadline {
                None => st = self.shared.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    st = self
                        .shared
                        .cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        drop(st);
        self.wait_supervisor();
        lock(&self.callbacks).finish();
        Ok(true)
    }

    /// The error that broke the pool, if one did.
    pub(crate) fn broken(&self) -> Option<Error> {
        lock(&self.shared.state).broken.clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl State {
    /// Takes every unfinished task out, failing it with `err`.
    fn take_all(&mut self, err: &Error) -> Done {
        let mut done: Done = Vec::new();
        for t in self.queue.drain(..) {
            done.push((t.sink, t.index, Err(err.clone())));
        }
        for w in &mut self.workers {
            for t in w.outstanding.drain(..) {
                done.push((t.sink, t.index, Err(err.clone())));
            }
            w.out_bytes = 0;
        }
        self.pending = 0;
        done
    }
}

impl Shared {
    /// Moves queued tasks to workers with room, the least loaded first.
    fn pump(&self, st: &mut State) {
        let max_tasks = self.config.max_tasks;
        let State {
            queue,
            workers,
            funcs,
            ..
        } = st;
        // The frames for each worker are gathered here and handed to its
        // outbox once: an outbox push per task woke the writer per task,
        // which then fought this thread for the outbox's lock (at
        // `imap(f, 0..100_000, chunksize=64)`, most of the submitting
        // thread's time).
        let mut frames: Vec<Vec<u8>> = Vec::new();
        // Idle workers get their frames from this thread if a caller has
        // waited for a result since the last such write (a call at a time:
        // the writer thread's wake-up would be most of its round trip). In
        // a burst of `apply_async` nobody waits, and the writer gathers the
        // tasks into few writes (a write per task from the submitting
        // thread halved the burst's rate).
        let idle: Vec<bool> = workers.iter().map(|w| w.outstanding.is_empty()).collect();
        let waited = self.waited.load(Ordering::Relaxed);
        // Starting on demand, and not every worker is up: only an idle
        // worker takes a task, the others' run-ahead would leave the new
        // ones without work.
        let only_idle = self.config.on_demand && workers.iter().any(|w| !w.accepting);
        while let Some(task) = queue.front() {
            let size = task.args.len();
            let best = workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.can_take(size, max_tasks))
                .filter(|(_, w)| !only_idle || w.outstanding.is_empty())
                .min_by_key(|(_, w)| w.outstanding.len())
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            if !task.fds.is_empty() {
                let outbox = workers[i]
                    .outbox
                    .as_ref()
                    .expect("accepting workers have an outbox");
                let fds: Vec<BorrowedFd<'_>> = task.fds.iter().map(AsFd::as_fd).collect();
                if mp_process::send_fds(&outbox.fd_sock, &fds).is_err() {
                    // The socket is full (the worker has yet to take the
                    // descriptors of its earlier tasks) or the worker is
                    // gone: the task waits for the next pump, or for the
                    // worker's replacement.
                    break;
                }
            }
            let task = queue.pop_front().expect("front");
            let w = &mut workers[i];
            let fid = task.fid as usize;
            let define = !w.known.get(fid).copied().unwrap_or(false);
            if define {
                if w.known.len() <= fid {
                    w.known.resize(fid + 1, false);
                }
                w.known[fid] = true;
            }
            if frames.len() <= i {
                frames.resize_with(i + 1, Vec::new);
            }
            let buf = &mut frames[i];
            if define {
                let raw = mp_process::encode(&funcs[fid]).unwrap_or_default();
                wire::put_header(buf, wire::DEFINE, 4 + raw.len());
                buf.extend_from_slice(&task.fid.to_le_bytes());
                buf.extend_from_slice(&raw);
            }
            if !task.limits.is_empty() {
                watch::put_limits(buf, &task.limits, &self.alarm, &self.sup_tx);
            }
            if task.fds.is_empty() {
                wire::put_header(buf, wire::TASK, 4 + task.args.len());
                buf.extend_from_slice(&task.fid.to_le_bytes());
            } else {
                wire::put_header(buf, wire::TASK_FDS, 8 + task.args.len());
                buf.extend_from_slice(&task.fid.to_le_bytes());
                buf.extend_from_slice(&(task.fds.len() as u32).to_le_bytes());
            }
            buf.extend_from_slice(&task.args);
            w.out_bytes += size;
            w.assigned += 1;
            w.outstanding.push_back(task);
        }
        if self.config.on_demand && !queue.is_empty() {
            // As many new workers as tasks wait, beyond those coming.
            let mut coming = workers.iter().filter(|w| w.spawning).count();
            for (slot, w) in workers.iter_mut().enumerate() {
                if coming >= queue.len() {
                    break;
                }
                if w.vacant() {
                    w.spawning = true;
                    coming += 1;
                    let _ = lock(&self.sup_tx).send(SupMsg::Grow(slot));
                }
            }
        }
        for ((w, mut bytes), idle) in workers.iter().zip(frames).zip(idle) {
            if bytes.is_empty() {
                continue;
            }
            let direct = waited && idle;
            if direct {
                self.waited.store(false, Ordering::Relaxed);
            }
            let outbox = w.outbox.as_ref().expect("accepting workers have an outbox");
            outbox.push(direct, |buf| {
                if buf.is_empty() {
                    std::mem::swap(buf, &mut bytes);
                } else {
                    buf.append(&mut bytes);
                }
            });
        }
    }

    /// After tasks completed: once a closed pool has nothing left, tell the
    /// workers to exit.
    fn after_completion(&self, st: &mut State) {
        if st.status == Status::Closed && st.pending == 0 {
            for w in &mut st.workers {
                if w.accepting {
                    w.accepting = false;
                    if let Some(o) = &w.outbox {
                        o.push(false, |buf| wire::put_header(buf, wire::EXIT, 0));
                        o.close();
                    }
                }
            }
            let _ = lock(&self.sup_tx).send(SupMsg::Wake);
        }
        // Only `join` waits on `cv`, for `finished`, which the supervisor
        // sets and signals itself.
    }

    /// Reads what the worker published and hands it on, under the port's
    /// lock (so batches reach `outstanding` in ring order).
    fn read_port(&self, port: &Port, inner: &mut PortInner, slot: usize, generation: u64) {
        let batch = port.take(inner);
        if !batch.blobs.is_empty() {
            self.on_results(slot, generation, batch.busy_ns, batch.blobs);
        }
        if let Some(body) = batch.init_failed {
            self.on_init_failed(&body);
        }
    }

    /// A caller waiting for `ready`: polls the workers' rings itself for a
    /// while, so that a lone task's result needs no thread to wake up (the
    /// reader's, then the caller's); true if `ready` held.
    fn poll_rings(&self, ready: &dyn Fn() -> bool, deadline: Option<Instant>) -> bool {
        let (ports, outboxes): (Vec<PortOf>, Vec<Arc<Outbox>>) = {
            let st = lock(&self.state);
            let busy = || {
                st.workers
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| !w.outstanding.is_empty())
            };
            (
                busy()
                    .filter_map(|(i, w)| w.port.clone().map(|p| (i, w.generation, p)))
                    .collect(),
                busy().filter_map(|(_, w)| w.outbox.clone()).collect(),
            )
        };
        if ports.is_empty() {
            return ready();
        }
        self.waited.store(true, Ordering::Relaxed);
        for (_, _, p) in &ports {
            p.block().poll_start();
        }
        // Small batches wait for the writer thread, which gathers a
        // burst's tasks into few writes; a caller that waits now writes
        // them itself (a lone task then needs no wake-up of the writer).
        for o in &outboxes {
            o.flush_here();
        }
        let start = Instant::now();
        let mut until = start + ASSIST;
        if let Some(d) = deadline {
            until = until.min(d);
        }
        let here = mp_shm::current_cpu().map_or(0, |c| c as u64 + 1);
        let mut round = 0u32;
        let mut got = false;
        loop {
            if ready() {
                got = true;
                break;
            }
            for (slot, generation, p) in &ports {
                if p.block().has_records() {
                    if let Some(mut inner) = p.try_lock() {
                        self.read_port(p, &mut inner, *slot, *generation);
                    }
                }
            }
            round = round.wrapping_add(1);
            if round.is_multiple_of(16) && Instant::now() >= until {
                break;
            }
            // A worker on this CPU cannot run while we poll: give it the
            // CPU between looks.
            if here != 0 && ports.iter().any(|(_, _, p)| p.block().worker_cpu() == here) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        for (slot, generation, p) in &ports {
            p.block().poll_stop();
            // A result published while we polled did not ring the reader:
            // read it now (the worker stored its tail before it looked at
            // our count, so it is visible).
            if p.block().has_records() {
                let mut inner = p.lock();
                self.read_port(p, &mut inner, *slot, *generation);
            }
        }
        got || ready()
    }

    fn on_results(&self, slot: usize, generation: u64, busy_ns: u64, blobs: Vec<Blob>) {
        let count = blobs.len();
        let mut st = lock(&self.state);
        let mut done: Done = Vec::with_capacity(count);
        {
            let w = &mut st.workers[slot];
            if w.generation != generation {
                return;
            }
            for blob in blobs {
                let Some(t) = w.outstanding.pop_front() else {
                    break;
                };
                w.out_bytes -= t.args.len();
                w.completed += 1;
                done.push((t.sink, t.index, blob));
            }
            if count > 0 {
                let per = busy_ns as f64 / count as f64;
                w.avg_ns = Some(match w.avg_ns {
                    None => per,
                    Some(a) => 0.7 * a + 0.3 * per,
                });
            }
        }
        st.pending -= done.len();
        self.pump(&mut st);
        self.after_completion(&mut st);
        drop(st);
        deliver(done);
    }

    fn on_init_failed(&self, body: &[u8]) {
        let err = mp_process::decode::<WireError>(body)
            .map(WireError::into_error)
            .unwrap_or_else(|e| Error::from_process(&e))
            .rekind(ErrorKind::Initializer, "the pool's initializer failed");
        let mut st = lock(&self.state);
        if st.broken.is_some() {
            return;
        }
        mp_process::mp_event!(error, error = %err, "process pool broken: the initializer failed");
        st.broken = Some(err.clone());
        let done = st.take_all(&err);
        self.after_completion(&mut st);
        drop(st);
        deliver(done);
    }
}

impl Assist for Shared {
    fn assist(&self, ready: &dyn Fn() -> bool, deadline: Option<Instant>) -> bool {
        self.poll_rings(ready, deadline)
    }
}

/// A live worker, as the supervisor holds it.
struct Worker {
    generation: u64,
    process: Process<()>,
    /// The parent's end of the task stream.
    tx: UnixStream,
    /// The parent's end of the result stream.
    rx: UnixStream,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    outbox: Arc<Outbox>,
    port: Arc<Port>,
}

struct Supervisor {
    shared: Arc<Shared>,
    workers: Vec<Option<Worker>>,
    next_gen: u64,
    /// Workers stopped for a limit, and the restart limit (see `watch`).
    watch: watch::Watch,
}

impl Supervisor {
    fn run(
        shared: Arc<Shared>,
        rx: mpsc::Receiver<SupMsg>,
        ready: mpsc::Sender<Result<(), Error>>,
    ) {
        let n = shared.config.processes;
        let mut sup = Supervisor {
            watch: watch::Watch::new(n, &shared.config.limits),
            shared,
            workers: (0..n).map(|_| None).collect(),
            next_gen: 1,
        };
        // On demand, `pump` asks for workers (`SupMsg::Grow`).
        let eager = if sup.shared.config.on_demand { 0 } else { n };
        for slot in 0..eager {
            if let Err(e) = sup.spawn(slot) {
                sup.kill_all();
                let _ = ready.send(Err(e));
                sup.finish();
                return;
            }
        }
        let _ = ready.send(Ok(()));
        loop {
            match rx.recv_timeout(sup.watch_wait(SWEEP)) {
                Ok(SupMsg::Exited { slot, generation }) => {
                    if sup.workers[slot]
                        .as_ref()
                        .is_some_and(|w| w.generation == generation)
                    {
                        sup.on_exit(slot);
                    }
                }
                Ok(SupMsg::Grow(slot)) => sup.grow(slot),
                Ok(SupMsg::Wake) => {}
                Ok(SupMsg::Terminate) | Err(RecvTimeoutError::Disconnected) => {
                    sup.kill_all();
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {
                    for slot in 0..n {
                        if sup.workers[slot]
                            .as_ref()
                            .is_some_and(|w| !w.process.is_alive())
                        {
                            sup.on_exit(slot);
                        }
                    }
                }
            }
            sup.enforce_limits();
            if lock(&sup.shared.state).status == Status::Terminated {
                sup.kill_all();
                break;
            }
            if sup.workers.iter().all(Option::is_none) && !sup.may_grow() {
                break;
            }
        }
        sup.finish();
    }

    /// Whether a pool without workers may still get some: on demand, while
    /// it runs (or one is on its way).
    fn may_grow(&self) -> bool {
        let st = lock(&self.shared.state);
        self.shared.config.on_demand
            && st.broken.is_none()
            && (st.status == Status::Running || st.workers.iter().any(|w| w.spawning))
    }

    /// Starts a worker in `slot`, asked for by `pump`; a worker that cannot
    /// start breaks the pool, as when a replacement cannot.
    fn grow(&mut self, slot: usize) {
        let skip =
            self.workers[slot].is_some() || lock(&self.shared.state).status == Status::Terminated;
        if skip {
            lock(&self.shared.state).workers[slot].spawning = false;
            return;
        }
        if let Err(e) = self.spawn(slot) {
            self.fail_all(e);
        }
    }

    /// Breaks the pool with `e`: every unfinished task fails with it.
    fn fail_all(&mut self, e: Error) {
        mp_process::mp_event!(error, error = %e, "process pool broken");
        let mut st = lock(&self.shared.state);
        for w in &mut st.workers {
            w.spawning = false;
        }
        let done = st.take_all(&e);
        st.broken = Some(e);
        self.shared.after_completion(&mut st);
        drop(st);
        deliver(done);
    }

    fn finish(&mut self) {
        let mut st = lock(&self.shared.state);
        st.finished = true;
        drop(st);
        self.shared.cv.notify_all();
    }

    fn spawn(&mut self, slot: usize) -> Result<(), Error> {
        let cfg = &self.shared.config;
        let io = |what: &str, e: std::io::Error| {
            Error::new(
                ErrorKind::Process,
                format!("cannot start a worker: {what}: {e}"),
            )
        };
        // One stream per direction, so that the task stream can be
        // non-blocking (see `Outbox`) while the reader blocks.
        let (tx, tasks) = UnixStream::pair().map_err(|e| io("socketpair", e))?;
        let (rx, results) = UnixStream::pair().map_err(|e| io("socketpair", e))?;
        let (fd_sock, worker_fds) = UnixStream::pair().map_err(|e| io("socketpair", e))?;
        tx.set_nonblocking(true).map_err(|e| io("fcntl", e))?;
        fd_sock.set_nonblocking(true).map_err(|e| io("fcntl", e))?;
        let init = match &cfg.init {
            None => None,
            Some(init) => Some((
                init.func.clone(),
                init.args.clone(),
                init.fds
                    .iter()
                    .map(|fd| fd.try_clone().map(SharedFd::new))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| io("dup", e))?,
            )),
        };
        let block = Block::new()?;
        let args = WorkerArgs {
            tasks: SharedFd::new(tasks.into()),
            results: SharedFd::new(results.into()),
            block: block.shm().clone(),
            fds: SharedFd::new(worker_fds.into()),
            init,
            max_tasks: cfg.max_tasks,
            memory: cfg.limits.worker_memory(),
        };
        let generation = self.next_gen;
        self.next_gen += 1;
        let method = cfg.method.unwrap_or_else(mp_process::get_start_method);
        let name = format!("{}PoolWorker-{generation}", method_title(method));
        let mut process = Process::new(worker_main, args)
            .daemon(true)
            .name(name)
            .start_method(method);
        if let Some(bytes) = cfg.limits.memory_limit {
            process = process.memory_limit(bytes);
        }
        process.start().map_err(|e| {
            Error::from_process(&e).rekind(ErrorKind::Process, "cannot start a worker")
        })?;
        mp_process::mp_event!(
            info,
            pid = process.pid(),
            slot,
            generation,
            "pool worker started"
        );
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutboxState::default()),
            cv: Condvar::new(),
            sock: tx.try_clone().map_err(|e| io("dup", e))?,
            fd_sock,
            block: block.clone(),
        });
        let port = Arc::new(
            Port::new(block, rx.try_clone().map_err(|e| io("dup", e))?)
                .map_err(|e| io("fcntl", e))?,
        );
        let write_half = tx.try_clone().map_err(|e| io("dup", e))?;
        let shared = self.shared.clone();
        let reader_port = port.clone();
        let reader = std::thread::Builder::new()
            .name("mp-pool-reader".into())
            .spawn(move || reader(&shared, slot, generation, &reader_port))
            .map_err(|e| io("thread", e))?;
        let ob = outbox.clone();
        let writer = std::thread::Builder::new()
            .name("mp-pool-writer".into())
            .spawn(move || writer(&ob, write_half))
            .map_err(|e| io("thread", e))?;
        self.workers[slot] = Some(Worker {
            generation,
            process,
            tx,
            rx,
            reader: Some(reader),
            writer: Some(writer),
            outbox: outbox.clone(),
            port: port.clone(),
        });
        let mut st = lock(&self.shared.state);
        let w = &mut st.workers[slot];
        *w = Slot {
            generation,
            outbox: Some(outbox.clone()),
            port: Some(port),
            accepting: true,
            ..Slot::default()
        };
        if st.status == Status::Terminated {
            outbox.close();
        } else {
            self.shared.pump(&mut st);
            // A closed pool with nothing left sends EXIT to the new worker.
            self.shared.after_completion(&mut st);
        }
        Ok(())
    }

    /// A worker ended (its socket closed, or the sweep found it dead):
    /// reap it, settle its tasks, replace it if there is work for it.
    fn on_exit(&mut self, slot: usize) {
        let Some(mut w) = self.workers[slot].take() else {
            return;
        };
        let reaped = reap(&mut w.process);
        let clean = reaped.is_ok();
        let status = reaped.err().flatten();
        if clean {
            mp_process::mp_event!(debug, pid = w.process.pid(), slot, "pool worker exited");
        } else {
            mp_process::mp_event!(
                warn,
                pid = w.process.pid(),
                slot,
                status = ?status,
                "pool worker died"
            );
        }
        w.outbox.close();
        // A write blocked on the dead worker's full socket fails now.
        let _ = w.tx.shutdown(Shutdown::Write);
        if let Some(t) = w.writer.take() {
            let _ = t.join();
        }
        // Results the worker published before it died are read first:
        // the reader reads the ring to its end before it ends, and what
        // came after (nothing, unless the reader was cut off) is read here.
        w.port.block().ring_reader();
        if let Some(t) = w.reader.take() {
            join_reader(t, &w.rx);
        }
        {
            let mut inner = w.port.lock();
            self.shared
                .read_port(&w.port, &mut inner, slot, w.generation);
        }
        let started = w.port.block().started();
        let mut st = lock(&self.shared.state);
        let (outstanding, running): (Vec<Task>, bool) = {
            let s = &mut st.workers[slot];
            s.accepting = false;
            s.outbox = None;
            s.port = None;
            s.out_bytes = 0;
            // Every result the worker gave is delivered, and it started
            // each task only after the previous one's result: so it died
            // running the first outstanding task if it had started one
            // more than it answered, else idle (or between tasks).
            let running = started > s.completed && !s.outstanding.is_empty();
            (s.outstanding.drain(..).collect(), running)
        };
        let mut done: Done = Vec::new();
        let mut kill_others = false;
        let verdict = self
            .watch
            .verdict(slot, w.generation, started, clean, status);
        if let Some(e) = &verdict.storm {
            if st.broken.is_none() {
                st.broken = Some(e.clone());
                done.extend(st.take_all(e));
            }
        }
        if let Some(err) = st.broken.clone() {
            done.extend(
                outstanding
                    .into_iter()
                    .map(|t| (t.sink, t.index, Err(err.clone()))),
            );
        } else if st.status == Status::Terminated {
            done.extend(
                outstanding
                    .into_iter()
                    .map(|t| (t.sink, t.index, Err(Error::terminated()))),
            );
        } else if clean && !running {
            // A worker that exited by itself (maxtasksperchild) never
            // started these: run them elsewhere, in order.
            for t in outstanding.into_iter().rev() {
                st.queue.push_front(t);
            }
        } else if self.shared.config.break_on_death && !verdict.ours {
            let err = Error::new(
                ErrorKind::Broken,
                "a process in the process pool was terminated abruptly while the future was running or pending",
            )
            .with_status(status);
            mp_process::mp_event!(
                error,
                pid = w.process.pid(),
                tasks = outstanding.len(),
                "process pool broken: a worker died"
            );
            st.broken = Some(err.clone());
            done.extend(
                outstanding
                    .into_iter()
                    .map(|t| (t.sink, t.index, Err(err.clone()))),
            );
            done.extend(st.take_all(&err));
            kill_others = true;
        } else {
            // Only the task that was running fails; those it had not
            // started run on the next worker, in order, and never twice.
            let mut it = outstanding.into_iter();
            if running {
                let t = it.next().expect("running implies outstanding");
                mp_process::mp_event!(
                    warn,
                    pid = w.process.pid(),
                    status = ?status,
                    error = %verdict.error,
                    "task failed: the worker running it died"
                );
                done.push((t.sink, t.index, Err(verdict.error)));
            }
            for t in it.rev() {
                st.queue.push_front(t);
            }
        }
        st.pending -= done.len().min(st.pending);
        let respawn = st.broken.is_none()
            && (st.status == Status::Running || (st.status == Status::Closed && st.pending > 0));
        self.shared.after_completion(&mut st);
        drop(st);
        deliver(done);
        if kill_others {
            for w in self.workers.iter().flatten() {
                let _ = w.process.kill();
            }
        }
        if respawn {
            mp_process::mp_event!(info, pid = w.process.pid(), slot, "replacing pool worker");
            if let Err(e) = self.spawn(slot) {
                self.fail_all(e);
            }
        }
    }

    fn kill_all(&mut self) {
        for w in self.workers.iter().flatten() {
            let _ = w.process.kill();
            w.outbox.close();
        }
        for slot in 0..self.workers.len() {
            if let Some(mut w) = self.workers[slot].take() {
                let _ = reap(&mut w.process);
                w.port.block().ring_reader();
                let _ = w.tx.shutdown(Shutdown::Write);
                if let Some(t) = w.writer.take() {
                    let _ = t.join();
                }
                if let Some(t) = w.reader.take() {
                    join_reader(t, &w.rx);
                }
            }
        }
    }
}

/// Waits for a worker that is ending: `Ok` for a clean exit, else how it
/// ended (when known). A worker that lingers is killed.
fn reap(p: &mut Process<()>) -> Result<(), Option<mp_process::ExitStatus>> {
    let r = match p.join_timeout(Duration::from_secs(2)) {
        Err(e) if e.is_timeout() => {
            let _ = p.kill();
            p.join()
        }
        r => r,
    };
    r.map_err(|e| e.exit_status().or_else(|| p.exit_status()))
}

/// Waits for a reader thread, which ends at the end of its stream; if the
/// stream stays open (a copy of the worker's end lives in another process
/// forked meanwhile), shuts the socket down to end it.
fn join_reader(t: JoinHandle<()>, sock: &UnixStream) {
    let give_up = Instant::now() + Duration::from_millis(200);
    while !t.is_finished() && Instant::now() < give_up {
        // Short naps: a worker stopped for a time limit is replaced
        // after this, and the next task waits (`pool_timeout_recovery`).
        std::thread::sleep(Duration::from_micros(100));
    }
    let _ = sock.shutdown(Shutdown::Both);
    let _ = t.join();
}

fn method_title(m: StartMethod) -> &'static str {
    match m {
        StartMethod::Fork => "Fork",
        StartMethod::Spawn => "Spawn",
        _ => "ForkServer",
    }
}

/// Reads the worker's ring while the worker lives: whatever it
/// published, it hands on; then it sleeps on the ring's bell, and every
/// [`SLICE`](crate::block) it looks whether the worker is gone (the end of
/// its result socket). What the worker published before it ended is read
/// before the reader ends.
fn reader(shared: &Arc<Shared>, slot: usize, generation: u64, port: &Port) {
    loop {
        let ended = {
            let mut inner = port.lock();
            shared.read_port(port, &mut inner, slot, generation);
            let ended = port.ended(&mut inner);
            if ended {
                shared.read_port(port, &mut inner, slot, generation);
            }
            ended
        };
        if ended {
            break;
        }
        port.sleep();
    }
    let _ = lock(&shared.sup_tx).send(SupMsg::Exited { slot, generation });
}

/// Writes what `Outbox::push` left to it, gathering what comes meanwhile.
fn writer(outbox: &Outbox, mut sock: UnixStream) {
    let mut spare = Vec::new();
    loop {
        let mut st = lock(&outbox.state);
        st.writing = false;
        loop {
            if st.busy {
                if !st.buf.is_empty() {
                    break;
                }
                st.busy = false;
            }
            if st.closed {
                return;
            }
            st.waiting = true;
            st = outbox.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiting = false;
        }
        std::mem::swap(&mut st.buf, &mut spare);
        st.writing = true;
        drop(st);
        let written = write_all(&mut sock, &spare, &outbox.block);
        if written.is_err() {
            let mut st = lock(&outbox.state);
            st.closed = true;
            st.busy = false;
            st.buf.clear();
            return;
        }
        spare.clear();
    }
}

/// Writes what a non-blocking socket takes now; how much. Each write is
/// counted in the worker's block, which wakes the worker if it sleeps.
fn write_some(mut sock: &UnixStream, buf: &[u8], block: &Block) -> std::io::Result<usize> {
    let mut written = 0;
    while written < buf.len() {
        match sock.write(&buf[written..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n;
                block.note_sent();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Writes all of `buf` to a non-blocking socket, blocking for what it does
/// not take at once; every write is counted, as in [`write_some`] (the
/// worker must wake to make room for the rest).
fn write_all(sock: &mut UnixStream, buf: &[u8], block: &Block) -> std::io::Result<()> {
    let mut n = write_some(sock, buf, block)?;
    if n < buf.len() {
        sock.set_nonblocking(false)?;
        while n < buf.len() {
            match sock.write(&buf[n..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    n += k;
                    block.note_sent();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        sock.set_nonblocking(true)?;
    }
    Ok(())
}
