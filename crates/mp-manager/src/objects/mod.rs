//! The objects a server holds, and the operations on them.
//!
//! Every object keeps its state behind a `Mutex` with `Condvar`s for the
//! blocking operations; a blocking operation blocks only the thread that
//! serves the connection that asked. Lock ownership is by connection: one
//! connection serves one thread of one client process, as in CPython.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::protocol::{Failure, Kind, Micros, Num, NumKind, Op, Response};

mod data;
mod sync;

use data::{OrderedMap, QueueObj, dict_op, list_op, namespace_op};
use sync::{BarrierObj, CondObj, LockObj, SemObj};

/// A connection's identity, for lock ownership.
pub(crate) type ConnId = u64;

/// One shared object.
#[derive(Debug)]
pub(crate) enum Object {
    Value(Mutex<Vec<u8>>),
    Lock(LockObj),
    Condition(CondObj),
    Event(Mutex<bool>, Condvar),
    Semaphore(SemObj),
    Barrier(BarrierObj),
    Queue(QueueObj),
    Dict(Mutex<OrderedMap<Vec<u8>>>),
    List(Mutex<Vec<Vec<u8>>>),
    Namespace(Mutex<OrderedMap<String>>),
}

/// Locks a mutex, going on after a panic elsewhere (the server's objects
/// hold plain data whose every state is valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn deadline(t: Micros) -> Option<Instant> {
    t.map(|us| Instant::now() + Duration::from_micros(us))
}

/// Whether the client of the connection an operation runs for is still
/// there (its socket shows neither end of stream nor a stray byte).
pub(crate) type Alive<'a> = &'a dyn Fn() -> bool;

/// How often a blocked operation looks whether its client is still there:
/// a client gone while its `get` waits must not take the next item, and
/// its thread must end.
const LIVENESS: Duration = Duration::from_millis(50);

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    Ready,
    Timeout,
    /// The client went away; nothing was taken.
    Gone,
}

/// Waits on `cv` until `done` holds, `deadline` passes or the client is
/// gone (looked at every [`LIVENESS`]). With `consume`, a wait that ends
/// ready after sleeping also looks at the client first, so that what
/// `done` found (an item, a unit) is taken only for a client that is
/// there: an answer that comes at once costs no look.
fn wait_until<'a, T>(
    cv: &Condvar,
    mut g: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    alive: Alive<'_>,
    consume: bool,
    mut done: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, Waited) {
    let mut waited = false;
    let mut looked = Instant::now();
    loop {
        if done(&mut g) {
            if waited && consume && !alive() {
                return (g, Waited::Gone);
            }
            return (g, Waited::Ready);
        }
        let now = Instant::now();
        if now.duration_since(looked) >= LIVENESS {
            if !alive() {
                return (g, Waited::Gone);
            }
            looked = now;
        }
        let slice_end = looked + LIVENESS;
        let until = match deadline {
            Some(d) if d <= now => return (g, Waited::Timeout),
            Some(d) => d.min(slice_end),
            None => slice_end,
        };
        g = cv
            .wait_timeout(g, until.saturating_duration_since(now))
            .unwrap_or_else(|p| p.into_inner())
            .0;
        waited = true;
    }
}

impl Object {
    /// The object `kind` describes; a value's bytes move in, so that the
    /// server holds them once.
    pub(crate) fn new(
        kind: Kind,
        lock_of: impl Fn(u64) -> Option<Arc<Object>>,
    ) -> Result<Object, Failure> {
        Ok(match kind {
            Kind::Value(v) => Object::Value(Mutex::new(v)),
            Kind::Lock => Object::Lock(LockObj::new(false)),
            Kind::RLock => Object::Lock(LockObj::new(true)),
            Kind::Condition(None) => {
                Object::Condition(CondObj::new(Arc::new(Object::Lock(LockObj::new(true)))))
            }
            Kind::Condition(Some(id)) => {
                let l = lock_of(id).ok_or_else(|| Failure::NoSuchObject(format!("lock #{id}")))?;
                if !matches!(*l, Object::Lock(_)) {
                    return Err(Failure::WrongKind {
                        expected: "lock".into(),
                        found: "another kind".into(),
                    });
                }
                Object::Condition(CondObj::new(l))
            }
            Kind::Event => Object::Event(Mutex::new(false), Condvar::new()),
            Kind::Semaphore(n) => Object::Semaphore(SemObj::new(n, None)),
            Kind::BoundedSemaphore(n) => Object::Semaphore(SemObj::new(n, Some(n))),
            Kind::Barrier(0) => {
                return Err(Failure::BadValue(
                    "a barrier needs at least one party".into(),
                ));
            }
            Kind::Barrier(n) => Object::Barrier(BarrierObj::new(n)),
            Kind::Queue(max) => Object::Queue(QueueObj::new(max)),
            Kind::JoinableQueue(max) => Object::Queue(QueueObj::new(max)),
            Kind::Dict => Object::Dict(Mutex::new(OrderedMap::default())),
            Kind::List => Object::List(Mutex::new(Vec::new())),
            Kind::Namespace => Object::Namespace(Mutex::new(OrderedMap::default())),
        })
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Object::Value(_) => "value",
            Object::Lock(l) if l.recursive => "rlock",
            Object::Lock(_) => "lock",
            Object::Condition(_) => "condition",
            Object::Event(..) => "event",
            Object::Semaphore(_) => "semaphore",
            Object::Barrier(_) => "barrier",
            Object::Queue(_) => "queue",
            Object::Dict(_) => "dict",
            Object::List(_) => "list",
            Object::Namespace(_) => "namespace",
        }
    }

    /// Runs `op` for connection `conn`; `held` is the set of locks this
    /// connection holds, kept up to date for release on disconnect; `alive`
    /// tells whether the client is still there, for operations that wait.
    /// A client found gone gets [`Failure::PeerGone`], and nothing was
    /// taken for it.
    pub(crate) fn apply(
        self: &Arc<Self>,
        id: u64,
        op: Op,
        conn: ConnId,
        held: &mut HeldLocks,
        alive: Alive<'_>,
    ) -> Response {
        match self.try_apply(id, op, conn, held, alive) {
            Ok(r) => r,
            Err(f) => Response::Failed(f),
        }
    }

    /// Gives back what a reply that could not be delivered had taken: the
    /// item of a `get` goes back to the front of its queue, the unit of a
    /// semaphore `acquire` back to the semaphore. (A lock or a condition's
    /// lock is released with the connection's other locks.)
    pub(crate) fn undo(&self, op: &OpTag, resp: Response) {
        match (self, op, resp) {
            (Object::Queue(q), OpTag::Take, Response::Bytes(item)) => q.unget(item),
            (Object::Semaphore(s), OpTag::SemAcquire, Response::Bool(true)) => s.give_back(),
            _ => {}
        }
    }

    fn try_apply(
        self: &Arc<Self>,
        id: u64,
        op: Op,
        conn: ConnId,
        held: &mut HeldLocks,
        alive: Alive<'_>,
    ) -> Result<Response, Failure> {
        let wrong = |expected: &str| Failure::WrongKind {
            expected: expected.into(),
            found: self.kind_name().into(),
        };
        match (&**self, op) {
            (Object::Value(v), Op::Get) => Ok(Response::Bytes(lock(v).clone())),
            (Object::Value(v), Op::Set(b)) => {
                *lock(v) = b;
                Ok(Response::Done)
            }
            (Object::Value(v), Op::FetchAdd(kind, delta)) => {
                let mut g = lock(v);
                let (old, new) = add(kind, &g, delta)?;
                *g = new;
                Ok(Response::Bytes(old))
            }
            (Object::Value(v), Op::CompareExchange(expected, new)) => {
                let mut g = lock(v);
                if *g == expected {
                    let old = std::mem::replace(&mut *g, new);
                    Ok(Response::Exchanged(true, old))
                } else {
                    Ok(Response::Exchanged(false, g.clone()))
                }
            }
            (Object::Value(_), _) => Err(wrong("value")),

            // A lock, or a condition's lock.
            (Object::Lock(_) | Object::Condition(_), Op::Acquire { blocking, timeout }) => {
                let got = self
                    .lock_part()?
                    .acquire(conn, blocking, deadline(timeout), alive)?;
                if got {
                    held.add(id, self);
                }
                Ok(Response::Bool(got))
            }
            (Object::Lock(_) | Object::Condition(_), Op::AwaitFree(timeout)) => self
                .lock_part()?
                .await_free(conn, deadline(timeout), alive)
                .map(Response::Bool),
            (Object::Lock(_) | Object::Condition(_), Op::Release) => {
                let l = self.lock_part()?;
                if l.release(conn)? {
                    held.unsettled.push(self.clone());
                }
                if !l.owned_by(conn) {
                    held.remove(id);
                }
                Ok(Response::Done)
            }
            (Object::Lock(_), _) => Err(wrong("lock")),

            (Object::Condition(c), Op::Wait(t)) => {
                c.wait(conn, deadline(t), alive).map(Response::Bool)
            }
            (Object::Condition(c), Op::Notify(n)) => c.notify(conn, n).map(|()| Response::Done),
            (Object::Condition(c), Op::NotifyAll) => {
                c.notify(conn, u64::MAX).map(|()| Response::Done)
            }
            (Object::Condition(_), _) => Err(wrong("condition")),

            (Object::Event(flag, cv), Op::SetFlag) => {
                *lock(flag) = true;
                cv.notify_all();
                Ok(Response::Done)
            }
            (Object::Event(flag, _), Op::ClearFlag) => {
                *lock(flag) = false;
                Ok(Response::Done)
            }
            (Object::Event(flag, _), Op::IsSet) => Ok(Response::Bool(*lock(flag))),
            (Object::Event(flag, cv), Op::WaitFlag(t)) => {
                match wait_until(cv, lock(flag), deadline(t), alive, false, |f| *f).1 {
                    Waited::Ready => Ok(Response::Bool(true)),
                    Waited::Timeout => Ok(Response::Bool(false)),
                    Waited::Gone => Err(Failure::PeerGone),
                }
            }
            (Object::Event(..), _) => Err(wrong("event")),

            (Object::Semaphore(s), Op::SemAcquire { blocking, timeout }) => s
                .acquire(blocking, deadline(timeout), alive)
                .map(Response::Bool),
            (Object::Semaphore(s), Op::SemRelease) => s.release().map(|()| Response::Done),
            (Object::Semaphore(s), Op::SemValue) => Ok(Response::Count(*lock(&s.value))),
            (Object::Semaphore(_), _) => Err(wrong("semaphore")),

            (Object::Barrier(b), Op::BarrierWait(t)) => {
                b.wait(deadline(t), alive).map(Response::Count)
            }
            (Object::Barrier(b), Op::BarrierAbort) => {
                b.abort();
                Ok(Response::Done)
            }
            (Object::Barrier(b), Op::BarrierReset) => {
                b.reset();
                Ok(Response::Done)
            }
            (Object::Barrier(b), Op::BarrierState) => {
                let g = lock(&b.state);
                Ok(Response::Barrier {
                    parties: b.parties,
                    waiting: g.count,
                    broken: g.broken,
                })
            }
            (Object::Barrier(_), _) => Err(wrong("barrier")),

            (
                Object::Queue(q),
                Op::Put {
                    item,
                    blocking,
                    timeout,
                },
            ) => q
                .put(item, blocking, deadline(timeout), alive)
                .map(|()| Response::Done),
            (Object::Queue(q), Op::Take { blocking, timeout }) => q
                .take(blocking, deadline(timeout), alive)
                .map(Response::Bytes),
            (Object::Queue(q), Op::QueueLen) => {
                Ok(Response::Count(lock(&q.state).items.len() as u64))
            }
            (Object::Queue(q), Op::TaskDone) => q.task_done().map(|()| Response::Done),
            (Object::Queue(q), Op::JoinQueue(t)) => {
                let waited = wait_until(
                    &q.all_done,
                    lock(&q.state),
                    deadline(t),
                    alive,
                    false,
                    |s| s.unfinished == 0,
                )
                .1;
                match waited {
                    Waited::Ready => Ok(Response::Done),
                    Waited::Timeout => Err(Failure::Timeout),
                    Waited::Gone => Err(Failure::PeerGone),
                }
            }
            (Object::Queue(_), _) => Err(wrong("queue")),

            (Object::Dict(d), op) => dict_op(&mut lock(d), op).ok_or_else(|| wrong("dict")),
            (Object::List(l), op) => {
                list_op(&mut lock(l), op).unwrap_or_else(|| Err(wrong("list")))
            }
            (Object::Namespace(ns), op) => {
                namespace_op(&mut lock(ns), op).unwrap_or_else(|| Err(wrong("namespace")))
            }
        }
    }

    /// Releases whatever `conn` holds of this lock (its connection ended).
    pub(crate) fn release_all(&self, conn: ConnId) {
        if let Some(l) = self.as_lock() {
            l.release_all(conn);
        }
    }

    /// The lock of a lock or of a condition.
    fn as_lock(&self) -> Option<&LockObj> {
        match self {
            Object::Lock(l) => Some(l),
            Object::Condition(c) => Some(c.lock()),
            _ => None,
        }
    }

    /// [`as_lock`](Self::as_lock), for operations only locks take.
    fn lock_part(&self) -> Result<&LockObj, Failure> {
        self.as_lock().ok_or_else(|| Failure::WrongKind {
            expected: "lock".into(),
            found: self.kind_name().into(),
        })
    }
}

/// What an operation may have taken that an undelivered reply must give
/// back (see [`Object::undo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpTag {
    Take,
    SemAcquire,
    Other,
}

impl OpTag {
    pub(crate) fn of(op: &Op) -> OpTag {
        match op {
            Op::Take { .. } => OpTag::Take,
            Op::SemAcquire { .. } => OpTag::SemAcquire,
            _ => OpTag::Other,
        }
    }
}

/// The locks a connection holds, to release when it ends.
#[derive(Debug, Default)]
pub(crate) struct HeldLocks {
    held: HashMap<u64, Arc<Object>>,
    /// Locks this connection released without waking their waiters yet
    /// (see [`LockObj`]).
    unsettled: Vec<Arc<Object>>,
}

impl HeldLocks {
    fn add(&mut self, id: u64, obj: &Arc<Object>) {
        self.held.entry(id).or_insert_with(|| obj.clone());
    }

    fn remove(&mut self, id: u64) {
        self.held.remove(&id);
    }

    /// Takes the unsettled releases, to [`settle`](Self::settle) later.
    pub(crate) fn take_unsettled(&mut self) -> Vec<Arc<Object>> {
        std::mem::take(&mut self.unsettled)
    }

    /// Wakes the waiters of `released` locks that are still free.
    pub(crate) fn settle(released: Vec<Arc<Object>>) {
        for obj in released {
            if let Some(l) = obj.as_lock() {
                l.settle();
            }
        }
    }

    /// Releases every lock still held by `conn`, and wakes the waiters of
    /// those it released before.
    pub(crate) fn release_all(&mut self, conn: ConnId) {
        Self::settle(self.take_unsettled());
        for (_, obj) in self.held.drain() {
            obj.release_all(conn);
        }
    }
}

/// Adds `delta` to the value stored as `kind`; returns (old, new) bytes.
fn add(kind: NumKind, stored: &[u8], delta: Num) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    fn bad(e: impl std::fmt::Display) -> Failure {
        Failure::BadValue(format!("the value does not hold that number type: {e}"))
    }
    macro_rules! int {
        ($t:ty) => {{
            let cur: $t = mp_process::codec::decode(stored).map_err(bad)?;
            let Num::Int(d) = delta else {
                return Err(bad("a float delta for an integer value"));
            };
            // Wrapping, like the atomics of std.
            let new = (cur as i128).wrapping_add(d) as $t;
            (
                mp_process::codec::encode(&cur).map_err(bad)?,
                mp_process::codec::encode(&new).map_err(bad)?,
            )
        }};
    }
    macro_rules! float {
        ($t:ty) => {{
            let cur: $t = mp_process::codec::decode(stored).map_err(bad)?;
            let d = match delta {
                Num::Float(f) => f,
                Num::Int(i) => i as f64,
            };
            let new = (cur as f64 + d) as $t;
            (
                mp_process::codec::encode(&cur).map_err(bad)?,
                mp_process::codec::encode(&new).map_err(bad)?,
            )
        }};
    }
    Ok(match kind {
        NumKind::I8 => int!(i8),
        NumKind::I16 => int!(i16),
        NumKind::I32 => int!(i32),
        NumKind::I64 => int!(i64),
        NumKind::U8 => int!(u8),
        NumKind::U16 => int!(u16),
        NumKind::U32 => int!(u32),
        NumKind::U64 => int!(u64),
        NumKind::F32 => float!(f32),
        NumKind::F64 => float!(f64),
    })
}

/// Hands out object and connection ids.
#[derive(Debug, Default)]
pub(crate) struct Ids(AtomicU64);

impl Ids {
    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}
