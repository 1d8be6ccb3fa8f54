//! The fork server: a fresh, single-threaded run of this executable that
//! forks children on request.
//!
//! Protocol (see also docs/ARCHITECTURE.md). The parent holds one end of a
//! `SOCK_SEQPACKET` control socket. A request is one message: a byte (1 for
//! a daemon child) and, as SCM_RIGHTS, the child's end of its connection
//! socket, the server's end of a status socket, and for daemons the parent's
//! lifeline. The server forks; the new child runs the call from its
//! connection like a spawned child would. The server writes the child's pid
//! (`i32`, little-endian) to the status socket at once, and its raw wait
//! status (`i32`) when it has reaped the child. End of stream on the control
//! socket means the parent is gone: the server exits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sys;

/// The server of this process, started on first use.
static SERVER: Mutex<Option<Server>> = Mutex::new(None);

#[derive(Debug)]
struct Server {
    ctrl: OwnedFd,
    process: sys::Spawned,
}

/// How long a healthy server may take to answer with a pid.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks the server for a child that will serve `conn`, and returns its pid
/// and the status socket that will carry its wait status.
pub(crate) fn fork_child(
    conn: OwnedFd,
    daemon: bool,
    lifeline: Option<RawFd>,
) -> Result<(u32, UnixStream), Error> {
    let (status_mine, status_theirs) =
        UnixStream::pair().map_err(|e| Error::io("cannot create a status socket", e))?;
    let mut fds = vec![conn.as_raw_fd(), status_theirs.as_raw_fd()];
    fds.extend(lifeline);
    {
        let mut guard = SERVER.lock().unwrap_or_else(|p| p.into_inner());
        // One retry: a server that died since the last request (killed, say)
        // is reaped and replaced transparently, as CPython does.
        let mut tries = 0;
        loop {
            if guard.is_none() {
                *guard = Some(start()?);
            }
            let server = guard.as_mut().expect("just set");
            match sys::send_with_fds(server.ctrl.as_fd(), &[daemon as u8], &fds) {
                Ok(()) => break,
                Err(_) if tries == 0 => {
                    let dead = guard.take().expect("present");
                    let _ = dead.process.kill();
                    let _ = dead.process.wait();
                    tries += 1;
                }
                Err(e) => return Err(Error::io("cannot reach the fork server", e)),
            }
        }
    }
    drop(status_theirs);
    drop(conn);
    let mut status = status_mine;
    let mut pid = [0u8; 4];
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    read_exact_deadline(&mut status, &mut pid, Some(deadline))
        .map_err(|e| Error::io("the fork server did not report the child's pid", e))?;
    Ok((i32::from_le_bytes(pid) as u32, status))
}

/// Reads exactly `buf.len()` bytes before `deadline` (`None`: no limit).
pub(crate) fn read_exact_deadline(
    s: &mut UnixStream,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if !sys::poll_read(&[s.as_fd()], left)?[0] {
            if left.is_some_and(|l| l.is_zero()) {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            continue;
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn start() -> Result<Server, Error> {
    let (mine, theirs) =
        sys::seqpacket_pair().map_err(|e| Error::io("cannot create the fork server socket", e))?;
    let fd = theirs.as_raw_fd();
    let process = sys::spawn_self(&[fd], |n| {
        vec![(crate::bootstrap::ENV_SERVER, n[0].to_string())]
    })
    .map_err(|e| Error::io("cannot start the fork server", e))?;
    Ok(Server {
        ctrl: mine,
        process,
    })
}

/// In a forked child: forgets the parent's server without touching it, so
/// that the server still sees end-of-stream when the parent exits.
pub(crate) fn forget_in_child() {
    if let Ok(mut guard) = SERVER.try_lock() {
        if let Some(server) = guard.take() {
            // The server is the parent's child, not ours: its handle (a
            // pid) is dropped without a wait or a signal.
            drop(server.ctrl);
        }
    }
}

/// The server's main loop. Never returns.
pub(crate) fn serve(ctrl: OwnedFd) -> ! {
    sys::ignore_sigpipe();
    let sigchld = match sys::sigchld_fd() {
        Ok(fd) => fd,
        Err(_) => sys::exit_now(70),
    };
    let mut sigchld = std::fs::File::from(sigchld);
    let mut children: HashMap<u32, UnixStream> = HashMap::new();
    loop {
        let ready = match sys::poll_read(&[ctrl.as_fd(), sigchld.as_fd()], None) {
            Ok(r) => r,
            Err(_) => sys::exit_now(70),
        };
        if ready[1] {
            let mut drain = [0u8; 1024];
            while matches!(sigchld.read(&mut drain), Ok(n) if n > 0) {}
            while let Some((pid, raw)) = sys::wait_any() {
                if let Some(mut s) = children.remove(&pid) {
                    let _ = s.write_all(&raw.to_le_bytes());
                }
            }
        }
        if ready[0] {
            let mut buf = [0u8; 16];
            let (n, mut fds) = match sys::recv_with_fds(ctrl.as_fd(), &mut buf, 3) {
                Ok(r) => r,
                Err(_) => sys::exit_now(0),
            };
            if n == 0 && fds.is_empty() {
                // The parent is gone.
                sys::exit_now(0);
            }
            if fds.len() < 2 {
                continue;
            }
            let daemon = buf[0] == 1;
            let lifeline = if fds.len() > 2 { fds.pop() } else { None };
            let status = UnixStream::from(fds.pop().expect("two fds"));
            let conn = UnixStream::from(fds.pop().expect("one fd"));
            match sys::fork() {
                Ok(sys::Forked::Child) => {
                    drop(ctrl);
                    drop(sigchld);
                    drop(status);
                    drop(children);
                    sys::reset_signal_mask();
                    crate::bootstrap::run_child(conn, lifeline.filter(|_| daemon));
                }
                Ok(sys::Forked::Parent(pid)) => {
                    drop(conn);
                    drop(lifeline);
                    let mut status = status;
                    if status.write_all(&(pid as i32).to_le_bytes()).is_ok() {
                        children.insert(pid, status);
                    }
                }
                Err(_) => {
                    // The parent sees end-of-stream on the status socket
                    // instead of a pid, and reports the failure.
                }
            }
        }
    }
}
