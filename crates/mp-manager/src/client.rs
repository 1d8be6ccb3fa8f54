//! The client side: where a server is, and this thread's connection to it.
//!
//! Each thread of each process has its own connection to a server, as in
//! CPython: a thread blocked in `acquire` on the server must not stand in
//! the way of another thread's `release`. A connection inherited through
//! `fork` belongs to the parent and is never used by the child.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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

    fn connect_socket(&self) -> Result<Connection, Error> {
        Ok(Client::new(self.address())
            .authkey(&self.authkey)
            .timeout(Duration::from_secs(20))
            .connect()?)
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

    /// Sends `req` on this thread's connection and returns the reply.
    /// `wait` bounds how long the reply may take (`None`: as long as the
    /// server lives).
    pub(crate) fn call(
        self: &Arc<Self>,
        req: &Request,
        wait: Option<Duration>,
    ) -> Result<Response, Error> {
        self.with_conn(|c| match &mut c.link {
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

    fn with_conn<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Conn) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let pid = std::process::id();
        let cached = CONNS.with(|m| m.borrow_mut().remove(&**self));
        let mut conn = match cached {
            Some(c) if c.pid == pid => c,
            // Inherited from the parent through fork: its socket is the
            // parent's. Our copy of the descriptor is closed, the parent's
            // connection is untouched.
            _ => Conn {
                link: self.connect()?,
                pid,
            },
        };
        let out = f(&mut conn);
        // A connection that failed is not reused: its stream may be cut
        // in the middle of a message.
        if out.as_ref().is_ok() || matches!(out, Err(ref e) if !breaks_stream(e)) {
            CONNS.with(|m| m.borrow_mut().insert((**self).clone(), conn));
        }
        out
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

struct Conn {
    link: Link,
    pid: u32,
}

thread_local! {
    static CONNS: RefCell<HashMap<Endpoint, Conn>> = RefCell::new(HashMap::new());
}

/// The default bound for calls that do not wait by design.
pub(crate) fn call_timeout() -> Duration {
    CALL_TIMEOUT
}
