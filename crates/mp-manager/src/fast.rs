//! A connection's fast path on one machine: requests and replies travel
//! through two byte rings in a shared-memory block; the socket carries
//! only the end of the connection.
//!
//! A round trip through the socket costs four system calls and, when
//! either side sleeps, two wake-ups; on the 2-core machine of the
//! benchmarks that is about 5 us. Through the rings, a side that is still
//! polling sees the other's bytes with no system call at all.
//!
//! Polling pays only while the peer runs on another CPU, so each side
//! notes the CPU it waits on, and a waiter whose peer last waited on its
//! own CPU sleeps at once instead. A side that stops polling sets its
//! `sleeping` flag and sleeps on its bell, a futex word in the block; a
//! writer that finds the flag set rings the bell. A futex, not the socket:
//! the kernel wakes a Unix socket's reader on the writer's own CPU, which
//! kept both ends of a connection on one CPU, each waiting for the other
//! to stop (the article's counter ran at 40k to 110k increments/s in that
//! state against 350k on two CPUs). A sleeper looks at the socket every
//! 20 ms: its end-of-stream is the peer gone.
//!
//! Layout of the block (offsets in bytes; each position on its own cache
//! line):
//!
//! - `0`, `64`: head and tail of the request ring (client to server);
//! - `128`, `192`: head and tail of the reply ring (server to client);
//! - `256`, `320`: the client's and the server's `sleeping` flags;
//! - `384`, `448`: the CPU the client and the server last waited on, plus
//!   one (0: unknown);
//! - `512`, `576`: the client's and the server's bells (32-bit futex words);
//! - [`DATA`]: the request ring, then the reply ring, [`CAP`] bytes each.
//!
//! Positions grow for ever; a position's offset in its ring is
//! `position % CAP`. Each ring has one writer, which alone stores its tail
//! (release, after the bytes), and one reader, which alone stores its head
//! (release, after reading). A frame is a 4-byte little-endian length and
//! the encoded message; a frame longer than a ring streams through it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mp_ipc::Connection;
use mp_shm::SharedMemory;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The size of each ring (a power of two). Pages are touched only as the
/// rings fill, so a connection that carries small messages costs little.
const CAP: usize = 1 << 16;
const DATA: usize = 4096;
const REQ_HEAD: usize = 0;
const REQ_TAIL: usize = 64;
const RESP_HEAD: usize = 128;
const RESP_TAIL: usize = 192;

/// Where one end's words are: its `sleeping` flag and the CPU it last
/// waited on (u64), and its bell (a u32 futex word).
struct Slots {
    sleeping: usize,
    cpu: usize,
    bell: usize,
}

const CLIENT: Slots = Slots {
    sleeping: 256,
    cpu: 384,
    bell: 512,
};
const SERVER: Slots = Slots {
    sleeping: 320,
    cpu: 448,
    bell: 576,
};

/// How long a sleeper sleeps before it looks whether its peer is gone.
const LIVENESS_SLICE: Duration = Duration::from_millis(20);

/// The block's size.
pub(crate) const BLOCK: usize = DATA + 2 * CAP;

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    fn slots(self) -> Slots {
        match self {
            Side::Client => CLIENT,
            Side::Server => SERVER,
        }
    }

    fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// One end of a fast connection.
#[derive(Debug)]
pub(crate) struct Fast {
    block: SharedMemory,
    sock: Connection,
    side: Side,
    /// How long to poll before sleeping, for the parts of a frame after
    /// its start (`recv` is told how long to poll for the start).
    spin: Duration,
    /// The encoding buffer, kept between messages.
    wbuf: Vec<u8>,
    /// The block's name is still attachable: the server unlinks it once
    /// the client's first message shows that the client has attached.
    named: bool,
}

/// Offsets of one direction: the ring this end writes or reads.
struct Ring {
    head: usize,
    tail: usize,
    data: usize,
}

const REQUESTS: Ring = Ring {
    head: REQ_HEAD,
    tail: REQ_TAIL,
    data: DATA,
};
const REPLIES: Ring = Ring {
    head: RESP_HEAD,
    tail: RESP_TAIL,
    data: DATA + CAP,
};

fn shm(e: mp_shm::Error) -> Error {
    Error::Protocol(format!("fast path: {e}"))
}

impl Fast {
    /// One end over `block` (of [`BLOCK`] bytes, zero-filled when made),
    /// with `sock` the connection the block was offered on.
    pub(crate) fn new(
        block: SharedMemory,
        sock: Connection,
        side: Side,
        spin: Duration,
    ) -> Result<Fast, Error> {
        if block.len() != BLOCK {
            return Err(Error::Protocol(format!(
                "fast path: a block of {} bytes, not {BLOCK}",
                block.len()
            )));
        }
        // Checked once here, so that `word` cannot fail later.
        for at in (0..=SERVER.cpu).step_by(64) {
            block.atomic_u64_at(at).map_err(shm)?;
        }
        for at in [CLIENT.bell, SERVER.bell] {
            block.atomic_u32_at(at).map_err(shm)?;
        }
        Ok(Fast {
            named: side == Side::Server && block.name().is_some(),
            block,
            sock,
            side,
            spin,
            wbuf: Vec::new(),
        })
    }

    /// The connection the block was offered on: it carries only the end
    /// of the connection.
    pub(crate) fn socket(&self) -> &Connection {
        &self.sock
    }

    fn word(&self, at: usize) -> &AtomicU64 {
        self.block
            .atomic_u64_at(at)
            .expect("the fixed offsets are aligned and inside BLOCK")
    }

    fn out_ring(&self) -> Ring {
        match self.side {
            Side::Client => REQUESTS,
            Side::Server => REPLIES,
        }
    }

    fn in_ring(&self) -> Ring {
        match self.side {
            Side::Client => REPLIES,
            Side::Server => REQUESTS,
        }
    }

    /// Wakes the peer if it sleeps. Runs after a position was stored with
    /// `SeqCst`: either the peer sees the new position when it checks after
    /// raising its flag, or we see the flag here.
    fn wake_peer(&self) {
        let peer = self.side.peer();
        if self.word(peer.slots().sleeping).load(Ordering::SeqCst) != 0 {
            let bell = self.bell(peer);
            bell.fetch_add(1, Ordering::SeqCst);
            mp_shm::futex_wake(bell, 1);
        }
    }

    /// Waits until `ready` holds, polling for `spin` (unless the peer is on
    /// this CPU), then sleeping on the bell until `deadline`. False on
    /// timeout; an error once the peer is gone and nothing is ready.
    fn wait(
        &mut self,
        ready: impl Fn(&Fast) -> bool,
        deadline: Option<Instant>,
        spin: Duration,
    ) -> Result<bool, Error> {
        let start = Instant::now();
        let spin = match deadline {
            Some(d) => spin.min(d.saturating_duration_since(start)),
            None => spin,
        };
        // Polling pays only while the peer runs on another CPU. On the
        // same CPU it cannot run until this thread stops, so give the CPU
        // up between looks instead: on the article's counter a pure spin
        // in that case cost a whole polling window per round trip.
        let here = mp_shm::current_cpu().map_or(0, |c| c as u64 + 1);
        let theirs = self.side.peer().slots().cpu;
        self.word(self.side.slots().cpu)
            .store(here, Ordering::Relaxed);
        let mut round = 0u32;
        loop {
            if ready(self) {
                return Ok(true);
            }
            round = round.wrapping_add(1);
            // The clock and the peer's CPU cost more than a look at the
            // ring: read them 1 time in 32.
            if round.is_multiple_of(32) {
                if start.elapsed() >= spin {
                    break;
                }
                if here != 0 && self.word(theirs).load(Ordering::Relaxed) == here {
                    break;
                }
            }
            std::hint::spin_loop();
        }
        loop {
            let flag = self.side.slots().sleeping;
            let bell = self.bell(self.side);
            self.word(flag).store(1, Ordering::SeqCst);
            let rung = bell.load(Ordering::SeqCst);
            if ready(self) {
                self.word(flag).store(0, Ordering::Relaxed);
                return Ok(true);
            }
            let left = match deadline {
                None => LIVENESS_SLICE,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) => l.min(LIVENESS_SLICE),
                    None => {
                        self.word(flag).store(0, Ordering::Relaxed);
                        return Ok(false);
                    }
                },
            };
            mp_shm::futex_wait(bell, rung, Some(left));
            self.word(flag).store(0, Ordering::Relaxed);
            // What the peer wrote before it closed or died is still
            // delivered (a server's last reply before it shuts down).
            if ready(self) {
                return Ok(true);
            }
            self.check_peer()?;
        }
    }

    /// The bell `side` sleeps on.
    fn bell(&self, side: Side) -> &AtomicU32 {
        self.block
            .atomic_u32_at(side.slots().bell)
            .expect("the fixed offsets are aligned and inside BLOCK")
    }

    /// An error once the peer is gone: the socket carries nothing else
    /// than its end.
    fn check_peer(&mut self) -> Result<(), Error> {
        if self.sock.poll(Some(Duration::ZERO))? {
            self.sock.recv_bytes()?;
            return Err(Error::Protocol(
                "unexpected bytes on a fast connection".into(),
            ));
        }
        Ok(())
    }

    /// Sends `value` as one frame, streaming it through the ring if it is
    /// longer. Length and message go in one write, so that the peer sees
    /// the whole of a small frame at once.
    pub(crate) fn send<T: Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let mut frame = std::mem::take(&mut self.wbuf);
        frame.clear();
        frame.extend_from_slice(&[0; 4]);
        let mut frame = postcard::to_extend(value, frame)
            .map_err(|e| Error::Codec(mp_process::codec::encode_failed(value, e)))?;
        let len = u32::try_from(frame.len() - 4)
            .map_err(|_| Error::Protocol(format!("a message of {} bytes", frame.len() - 4)))?;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        let sent = self.write_all(&frame);
        if frame.capacity() <= CAP {
            self.wbuf = frame;
        }
        sent
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        let ring = self.out_ring();
        while !bytes.is_empty() {
            let tail = self.word(ring.tail).load(Ordering::Relaxed);
            let room =
                |f: &Fast| CAP as u64 - (tail - f.word(ring.head).load(Ordering::Acquire)) > 0;
            if !room(self) {
                self.wait(room, None, self.spin)?;
            }
            let head = self.word(ring.head).load(Ordering::Acquire);
            let free = CAP - (tail - head) as usize;
            let off = (tail % CAP as u64) as usize;
            let n = bytes.len().min(free).min(CAP - off);
            self.block
                .write_at(ring.data + off, &bytes[..n])
                .map_err(shm)?;
            self.word(ring.tail)
                .store(tail + n as u64, Ordering::SeqCst);
            self.wake_peer();
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Receives one frame of at most `max` bytes and decodes it, waiting
    /// for its start until `deadline` ([`Error::Timeout`]), polling for
    /// `spin` before sleeping. A longer or malformed frame is an error that
    /// leaves the connection unusable.
    pub(crate) fn recv<T: DeserializeOwned>(
        &mut self,
        max: u64,
        deadline: Option<Instant>,
        spin: Duration,
    ) -> Result<T, Error> {
        let ring = self.in_ring();
        let head = self.word(ring.head).load(Ordering::Relaxed);
        let avail = |f: &Fast| f.word(ring.tail).load(Ordering::Acquire) - head;
        if avail(self) < 4 && !self.wait(|f| avail(f) >= 4, deadline, spin)? {
            return Err(Error::Timeout);
        }
        if self.named {
            // Nobody else may attach: the name was only for our client.
            self.named = false;
            let _ = self.block.unlink();
        }
        let mut len = [0; 4];
        self.copy_out(head, &mut len)?;
        let len = u32::from_le_bytes(len);
        if u64::from(len) > max {
            return Err(Error::Protocol(format!(
                "a frame of {len} bytes, over the limit of {max}"
            )));
        }
        let mut msg = vec![0; len as usize];
        let whole = 4 + u64::from(len);
        if whole <= CAP as u64 {
            // The usual case: the frame fits the ring, wait for all of it
            // and consume it with one store.
            if avail(self) < whole {
                self.wait(|f| avail(f) >= whole, None, self.spin)?;
            }
            self.copy_out(head + 4, &mut msg)?;
            self.word(ring.head).store(head + whole, Ordering::SeqCst);
            self.wake_peer();
        } else {
            self.word(ring.head).store(head + 4, Ordering::SeqCst);
            self.read_exact(&mut msg)?;
        }
        mp_process::codec::decode(&msg)
            .map_err(|e| Error::Protocol(format!("malformed message: {e}")))
    }

    /// Copies bytes from ring position `pos` of the incoming ring, which
    /// the writer has published.
    fn copy_out(&self, pos: u64, buf: &mut [u8]) -> Result<(), Error> {
        let ring = self.in_ring();
        let off = (pos % CAP as u64) as usize;
        let first = buf.len().min(CAP - off);
        self.block
            .read_at(ring.data + off, &mut buf[..first])
            .map_err(shm)?;
        if first < buf.len() {
            self.block
                .read_at(ring.data, &mut buf[first..])
                .map_err(shm)?;
        }
        Ok(())
    }

    /// Fills `buf` from the incoming ring, as the writer streams it.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let ring = self.in_ring();
        let mut got = 0;
        while got < buf.len() {
            let head = self.word(ring.head).load(Ordering::Relaxed);
            let data = |f: &Fast| f.word(ring.tail).load(Ordering::Acquire) > head;
            if !data(self) {
                self.wait(data, None, self.spin)?;
            }
            let tail = self.word(ring.tail).load(Ordering::Acquire);
            let off = (head % CAP as u64) as usize;
            let n = (buf.len() - got).min((tail - head) as usize).min(CAP - off);
            self.block
                .read_at(ring.data + off, &mut buf[got..got + n])
                .map_err(shm)?;
            self.word(ring.head)
                .store(head + n as u64, Ordering::SeqCst);
            self.wake_peer();
            got += n;
        }
        Ok(())
    }
}
