//! The manager's error type.

use std::fmt;

use crate::protocol::Failure;

/// What went wrong talking to a manager or running an operation on a shared
/// object.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection to the server failed: it is gone (shut down or dead:
    /// [`mp_ipc::Error::Eof`]), refused the key
    /// ([`mp_ipc::Error::Authentication`]), or could not be reached.
    Connection(mp_ipc::Error),
    /// A timed operation ran out of time.
    Timeout,
    /// `put` without waiting on a full queue, or a timed `put` that ran out.
    Full,
    /// `get` without waiting on an empty queue, or a timed `get` that ran out.
    Empty,
    /// A use the object forbids: releasing a lock not held, a bounded
    /// semaphore released too often, one `task_done` too many.
    Misuse(String),
    /// The barrier is broken (aborted, reset while waited on, or a wait
    /// timed out).
    BrokenBarrier,
    /// A list index out of range, a missing attribute or key.
    NotFound(String),
    /// No object under that id or name.
    NoSuchObject(String),
    /// The object is of another kind than the proxy asked for.
    WrongKind {
        /// The kind the proxy expected.
        expected: String,
        /// The kind the server holds.
        found: String,
    },
    /// A value could not be encoded here, or the server's bytes decoded as
    /// the proxy's type: the type, serde's reason, and for a decode the
    /// bytes ([`CodecError::bytes`](mp_process::CodecError::bytes)). An
    /// item taken from a managed queue is not lost to its type: its bytes
    /// are in the error.
    Codec(mp_process::CodecError),
    /// The server could not read a value it holds as the operation needs
    /// (an `add` on a value of another number type).
    Serialization(String),
    /// The server process could not be started or stopped.
    Process(mp_process::Error),
    /// An operating-system error.
    Io(std::io::Error),
    /// The server answered something this client does not understand.
    Protocol(String),
    /// The server serves its limit of connections (see
    /// [`ManagerBuilder::max_connections`](crate::ManagerBuilder::max_connections)
    /// and [`Server::max_connections`](crate::Server::max_connections)) and
    /// refused this one. Connections it already serves go on.
    TooManyConnections {
        /// The server's limit.
        limit: u64,
    },
    /// The operation would take a counter past its largest value (a
    /// semaphore's units, an rlock's recursion, a queue's unfinished tasks).
    Overflow(String),
}

impl Error {
    pub(crate) fn from_failure(f: Failure) -> Error {
        match f {
            Failure::NoSuchObject(m) => Error::NoSuchObject(m),
            Failure::WrongKind { expected, found } => Error::WrongKind { expected, found },
            Failure::Timeout => Error::Timeout,
            Failure::Full => Error::Full,
            Failure::Empty => Error::Empty,
            Failure::Misuse(m) => Error::Misuse(m),
            Failure::BrokenBarrier => Error::BrokenBarrier,
            Failure::NotFound(m) => Error::NotFound(m),
            Failure::BadValue(m) => Error::Serialization(m),
            Failure::ShuttingDown | Failure::PeerGone => Error::Connection(mp_ipc::Error::Eof),
            Failure::TooManyConnections(limit) => Error::TooManyConnections { limit },
            Failure::Overflow(m) => Error::Overflow(m),
        }
    }

    #[allow(non_snake_case)] // Reads like the variant it builds.
    pub(crate) fn Remote(f: Failure) -> Error {
        Error::from_failure(f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connection(e) => write!(f, "manager connection failed: {e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Full => f.write_str("queue is full"),
            Error::Empty => f.write_str("queue is empty"),
            Error::Misuse(m) => f.write_str(m),
            Error::BrokenBarrier => f.write_str("the barrier is broken"),
            Error::NotFound(m) => f.write_str(m),
            Error::NoSuchObject(m) => write!(f, "no shared object {m}"),
            Error::WrongKind { expected, found } => {
                write!(f, "expected a {expected}, the server holds a {found}")
            }
            Error::Codec(e) => write!(f, "{e}"),
            Error::Serialization(m) => write!(f, "serialization failed: {m}"),
            Error::Process(e) => write!(f, "manager process: {e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::TooManyConnections { limit } => write!(
                f,
                "the manager server refused the connection: it serves its limit of {limit} connections"
            ),
            Error::Overflow(m) => write!(f, "counter overflow: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connection(e) => Some(e),
            Error::Process(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<mp_ipc::Error> for Error {
    fn from(e: mp_ipc::Error) -> Error {
        match e {
            mp_ipc::Error::Timeout => Error::Timeout,
            e => Error::Connection(e),
        }
    }
}

impl From<mp_process::Error> for Error {
    fn from(e: mp_process::Error) -> Error {
        Error::Process(e)
    }
}
