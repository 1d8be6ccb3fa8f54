//! The facade's one error type: every fallible call of every part converts
//! into it with `?`, keeping the part's own error inside.
//!
//! Each crate keeps its precise type (`mp::process::Error`,
//! `mp::pool::Error`, `mp::ipc::GetError`, ...), which is what its calls
//! return. [`Error`] is for code that mixes them: it sorts every failure
//! into one [`ErrorKind`], shows the part's own message, and gives the
//! part's error back through [`Error::downcast_ref`] and
//! [`Error::downcast`] (a value refused by a queue comes back that way).

use std::error::Error as StdError;
use std::fmt;

/// An error of any part of mp: a [`kind`](Error::kind) to match on, and the
/// part's own error inside.
///
/// ```
/// fn main() -> Result<(), mp::Error> {
///     let q: mp::Queue<u8> = mp::Queue::new()?; // mp::ipc::Error
///     let v = mp::Value::new(1u8)?; // mp::shm::Error
///     q.put(v.get()?)?; // mp::ipc::PutError<u8>
///     let err = mp::Error::from(q.try_get().and_then(|_| q.try_get()).unwrap_err());
///     assert_eq!(err.kind(), mp::ErrorKind::Empty);
///     assert!(err.downcast_ref::<mp::ipc::GetError>().is_some());
///     Ok(())
/// }
/// ```
pub struct Error {
    kind: ErrorKind,
    inner: Box<dyn StdError + Send + Sync + 'static>,
}

/// What kind of failure an [`Error`] is, whichever part it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A child's function or a pool's task panicked.
    Panicked,
    /// A child or the worker running a task died (a signal, an exit), or an
    /// executor broke because one did.
    Died,
    /// A timed wait ran out; the call can be repeated.
    Timeout,
    /// A queue had nothing to take (Python's `queue.Empty`).
    Empty,
    /// A bounded queue stayed full (Python's `queue.Full`).
    Full,
    /// The peer or the server is gone: end of stream, a connection that
    /// failed (Python's `EOFError`, `ConnectionError`).
    Disconnected,
    /// This handle, pool or queue was closed or terminated and takes no new
    /// work.
    Closed,
    /// A value failed to encode or decode.
    Serialization,
    /// A value or message is larger than the configured limit.
    TooLarge,
    /// An argument out of range (Python's `ValueError`).
    InvalidArgument,
    /// A call in the wrong state: start twice, join before start, release
    /// a lock not held, `task_done` too often.
    InvalidState,
    /// A future was cancelled before it ran.
    Cancelled,
    /// A pool's initializer failed.
    Initializer,
    /// A pool task ran past its hard time limit; its worker was stopped
    /// and replaced (`mp::pool::Limits`).
    TimeLimit,
    /// A pool task's worker reached its memory limit; the worker was
    /// replaced.
    MemoryLimit,
    /// A pool's workers died faster than its restart limit allows; it
    /// stopped replacing them.
    RestartLimit,
    /// The authentication handshake failed.
    Authentication,
    /// A server refused a new connection: it is at its connection cap.
    Refused,
    /// A named object, block or key that does not exist.
    NotFound,
    /// A barrier was broken (aborted, reset, or a wait timed out).
    BrokenBarrier,
    /// The owner of a lock died holding it; the lock is held now, and what
    /// it protects may be half-updated. `downcast::<mp::OwnerDied<T>>()`
    /// gives what the call returned.
    OwnerDied,
    /// A lock that `try_lock` or `lock_timeout` found held.
    WouldBlock,
    /// Not allowed here (a closure under spawn, a daemon's children).
    NotAllowed,
    /// An operating-system call failed.
    Io,
    /// Anything else; the message says what.
    Other,
}

impl Error {
    fn new(kind: ErrorKind, inner: impl StdError + Send + Sync + 'static) -> Error {
        Error {
            kind,
            inner: Box::new(inner),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a timed wait ran out.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// The part's own error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// The part's own error, if it is an `E`: `mp::process::Error` for its
    /// panic message and exit status, `mp::ipc::PutError<T>` for the value
    /// a queue refused.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref()
    }

    /// The part's own error, by value, if it is an `E`; otherwise this
    /// error back.
    pub fn downcast<E: StdError + 'static>(self) -> Result<E, Error> {
        let kind = self.kind;
        self.inner
            .downcast()
            .map(|e| *e)
            .map_err(|inner| Error { kind, inner })
    }

    /// The part's own error, boxed.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.inner
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("inner", &self.inner)
            .finish()
    }
}

/// The part's own message: the wrapper adds nothing to it.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

/// Transparent: the source is the part's error's own source, so that a
/// report does not print the same message twice.
impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}

/// The kind of a process error, shared with the manager's (which starts
/// its server as a process).
fn process_kind(e: &mp_process::Error) -> ErrorKind {
    use mp_process::ErrorKind as K;
    match e.kind() {
        K::Panicked => ErrorKind::Panicked,
        K::Died => ErrorKind::Died,
        K::Timeout => ErrorKind::Timeout,
        K::Serialization => ErrorKind::Serialization,
        K::TooLarge => ErrorKind::TooLarge,
        K::AlreadyStarted | K::NotStarted | K::AlreadyJoined | K::ContextAlreadySet => {
            ErrorKind::InvalidState
        }
        K::InvalidStartMethod => ErrorKind::InvalidArgument,
        K::NotAllowed => ErrorKind::NotAllowed,
        K::Io => ErrorKind::Io,
        K::TimeLimit => ErrorKind::TimeLimit,
        K::MemoryLimit => ErrorKind::MemoryLimit,
        _ => ErrorKind::Other,
    }
}

impl From<mp_process::Error> for Error {
    fn from(e: mp_process::Error) -> Error {
        Error::new(process_kind(&e), e)
    }
}

impl From<mp_pool::Error> for Error {
    fn from(e: mp_pool::Error) -> Error {
        use mp_pool::ErrorKind as K;
        let kind = match e.kind() {
            K::Panicked => ErrorKind::Panicked,
            K::WorkerLost | K::Broken => ErrorKind::Died,
            K::Terminated | K::NotRunning => ErrorKind::Closed,
            K::Timeout => ErrorKind::Timeout,
            K::StillRunning | K::NotReady => ErrorKind::InvalidState,
            K::InvalidArgument => ErrorKind::InvalidArgument,
            K::Initializer => ErrorKind::Initializer,
            K::Cancelled => ErrorKind::Cancelled,
            K::Serialization => ErrorKind::Serialization,
            K::TimeLimit => ErrorKind::TimeLimit,
            K::MemoryLimit => ErrorKind::MemoryLimit,
            K::RestartLimit => ErrorKind::RestartLimit,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e)
    }
}

impl From<mp_shm::Error> for Error {
    fn from(e: mp_shm::Error) -> Error {
        use mp_shm::ErrorKind as K;
        let kind = match e.kind() {
            K::InvalidArgument => ErrorKind::InvalidArgument,
            K::NotFound => ErrorKind::NotFound,
            K::Io => ErrorKind::Io,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e)
    }
}

/// Only for what a lock call returns by value (`Value::get`: the value);
/// a guard borrows its lock and cannot travel in an error.
impl<T: Send + Sync + 'static> From<mp_shm::OwnerDied<T>> for Error {
    fn from(e: mp_shm::OwnerDied<T>) -> Error {
        Error::new(ErrorKind::OwnerDied, e)
    }
}

impl<T: Send + Sync + 'static> From<mp_shm::TryLockError<T>> for Error {
    fn from(e: mp_shm::TryLockError<T>) -> Error {
        let kind = match &e {
            mp_shm::TryLockError::WouldBlock => ErrorKind::WouldBlock,
            mp_shm::TryLockError::OwnerDied(_) => ErrorKind::OwnerDied,
        };
        Error::new(kind, e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::new(ErrorKind::Io, e)
    }
}

impl From<mp_shm::ReleaseError> for Error {
    fn from(e: mp_shm::ReleaseError) -> Error {
        Error::new(ErrorKind::InvalidState, e)
    }
}

impl From<mp_shm::BrokenBarrierError> for Error {
    fn from(e: mp_shm::BrokenBarrierError) -> Error {
        Error::new(ErrorKind::BrokenBarrier, e)
    }
}

impl From<mp_shm::IndexError> for Error {
    fn from(e: mp_shm::IndexError) -> Error {
        Error::new(ErrorKind::InvalidArgument, e)
    }
}

/// The kind of a connection's error, shared with the manager's, whose
/// connection failures carry one.
fn ipc_kind(e: &mp_ipc::Error) -> ErrorKind {
    use mp_ipc::Error as E;
    match e {
        E::Eof => ErrorKind::Disconnected,
        E::Closed => ErrorKind::Closed,
        E::NotReadable | E::NotWritable => ErrorKind::InvalidState,
        E::Timeout => ErrorKind::Timeout,
        E::MessageTooLong { .. } | E::BufferTooShort(_) => ErrorKind::TooLarge,
        E::Encode(_) | E::Decode(_) => ErrorKind::Serialization,
        E::Authentication(_) => ErrorKind::Authentication,
        E::InvalidInput(_) => ErrorKind::InvalidArgument,
        E::Io(_) => ErrorKind::Io,
        _ => ErrorKind::Other,
    }
}

impl From<mp_ipc::Error> for Error {
    fn from(e: mp_ipc::Error) -> Error {
        Error::new(ipc_kind(&e), e)
    }
}

/// The refused value comes back through
/// `downcast::<mp::ipc::PutError<T>>()` and its `into_inner`.
impl<T: fmt::Debug + Send + Sync + 'static> From<mp_ipc::PutError<T>> for Error {
    fn from(e: mp_ipc::PutError<T>) -> Error {
        use mp_ipc::PutError as E;
        let kind = match &e {
            E::Full(_) => ErrorKind::Full,
            E::Closed(_) => ErrorKind::Closed,
            E::Encode(..) => ErrorKind::Serialization,
            E::Io(..) => ErrorKind::Io,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e)
    }
}

impl From<mp_ipc::GetError> for Error {
    fn from(e: mp_ipc::GetError) -> Error {
        use mp_ipc::GetError as E;
        let kind = match &e {
            E::Empty => ErrorKind::Empty,
            E::Closed => ErrorKind::Closed,
            E::Decode(_) | E::Malformed(_) => ErrorKind::Serialization,
            E::Io(_) => ErrorKind::Io,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e)
    }
}

impl From<mp_process::CodecError> for Error {
    fn from(e: mp_process::CodecError) -> Error {
        Error::new(ErrorKind::Serialization, e)
    }
}

impl From<mp_ipc::TaskDoneError> for Error {
    fn from(e: mp_ipc::TaskDoneError) -> Error {
        Error::new(ErrorKind::InvalidState, e)
    }
}

impl From<mp_manager::Error> for Error {
    fn from(e: mp_manager::Error) -> Error {
        use mp_manager::Error as E;
        let kind = match &e {
            // A server that cannot be reached is gone, whatever the call
            // that found it.
            E::Connection(c) => match ipc_kind(c) {
                ErrorKind::Io => ErrorKind::Disconnected,
                k => k,
            },
            E::Timeout => ErrorKind::Timeout,
            E::Full => ErrorKind::Full,
            E::Empty => ErrorKind::Empty,
            E::Misuse(_) => ErrorKind::InvalidState,
            E::BrokenBarrier => ErrorKind::BrokenBarrier,
            E::NotFound(_) | E::NoSuchObject(_) => ErrorKind::NotFound,
            E::WrongKind { .. } => ErrorKind::InvalidArgument,
            E::Codec(_) | E::Serialization(_) => ErrorKind::Serialization,
            // The server is at its connection cap: it is there, but not for
            // this client now.
            E::TooManyConnections { .. } => ErrorKind::Refused,
            E::Overflow(_) => ErrorKind::InvalidArgument,
            E::Process(p) => process_kind(p),
            E::Io(_) => ErrorKind::Io,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e)
    }
}
