//! The client side: where a server is, this process's view of it, and
//! each thread's connection to it.
//!
//! Each thread of each process has its own connection to a server, as in
//! CPython: a thread blocked in `acquire` on the server must not stand in
//! the way of another thread's `release`. A connection inherited through
//! `fork` belongs to the parent and is never used by the child.
//!
//! A process sees each server through one [`Remote`], shared by all its
//! proxies and clients of that server. The `Remote` counts the proxies of
//! each object and holds the process's references on the server through
//! one more connection, its session: the server frees an object once no
//! connection refers to it, and a process that dies closes its session, so
//! its references go with it. When the last proxy and client of a server
//! are dropped, or the manager shuts down, the `Remote` closes every
//! connection it made, in every thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use mp_ipc::{Address, Client, Connection};
use mp_shm::SharedMemory;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fast::{Fast, Side};
use crate::protocol::{Request, Response};

/// How long a caller polls for a reply before it sleeps in the kernel.
///
/// A reply usually comes within a few microseconds; sleeping and being
/// woken costs about as much again on each side. On the 2-core machine of
/// the benchmarks, polling for 30 us took `manager_dict_ops` from about
/// 140k to 230k operations/s, and 100 us took the article's locked counter
/// (`value_lock_counter_manager`) from about 45k to 59k increments/s: a
/// waiter for a contended lock gets its reply while still polling.
pub(crate) const SPIN: Duration = Duration::from_micros(100);

/// How long a caller polls for the reply to a request that may wait on the
/// server, and a server for the next request of a client that was asleep:
/// long enough for an answer that comes at once, short enough not to take
/// a CPU from the process the wait is for.
pub(crate) const SHORT_SPIN: Duration = Duration::from_micros(10);

/// Polls `conn` for up to [`SPIN`] without sleeping.
pub(crate) fn spin_for_reply(conn: &Connection) {
    let start = std::time::Instant::now();
    while start.elapsed() < SPIN {
        if conn.poll(Some(Duration::ZERO)).unwrap_or(true) {
            return;
        }
        std::hint::spin_loop();
    }
}

/// How long connecting, the handshake and the server's greeting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a one-way message to the session may take to write: a server
/// that reads nothing for that long loses the session (and with it the
/// process's references, which it would release anyway if it recovered).
const SESSION_WRITE: Duration = Duration::from_secs(1);

/// How long a call that does not wait by design may take before the
/// server is declared unresponsive.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a server listens and the key it wants. Serializable, so that
/// proxies can travel to other processes of the program.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Endpoint {
    address: AddressRepr,
    authkey: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum AddressRepr {
    Unix(PathBuf),
    Abstract(Vec<u8>),
    Tcp(SocketAddr),
}

impl Endpoint {
    pub(crate) fn new(address: &Address, authkey: &[u8]) -> Endpoint {
        let address = match address {
            Address::Unix(p) => AddressRepr::Unix(p.clone()),
            Address::Abstract(n) => AddressRepr::Abstract(n.clone()),
            Address::Tcp(a) => AddressRepr::Tcp(*a),
        };
        Endpoint {
            address,
            authkey: authkey.to_vec(),
        }
    }

    pub(crate) fn address(&self) -> Address {
        match &self.address {
            AddressRepr::Unix(p) => Address::Unix(p.clone()),
            AddressRepr::Abstract(n) => Address::Abstract(n.clone()),
            AddressRepr::Tcp(a) => Address::Tcp(*a),
        }
    }

    pub(crate) fn authkey_bytes(&self) -> Vec<u8> {
        self.authkey.clone()
    }

    /// A new authenticated socket the server agreed to serve (its
    /// greeting); a server at its cap says so with
    /// [`Error::TooManyConnections`].
    fn connect_socket(&self) -> Result<Connection, Error> {
        let mut conn = Client::new(self.address())
            .authkey(&self.authkey)
            .timeout(CONNECT_TIMEOUT)
            .connect()?;
        match conn.recv_timeout::<Response>(CONNECT_TIMEOUT)? {
            Response::Done => Ok(conn),
            Response::Failed(f) => Err(Error::from_failure(f)),
            r => Err(Error::Protocol(format!("unexpected greeting {r:?}"))),
        }
    }

    /// A new connection; on this machine (a Unix or abstract address), on
    /// the fast path (`fast.rs`) when the server's block can be attached.
    fn connect(&self) -> Result<Link, Error> {
        let mut conn = self.connect_socket()?;
        if matches!(self.address, AddressRepr::Tcp(_)) {
            return Ok(Link::Socket(conn));
        }
        conn.send(&Request::Fast)?;
        let name = match conn.recv_timeout::<Response>(CALL_TIMEOUT)? {
            Response::FastOffer(name) => name,
            // The server could not make a block: stay on the socket.
            Response::Failed(_) => return Ok(Link::Socket(conn)),
            r => return Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        };
        match SharedMemory::attach(&name) {
            Ok(block) => Ok(Link::Fast(Fast::new(block, conn, Side::Client, SPIN)?)),
            // Another user's server, say: the socket still works, but this
            // one now expects the rings, so start over without asking.
            Err(_) => Ok(Link::Socket(self.connect_socket()?)),
        }
    }
}

fn breaks_stream(e: &Error) -> bool {
    matches!(
        e,
        Error::Connection(_) | Error::Timeout | Error::Io(_) | Error::Protocol(_)
    )
}

/// How this thread's messages to a server travel.
enum Link {
    Socket(Connection),
    Fast(Fast),
}

impl Link {
    fn socket(&self) -> &Connection {
        match self {
            Link::Socket(c) => c,
            Link::Fast(f) => f.socket(),
        }
    }
}

/// Whether a connection that waits for nothing is still open: the server
/// sends nothing unasked, so a readable socket is its end of stream.
fn still_open(conn: &Connection) -> bool {
    !conn.poll(Some(Duration::ZERO)).unwrap_or(true)
}

struct Conn {
    link: Link,
    pid: u32,
    /// The [`Remote::epoch`] it was made in.
    epoch: u64,
}

/// One thread's connection to one server, reachable from the [`Remote`]
/// so that it can be closed from any thread.
type Slot = Mutex<Option<Conn>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A thread's connections, by [`Remote::key`], with the `Remote` they
/// belong to.
type Slots = HashMap<u64, (Weak<Remote>, Arc<Slot>)>;

thread_local! {
    static CONNS: RefCell<Slots> = RefCell::new(HashMap::new());
}

/// The process's references on one server.
#[derive(Default)]
struct Session {
    /// Proxies alive in this process, per object id.
    counts: HashMap<u64, usize>,
    /// The connection that holds the references on the server.
    conn: Option<Connection>,
}

/// A server as this process sees it: shared by every proxy and client of
/// that server in the process (see the module's docs).
pub(crate) struct Remote {
    ep: Endpoint,
    /// A number no other `Remote` of this process has, for the thread-local
    /// maps.
    key: u64,
    /// The process this `Remote` belongs to (a forked child makes its own).
    pid: u32,
    /// Bumped by [`close`](Remote::close): connections of an earlier epoch
    /// are closed at their next use.
    epoch: AtomicU64,
    session: Mutex<Session>,
    slots: Mutex<Vec<Weak<Slot>>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.ep.address())
    }
}

/// Every live `Remote` of this process, by endpoint, with the pid they
/// belong to.
static REMOTES: Mutex<Option<(u32, Remotes)>> = Mutex::new(None);

type Remotes = HashMap<Endpoint, Weak<Remote>>;
static KEYS: AtomicU64 = AtomicU64::new(0);

impl Remote {
    /// This process's `Remote` of `ep`, made if there is none.
    pub(crate) fn of(ep: &Endpoint) -> Arc<Remote> {
        let pid = std::process::id();
        let mut all = lock(&REMOTES);
        let map = match &mut *all {
            Some((p, map)) if *p == pid => map,
            other => {
                // A forked child: the parent's map is the parent's, and so
                // are the connections this thread inherited (our copies
                // are closed, so that the parent's end is the parent's
                // alone: the server sees it close when the parent goes).
                if other.is_some() {
                    let _ = CONNS.try_with(|m| m.borrow_mut().clear());
                }
                *other = Some((pid, HashMap::new()));
                &mut other.as_mut().expect("just set").1
            }
        };
        if let Some(r) = map.get(ep).and_then(Weak::upgrade) {
            return r;
        }
        let r = Arc::new(Remote {
            ep: ep.clone(),
            key: KEYS.fetch_add(1, Ordering::Relaxed),
            pid,
            epoch: AtomicU64::new(0),
            session: Mutex::new(Session::default()),
            slots: Mutex::new(Vec::new()),
        });
        map.insert(ep.clone(), Arc::downgrade(&r));
        r
    }

    /// `self`, or in a forked child, the child's own `Remote` of the same
    /// server.
    pub(crate) fn current(self: &Arc<Self>) -> Arc<Remote> {
        if self.pid == std::process::id() {
            self.clone()
        } else {
            self.disown();
            Remote::of(&self.ep)
        }
    }

    /// In a forked child, closes our copies of the parent's connections
    /// of this `Remote` (the parent's own are untouched). `try_lock`: a
    /// lock another thread of the parent held at the fork stays held.
    fn disown(&self) {
        if let Ok(mut s) = self.session.try_lock() {
            s.conn = None;
            s.counts.clear();
        }
        if let Ok(slots) = self.slots.try_lock() {
            for slot in slots.iter().filter_map(Weak::upgrade) {
                if let Ok(mut c) = slot.try_lock() {
                    *c = None;
                }
            }
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// Sends `req` on this thread's connection and returns the reply.
    /// `wait` bounds how long the reply may take (`None`: as long as the
    /// server lives).
    pub(crate) fn call(
        self: &Arc<Self>,
        req: &Request,
        wait: Option<Duration>,
    ) -> Result<Response, Error> {
        let pid = std::process::id();
        if self.pid != pid {
            // A proxy inherited through fork: this process's own `Remote`
            // (and its own connections, never the parent's).
            return self.current().call(req, wait);
        }
        // Before `connect`'s ping, a cached connection is checked: the
        // server may have stopped, or another taken its address.
        let check = matches!(req, Request::Ping);
        self.with_conn(pid, check, |c| match &mut c.link {
            Link::Socket(conn) => {
                conn.send(req)?;
                spin_for_reply(conn);
                Ok(match wait {
                    None => conn.recv::<Response>()?,
                    Some(w) => conn.recv_timeout::<Response>(w)?,
                })
            }
            Link::Fast(fast) => {
                fast.send(req)?;
                let deadline = wait.map(|w| Instant::now() + w);
                // A reply that may wait on the server (a lock held by
                // another process, an empty queue) is not worth a long poll.
                let spin = if req.may_wait() { SHORT_SPIN } else { SPIN };
                fast.recv(u64::from(u32::MAX), deadline, spin)
            }
        })
    }

    /// This thread's slot for this server.
    fn slot(self: &Arc<Self>) -> Arc<Slot> {
        CONNS.with(|m| {
            let mut m = m.borrow_mut();
            if let Some((_, s)) = m.get(&self.key) {
                return s.clone();
            }
            // Slots of servers this process no longer knows are closed.
            m.retain(|_, (r, _)| r.strong_count() > 0);
            let s = Arc::new(Slot::new(None));
            lock(&self.slots).push(Arc::downgrade(&s));
            m.insert(self.key, (Arc::downgrade(self), s.clone()));
            s
        })
    }

    fn with_conn<R>(
        self: &Arc<Self>,
        pid: u32,
        check: bool,
        f: impl FnOnce(&mut Conn) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let slot = self.slot();
        let mut cached = lock(&slot);
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut conn = match cached.take() {
            Some(c)
                if c.pid == pid && c.epoch == epoch && (!check || still_open(c.link.socket())) =>
            {
                c
            }
            // Inherited from the parent through fork (our copy of the
            // descriptor is closed, the parent's connection is untouched),
            // closed by `close`, or found dead.
            _ => Conn {
                link: self.ep.connect()?,
                pid,
                epoch,
            },
        };
        let out = f(&mut conn);
        // A connection that failed is not reused: its stream may be cut
        // in the middle of a message.
        let whole = out.as_ref().is_ok() || matches!(out, Err(ref e) if !breaks_stream(e));
        if whole && self.epoch.load(Ordering::Acquire) == epoch {
            *cached = Some(conn);
        }
        out
    }

    /// Closes every connection this process has to the server, in every
    /// thread (one busy in a call now is closed when the call returns),
    /// and the session. Later calls connect again.
    pub(crate) fn close(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.close_slots();
        let mut s = lock(&self.session);
        s.conn = None;
        s.counts.clear();
    }

    fn close_slots(&self) {
        let slots = std::mem::take(&mut *lock(&self.slots));
        let mut busy = Vec::new();
        for w in slots {
            let Some(slot) = w.upgrade() else { continue };
            match slot.try_lock() {
                Ok(mut c) => *c = None,
                Err(_) => busy.push(w),
            }
        }
        lock(&self.slots).extend(busy);
    }

    /// The session, connected (again) if it was not; a session found
    /// closed lost its references on the server with it.
    fn session(&self) -> Result<MutexGuard<'_, Session>, Error> {
        let mut s = lock(&self.session);
        if s.conn.as_ref().is_some_and(|c| !still_open(c)) {
            s.conn = None;
            s.counts.clear();
        }
        if s.conn.is_none() {
            s.counts.clear();
            s.conn = Some(self.ep.connect_socket()?);
        }
        Ok(s)
    }

    /// Sends `req` (a `Create` or `Lookup`) on the session, so that the
    /// session holds the reference the reply's object comes with, and
    /// counts one proxy of that object.
    pub(crate) fn take_ref(&self, req: &Request) -> Result<Response, Error> {
        if self.pid != std::process::id() {
            return Err(Error::Protocol(
                "a manager client of another process".into(),
            ));
        }
        match self.take_ref_once(req) {
            // A session kept from a server that stopped since (an earlier
            // server at the address): once more, on a new session.
            Ok(Response::Failed(crate::protocol::Failure::ShuttingDown))
            | Err(Error::Connection(_)) => self.take_ref_once(req),
            other => other,
        }
    }

    fn take_ref_once(&self, req: &Request) -> Result<Response, Error> {
        let mut s = self.session()?;
        let conn = s.conn.as_mut().expect("connected");
        let sent = conn
            .send(req)
            .and_then(|()| conn.recv_timeout::<Response>(CALL_TIMEOUT));
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                s.conn = None;
                s.counts.clear();
                return Err(e.into());
            }
        };
        match resp {
            Response::Created(id) | Response::Found(id, _) => {
                *s.counts.entry(id).or_insert(0) += 1;
            }
            Response::Failed(crate::protocol::Failure::ShuttingDown) => {
                s.conn = None;
                s.counts.clear();
            }
            _ => {}
        }
        Ok(resp)
    }

    /// One more proxy of `id` in this process: the session takes a
    /// reference when it is the first. Without a session (the server is
    /// unreachable) the proxy is not counted and its calls fail anyway.
    pub(crate) fn incref(&self, id: u64) {
        if self.pid != std::process::id() {
            return;
        }
        {
            // A clone of a proxy this process counts already: no message,
            // no look at the session.
            let mut s = lock(&self.session);
            if let Some(n) = s.counts.get_mut(&id) {
                *n += 1;
                return;
            }
        }
        let Ok(mut s) = self.session() else { return };
        let n = s.counts.entry(id).or_insert(0);
        *n += 1;
        if *n == 1 {
            let sent = s
                .conn
                .as_mut()
                .map(|c| c.send_timeout(&Request::Incref(id), SESSION_WRITE));
            if !matches!(sent, Some(Ok(()))) {
                s.conn = None;
                s.counts.clear();
            }
        }
    }

    /// One proxy of `id` fewer: the session drops its reference with the
    /// last.
    pub(crate) fn decref(&self, id: u64) {
        if self.pid != std::process::id() {
            self.disown();
            return;
        }
        let mut s = lock(&self.session);
        let Some(n) = s.counts.get_mut(&id) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        s.counts.remove(&id);
        let sent = s
            .conn
            .as_mut()
            .map(|c| c.send_timeout(&Request::Decref(id), SESSION_WRITE));
        if matches!(sent, Some(Err(_))) {
            s.conn = None;
            s.counts.clear();
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // A forked child's copy: its fields close our copies of the
            // descriptors; the locks are not ours to wait for.
            return;
        }
        self.close_slots();
        if let Ok(mut all) = REMOTES.lock() {
            if let Some((_, map)) = &mut *all {
                if map.get(&self.ep).is_some_and(|w| w.strong_count() == 0) {
                    map.remove(&self.ep);
                }
            }
        }
    }
}

/// The default bound for calls that do not wait by design.
pub(crate) fn call_timeout() -> Duration {
    CALL_TIMEOUT
}
