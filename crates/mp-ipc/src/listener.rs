//! `Listener` and `Client`: connections by address (a Unix socket path, a
//! Linux abstract name, or TCP), with CPython's framing and authentication.

use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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

enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
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
    socket: Option<Socket>,
    address: Address,
    authkey: Option<Vec<u8>>,
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
        match &socket {
            Socket::Unix(l) => l.set_nonblocking(true)?,
            Socket::Tcp(l) => l.set_nonblocking(true)?,
        }
        Ok(Listener {
            socket: Some(socket),
            address,
            authkey: authkey.map(<[u8]>::to_vec),
        })
    }

    /// The address peers connect to (with the real port for TCP port 0).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Accepts the next connection and authenticates it, waiting as long as
    /// it takes for a peer (the handshake itself is bounded by
    /// [`HANDSHAKE_TIMEOUT`]). After [`close`](Listener::close):
    /// [`Error::Closed`].
    pub fn accept(&self) -> Result<Connection, Error> {
        self.accept_deadline(None)
    }

    /// [`accept`](Listener::accept) waiting at most `timeout` for a peer and
    /// its handshake ([`Error::Timeout`] then).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection, Error> {
        self.accept_deadline(Some(sock::deadline(timeout).unwrap_or_else(|| {
            Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
        })))
    }

    fn accept_deadline(&self, deadline: Option<Instant>) -> Result<Connection, Error> {
        let socket = self.socket.as_ref().ok_or(Error::Closed)?;
        let fd: OwnedFd = loop {
            let got = match socket {
                Socket::Unix(l) => l.accept().map(|(s, _)| OwnedFd::from(s)),
                Socket::Tcp(l) => l.accept().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    OwnedFd::from(s)
                }),
            };
            match got {
                Ok(fd) => break fd,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let lfd = match socket {
                        Socket::Unix(l) => l.as_fd(),
                        Socket::Tcp(l) => l.as_fd(),
                    };
                    if !sock::wait_readable(lfd, deadline)? {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        let mut conn = Connection::from_fd(fd);
        if let Some(key) = &self.authkey {
            let hs = deadline.unwrap_or_else(|| Instant::now() + HANDSHAKE_TIMEOUT);
            auth::deliver_challenge(&mut conn, key, hs)?;
            auth::answer_challenge(&mut conn, key, hs)?;
        }
        Ok(conn)
    }

    /// Stops listening and removes a Unix socket path; `accept` then gives
    /// [`Error::Closed`]. Closing twice is fine.
    pub fn close(&mut self) {
        if self.socket.take().is_some() {
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
            .field("authkey", &self.authkey.as_ref().map(|_| "<set>"))
            .field("closed", &self.socket.is_none())
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

    /// Bounds connecting and the handshake (default: a TCP connect waits as
    /// the system does, the handshake [`HANDSHAKE_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// Connects and authenticates.
    pub fn connect(&self) -> Result<Connection, Error> {
        let start = Instant::now();
        let fd: OwnedFd = match &self.address {
            Address::Unix(p) => UnixStream::connect(p)?.into(),
            Address::Abstract(n) => {
                let a = std::os::unix::net::SocketAddr::from_abstract_name(n)?;
                UnixStream::connect_addr(&a)?.into()
            }
            Address::Tcp(a) => {
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

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("authkey", &self.authkey.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}
