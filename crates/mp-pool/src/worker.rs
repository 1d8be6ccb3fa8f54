//! The worker process: reads tasks from its socket, runs them in order and
//! streams the results back in batches.
//!
//! Results are batched so that a stream of tiny tasks costs one write per
//! batch, not per task: the worker writes when it would otherwise block
//! reading (no whole task is buffered), when a batch grows large, and, from
//! a small flusher thread, when a result has waited 1 ms behind a long
//! task. A result is therefore never held back for longer than about 1 ms.

use std::io::{BufReader, Write};
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
    /// The worker's end of its socket pair.
    pub(crate) sock: SharedFd,
    /// The initializer and its encoded arguments.
    pub(crate) init: Option<(RawFunction, Vec<u8>)>,
    /// Exit after this many tasks (Python's `maxtasksperchild`).
    pub(crate) max_tasks: Option<u64>,
}

/// A batch larger than this is written at once.
const BATCH_BYTES: usize = 64 * 1024;
/// A result waits at most this long for its batch.
const MAX_DELAY: Duration = Duration::from_millis(1);

struct Out {
    state: Mutex<OutState>,
    cv: Condvar,
}

struct OutState {
    sock: UnixStream,
    /// Encoded results not yet written (without the frame's head).
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
        let mut frame = Vec::with_capacity(wire::HEADER + 12 + self.buf.len());
        wire::put_header(&mut frame, wire::RESULTS, 12 + self.buf.len());
        frame.extend_from_slice(&self.busy_ns.to_le_bytes());
        frame.extend_from_slice(&self.count.to_le_bytes());
        frame.extend_from_slice(&self.buf);
        let _ = self.sock.write_all(&frame);
        self.buf.clear();
        self.count = 0;
        self.busy_ns = 0;
        self.since = None;
    }
}

/// The worker's main function.
pub(crate) fn worker_main(args: WorkerArgs) {
    let sock = UnixStream::from(args.sock.into_inner());
    if let Some((init, init_args)) = &args.init {
        if let Err(e) = init.call(init_args) {
            let body = mp_process::encode(&WireError::from_error(&Error::from_process(&e)))
                .unwrap_or_default();
            let mut sock = &sock;
            let _ = wire::write_frame(&mut sock, wire::INIT_FAILED, &body);
            return;
        }
    }
    let Ok(write_half) = sock.try_clone() else {
        return;
    };
    let out = Arc::new(Out {
        state: Mutex::new(OutState {
            sock: write_half,
            buf: Vec::new(),
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
    serve(&sock, &out, args.max_tasks);
    let mut st = lock(&out.state);
    st.flush();
    st.done = true;
    drop(st);
    out.cv.notify_all();
    if let Some(t) = flusher {
        let _ = t.join();
    }
}

fn serve(sock: &UnixStream, out: &Out, max_tasks: Option<u64>) {
    let mut reader = BufReader::with_capacity(256 * 1024, sock);
    let mut funcs: Vec<Option<RawFunction>> = Vec::new();
    let mut body = Vec::new();
    let mut done_tasks = 0u64;
    loop {
        let kind = match wire::read_frame(&mut reader, &mut body) {
            Ok(Some(kind)) => kind,
            Ok(None) | Err(_) => return,
        };
        match kind {
            wire::DEFINE => {
                let mut c = Cursor::new(&body);
                let Ok(fid) = c.u32() else { return };
                let raw = mp_process::decode::<RawFunction>(c.rest()).ok();
                let fid = fid as usize;
                if funcs.len() <= fid {
                    funcs.resize(fid + 1, None);
                }
                funcs[fid] = raw;
            }
            wire::TASK => {
                let mut c = Cursor::new(&body);
                let Ok(fid) = c.u32() else { return };
                let args = c.rest();
                let start = Instant::now();
                let result = match funcs.get(fid as usize) {
                    Some(Some(raw)) => raw.call(args).map_err(|e| Error::from_process(&e)),
                    _ => Err(Error::new(
                        crate::ErrorKind::Process,
                        format!("the worker does not know function {fid}"),
                    )),
                };
                let busy = start.elapsed();
                done_tasks += 1;
                let last = max_tasks.is_some_and(|m| done_tasks >= m);
                let mut st = lock(&out.state);
                st.push(&result, busy);
                if last || st.buf.len() >= BATCH_BYTES || !wire::has_frame(reader.buffer()) {
                    st.flush();
                } else if st.since.is_none() {
                    st.since = Some(Instant::now());
                    drop(st);
                    out.cv.notify_one();
                }
                if last {
                    return;
                }
            }
            _ => return,
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
