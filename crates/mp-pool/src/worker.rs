//! The worker process: reads tasks from its socket, runs them in order and
//! streams the results back in batches.
//!
//! Results are batched so that a stream of tiny tasks costs one write per
//! batch, not per task: the worker writes when it would otherwise block
//! reading (no whole task is buffered), when a batch grows large, and, from
//! a small flusher thread, when a result has waited 1 ms behind a long
//! task. A result is therefore never held back for longer than about 1 ms.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mp_process::{RawFunction, SharedFd};
use serde::{Deserialize, Serialize};

use crate::error::{Error, WireError};
use crate::wire::{self, Cursor};

/// What a worker is started with.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    /// The worker's end of its task stream (parent to worker).
    pub(crate) tasks: SharedFd,
    /// The worker's end of its result stream (worker to parent).
    pub(crate) results: SharedFd,
    /// The worker's end of its descriptor socket: the descriptors of each
    /// `TASK_FDS` task, one message per task.
    pub(crate) fds: SharedFd,
    /// The initializer, its encoded arguments and their descriptors.
    pub(crate) init: Option<(RawFunction, Vec<u8>, Vec<SharedFd>)>,
    /// Exit after this many tasks (Python's `maxtasksperchild`).
    pub(crate) max_tasks: Option<u64>,
}

/// A batch larger than this is written at once. A result this large costs
/// far more to make than its write, and sent at once it is decoded by the
/// parent while the worker goes on (`map`'s chunks).
const BATCH_BYTES: usize = 16 * 1024;
/// The frame's head and the batch's (busy time, count), which `buf` keeps
/// room for in front of the results, so that a batch is written from
/// where it was made.
const HEAD: usize = wire::HEADER + 12;
/// A result waits at most this long for its batch.
const MAX_DELAY: Duration = Duration::from_millis(1);

struct Out {
    state: Mutex<OutState>,
    cv: Condvar,
}

struct OutState {
    sock: UnixStream,
    /// Room for the frame's head ([`HEAD`] bytes), then the encoded
    /// results not yet written.
    buf: Vec<u8>,
    count: u32,
    busy_ns: u64,
    /// When the oldest unwritten result was made.
    since: Option<Instant>,
    done: bool,
}

impl OutState {
    fn push(&mut self, result: &Result<Vec<u8>, Error>, busy: Duration) {
        match result {
            Ok(bytes) => {
                self.buf.push(0);
                self.buf
                    .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(bytes);
            }
            Err(e) => {
                let bytes = mp_process::encode(&WireError::from_error(e)).unwrap_or_default();
                self.buf.push(1);
                self.buf
                    .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(&bytes);
            }
        }
        self.count += 1;
        self.busy_ns += busy.as_nanos() as u64;
    }

    /// Writes the batch; a failed write means the parent is gone, which the
    /// read side will see too.
    fn flush(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut head = Vec::with_capacity(HEAD);
        wire::put_header(&mut head, wire::RESULTS, self.buf.len() - wire::HEADER);
        head.extend_from_slice(&self.busy_ns.to_le_bytes());
        head.extend_from_slice(&self.count.to_le_bytes());
        self.buf[..HEAD].copy_from_slice(&head);
        let _ = self.sock.write_all(&self.buf);
        self.buf.truncate(HEAD);
        self.count = 0;
        self.busy_ns = 0;
        self.since = None;
    }
}

/// The worker's main function.
pub(crate) fn worker_main(args: WorkerArgs) {
    let sock = UnixStream::from(args.tasks.into_inner());
    let results = UnixStream::from(args.results.into_inner());
    let fd_sock = UnixStream::from(args.fds.into_inner());
    if let Some((init, init_args, fds)) = args.init {
        let fds = fds.into_iter().map(SharedFd::into_inner).collect();
        if let Err(e) = SharedFd::receive(fds, || init.call(&init_args)) {
            let body = mp_process::encode(&WireError::from_error(&Error::from_process(&e)))
                .unwrap_or_default();
            let mut results = &results;
            let _ = wire::write_frame(&mut results, wire::INIT_FAILED, &body);
            return;
        }
    }
    let out = Arc::new(Out {
        state: Mutex::new(OutState {
            sock: results,
            buf: vec![0; HEAD],
            count: 0,
            busy_ns: 0,
            since: None,
            done: false,
        }),
        cv: Condvar::new(),
    });
    let flusher = {
        let out = out.clone();
        std::thread::Builder::new()
            .name("mp-pool-flusher".into())
            .spawn(move || flusher(&out))
            .ok()
    };
    serve(&sock, &fd_sock, &out, args.max_tasks);
    let mut st = lock(&out.state);
    st.flush();
    st.done = true;
    drop(st);
    out.cv.notify_all();
    if let Some(t) = flusher {
        let _ = t.join();
    }
}

fn serve(sock: &UnixStream, fd_sock: &UnixStream, out: &Out, max_tasks: Option<u64>) {
    let mut reader = BufReader::with_capacity(256 * 1024, sock);
    let mut w = Serving {
        fd_sock,
        funcs: Vec::new(),
        done_tasks: 0,
        max_tasks,
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
            let more = wire::has_frame(&buffered[end..]);
            let go_on = w.frame(kind, &buffered[wire::HEADER..end], more);
            reader.consume(end);
            go_on
        } else {
            match wire::read_frame(&mut reader, &mut body) {
                Ok(Some(kind)) => w.frame(kind, &body, wire::has_frame(reader.buffer())),
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
    done_tasks: u64,
    max_tasks: Option<u64>,
    out: &'a Out,
}

impl Serving<'_> {
    /// Handles one frame; whether to go on. `more`: another whole frame
    /// is buffered behind it.
    fn frame(&mut self, kind: u32, body: &[u8], more: bool) -> bool {
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
                let busy = start.elapsed();
                self.done_tasks += 1;
                let last = self.max_tasks.is_some_and(|m| self.done_tasks >= m);
                let out = self.out;
                let mut st = lock(&out.state);
                st.push(&result, busy);
                if last || st.buf.len() >= BATCH_BYTES || !more {
                    st.flush();
                } else if st.since.is_none() {
                    st.since = Some(Instant::now());
                    drop(st);
                    out.cv.notify_one();
                }
                !last
            }
            _ => false,
        }
    }
}

/// Writes results that waited [`MAX_DELAY`] behind a long task.
fn flusher(out: &Out) {
    let mut st = lock(&out.state);
    loop {
        if st.done {
            return;
        }
        match st.since {
            None => st = out.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
            Some(since) => {
                let waited = since.elapsed();
                if waited >= MAX_DELAY {
                    st.flush();
                } else {
                    st = out
                        .cv
                        .wait_timeout(st, MAX_DELAY - waited)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
