//! Errors: what went wrong starting, running or joining a child.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use crate::codec::CodecError;
use crate::sys;

/// The error type of mp-process: a [`kind`](Error::kind) to match on, with
/// the details (panic message, exit status) behind accessors.
///
/// ```
/// use mp_process::{ErrorKind, Process};
///
/// fn boom(_: ()) { panic!("no luck") }
///
/// let mut p = Process::new(boom, ());
/// p.start().unwrap();
/// let err = p.join().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Panicked);
/// assert_eq!(err.panic_info().unwrap().message(), "no luck");
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    // Boxed, as the codec's error: a panic or a codec failure is rare, and
    // an `Error` stays small in every `Result`.
    panic: Option<Box<PanicInfo>>,
    status: Option<ExitStatus>,
    source: Option<io::Error>,
    codec: Option<Box<CodecError>>,
}

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The function panicked in the child; see [`Error::panic_info`].
    Panicked,
    /// The child ended (exit code or signal) without reporting a result; see
    /// [`Error::exit_status`].
    Died,
    /// A timed wait ran out; the child is still running and the call can be
    /// repeated.
    Timeout,
    /// Arguments or result failed to serialize or deserialize.
    Serialization,
    /// An argument or result is larger than the configured limit.
    TooLarge,
    /// The function cannot be found in a re-executed child.
    Unresolvable,
    /// A child never entered mp: the program's `main` ran instead of the
    /// child's task (see [`init`](crate::init)).
    NotEntered,
    /// `start` was called twice.
    AlreadyStarted,
    /// `join`, `terminate` or `kill` before `start`.
    NotStarted,
    /// The result was already taken by an earlier `join`.
    AlreadyJoined,
    /// An unknown start method name, or a method this platform lacks.
    InvalidStartMethod,
    /// The process-wide start method was already set.
    ContextAlreadySet,
    /// The operation is not allowed here: a closure under a start method
    /// other than fork. (A daemon may start children, unlike in CPython:
    /// they are daemons too by default, so they die with it.)
    NotAllowed,
    /// An operating-system call failed; see [`std::error::Error::source`].
    Io,
    /// The child ran past its time limit ([`Process::time_limit`](crate::Process::time_limit))
    /// and was stopped.
    TimeLimit,
    /// The child reached its memory limit ([`Process::memory_limit`](crate::Process::memory_limit)):
    /// an allocation failed and it exited with [`MEMORY_LIMIT_EXIT`](crate::MEMORY_LIMIT_EXIT).
    MemoryLimit,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            panic: None,
            status: None,
            source: None,
            codec: None,
        }
    }

    /// A [`ErrorKind::Serialization`] error: `context` (what was being
    /// sent or received), then the codec's words.
    pub(crate) fn codec(context: &str, e: CodecError) -> Error {
        Error {
            codec: Some(Box::new(e.clone())),
            ..Error::new(ErrorKind::Serialization, format!("{context}: {e}"))
        }
    }

    pub(crate) fn io(context: &str, e: io::Error) -> Error {
        Error {
            source: Some(e),
            ..Error::new(ErrorKind::Io, context)
        }
    }

    pub(crate) fn panicked(info: PanicInfo, status: Option<ExitStatus>) -> Error {
        Error {
            panic: Some(Box::new(info)),
            status,
            ..Error::new(ErrorKind::Panicked, "the child panicked")
        }
    }

    pub(crate) fn died(status: ExitStatus) -> Error {
        Error {
            status: Some(status),
            ..Error::new(ErrorKind::Died, "the child ended without a result")
        }
    }

    /// A child stopped by its time limit (`ns`) or memory cap.
    pub(crate) fn limit(kind: ErrorKind, message: String, status: ExitStatus) -> Error {
        Error {
            status: Some(status),
            ..Error::new(kind, message)
        }
    }

    pub(crate) fn with_status(mut self, status: Option<ExitStatus>) -> Error {
        self.status = self.status.or(status);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The panic that ended the child's function, for [`ErrorKind::Panicked`].
    pub fn panic_info(&self) -> Option<&PanicInfo> {
        self.panic.as_deref()
    }

    /// How the child ended, when that is known.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Python's `exitcode` of the child: its exit code, or minus the number
    /// of the signal that killed it.
    pub fn exitcode(&self) -> Option<i32> {
        self.status.map(|s| s.exitcode())
    }

    /// Whether this is a [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// The codec's failure behind a [`ErrorKind::Serialization`] error
    /// found in this process: the type, the reason, and for a decode the
    /// bytes that did not decode (a result is not lost to its type).
    pub fn codec_error(&self) -> Option<&CodecError> {
        self.codec.as_deref()
    }

    /// The child's backtrace at the panic, for [`ErrorKind::Panicked`],
    /// when the child captured one (`RUST_BACKTRACE` or
    /// `RUST_LIB_BACKTRACE` set in its environment). Also shown by
    /// `{:#}` (Display's alternate form) and by Debug.
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
        if let Some(e) = &self.source {
            d.field("source", e);
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
        if let (Some(s), None) = (&self.status, &self.panic) {
            write!(f, " ({s})")?;
        }
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        if let (true, Some(bt)) = (f.alternate(), self.backtrace()) {
            write!(f, "\n\nchild's backtrace:\n{bt}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// A panic in a child: its message, where it happened, and the backtrace
/// when the child captured one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicInfo {
    message: String,
    location: Option<Location>,
    backtrace: Option<String>,
}

/// A place in the source: file, line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    file: String,
    line: u32,
    column: u32,
}

impl PanicInfo {
    pub(crate) fn new(
        message: String,
        location: Option<Location>,
        backtrace: Option<String>,
    ) -> PanicInfo {
        PanicInfo {
            message,
            location,
            backtrace,
        }
    }

    /// The panic message (`"<non-string panic payload>"` for other payloads).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panic happened, when the panic hook saw it.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The backtrace of the panicking thread, as std prints it, when it
    /// was captured: `std::backtrace::Backtrace::capture` in the panic
    /// hook, which captures when `RUST_BACKTRACE` (or
    /// `RUST_LIB_BACKTRACE`) is set in the process that panicked, as
    /// CPython's error carries the remote traceback.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }
}

impl fmt::Display for PanicInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "panicked at {l}: {}", self.message),
            None => write!(f, "panicked: {}", self.message),
        }
    }
}

impl Location {
    pub(crate) fn from_std(l: &std::panic::Location<'_>) -> Location {
        Location {
            file: l.file().to_owned(),
            line: l.line(),
            column: l.column(),
        }
    }

    /// The source file.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, from 1.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, from 1.
    pub fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How a child process ended: an exit code or a signal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus {
    raw: i32,
}

impl ExitStatus {
    pub(crate) fn from_raw(raw: i32) -> ExitStatus {
        ExitStatus { raw }
    }

    /// The exit code, if the child exited (`std::process::exit(n)` gives `n`
    /// modulo 256).
    pub fn code(&self) -> Option<i32> {
        libc::WIFEXITED(self.raw).then(|| libc::WEXITSTATUS(self.raw))
    }

    /// The number of the signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        libc::WIFSIGNALED(self.raw).then(|| libc::WTERMSIG(self.raw))
    }

    /// Whether the child exited with code 0.
    pub fn success(&self) -> bool {
        self.code() == Some(0)
    }

    /// Python's `Process.exitcode`: the exit code, or `-signal`.
    pub fn exitcode(&self) -> i32 {
        match (self.code(), self.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => -s,
            _ => self.raw,
        }
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExitStatus({self})")
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code(), self.signal()) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by {}", sys::signal_name(s)),
            _ => write!(f, "wait status {:#x}", self.raw),
        }
    }
}
