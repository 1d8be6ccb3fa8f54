//! The error types of connections and queues.

use std::fmt;
use std::io;

use mp_process::CodecError;

/// What went wrong with a [`Connection`](crate::Connection), a
/// [`Listener`](crate::Listener) or a client connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed its end (or died) and every message it sent has been
    /// received: Python's `EOFError`.
    Eof,
    /// This handle was closed with `close` (Python's "handle is closed").
    Closed,
    /// `recv` on the write-only end of a one-way pipe.
    NotReadable,
    /// `send` on the read-only end of a one-way pipe.
    NotWritable,
    /// A timed wait ended before a message arrived.
    Timeout,
    /// An incoming message is longer than the connection's limit; the
    /// connection has been closed, since the rest of the stream cannot be
    /// trusted (Python's "bad message length").
    MessageTooLong {
        /// The length the frame header announced.
        len: u64,
        /// The connection's limit.
        max: u64,
    },
    /// `recv_bytes_into` got a message longer than the buffer: the whole
    /// message is here (Python's `BufferTooShort`).
    BufferTooShort(Vec<u8>),
    /// A value could not be serialized; nothing was sent. The error names
    /// the type and says why.
    Encode(CodecError),
    /// A message could not be deserialized as the type asked for. It was
    /// taken from the connection, and its bytes are in the error
    /// ([`CodecError::bytes`]): decode them as another type, or wrap the
    /// type in [`SelfDescribing`](mp_process::SelfDescribing) at both ends.
    Decode(CodecError),
    /// The authentication handshake failed (Python's `AuthenticationError`):
    /// a wrong key on either side, or a peer that does not speak it.
    Authentication(String),
    /// An argument out of range (Python's `ValueError`), such as an
    /// `offset`/`size` outside the buffer given to `send_bytes_range`.
    InvalidInput(String),
    /// An operating-system error.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Eof => f.write_str("end of stream: the peer closed its end"),
            Error::Closed => f.write_str("handle is closed"),
            Error::NotReadable => f.write_str("connection is write-only"),
            Error::NotWritable => f.write_str("connection is read-only"),
            Error::Timeout => f.write_str("timed out"),
            Error::MessageTooLong { len, max } => {
                write!(f, "bad message length: {len} bytes, the limit is {max}")
            }
            Error::BufferTooShort(m) => {
                write!(f, "buffer too short for a message of {} bytes", m.len())
            }
            Error::Encode(e) => write!(f, "nothing was sent: {e}"),
            Error::Decode(e) => write!(f, "the message was received but {e}"),
            Error::Authentication(e) => write!(f, "authentication failed: {e}"),
            Error::InvalidInput(e) => write!(f, "invalid input: {e}"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Encode(e) | Error::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Error {
        Error::Io(e.into())
    }
}

/// Why a value could not be put on a queue; the value comes back.
#[derive(Debug)]
#[non_exhaustive]
pub enum PutError<T> {
    /// The queue is bounded and stayed full: at once for `try_put`, after
    /// the timeout for `put_timeout` (Python's `queue.Full`).
    Full(T),
    /// This handle was closed with `close`.
    Closed(T),
    /// The value could not be serialized; nothing was put. The error names
    /// the type and says why.
    Encode(T, CodecError),
    /// An operating-system error; nothing was put.
    Io(T, io::Error),
}

impl<T> PutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v)
            | PutError::Closed(v)
            | PutError::Encode(v, _)
            | PutError::Io(v, _) => v,
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("queue is full"),
            PutError::Closed(_) => f.write_str("queue is closed"),
            PutError::Encode(_, e) => write!(f, "nothing was put: {e}"),
            PutError::Io(_, e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PutError::Encode(_, e) => Some(e),
            PutError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Why nothing could be taken from a queue.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing arrived: at once for `try_get`, after the timeout for
    /// `get_timeout` (Python's `queue.Empty`).
    Empty,
    /// This handle was closed with `close`.
    Closed,
    /// An item could not be deserialized as the queue's type. It was taken
    /// off the queue, and its bytes are in the error
    /// ([`CodecError::bytes`]), so it is not lost: decode them as another
    /// type, or put them on a queue of bytes.
    Decode(CodecError),
    /// The queue held a record that is not one a queue wrote (its shared
    /// memory was overwritten, or the socket message of an item is
    /// missing); it was dropped.
    Malformed(String),
    /// An operating-system error.
    Io(io::Error),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("queue is empty"),
            GetError::Closed => f.write_str("queue is closed"),
            GetError::Decode(e) => write!(f, "an item was taken but {e}"),
            GetError::Malformed(e) => write!(f, "malformed queue record: {e}"),
            GetError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for GetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GetError::Io(e) => Some(e),
            GetError::Decode(e) => Some(e),
            _ => None,
        }
    }
}

/// `JoinableQueue::task_done` was called more times than items were put
/// (Python's "task_done() called too many times").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TaskDoneError {}

/// A timed wait (`JoinableQueue::join_timeout`) ended first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout;

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for Timeout {}
