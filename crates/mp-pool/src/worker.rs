//! The worker process: reads tasks from its socket, runs them in order and
//! publishes each result in its shared-memory block (`block`) as soon as
//! the task returns.
//!
//! Before it calls a task the worker stores, in the block, how many tasks
//! it has started; a result is in the block before the next task starts.
//! So when a worker dies, every result it finished is in memory the parent
//! maps, and the parent knows which task (if any) was running. Results
//! cost no system call unless the parent's reader sleeps; tasks are read
//! from a non-blocking socket, and an idle worker waits for the parent's
//! next write on a bell in the block (`Block::wait_task`), not in `read`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use mp_process::{RawFunction, SharedFd};
use mp_shm::SharedMemory;
use serde::{Deserialize, Serialize};

use crate::block::{Block, Writer};
use crate::error::Error;
use crate::limits::{Limits, WorkerMemory};
use crate::wire::{self, Cursor};

/// What a worker is started with.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    /// The worker's end of its task stream (parent to worker).
    pub(crate) tasks: SharedFd,
    /// The worker's end of its result stream (worker to parent): results
    /// too long for the block's ring.
    pub(crate) results: SharedFd,
    /// The worker's block (see `block`).
    pub(crate) block: SharedMemory,
    /// The worker's end of its descriptor socket: the descriptors of each
    /// `TASK_FDS` task, one message per task.
    pub(crate) fds: SharedFd,
    /// The initializer, its encoded arguments and their descriptors.
    pub(crate) init: Option<(RawFunction, Vec<u8>, Vec<SharedFd>)>,
    /// Exit after this many tasks (Python's `maxtasksperchild`).
    pub(crate) max_tasks: Option<u64>,
    /// `max_memory_per_child` and `memory_limit`.
    pub(crate) memory: WorkerMemory,
}

/// The worker's main function.
pub(crate) fn worker_main(args: WorkerArgs) {
    let sock = UnixStream::from(args.tasks.into_inner());
    let results = UnixStream::from(args.results.into_inner());
    let fd_sock = UnixStream::from(args.fds.into_inner());
    // A block the parent made is right; anything else is not our parent.
    let Ok(block) = Block::from_shm(args.block) else {
        return;
    };
    block.set_pid(std::process::id());
    let mut out = Writer::new(block, results);
    if let Some((init, init_args, fds)) = args.init {
        let fds = fds.into_iter().map(SharedFd::into_inner).collect();
        if let Err(e) = SharedFd::receive(fds, || init.call(&init_args)) {
            out.init_failed(&Error::from_process(&e));
            return;
        }
    }
    serve(&sock, &fd_sock, &mut out, args.max_tasks, args.memory);
}

/// The task socket, read without blocking: when it is empty, the worker
/// waits on its block's bell.
struct TaskSock<'a> {
    sock: &'a UnixStream,
    block: Block,
}

impl Read for TaskSock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut sock = self.sock;
        let mut attempt = || match sock.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            r => Some(r),
        };
        if let Some(r) = attempt() {
            return r;
        }
        if let Some(r) = self.block.wait_task(attempt) {
            return r;
        }
        // Nobody waits for a result: sleep in `read` (see `wait_task`).
        self.sock.set_nonblocking(false)?;
        let r = sock.read(buf);
        self.sock.set_nonblocking(true)?;
        r
    }
}

fn serve(
    sock: &UnixStream,
    fd_sock: &UnixStream,
    out: &mut Writer,
    max_tasks: Option<u64>,
    memory: WorkerMemory,
) {
    // Only this process reads this end (a forked sibling's copy is never
    // used), so its file description may be non-blocking.
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    let task_sock = TaskSock {
        sock,
        block: out.block().clone(),
    };
    crate::limits::install(out.block());
    let mut reader = BufReader::with_capacity(256 * 1024, task_sock);
    let mut w = Serving {
        fd_sock,
        funcs: Vec::new(),
        started: 0,
        max_tasks,
        memory,
        limits: None,
        out,
    };
    let mut body = Vec::new();
    loop {
        // A frame that is whole in the read buffer is served from there:
        // copying it out first cost a copy and a zeroing of every chunk.
        while reader.buffer().is_empty() {
            match reader.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        let buffered = reader.buffer();
        if buffered.is_empty() {
            return;
        }
        let go_on = if wire::has_frame(buffered) {
            let (kind, len) = wire::parse_header(buffered);
            let end = wire::HEADER + len;
            let go_on = w.frame(kind, &buffered[wire::HEADER..end]);
            reader.consume(end);
            go_on
        } else {
            match wire::read_frame(&mut reader, &mut body) {
                Ok(Some(kind)) => w.frame(kind, &body),
                Ok(None) | Err(_) => false,
            }
        };
        if !go_on {
            return;
        }
    }
}

/// What the worker keeps between frames.
struct Serving<'a> {
    fd_sock: &'a UnixStream,
    funcs: Vec<Option<RawFunction>>,
    /// Tasks started, as published in the block.
    started: u64,
    max_tasks: Option<u64>,
    memory: WorkerMemory,
    /// The time limits of the next task (a `LIMITS` frame).
    limits: Option<Limits>,
    out: &'a mut Writer,
}

impl Serving<'_> {
    /// Handles one frame; whether to go on.
    fn frame(&mut self, kind: u32, body: &[u8]) -> bool {
        match kind {
            wire::DEFINE => {
                let mut c = Cursor::new(body);
                let Ok(fid) = c.u32() else { return false };
                let raw = mp_process::decode::<RawFunction>(c.rest()).ok();
                let fid = fid as usize;
                if self.funcs.len() <= fid {
                    self.funcs.resize(fid + 1, None);
                }
                self.funcs[fid] = raw;
                true
            }
            wire::LIMITS => {
                self.limits = Limits::decode(body);
                self.limits.is_some()
            }
            wire::TASK | wire::TASK_FDS => {
                let mut c = Cursor::new(body);
                let Ok(fid) = c.u32() else { return false };
                let fds = if kind == wire::TASK_FDS {
                    let Ok(n) = c.u32() else { return false };
                    // The parent sent them before the frame: they are
                    // there, unless the parent is gone.
                    match mp_process::recv_fds(self.fd_sock) {
                        Ok(fds) if fds.len() == n as usize => Ok(fds),
                        Ok(fds) => Err(format!("{} of the task's {n} descriptors came", fds.len())),
                        Err(e) => Err(format!("the task's descriptors did not come: {e}")),
                    }
                } else {
                    Ok(Vec::new())
                };
                let args = c.rest();
                // The task's start is stamped before `started` (see
                // `Block::set_task_start`).
                let stamp = crate::limits::monotonic_ns();
                self.out.block().set_task_start(stamp);
                let limited = self.limits.take().map(|l| crate::limits::begin(l, stamp));
                // Published before the call: if this process dies in the
                // task, the parent knows it was this one.
                self.started += 1;
                self.out.block().set_started(self.started);
                let start = Instant::now();
                let result = match (self.funcs.get(fid as usize), fds) {
                    (_, Err(why)) => Err(Error::new(crate::ErrorKind::Process, why)),
                    (Some(Some(raw)), Ok(fds)) if fds.is_empty() => {
                        raw.call(args).map_err(|e| Error::from_process(&e))
                    }
                    (Some(Some(raw)), Ok(fds)) => SharedFd::receive(fds, || raw.call(args))
                        .map_err(|e| Error::from_process(&e)),
                    _ => Err(Error::new(
                        crate::ErrorKind::Process,
                        format!("the worker does not know function {fid}"),
                    )),
                };
                drop(limited);
                if let Err(_e) = &result {
                    mp_process::mp_event!(
                        warn,
                        pid = std::process::id(),
                        error = %_e,
                        "task failed"
                    );
                }
                self.out.result(&result, start.elapsed());
                // Past `max_memory_per_child`: exit cleanly, as after
                // `maxtasksperchild` (the parent requeues what is left).
                self.max_tasks.is_none_or(|m| self.started < m) && self.memory.keep()
            }
            _ => false,
        }
    }
}
