//! The pool's error type: what failed a task, a call or the pool itself.

use std::fmt;
use std::time::Duration;

use mp_process::{CodecError, ExitStatus, PanicInfo};
use serde::{Deserialize, Serialize};

/// The error type of mp-pool: a [`kind`](Error::kind) to match on, with the
/// details (panic message and location, a lost worker's exit status) behind
/// accessors. It is `Clone`, because one failure (a lost worker, a broken
/// executor) can fail many results.
///
/// ```
/// use mp_pool::{ErrorKind, Pool};
///
/// fn boom(_: ()) -> u8 { panic!("no luck") }
///
/// let pool = Pool::new(1)?;
/// let err = pool.apply(boom, ()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Panicked);
/// assert_eq!(err.panic_info().unwrap().message(), "no luck");
/// # Ok::<(), mp_pool::Error>(())
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    panic: Option<Box<PanicInfo>>,
    status: Option<ExitStatus>,
    // Boxed, as the panic: rare, and an `Error` stays small in every `Result`.
    codec: Option<Box<CodecError>>,
    /// The limit a task reached, for `TimeLimit` and `MemoryLimit`.
    hit: Option<Box<Hit>>,
}

/// The limit a task reached.
#[derive(Clone, Copy, Debug)]
enum Hit {
    Time { limit: Duration, elapsed: Duration },
    Memory { limit: u64 },
}

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task's function panicked; see [`Error::panic_info`].
    Panicked,
    /// The worker running the task died (killed, aborted, exited); see
    /// [`Error::exit_status`]. The pool replaced it.
    WorkerLost,
    /// The pool was terminated before the task finished.
    Terminated,
    /// A timed wait ran out; the result is not lost and the call can be
    /// repeated.
    Timeout,
    /// The pool is closed or terminated and takes no new work (Python's
    /// `ValueError: Pool not running`, `RuntimeError: cannot schedule new
    /// futures after shutdown`).
    NotRunning,
    /// `join` was called on a pool that is still running (call `close` or
    /// `terminate` first).
    StillRunning,
    /// An argument is out of range: zero processes, a chunk size of zero,
    /// a `maxtasksperchild` of zero.
    InvalidArgument,
    /// A worker's initializer failed. The pool stops starting workers and
    /// fails every pending and later task with this error.
    Initializer,
    /// A worker of a [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)
    /// died: every pending future failed and no new work is taken (Python's
    /// `BrokenProcessPool`).
    Broken,
    /// The future was cancelled before it ran.
    Cancelled,
    /// The result is not ready yet (`successful` before completion).
    NotReady,
    /// Arguments or a result failed to encode or decode.
    Serialization,
    /// Starting a worker process failed, or another failure of the
    /// process machinery; the message says which.
    Process,
    /// The task ran past its hard time limit ([`Limits`](crate::Limits)):
    /// its worker was stopped and replaced. See [`Error::time_limit`] and
    /// [`Error::elapsed`]. No other task is affected (an executor does not
    /// break).
    TimeLimit,
    /// The task's worker reached its memory cap
    /// ([`PoolBuilder::memory_limit`](crate::PoolBuilder::memory_limit)):
    /// an allocation failed and the worker was replaced. See
    /// [`Error::memory_limit`].
    MemoryLimit,
    /// Workers died faster than the restart limit allows (a crashing
    /// initializer, a library that crashes as it loads): the pool stopped
    /// replacing them and fails every pending and later task so.
    RestartLimit,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            panic: None,
            status: None,
            codec: None,
            hit: None,
        }
    }

    /// An [`ErrorKind::TimeLimit`] error.
    pub(crate) fn time_limit_hit(limit: Duration, elapsed: Duration) -> Error {
        Error {
            hit: Some(Box::new(Hit::Time { limit, elapsed })),
            ..Error::new(
                ErrorKind::TimeLimit,
                format!(
                    "the task ran past its time limit of {limit:?} (stopped after {elapsed:?}); its worker was replaced"
                ),
            )
        }
    }

    /// An [`ErrorKind::MemoryLimit`] error.
    pub(crate) fn memory_limit_hit(limit: u64) -> Error {
        Error {
            hit: Some(Box::new(Hit::Memory { limit })),
            ..Error::new(
                ErrorKind::MemoryLimit,
                format!(
                    "the task's worker reached its memory limit of {limit} bytes (an allocation failed); the worker was replaced"
                ),
            )
        }
    }

    /// A [`ErrorKind::Serialization`] error: `context`, then the codec's
    /// words (the type and why), keeping the codec's error for its bytes.
    pub(crate) fn codec(context: &str, e: CodecError) -> Error {
        Error {
            codec: Some(Box::new(e.clone())),
            ..Error::new(ErrorKind::Serialization, format!("{context}: {e}"))
        }
    }

    pub(crate) fn with_status(mut self, status: Option<ExitStatus>) -> Error {
        self.status = status;
        self
    }

    pub(crate) fn with_panic(mut self, panic: Option<PanicInfo>) -> Error {
        self.panic = panic.map(Box::new);
        self
    }

    /// An error of another kind, keeping this one's details (the panic
    /// that failed an initializer, for instance).
    pub(crate) fn rekind(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: format!("{}: {}", message.into(), self),
            panic: self.panic.clone(),
            status: self.status,
            codec: self.codec.clone(),
            hit: self.hit.clone(),
        }
    }

    pub(crate) fn timeout() -> Error {
        Error::new(ErrorKind::Timeout, "timed out waiting for the result")
    }

    pub(crate) fn not_running() -> Error {
        Error::new(ErrorKind::NotRunning, "pool not running")
    }

    pub(crate) fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, "the future was cancelled")
    }

    pub(crate) fn terminated() -> Error {
        Error::new(
            ErrorKind::Terminated,
            "the pool was terminated before the task finished",
        )
    }

    /// A task's failure as mp-process reports it.
    pub(crate) fn from_process(e: &mp_process::Error) -> Error {
        use mp_process::ErrorKind as P;
        match e.kind() {
            P::Panicked => Error::new(ErrorKind::Panicked, "the task panicked")
                .with_panic(e.panic_info().cloned()),
            P::Serialization | P::TooLarge => Error {
                codec: e.codec_error().cloned().map(Box::new),
                ..Error::new(ErrorKind::Serialization, e.to_string())
            },
            _ => Error::new(ErrorKind::Process, e.to_string()).with_status(e.exit_status()),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The panic that failed the task, for [`ErrorKind::Panicked`] (and
    /// for [`ErrorKind::Initializer`] when the initializer panicked).
    pub fn panic_info(&self) -> Option<&PanicInfo> {
        self.panic.as_deref()
    }

    /// How the lost worker ended, for [`ErrorKind::WorkerLost`] and
    /// [`ErrorKind::Broken`] (and for [`ErrorKind::TimeLimit`] and
    /// [`ErrorKind::MemoryLimit`], the stopped worker: SIGTERM, or SIGKILL
    /// after the grace; the memory limit's exit code).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Python's `exitcode` of the lost worker: its exit code, or minus the
    /// number of the signal that killed it.
    pub fn exitcode(&self) -> Option<i32> {
        self.status.map(|s| s.exitcode())
    }

    /// The hard time limit the task ran past, for [`ErrorKind::TimeLimit`].
    pub fn time_limit(&self) -> Option<Duration> {
        match self.hit.as_deref() {
            Some(Hit::Time { limit, .. }) => Some(*limit),
            _ => None,
        }
    }

    /// How long the task had run when its worker was stopped, for
    /// [`ErrorKind::TimeLimit`] (the limit plus the supervisor's delay).
    pub fn elapsed(&self) -> Option<Duration> {
        match self.hit.as_deref() {
            Some(Hit::Time { elapsed, .. }) => Some(*elapsed),
            _ => None,
        }
    }

    /// The memory limit in bytes the task's worker reached, for
    /// [`ErrorKind::MemoryLimit`].
    pub fn memory_limit(&self) -> Option<u64> {
        match self.hit.as_deref() {
            Some(Hit::Memory { limit }) => Some(*limit),
            _ => None,
        }
    }

    /// Whether this is a [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// The codec's failure behind a [`ErrorKind::Serialization`] error
    /// found in this process: the type, serde's reason, and for a result
    /// that did not decode its bytes. (A failure in the worker, such as
    /// arguments it could not decode, comes as the message alone.)
    pub fn codec_error(&self) -> Option<&CodecError> {
        self.codec.as_deref()
    }

    /// The worker's backtrace at the task's panic, when the worker captured
    /// one (`RUST_BACKTRACE` set in its environment); also shown by `{:#}`
    /// (Display's alternate form) and by Debug.
    pub fn backtrace(&self) -> Option<&str> {
        self.panic.as_deref().and_then(PanicInfo::backtrace)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(p) = &self.panic {
            d.field("panic", p);
        }
        if let Some(s) = &self.status {
            d.field("status", s);
        }
        if let Some(c) = &self.codec {
            d.field("codec", c);
        }
        if let Some(h) = &self.hit {
            d.field("hit", h);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(p) = &self.panic {
            write!(f, ": {p}")?;
        }
        if let Some(s) = &self.status {
            write!(f, " ({s})")?;
        }
        if let (true, Some(bt)) = (f.alternate(), self.backtrace()) {
            write!(f, "\n\nworker's backtrace:\n{bt}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<mp_process::Error> for Error {
    fn from(e: mp_process::Error) -> Error {
        Error::from_process(&e)
    }
}

/// A task's failure on the wire, from a worker to the pool.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireError {
    panicked: bool,
    serialization: bool,
    message: String,
    panic: Option<PanicInfo>,
}

impl WireError {
    pub(crate) fn from_error(e: &Error) -> WireError {
        WireError {
            panicked: e.kind == ErrorKind::Panicked,
            serialization: e.kind == ErrorKind::Serialization,
            message: e.message.clone(),
            panic: e.panic.as_deref().cloned(),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        let kind = if self.panicked {
            ErrorKind::Panicked
        } else if self.serialization {
            ErrorKind::Serialization
        } else {
            ErrorKind::Process
        };
        Error::new(kind, self.message).with_panic(self.panic)
    }
}
