//! `Queue`, `SimpleQueue` and `JoinableQueue`: many producers and many
//! consumers over a shared-memory ring, with a `SOCK_SEQPACKET` socket pair
//! for large items.
//!
//! Transport: every handle holds the queue's ring (an mp-shm
//! `SharedMemory` block, see `ring.rs`) and both ends of one socket pair.
//! A `put` of an item whose encoding is at most `RING_ITEM_MAX` (4 KiB)
//! copies a record into the ring under the ring's producer lock; a `get`
//! copies the oldest record out under its consumer lock. No system call in
//! either, unless someone sleeps. A larger item travels as one datagram on
//! the socket (or in a memfd whose descriptor rides along, `SCM_RIGHTS`,
//! past the inline limit), and the ring gets a reference record carrying
//! the datagram's sequence number, written under the producer lock after
//! the send: so there is one order, the ring's, for items of every size,
//! each producer's order is kept, and a consumer holding the consumer lock
//! finds the datagram of the record it reads already in the socket. Items
//! wait in shared memory or in the kernel's socket buffer, not in the
//! producer, so a producer that exits loses nothing and keeps nobody
//! waiting.
//!
//! Waiting: a consumer takes the consumer lock and looks at the ring: a
//! record between `head` and `tail` is there to take. An empty ring sends
//! it polling `tail` (loads only) for a moment, then to sleep on the
//! ring's bell, a futex word that a producer rings after a commit when
//! consumers sleep. Each item touches no word that both sides write: the
//! producer keeps the `head` it saw last and reloads it only when the ring
//! looks full, consumers keep the `tail` they saw last. (A semaphore
//! counting the items, which both sides updated for every item, kept its
//! cache line moving between the producer's CPU and the consumer's: about
//! 5M small items/s, against more than 8M without it.) `qsize` counts the
//! records under the consumer lock. `slots` (bounded queues) is acquired
//! before a commit and released after a take. `unfinished` (joinable
//! queues) counts items put and not yet `task_done`.
//!
//! Death: a process killed holding the producer lock committed nothing
//! (the ring's `tail` is written last; a datagram it sent without its
//! record is skipped by sequence number). A process killed holding the
//! consumer lock left a note (`taking`) saying how far it got, which the
//! next consumer (told by the lock's `OwnerDied`) acts on; see
//! `Core::recover`. A consumer killed while asleep leaves `sleepers`
//! counting it: producers then ring the bell after every commit, a system
//! call each, which costs speed and nothing else.

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
use mp_shm::{Lock, LockGuard, Semaphore, TryLockError};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::SOCKET_BUFFER;
use crate::error::{GetError, PutError, TaskDoneError, Timeout};

mod asyncs;
mod ring;
#[cfg(test)]
mod tests;

use ring::{CAP, KIND_INLINE, KIND_SOCKET, RING_ITEM_MAX, Ring};

/// The smallest limit for items carried inside a datagram: items whose
/// serialized form is longer than a queue's limit travel in a memfd. The
/// limit is a quarter of the socket's send buffer (at least this, at most
/// [`INLINE_LIMIT_MAX`]): a datagram must fit the buffer whole, and copying
/// through the socket is faster than filling a fresh memfd.
pub const INLINE_LIMIT_MIN: usize = 16 * 1024;

/// The largest limit for items carried inside a datagram; see
/// [`INLINE_LIMIT_MIN`].
pub const INLINE_LIMIT_MAX: usize = 2 * 1024 * 1024;

/// Tag of a socket message carrying the payload itself.
const TAG_INLINE: u8 = 0;
/// Tag of a socket message whose payload is in the attached memfd.
const TAG_MEMFD: u8 = 1;

/// How long `get` polls the ring's `tail` before sleeping on the bell. A
/// sleeping consumer costs the producer a futex wake and itself a futex
/// wait per item, which is most of an item's cost once the items go
/// through shared memory; a few microseconds of polling (loads only) keep
/// a consumer that is faster than its producers awake.
const GET_SPIN: Duration = Duration::from_micros(50);

/// A consumer that finds fewer bytes than this between `head` and `tail`
/// waits [`LAG_SPINS`] `pause`s before it takes them (see `Core::take`).
const LAG: u64 = 256;
const LAG_SPINS: u32 = 64;

/// How many rounds of `get`'s polling spin on the CPU (4 `pause`s each,
/// 25 ns apiece on the bench machine: about 5 µs) before the rest of
/// [`GET_SPIN`] yields the CPU between looks.
const GET_SPIN_HOT: u32 = 50;

thread_local! {
    /// Receive buffer: one ring payload or one datagram, reused so that a
    /// `get` neither allocates nor zeroes it each time.
    static RECV_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One encoded item on its way into the queue.
enum Msg {
    /// A whole ring record: header, payload, padding.
    Ring(Vec<u8>),
    /// A socket message (tag, sequence number, payload or memfd length)
    /// and the memfd, if any; the ring gets a reference record.
    Sock { bytes: Vec<u8>, fd: Option<OwnedFd> },
}

/// What all handles of one queue share, in every process.
struct Core {
    tx: OwnedFd,
    rx: OwnedFd,
    ring: Ring,
    slots: Option<Semaphore>,
    maxsize: u32,
    unfinished: Option<Semaphore>,
    /// Longest payload sent inside a datagram.
    inline_max: usize,
    /// The ring's `head` as this process's producers last loaded it.
    seen_head: std::sync::atomic::AtomicU64,
    /// The ring's `tail` as this process's consumers last loaded it.
    seen_tail: std::sync::atomic::AtomicU64,
}

/// Items this process put while the ring (or the socket buffer) was full,
/// in order, and the thread that moves them into the queue.
#[derive(Default)]
struct Pending {
    queue: VecDeque<Msg>,
    /// Items handed to the feeder and not yet committed (including one it
    /// may be committing right now): while non-zero, new items go behind
    /// them.
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
        // Items still waiting for room: wait for the feeder to hand them
        // over, as CPython's feeder thread does at exit.
        let t = lock(&self.pending).thread.take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

fn shm_io(e: mp_shm::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Core {
    fn new(maxsize: usize, joinable: bool) -> std::io::Result<Core> {
        let (tx, rx) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // Best effort: the buffer is how many large items wait in the kernel.
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&tx, SOCKET_BUFFER);
        let sndbuf = rustix::net::sockopt::socket_send_buffer_size(&tx)?;
        let inline_max = (sndbuf / 4).clamp(INLINE_LIMIT_MIN, INLINE_LIMIT_MAX);
        let bound = u32::try_from(maxsize).unwrap_or(u32::MAX);
        Ok(Core {
            tx,
            rx,
            ring: Ring::new().map_err(shm_io)?,
            slots: if maxsize > 0 {
                Some(Semaphore::new(bound).map_err(shm_io)?)
            } else {
                None
            },
            maxsize: if maxsize > 0 { bound } else { 0 },
            unfinished: if joinable {
                Some(Semaphore::new(0).map_err(shm_io)?)
            } else {
                None
            },
            inline_max,
            seen_head: std::sync::atomic::AtomicU64::new(0),
            seen_tail: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Sends one socket message without blocking; `Ok(false)`: the socket
    /// buffer is full.
    fn send(&self, bytes: &[u8], fd: Option<&OwnedFd>) -> std::io::Result<bool> {
        let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        loop {
            let r = match fd {
                None => rustix::net::send(&self.tx, bytes, flags),
                Some(fd) => {
                    let fds = [fd.as_fd()];
                    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                    let mut control = SendAncillaryBuffer::new(&mut space);
                    control.push(SendAncillaryMessage::ScmRights(&fds));
                    rustix::net::sendmsg(
                        &self.tx,
                        &[std::io::IoSlice::new(bytes)],
                        &mut control,
                        flags,
                    )
                }
            };
            match r {
                Ok(_) => return Ok(true),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Commits `msg` to the ring (and, for a large item, its payload to the
    /// socket) and wakes sleeping consumers. `Ok(false)`: no room now;
    /// nothing was committed. Never blocks except on the producer lock,
    /// which is only ever held for this.
    fn try_commit(&self, msg: &mut Msg) -> std::io::Result<bool> {
        let ring = &self.ring;
        // A producer that died holding the lock committed nothing: `tail`
        // is written last, so its half-written record is simply reused.
        let guard = match lock_spinning(&ring.producer) {
            Ok(g) | Err(g) => g,
        };
        let tail = ring.tail()?;
        let need = match msg {
            Msg::Ring(rec) => rec.len(),
            Msg::Sock { .. } => 16,
        };
        let free = |head: u64| {
            (CAP as u64)
                .checked_sub(tail.wrapping_sub(head))
                .ok_or_else(|| std::io::Error::other("the queue's ring is corrupted"))
        };
        // `head` only grows: the one seen last may be old, never ahead, so
        // the room it shows is there. Loading the shared `head` for every
        // item moved its cache line between the producer's CPU and the
        // consumer's, which stores it, at every item.
        let mut head = self.seen_head.load(Ordering::Relaxed);
        if tail.wrapping_sub(head) > CAP as u64 || free(head)? < need as u64 {
            head = ring.head.load(Ordering::Acquire);
            self.seen_head.store(head, Ordering::Relaxed);
            if free(head)? < need as u64 {
                return Ok(false);
            }
        }
        match msg {
            Msg::Ring(rec) => ring.write(tail, rec)?,
            Msg::Sock { bytes, fd } => {
                let seq = ring.next_seq()?;
                bytes[1..9].copy_from_slice(&seq.to_le_bytes());
                if !self.send(bytes, fd.as_ref())? {
                    return Ok(false);
                }
                let mut rec = [0; 16];
                rec[..8].copy_from_slice(&ring::header(KIND_SOCKET, 0).to_le_bytes());
                rec[8..].copy_from_slice(&seq.to_le_bytes());
                ring.write(tail, &rec)?;
            }
        }
        ring.set_tail(tail + need as u64)?;
        drop(guard);
        self.wake_consumers()?;
        Ok(true)
    }

    /// Rings the bell if consumers sleep. Runs after `tail` was stored
    /// (`SeqCst`); a consumer raises `sleepers` (`SeqCst`) before it looks
    /// at `tail` a last time: so either it sees the new record, or this
    /// sees it and rings. Every sleeper is woken: one that gives up on its
    /// timeout meanwhile must not swallow the wake-up of another.
    fn wake_consumers(&self) -> std::io::Result<()> {
        if self.ring.sleepers()?.load(Ordering::SeqCst) > 0 {
            let bell = self.ring.bell()?;
            bell.fetch_add(1, Ordering::SeqCst);
            mp_shm::futex_wake(bell, i32::MAX as u32);
        }
        Ok(())
    }

    /// Waits until the ring shows a record (`true`) or `deadline` passes
    /// (`false`): polls `tail` for [`GET_SPIN`], then sleeps on the bell.
    fn wait_for_items(&self, deadline: Option<Instant>) -> std::io::Result<bool> {
        let ring = &self.ring;
        let tail = ring.tail_word()?;
        let there = |order| tail.load(order) != ring.head.load(order);
        let start = Instant::now();
        let until = match deadline {
            Some(d) if d < start + GET_SPIN => d,
            _ => start + GET_SPIN,
        };
        let mut n = 0u32;
        // A try (`deadline` now) does not poll.
        while n == 0 || !n.is_multiple_of(8) || Instant::now() < until {
            if there(Ordering::Acquire) {
                return Ok(true);
            }
            if until <= start {
                break;
            }
            if n < GET_SPIN_HOT {
                // (Longer and longer pauses between looks were tried, to
                // leave `tail`'s cache line to the producer: small items
                // fell from 8M to 5M/s, four producers from 7.8M to 4.9M.)
                for _ in 0..4 {
                    std::hint::spin_loop();
                }
            } else {
                // Past the first microseconds, let a producer that shares
                // this core run: on a busy machine it is what we wait for.
                std::thread::yield_now();
            }
            n += 1;
        }
        let sleepers = ring.sleepers()?;
        let bell = ring.bell()?;
        loop {
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(there(Ordering::Acquire)),
                },
            };
            sleepers.fetch_add(1, Ordering::SeqCst);
            let rung = bell.load(Ordering::SeqCst);
            if there(Ordering::SeqCst) {
                sleepers.fetch_sub(1, Ordering::SeqCst);
                return Ok(true);
            }
            mp_shm::futex_wait(bell, rung, left);
            sleepers.fetch_sub(1, Ordering::SeqCst);
            if there(Ordering::Acquire) {
                return Ok(true);
            }
        }
    }

    /// How many records the ring holds (consumer lock taken for the walk,
    /// so that no record changes under it).
    fn count(&self) -> usize {
        let ring = &self.ring;
        // A failed recovery leaves the records to count as they are.
        let (_guard, _) = self.lock_consumer();
        let head = ring.head.load(Ordering::Relaxed);
        let Ok(tail) = ring.tail() else { return 0 };
        let (mut pos, mut n) = (head, 0);
        while pos < tail {
            let mut h = [0; 8];
            let size = ring
                .read(pos, &mut h)
                .ok()
                .and_then(|()| ring::record_len(u64::from_le_bytes(h)));
            let Some(size) = size else { break };
            pos += size as u64;
            n += 1;
        }
        n
    }

    /// Whether the ring holds no record (a snapshot).
    fn is_empty(&self) -> bool {
        self.ring
            .tail()
            .is_ok_and(|t| t == self.ring.head.load(Ordering::Acquire))
    }

    fn release_slot(&self) {
        if let Some(slots) = &self.slots {
            let _ = slots.release();
        }
    }

    /// Puts right what a consumer that died holding the consumer lock left
    /// (the lock is held now). `taking` says how far it got: not started
    /// (nothing to do), record not yet taken (the record stays for the next
    /// consumer) unless it had already received the record's socket message
    /// (then the item died with it: the record is skipped, its slot given
    /// back), or record taken but the slot not yet given back (given back
    /// now).
    fn recover(&self) -> std::io::Result<()> {
        let ring = &self.ring;
        let taking = ring.taking()?;
        if taking == ring::NONE {
            return Ok(());
        }
        let head = ring.head.load(Ordering::Relaxed);
        if taking == head {
            let mut rec = [0; 16];
            ring.read(head, &mut rec[..8])?;
            let hdr = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
            let gone = if (hdr >> 32) as u32 == KIND_SOCKET {
                ring.read(head + 8, &mut rec[8..])?;
                let seq = u64::from_le_bytes(rec[8..].try_into().expect("8 bytes"));
                !self.message_waiting(seq)?
            } else {
                false
            };
            if gone {
                ring.head.store(head + 16, Ordering::Release);
                self.release_slot();
            }
        } else {
            self.release_slot();
        }
        ring.set_taking(ring::NONE)
    }

    /// Takes the consumer lock, and puts right what a consumer that died
    /// holding it left (see [`Core::recover`]); how that went.
    fn lock_consumer(&self) -> (LockGuard<'_>, std::io::Result<()>) {
        match lock_spinning(&self.ring.consumer) {
            Ok(g) => (g, Ok(())),
            Err(g) => (g, self.recover()),
        }
    }

    /// Takes the record at the head, if there is one, and gives its payload
    /// to `f`; `Ok(None)` when the ring is empty.
    fn take<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, GetError> {
        let ring = &self.ring;
        let (guard, recovered) = self.lock_consumer();
        recovered.map_err(GetError::Io)?;
        let head = ring.head.load(Ordering::Relaxed);
        // Records below a `tail` seen before (by any consumer thread of
        // this process) are committed; only when they are used up is the
        // shared `tail` loaded again.
        let seen = self.seen_tail.load(Ordering::Acquire);
        if seen.wrapping_sub(head).wrapping_sub(1) >= CAP as u64 {
            let mut tail = ring.tail().map_err(GetError::Io)?;
            if tail == head {
                return Ok(None);
            }
            if tail.wrapping_sub(head) < LAG {
                // Only a few records: a producer is likely still writing
                // into the cache lines this would read. Reading them now
                // makes each line cross between the two CPUs once per
                // record instead of once; a moment's wait lets the
                // producer get ahead, and the records come in a batch.
                for _ in 0..LAG_SPINS {
                    std::hint::spin_loop();
                }
                tail = ring.tail().map_err(GetError::Io)?;
            }
            self.seen_tail.store(tail, Ordering::Release);
        }
        RECV_BUF.with(|b| {
            let mut buf = b.borrow_mut();
            let want = (9 + self.inline_max).max(RING_ITEM_MAX);
            if buf.len() < want {
                // Zeroed pages from the allocator: untouched ones cost nothing.
                *buf = vec![0; want];
            }
            ring.set_taking(head).map_err(GetError::Io)?;
            let taken = self.take_at(head, &mut buf);
            if taken.is_err() {
                // Nothing was taken: the next consumer needs no recovery.
                let _ = ring.set_taking(ring::NONE);
            }
            let (size, got) = taken?;
            ring.head.store(head + size as u64, Ordering::Release);
            ring.set_taking(ring::NONE).map_err(GetError::Io)?;
            drop(guard);
            self.release_slot();
            match got {
                Got::Ring(len) => Ok(Some(f(&buf[..len]))),
                Got::Inline(n) => Ok(Some(f(&buf[9..n]))),
                Got::Missing => Err(GetError::Malformed(
                    "the queue's socket message for this item is missing".into(),
                )),
                Got::Memfd(fd, len) => {
                    // Positional: the producer's writes moved the shared
                    // file offset to the end. `vec!` of zeroes comes from
                    // fresh zero pages here: no zeroing pass.
                    let mut payload = vec![0; len];
                    File::from(fd)
                        .read_exact_at(&mut payload, 0)
                        .map_err(GetError::Io)?;
                    Ok(Some(f(&payload)))
                }
            }
        })
    }

    /// Reads the record at `head` (consumer lock held): its size in the
    /// ring and where its payload is.
    fn take_at(&self, head: u64, buf: &mut [u8]) -> Result<(usize, Got), GetError> {
        let ring = &self.ring;
        let malformed = || GetError::Malformed("a record header no queue wrote".into());
        let mut h = [0; 8];
        ring.read(head, &mut h).map_err(GetError::Io)?;
        let hdr = u64::from_le_bytes(h);
        let size = ring::record_len(hdr).ok_or_else(malformed)?;
        if (hdr >> 32) as u32 == KIND_INLINE {
            let len = (hdr & 0xffff_ffff) as usize;
            ring.read(head + 8, &mut buf[..len]).map_err(GetError::Io)?;
            return Ok((size, Got::Ring(len)));
        }
        ring.read(head + 8, &mut h).map_err(GetError::Io)?;
        let seq = u64::from_le_bytes(h);
        loop {
            let (n, fd) = match self.recv(buf, RecvFlags::DONTWAIT) {
                Ok(m) => m,
                // Sent before its record was committed, so it is there
                // unless lost; say so rather than wait for ever.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok((size, Got::Missing));
                }
                Err(e) => return Err(GetError::Io(e)),
            };
            let dseq = match buf.get(1..9) {
                Some(s) if n >= 9 => u64::from_le_bytes(s.try_into().expect("8 bytes")),
                _ => return Err(malformed()),
            };
            if dseq < seq {
                // Sent by a producer that died before committing its
                // record: never counted, never delivered.
                continue;
            }
            if dseq > seq {
                return Ok((size, Got::Missing));
            }
            return match (buf[0], fd) {
                (TAG_INLINE, _) => Ok((size, Got::Inline(n))),
                (TAG_MEMFD, Some(fd)) if n == 17 => {
                    let len = u64::from_le_bytes(buf[9..17].try_into().expect("8 bytes"));
                    let len = usize::try_from(len)
                        .map_err(|_| GetError::Malformed("item too long".into()))?;
                    Ok((size, Got::Memfd(fd, len)))
                }
                _ => Err(malformed()),
            };
        }
    }

    /// Whether the socket message numbered `seq` is still in the socket
    /// (consumer lock held). Messages before it, sent by producers that
    /// died before committing their records, are dropped on the way.
    fn message_waiting(&self, seq: u64) -> std::io::Result<bool> {
        loop {
            let mut b = [0; 9];
            match rustix::net::recv(&self.rx, &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
                Ok(_) => {
                    let dseq = u64::from_le_bytes(b[1..9].try_into().expect("8 bytes"));
                    if dseq >= seq {
                        return Ok(dseq == seq);
                    }
                    // A short buffer: the rest of the datagram is dropped.
                    self.recv(&mut b, RecvFlags::DONTWAIT)?;
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one socket message into `buf`, with its descriptor if any.
    fn recv(&self, buf: &mut [u8], flags: RecvFlags) -> std::io::Result<(usize, Option<OwnedFd>)> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = rustix::net::recvmsg(
                &self.rx,
                &mut [std::io::IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC | flags,
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
                    return Ok((m.bytes, fd));
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Where a taken record's payload is.
enum Got {
    /// In the receive buffer, this long (from the ring).
    Ring(usize),
    /// In the receive buffer at 9.., a datagram this long.
    Inline(usize),
    /// In this memfd, this long.
    Memfd(OwnedFd, usize),
    /// Nowhere: the record's socket message is not in the socket (which
    /// the protocol rules out). The record is skipped with an error, so
    /// that the queue goes on working.
    Missing,
}

impl Handle {
    fn new(core: Core) -> Handle {
        Handle {
            core: Arc::new(core),
            pending: Arc::default(),
            closed: AtomicBool::new(false),
        }
    }

    fn put<T: Serialize + DeserializeOwned>(
        &self,
        item: T,
        deadline: Option<Instant>,
    ) -> Result<(), PutError<T>> {
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
        match self.commit_or_queue(msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.core.release_slot();
                if let Some(u) = &self.core.unfinished {
                    u.try_acquire();
                }
                Err(PutError::Io(item, e))
            }
        }
    }

    /// Commits now if the ring has room and nothing of this process waits
    /// before it; otherwise hands the item to the feeder thread.
    fn commit_or_queue(&self, mut msg: Msg) -> std::io::Result<()> {
        let mut p = lock(&self.pending);
        if p.outstanding == 0 && self.core.try_commit(&mut msg)? {
            return Ok(());
        }
        if p.thread.is_none() {
            let core = Arc::clone(&self.core);
            let pending = Arc::clone(&self.pending);
            // Started before the item is queued: if it cannot start, the
            // item is given back to the caller, not left behind.
            p.thread = Some(
                std::thread::Builder::new()
                    .name("mp-queue-feeder".into())
                    .spawn(move || feed(&core, &pending))?,
            );
        }
        p.queue.push_back(msg);
        p.outstanding += 1;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<T, GetError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(GetError::Closed);
        }
        loop {
            if let Some(item) = self.core.take(|bytes| decode::<T>(bytes))? {
                return item;
            }
            if !self.core.wait_for_items(deadline).map_err(GetError::Io)? {
                return Err(GetError::Empty);
            }
        }
    }
}

/// How many times [`lock_spinning`] looks at a held lock before sleeping
/// (4 `pause`s between looks: about 5 µs in all).
const LOCK_SPINS: u32 = 50;

/// Takes `lock`, first polling it for a moment: ring locks are held for a
/// few dozen nanoseconds, while sleeping on one costs two system calls and
/// leaves the lock word marked as having waiters, so that the following
/// unlocks make a wake-up call too. `Err`: taken, but its previous holder
/// died holding it.
fn lock_spinning(lock: &Lock) -> Result<LockGuard<'_>, LockGuard<'_>> {
    for _ in 0..LOCK_SPINS {
        if !lock.is_locked() {
            match lock.try_lock() {
                Ok(g) => return Ok(g),
                Err(TryLockError::OwnerDied(died)) => return Err(died.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        for _ in 0..4 {
            std::hint::spin_loop();
        }
    }
    lock.lock().map_err(|died| died.into_inner())
}

/// Takes a unit of `sem` by `deadline` (`None`: forever).
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

/// The feeder thread: commits this process's waiting items in order,
/// waiting while the ring (or the socket buffer) is full; ends when none
/// is left.
fn feed(core: &Core, pending: &Mutex<Pending>) {
    loop {
        let mut msg = {
            let mut p = lock(pending);
            match p.queue.pop_front() {
                Some(m) => m,
                None => {
                    p.thread = None;
                    return;
                }
            }
        };
        // Room appears as consumers take items; a full ring is rare (a
        // megabyte of unread items), so a growing pause is cheap enough.
        let mut pause = Duration::from_micros(10);
        let done = loop {
            match core.try_commit(&mut msg) {
                Ok(true) => break Ok(()),
                Ok(false) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
                Err(e) => break Err(e),
            }
        };
        lock(pending).outstanding -= 1;
        if let Err(e) = done {
            // The queue's memory or socket failed (cannot happen while
            // this process holds them); say so rather than drop silently.
            eprintln!("mp-ipc: a queued item could not be put: {e}");
            core.release_slot();
        }
    }
}

enum EncodeError {
    Encode(mp_process::CodecError),
    Io(std::io::Error),
}

/// Encodes a queue item: into a ring record when it fits, else a socket
/// message (inline or in a memfd). Debug builds refuse here, at the
/// sender, an item postcard cannot decode (`check_sent`).
fn encode<T: Serialize + DeserializeOwned>(
    item: &T,
    inline_max: usize,
) -> Result<Msg, EncodeError> {
    let checked =
        |payload: &[u8]| mp_process::codec::check_sent::<T>(payload).map_err(EncodeError::Encode);
    let enc = |e: postcard::Error| EncodeError::Encode(mp_process::codec::encode_failed(item, e));
    let size = postcard::experimental::serialized_size(item).map_err(enc)?;
    if size <= RING_ITEM_MAX {
        let mut rec = Vec::with_capacity(8 + size.next_multiple_of(8));
        rec.extend_from_slice(&[0; 8]);
        let mut rec = postcard::to_extend(item, rec).map_err(enc)?;
        let len = rec.len() - 8;
        if len > RING_ITEM_MAX {
            return Err(EncodeError::Encode(mp_process::codec::encode_refused(
                item,
                "its size changed between two encodings (a Serialize that is not deterministic)",
            )));
        }
        checked(&rec[8..])?;
        rec[..8].copy_from_slice(&ring::header(KIND_INLINE, len).to_le_bytes());
        rec.resize(8 + len.next_multiple_of(8), 0);
        return Ok(Msg::Ring(rec));
    }
    // Tag, sequence number (filled in when committed), payload.
    let mut buf = Vec::with_capacity(9 + size);
    buf.extend_from_slice(&[TAG_INLINE, 0, 0, 0, 0, 0, 0, 0, 0]);
    let bytes = postcard::to_extend(item, buf).map_err(enc)?;
    checked(&bytes[9..])?;
    if bytes.len() - 9 <= inline_max {
        return Ok(Msg::Sock { bytes, fd: None });
    }
    let fd = rustix::fs::memfd_create("mp-queue-item", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| EncodeError::Io(e.into()))?;
    let mut f = File::from(fd);
    f.write_all(&bytes[9..]).map_err(EncodeError::Io)?;
    let mut header = vec![TAG_MEMFD, 0, 0, 0, 0, 0, 0, 0, 0];
    header.extend_from_slice(&((bytes.len() - 9) as u64).to_le_bytes());
    Ok(Msg::Sock {
        bytes: header,
        fd: Some(f.into()),
    })
}

/// Decodes an item; a failure keeps its bytes (the item is not lost).
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GetError> {
    mp_process::codec::decode(bytes).map_err(GetError::Decode)
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
    ring: Ring,
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
            ring: c.ring.clone(),
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
            ring: w.ring,
            slots: w.slots,
            maxsize: w.maxsize,
            unfinished: w.unfinished,
            inline_max: w.inline_max,
            seen_head: std::sync::atomic::AtomicU64::new(0),
            seen_tail: std::sync::atomic::AtomicU64::new(0),
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
                    .field("qsize", &self.h.core.count())
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
/// Where the items are: in a shared-memory ring of 1 MiB (items up to
/// 4 KiB encoded) or in the kernel's socket buffer
/// (larger ones), not in the producer. A producer that exits (or is
/// killed) after `put` returned loses none of its items, and joining it
/// never waits for a consumer: CPython's "joining processes that use
/// queues" deadlock does not happen. Only when the ring or the socket
/// buffer is full (about 1 MiB of small items, or 4 MiB of large ones,
/// unread) does `put` keep further items in a feeder thread of the putting
/// process, as CPython does with all of them: `put` never blocks an
/// unbounded queue. A handle dropped with such items waits until they are
/// handed over.
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
        self.h.core.count()
    }

    /// Whether [`qsize`](Queue::qsize) is 0 (a snapshot).
    pub fn empty(&self) -> bool {
        self.h.core.is_empty()
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
        self.h.core.is_empty()
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
