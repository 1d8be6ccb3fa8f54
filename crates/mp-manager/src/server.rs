//! The server: objects by id and by name, one thread per connection, with
//! a cap on connections; objects counted by the connections that refer to
//! them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mp_ipc::{Address, Connection, Listener};
use mp_shm::SharedMemory;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fast::{self, Fast, Side};
use crate::objects::{HeldLocks, Ids, Object, OpTag};
use crate::protocol::{Failure, Kind, Request, Response};

/// The largest request a server accepts: larger frames close the
/// connection that sent them.
pub const DEFAULT_MAX_REQUEST: u64 = 64 << 20;

/// The connections a server serves at once unless told otherwise
/// ([`Server::max_connections`]); each has its own thread and one or two
/// descriptors, so this also bounds the server's threads.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How often idle acceptor threads look at the shutdown flag. Handshakes
/// run on mp-ipc's listener threads, so a silent peer holds no acceptor.
const ACCEPT_SLICE: Duration = Duration::from_secs(1);

/// How long a refusal may take to write: the peer just finished its
/// handshake, so its socket has room unless it is hostile.
const REFUSAL_WRITE: Duration = Duration::from_millis(100);

/// How long a connection's thread waits for its client's next request
/// before it wakes the waiters of a lock the client released (see
/// `LockObj`). A client taking the lock straight back asks within a few
/// microseconds; a shorter wait (20 us) let every hiccup of the running
/// client hand the lock over, each hand-over costing wake-ups on both
/// sides.
const SETTLE_AFTER: Duration = Duration::from_micros(200);

/// Acceptor threads: a refusal may wait up to `REFUSAL_WRITE` on a peer
/// that does not read, and such a peer holds only one of them.
const ACCEPTORS: usize = 4;

/// One object the server holds.
#[derive(Debug)]
struct Entry {
    kind: &'static str,
    obj: Arc<Object>,
    /// The connections that hold a reference to it.
    refs: u64,
    /// Registered under a name: lives as long as the server.
    named: bool,
}

#[derive(Debug, Default)]
struct State {
    objects: RwLock<HashMap<u64, Entry>>,
    names: RwLock<HashMap<String, u64>>,
    ids: Ids,
    conns: Ids,
    /// Connections served now.
    live: AtomicUsize,
    stop: AtomicBool,
}

/// The objects one connection holds a reference to.
type Refs = HashSet<u64>;

impl State {
    /// Makes an object; `refs` (a connection's) holds the first reference,
    /// or, without one, a name will (see [`Server::register`]).
    fn create(&self, kind: Kind, refs: Option<&mut Refs>) -> Result<u64, Failure> {
        let name = kind.name();
        let obj = Object::new(kind, |id| {
            self.objects.read().ok()?.get(&id).map(|e| e.obj.clone())
        })?;
        let id = self.ids.next();
        let held = refs.is_some();
        if let Some(r) = refs {
            r.insert(id);
        }
        self.objects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id,
                Entry {
                    kind: name,
                    obj: Arc::new(obj),
                    refs: u64::from(held),
                    named: !held,
                },
            );
        Ok(id)
    }

    fn get(&self, id: u64) -> Result<Arc<Object>, Failure> {
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        objects
            .get(&id)
            .map(|e| e.obj.clone())
            .ok_or_else(|| Failure::NoSuchObject(format!("#{id}")))
    }

    /// `refs` takes a reference to object `id` (once per connection).
    fn incref(&self, id: u64, refs: &mut Refs) -> Result<(), Failure> {
        let mut objects = self.objects.write().unwrap_or_else(|p| p.into_inner());
        let e = objects
            .get_mut(&id)
            .ok_or_else(|| Failure::NoSuchObject(format!("#{id}")))?;
        if refs.insert(id) {
            e.refs += 1;
        }
        Ok(())
    }

    /// `refs` drops its reference to `id`; the object goes with its last
    /// reference unless a name refers to it.
    fn decref(&self, id: u64, refs: &mut Refs) {
        if refs.remove(&id) {
            self.drop_ref(id);
        }
    }

    fn drop_ref(&self, id: u64) {
        let mut objects = self.objects.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = objects.get_mut(&id) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 && !e.named {
                // Dropped outside the map's lock: a big object's memory is
                // returned without holding up other connections.
                let gone = objects.remove(&id);
                drop(objects);
                drop(gone);
            }
        }
    }

    /// Drops every reference of a connection that ended.
    fn release(&self, refs: Refs) {
        for id in refs {
            self.drop_ref(id);
        }
    }

    fn lookup(&self, name: &str, refs: &mut Refs) -> Result<(u64, &'static str), Failure> {
        let id = *self
            .names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .ok_or_else(|| Failure::NoSuchObject(format!("{name:?}")))?;
        self.incref(id, refs)
            .map_err(|_| Failure::NoSuchObject(format!("{name:?}")))?;
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        let e = objects
            .get(&id)
            .ok_or_else(|| Failure::NoSuchObject(format!("{name:?}")))?;
        Ok((id, e.kind))
    }

    fn stats(&self) -> Response {
        Response::Stats {
            objects: self.objects.read().unwrap_or_else(|p| p.into_inner()).len() as u64,
            connections: self.live.load(Ordering::Acquire) as u64,
        }
    }
}

/// What a server allows, set before it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Options {
    pub(crate) max_connections: usize,
    /// Refuse peers of another user (Unix sockets only: `SO_PEERCRED`).
    pub(crate) same_user: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            same_user: false,
        }
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
    options: Options,
}

impl Server {
    /// Listens on `address` (a Unix path, an abstract name or TCP); every
    /// connection must authenticate with `authkey`.
    pub fn bind(address: impl Into<Address>, authkey: &[u8]) -> Result<Server, Error> {
        let listener = Listener::bind(address, Some(authkey))?;
        Ok(Server {
            listener: Arc::new(listener),
            state: Arc::default(),
            options: Options::default(),
        })
    }

    pub(crate) fn with_options(mut self, options: Options) -> Server {
        self.options = options;
        self
    }

    /// Serves at most `n` connections at once (at least 1; default
    /// [`DEFAULT_MAX_CONNECTIONS`]). Each connection has its own thread, so
    /// this bounds the server's threads too: at most `n` plus its four
    /// acceptors. A client beyond the cap gets
    /// [`Error::TooManyConnections`] at once; the connections served go on.
    pub fn max_connections(mut self, n: usize) -> Server {
        self.options.max_connections = n.max(1);
        self
    }

    /// Refuses connections from processes of another user (default off;
    /// on for [`Manager::start`](crate::Manager::start)). Only on a Unix
    /// socket, where the kernel says who the peer is (`SO_PEERCRED`); the
    /// key is still required of everyone.
    pub fn same_user_only(mut self, on: bool) -> Server {
        self.options.same_user = on;
        self
    }

    /// The address clients connect to (with the port chosen for TCP port 0).
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    fn register(&self, name: &str, kind: Kind) -> Result<(), Error> {
        let id = self.state.create(kind, None).map_err(Error::Remote)?;
        let old = self
            .state
            .names
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), id);
        if let Some(old) = old {
            // The name now means the new object; the old one lives on only
            // while connections refer to it.
            let mut objects = self
                .state
                .objects
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(e) = objects.get_mut(&old) {
                e.named = false;
                if e.refs == 0 {
                    objects.remove(&old);
                }
            }
        }
        Ok(())
    }

    /// Registers a value under `name`.
    pub fn register_value<T: Serialize>(&self, name: &str, value: T) -> Result<(), Error> {
        self.register(name, Kind::Value(crate::proxy::encode_untyped(&value)?))
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
        let local = !matches!(self.listener.address(), Address::Tcp(_));
        let server = Arc::new(Serving {
            state: self.state.clone(),
            options: self.options.clone(),
            local,
            uid: rustix::process::geteuid(),
        });
        let acceptors: Vec<_> = (0..ACCEPTORS)
            .map(|i| {
                let listener = self.listener.clone();
                let server = server.clone();
                std::thread::Builder::new()
                    .name(format!("mp-manager-accept-{i}"))
                    .spawn(move || accept_loop(&listener, &server))
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

/// What the acceptors and connection threads of a serving server share.
#[derive(Debug)]
struct Serving {
    state: Arc<State>,
    options: Options,
    /// The listener is a Unix socket: the fast path and `SO_PEERCRED` apply.
    local: bool,
    uid: rustix::process::Uid,
}

/// Counts a connection as served until dropped.
struct Served<'a>(&'a AtomicUsize);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tells a client the server will not serve it, and closes.
fn refuse(mut conn: Connection, limit: usize) {
    let no = Response::Failed(Failure::TooManyConnections(limit as u64));
    let _ = conn.send_timeout(&no, REFUSAL_WRITE);
}

fn accept_loop(listener: &Listener, server: &Arc<Serving>) {
    let state = &server.state;
    while !state.stop.load(Ordering::Acquire) {
        match listener.accept_timeout(ACCEPT_SLICE) {
            Ok(conn) => {
                // Who is calling (Unix sockets only): for the user check,
                // and for the events.
                let cred = server
                    .local
                    .then(|| rustix::net::sockopt::socket_peercred(&conn).ok())
                    .flatten();
                if server.options.same_user
                    && server.local
                    && !cred.is_some_and(|c| c.uid == server.uid)
                {
                    // Another user's process: closed without a word.
                    mp_process::mp_event!(
                        warn,
                        pid = cred.map(|c| c.pid.as_raw_nonzero().get()),
                        "manager refused a connection: another user"
                    );
                    continue;
                }
                let limit = server.options.max_connections;
                if state.live.fetch_add(1, Ordering::AcqRel) >= limit {
                    state.live.fetch_sub(1, Ordering::AcqRel);
                    mp_process::mp_event!(
                        warn,
                        pid = cred.map(|c| c.pid.as_raw_nonzero().get()),
                        limit,
                        "manager refused a connection: too many connections"
                    );
                    refuse(conn, limit);
                    continue;
                }
                mp_process::mp_event!(
                    debug,
                    pid = cred.map(|c| c.pid.as_raw_nonzero().get()),
                    server = std::process::id(),
                    "manager connection accepted"
                );
                // Handed to the thread; back here if it could not start.
                let (tx, rx) = std::sync::mpsc::channel::<Connection>();
                let s = server.clone();
                let spawned = std::thread::Builder::new()
                    .name("mp-manager-conn".into())
                    .spawn(move || {
                        let served = Served(&s.state.live);
                        if let Ok(conn) = rx.recv() {
                            serve_connection(conn, &s);
                            mp_process::mp_event!(
                                debug,
                                pid = cred.map(|c| c.pid.as_raw_nonzero().get()),
                                "manager connection closed"
                            );
                        }
                        drop(served);
                    });
                match spawned {
                    Ok(_) => {
                        let _ = tx.send(conn);
                    }
                    Err(_) => {
                        // Out of threads: refused like one over the cap,
                        // with the count served now; the server goes on.
                        let now = state.live.fetch_sub(1, Ordering::AcqRel) - 1;
                        mp_process::mp_event!(
                            warn,
                            pid = cred.map(|c| c.pid.as_raw_nonzero().get()),
                            "manager refused a connection: cannot start its thread"
                        );
                        refuse(conn, now);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            Err(mp_ipc::Error::Timeout) => {}
            Err(mp_ipc::Error::Closed) => return,
            // A peer that failed authentication or sent garbage: only that
            // connection is lost.
            Err(_e) => {
                mp_process::mp_event!(warn, error = %_e, "manager accept failed");
                std::thread::sleep(Duration::from_millis(1))
            }
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

    /// Whether the client is still there while its request waits: it sends
    /// nothing then, so a readable socket is its end of stream (or a
    /// protocol breach, which ends the connection as well).
    fn peer_there(&self) -> bool {
        let sock = match self {
            Link::Socket(conn) => conn,
            Link::Fast(fast) => fast.socket(),
        };
        !sock.poll(Some(Duration::ZERO)).unwrap_or(true)
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

fn serve_connection(mut conn: Connection, server: &Serving) {
    let state = &*server.state;
    conn.set_max_message_size(DEFAULT_MAX_REQUEST);
    if conn.send(&Response::Done).is_err() {
        return;
    }
    let me = state.conns.next();
    let mut held = HeldLocks::default();
    let mut refs = Refs::new();
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
        if state.stop.load(Ordering::Acquire) {
            // Stopped while this connection waited: it ends too, so that
            // the client connects again (and finds the address closed).
            let _ = l.send(&Response::Failed(Failure::ShuttingDown));
            break;
        }
        // What a reply that cannot be delivered must give back.
        let mut undo = None;
        let resp = match req {
            Request::Create(kind) => match state.create(kind, Some(&mut refs)) {
                Ok(id) => Response::Created(id),
                Err(f) => Response::Failed(f),
            },
            Request::Lookup(name) => match state.lookup(&name, &mut refs) {
                Ok((id, kind)) => Response::Found(id, kind.to_owned()),
                Err(f) => Response::Failed(f),
            },
            Request::Incref(id) => {
                // No reply: a proxy that cannot be counted finds out at its
                // first operation (no such object).
                let _ = state.incref(id, &mut refs);
                continue;
            }
            Request::Decref(id) => {
                state.decref(id, &mut refs);
                continue;
            }
            Request::Op(id, op) => match state.get(id) {
                Ok(obj) => {
                    let tag = OpTag::of(&op);
                    let link = &*l;
                    let resp = obj.apply(id, op, me, &mut held, &|| link.peer_there());
                    if tag != OpTag::Other {
                        undo = Some((obj, tag));
                    }
                    resp
                }
                Err(f) => Response::Failed(f),
            },
            Request::Ping => Response::Done,
            Request::Stats => state.stats(),
            Request::Shutdown => {
                state.stop.store(true, Ordering::Release);
                let _ = l.send(&Response::Done);
                break;
            }
            Request::Fast if !server.local => Response::Failed(Failure::Misuse(
                "the fast path is for connections on this machine only".into(),
            )),
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
        if matches!(resp, Response::Failed(Failure::PeerGone)) {
            break;
        }
        if !link.as_mut().is_some_and(|l| l.send(&resp)) {
            if let Some((obj, tag)) = undo {
                obj.undo(&tag, resp);
            }
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
    // that nobody waits for them forever; so are its references.
    HeldLocks::settle(unsettled);
    held.release_all(me);
    state.release(refs);
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    /// A client over TCP that asks for the fast path is refused: the
    /// block's name means nothing on another machine, and must not leak.
    #[test]
    fn the_fast_path_is_refused_over_tcp() {
        let server = Server::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap(), b"k").unwrap();
        let address = server.address().clone();
        let handle = server.serve_in_background().unwrap();
        let mut c = mp_ipc::Client::new(address)
            .authkey(b"k")
            .connect()
            .unwrap();
        let t = Duration::from_secs(10);
        assert!(matches!(
            c.recv_timeout::<Response>(t).unwrap(),
            Response::Done
        ));
        c.send(&Request::Fast).unwrap();
        match c.recv_timeout::<Response>(t).unwrap() {
            Response::Failed(Failure::Misuse(_)) => {}
            r => panic!("over TCP the server answered {r:?}"),
        }
        // The connection goes on, on the socket.
        c.send(&Request::Ping).unwrap();
        assert!(matches!(
            c.recv_timeout::<Response>(t).unwrap(),
            Response::Done
        ));
        c.send(&Request::Shutdown).unwrap();
        assert!(matches!(
            c.recv_timeout::<Response>(t).unwrap(),
            Response::Done
        ));
        handle.join().unwrap();
    }
}
