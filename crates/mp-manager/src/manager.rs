//! `Manager`: a server in a child process, and `ManagerClient`, the side
//! that creates and finds shared objects.

use std::hash::BuildHasher;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use mp_ipc::{Address, Connection};
use mp_process::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::{Endpoint, call_timeout};
use crate::error::Error;
use crate::protocol::{Kind, Request, Response};
use crate::proxy::{
    BarrierProxy, ConditionProxy, DictProxy, EventProxy, Handle, ListProxy, LockProxy,
    NamespaceProxy, QueueProxy, SemaphoreProxy, ValueProxy, encode, kind_matches,
};
use crate::server::Server;

/// How long `shutdown` waits for the server process to end before killing it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A connection point to a manager server: creates shared objects and finds
/// registered ones. [`Manager`] derefs to one; [`connect`] returns one.
#[derive(Clone, Debug)]
pub struct ManagerClient {
    ep: Arc<Endpoint>,
}

/// Connects to a running server (Python's `BaseManager(address,
/// authkey).connect()`). A wrong key is an [`Error::Connection`] with
/// [`mp_ipc::Error::Authentication`].
pub fn connect(address: impl Into<Address>, authkey: &[u8]) -> Result<ManagerClient, Error> {
    let client = ManagerClient {
        ep: Arc::new(Endpoint::new(&address.into(), authkey)),
    };
    match client.ep.call(&Request::Ping, Some(call_timeout()))? {
        Response::Done => Ok(client),
        r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
    }
}

impl ManagerClient {
    fn create(&self, kind: Kind) -> Result<Handle, Error> {
        match self.ep.call(&Request::Create(kind), Some(call_timeout()))? {
            Response::Id(id, _) => Ok(Handle::new(self.ep.clone(), id)),
            Response::Failed(f) => Err(Error::from_failure(f)),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    fn lookup(&self, name: &str, expected: &str) -> Result<Handle, Error> {
        match self
            .ep
            .call(&Request::Lookup(name.to_owned()), Some(call_timeout()))?
        {
            Response::Id(id, kind) if kind_matches(&kind, expected) => {
                Ok(Handle::new(self.ep.clone(), id))
            }
            Response::Id(_, kind) => Err(Error::WrongKind {
                expected: expected.into(),
                found: kind.name().into(),
            }),
            Response::Failed(f) => Err(Error::from_failure(f)),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// The server's address.
    pub fn address(&self) -> Address {
        self.ep.address()
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
    pub fn shutdown_server(&self) -> Result<(), Error> {
        match self.ep.call(&Request::Shutdown, Some(call_timeout()))? {
            Response::Done => Ok(()),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }
}

/// A manager: a server process holding shared objects, and the client that
/// talks to it. Python's `multiprocessing.Manager()`.
///
/// Dropping it (or [`shutdown`](Manager::shutdown)) stops the server and
/// reaps its process; proxies then fail with [`Error::Connection`].
#[derive(Debug)]
pub struct Manager {
    client: ManagerClient,
    process: Option<Process<()>>,
}

/// Options for [`Manager::builder`].
#[derive(Debug, Clone, Default)]
pub struct ManagerBuilder {
    method: Option<StartMethod>,
    authkey: Option<Vec<u8>>,
}

impl ManagerBuilder {
    /// The start method of the server process.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The key clients must present (default: random).
    pub fn authkey(mut self, key: &[u8]) -> Self {
        self.authkey = Some(key.to_vec());
        self
    }

    /// Starts the server process and waits until it listens.
    pub fn start(self) -> Result<Manager, Error> {
        let seed = std::collections::hash_map::RandomState::new();
        let authkey = self.authkey.unwrap_or_else(|| {
            (0..4u64)
                .flat_map(|i| seed.hash_one((i, std::process::id())).to_le_bytes())
                .collect()
        });
        // An abstract socket: nothing on the filesystem to leak.
        let name = format!(
            "mp-manager-{}-{:016x}",
            std::process::id(),
            seed.hash_one(0u8)
        );
        let address = Address::Abstract(name.into_bytes());
        let (mut ready_rx, ready_tx) = mp_ipc::pipe(false)?;
        let ep = Endpoint::new(&address, &authkey);
        let mut p = Process::new(run_server, (ep.clone(), ready_tx))
            .name("SyncManager")
            .daemon(true);
        if let Some(m) = self.method {
            p = p.start_method(m);
        }
        p.start()?;
        match ready_rx.recv_timeout::<Result<(), String>>(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
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
        Ok(Manager {
            client: ManagerClient { ep: Arc::new(ep) },
            process: Some(p),
        })
    }
}

/// The server process's main: binds, reports, serves.
fn run_server(args: (Endpoint, Connection)) {
    let (ep, mut ready) = args;
    let server = match Server::bind(ep.address(), &ep.authkey_bytes()) {
        Ok(s) => s,
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

    /// Options: start method, key.
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
        let asked = self.client.shutdown_server();
        match p.join_timeout(STOP_GRACE) {
            Ok(()) => asked,
            Err(e) if e.is_timeout() => {
                let _ = p.kill();
                let _ = p.join();
                asked
            }
            // Already gone (killed, say): nothing left to stop.
            Err(_) => Ok(()),
        }
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
        self.ep.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ManagerClient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ManagerClient {
            ep: Arc::<Endpoint>::deserialize(d)?,
        })
    }
}
