//! A keyed listener's acceptor: one thread takes connections from the
//! kernel and runs each handshake on a thread of its own, at most
//! `max_handshakes` at once, each bounded by the handshake deadline; the
//! connections that authenticated wait in a queue for `Listener::accept`.
//! So a peer that stalls its handshake holds one handshake thread for at
//! most the deadline and never the path that hands connections out.
//!
//! When every handshake thread is busy and another peer is waiting, the
//! handshake that started first is cut off (its socket shut down) once it
//! is older than [`EVICT_AFTER`]: peers that stall cannot keep the slots
//! for their whole deadline while others wait. Younger handshakes are left
//! alone (a burst of honest clients is not cut off); the waiting peer stays
//! in the kernel's backlog meanwhile.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};

use super::ListenerConfig;
use crate::auth;
use crate::connection::Connection;
use crate::error::Error;
use crate::sock;

/// How old a running handshake must be before a waiting peer may cut it
/// off when every slot is busy. An honest handshake over loopback takes well
/// under a millisecond; this leaves room for a loaded machine.
pub(crate) const EVICT_AFTER: Duration = Duration::from_millis(100);

/// Stack of a handshake thread: it only runs the HMAC exchange (its buffers
/// are on the heap).
const HANDSHAKE_STACK: usize = 256 * 1024;

/// The listening socket, owned by the accept thread.
pub(crate) enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Socket {
    /// Takes one pending connection (the socket is non-blocking).
    pub(crate) fn accept(&self) -> std::io::Result<OwnedFd> {
        match self {
            Socket::Unix(l) => l.accept().map(|(s, _)| OwnedFd::from(s)),
            Socket::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                OwnedFd::from(s)
            }),
        }
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Socket::Unix(l) => l.as_fd(),
            Socket::Tcp(l) => l.as_fd(),
        }
    }
}

/// What the accept thread, the handshake threads and `accept` share.
struct Shared {
    state: Mutex<State>,
    /// A connection is ready, or the listener closed.
    ready_cv: Condvar,
    /// A handshake ended or a ready connection was taken, or the listener
    /// closed: the accept thread may go on.
    room_cv: Condvar,
    key: Vec<u8>,
    config: ListenerConfig,
}

#[derive(Default)]
struct State {
    /// Authenticated connections not yet taken by `accept`.
    ready: VecDeque<Connection>,
    /// Handshake threads alive.
    threads: usize,
    /// Handshakes that may still be cut off, oldest first: id, start, and a
    /// second descriptor of the socket (to shut it down; the thread owns
    /// the connection).
    running: VecDeque<(u64, Instant, OwnedFd)>,
    next_id: u64,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The background half of a keyed [`Listener`](super::Listener).
pub(crate) struct Acceptor {
    shared: Arc<Shared>,
    /// Closing this end wakes the accept thread from `poll`.
    wake: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Starts the accept thread on `socket`.
    pub(crate) fn start(
        socket: Socket,
        key: Vec<u8>,
        config: ListenerConfig,
    ) -> Result<Acceptor, Error> {
        let (wake, woken) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            ready_cv: Condvar::new(),
            room_cv: Condvar::new(),
            key,
            config,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mp-ipc-accept".into())
            .spawn(move || accept_loop(&s, &socket, &woken))?;
        Ok(Acceptor {
            shared,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// The next authenticated connection, waiting until `deadline`
    /// (`None`: as long as it takes).
    pub(crate) fn accept(&self, deadline: Option<Instant>) -> Result<Connection, Error> {
        let mut st = self.shared.lock();
        loop {
            if let Some(c) = st.ready.pop_front() {
                self.shared.room_cv.notify_one();
                return Ok(c);
            }
            if st.closed {
                return Err(Error::Closed);
            }
            st = match deadline {
                None => self
                    .shared
                    .ready_cv
                    .wait(st)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout);
                    }
                    self.shared
                        .ready_cv
                        .wait_timeout(st, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Stops the accept thread and every handshake thread, and closes every
    /// socket: the listening one, those mid-handshake and the authenticated
    /// connections nobody took. Returns once all of them are gone.
    pub(crate) fn close(&mut self) {
        let ready = {
            let mut st = self.shared.lock();
            st.closed = true;
            std::mem::take(&mut st.ready)
        };
        drop(ready);
        self.shared.ready_cv.notify_all();
        self.shared.room_cv.notify_all();
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.close();
    }
}

/// The accept thread: wait for a peer, make room for its handshake, take
/// it, start its handshake thread. On close: shut down the handshakes
/// still running, join their threads, close the socket.
fn accept_loop(shared: &Arc<Shared>, socket: &Socket, woken: &OwnedFd) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    loop {
        threads = reap(threads);
        match sock::wait_any(&[socket.fd(), woken.as_fd()], None) {
            Ok(ready) if ready.contains(&1) => break,
            Ok(_) => {}
            // poll itself failing (out of memory): try again shortly.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        if !make_room(shared) {
            break;
        }
        let fd = match socket.accept() {
            Ok(fd) => fd,
            // The peer went away meanwhile, or a signal.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            // Out of descriptors or memory, or a network error of one
            // pending peer: the listener goes on after a pause, rather than
            // spin on a socket that stays readable.
            Err(_) => {
                if !pause(shared, Duration::from_millis(10)) {
                    break;
                }
                continue;
            }
        };
        if let Some(t) = start_handshake(shared, fd) {
            threads.push(t);
        }
    }
    {
        let st = shared.lock();
        for (_, _, fd) in &st.running {
            let _ = rustix::net::shutdown(fd, Shutdown::Both);
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Joins the handshake threads that have ended; returns the others.
fn reap(threads: Vec<JoinHandle<()>>) -> Vec<JoinHandle<()>> {
    let (done, alive): (Vec<_>, Vec<_>) = threads.into_iter().partition(|t| t.is_finished());
    for t in done {
        let _ = t.join();
    }
    alive
}

/// Waits until a handshake thread and a place in the ready queue are free,
/// cutting off the oldest handshake once it is older than [`EVICT_AFTER`].
/// False: the listener closed.
fn make_room(shared: &Shared) -> bool {
    let max = shared.config.max_handshakes;
    let mut st = shared.lock();
    loop {
        if st.closed {
            return false;
        }
        if st.threads < max && st.ready.len() < max {
            return true;
        }
        let mut wait = EVICT_AFTER;
        if st.threads >= max {
            if let Some(&(_, started, _)) = st.running.front() {
                let age = started.elapsed();
                if age >= EVICT_AFTER {
                    let (_, _, fd) = st.running.pop_front().expect("front exists");
                    // Its thread sees end of stream at once and frees the
                    // slot; the descriptor is a duplicate, so closing it
                    // here leaves the thread's own intact.
                    let _ = rustix::net::shutdown(&fd, Shutdown::Both);
                    continue;
                }
                wait = EVICT_AFTER
                    .saturating_sub(age)
                    .max(Duration::from_millis(1));
            }
        }
        st = shared
            .room_cv
            .wait_timeout(st, wait)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Sleeps for `d` unless the listener closes first (false then).
fn pause(shared: &Shared, d: Duration) -> bool {
    let st = shared.lock();
    if st.closed {
        return false;
    }
    let st = shared
        .room_cv
        .wait_timeout(st, d)
        .unwrap_or_else(|p| p.into_inner())
        .0;
    !st.closed
}

/// Starts the handshake of a fresh connection on its own thread (or drops
/// the connection when no thread can be had).
fn start_handshake(shared: &Arc<Shared>, fd: OwnedFd) -> Option<JoinHandle<()>> {
    let dup = fd.try_clone().ok()?;
    let started = Instant::now();
    let deadline = started + shared.config.handshake_timeout;
    let id = {
        let mut st = shared.lock();
        if st.closed {
            return None;
        }
        let id = st.next_id;
        st.next_id += 1;
        st.threads += 1;
        st.running.push_back((id, started, dup));
        id
    };
    let s = shared.clone();
    let conn = Connection::from_fd(fd);
    let spawned = std::thread::Builder::new()
        .name("mp-ipc-handshake".into())
        .stack_size(HANDSHAKE_STACK)
        .spawn(move || handshake(&s, id, conn, deadline));
    match spawned {
        Ok(t) => Some(t),
        Err(_) => {
            // Out of threads: this peer is refused (the connection was
            // moved into the failed closure and is closed with it).
            finish(shared, id, None);
            None
        }
    }
}

/// One handshake, server side (challenge, then answer the peer's), by
/// its deadline.
fn handshake(shared: &Shared, id: u64, mut conn: Connection, deadline: Instant) {
    let key = &shared.key;
    let result = auth::deliver_challenge(&mut conn, key, deadline)
        .and_then(|()| auth::answer_challenge(&mut conn, key, deadline));
    if let Err(_e) = &result {
        mp_process::mp_event!(
            warn,
            pid = rustix::net::sockopt::socket_peercred(&conn)
                .ok()
                .map(|c| c.pid.as_raw_nonzero().get()),
            error = %_e,
            "listener dropped a peer: its handshake failed"
        );
    }
    finish(shared, id, result.is_ok().then_some(conn));
}

/// A handshake thread's end: its slot is free; an authenticated connection
/// joins the ready queue (unless the listener closed).
fn finish(shared: &Shared, id: u64, conn: Option<Connection>) {
    let mut st = shared.lock();
    st.running.retain(|(i, _, _)| *i != id);
    st.threads -= 1;
    let dropped = match conn {
        Some(c) if !st.closed => {
            st.ready.push_back(c);
            shared.ready_cv.notify_one();
            None
        }
        other => other,
    };
    shared.room_cv.notify_one();
    drop(st);
    drop(dropped);
}
