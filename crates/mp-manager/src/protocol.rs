//! The wire protocol between proxies and the server: one request, one
//! response, in order, on an authenticated `mp_ipc::Connection`.
//!
//! Only data crosses: values travel as postcard bytes that the server
//! stores without knowing their types (it compares dict keys by their
//! bytes), plus a few numeric kinds it can add to. No request can make the
//! server run code of the client's choosing.
//!
//! Right after the handshake, before any request, the server sends one
//! greeting: [`Response::Done`] when it serves the connection,
//! [`Failure::TooManyConnections`] when it refuses it. `Incref` and
//! `Decref` have no reply; every other request has exactly one.

use serde::{Deserialize, Serialize};

/// A request from a proxy.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Makes a new object; the reply is its id. The connection holds a
    /// reference to it.
    Create(Kind),
    /// Finds an object registered under a name; the reply is its id and
    /// kind's name. The connection holds a reference to it.
    Lookup(String),
    /// An operation on an object.
    Op(u64, Op),
    /// Asks nothing: the reply says the server is there.
    Ping,
    /// The connection takes a reference to an object (no reply). An object
    /// lives while a connection holds a reference or a name refers to it.
    Incref(u64),
    /// The connection drops its reference to an object (no reply).
    Decref(u64),
    /// What the server holds now: the reply is [`Response::Stats`].
    Stats,
    /// Asks the server to stop.
    Shutdown,
    /// Asks for the fast path (`fast.rs`): the reply names a shared-memory
    /// block, and every later message travels through it.
    Fast,
}

impl Request {
    /// Whether the server may hold the reply until something else happens
    /// (another client releases, puts, sets, arrives).
    pub(crate) fn may_wait(&self) -> bool {
        matches!(
            self,
            Request::Op(
                _,
                Op::Acquire { blocking: true, .. }
                    | Op::AwaitFree(_)
                    | Op::Wait(_)
                    | Op::WaitFlag(_)
                    | Op::SemAcquire { blocking: true, .. }
                    | Op::BarrierWait(_)
                    | Op::Put { blocking: true, .. }
                    | Op::Take { blocking: true, .. }
                    | Op::JoinQueue(_)
            )
        )
    }
}

/// What kind of object to create, with its initial state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Value(Vec<u8>),
    Lock,
    RLock,
    /// A condition over an existing lock (or rlock) object, or over a new lock.
    Condition(Option<u64>),
    Event,
    Semaphore(u64),
    BoundedSemaphore(u64),
    Barrier(u64),
    Queue(u64),
    JoinableQueue(u64),
    Dict,
    List,
    Namespace,
}

impl Kind {
    /// The kind's name, for type checks and messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Kind::Value(_) => "value",
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Condition(_) => "condition",
            Kind::Event => "event",
            Kind::Semaphore(_) => "semaphore",
            Kind::BoundedSemaphore(_) => "bounded semaphore",
            Kind::Barrier(_) => "barrier",
            Kind::Queue(_) => "queue",
            Kind::JoinableQueue(_) => "joinable queue",
            Kind::Dict => "dict",
            Kind::List => "list",
            Kind::Namespace => "namespace",
        }
    }
}

/// A timeout in microseconds; `None` waits as long as it takes.
pub(crate) type Micros = Option<u64>;

/// An operation on one object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    // Value.
    Get,
    Set(Vec<u8>),
    FetchAdd(NumKind, Num),
    CompareExchange(Vec<u8>, Vec<u8>),
    // Lock, RLock, Condition's lock.
    Acquire {
        blocking: bool,
        timeout: Micros,
    },
    Release,
    // Condition.
    Wait(Micros),
    Notify(u64),
    NotifyAll,
    // Event.
    SetFlag,
    ClearFlag,
    IsSet,
    WaitFlag(Micros),
    // Semaphore.
    SemAcquire {
        blocking: bool,
        timeout: Micros,
    },
    SemRelease,
    SemValue,
    // Barrier.
    BarrierWait(Micros),
    BarrierAbort,
    BarrierReset,
    BarrierState,
    // Queue.
    Put {
        item: Vec<u8>,
        blocking: bool,
        timeout: Micros,
    },
    Take {
        blocking: bool,
        timeout: Micros,
    },
    QueueLen,
    TaskDone,
    JoinQueue(Micros),
    // Dict.
    DictGet(Vec<u8>),
    DictInsert(Vec<u8>, Vec<u8>),
    DictContains(Vec<u8>),
    DictRemove(Vec<u8>),
    DictLen,
    DictItems,
    DictUpdate(Vec<(Vec<u8>, Vec<u8>)>),
    DictSetDefault(Vec<u8>, Vec<u8>),
    DictClear,
    /// Removes the entry inserted last.
    DictPopItem,
    // List.
    ListPush(Vec<u8>),
    ListPop(Option<i64>),
    ListInsert(i64, Vec<u8>),
    ListGet(i64),
    ListSet(i64, Vec<u8>),
    ListLen,
    ListExtend(Vec<Vec<u8>>),
    ListSnapshot,
    ListClear,
    /// Items `start..end`, Python's slice with step 1.
    ListSlice(i64, i64),
    /// Items equal to this one (by encoding): how many.
    ListCount(Vec<u8>),
    /// The first item equal to this one (by encoding): where.
    ListIndex(Vec<u8>),
    /// Removes the first item equal to this one (by encoding).
    ListRemove(Vec<u8>),
    ListReverse,
    // Namespace.
    AttrGet(String),
    AttrSet(String, Vec<u8>),
    AttrDel(String),
    AttrSnapshot,
    // Lock, RLock, Condition's lock: waits until the lock is free, without
    // taking it (the client then tries again; see `proxy::acquire`).
    AwaitFree(Micros),
}

/// The numeric types a value can be added to on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NumKind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

/// A number, wide enough for every [`NumKind`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

/// The server's reply.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Done,
    /// The id of a new object.
    Created(u64),
    /// The id of a named object, and its kind's name.
    Found(u64, String),
    /// Objects held and connections served now.
    Stats {
        objects: u64,
        connections: u64,
    },
    Bytes(Vec<u8>),
    MaybeBytes(Option<Vec<u8>>),
    Bool(bool),
    Count(u64),
    Items(Vec<Vec<u8>>),
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    Attrs(Vec<(String, Vec<u8>)>),
    Barrier {
        parties: u64,
        waiting: u64,
        broken: bool,
    },
    /// The outcome of a compare-and-exchange: whether it swapped, and the
    /// value found.
    Exchanged(bool, Vec<u8>),
    Failed(Failure),
    /// The block of the fast path, to attach to by name.
    FastOffer(String),
}

/// Why the server refused or failed an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// No object with that id or name.
    NoSuchObject(String),
    /// The operation does not apply to the object's kind.
    WrongKind {
        expected: String,
        found: String,
    },
    /// A timed wait ran out.
    Timeout,
    /// `put` on a full queue without waiting, `get` on an empty one.
    Full,
    Empty,
    /// Release of a lock not held, a bounded semaphore released too often,
    /// one `task_done` too many.
    Misuse(String),
    /// The barrier is broken.
    BrokenBarrier,
    /// An index out of range, a missing key or attribute.
    NotFound(String),
    /// The value cannot take that operation (wrong numeric type, bytes that
    /// do not decode).
    BadValue(String),
    /// The server is shutting down.
    ShuttingDown,
    /// The server serves its limit of connections (or could not start a
    /// thread for one more): this one is refused.
    TooManyConnections(u64),
    /// The operation would take a counter past its largest value.
    Overflow(String),
    /// Never sent: the client went away while its operation waited, and
    /// the operation took nothing.
    PeerGone,
}
