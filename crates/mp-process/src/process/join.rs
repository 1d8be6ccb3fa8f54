//! Joining a child: the blocking, timed and async forms of
//! [`Process::join`], which share one reading of the child's report and one
//! ending (reap, decode, the error for a child that gave no result).

use std::future::poll_fn;
use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Inner, Process, Running, State};
use crate::error::{Error, ErrorKind, ExitStatus};
use crate::reactor::{FdWaiter, Interest};
use crate::sys;
use crate::wire::{self, ChildFailure, ChildLimits, Outcome, Stop};

impl<R> Process<R>
where
    R: Serialize + DeserializeOwned + 'static,
{
    /// Waits for the child to end and returns what its function returned.
    ///
    /// A panic comes back as [`ErrorKind::Panicked`] with its message and
    /// location; a death by signal or `exit` without a result as
    /// [`ErrorKind::Died`] with the [`ExitStatus`]. The value can be taken
    /// once: a second join is [`ErrorKind::AlreadyJoined`].
    pub fn join(&mut self) -> Result<R, Error> {
        self.join_deadline(None)
    }

    /// Like [`join`](Process::join), giving up after `timeout` with an
    /// [`ErrorKind::Timeout`] error; the child keeps running and can be
    /// joined, terminated or killed afterwards.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, Error> {
        self.join_deadline(Some(Instant::now() + timeout))
    }

    /// Waits for the child to end without blocking the thread: the async
    /// form of [`join`](Process::join), for any executor, woken by mp's
    /// reactor on the child's pidfd (or the fork server's report of its
    /// exit) and on its result arriving.
    ///
    /// Cancel-safe: dropping the future loses nothing. A result already
    /// read is kept in the handle, and the next join of any form returns
    /// it; the child is not signalled.
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::sleep(std::time::Duration::from_millis(1));
    /// #     }
    /// # }
    /// use mp_process::Process;
    ///
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let mut p = Process::new(square, 12);
    /// p.start()?;
    /// // In async code, under tokio, smol or any other executor:
    /// let squared = block_on(async { p.join_async().await })?;
    /// assert_eq!(squared, 144);
    /// # Ok::<(), mp_process::Error>(())
    /// ```
    pub async fn join_async(&mut self) -> Result<R, Error> {
        // One registration serves both descriptors: the reactor keys its
        // wakers by descriptor, and either readiness wakes this future.
        let mut waiter = FdWaiter::new();
        poll_fn(|cx| self.poll_join(cx, &mut waiter)).await
    }

    fn join_deadline(&mut self, deadline: Option<Instant>) -> Result<R, Error> {
        let max_message = self.max_message;
        let running = self.running()?;
        if running.outcome.is_none() {
            let inner = running.inner.clone();
            let exited = inner.exit_fd();
            let read =
                running
                    .conn
                    .read_frame(exited.as_ref().map(|g| g.fd()), max_message, deadline);
            drop(exited);
            if let Err(Stop::Timeout) = read {
                return Err(timeout_error());
            }
            running.outcome = Some(outcome_of(read, &inner, max_message));
        }
        match running.inner.wait(deadline)? {
            Some(status) => self.finish(status),
            None => Err(timeout_error()),
        }
    }

    /// One step of [`join_async`](Process::join_async): what
    /// `join_deadline` does, with every wait replaced by a registration
    /// with the reactor. Each registration re-checks readiness, so a
    /// source that became ready between the try and the registration
    /// still wakes the future.
    fn poll_join(&mut self, cx: &mut Context<'_>, waiter: &mut FdWaiter) -> Poll<Result<R, Error>> {
        let max_message = self.max_message;
        let running = match self.running() {
            Ok(r) => r,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let register = |e: std::io::Error| Error::io("cannot wait for the child", e);
        if running.outcome.is_none() {
            let inner = running.inner.clone();
            let exited = inner.exit_fd();
            match running
                .conn
                .read_frame_now(exited.as_ref().map(|g| g.fd()), max_message)
            {
                Ok(None) => {
                    // The result's bytes (a child blocked writing a long
                    // one waits for us), or the child's end.
                    let armed = waiter
                        .arm(running.conn.as_fd(), Interest::Read, cx.waker())
                        .and_then(|()| match &exited {
                            Some(g) => waiter.arm(g.fd(), Interest::Read, cx.waker()),
                            None => Ok(()),
                        });
                    return match armed {
                        Ok(()) => Poll::Pending,
                        Err(e) => Poll::Ready(Err(register(e))),
                    };
                }
                read => {
                    drop(exited);
                    let read = read.map(|f| f.expect("Ok(None) handled above"));
                    running.outcome = Some(outcome_of(read, &inner, max_message));
                }
            }
        }
        match running.inner.wait(Some(Instant::now())) {
            Ok(Some(status)) => Poll::Ready(self.finish(status)),
            Ok(None) => match running.inner.exit_fd() {
                Some(g) => match waiter.arm(g.fd(), Interest::Read, cx.waker()) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(register(e))),
                },
                None => {
                    // No pidfd (kernels before 5.3): the child has closed
                    // its socket and is on its way out; poll again soon.
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            },
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// The end of every join once the child is reaped: the handle becomes
    /// joined and the report read earlier becomes the value or the error.
    fn finish(&mut self, status: ExitStatus) -> Result<R, Error> {
        let State::Running(running) = &mut self.state else {
            unreachable!("finish follows a read of a running child's report");
        };
        let outcome = running.outcome.take().expect("read before the wait");
        let inner = running.inner.clone();
        crate::mp_event!(debug, pid = inner.pid, status = %status, "process joined");
        self.state = State::Joined(inner);
        match outcome {
            Ok(Outcome::Ok(bytes)) => crate::codec::decode::<R>(&bytes)
                .map_err(|e| Error::codec("cannot decode the result", e).with_status(Some(status))),
            Ok(Outcome::Panic(info)) => Err(Error::panicked(info, Some(status))),
            Ok(Outcome::Failed(f)) => Err(failure_error(f).with_status(Some(status))),
            Err(e) if e.kind() == ErrorKind::Died => Err(self.why_died(status)),
            Err(e) => Err(e.with_status(Some(status))),
        }
    }
}

impl<R> Process<R> {
    /// The running child, or the error for joining one that is not.
    fn running(&mut self) -> Result<&mut Running, Error> {
        match &mut self.state {
            State::NotStarted => Err(Error::new(
                ErrorKind::NotStarted,
                "cannot join a process before start",
            )),
            State::Joined(_) => Err(Error::new(
                ErrorKind::AlreadyJoined,
                "the process was already joined",
            )),
            State::Running(r) => Ok(r),
        }
    }

    /// The error for a child that ended without a result: a time limit
    /// (SIGALRM) or memory cap (its exit code) it was given, else `Died`.
    fn why_died(&self, status: ExitStatus) -> Error {
        match self.limits {
            ChildLimits { time: Some(t), .. } if status.signal() == Some(libc::SIGALRM) => {
                Error::limit(
                    ErrorKind::TimeLimit,
                    format!("the child ran past its time limit of {t:?} and was stopped"),
                    status,
                )
            }
            ChildLimits {
                memory: Some(m), ..
            } if status.code() == Some(sys::MEMORY_LIMIT_EXIT) => Error::limit(
                ErrorKind::MemoryLimit,
                format!("the child reached its memory limit of {m} bytes (an allocation failed)"),
                status,
            ),
            _ => Error::died(status),
        }
    }
}

/// The child's report from what reading its socket gave (never a timeout:
/// the caller returns before).
fn outcome_of(
    read: Result<(u32, Vec<u8>), Stop>,
    inner: &Inner,
    max_message: u64,
) -> Result<Outcome, Error> {
    match read {
        Ok((wire::OUTCOME, bytes)) => postcard::from_bytes::<Outcome>(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("cannot decode the child's report: {e}"),
            )
        }),
        Ok((kind, _)) => Err(Error::new(
            ErrorKind::Io,
            format!("unexpected frame {kind} from the child"),
        )),
        Err(Stop::Timeout) => Err(timeout_error()),
        Err(Stop::Closed) => Err(Error::new(
            ErrorKind::Died,
            "the child ended without a result",
        )),
        Err(Stop::TooLarge(n)) => {
            let _ = inner.signal(sys::SIGKILL);
            Err(Error::new(
                ErrorKind::TooLarge,
                format!("the result takes {n} bytes, over the limit of {max_message}"),
            ))
        }
        Err(Stop::Io(e)) => Err(Error::io("cannot read from the child", e)),
    }
}

fn timeout_error() -> Error {
    Error::new(ErrorKind::Timeout, "timed out waiting for the child")
}

pub(crate) fn failure_error(f: ChildFailure) -> Error {
    match f {
        ChildFailure::Serialization(m) => Error::new(ErrorKind::Serialization, m),
        ChildFailure::TooLarge { size, limit } => Error::new(
            ErrorKind::TooLarge,
            format!("the result takes {size} bytes, over the limit of {limit}"),
        ),
        ChildFailure::Unresolvable(m) => Error::new(ErrorKind::Unresolvable, m),
    }
}
