//! `Queue`, `SimpleQueue` and `JoinableQueue`: many producers and many
//! consumers over one `SOCK_SEQPACKET` socket pair, counted by mp-shm
//! semaphores.
//!
//! Transport: every handle holds both ends of one socket pair. A `put`
//! sends one datagram on the send end, a `get` receives one from the receive
//! end: the kernel delivers each message whole to exactly one receiver, in
//! the order each sender sent them. Items wait in the kernel's socket
//! buffer, not in the producer, so a producer that exits loses nothing and
//! keeps nobody waiting. Items longer than the inline limit travel in a memfd
//! whose descriptor rides along (`SCM_RIGHTS`), since a datagram must fit
//! in the socket buffer.
//!
//! Counting: `items` (a semaphore, the number of items sent and not yet
//! taken) is released after each send and acquired before each receive, so
//! a receive never blocks once it has its unit and `qsize`/`empty` are
//! exact snapshots; `get`'s waiting and timeout are the semaphore's.
//! `slots` (bounded queues) is acquired before a send and released after a
//! receive. `unfinished` (joinable queues) counts items put and not yet
//! `task_done`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mp_process::SharedFd;
use mp_shm::Semaphore;
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::SOCKET_BUFFER;
use crate::error::{GetError, PutError, TaskDoneError, Timeout};

/// The smallest limit for items carried inside a datagram: items whose
/// serialized form is longer than a queue's limit travel in a memfd. The
/// limit is a quarter of the socket's send buffer (at least this, at most
/// [`INLINE_LIMIT_MAX`]): a datagram must fit the buffer whole, and copying
/// through the socket is faster than filling a fresh memfd.
pub const INLINE_LIMIT_MIN: usize = 16 * 1024;

/// The largest limit for items carried inside a datagram; see
/// [`INLINE_LIMIT_MIN`].
pub const INLINE_LIMIT_MAX: usize = 2 * 1024 * 1024;

const TAG_INLINE: u8 = 0;
const TAG_MEMFD: u8 = 1;

thread_local! {
    /// Receive buffer: one datagram at most `1 + inline_max` bytes, reused
    /// so that a `get` neither allocates nor zeroes it each time.
    static RECV_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One encoded item on its way to the socket.
struct Msg {
    bytes: Vec<u8>,
    fd: Option<OwnedFd>,
}

/// What all handles of one queue share, in every process.
struct Core {
    tx: OwnedFd,
    rx: OwnedFd,
    items: Semaphore,
    slots: Option<Semaphore>,
    maxsize: u32,
    unfinished: Option<Semaphore>,
    /// Longest payload sent inside a datagram.
    inline_max: usize,
}

/// Items this process put while the socket buffer was full, in order, and
/// the thread that moves them into the socket.
#[derive(Default)]
struct Pending {
    queue: VecDeque<Msg>,
    /// Items handed to the feeder and not yet sent (including one it may be
    /// sending right now): while non-zero, new items go behind them.
    outstanding: usize,
    thread: Option<JoinHandle<()>>,
}

/// A handle's state in this process (clones share it).
struct Handle {
    core: Arc<Core>,
    pending: Arc<Mutex<Pending>>,
    closed: AtomicBool,
}

fn lock(p: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Items still waiting for room in the socket: wait for the feeder
        // to hand them over, as CPython's feeder thread does at exit.
        let t = lock(&self.pending).thread.take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl Core {
    fn new(maxsize: usize, joinable: bool) -> std::io::Result<Core> {
        let (tx, rx) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // Best effort: the buffer is how many items wait in the kernel.
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&tx, SOCKET_BUFFER);
        let sndbuf = rustix::net::sockopt::socket_send_buffer_size(&tx)?;
        let inline_max = (sndbuf / 4).clamp(INLINE_LIMIT_MIN, INLINE_LIMIT_MAX);
        let shm = |e: mp_shm::Error| std::io::Error::other(e.to_string());
        let bound = u32::try_from(maxsize).unwrap_or(u32::MAX);
        Ok(Core {
            tx,
            rx,
            items: Semaphore::new(0).map_err(shm)?,
            slots: if maxsize > 0 {
                Some(Semaphore::new(bound).map_err(shm)?)
            } else {
                None
            },
            maxsize: if maxsize > 0 { bound } else { 0 },
            unfinished: if joinable {
                Some(Semaphore::new(0).map_err(shm)?)
            } else {
                None
            },
            inline_max,
        })
    }

    /// Sends one message; `Ok(false)`: the socket buffer is full (only
    /// when `block` is false).
    fn send(&self, msg: &Msg, block: bool) -> std::io::Result<bool> {
        let flags = if block {
            SendFlags::NOSIGNAL
        } else {
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT
        };
        loop {
            let r = match &msg.fd {
                None => rustix::net::send(&self.tx, &msg.bytes, flags),
                Some(fd) => {
                    let fds = [fd.as_fd()];
                    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                    let mut control = SendAncillaryBuffer::new(&mut space);
                    control.push(SendAncillaryMessage::ScmRights(&fds));
                    rustix::net::sendmsg(
                        &self.tx,
                        &[std::io::IoSlice::new(&msg.bytes)],
                        &mut control,
                        flags,
                    )
                }
            };
            match r {
                Ok(_) => return Ok(true),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if !block => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message (a unit of `items` is held, so one is there)
    /// and returns its payload.
    fn recv_payload<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        RECV_BUF.with(|b| {
            let mut buf = b.borrow_mut();
            if buf.len() < 1 + self.inline_max {
                // Zeroed pages from the allocator: untouched ones cost nothing.
                *buf = vec![0; 1 + self.inline_max];
            }
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let (n, fd) = loop {
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let r = rustix::net::recvmsg(
                    &self.rx,
                    &mut [std::io::IoSliceMut::new(&mut buf)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                );
                match r {
                    Ok(m) => {
                        let mut fd = None;
                        for c in control.drain() {
                            if let RecvAncillaryMessage::ScmRights(fds) = c {
                                for f in fds {
                                    fd.get_or_insert(f);
                                }
                            }
                        }
                        break (m.bytes, fd);
                    }
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(GetError::Io(e.into())),
                }
            };
            match (buf.first(), fd) {
                (Some(&TAG_INLINE), _) if n >= 1 => Ok(f(&buf[1..n])),
                (Some(&TAG_MEMFD), Some(fd)) if n == 9 => {
                    let len = u64::from_le_bytes(buf[1..9].try_into().expect("8 bytes"));
                    let len = usize::try_from(len)
                        .map_err(|_| GetError::Decode("item too long".into()))?;
                    // Positional: the producer's writes moved the shared
                    // file offset to the end. `vec!` of zeroes comes from
                    // fresh zero pages here: no zeroing pass.
                    let mut payload = vec![0; len];
                    File::from(fd)
                        .read_exact_at(&mut payload, 0)
                        .map_err(GetError::Io)?;
                    Ok(f(&payload))
                }
                _ => Err(GetError::Decode("malformed queue message".into())),
            }
        })
    }
}

impl Handle {
    fn new(core: Core) -> Handle {
        Handle {
            core: Arc::new(core),
            pending: Arc::default(),
            closed: AtomicBool::new(false),
        }
    }

    fn put<T: Serialize>(&self, item: T, deadline: Option<Instant>) -> Result<(), PutError<T>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PutError::Closed(item));
        }
        // Serialize first: a value that cannot be encoded takes no slot.
        let msg = match encode(&item, self.core.inline_max) {
            Ok(m) => m,
            Err(e) => {
                return Err(match e {
                    EncodeError::Encode(s) => PutError::Encode(item, s),
                    EncodeError::Io(e) => PutError::Io(item, e),
                });
            }
        };
        if let Some(slots) = &self.core.slots {
            if !acquire(slots, deadline) {
                return Err(PutError::Full(item));
            }
        }
        if let Some(u) = &self.core.unfinished {
            // Counted before the item is visible, so that a task_done for
            // it can never come first.
            let _ = u.release();
        }
        match self.send_or_queue(msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(slots) = &self.core.slots {
                    let _ = slots.release();
                }
                if let Some(u) = &self.core.unfinished {
                    u.try_acquire();
                }
                Err(PutError::Io(item, e))
            }
        }
    }

    /// Sends now if the socket has room and nothing of this process waits
    /// before it; otherwise hands the item to the feeder thread.
    fn send_or_queue(&self, msg: Msg) -> std::io::Result<()> {
        let mut p = lock(&self.pending);
        if p.outstanding == 0 && self.core.send(&msg, false)? {
            drop(p);
            let _ = self.core.items.release();
            return Ok(());
        }
        p.queue.push_back(msg);
        p.outstanding += 1;
        if p.thread.is_none() {
            let core = Arc::clone(&self.core);
            let pending = Arc::clone(&self.pending);
            p.thread = Some(
                std::thread::Builder::new()
                    .name("mp-queue-feeder".into())
                    .spawn(move || feed(&core, &pending))?,
            );
        }
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<T, GetError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(GetError::Closed);
        }
        if !acquire(&self.core.items, deadline) {
            return Err(GetError::Empty);
        }
        let r = self.core.recv_payload(|bytes| decode::<T>(bytes));
        if let Some(slots) = &self.core.slots {
            let _ = slots.release();
        }
        r?
    }
}

/// Takes a unit of `sem` by `deadline` (`None`: forever). No spinning
/// here, unlike the connections: measured, a consumer spinning on the
/// semaphore's word slows the producer's releases (small-item throughput
/// fell from 1.1M to 0.8M items/s).
fn acquire(sem: &Semaphore, deadline: Option<Instant>) -> bool {
    match deadline {
        None => {
            sem.acquire();
            true
        }
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                sem.try_acquire()
            } else {
                sem.acquire_timeout(left)
            }
        }
    }
}

/// The feeder thread: sends this process's waiting items in order,
/// blocking while the socket is full; ends when none is left.
fn feed(core: &Core, pending: &Mutex<Pending>) {
    loop {
        let msg = {
            let mut p = lock(pending);
            match p.queue.pop_front() {
                Some(m) => m,
                None => {
                    p.thread = None;
                    return;
                }
            }
        };
        let sent = core.send(&msg, true);
        lock(pending).outstanding -= 1;
        match sent {
            Ok(_) => {
                let _ = core.items.release();
            }
            Err(e) => {
                // The socket is gone (cannot happen while this process
                // holds both ends); say so rather than drop silently.
                eprintln!("mp-ipc: a queued item could not be sent: {e}");
                if let Some(slots) = &core.slots {
                    let _ = slots.release();
                }
            }
        }
    }
}

enum EncodeError {
    Encode(String),
    Io(std::io::Error),
}

fn encode<T: Serialize>(item: &T, inline_max: usize) -> Result<Msg, EncodeError> {
    let size = postcard::experimental::serialized_size(item)
        .map_err(|e| EncodeError::Encode(e.to_string()))?;
    let mut buf = Vec::with_capacity(1 + size);
    buf.push(TAG_INLINE);
    let bytes = postcard::to_extend(item, buf).map_err(|e| EncodeError::Encode(e.to_string()))?;
    if bytes.len() - 1 <= inline_max {
        return Ok(Msg { bytes, fd: None });
    }
    let fd = rustix::fs::memfd_create("mp-queue-item", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| EncodeError::Io(e.into()))?;
    let mut f = File::from(fd);
    f.write_all(&bytes[1..]).map_err(EncodeError::Io)?;
    let mut header = vec![TAG_MEMFD];
    header.extend_from_slice(&((bytes.len() - 1) as u64).to_le_bytes());
    Ok(Msg {
        bytes: header,
        fd: Some(f.into()),
    })
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GetError> {
    crate::connection::decode(bytes).map_err(|e| match e {
        crate::Error::Decode(s) => GetError::Decode(s),
        other => GetError::Decode(other.to_string()),
    })
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    Some(
        Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32)),
    )
}

/// What a queue handle looks like inside a process's arguments.
#[derive(Serialize, Deserialize)]
struct WireQueue {
    tx: SharedFd,
    rx: SharedFd,
    items: Semaphore,
    slots: Option<Semaphore>,
    maxsize: u32,
    unfinished: Option<Semaphore>,
    inline_max: usize,
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        if self.closed.load(Ordering::Relaxed) {
            return Err(S::Error::custom("the queue is closed"));
        }
        let c = &self.core;
        WireQueue {
            tx: SharedFd::new(c.tx.try_clone().map_err(S::Error::custom)?),
            rx: SharedFd::new(c.rx.try_clone().map_err(S::Error::custom)?),
            items: c.items.clone(),
            slots: c.slots.clone(),
            maxsize: c.maxsize,
            unfinished: c.unfinished.clone(),
            inline_max: c.inline_max,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Handle, D::Error> {
        let w = WireQueue::deserialize(deserializer)?;
        Ok(Handle::new(Core {
            tx: w.tx.into_inner(),
            rx: w.rx.into_inner(),
            items: w.items,
            slots: w.slots,
            maxsize: w.maxsize,
            unfinished: w.unfinished,
            inline_max: w.inline_max,
        }))
    }
}

macro_rules! handle_serde {
    ($ty:ident) => {
        impl<T> Serialize for $ty<T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.h.serialize(serializer)
            }
        }

        impl<'de, T> Deserialize<'de> for $ty<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$ty<T>, D::Error> {
                Ok($ty {
                    h: Arc::new(Handle::deserialize(deserializer)?),
                    _t: PhantomData,
                })
            }
        }

        impl<T> Clone for $ty<T> {
            fn clone(&self) -> $ty<T> {
                $ty {
                    h: Arc::clone(&self.h),
                    _t: PhantomData,
                }
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("qsize", &self.h.core.items.get_value())
                    .field("maxsize", &self.h.core.maxsize)
                    .field("closed", &self.h.closed.load(Ordering::Relaxed))
                    .finish()
            }
        }
    };
}

/// A queue of `T` for many producing and many consuming processes, Python's
/// `multiprocessing.Queue`.
///
/// Handles clone (in this process) and pass to children as process
/// arguments under every start method. Each producer's items arrive in the
/// order it put them; items of different producers interleave. `put`
/// serializes the value at the call (unlike CPython, which serializes later
/// in a feeder thread), so nothing done to it afterwards reaches a reader.
///
/// Where the items are: in the kernel's socket buffer, not in the
/// producer. A producer that exits (or is killed) after `put` returned
/// loses none of its items, and joining it never waits for a consumer:
/// CPython's "joining processes that use queues" deadlock does not happen.
/// Only when the socket buffer is full (a few thousand small items, or
/// 4 MiB, unread) does an unbounded queue keep further items in a feeder
/// thread of the putting process, as CPython does with all of them; a
/// handle dropped with such items waits until they are handed over.
///
/// ```
/// use mp_ipc::Queue;
///
/// fn produce(q: Queue<String>) {
///     for word in ["a", "b", "c"] {
///         q.put(word.to_string()).unwrap();
///     }
/// }
///
/// let q: Queue<String> = Queue::new()?;
/// let mut p = mp_process::Process::new(produce, q.clone());
/// p.start().unwrap();
/// p.join().unwrap(); // never waits for a consumer
/// let got: Vec<String> = (0..3).map(|_| q.get().unwrap()).collect();
/// assert_eq!(got, ["a", "b", "c"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Queue<T> {
    h: Arc<Handle>,
    _t: PhantomData<fn(T) -> T>,
}

handle_serde!(Queue);

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue.
    pub fn new() -> std::io::Result<Queue<T>> {
        Queue::with_maxsize(0)
    }

    /// A queue holding at most `maxsize` items (0: unbounded, as in
    /// Python; bounds above `u32::MAX` are `u32::MAX`).
    pub fn with_maxsize(maxsize: usize) -> std::io::Result<Queue<T>> {
        Ok(Queue {
            h: Arc::new(Handle::new(Core::new(maxsize, false)?)),
            _t: PhantomData,
        })
    }

    /// Puts `item`, waiting while a bounded queue is full.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put(item, None)
    }

    /// Puts `item`, waiting at most `timeout` for room
    /// ([`PutError::Full`] then, never earlier).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.h.put(item, deadline_after(timeout))
    }

    /// Puts `item` if there is room now ([`PutError::Full`] otherwise),
    /// Python's `put_nowait`.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put(item, Some(Instant::now()))
    }

    /// Takes the next item, waiting as long as it takes.
    pub fn get(&self) -> Result<T, GetError> {
        self.h.get(None)
    }

    /// Takes the next item, waiting at most `timeout` ([`GetError::Empty`]
    /// then, never earlier).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.h.get(deadline_after(timeout))
    }

    /// Takes an item if one is there now ([`GetError::Empty`] otherwise),
    /// Python's `get_nowait`.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.h.get(Some(Instant::now()))
    }

    /// The number of items put (and handed to the kernel) and not yet
    /// taken: a snapshot, other processes may change it at once.
    pub fn qsize(&self) -> usize {
        self.h.core.items.get_value() as usize
    }

    /// Whether [`qsize`](Queue::qsize) is 0 (a snapshot).
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether a bounded queue has no room now (a snapshot; always false
    /// when unbounded).
    pub fn full(&self) -> bool {
        self.h
            .core
            .slots
            .as_ref()
            .is_some_and(|s| s.get_value() == 0)
    }

    /// The bound given at creation (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.h.core.maxsize as usize
    }

    /// Closes this process's handles to the queue (all clones of this
    /// handle): `put` and `get` then give `Closed`. Other processes and
    /// the items already put are not affected. Closing twice is fine.
    pub fn close(&self) {
        self.h.closed.store(true, Ordering::Relaxed);
    }

    /// Whether [`close`](Queue::close) was called.
    pub fn is_closed(&self) -> bool {
        self.h.closed.load(Ordering::Relaxed)
    }
}

/// A simpler unbounded queue, Python's `multiprocessing.SimpleQueue`:
/// `put`, `get`, `empty` and `close`. Same transport and guarantees as
/// [`Queue`]; `empty` is reliable across processes.
pub struct SimpleQueue<T> {
    h: Arc<Handle>,
    _t: PhantomData<fn(T) -> T>,
}

handle_serde!(SimpleQueue);

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue.
    pub fn new() -> std::io::Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            h: Arc::new(Handle::new(Core::new(0, false)?)),
            _t: PhantomData,
        })
    }

    /// Puts `item` (it is serialized here).
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put(item, None)
    }

    /// Takes the next item, waiting as long as it takes.
    pub fn get(&self) -> Result<T, GetError> {
        self.h.get(None)
    }

    /// Takes the next item, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.h.get(deadline_after(timeout))
    }

    /// Whether no item is there (a snapshot).
    pub fn empty(&self) -> bool {
        self.h.core.items.get_value() == 0
    }

    /// Closes this process's handles; `put` and `get` then give `Closed`.
    /// Idempotent.
    pub fn close(&self) {
        self.h.closed.store(true, Ordering::Relaxed);
    }
}

/// A [`Queue`] whose consumers say when they have finished each item,
/// Python's `multiprocessing.JoinableQueue`: [`join`](JoinableQueue::join)
/// waits until every item put has had its [`task_done`](JoinableQueue::task_done).
pub struct JoinableQueue<T> {
    h: Arc<Handle>,
    _t: PhantomData<fn(T) -> T>,
}

handle_serde!(JoinableQueue);

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> std::io::Result<JoinableQueue<T>> {
        JoinableQueue::with_maxsize(0)
    }

    /// A joinable queue holding at most `maxsize` items (0: unbounded).
    pub fn with_maxsize(maxsize: usize) -> std::io::Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            h: Arc::new(Handle::new(Core::new(maxsize, true)?)),
            _t: PhantomData,
        })
    }

    fn as_queue(&self) -> Queue<T> {
        Queue {
            h: Arc::clone(&self.h),
            _t: PhantomData,
        }
    }

    /// [`Queue::put`].
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put(item, None)
    }

    /// [`Queue::put_timeout`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.h.put(item, deadline_after(timeout))
    }

    /// [`Queue::try_put`].
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put(item, Some(Instant::now()))
    }

    /// [`Queue::get`].
    pub fn get(&self) -> Result<T, GetError> {
        self.h.get(None)
    }

    /// [`Queue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.h.get(deadline_after(timeout))
    }

    /// [`Queue::try_get`].
    pub fn try_get(&self) -> Result<T, GetError> {
        self.h.get(Some(Instant::now()))
    }

    /// [`Queue::qsize`].
    pub fn qsize(&self) -> usize {
        self.as_queue().qsize()
    }

    /// [`Queue::empty`].
    pub fn empty(&self) -> bool {
        self.as_queue().empty()
    }

    /// [`Queue::full`].
    pub fn full(&self) -> bool {
        self.as_queue().full()
    }

    /// [`Queue::close`].
    pub fn close(&self) {
        self.h.closed.store(true, Ordering::Relaxed);
    }

    fn unfinished(&self) -> &Semaphore {
        self.h
            .core
            .unfinished
            .as_ref()
            .expect("a joinable queue counts unfinished tasks")
    }

    /// Says that one item taken with `get` has been dealt with. More calls
    /// than items put is a [`TaskDoneError`].
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.unfinished().try_acquire() {
            Ok(())
        } else {
            Err(TaskDoneError)
        }
    }

    /// The number of items put and not yet `task_done` (a snapshot).
    pub fn unfinished_tasks(&self) -> usize {
        self.unfinished().get_value() as usize
    }

    /// Waits until every item put (by any process) has had its `task_done`.
    pub fn join(&self) {
        let _ = self.join_deadline(None);
    }

    /// [`join`](JoinableQueue::join) waiting at most `timeout`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
        self.join_deadline(deadline_after(timeout))
    }

    fn join_deadline(&self, deadline: Option<Instant>) -> Result<(), Timeout> {
        // Polls with a growing pause (capped at 1 ms): a semaphore cannot be
        // waited on for zero, and a join is rare next to puts and gets.
        let mut pause = Duration::from_micros(20);
        loop {
            if self.unfinished().get_value() == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Timeout);
            }
            let nap = deadline.map_or(pause, |d| pause.min(d - now));
            std::thread::sleep(nap);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }
}
