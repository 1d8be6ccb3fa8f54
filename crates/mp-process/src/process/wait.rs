//! Waiting for a child's end: `waitpid` and its pidfd for our own
//! children, the fork server's report for its, with or without a deadline.
//! The lock on the waiter keeps a pid from being reaped (and reused) while
//! it is signalled or a pidfd is made for it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Inner, Running, WaitHow, Waiter};
use crate::error::{Error, ExitStatus};
use crate::forkserver;
use crate::sys;
use crate::wire::ParentConn;

impl Running {
    pub(super) fn new(
        pid: u32,
        name: String,
        daemon: bool,
        how: WaitHow,
        conn: ParentConn,
    ) -> Running {
        let inner = Arc::new(Inner {
            pid,
            name,
            daemon,
            wait: Mutex::new(Waiter {
                pid,
                how,
                status: None,
            }),
        });
        Running {
            inner,
            conn,
            outcome: None,
        }
    }
}

/// A borrowed descriptor that becomes readable when the child is gone,
/// kept alive by the lock on the waiter.
pub(super) struct ExitFd<'a>(std::sync::MutexGuard<'a, Waiter>);

impl ExitFd<'_> {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match &self.0.how {
            WaitHow::Direct { pidfd } => pidfd.as_ref().expect("checked in exit_fd").as_fd(),
            WaitHow::Server { status } => status.as_fd(),
        }
    }
}

impl Inner {
    pub(super) fn exit_fd(&self) -> Option<ExitFd<'_>> {
        let g = self.wait.lock().unwrap_or_else(|p| p.into_inner());
        match (&g.how, g.status) {
            (_, Some(_)) => None,
            (WaitHow::Direct { pidfd: None }, _) => None,
            _ => Some(ExitFd(g)),
        }
    }

    /// The exit status if the child has ended (reaping it), without waiting.
    /// `None` also while another thread is waiting for it.
    pub(super) fn try_status(&self) -> Option<ExitStatus> {
        let mut g = self.wait.try_lock().ok()?;
        g.poll(Some(Instant::now())).ok().flatten()
    }

    pub(super) fn sentinel(&self) -> Result<OwnedFd, Error> {
        let io = |e| Error::io("cannot make the process's sentinel", e);
        // The lock keeps a direct child from being reaped (and its pid
        // reused) while its pidfd is made.
        let g = self.wait.lock().unwrap_or_else(|p| p.into_inner());
        // Ended: a pipe without a writer, readable (end of file) at once.
        let ended = || -> Result<OwnedFd, Error> {
            let (reader, _writer) = std::io::pipe().map_err(io)?;
            Ok(reader.into())
        };
        if g.status.is_some() {
            return ended();
        }
        match &g.how {
            WaitHow::Direct { pidfd: Some(fd) } => fd.try_clone().map_err(io),
            _ => match sys::pidfd_open(self.pid) {
                Ok(fd) => Ok(fd),
                // A fork-server child that has ended and been reaped by the
                // server, before its status reached us.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => ended(),
                Err(e) => Err(io(e)),
            },
        }
    }

    /// Waits until `deadline` for the child to end; `Ok(None)` on timeout.
    pub(super) fn wait(&self, deadline: Option<Instant>) -> Result<Option<ExitStatus>, Error> {
        let mut g = self.wait.lock().unwrap_or_else(|p| p.into_inner());
        g.poll(deadline)
    }

    pub(super) fn signal(&self, sig: i32) -> Result<(), Error> {
        let g = self.wait.lock().unwrap_or_else(|p| p.into_inner());
        if g.status.is_some() {
            return Ok(());
        }
        // Holding the lock keeps the pid from being reaped (and reused)
        // while the signal is sent, for our direct children.
        match sys::kill(self.pid, sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(Error::io("cannot signal the child", e)),
        }
    }
}

impl Waiter {
    /// Waits until `deadline` (`None`: forever) for the exit status.
    fn poll(&mut self, deadline: Option<Instant>) -> Result<Option<ExitStatus>, Error> {
        if self.status.is_none() {
            let raw = match &mut self.how {
                WaitHow::Direct { pidfd } => wait_direct(self.pid, pidfd.as_ref(), deadline)?,
                WaitHow::Server { status } => wait_server(status, deadline)?,
            };
            self.status = raw.map(ExitStatus::from_raw);
        }
        Ok(self.status)
    }
}

fn wait_direct(
    pid: u32,
    pidfd: Option<&OwnedFd>,
    deadline: Option<Instant>,
) -> Result<Option<i32>, Error> {
    let reap =
        |block| sys::waitpid(pid, block).map_err(|e| Error::io("cannot wait for the child", e));
    let Some(deadline) = deadline else {
        return reap(true);
    };
    loop {
        if let Some(raw) = reap(false)? {
            return Ok(Some(raw));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match pidfd {
            Some(fd) => {
                sys::poll_read(&[fd.as_fd()], Some(left))
                    .map_err(|e| Error::io("cannot wait for the child", e))?;
            }
            // Kernels before 5.3 have no pidfd: poll the child's state.
            None => std::thread::sleep(left.min(Duration::from_millis(2))),
        }
    }
}

fn wait_server(status: &mut UnixStream, deadline: Option<Instant>) -> Result<Option<i32>, Error> {
    let mut buf = [0u8; 4];
    match forkserver::read_exact_deadline(status, &mut buf, deadline) {
        Ok(()) => Ok(Some(i32::from_le_bytes(buf))),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(None),
        Err(e) => Err(Error::io(
            "lost the fork server before the child's exit status",
            e,
        )),
    }
}
