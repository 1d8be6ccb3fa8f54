//! The queue's shared-memory ring: one mp-shm `SharedMemory` block holding
//! variable-length records, a producer lock and a consumer lock.
//!
//! Layout of the block (offsets in bytes):
//!
//! - `0`: `tail`, the position after the last committed record. Written
//!   only under the producer lock, after the record (so a producer that
//!   dies half-way leaves the record uncommitted, and the next producer
//!   overwrites it); consumers read it, without the lock, to learn that
//!   records are there.
//! - `8`: `next_seq`, the sequence number the next socket message gets
//!   (producer lock). Advanced before the send, so numbers never repeat,
//!   also after a producer died between the two.
//! - `64`: `taking`, the position a consumer is reading, or [`NONE`]
//!   (consumer lock). Tells the next consumer what a consumer that died
//!   holding the lock had done.
//! - `128`: `sleepers`, how many consumers sleep (or are about to) waiting
//!   for a record; `136`: the `bell` they sleep on (a 32-bit futex word),
//!   which a producer rings after a commit when `sleepers` is not 0.
//! - [`DATA`]..: the ring, [`CAP`] bytes. Positions grow for ever (u64);
//!   a position's offset is `position % CAP`. A record may wrap around the
//!   end.
//!
//! `head`, the position of the oldest record not yet taken, is a shared
//! atomic: consumers store it (release) after reading a record, producers
//! load it (acquire) to see how much room there is, so a producer never
//! writes over bytes a consumer is still reading.
//!
//! A record is an 8-byte header (payload length in the low 32 bits, kind in
//! the high 32) and, for [`KIND_INLINE`], the payload padded to a multiple
//! of 8; for [`KIND_SOCKET`] the 8-byte sequence number of the socket
//! message that carries the item.

use mp_shm::{AtomicU64, Lock, SharedMemory};
use serde::{Deserialize, Serialize};

/// The ring's size in bytes (a power of two). Pages are only touched as
/// the ring fills, so an idle queue costs little memory.
pub(super) const CAP: usize = 1 << 20;
/// Where the ring starts in the block.
const DATA: usize = 192;
/// Offsets of the header fields; see the module docs.
const TAIL: usize = 0;
const NEXT_SEQ: usize = 8;
const TAKING: usize = 64;
const SLEEPERS: usize = 128;
const BELL: usize = 136;
/// `taking` when no consumer is reading.
pub(super) const NONE: u64 = u64::MAX;

/// The payload follows the header in the ring.
pub(super) const KIND_INLINE: u32 = 0;
/// The payload is socket message number `seq` (the next 8 bytes).
pub(super) const KIND_SOCKET: u32 = 1;

/// The longest encoded item a queue carries inside its shared-memory ring;
/// longer ones go through its socket. Small enough that a few hundred fit
/// in the ring, large enough that the socket's two system calls are a
/// small part of the copying.
pub(super) const RING_ITEM_MAX: usize = 4096;

/// The shared parts of one ring.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Ring {
    pub(super) block: SharedMemory,
    pub(super) head: AtomicU64,
    pub(super) producer: Lock,
    pub(super) consumer: Lock,
}

fn shm_io(e: mp_shm::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The whole record size for a header word.
pub(super) fn record_len(header: u64) -> Option<usize> {
    let len = (header & 0xffff_ffff) as usize;
    match (header >> 32) as u32 {
        KIND_INLINE if len <= RING_ITEM_MAX => Some(8 + len.next_multiple_of(8)),
        KIND_SOCKET if len == 0 => Some(16),
        _ => None,
    }
}

/// A header word.
pub(super) fn header(kind: u32, len: usize) -> u64 {
    (u64::from(kind) << 32) | len as u64
}

impl Ring {
    pub(super) fn new() -> Result<Ring, mp_shm::Error> {
        let block = SharedMemory::new(DATA + CAP)?;
        block.write_at(TAKING, &NONE.to_le_bytes())?;
        Ok(Ring {
            block,
            head: AtomicU64::new(0)?,
            producer: Lock::new()?,
            consumer: Lock::new()?,
        })
    }

    pub(super) fn get_u64(&self, at: usize) -> std::io::Result<u64> {
        let mut b = [0; 8];
        self.block.read_at(at, &mut b).map_err(shm_io)?;
        Ok(u64::from_le_bytes(b))
    }

    pub(super) fn set_u64(&self, at: usize, v: u64) -> std::io::Result<()> {
        self.block.write_at(at, &v.to_le_bytes()).map_err(shm_io)
    }

    /// `tail` as a shared atomic: stored by a producer (`SeqCst`, see
    /// `Core::wake_consumers`), loaded by consumers.
    pub(super) fn tail_word(&self) -> std::io::Result<&std::sync::atomic::AtomicU64> {
        self.block.atomic_u64_at(TAIL).map_err(shm_io)
    }

    pub(super) fn tail(&self) -> std::io::Result<u64> {
        Ok(self.tail_word()?.load(std::sync::atomic::Ordering::Acquire))
    }

    pub(super) fn set_tail(&self, v: u64) -> std::io::Result<()> {
        self.tail_word()?
            .store(v, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// How many consumers sleep on the bell.
    pub(super) fn sleepers(&self) -> std::io::Result<&std::sync::atomic::AtomicU64> {
        self.block.atomic_u64_at(SLEEPERS).map_err(shm_io)
    }

    /// The futex word consumers sleep on.
    pub(super) fn bell(&self) -> std::io::Result<&std::sync::atomic::AtomicU32> {
        self.block.atomic_u32_at(BELL).map_err(shm_io)
    }

    /// Takes the next socket sequence number (producer lock held).
    pub(super) fn next_seq(&self) -> std::io::Result<u64> {
        let s = self.get_u64(NEXT_SEQ)?;
        self.set_u64(NEXT_SEQ, s + 1)?;
        Ok(s)
    }

    pub(super) fn taking(&self) -> std::io::Result<u64> {
        self.get_u64(TAKING)
    }

    pub(super) fn set_taking(&self, v: u64) -> std::io::Result<()> {
        self.set_u64(TAKING, v)
    }

    /// Writes `data` at ring position `pos`, wrapping around the end.
    pub(super) fn write(&self, pos: u64, data: &[u8]) -> std::io::Result<()> {
        let off = (pos % CAP as u64) as usize;
        let first = data.len().min(CAP - off);
        self.block
            .write_at(DATA + off, &data[..first])
            .map_err(shm_io)?;
        if first < data.len() {
            self.block.write_at(DATA, &data[first..]).map_err(shm_io)?;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at ring position `pos`, wrapping around.
    pub(super) fn read(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let off = (pos % CAP as u64) as usize;
        let first = buf.len().min(CAP - off);
        self.block
            .read_at(DATA + off, &mut buf[..first])
            .map_err(shm_io)?;
        if first < buf.len() {
            self.block
                .read_at(DATA, &mut buf[first..])
                .map_err(shm_io)?;
        }
        Ok(())
    }
}
