//! A shared region: one memfd, mapped `MAP_SHARED`, with a header that says
//! what lives in it; the building block of every public type.
//!
//! Layout: a 64-byte [`Header`] at offset 0, the payload from offset
//! [`PAYLOAD`]. The memfd's size is sealed, so no process can truncate it
//! under a mapping. Handles pass to children as their memfd (a `SharedFd`);
//! the receiving side checks the header before it trusts the payload.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use mp_process::SharedFd;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};
use crate::sys;

/// "mpsh", little-endian: the first word of every region.
const MAGIC: u32 = 0x6873_706d;

/// Where the payload starts. A multiple of every alignment a header field
/// needs, and a cache line, so the payload starts on one.
pub(crate) const PAYLOAD: usize = 64;

/// What a region holds; stored in the header and checked on attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    Block = 1,
    Atomic = 2,
    Lock = 3,
    RLock = 4,
    Semaphore = 5,
    Event = 6,
    Condition = 7,
    Barrier = 8,
    Value = 9,
    Array = 10,
    RawValue = 11,
    RawArray = 12,
}

/// The region's first 64 bytes. Written once by the creator before any
/// other process can see the region; read-only afterwards except `flags`.
#[repr(C)]
struct Header {
    magic: u32,
    kind: u32,
    /// Bytes of payload the creator asked for.
    payload_len: u64,
    /// For typed payloads: size and alignment of the element type, so that
    /// attaching as a different type is an error instead of a reinterpretation.
    elem_size: u32,
    elem_align: u32,
    /// Element count for arrays, 0 otherwise.
    count: u64,
    /// Bit 0: a named block was unlinked.
    flags: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Header>() <= PAYLOAD);

/// What the creator records, and what an attacher expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    pub(crate) payload_len: usize,
    pub(crate) elem_size: usize,
    pub(crate) elem_align: usize,
    pub(crate) count: usize,
}

impl Shape {
    pub(crate) fn untyped(kind: Kind, payload_len: usize) -> Shape {
        Shape {
            kind,
            payload_len,
            elem_size: 0,
            elem_align: 0,
            count: 0,
        }
    }
}

struct Inner {
    // Field order: unmap before closing (either order is sound; this one
    // mirrors creation).
    map: sys::Mapping,
    fd: SharedFd,
}

/// One process's handle on a region; clones share the mapping.
#[derive(Clone)]
pub(crate) struct Region {
    inner: Arc<Inner>,
}

/// The regions this process has mapped, by their memfd's device and
/// inode: a memfd received twice (a lock passed to a child on its own and
/// inside a value made with it, say) is mapped once, so that handles on
/// one object always share a mapping and an address, which is what the
/// guards compare (see `Value::with_lock`).
static MAPPED: std::sync::Mutex<Vec<Mapped>> = std::sync::Mutex::new(Vec::new());

/// A memfd's device and inode, and this process's mapping of it.
type Mapped = ((u64, u64), std::sync::Weak<Inner>);

fn mapped() -> std::sync::MutexGuard<'static, Vec<Mapped>> {
    MAPPED.lock().unwrap_or_else(|p| p.into_inner())
}

impl Region {
    /// Notes this region's mapping of the memfd `id` in `m` (see
    /// [`MAPPED`]); forgets dead ones.
    fn register(&self, m: &mut Vec<Mapped>, id: (u64, u64)) {
        m.retain(|(_, w)| w.strong_count() > 0);
        m.push((id, Arc::downgrade(&self.inner)));
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("fd", &self.inner.fd)
            .field("len", &self.inner.map.len())
            .finish()
    }
}

impl Region {
    /// Creates a zero-filled region for `shape`.
    pub(crate) fn create(shape: Shape) -> Result<Region, Error> {
        Self::create_with_name(shape, "mp-shm")
    }

    /// Creates a zero-filled region whose memfd carries `memfd_name` (what
    /// `/proc/<pid>/fd/<n>` links to, for named blocks).
    pub(crate) fn create_with_name(shape: Shape, memfd_name: &str) -> Result<Region, Error> {
        let total = PAYLOAD
            .checked_add(shape.payload_len)
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "size too large"))?;
        let fd = sys::memfd(memfd_name, total).map_err(|e| Error::io("memfd_create failed", e))?;
        let id = sys::file_id(fd.as_fd()).map_err(|e| Error::io("fstat failed", e))?;
        let region = Self::from_fd(fd, total, Some(shape))?;
        region.register(&mut mapped(), id);
        Ok(region)
    }

    /// Maps `fd` and either writes the header (`write = Some`) or returns
    /// the region unchecked; use [`Region::check`] for the latter.
    fn from_fd(fd: OwnedFd, total: usize, write: Option<Shape>) -> Result<Region, Error> {
        let map = sys::Mapping::new(fd.as_fd(), total).map_err(|e| Error::io("mmap failed", e))?;
        if let Some(shape) = write {
            let h = map.ptr().cast::<Header>();
            // SAFETY: the mapping is at least PAYLOAD >= size_of::<Header>()
            // bytes, page-aligned, and no other process has it yet: nothing
            // else reads or writes the header during this write.
            unsafe {
                h.write(Header {
                    magic: MAGIC,
                    kind: shape.kind as u32,
                    payload_len: shape.payload_len as u64,
                    elem_size: shape.elem_size as u32,
                    elem_align: shape.elem_align as u32,
                    count: shape.count as u64,
                    flags: AtomicU32::new(0),
                });
            }
        }
        Ok(Region {
            inner: Arc::new(Inner {
                map,
                fd: SharedFd::new(fd),
            }),
        })
    }

    /// Maps a region received from another process and checks that it is
    /// one of ours holding `expected` (its kind, sizes and element type).
    pub(crate) fn attach(fd: OwnedFd, expected: Shape) -> Result<Region, Error> {
        let (size, sealed, id) =
            sys::size_and_sealed(fd.as_fd()).map_err(|e| Error::io("fstat failed", e))?;
        let want = (PAYLOAD + expected.payload_len) as u64;
        if !sealed || size < want {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "not an mp-shm region of the expected type",
            ));
        }
        // Checked below like a new mapping: it was mapped as what its own
        // header says, which may not be what is expected now. Looked up
        // and mapped under one lock, so that two threads receiving the
        // same memfd map it once.
        let mut m = mapped();
        let live = m
            .iter()
            .find(|(k, _)| *k == id)
            .and_then(|(_, w)| w.upgrade())
            .filter(|inner| inner.map.len() == want as usize);
        let region = match live {
            Some(inner) => Region { inner },
            None => {
                let region = Self::from_fd(fd, want as usize, None)?;
                region.register(&mut m, id);
                region
            }
        };
        drop(m);
        let h = region.header();
        let found = (
            h.magic,
            h.kind,
            h.payload_len,
            h.elem_size,
            h.elem_align,
            h.count,
        );
        let want = (
            MAGIC,
            expected.kind as u32,
            expected.payload_len as u64,
            expected.elem_size as u32,
            expected.elem_align as u32,
            expected.count as u64,
        );
        if found != want {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "not an mp-shm region of the expected type",
            ));
        }
        Ok(region)
    }

    /// Reads the shape recorded in a region's header (for blocks and arrays,
    /// whose length the receiver does not know in advance).
    pub(crate) fn peek(fd: &OwnedFd, kind: Kind) -> Result<Shape, Error> {
        let (size, sealed, _) =
            sys::size_and_sealed(fd.as_fd()).map_err(|e| Error::io("fstat failed", e))?;
        if !sealed || size < PAYLOAD as u64 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "not an mp-shm region",
            ));
        }
        let map =
            sys::Mapping::new(fd.as_fd(), PAYLOAD).map_err(|e| Error::io("mmap failed", e))?;
        // SAFETY: the mapping holds at least a header's bytes, page-aligned;
        // header fields other than `flags` are never written after creation.
        let h = unsafe { &*map.ptr().cast::<Header>() };
        if h.magic != MAGIC || h.kind != kind as u32 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "not an mp-shm region of the expected type",
            ));
        }
        let len = usize::try_from(h.payload_len)
            .map_err(|_| Error::new(ErrorKind::InvalidArgument, "region too large"))?;
        Ok(Shape {
            kind,
            payload_len: len,
            elem_size: h.elem_size as usize,
            elem_align: h.elem_align as usize,
            count: h.count as usize,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: every region's mapping starts with PAYLOAD >= header bytes,
        // page-aligned; fields other than the atomic `flags` are written only
        // before the region is shared, so shared reads of them do not race.
        unsafe { &*self.inner.map.ptr().cast::<Header>() }
    }

    /// The header's flag word (named blocks keep "unlinked" there).
    pub(crate) fn flags(&self) -> &AtomicU32 {
        &self.header().flags
    }

    /// The start of the payload.
    pub(crate) fn payload(&self) -> *mut u8 {
        // SAFETY: the mapping is PAYLOAD + payload_len bytes long, so the
        // offset stays inside it.
        unsafe { self.inner.map.ptr().add(PAYLOAD) }
    }

    /// The payload's length in bytes.
    pub(crate) fn payload_len(&self) -> usize {
        self.inner.map.len() - PAYLOAD
    }

    /// A shared reference to the 32-bit atomic at payload offset `offset`.
    ///
    /// # Safety
    ///
    /// - `offset` is a multiple of 4 and `offset + 4 <= payload_len()`.
    /// - The word at `offset` is only ever accessed atomically, by every
    ///   process (the crate's layouts guarantee it for their own words).
    pub(crate) unsafe fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= self.payload_len());
        // SAFETY: in bounds and aligned by the caller's contract (the payload
        // is 64-byte aligned); atomics may be shared between threads and, in
        // a MAP_SHARED mapping, between processes.
        unsafe { AtomicU32::from_ptr(self.payload().add(offset).cast()) }
    }

    /// The descriptor, for a name (`/proc/<pid>/fd/<n>`).
    pub(crate) fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.inner.fd.as_raw_fd()
    }

    /// The memfd, for bulk copies with pread/pwrite.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Whether both are the same shared object. A process maps each
    /// memfd once (see [`MAPPED`]), so that is whether they share the
    /// mapping.
    pub(crate) fn same(&self, other: &Region) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.fd.serialize(serializer)
    }
}

/// Receives a region's descriptor; the caller checks and maps it with
/// [`Region::attach`].
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    Ok(SharedFd::deserialize(d)?.into_inner())
}

/// Deserializes a region of exactly `shape`.
pub(crate) fn deserialize_region<'de, D: Deserializer<'de>>(
    d: D,
    shape: Shape,
) -> Result<Region, D::Error> {
    let fd = deserialize_fd(d)?;
    Region::attach(fd, shape).map_err(serde::de::Error::custom)
}

/// Maps a region of `kind` from `fd`, its payload length (and element
/// count) read from its header; `check` validates the element type.
pub(crate) fn open_sized(
    fd: OwnedFd,
    kind: Kind,
    check: impl FnOnce(&Shape) -> bool,
) -> Result<Region, Error> {
    let shape = Region::peek(&fd, kind)?;
    if !check(&shape) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "not an mp-shm region of the expected type",
        ));
    }
    Region::attach(fd, shape)
}

/// Deserializes a region of `kind` whose payload length (and element
/// count) is read from its header; `check` validates the element type.
pub(crate) fn deserialize_sized<'de, D: Deserializer<'de>>(
    d: D,
    kind: Kind,
    check: impl FnOnce(&Shape) -> bool,
) -> Result<Region, D::Error> {
    open_sized(deserialize_fd(d)?, kind, check).map_err(serde::de::Error::custom)
}

/// Rounds `n` up to a multiple of `align` (a power of two).
pub(crate) const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}
