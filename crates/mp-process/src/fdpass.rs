//! File descriptors that travel with a process's arguments.
//!
//! A [`SharedFd`] inside the arguments of [`Process::new`](crate::Process::new)
//! reaches the child as a descriptor of its own for the same open file:
//! under fork, spawn and forkserver alike. This is how shared memory blocks,
//! pipes and queues pass to children.
//!
//! How: while the parent serializes the arguments, each `SharedFd` adds a
//! duplicate of its descriptor to a thread-local list and writes its index.
//! The list travels after the arguments as `SCM_RIGHTS` ancillary data on
//! the child's socket. Before the child deserializes the arguments, the
//! received descriptors fill the same kind of list, and each `SharedFd`
//! takes its own back by index.
//!
//! Other transports that carry serialized values to processes already
//! running (mp-pool's task stream) use the same lists through
//! [`SharedFd::collect`] and [`SharedFd::receive`], and move the
//! descriptors with [`send_fds`] and [`recv_fds`].

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    /// The parent's list while it serializes a process's arguments.
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// The child's list while it deserializes them.
    static INCOMING: RefCell<Vec<Option<OwnedFd>>> = const { RefCell::new(Vec::new()) };
}

/// An owned file descriptor that can be part of a process's arguments.
///
/// Serializing one outside the arguments of a process (to a file, say) is
/// a serialization error: a descriptor number means nothing elsewhere.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use mp_process::{Process, SharedFd};
///
/// fn greet(fd: SharedFd) {
///     let mut s = UnixStream::from(fd.into_inner());
///     s.write_all(b"hello from the child").unwrap();
/// }
///
/// let (mut mine, theirs) = UnixStream::pair().unwrap();
/// let mut p = Process::new(greet, SharedFd::new(theirs.into()));
/// p.start().unwrap();
/// p.join().unwrap();
/// let mut got = String::new();
/// mine.read_to_string(&mut got).unwrap();
/// assert_eq!(got, "hello from the child");
/// ```
pub struct SharedFd {
    fd: OwnedFd,
}

impl SharedFd {
    /// Wraps an owned descriptor.
    pub fn new(fd: OwnedFd) -> SharedFd {
        SharedFd { fd }
    }

    /// The descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.fd
    }

    /// Runs `serialize` with `SharedFd`s allowed in what it serializes, as
    /// in a process's arguments: each adds a duplicate of its descriptor to
    /// the list returned beside `serialize`'s value, and writes its index
    /// in that list. The receiving side deserializes within
    /// [`SharedFd::receive`], given the same list; [`send_fds`] carries it
    /// across.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use mp_process::SharedFd;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let arg = (7u8, SharedFd::new(a.into()));
    /// let (bytes, fds) = SharedFd::collect(|| mp_process::encode(&arg));
    /// let bytes = bytes.unwrap();
    /// assert_eq!(fds.len(), 1);
    ///
    /// let (n, fd): (u8, SharedFd) =
    ///     SharedFd::receive(fds, || mp_process::decode(&bytes)).unwrap();
    /// assert_eq!(n, 7);
    /// let _stream = UnixStream::from(fd.into_inner());
    /// ```
    pub fn collect<T>(serialize: impl FnOnce() -> T) -> (T, Vec<OwnedFd>) {
        collect(serialize)
    }

    /// Runs `deserialize` with `fds` (a list made by [`SharedFd::collect`])
    /// given to the `SharedFd`s it meets, by index. The descriptors it
    /// leaves are closed when it returns.
    pub fn receive<T>(fds: Vec<OwnedFd>, deserialize: impl FnOnce() -> T) -> T {
        /// Puts the outer list back, even if `deserialize` panics.
        struct Restore(Vec<Option<OwnedFd>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let outer = std::mem::take(&mut self.0);
                INCOMING.with(|inc| *inc.borrow_mut() = outer);
            }
        }
        let list = fds.into_iter().map(Some).collect();
        let _restore = Restore(INCOMING.with(|inc| inc.replace(list)));
        deserialize()
    }

    /// Another handle to the same open file (`dup`).
    pub fn try_clone(&self) -> std::io::Result<SharedFd> {
        Ok(SharedFd {
            fd: self.fd.try_clone()?,
        })
    }
}

impl AsFd for SharedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<OwnedFd> for SharedFd {
    fn from(fd: OwnedFd) -> SharedFd {
        SharedFd::new(fd)
    }
}

impl From<SharedFd> for OwnedFd {
    fn from(fd: SharedFd) -> OwnedFd {
        fd.fd
    }
}

impl fmt::Debug for SharedFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedFd")
            .field(&self.fd.as_raw_fd())
            .finish()
    }
}

impl Serialize for SharedFd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let dup = self.fd.try_clone().map_err(serde::ser::Error::custom)?;
        let index = OUTGOING.with(|out| {
            out.borrow_mut().as_mut().map(|list| {
                list.push(dup);
                list.len() - 1
            })
        });
        match index {
            Some(i) => serializer.serialize_u32(i as u32),
            None => Err(serde::ser::Error::custom(
                "a SharedFd can only be serialized as part of a process's arguments",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for SharedFd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SharedFd, D::Error> {
        let index = u32::deserialize(deserializer)? as usize;
        INCOMING
            .with(|inc| inc.borrow_mut().get_mut(index).and_then(Option::take))
            .map(SharedFd::new)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "no file descriptor #{index} came with the arguments"
                ))
            })
    }
}

/// Runs `f` (which serializes a process's arguments) and returns what it
/// returned with the descriptors its `SharedFd`s added.
pub(crate) fn collect<T>(f: impl FnOnce() -> T) -> (T, Vec<OwnedFd>) {
    let outer = OUTGOING.with(|out| out.borrow_mut().replace(Vec::new()));
    let value = f();
    let fds = OUTGOING
        .with(|out| std::mem::replace(&mut *out.borrow_mut(), outer))
        .unwrap_or_default();
    (value, fds)
}

/// Registers this thread's descriptor list (its destructor) now, in a
/// parent about to fork: a forked child inherits the registration, and
/// does not pay for it (an allocation and the dynamic linker's lock, five
/// page faults of a child's twenty-odd) in every start.
pub(crate) fn prepare_fork() {
    INCOMING.with(|_| ());
}

/// Makes `fds` available to the `SharedFd`s that the next deserialization
/// on this thread meets; the ones nobody takes are closed by the next call.
pub(crate) fn provide(fds: Vec<OwnedFd>) {
    INCOMING.with(|inc| *inc.borrow_mut() = fds.into_iter().map(Some).collect());
}

/// The most descriptors one [`send_fds`] carries: Linux's `SCM_MAX_FD`.
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// The byte that carries the descriptors of [`send_fds`].
const MARKER: u8 = b'D';

/// Sends `fds` over a Unix stream socket as one message of one byte with
/// the descriptors attached (`SCM_RIGHTS`), for [`recv_fds`] at the other
/// end; the receiver gets descriptors of its own for the same open files.
/// On a non-blocking socket without room, fails with `WouldBlock` having
/// sent nothing. More than [`MAX_FDS_PER_MESSAGE`] descriptors is an
/// `InvalidInput` error.
pub fn send_fds(sock: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    send_raw(sock.as_fd(), &raw)
}

/// [`send_fds`] of descriptor numbers that the caller keeps open: what a
/// parent sends after a child's arguments, in batches.
pub(crate) fn send_raw(sock: BorrowedFd<'_>, fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors in one message; at most {MAX_FDS_PER_MESSAGE}",
                fds.len()
            ),
        ));
    }
    crate::sys::send_with_fds(sock, &[MARKER], fds)
}

/// Receives one message of [`send_fds`]: its descriptors, close-on-exec.
/// End of stream, or bytes that are not such a message, is an error.
pub fn recv_fds(sock: &UnixStream) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let (got, fds) = crate::sys::recv_with_fds(sock.as_fd(), &mut byte, MAX_FDS_PER_MESSAGE)?;
    match (got, byte[0]) {
        (0, _) => Err(io::ErrorKind::UnexpectedEof.into()),
        (_, MARKER) => Ok(fds),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a message of descriptors",
        )),
    }
}
