//! The server: objects by id and by name, one thread per connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mp_ipc::{Address, Connection, Listener};
use mp_shm::SharedMemory;
use serde::Serialize;

use crate::error::Error;
use crate::fast::{self, Fast, Side};
use crate::objects::{HeldLocks, Ids, Object};
use crate::protocol::{Failure, Kind, Request, Response};

/// The largest request a server accepts: larger frames close the
/// connection that sent them.
pub const DEFAULT_MAX_REQUEST: u64 = 64 << 20;

/// How often idle acceptor threads look at the shutdown flag; also the
/// longest time one silent peer can hold an acceptor in its handshake.
const ACCEPT_SLICE: Duration = Duration::from_secs(1);

/// How long a connection's thread waits for its client's next request
/// before it wakes the waiters of a lock the client released (see
/// `LockObj`). A client taking the lock straight back asks within a few
/// microseconds; a shorter wait (20 us) let every hiccup of the running
/// client hand the lock over, each hand-over costing wake-ups on both
/// sides.
const SETTLE_AFTER: Duration = Duration::from_micros(200);

/// Acceptor threads: a peer that stalls its handshake holds only one.
const ACCEPTORS: usize = 4;

#[derive(Debug, Default)]
struct State {
    objects: RwLock<HashMap<u64, (Kind, Arc<Object>)>>,
    names: RwLock<HashMap<String, u64>>,
    ids: Ids,
    conns: Ids,
    stop: AtomicBool,
}

impl State {
    fn create(&self, kind: Kind) -> Result<u64, Failure> {
        let obj = Object::new(&kind, |id| {
            self.objects.read().ok()?.get(&id).map(|(_, o)| o.clone())
        })?;
        let id = self.ids.next();
        self.objects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (kind, Arc::new(obj)));
        Ok(id)
    }

    fn get(&self, id: u64) -> Result<Arc<Object>, Failure> {
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        objects
            .get(&id)
            .map(|(_, o)| o.clone())
            .ok_or_else(|| Failure::NoSuchObject(format!("#{id}")))
    }

    fn lookup(&self, name: &str) -> Result<(u64, Kind), Failure> {
        let id = *self
            .names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .ok_or_else(|| Failure::NoSuchObject(format!("{name:?}")))?;
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        let (kind, _) = objects
            .get(&id)
            .ok_or_else(|| Failure::NoSuchObject(format!("{name:?}")))?;
        Ok((id, kind.clone()))
    }
}

/// A manager server: holds shared objects and serves proxies over
/// authenticated connections. Python's `BaseManager` server side.
///
/// [`Manager::start`](crate::Manager::start) runs one in a child process.
/// To serve objects to other programs, bind one yourself, register objects
/// by name, and serve:
///
/// ```
/// use mp_manager::{Server, connect};
///
/// let server = Server::bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(), b"key")?;
/// server.register_dict::<String, u32>("scores")?;
/// let address = server.address().clone();
/// let handle = server.serve_in_background()?;
///
/// // Another program (here: the same one) connects with the key.
/// let remote = connect(address, b"key")?;
/// let scores = remote.get_dict::<String, u32>("scores")?;
/// scores.insert("alice".to_owned(), 3)?;
/// assert_eq!(scores.get(&"alice".to_owned())?, Some(3));
/// remote.shutdown_server()?;
/// handle.join()?;
/// # Ok::<(), mp_manager::Error>(())
/// ```
#[derive(Debug)]
pub struct Server {
    listener: Arc<Listener>,
    state: Arc<State>,
}

impl Server {
    /// Listens on `address` (a Unix path, an abstract name or TCP); every
    /// connection must authenticate with `authkey`.
    pub fn bind(address: impl Into<Address>, authkey: &[u8]) -> Result<Server, Error> {
        let listener = Listener::bind(address, Some(authkey))?;
        Ok(Server {
            listener: Arc::new(listener),
            state: Arc::default(),
        })
    }

    /// The address clients connect to (with the port chosen for TCP port 0).
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    fn register(&self, name: &str, kind: Kind) -> Result<(), Error> {
        let id = self.state.create(kind).map_err(Error::Remote)?;
        self.state
            .names
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), id);
        Ok(())
    }

    /// Registers a value under `name`.
    pub fn register_value<T: Serialize>(&self, name: &str, value: T) -> Result<(), Error> {
        self.register(name, Kind::Value(crate::proxy::encode(&value)?))
    }

    /// Registers a queue (0: unbounded) under `name`.
    pub fn register_queue(&self, name: &str, maxsize: usize) -> Result<(), Error> {
        self.register(name, Kind::Queue(maxsize as u64))
    }

    /// Registers a joinable queue under `name`.
    pub fn register_joinable_queue(&self, name: &str, maxsize: usize) -> Result<(), Error> {
        self.register(name, Kind::JoinableQueue(maxsize as u64))
    }

    /// Registers an empty dict under `name`; `K` and `V` document the types
    /// that clients should use.
    pub fn register_dict<K, V>(&self, name: &str) -> Result<(), Error> {
        self.register(name, Kind::Dict)
    }

    /// Registers an empty list under `name`.
    pub fn register_list<T>(&self, name: &str) -> Result<(), Error> {
        self.register(name, Kind::List)
    }

    /// Registers an empty namespace under `name`.
    pub fn register_namespace(&self, name: &str) -> Result<(), Error> {
        self.register(name, Kind::Namespace)
    }

    /// Registers a lock under `name`.
    pub fn register_lock(&self, name: &str) -> Result<(), Error> {
        self.register(name, Kind::Lock)
    }

    /// Registers an event under `name`.
    pub fn register_event(&self, name: &str) -> Result<(), Error> {
        self.register(name, Kind::Event)
    }

    /// Serves until a client asks the server to shut down. Python's
    /// `get_server().serve_forever()`.
    pub fn serve_forever(self) -> Result<(), Error> {
        let acceptors: Vec<_> = (0..ACCEPTORS)
            .map(|i| {
                let listener = self.listener.clone();
                let state = self.state.clone();
                std::thread::Builder::new()
                    .name(format!("mp-manager-accept-{i}"))
                    .spawn(move || accept_loop(&listener, &state))
            })
            .collect::<Result<_, _>>()
            .map_err(Error::Io)?;
        for a in acceptors {
            let _ = a.join();
        }
        Ok(())
    }

    /// Serves on a background thread; the handle's `join` waits until the
    /// server was asked to shut down.
    pub fn serve_in_background(self) -> Result<ServerHandle, Error> {
        let thread = std::thread::Builder::new()
            .name("mp-manager-server".into())
            .spawn(move || self.serve_forever())
            .map_err(Error::Io)?;
        Ok(ServerHandle { thread })
    }
}

/// A server running on a background thread.
#[derive(Debug)]
pub struct ServerHandle {
    thread: std::thread::JoinHandle<Result<(), Error>>,
}

impl ServerHandle {
    /// Waits until the server has stopped.
    pub fn join(self) -> Result<(), Error> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(Error::Protocol("the server thread panicked".into())))
    }
}

fn accept_loop(listener: &Listener, state: &Arc<State>) {
    while !state.stop.load(Ordering::Acquire) {
        match listener.accept_timeout(ACCEPT_SLICE) {
            Ok(conn) => {
                let state = state.clone();
                let spawned = std::thread::Builder::new()
                    .name("mp-manager-conn".into())
                    .spawn(move || serve_connection(conn, &state));
                if spawned.is_err() {
                    // Out of threads: the connection is dropped, the
                    // client sees end-of-stream; the server goes on.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(mp_ipc::Error::Timeout) => {}
            Err(mp_ipc::Error::Closed) => return,
            // A peer that failed authentication or sent garbage: only that
            // connection is lost.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// How a connection's messages travel: the socket, or the fast path once
/// the client asked for it.
enum Link {
    Socket(Connection),
    Fast(Fast),
}

/// What waiting for the next request gave.
enum Next {
    Request(Request),
    /// Nothing came by the deadline.
    Quiet,
    /// The peer is gone or broke the protocol.
    Gone,
}

impl Link {
    /// The next request, waiting until `deadline` on the fast path (the
    /// socket waits as long as it takes).
    fn recv(&mut self, deadline: Option<Instant>) -> Next {
        match self {
            Link::Socket(conn) => {
                crate::client::spin_for_reply(conn);
                conn.recv::<Request>().map_or(Next::Gone, Next::Request)
            }
            Link::Fast(fast) => {
                match fast.recv(DEFAULT_MAX_REQUEST, deadline, crate::client::SPIN) {
                    Ok(req) => Next::Request(req),
                    Err(Error::Timeout) => Next::Quiet,
                    Err(_) => Next::Gone,
                }
            }
        }
    }

    /// False when the peer is gone.
    fn send(&mut self, resp: &Response) -> bool {
        match self {
            Link::Socket(conn) => conn.send(resp).is_ok(),
            Link::Fast(fast) => fast.send(resp).is_ok(),
        }
    }
}

/// Offers the fast path on `conn`: a new named block, its name sent back.
/// The connection then carries only wake-ups.
fn upgrade(mut conn: Connection) -> Option<Link> {
    let block = match SharedMemory::create(fast::BLOCK) {
        Ok(b) => b,
        Err(e) => {
            let refused = Response::Failed(Failure::Misuse(format!("no fast path: {e}")));
            return conn.send(&refused).is_ok().then_some(Link::Socket(conn));
        }
    };
    let name = block.name()?.to_owned();
    conn.send(&Response::FastOffer(name)).ok()?;
    Fast::new(block, conn, Side::Server, crate::client::SPIN)
        .ok()
        .map(Link::Fast)
}

fn serve_connection(mut conn: Connection, state: &State) {
    conn.set_max_message_size(DEFAULT_MAX_REQUEST);
    let me = state.conns.next();
    let mut held = HeldLocks::default();
    let mut link = Some(Link::Socket(conn));
    // A malformed, oversized or truncated frame ends this connection only;
    // nothing else is shared with it.
    // Locks released by an earlier request whose waiters still sleep: the
    // next request settles them (see `LockObj`), or a short silence.
    let mut unsettled = Vec::new();
    while let Some(l) = link.as_mut() {
        let deadline = (!unsettled.is_empty()).then(|| Instant::now() + SETTLE_AFTER);
        let req = match l.recv(deadline) {
            Next::Request(req) => req,
            Next::Gone => break,
            Next::Quiet => {
                HeldLocks::settle(std::mem::take(&mut unsettled));
                match l.recv(None) {
                    Next::Request(req) => req,
                    _ => break,
                }
            }
        };
        let resp = match req {
            Request::Create(kind) => match state.create(kind.clone()) {
                Ok(id) => Response::Id(id, kind),
                Err(f) => Response::Failed(f),
            },
            Request::Lookup(name) => match state.lookup(&name) {
                Ok((id, kind)) => Response::Id(id, kind),
                Err(f) => Response::Failed(f),
            },
            Request::Op(id, op) => match state.get(id) {
                Ok(obj) => obj.apply(id, op, me, &mut held),
                Err(f) => Response::Failed(f),
            },
            Request::Ping => Response::Done,
            Request::Shutdown => {
                state.stop.store(true, Ordering::Release);
                let _ = l.send(&Response::Done);
                break;
            }
            Request::Fast => match link.take() {
                Some(Link::Socket(conn)) => {
                    link = upgrade(conn);
                    continue;
                }
                other => {
                    link = other;
                    Response::Failed(Failure::Misuse("already on the fast path".into()))
                }
            },
        };
        if !link.as_mut().is_some_and(|l| l.send(&resp)) {
            break;
        }
        // The client came back: it took the lock again (nothing to wake)
        // or did something else (wake the waiters now).
        HeldLocks::settle(std::mem::take(&mut unsettled));
        unsettled = held.take_unsettled();
        if matches!(link, Some(Link::Socket(_))) {
            // A socket's next request may be long in coming: no bet.
            HeldLocks::settle(std::mem::take(&mut unsettled));
        }
    }
    // Locks held by a client that disconnected or died are released, so
    // that nobody waits for them forever.
    HeldLocks::settle(unsettled);
    held.release_all(me);
}
