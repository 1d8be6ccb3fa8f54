//! Rank 0's side of the pool: the task queue, and the communication thread
//! that hands batches of tasks to the worker ranks and their results to
//! the results' handles.
//!
//! Protocol: rank 0 sends a worker a `Batch` (tag `TASKS`); the worker runs
//! its tasks in order and answers with one `Results` (tag `RESULTS`). A
//! worker has at most [`DEPTH`] batches outstanding, so it finds its next
//! batch waiting when it finishes one. MPI keeps the messages between two
//! ranks in order, so results match the front of the worker's outstanding
//! list and need no ids. Rank 0 never blocks on a worker: it sends with a
//! nonblocking send and goes on receiving results until the send is done
//! (two blocking sends of large messages, one each way, would wait for
//! each other forever).
//!
//! A worker that dies takes the whole job with it: `mpirun` ends every
//! rank, rank 0 included, and reports which rank died. MPI gives a
//! survivor no way to go on without it (that is the unfinished ULFM
//! extension), so there is no per-task `WorkerLost` here.

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mp_pool::ErrorKind;
use mp_pool::remote::Completion;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use serde_bytes::ByteBuf;

use crate::Error;
use crate::func::FuncToken;
use crate::wire::{self, Batch, Results};

/// Batches a worker may have outstanding.
const DEPTH: usize = 2;
/// A batch holds at most this many tasks...
const MAX_BATCH: usize = 4096;
/// ...and this many bytes of arguments (at least one task): large tasks
/// (`map`'s chunks) go one per batch, so that their results come back, and
/// are decoded, one by one while the next is computed.
const MAX_BATCH_BYTES: usize = 32 * 1024;
/// Tasks enough to keep a worker busy for about this long go in one batch,
/// once its time per task is known.
const BATCH_NS: f64 = 500_000.0;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One task on its way.
pub(crate) struct Task {
    pub(crate) fid: u32,
    pub(crate) args: Vec<u8>,
    /// Taken when the task completes (or fails, e.g. by `terminate`).
    pub(crate) done: Option<Completion>,
    pub(crate) pool: Arc<PoolShared>,
}

impl Task {
    fn finish(&mut self, outcome: Result<Vec<u8>, Error>) {
        if let Some(done) = self.done.take() {
            done.complete(outcome);
            self.pool.task_done();
        }
    }
}

/// What a pool shares with the engine: how many of its tasks are pending.
#[derive(Default)]
pub(crate) struct PoolShared {
    pub(crate) id: u64,
    pub(crate) pending: Mutex<usize>,
    pub(crate) cv: Condvar,
}

impl PoolShared {
    fn task_done(&self) {
        let mut p = lock(&self.pending);
        *p -= 1;
        if *p == 0 {
            self.cv.notify_all();
        }
    }
}

#[derive(Default)]
struct Worker {
    outstanding: VecDeque<Vec<Task>>,
    known: Vec<bool>,
    avg_ns: Option<f64>,
}

struct State {
    queue: VecDeque<Task>,
    workers: Vec<Worker>,
    funcs: HashMap<TypeId, u32>,
    tokens: Vec<FuncToken>,
    /// The world is ending: finish the outstanding batches, then stop.
    stop: bool,
    /// The communication thread is waiting on `cv`.
    sleeping: bool,
    /// The communication thread failed: every task fails so.
    failed: Option<Error>,
}

/// Rank 0's engine.
pub(crate) struct Engine {
    state: Mutex<State>,
    cv: Condvar,
    workers: usize,
}

impl Engine {
    pub(crate) fn new(workers: usize) -> Arc<Engine> {
        Arc::new(Engine {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                workers: (0..workers).map(|_| Worker::default()).collect(),
                funcs: HashMap::new(),
                tokens: Vec::new(),
                stop: false,
                sleeping: false,
                failed: None,
            }),
            cv: Condvar::new(),
            workers,
        })
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// The id of the function of type `id`, naming it with `make` the first
    /// time.
    pub(crate) fn function(
        &self,
        id: TypeId,
        make: impl FnOnce() -> Result<FuncToken, Error>,
    ) -> Result<u32, Error> {
        let mut st = lock(&self.state);
        if let Some(&fid) = st.funcs.get(&id) {
            return Ok(fid);
        }
        let token = make()?;
        let fid = st.tokens.len() as u32;
        st.tokens.push(token);
        st.funcs.insert(id, fid);
        Ok(fid)
    }

    /// Queues tasks, failing them at once if the engine cannot run them.
    pub(crate) fn submit(&self, tasks: Vec<Task>) {
        let mut st = lock(&self.state);
        if let Some(e) = st.failed.clone() {
            drop(st);
            tasks.into_iter().for_each(|mut t| t.finish(Err(e.clone())));
            return;
        }
        if st.stop {
            drop(st);
            let e = crate::error(ErrorKind::NotRunning, "the mpi world has ended");
            tasks.into_iter().for_each(|mut t| t.finish(Err(e.clone())));
            return;
        }
        st.queue.extend(tasks);
        let wake = st.sleeping;
        drop(st);
        if wake {
            self.cv.notify_one();
        }
    }

    /// Fails every unfinished task of pool `id` with `Terminated`; results
    /// that arrive for them later are dropped.
    pub(crate) fn terminate(&self, id: u64) {
        let mut failed = Vec::new();
        let mut st = lock(&self.state);
        let queue = std::mem::take(&mut st.queue);
        for t in queue {
            if t.pool.id == id {
                failed.push(t);
            } else {
                st.queue.push_back(t);
            }
        }
        let e = mp_pool::remote::error(
            ErrorKind::Terminated,
            "the pool was terminated before the task finished",
        );
        for w in &mut st.workers {
            for batch in &mut w.outstanding {
                for t in batch.iter_mut().filter(|t| t.pool.id == id) {
                    t.finish(Err(e.clone()));
                }
            }
        }
        drop(st);
        failed
            .into_iter()
            .for_each(|mut t| t.finish(Err(e.clone())));
    }

    /// Asks the communication thread to stop once the outstanding batches
    /// are back; queued tasks fail with `Terminated`.
    pub(crate) fn stop(&self) {
        let mut st = lock(&self.state);
        st.stop = true;
        let queue = std::mem::take(&mut st.queue);
        drop(st);
        self.cv.notify_all();
        let e = mp_pool::remote::error(ErrorKind::Terminated, "the mpi world has ended");
        queue.into_iter().for_each(|mut t| t.finish(Err(e.clone())));
    }

    /// The communication thread's body. Any panic in it fails every task
    /// (and the panic hook aborts the job).
    pub(crate) fn run(self: Arc<Engine>) {
        let r = catch_unwind(AssertUnwindSafe(|| self.serve()));
        if r.is_err() {
            let e = crate::error(ErrorKind::Process, "the mp-mpi communication thread failed");
            let mut st = lock(&self.state);
            st.failed = Some(e.clone());
            let mut all: Vec<Task> = st.queue.drain(..).collect();
            for w in &mut st.workers {
                all.extend(w.outstanding.drain(..).flatten());
            }
            drop(st);
            all.into_iter().for_each(|mut t| t.finish(Err(e.clone())));
        }
    }

    fn serve(&self) {
        let world = SimpleCommunicator::world();
        let mut idle_since: Option<Instant> = None;
        loop {
            let sends = self.dispatch();
            let sent = !sends.is_empty();
            for (worker, body) in sends {
                self.send(&world, worker, &body);
            }
            let got = self.poll(&world);
            if sent || got {
                idle_since = None;
                continue;
            }
            let mut st = lock(&self.state);
            let outstanding = st.workers.iter().any(|w| !w.outstanding.is_empty());
            if !outstanding && (st.queue.is_empty() || st.stop) {
                if st.stop {
                    return;
                }
                // Nothing to wait for but new work.
                st.sleeping = true;
                st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                st.sleeping = false;
                idle_since = None;
                continue;
            }
            drop(st);
            backoff(idle_since.get_or_insert_with(Instant::now).elapsed());
        }
    }

    /// Takes batches for the workers that have room.
    fn dispatch(&self) -> Vec<(usize, Vec<u8>)> {
        let mut sends = Vec::new();
        let mut st = lock(&self.state);
        if st.queue.is_empty() {
            return sends;
        }
        let st = &mut *st;
        for (w, worker) in st.workers.iter_mut().enumerate() {
            if st.queue.is_empty() {
                break;
            }
            if worker.outstanding.len() >= DEPTH {
                continue;
            }
            // Unknown speed: one task, to learn it. Then enough for
            // BATCH_NS, but no more than an even share of the queue.
            let cap = match worker.avg_ns {
                None => 1,
                Some(ns) => ((BATCH_NS / ns.max(1.0)) as usize).clamp(1, MAX_BATCH),
            };
            let share = st.queue.len().div_ceil(self.workers);
            let n = cap.min(share).max(1);
            let mut batch = Batch::default();
            let mut tasks = Vec::with_capacity(n);
            let mut bytes = 0;
            while tasks.len() < n {
                let Some(t) = st.queue.front() else { break };
                if !tasks.is_empty() && bytes + t.args.len() > MAX_BATCH_BYTES {
                    break;
                }
                let mut t = st.queue.pop_front().expect("front");
                bytes += t.args.len();
                let fid = t.fid as usize;
                if worker.known.len() <= fid {
                    worker.known.resize(fid + 1, false);
                }
                if !worker.known[fid] {
                    worker.known[fid] = true;
                    batch.defs.push((t.fid, st.tokens[fid].clone()));
                }
                batch
                    .tasks
                    .push((t.fid, ByteBuf::from(std::mem::take(&mut t.args))));
                tasks.push(t);
            }
            match mp_process::encode(&batch) {
                Ok(body) => {
                    worker.outstanding.push_back(tasks);
                    sends.push((w, body));
                }
                Err(e) => {
                    let e = crate::error(ErrorKind::Serialization, e.to_string());
                    tasks.iter_mut().for_each(|t| t.finish(Err(e.clone())));
                }
            }
        }
        sends
    }

    /// Sends a batch to worker `w` (rank `w + 1`), receiving results while
    /// the send is under way.
    fn send(&self, world: &SimpleCommunicator, w: usize, body: &[u8]) {
        let dest = world.process_at_rank(w as i32 + 1);
        mpi::request::scope(|scope| {
            let mut req = dest.immediate_send_with_tag(scope, body, wire::TASKS);
            loop {
                match req.test() {
                    Ok(_) => break,
                    Err(r) => {
                        req = r;
                        if !self.poll(world) {
                            std::thread::yield_now();
                        }
                    }
                }
            }
        });
    }

    /// Receives every result batch that has arrived; whether there was one.
    fn poll(&self, world: &SimpleCommunicator) -> bool {
        let mut got = false;
        while let Some(probed) = world
            .any_process()
            .immediate_matched_probe_with_tag(wire::RESULTS)
        {
            let (body, status) = probed.matched_receive_vec::<u8>();
            got = true;
            let w = status.source_rank() as usize - 1;
            self.deliver(w, &body);
        }
        got
    }

    fn deliver(&self, w: usize, body: &[u8]) {
        let mut st = lock(&self.state);
        let Some(worker) = st.workers.get_mut(w) else {
            return;
        };
        let Some(mut tasks) = worker.outstanding.pop_front() else {
            return;
        };
        drop(st);
        match mp_process::decode::<Results>(body) {
            Ok(r) => {
                if !tasks.is_empty() {
                    let per_task = r.busy_ns as f64 / tasks.len() as f64;
                    let mut st = lock(&self.state);
                    let avg = &mut st.workers[w].avg_ns;
                    *avg = Some(avg.map_or(per_task, |a| 0.7 * a + 0.3 * per_task));
                }
                let mut outcomes = r.outcomes.into_iter();
                for t in &mut tasks {
                    let outcome = match outcomes.next() {
                        Some(Ok(b)) => Ok(b.into_vec()),
                        Some(Err(e)) => Err(e.into_error()),
                        None => Err(crate::error(
                            ErrorKind::Process,
                            format!("rank {} sent too few results", w + 1),
                        )),
                    };
                    t.finish(outcome);
                }
            }
            Err(e) => {
                let e = crate::error(
                    ErrorKind::Serialization,
                    format!("bad results from rank {}: {e}", w + 1),
                );
                tasks.iter_mut().for_each(|t| t.finish(Err(e.clone())));
            }
        }
    }
}

/// Waits a little while nothing arrives: yields first (a result is often
/// microseconds away), then sleeps longer and longer, up to 1 ms, so that
/// an idle rank leaves the CPU to the others (ranks are often
/// oversubscribed on one machine).
pub(crate) fn backoff(idle: Duration) {
    if idle < SPIN {
        std::thread::yield_now();
    } else {
        std::thread::sleep((idle / 16).clamp(Duration::from_micros(10), Duration::from_millis(1)));
    }
}

/// How long an idle rank yields before it sleeps.
const SPIN: Duration = Duration::from_micros(200);
