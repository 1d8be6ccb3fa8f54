//! The crate's error types: creation failures, a dead lock owner, timeouts,
//! over-release and broken barriers.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A size, a length or a handle that cannot be used (a zero-sized
    /// block, a type whose alignment no mapping gives, a descriptor that is
    /// not an mp-shm region of the expected type).
    InvalidArgument,
    /// A named block that does not exist (any more): never created, unlinked,
    /// or its creator is gone.
    NotFound,
    /// The operating system refused (memfd, mmap, open), see
    /// [`Error::source`](std::error::Error::source).
    Io,
}

/// Creating, attaching or unlinking shared memory failed.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(message: &str, source: io::Error) -> Error {
        Error {
            kind: ErrorKind::Io,
            message: message.to_owned(),
            source: Some(source),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The previous owner of a lock died while holding it; the caller now holds
/// the lock anyway.
///
/// Like a robust mutex's `EOWNERDEAD` or std's `PoisonError`: the data the
/// lock protects may be half-updated. Inspect or repair it, then go on with
/// [`into_inner`](OwnerDied::into_inner); the lock itself works normally
/// afterwards (the next acquirer sees no error).
pub struct OwnerDied<T> {
    inner: T,
    pid: u32,
}

impl<T> OwnerDied<T> {
    pub(crate) fn new(inner: T, pid: u32) -> OwnerDied<T> {
        OwnerDied { inner, pid }
    }

    /// What the operation gave besides the news: usually the guard.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// A reference to what the operation gave.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// A mutable reference to what the operation gave.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The pid of the process that died holding the lock.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> OwnerDied<U> {
        OwnerDied {
            inner: f(self.inner),
            pid: self.pid,
        }
    }
}

impl<T> fmt::Debug for OwnerDied<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for OwnerDied<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the lock's owner (pid {}) died holding it", self.pid)
    }
}

impl<T> StdError for OwnerDied<T> {}

/// The result of a blocking lock operation: `Err` carries the same value as
/// `Ok` would, plus the news that the previous owner died.
pub type LockResult<T> = Result<T, OwnerDied<T>>;

/// Why [`try_lock`](crate::Lock::try_lock) or
/// [`lock_timeout`](crate::Lock::lock_timeout) did not give a plain guard.
pub enum TryLockError<T> {
    /// The lock is held by someone else (and, for the timed form, was
    /// still held when the timeout passed).
    WouldBlock,
    /// The lock was acquired, but its previous owner had died holding it.
    OwnerDied(OwnerDied<T>),
}

impl<T> fmt::Debug for TryLockError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::OwnerDied(e) => f.debug_tuple("OwnerDied").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for TryLockError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("the lock is held by another owner"),
            TryLockError::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<T> StdError for TryLockError<T> {}

impl<T> From<OwnerDied<T>> for TryLockError<T> {
    fn from(e: OwnerDied<T>) -> TryLockError<T> {
        TryLockError::OwnerDied(e)
    }
}

/// The result of a non-blocking or timed lock operation.
pub type TryLockResult<T> = Result<T, TryLockError<T>>;

/// A semaphore or lock was released more times than it was acquired: a
/// [`BoundedSemaphore`](crate::BoundedSemaphore) past its initial value, a
/// [`Semaphore`](crate::Semaphore) past `u32::MAX`, or an
/// [`RLock`](crate::RLock) released by a thread that does not own it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseError {
    message: &'static str,
}

impl ReleaseError {
    pub(crate) const TOO_MANY: ReleaseError = ReleaseError {
        message: "semaphore or lock released too many times",
    };
    pub(crate) const NOT_OWNER: ReleaseError = ReleaseError {
        message: "cannot release un-acquired lock",
    };
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl StdError for ReleaseError {}

/// A [`Barrier`](crate::Barrier) is broken: aborted, reset while this party
/// waited, timed out, or its action panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenBarrierError;

impl fmt::Display for BrokenBarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the barrier is broken")
    }
}

impl StdError for BrokenBarrierError {}

/// An index past the end of an [`Array`](crate::Array) or
/// [`RawArray`](crate::RawArray), or a range that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexError {
    /// The first index that did not fit.
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "index {} out of range for length {}",
            self.index, self.len
        )
    }
}

impl StdError for IndexError {}
