//! A worker's shared-memory block: what it has started, and its results.
//!
//! Each worker gets one `mp_shm::SharedMemory` block from the parent. The
//! worker publishes in it how many tasks it has started (stored before it
//! calls each task) and writes every result into a byte ring in it as soon
//! as the task returns, before it looks at the next task. So what a worker
//! finished is in memory the parent maps even if the worker dies the next
//! instant, and after a death the parent knows exactly which task was
//! running: the one started and without a result. No system call is made
//! per result unless the parent's reader sleeps (then the worker rings its
//! bell, a futex word in the block, as `mp-manager`'s fast path does).
//!
//! Layout (offsets in bytes, each word on its own cache line):
//!
//! - `0` started: tasks the worker has started (worker stores);
//! - `64` tail, `128` head: the result ring's positions (the worker stores
//!   tail after a record's bytes, the parent stores head after reading);
//! - `192` the reader's `sleeping` flag, `256` its bell (u32);
//! - `320` the worker's `sleeping` flag (waiting for room), `384` its bell;
//! - `448` sent: writes the parent made on the task socket, which an idle
//!   worker polls before it sleeps on its bell;
//! - `512` pollers: callers polling the ring in `get` (the worker rings
//!   the reader's bell only when nobody polls);
//! - `576` the CPU the worker last started a task on, plus one;
//! - `640` the worker's `sleeping` flag while it waits for a task, `704`
//!   its bell (the parent rings it when it writes to the task socket);
//! - `768` polled: a caller was polling when the worker published its last
//!   result (worker stores);
//! - `832` task start: the monotonic clock (ns) when the worker started its
//!   current task (or the current item of a chunk with time limits),
//!   stored before `started` (see `limits`): a vDSO clock read, no system
//!   call;
//! - `896` the worker's pid (worker stores, as it starts);
//! - [`DATA`]: the ring, [`CAP`] bytes.
//!
//! A record is `[len u32][tag u32][busy ns u64]` then `len` bytes padded to
//! 8. Positions grow for ever; a record never wraps: one that does not fit
//! before the ring's end is preceded by a [`WRAP`] record (or, with fewer
//! than 16 bytes left, by nothing) and starts at the ring's start. A
//! result longer than [`INLINE`] goes as a [`BIG`] record and then as a
//! frame `[len u64][bytes]` on the result socket, written after the record
//! is committed (so a frame larger than the socket's buffer cannot wait
//! for a reader that waits for the record).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mp_shm::SharedMemory;

use crate::error::{Error, ErrorKind, WireError};
use crate::result::Blob;
use crate::wire;

/// The ring's size: pages are touched only as it fills.
const CAP: usize = 1 << 20;
const DATA: usize = 4096;
/// The block's size.
pub(crate) const LEN: usize = DATA + CAP;
/// Results longer than this go through the socket.
const INLINE: usize = CAP / 4;

const STARTED: usize = 0;
const TAIL: usize = 64;
const HEAD: usize = 128;
const READER_SLEEPING: usize = 192;
const READER_BELL: usize = 256;
const WORKER_SLEEPING: usize = 320;
const WORKER_BELL: usize = 384;
const SENT: usize = 448;
const POLLERS: usize = 512;
const WORKER_CPU: usize = 576;
const TASK_SLEEPING: usize = 640;
const TASK_BELL: usize = 704;
const POLLED: usize = 768;
const TASK_START: usize = 832;
const PID: usize = 896;
/// The last word.
const LAST: usize = PID;

const REC: usize = 16;
/// Record tags.
const OK: u32 = 0;
const ERR: u32 = 1;
/// A result on the socket; its low bit is [`OK`] or [`ERR`].
const BIG: u32 = 2;
const WRAP: u32 = 4;
const INIT_FAILED: u32 = 5;

/// How long a sleeper sleeps before it looks again (the reader: whether the
/// worker is gone; the worker: for room).
const SLICE: Duration = Duration::from_millis(20);
/// How long an idle worker sleeps before it looks at its socket again
/// (only a lost wake-up, which the protocol rules out, would need it).
const TASK_SLICE: Duration = Duration::from_millis(100);
/// An idle worker polls for its next task this long while a caller waits.
const TASK_SPIN: Duration = Duration::from_micros(50);

/// The block, with checked access to its words.
#[derive(Clone)]
pub(crate) struct Block(SharedMemory);

impl Block {
    /// A new zero-filled block.
    pub(crate) fn new() -> Result<Block, Error> {
        let shm = SharedMemory::new(LEN).map_err(|e| {
            Error::new(
                ErrorKind::Process,
                format!("cannot start a worker: its block: {e}"),
            )
        })?;
        Block::from_shm(shm)
    }

    /// Checks a block that came with the worker's arguments.
    pub(crate) fn from_shm(shm: SharedMemory) -> Result<Block, Error> {
        let bad = |why: String| Error::new(ErrorKind::Process, why);
        if shm.len() != LEN {
            return Err(bad(format!(
                "a worker block of {} bytes, not {LEN}",
                shm.len()
            )));
        }
        // Checked once here, so that `word` and `bell` cannot fail later.
        for at in (0..=LAST).step_by(64) {
            shm.atomic_u64_at(at).map_err(|e| bad(e.to_string()))?;
        }
        Ok(Block(shm))
    }

    /// The handle, to pass to the worker.
    pub(crate) fn shm(&self) -> &SharedMemory {
        &self.0
    }

    fn word(&self, at: usize) -> &AtomicU64 {
        self.0
            .atomic_u64_at(at)
            .expect("the fixed offsets are aligned and inside LEN")
    }

    fn bell(&self, at: usize) -> &AtomicU32 {
        self.0
            .atomic_u32_at(at)
            .expect("the fixed offsets are aligned and inside LEN")
    }

    /// How many tasks the worker has started.
    pub(crate) fn started(&self) -> u64 {
        self.word(STARTED).load(Ordering::SeqCst)
    }

    /// The worker: it starts task number `n` (from 1) now.
    pub(crate) fn set_started(&self, n: u64) {
        self.word(STARTED).store(n, Ordering::SeqCst);
        let cpu = mp_shm::current_cpu().map_or(0, |c| c as u64 + 1);
        self.word(WORKER_CPU).store(cpu, Ordering::Relaxed);
    }

    /// The worker: its current task (or item) started at `ns` on the
    /// monotonic clock. Stored before `started`, so that
    /// the supervisor, which loads `started` first, never pairs a task
    /// with an older stamp.
    pub(crate) fn set_task_start(&self, ns: u64) {
        self.word(TASK_START).store(ns, Ordering::SeqCst);
    }

    /// When the worker's current task (or item) started.
    pub(crate) fn task_start(&self) -> u64 {
        self.word(TASK_START).load(Ordering::SeqCst)
    }

    /// The worker, as it starts: its pid.
    pub(crate) fn set_pid(&self, pid: u32) {
        self.word(PID).store(u64::from(pid), Ordering::SeqCst);
    }

    /// The worker's pid (0 until it has started).
    pub(crate) fn pid(&self) -> u32 {
        self.word(PID).load(Ordering::SeqCst) as u32
    }

    /// The CPU the worker last started a task on, plus one (0: unknown).
    pub(crate) fn worker_cpu(&self) -> u64 {
        self.word(WORKER_CPU).load(Ordering::Relaxed)
    }

    /// The parent: it wrote to the task socket (after each write, so
    /// that a worker that found the socket empty and raised its flag is
    /// rung: see [`Block::wait_task`]).
    pub(crate) fn note_sent(&self) {
        self.word(SENT).fetch_add(1, Ordering::SeqCst);
        if self.word(TASK_SLEEPING).load(Ordering::SeqCst) != 0 {
            let bell = self.bell(TASK_BELL);
            bell.fetch_add(1, Ordering::SeqCst);
            mp_shm::futex_wake(bell, 1);
        }
    }

    /// The worker, whose (non-blocking) task socket was empty, while a
    /// caller waits for a result (it is likely to send the next task at
    /// once): polls the parent's count of writes for [`TASK_SPIN`], then
    /// sleeps on the bell until `try_read` gives something (bytes, end of
    /// stream or an error). None at once when no caller waits: the worker
    /// then sleeps in a blocking `read`, as in a burst of `apply_async`
    /// (the bell's wake-ups cost the burst in some runs). A bell and not
    /// `read` for a call at a time: the kernel wakes a Unix socket's reader
    /// on the writer's CPU, which kept the worker on its caller's CPU, each
    /// waiting for the other (`pool_apply_latency` ran at about 20 us per
    /// call in such runs against 3 us; `mp-manager`'s fast path found the
    /// same). No wake-up is lost: the flag is raised before `try_read`
    /// looks, and the parent writes, then counts, then looks at the flag.
    pub(crate) fn wait_task<T>(&self, mut try_read: impl FnMut() -> Option<T>) -> Option<T> {
        let waits = self.word(POLLED).load(Ordering::Relaxed) != 0 || self.pollers() > 0;
        if !waits {
            return None;
        }
        {
            let seen = self.sent();
            let until = Instant::now() + TASK_SPIN;
            let mut round = 0u32;
            while self.sent() == seen {
                round = round.wrapping_add(1);
                if round.is_multiple_of(64) && Instant::now() >= until {
                    break;
                }
                std::hint::spin_loop();
            }
            if let Some(t) = try_read() {
                return Some(t);
            }
        }
        let flag = self.word(TASK_SLEEPING);
        let bell = self.bell(TASK_BELL);
        loop {
            flag.store(1, Ordering::SeqCst);
            let rung = bell.load(Ordering::SeqCst);
            if let Some(t) = try_read() {
                flag.store(0, Ordering::Relaxed);
                return Some(t);
            }
            mp_shm::futex_wait(bell, rung, Some(TASK_SLICE));
        }
    }

    /// The writes the parent has made to the task socket.
    pub(crate) fn sent(&self) -> u64 {
        self.word(SENT).load(Ordering::Acquire)
    }

    /// Whether the ring holds records the parent has not read.
    pub(crate) fn has_records(&self) -> bool {
        self.word(TAIL).load(Ordering::Acquire) != self.word(HEAD).load(Ordering::Relaxed)
    }

    /// A caller starts or stops polling the ring.
    pub(crate) fn poll_start(&self) {
        self.word(POLLERS).fetch_add(1, Ordering::SeqCst);
    }

    /// Callers polling the ring now.
    pub(crate) fn pollers(&self) -> u64 {
        self.word(POLLERS).load(Ordering::Relaxed)
    }

    pub(crate) fn poll_stop(&self) {
        self.word(POLLERS).fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes the reader if it sleeps (the supervisor, after a death, so
    /// that the reader sees it at once).
    pub(crate) fn ring_reader(&self) {
        let bell = self.bell(READER_BELL);
        bell.fetch_add(1, Ordering::SeqCst);
        mp_shm::futex_wake(bell, u32::MAX);
    }
}

/// Rounds up to a multiple of 8.
fn pad(n: usize) -> usize {
    (n + 7) & !7
}

/// The worker's end of the ring.
pub(crate) struct Writer {
    block: Block,
    /// For results longer than [`INLINE`].
    sock: UnixStream,
    tail: u64,
    /// The head loaded last: reloaded only when the ring looks full.
    head: u64,
}

impl Writer {
    pub(crate) fn new(block: Block, sock: UnixStream) -> Writer {
        Writer {
            block,
            sock,
            tail: 0,
            head: 0,
        }
    }

    pub(crate) fn block(&self) -> &Block {
        &self.block
    }

    /// Publishes a task's outcome.
    pub(crate) fn result(&mut self, result: &Result<Vec<u8>, Error>, busy: Duration) {
        let busy = busy.as_nanos() as u64;
        match result {
            Ok(bytes) => self.push(OK, bytes, busy),
            Err(e) => {
                let bytes = mp_process::encode(&WireError::from_error(e)).unwrap_or_default();
                self.push(ERR, &bytes, busy);
            }
        }
    }

    /// Publishes the initializer's failure.
    pub(crate) fn init_failed(&mut self, e: &Error) {
        let bytes = mp_process::encode(&WireError::from_error(e)).unwrap_or_default();
        self.push(INIT_FAILED, &bytes, 0);
    }

    fn push(&mut self, tag: u32, bytes: &[u8], busy: u64) {
        let big = bytes.len() > INLINE;
        let body = if big { 0 } else { bytes.len() };
        let tag = if big { BIG | tag } else { tag };
        let size = REC + pad(body);
        let mut pos = self.tail;
        let off = (pos % CAP as u64) as usize;
        if CAP - off < size {
            // Never wraps: skip to the ring's start.
            self.wait_room(pos + (CAP - off) as u64);
            if CAP - off >= REC {
                self.put_head(off, 0, WRAP, 0);
            }
            pos += (CAP - off) as u64;
        }
        self.wait_room(pos + size as u64);
        let off = (pos % CAP as u64) as usize;
        self.put_head(off, body as u32, tag, busy);
        if body > 0 {
            let _ = self.block.0.write_at(DATA + off + REC, bytes);
        }
        self.tail = pos + size as u64;
        self.block.word(TAIL).store(self.tail, Ordering::SeqCst);
        self.wake_reader();
        if big {
            // The parent reads the frame when it reaches the record; a
            // failed write means it is gone.
            let mut frame = Vec::with_capacity(8);
            frame.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            let _ = self.sock.write_all(&frame);
            let _ = self.sock.write_all(bytes);
        }
    }

    fn put_head(&self, off: usize, len: u32, tag: u32, busy: u64) {
        let mut head = [0u8; REC];
        head[0..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&tag.to_le_bytes());
        head[8..16].copy_from_slice(&busy.to_le_bytes());
        let _ = self.block.0.write_at(DATA + off, &head);
    }

    /// Waits until the ring has room up to position `end`.
    fn wait_room(&mut self, end: u64) {
        let room = |_: &Writer, head: u64| end - head <= CAP as u64;
        if room(self, self.head) {
            return;
        }
        let block = self.block.clone();
        let head = block.word(HEAD);
        let spin_until = Instant::now() + Duration::from_micros(50);
        loop {
            self.head = head.load(Ordering::Acquire);
            if room(self, self.head) {
                return;
            }
            if Instant::now() >= spin_until {
                break;
            }
            std::hint::spin_loop();
        }
        // The parent reads as it gets the bell; it never waits for us, so
        // this ends, or the pool kills us.
        let flag = block.word(WORKER_SLEEPING);
        let bell = block.bell(WORKER_BELL);
        loop {
            flag.store(1, Ordering::SeqCst);
            let rung = bell.load(Ordering::SeqCst);
            self.head = head.load(Ordering::SeqCst);
            if room(self, self.head) {
                flag.store(0, Ordering::Relaxed);
                return;
            }
            self.wake_reader();
            mp_shm::futex_wait(bell, rung, Some(SLICE));
            flag.store(0, Ordering::Relaxed);
        }
    }

    /// Rings the reader's bell if it sleeps and no caller polls. Runs after
    /// `tail` was stored with `SeqCst`: a reader (or caller) that raised
    /// its flag (or lowered its poll count) first sees the new tail when
    /// it looks after that; otherwise we see its flag here.
    fn wake_reader(&self) {
        let polled = self.block.word(POLLERS).load(Ordering::SeqCst) != 0;
        // For `wait_task`: the caller that had just taken the result may
        // have stopped polling by the time the worker looks for a task.
        self.block
            .word(POLLED)
            .store(u64::from(polled), Ordering::Relaxed);
        if !polled && self.block.word(READER_SLEEPING).load(Ordering::SeqCst) != 0 {
            let bell = self.block.bell(READER_BELL);
            bell.fetch_add(1, Ordering::SeqCst);
            mp_shm::futex_wake(bell, 1);
        }
    }
}

/// What the parent read from the ring.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) blobs: Vec<Blob>,
    pub(crate) busy_ns: u64,
    /// The initializer failed (a postcard `WireError`).
    pub(crate) init_failed: Option<Vec<u8>>,
}

/// The parent's end of a worker's ring, behind a lock: the reader thread
/// and callers waiting in `get` take turns at it. Whoever holds the lock
/// also hands the results on (`Shared::on_results`) before releasing it,
/// so batches reach the pool in ring order.
pub(crate) struct Port {
    block: Block,
    inner: Mutex<PortInner>,
}

pub(crate) struct PortInner {
    /// The result socket (non-blocking): big results, and the worker's end
    /// of stream.
    sock: UnixStream,
    /// Bytes read from the socket and not yet used: the start of a big
    /// result's frame, read while looking for the end of stream.
    pending: Vec<u8>,
    head: u64,
}

impl Port {
    /// `sock` is the parent's end of the result socket.
    pub(crate) fn new(block: Block, sock: UnixStream) -> std::io::Result<Port> {
        sock.set_nonblocking(true)?;
        Ok(Port {
            block,
            inner: Mutex::new(PortInner {
                sock,
                pending: Vec::new(),
                head: 0,
            }),
        })
    }

    pub(crate) fn block(&self) -> &Block {
        &self.block
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PortInner> {
        crate::result::lock(&self.inner)
    }

    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, PortInner>> {
        self.inner.try_lock().ok()
    }

    /// Reads every record the worker has committed. A big result whose
    /// frame cannot be read (the worker died writing it) stays unread, and
    /// the reading stops there: its task counts as the one that was
    /// running.
    pub(crate) fn take(&self, inner: &mut PortInner) -> Batch {
        let mut batch = Batch::default();
        let tail = self.block.word(TAIL).load(Ordering::Acquire);
        let shm = &self.block.0;
        while inner.head < tail {
            let off = (inner.head % CAP as u64) as usize;
            if CAP - off < REC {
                inner.head += (CAP - off) as u64;
                continue;
            }
            let mut head = [0u8; REC];
            let _ = shm.read_at(DATA + off, &mut head);
            let len = u32::from_le_bytes(head[0..4].try_into().expect("4")) as usize;
            let tag = u32::from_le_bytes(head[4..8].try_into().expect("4"));
            let busy = u64::from_le_bytes(head[8..16].try_into().expect("8"));
            if tag == WRAP {
                inner.head += (CAP - off) as u64;
                continue;
            }
            // A corrupt record (only a hostile worker writes one) ends the
            // reading; the worker's death then settles its tasks.
            if len > INLINE || off + REC + len > CAP {
                break;
            }
            let bytes = if tag & BIG != 0 {
                match read_big(inner) {
                    Ok(b) => b,
                    Err(_) => break,
                }
            } else {
                let mut b = vec![0u8; len];
                let _ = shm.read_at(DATA + off + REC, &mut b);
                b
            };
            inner.head += (REC + pad(len)) as u64;
            match tag & !BIG {
                OK => batch.blobs.push(Ok(bytes)),
                ERR => batch.blobs.push(Err(decode_error(&bytes))),
                INIT_FAILED => batch.init_failed = Some(bytes),
                _ => break,
            }
            batch.busy_ns += busy;
        }
        self.block.word(HEAD).store(inner.head, Ordering::SeqCst);
        if self.block.word(WORKER_SLEEPING).load(Ordering::SeqCst) != 0 {
            let bell = self.block.bell(WORKER_BELL);
            bell.fetch_add(1, Ordering::SeqCst);
            mp_shm::futex_wake(bell, 1);
        }
        batch
    }

    /// Whether the worker's end of the result socket is closed (it died or
    /// exited), or the socket was shut down.
    pub(crate) fn ended(&self, inner: &mut PortInner) -> bool {
        let mut b = [0u8; 4096];
        match (&inner.sock).read(&mut b) {
            Ok(0) => true,
            // A big result's frame, on its way: kept for `take`.
            Ok(n) => {
                inner.pending.extend_from_slice(&b[..n]);
                false
            }
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ),
        }
    }

    /// The reader sleeps until the worker rings (or [`SLICE`] passes);
    /// false if it was not rung.
    pub(crate) fn sleep(&self) -> bool {
        let flag = self.block.word(READER_SLEEPING);
        let bell = self.block.bell(READER_BELL);
        flag.store(1, Ordering::SeqCst);
        let rung = bell.load(Ordering::SeqCst);
        let woken = if self.block.word(TAIL).load(Ordering::SeqCst)
            != self.block.word(HEAD).load(Ordering::SeqCst)
        {
            true
        } else {
            let before = Instant::now();
            mp_shm::futex_wait(bell, rung, Some(SLICE)) && before.elapsed() < SLICE
        };
        flag.store(0, Ordering::Relaxed);
        woken
    }
}

/// Reads a big result's frame from the (non-blocking) socket, after the
/// bytes already read, blocking for it.
fn read_big(inner: &mut PortInner) -> std::io::Result<Vec<u8>> {
    let sock = &inner.sock;
    sock.set_nonblocking(false)?;
    let pending = std::mem::take(&mut inner.pending);
    let mut src = std::io::Cursor::new(pending).chain(sock);
    let r = (|| {
        let mut len = [0u8; 8];
        src.read_exact(&mut len)?;
        wire::read_vec(&mut src, u64::from_le_bytes(len) as usize)
    })();
    // What the frame did not use (the next frame's start) stays pending.
    let (rest, _) = src.into_inner();
    let at = rest.position() as usize;
    inner.pending = rest.into_inner().split_off(at);
    sock.set_nonblocking(true)?;
    r
}

fn decode_error(bytes: &[u8]) -> Error {
    mp_process::decode::<WireError>(bytes)
        .map(WireError::into_error)
        .unwrap_or_else(|e| Error::from_process(&e))
}
