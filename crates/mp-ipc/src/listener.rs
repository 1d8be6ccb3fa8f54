//! `Listener` and `Client`: connections by address (a Unix socket path, a
//! Linux abstract name, or TCP), with CPython's framing and authentication.

use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::time::{Duration, Instant};

use crate::auth;
use crate::connection::Connection;
use crate::error::Error;
use crate::sock;

/// How long `accept` and `connect` without a timeout give the peer to
/// finish the authentication handshake, so that a silent peer cannot block
/// a listener for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a [`Listener`] listens and a [`Client`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket at a path (Python's string address).
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (Python's `"\0name"`), without the
    /// leading NUL.
    Abstract(Vec<u8>),
    /// A TCP address (Python's `(host, port)` tuple).
    Tcp(SocketAddr),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Abstract(n) => write!(f, "\\0{}", String::from_utf8_lossy(n)),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(p)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Address {
        Address::Unix(p.to_path_buf())
    }
}

impl From<&str> for Address {
    /// A path, or an abstract name when it starts with a NUL (as in Python).
    fn from(s: &str) -> Address {
        match s.strip_prefix('\0') {
            Some(name) => Address::Abstract(name.as_bytes().to_vec()),
            None => Address::Unix(PathBuf::from(s)),
        }
    }
}

mod acceptor;

use acceptor::{Acceptor, Socket};

/// The default bound on handshakes running at once, per listener.
pub const DEFAULT_MAX_HANDSHAKES: usize = 64;

/// How a listener with a key treats peers that have not authenticated yet:
/// how long one may take for the whole handshake, and how many handshakes
/// run at once (each on a thread of its own).
///
/// ```
/// use std::time::Duration;
/// use mp_ipc::{Listener, ListenerConfig};
///
/// let config = ListenerConfig::new()
///     .handshake_timeout(Duration::from_secs(2))
///     .max_handshakes(8);
/// let path = std::env::temp_dir().join(format!("mp-doc-{}", std::process::id()));
/// let listener = Listener::bind_with(path.as_path(), Some(b"key"), config)?;
/// # drop(listener);
/// # Ok::<(), mp_ipc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    handshake_timeout: Duration,
    max_handshakes: usize,
}

impl Default for ListenerConfig {
    fn default() -> ListenerConfig {
        ListenerConfig {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
        }
    }
}

impl ListenerConfig {
    /// The defaults: [`HANDSHAKE_TIMEOUT`] and [`DEFAULT_MAX_HANDSHAKES`].
    pub fn new() -> ListenerConfig {
        ListenerConfig::default()
    }

    /// How long a peer has, from the moment it is taken from the kernel,
    /// for the whole handshake: every read and write of it. A peer that
    /// has not finished by then is disconnected.
    pub fn handshake_timeout(mut self, timeout: Duration) -> ListenerConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// How many handshakes run at once (at least 1), hence how many
    /// handshake threads the listener may have; also how many authenticated
    /// connections wait for `accept` before the listener stops taking new
    /// peers from the kernel. When all are busy and another peer waits, the
    /// oldest handshake is cut off once it has run for 100 ms, so that
    /// stalling peers cannot hold every slot; until then the new peer waits
    /// in the kernel's backlog.
    pub fn max_handshakes(mut self, n: usize) -> ListenerConfig {
        self.max_handshakes = n.max(1);
        self
    }
}

/// How a listener hands out connections.
enum Inner {
    /// Without a key: `accept` takes the next connection from the kernel
    /// on the caller's thread (there is no handshake to wait for).
    Direct(Socket),
    /// With a key: a background acceptor runs the handshakes.
    Keyed(Acceptor),
}

/// A server socket that accepts [`Connection`]s, Python's
/// `multiprocessing.connection.Listener`.
///
/// With an `authkey`, every accepted connection first runs CPython's HMAC
/// challenge handshake in both directions; a peer with another key makes
/// `accept` return [`Error::Authentication`] (and the peer sees the same),
/// and the listener goes on serving others. Python's
/// `multiprocessing.connection.Client(address, authkey=...)` can connect to
/// it and exchange `send_bytes`/`recv_bytes` messages.
///
/// ```
/// use mp_ipc::{Client, Listener};
///
/// let listener = Listener::new(Some(b"secret"))?;
/// let address = listener.address().clone();
/// let t = std::thread::spawn(move || -> Result<Vec<u8>, mp_ipc::Error> {
///     let mut c = Client::new(address).authkey(b"secret").connect()?;
///     c.send_bytes(b"hi")?;
///     c.recv_bytes()
/// });
/// let mut conn = listener.accept()?;
/// assert_eq!(conn.recv_bytes()?, b"hi");
/// conn.send_bytes(b"hello")?;
/// assert_eq!(t.join().unwrap()?, b"hello");
/// # Ok::<(), mp_ipc::Error>(())
/// ```
pub struct Listener {
    inner: Option<Inner>,
    address: Address,
    authkey: bool,
}

impl Listener {
    /// Listens on a fresh Unix socket path in the temporary directory, as
    /// Python's `Listener()` does. The path is removed when the listener is
    /// closed or dropped.
    pub fn new(authkey: Option<&[u8]>) -> Result<Listener, Error> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let mut r = [0u8; 6];
        rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty())?;
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!(
            "mp-listener-{}-{}-{hex}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        Listener::bind(Address::Unix(std::env::temp_dir().join(name)), authkey)
    }

    /// Listens on `address`; an address in use is an [`Error::Io`]
    /// (`AddrInUse`). TCP port 0 picks a free port: see
    /// [`address`](Listener::address).
    pub fn bind(address: impl Into<Address>, authkey: Option<&[u8]>) -> Result<Listener, Error> {
        Listener::bind_with(address, authkey, ListenerConfig::default())
    }

    /// [`bind`](Listener::bind) with the handshake's limits of `config`
    /// (they matter only with a key).
    pub fn bind_with(
        address: impl Into<Address>,
        authkey: Option<&[u8]>,
        config: ListenerConfig,
    ) -> Result<Listener, Error> {
        let address = address.into();
        let (socket, address) = match &address {
            Address::Unix(p) => (Socket::Unix(UnixListener::bind(p)?), address),
            Address::Abstract(n) => {
                let a = std::os::unix::net::SocketAddr::from_abstract_name(n)?;
                (Socket::Unix(UnixListener::bind_addr(&a)?), address)
            }
            Address::Tcp(a) => {
                let l = TcpListener::bind(a)?;
                let bound = l.local_addr()?;
                (Socket::Tcp(l), Address::Tcp(bound))
            }
        };
        // Non-blocking, so that an `accept` after `poll` never blocks when
        // the peer went away in between. The listener is this process's own.
        let nonblocking = match &socket {
            Socket::Unix(l) => l.set_nonblocking(true),
            Socket::Tcp(l) => l.set_nonblocking(true),
        };
        let started = nonblocking.map_err(Error::from).and_then(|()| {
            Ok(match authkey {
                None => Inner::Direct(socket),
                Some(k) => Inner::Keyed(Acceptor::start(socket, k.to_vec(), config)?),
            })
        });
        let inner = match started {
            Ok(i) => i,
            Err(e) => {
                if let Address::Unix(p) = &address {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        };
        Ok(Listener {
            inner: Some(inner),
            address,
            authkey: authkey.is_some(),
        })
    }

    /// The address peers connect to (with the real port for TCP port 0).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The next connection, waiting as long as it takes. With a key, the
    /// next *authenticated* connection: handshakes run in the background,
    /// several at once, each bounded by the handshake timeout (see
    /// [`ListenerConfig`]), so a peer that stalls never delays this call
    /// for others; a peer that fails or does not finish its handshake is
    /// disconnected and never returned (CPython's `accept` raises
    /// `AuthenticationError` instead). After [`close`](Listener::close):
    /// [`Error::Closed`].
    pub fn accept(&self) -> Result<Connection, Error> {
        self.accept_deadline(None)
    }

    /// [`accept`](Listener::accept) waiting at most `timeout`
    /// ([`Error::Timeout`] then).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection, Error> {
        self.accept_deadline(Some(sock::deadline(timeout).unwrap_or_else(|| {
            Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
        })))
    }

    fn accept_deadline(&self, deadline: Option<Instant>) -> Result<Connection, Error> {
        let socket = match self.inner.as_ref().ok_or(Error::Closed)? {
            Inner::Keyed(a) => return a.accept(deadline),
            Inner::Direct(s) => s,
        };
        loop {
            match socket.accept() {
                Ok(fd) => return Ok(Connection::from_fd(fd)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !sock::wait_readable(socket.fd(), deadline)? {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Stops listening and removes a Unix socket path; `accept` then gives
    /// [`Error::Closed`]. With a key, also stops the listener's threads and
    /// closes every connection mid-handshake or not yet accepted; returns
    /// once they are gone. Closing twice is fine.
    pub fn close(&mut self) {
        if let Some(inner) = self.inner.take() {
            // The acceptor's drop joins its threads and closes the socket.
            drop(inner);
            if let Address::Unix(p) = &self.address {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("authkey", &self.authkey.then_some("<set>"))
            .field("closed", &self.inner.is_none())
            .finish()
    }
}

/// Connects to a [`Listener`] (or to a Python
/// `multiprocessing.connection.Listener`), Python's
/// `multiprocessing.connection.Client`.
///
/// A builder: `Client::new(address).authkey(key).timeout(t).connect()`.
/// Nothing listening at the address is an [`Error::Io`] (connection refused
/// or not found); a key the listener rejects is [`Error::Authentication`].
#[derive(Clone)]
pub struct Client {
    address: Address,
    authkey: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Client {
    /// A client for `address`, without authentication.
    pub fn new(address: impl Into<Address>) -> Client {
        Client {
            address: address.into(),
            authkey: None,
            timeout: None,
        }
    }

    /// Authenticates with `key` (the listener must have the same).
    pub fn authkey(mut self, key: &[u8]) -> Client {
        self.authkey = Some(key.to_vec());
        self
    }

    /// Bounds connecting and the whole handshake, every read and write of
    /// it, together: `connect` returns within about `timeout` whatever the
    /// server does (a server that stalls gives [`Error::Timeout`]; a Unix
    /// listener whose backlog stays full too). Default: a connect waits as
    /// the system does, the handshake [`HANDSHAKE_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// Connects and authenticates.
    pub fn connect(&self) -> Result<Connection, Error> {
        let start = Instant::now();
        let deadline = self.timeout.map(|t| start + t);
        let fd: OwnedFd = match (&self.address, deadline) {
            (Address::Unix(p), Some(d)) => unix_connect(&SocketAddrUnix::new(p.as_path())?, d)?,
            (Address::Abstract(n), Some(d)) => {
                unix_connect(&SocketAddrUnix::new_abstract_name(n)?, d)?
            }
            (Address::Unix(p), None) => UnixStream::connect(p)?.into(),
            (Address::Abstract(n), None) => {
                let a = std::os::unix::net::SocketAddr::from_abstract_name(n)?;
                UnixStream::connect_addr(&a)?.into()
            }
            (Address::Tcp(a), _) => {
                let s = match self.timeout {
                    Some(t) => TcpStream::connect_timeout(a, t.max(Duration::from_millis(1)))?,
                    None => TcpStream::connect(a)?,
                };
                let _ = s.set_nodelay(true);
                s.into()
            }
        };
        let mut conn = Connection::from_fd(fd);
        if let Some(key) = &self.authkey {
            let hs = start + self.timeout.unwrap_or(HANDSHAKE_TIMEOUT);
            auth::answer_challenge(&mut conn, key, hs)?;
            auth::deliver_challenge(&mut conn, key, hs)?;
        }
        Ok(conn)
    }
}

/// Connects a Unix stream socket by `deadline`. A blocking `connect` to a
/// listener whose backlog is full waits as long as it stays full; a
/// non-blocking one says `EAGAIN` instead, and is tried again after a
/// pause (growing to 10 ms) until the deadline.
fn unix_connect(addr: &SocketAddrUnix, deadline: Instant) -> Result<OwnedFd, Error> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let mut pause = Duration::from_micros(100);
    loop {
        match rustix::net::connect(&fd, addr) {
            Ok(()) => break,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout);
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Connections are blocking (see `sock`); this descriptor is new and
    // not shared with anyone yet.
    rustix::io::ioctl_fionbio(&fd, false)?;
    Ok(fd)
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("authkey", &self.authkey.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}
