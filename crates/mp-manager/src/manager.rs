//! `Manager`: a server in a child process, and `ManagerClient`, the side
//! that creates and finds shared objects.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mp_ipc::{Address, Connection};
use mp_process::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::{Endpoint, Remote, call_timeout};
use crate::error::Error;
use crate::protocol::{Kind, Request, Response};
use crate::proxy::{
    BarrierProxy, ConditionProxy, DictProxy, EventProxy, Handle, ListProxy, LockProxy,
    NamespaceProxy, QueueProxy, SemaphoreProxy, ValueProxy, encode, kind_matches,
};
use crate::server::{DEFAULT_MAX_CONNECTIONS, Options, Server};

/// How long `shutdown` waits for the server process to end before killing it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A connection point to a manager server: creates shared objects and finds
/// registered ones. [`Manager`] derefs to one; [`connect`] returns one.
#[derive(Clone, Debug)]
pub struct ManagerClient {
    remote: Arc<Remote>,
}

/// Connects to a running server (Python's `BaseManager(address,
/// authkey).connect()`). A wrong key is an [`Error::Connection`] with
/// [`mp_ipc::Error::Authentication`].
pub fn connect(address: impl Into<Address>, authkey: &[u8]) -> Result<ManagerClient, Error> {
    let client = ManagerClient {
        remote: Remote::of(&Endpoint::new(&address.into(), authkey)),
    };
    // A connection this thread kept from an earlier server at the address
    // may be open still and answer that it stops: the second try is on a
    // new connection, and says what the address holds now.
    let ping = || match client.remote.call(&Request::Ping, Some(call_timeout())) {
        Ok(Response::Done) => Ok(()),
        Ok(Response::Failed(f)) => Err(Error::from_failure(f)),
        Ok(r) => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        Err(e) => Err(e),
    };
    match ping() {
        Err(Error::Connection(_)) => ping(),
        other => other,
    }?;
    Ok(client)
}

impl ManagerClient {
    fn create(&self, kind: Kind) -> Result<Handle, Error> {
        let remote = self.remote.current();
        match remote.take_ref(&Request::Create(kind))? {
            Response::Created(id) => Ok(Handle::counted(remote, id)),
            Response::Failed(f) => Err(Error::from_failure(f)),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    fn lookup(&self, name: &str, expected: &str) -> Result<Handle, Error> {
        let remote = self.remote.current();
        match remote.take_ref(&Request::Lookup(name.to_owned()))? {
            Response::Found(id, kind) if kind_matches(&kind, expected) => {
                Ok(Handle::counted(remote, id))
            }
            Response::Found(id, kind) => {
                // Not the proxy asked for: the reference goes at once.
                drop(Handle::counted(remote, id));
                Err(Error::WrongKind {
                    expected: expected.into(),
                    found: kind,
                })
            }
            Response::Failed(f) => Err(Error::from_failure(f)),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// The server's address.
    pub fn address(&self) -> Address {
        self.remote.endpoint().address()
    }

    /// What the server holds now: its objects and the connections it
    /// serves (this process's included). For monitoring and tests: an
    /// object lives while a proxy of it does somewhere, or a name refers
    /// to it.
    pub fn server_stats(&self) -> Result<ServerStats, Error> {
        match self.remote.call(&Request::Stats, Some(call_timeout()))? {
            Response::Stats {
                objects,
                connections,
            } => Ok(ServerStats {
                objects,
                connections,
            }),
            Response::Failed(f) => Err(Error::from_failure(f)),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// A new shared value (Python's `manager.Value(typecode, v)`).
    pub fn value<T: Serialize + DeserializeOwned>(
        &self,
        initial: T,
    ) -> Result<ValueProxy<T>, Error> {
        Ok(ValueProxy::from_handle(
            self.create(Kind::Value(encode(&initial)?))?,
        ))
    }

    /// A new lock.
    pub fn lock(&self) -> Result<LockProxy, Error> {
        Ok(LockProxy::from_handle(self.create(Kind::Lock)?))
    }

    /// A new reentrant lock, owned by one thread of one process at a time.
    pub fn rlock(&self) -> Result<LockProxy, Error> {
        Ok(LockProxy::from_handle(self.create(Kind::RLock)?))
    }

    /// A new condition over a new reentrant lock.
    pub fn condition(&self) -> Result<ConditionProxy, Error> {
        Ok(ConditionProxy::from_handle(
            self.create(Kind::Condition(None))?,
        ))
    }

    /// A new condition over an existing lock of this server.
    pub fn condition_with(&self, lock: &LockProxy) -> Result<ConditionProxy, Error> {
        let id = crate::proxy::lock_id(lock);
        Ok(ConditionProxy::from_handle(
            self.create(Kind::Condition(Some(id)))?,
        ))
    }

    /// A new event, not set.
    pub fn event(&self) -> Result<EventProxy, Error> {
        Ok(EventProxy::from_handle(self.create(Kind::Event)?))
    }

    /// A new semaphore with `n` units.
    pub fn semaphore(&self, n: usize) -> Result<SemaphoreProxy, Error> {
        Ok(SemaphoreProxy::from_handle(
            self.create(Kind::Semaphore(n as u64))?,
        ))
    }

    /// A new semaphore with `n` units that refuses to go over `n`.
    pub fn bounded_semaphore(&self, n: usize) -> Result<SemaphoreProxy, Error> {
        Ok(SemaphoreProxy::from_handle(
            self.create(Kind::BoundedSemaphore(n as u64))?,
        ))
    }

    /// A new barrier for `parties` (at least 1).
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy, Error> {
        Ok(BarrierProxy::from_handle(
            self.create(Kind::Barrier(parties as u64))?,
        ))
    }

    /// A new unbounded queue.
    pub fn queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>, Error> {
        self.bounded_queue(0)
    }

    /// A new queue holding at most `maxsize` items (0: unbounded).
    pub fn bounded_queue<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<QueueProxy<T>, Error> {
        Ok(QueueProxy::from_handle(
            self.create(Kind::Queue(maxsize as u64))?,
        ))
    }

    /// A new joinable queue (`task_done` and `join`).
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>, Error> {
        Ok(QueueProxy::from_handle(
            self.create(Kind::JoinableQueue(0))?,
        ))
    }

    /// A new empty dict.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, Error>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        Ok(DictProxy::from_handle(self.create(Kind::Dict)?))
    }

    /// A new empty list.
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>, Error> {
        Ok(ListProxy::from_handle(self.create(Kind::List)?))
    }

    /// A new empty namespace.
    pub fn namespace(&self) -> Result<NamespaceProxy, Error> {
        Ok(NamespaceProxy::from_handle(self.create(Kind::Namespace)?))
    }

    /// The value registered under `name` on the server.
    pub fn get_value<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<ValueProxy<T>, Error> {
        Ok(ValueProxy::from_handle(self.lookup(name, "value")?))
    }

    /// The queue registered under `name`.
    pub fn get_queue<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<QueueProxy<T>, Error> {
        Ok(QueueProxy::from_handle(self.lookup(name, "queue")?))
    }

    /// The dict registered under `name`.
    pub fn get_dict<K, V>(&self, name: &str) -> Result<DictProxy<K, V>, Error>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        Ok(DictProxy::from_handle(self.lookup(name, "dict")?))
    }

    /// The list registered under `name`.
    pub fn get_list<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<ListProxy<T>, Error> {
        Ok(ListProxy::from_handle(self.lookup(name, "list")?))
    }

    /// The namespace registered under `name`.
    pub fn get_namespace(&self, name: &str) -> Result<NamespaceProxy, Error> {
        Ok(NamespaceProxy::from_handle(self.lookup(name, "namespace")?))
    }

    /// The lock registered under `name`.
    pub fn get_lock(&self, name: &str) -> Result<LockProxy, Error> {
        Ok(LockProxy::from_handle(self.lookup(name, "lock")?))
    }

    /// The event registered under `name`.
    pub fn get_event(&self, name: &str) -> Result<EventProxy, Error> {
        Ok(EventProxy::from_handle(self.lookup(name, "event")?))
    }

    /// Asks the server to stop serving; it answers, then stops accepting.
    /// This process's connections to it are closed (in every thread).
    pub fn shutdown_server(&self) -> Result<(), Error> {
        let r = self.remote.call(&Request::Shutdown, Some(call_timeout()));
        self.remote.close();
        match r? {
            Response::Done => Ok(()),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }
}

/// What a server holds now: see [`ManagerClient::server_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Objects held: named ones, and those a proxy somewhere refers to.
    pub objects: u64,
    /// Connections served now.
    pub connections: u64,
}

/// A manager: a server process holding shared objects, and the client that
/// talks to it. Python's `multiprocessing.Manager()`.
///
/// The server listens on a Unix socket in a fresh directory that only this
/// user can enter (mode 0700, removed at shutdown), refuses peers of other
/// users (`SO_PEERCRED`), and wants a random key from the OS on top.
///
/// Dropping it (or [`shutdown`](Manager::shutdown)) stops the server and
/// reaps its process; proxies then fail with [`Error::Connection`].
#[derive(Debug)]
pub struct Manager {
    client: ManagerClient,
    process: Option<Process<()>>,
    /// The socket's private directory.
    dir: Option<PathBuf>,
}

/// Options for [`Manager::builder`].
#[derive(Debug, Clone, Default)]
pub struct ManagerBuilder {
    method: Option<StartMethod>,
    authkey: Option<Vec<u8>>,
    max_connections: Option<usize>,
}

/// `n` bytes from the OS random source.
fn random(n: usize) -> Result<Vec<u8>, Error> {
    let mut b = vec![0u8; n];
    let mut got = 0;
    while got < n {
        got += rustix::rand::getrandom(&mut b[got..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| Error::Io(e.into()))?;
    }
    Ok(b)
}

/// Makes a directory only this user can enter, for the server's socket.
fn private_dir() -> Result<PathBuf, Error> {
    use std::os::unix::fs::DirBuilderExt;
    let hex: String = random(8)?.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("mp-manager-{}-{hex}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(Error::Io)?;
    Ok(dir)
}

impl ManagerBuilder {
    /// The start method of the server process.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The key clients must present (default: 32 bytes from the OS random
    /// source).
    pub fn authkey(mut self, key: &[u8]) -> Self {
        self.authkey = Some(key.to_vec());
        self
    }

    /// The connections the server serves at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]): one per thread of each process using
    /// the manager, plus one per process for its references. It bounds
    /// the server's threads as well; see [`Server::max_connections`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// Starts the server process and waits until it listens.
    pub fn start(self) -> Result<Manager, Error> {
        let authkey = match &self.authkey {
            Some(k) => k.clone(),
            None => random(32)?,
        };
        let dir = private_dir()?;
        let started = self.start_in(&dir, authkey);
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let (client, process) = started?;
        Ok(Manager {
            client,
            process: Some(process),
            dir: Some(dir),
        })
    }

    fn start_in(
        &self,
        dir: &std::path::Path,
        authkey: Vec<u8>,
    ) -> Result<(ManagerClient, Process<()>), Error> {
        let address = Address::Unix(dir.join("socket"));
        let (mut ready_rx, ready_tx) = mp_ipc::pipe(false)?;
        let ep = Endpoint::new(&address, &authkey);
        let options = Options {
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            same_user: true,
        };
        let mut p = Process::new(run_server, (ep.clone(), ready_tx, options))
            .name("SyncManager")
            .daemon(true);
        if let Some(m) = self.method {
            p = p.start_method(m);
        }
        p.start()?;
        match ready_rx.recv_timeout::<Result<(), String>>(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                let _ = p.join_timeout(STOP_GRACE);
                return Err(Error::Protocol(format!(
                    "the manager server failed to start: {why}"
                )));
            }
            Err(e) => {
                let _ = p.kill();
                let _ = p.join();
                return Err(e.into());
            }
        }
        Ok((
            ManagerClient {
                remote: Remote::of(&ep),
            },
            p,
        ))
    }
}

/// The server process's main: binds, reports, serves.
fn run_server(args: (Endpoint, Connection, Options)) {
    let (ep, mut ready, options) = args;
    let server = match Server::bind(ep.address(), &ep.authkey_bytes()) {
        Ok(s) => s.with_options(options),
        Err(e) => {
            let _ = ready.send(&Err::<(), String>(e.to_string()));
            return;
        }
    };
    if ready.send(&Ok::<(), String>(())).is_err() {
        return;
    }
    drop(ready);
    let _ = server.serve_forever();
}

impl Manager {
    /// Starts a manager with the default start method and a random key.
    pub fn start() -> Result<Manager, Error> {
        ManagerBuilder::default().start()
    }

    /// Options: start method, key, connection cap.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// The server process's pid.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::pid)
    }

    /// Stops the server and reaps its process.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let Some(mut p) = self.process.take() else {
            return Ok(());
        };
        // No connection of this process outlives the server.
        let asked = self.client.shutdown_server();
        let out = match p.join_timeout(STOP_GRACE) {
            Ok(()) => asked,
            Err(e) if e.is_timeout() => {
                let _ = p.kill();
                let _ = p.join();
                asked
            }
            // Already gone (killed, say): nothing left to stop.
            Err(_) => Ok(()),
        };
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        out
    }
}

impl Deref for Manager {
    type Target = ManagerClient;

    fn deref(&self) -> &ManagerClient {
        &self.client
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Serialize for ManagerClient {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.remote.endpoint().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ManagerClient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ManagerClient {
            remote: Remote::of(&Endpoint::deserialize(d)?),
        })
    }
}
