//! `SharedMemory`: a block of bytes shared by processes, anonymous or named.
//!
//! Every block is a memfd, never a `/dev/shm` file. A named block's name is
//! `mp-<pid>-<fd>-<nonce>`: the creator's pid and descriptor, which another
//! process opens as `/proc/<pid>/fd/<fd>`, and a random nonce that the
//! memfd's own name must match. So the name lives exactly as long as the
//! creator holds the block: nothing is left behind when it exits or is
//! killed, and no tracker process is needed.

use std::fmt;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};
use crate::region::{self, Kind, PAYLOAD, Region, Shape};
use crate::sys;

/// Bit 0 of the header flags: the name was unlinked.
const UNLINKED: u32 = 1;

/// From this many bytes on, `read_at`/`write_at` copy with pread/pwrite on
/// the memfd instead of through the mapping: the kernel then fills the page
/// cache directly, without one page fault per 4 KiB page in each process
/// (measured: 100 MiB write + read went from about 1.1 to N GiB/s).
const BULK: usize = 256 << 10;

/// A block of shared bytes: Python's `multiprocessing.shared_memory`, on
/// memfds.
///
/// [`new`](SharedMemory::new) makes an anonymous block, passed to children
/// as an argument (a clone, under every start method).
/// [`create`](SharedMemory::create) makes a named one, which any process of
/// the same user can [`attach`](SharedMemory::attach) to while its creator
/// holds it. Unlike Python's, a name never outlives its creator, so a
/// killed program leaves nothing in `/dev/shm` (nothing is ever there).
///
/// The bytes can change at any time under another process, so the safe
/// accessors copy ([`read_at`](SharedMemory::read_at),
/// [`write_at`](SharedMemory::write_at)); slices are `unsafe`. The block is
/// zero-filled when created, and its size is sealed: no process can shrink
/// it under a mapping.
///
/// ```
/// use mp_shm::SharedMemory;
///
/// let block = SharedMemory::create(16)?;
/// block.write_at(0, b"hello")?;
/// let other = SharedMemory::attach(block.name().expect("named"))?;
/// let mut buf = [0u8; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), mp_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    region: Region,
    name: Option<Arc<str>>,
}

impl SharedMemory {
    /// Creates an anonymous zero-filled block of `len` bytes (`len > 0`).
    pub fn new(len: usize) -> Result<SharedMemory, Error> {
        Ok(SharedMemory {
            region: Region::create(Self::shape(len)?)?,
            name: None,
        })
    }

    fn shape(len: usize) -> Result<Shape, Error> {
        if len == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a shared memory block needs a positive size",
            ));
        }
        Ok(Shape::untyped(Kind::Block, len))
    }

    /// Creates a named zero-filled block of `len` bytes. The name (see
    /// [`name`](SharedMemory::name)) is generated, and valid while this
    /// process holds a handle to the block and it is not unlinked.
    pub fn create(len: usize) -> Result<SharedMemory, Error> {
        let nonce = sys::random_u64();
        let region = Region::create_with_name(Self::shape(len)?, &memfd_name(nonce))?;
        let name = format!("mp-{}-{}-{nonce:016x}", sys::pid(), region.raw_fd());
        Ok(SharedMemory {
            region,
            name: Some(name.into()),
        })
    }

    /// Attaches to the named block `name`. [`ErrorKind::NotFound`] if no
    /// such block exists: never created, unlinked, or its creator is gone.
    pub fn attach(name: &str) -> Result<SharedMemory, Error> {
        let not_found = || {
            Error::new(
                ErrorKind::NotFound,
                format!("no shared memory block {name:?}"),
            )
        };
        let (pid, fd, nonce) = parse_name(name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{name:?} is not a shared memory block name"),
            )
        })?;
        let expected = format!("/memfd:{} (deleted)", memfd_name(nonce));
        // Look before opening: once the creator closed the block, its fd
        // number may name a socket or a pipe, which `open` refuses with
        // errors (ENXIO, ...) that would hide the plain answer, "not found".
        match std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) {
            Ok(target) if target.as_os_str() == expected.as_str() => {}
            _ => return Err(not_found()),
        }
        let owned = match sys::open_rdwr(&format!("/proc/{pid}/fd/{fd}")) {
            Ok(fd) => fd,
            // The block went away between the look and the open.
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::SRCH | rustix::io::Errno::NXIO) => {
                return Err(not_found());
            }
            Err(e) => return Err(Error::io("cannot open the block", e.into())),
        };
        let raw = owned.as_raw_fd();
        // Check what we opened, not what the path named a moment ago: the
        // creator may have closed that descriptor and reused its number.
        let link = std::fs::read_link(format!("/proc/self/fd/{raw}")).map_err(|_| not_found())?;
        if link.as_os_str() != expected.as_str() {
            return Err(not_found());
        }
        let region = region::open_sized(owned, Kind::Block, |_| true)?;
        if region.flags().load(Ordering::Acquire) & UNLINKED != 0 {
            return Err(not_found());
        }
        Ok(SharedMemory {
            region,
            name: Some(name.into()),
        })
    }

    /// The block's name, for [`attach`](SharedMemory::attach); None for an
    /// anonymous block.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Removes the name: later [`attach`](SharedMemory::attach) calls fail
    /// with [`ErrorKind::NotFound`], handles already attached keep working.
    /// A second unlink (by any handle) is [`ErrorKind::NotFound`], as in
    /// Python; so is unlinking an anonymous block.
    pub fn unlink(&self) -> Result<(), Error> {
        let was = self.region.flags().fetch_or(UNLINKED, Ordering::AcqRel);
        if self.name.is_none() || was & UNLINKED != 0 {
            return Err(Error::new(
                ErrorKind::NotFound,
                "the shared memory block has no name to unlink",
            ));
        }
        Ok(())
    }

    /// The block's size in bytes.
    pub fn len(&self) -> usize {
        self.region.payload_len()
    }

    /// Always false: a block has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first byte. Valid for [`len`](SharedMemory::len) bytes while any
    /// clone of this handle lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.payload()
    }

    /// The bytes, as a slice.
    ///
    /// # Safety
    ///
    /// - While the slice lives, no process or thread writes to the block
    ///   (another process's write would change memory behind a `&[u8]`).
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the payload is `len` mapped bytes that live as long as
        // `self`; the caller promises nobody writes while the slice lives.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The bytes, as a mutable slice.
    ///
    /// # Safety
    ///
    /// - While the slice lives, no other process, thread or slice reads or
    ///   writes the block.
    #[allow(
        clippy::mut_from_ref,
        reason = "shared memory: exclusivity is the caller's promise"
    )]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: the payload is `len` mapped bytes that live as long as
        // `self`; the caller promises exclusive access while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }

    /// Copies `buf.len()` bytes from offset `offset` into `buf`.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check_range(offset, buf.len())?;
        if buf.len() >= BULK {
            return sys::pread_all(self.region.fd(), buf, (PAYLOAD + offset) as u64)
                .map_err(|e| Error::io("pread failed", e));
        }
        // The block is only ever accessed through raw pointers, so a
        // concurrent writer can tear the copy but invalidates no reference.
        // SAFETY: the range is inside the mapping (checked above), and `buf`
        // is a distinct Rust allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    /// Copies `data` into the block at offset `offset`.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.check_range(offset, data.len())?;
        if data.len() >= BULK {
            return sys::pwrite_all(self.region.fd(), data, (PAYLOAD + offset) as u64)
                .map_err(|e| Error::io("pwrite failed", e));
        }
        // SAFETY: as in `read_at`, with the copy going the other way.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(offset), data.len());
        }
        Ok(())
    }

    /// The 8 bytes at `offset` as an atomic, for protocols that other
    /// processes follow on the same block (positions of a ring, flags).
    /// `offset` must be a multiple of 8 and the 8 bytes inside the block.
    pub fn atomic_u64_at(&self, offset: usize) -> Result<&std::sync::atomic::AtomicU64, Error> {
        let ptr = self.word_ptr::<std::sync::atomic::AtomicU64>(offset, "u64")?;
        // Other processes may access these bytes at any time, which atomics
        // allow; the safe accessors use raw pointers only, so no `&mut` to
        // them exists (the unsafe slices promise no concurrent writer).
        // SAFETY: in bounds and aligned (`word_ptr`); the mapping lives as
        // long as `self`, so as long as the returned reference.
        Ok(unsafe { std::sync::atomic::AtomicU64::from_ptr(ptr.cast()) })
    }

    /// The 4 bytes at `offset` as an atomic, for protocols that other
    /// processes follow on the same block, and a word to sleep on with
    /// [`futex_wait`](crate::futex_wait). `offset` must be a multiple of 4
    /// and the 4 bytes inside the block.
    pub fn atomic_u32_at(&self, offset: usize) -> Result<&std::sync::atomic::AtomicU32, Error> {
        let ptr = self.word_ptr::<std::sync::atomic::AtomicU32>(offset, "u32")?;
        // As in `atomic_u64_at`.
        // SAFETY: in bounds and aligned (`word_ptr`); the mapping lives as
        // long as `self`, so as long as the returned reference.
        Ok(unsafe { std::sync::atomic::AtomicU32::from_ptr(ptr.cast()) })
    }

    /// The address of a `W` at `offset`, checked to be inside the block and
    /// aligned for `W` (`name` names it in the error).
    fn word_ptr<W>(&self, offset: usize, name: &str) -> Result<*mut u8, Error> {
        self.check_range(offset, std::mem::size_of::<W>())?;
        let ptr = self.as_ptr().wrapping_add(offset);
        if ptr.align_offset(std::mem::align_of::<W>()) != 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("offset {offset} is not aligned for an atomic {name}"),
            ));
        }
        Ok(ptr)
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "range {offset}..{offset}+{len} out of bounds for a block of {} bytes",
                    self.len()
                ),
            )),
        }
    }
}

fn memfd_name(nonce: u64) -> String {
    format!("mp-shm-{nonce:016x}")
}

/// `mp-<pid>-<fd>-<nonce hex>` into its parts.
fn parse_name(name: &str) -> Option<(u32, i32, u64)> {
    let mut parts = name.strip_prefix("mp-")?.split('-');
    let pid = parts.next()?.parse().ok()?;
    let fd = parts.next()?.parse().ok()?;
    let nonce = u64::from_str_radix(parts.next()?, 16).ok()?;
    parts.next().is_none().then_some((pid, fd, nonce))
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("len", &self.len())
            .finish()
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.region, self.name.as_deref()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedMemory, D::Error> {
        let (fd, name) = <(mp_process::SharedFd, Option<String>)>::deserialize(d)?;
        let region = region::open_sized(fd.into_inner(), Kind::Block, |_| true)
            .map_err(serde::de::Error::custom)?;
        Ok(SharedMemory {
            region,
            name: name.map(Into::into),
        })
    }
}
