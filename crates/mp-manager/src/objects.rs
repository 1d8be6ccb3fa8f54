//! The objects a server holds, and the operations on them.
//!
//! Every object keeps its state behind a `Mutex` with `Condvar`s for the
//! blocking operations; a blocking operation blocks only the thread that
//! serves the connection that asked. Lock ownership is by connection: one
//! connection serves one thread of one client process, as in CPython.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::protocol::{Failure, Kind, Micros, Num, NumKind, Op, Response};

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

/// A lock or rlock: an owner (connection) and a recursion count.
///
/// Waiters are told when the lock is free and their clients try again
/// (`proxy::acquire`); the server never takes a lock for a client that is
/// not running. A release does not wake the waiters at once: its
/// connection's thread settles that after the releaser's next request
/// ([`HeldLocks::settle`]), so that a client that takes the lock straight
/// back, as in the article's counter loop, does not wake the others for
/// nothing each time (each such wake-up took the CPU the running pair
/// needed, and the loop fell to a fifth of its speed). The lock is not
/// fair, as Python's is not, but bounded: once a waiter has waited
/// [`STARVING`], the next release hands the lock to the longest waiter.
#[derive(Debug)]
pub(crate) struct LockObj {
    recursive: bool,
    state: Mutex<LockState>,
    cv: Condvar,
}

/// How long a waiter may wait while others take the lock back before
/// the lock is handed to it: the bound of the lock's unfairness. Each
/// hand-over costs the new owner's wake-up, so not much less.
const STARVING: Duration = Duration::from_millis(20);

/// How long a hand-over waits for its waiter's client to come and take
/// the lock: past it the waiter is taken to be gone, and anyone may.
const HANDED_FOR: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct LockState {
    owner: Option<(ConnId, u64)>,
    /// Connections waiting, oldest first, with when they began.
    waiters: VecDeque<(ConnId, Instant)>,
    /// A release left the waiters asleep (see [`LockObj`]).
    wake_pending: bool,
    /// Kept for this waiter, since then (see [`STARVING`]).
    handed: Option<(ConnId, Instant)>,
}

impl LockState {
    /// Whether `conn` may take the free lock now.
    fn may_take(&self, conn: ConnId) -> bool {
        self.owner.is_none()
            && match self.handed {
                Some((to, since)) => to == conn || since.elapsed() >= HANDED_FOR,
                None => true,
            }
    }

    fn take(&mut self, conn: ConnId) {
        self.owner = Some((conn, 1));
        self.wake_pending = false;
        self.handed = None;
    }
}

impl LockObj {
    fn new(recursive: bool) -> LockObj {
        LockObj {
            recursive,
            state: Mutex::new(LockState::default()),
            cv: Condvar::new(),
        }
    }

    /// Waits as a waiter until `conn` may take the lock, or `deadline`, or
    /// its client is gone. A gone waiter the lock was handed to gives the
    /// hand-over up, so that the others need not wait for it.
    fn wait_turn<'a>(
        &self,
        g: MutexGuard<'a, LockState>,
        conn: ConnId,
        deadline: Option<Instant>,
        alive: Alive<'_>,
        consume: bool,
    ) -> (MutexGuard<'a, LockState>, Waited) {
        let mut g = g;
        g.waiters.push_back((conn, Instant::now()));
        let (mut g, waited) =
            wait_until(&self.cv, g, deadline, alive, consume, |s| s.may_take(conn));
        if let Some(at) = g.waiters.iter().position(|&(c, _)| c == conn) {
            g.waiters.remove(at);
        }
        if waited == Waited::Gone && g.handed.is_some_and(|(to, _)| to == conn) {
            g.handed = None;
            self.cv.notify_all();
        }
        (g, waited)
    }

    fn acquire(
        &self,
        conn: ConnId,
        blocking: bool,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        let mut g = lock(&self.state);
        if let Some((owner, count)) = g.owner.as_mut() {
            if self.recursive && *owner == conn {
                *count = count
                    .checked_add(1)
                    .ok_or_else(|| Failure::Overflow("rlock acquired too many times".into()))?;
                return Ok(true);
            }
        }
        if g.may_take(conn) {
            g.take(conn);
            return Ok(true);
        }
        if !blocking {
            return Ok(false);
        }
        let (mut g, waited) = self.wait_turn(g, conn, deadline, alive, true);
        match waited {
            Waited::Ready => {
                g.take(conn);
                Ok(true)
            }
            Waited::Timeout => Ok(false),
            Waited::Gone => Err(Failure::PeerGone),
        }
    }

    /// Waits until `conn` may take the lock (true) or `deadline` passes
    /// (false), without taking it.
    fn await_free(
        &self,
        conn: ConnId,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        match self
            .wait_turn(lock(&self.state), conn, deadline, alive, false)
            .1
        {
            Waited::Ready => Ok(true),
            Waited::Timeout => Ok(false),
            Waited::Gone => Err(Failure::PeerGone),
        }
    }

    fn owned_by(&self, conn: ConnId) -> bool {
        matches!(lock(&self.state).owner, Some((o, _)) if o == conn)
    }

    /// Releases; true when waking the waiters is left to [`Self::settle`].
    fn release(&self, conn: ConnId) -> Result<bool, Failure> {
        let mut g = lock(&self.state);
        match g.owner.as_mut() {
            None => return Err(Failure::Misuse("release unlocked lock".into())),
            // A plain lock may be released by anyone, as in Python.
            Some((owner, count)) if self.recursive => {
                if *owner != conn {
                    return Err(Failure::Misuse("cannot release un-acquired lock".into()));
                }
                *count -= 1;
                if *count > 0 {
                    return Ok(false);
                }
            }
            Some(_) => {}
        }
        g.owner = None;
        let Some(&(oldest, since)) = g.waiters.front() else {
            return Ok(false);
        };
        if since.elapsed() >= STARVING {
            g.handed = Some((oldest, Instant::now()));
            drop(g);
            self.cv.notify_all();
            return Ok(false);
        }
        g.wake_pending = true;
        Ok(true)
    }

    /// Wakes the waiters if a release left them asleep and the lock is
    /// still free. All of them: the one told "free" leaves the taking to
    /// its client, which may lose the race or be gone.
    fn settle(&self) {
        let mut g = lock(&self.state);
        if std::mem::take(&mut g.wake_pending) && g.owner.is_none() {
            drop(g);
            self.cv.notify_all();
        }
    }

    /// Releases the lock fully if `conn` owns it; returns the recursion
    /// count it had.
    fn release_all(&self, conn: ConnId) -> u64 {
        let mut g = lock(&self.state);
        match g.owner {
            Some((owner, count)) if owner == conn => {
                g.owner = None;
                g.wake_pending = false;
                drop(g);
                self.cv.notify_all();
                count
            }
            _ => 0,
        }
    }

    /// Takes the lock back for a condition's waiter with its recursion
    /// count; false (and the lock not taken) if its client is gone.
    fn restore(&self, conn: ConnId, count: u64, alive: Alive<'_>) -> bool {
        let g = lock(&self.state);
        let (mut g, waited) = if g.may_take(conn) {
            (g, Waited::Ready)
        } else {
            self.wait_turn(g, conn, None, alive, true)
        };
        if waited != Waited::Ready {
            return false;
        }
        g.take(conn);
        if let Some((_, c)) = g.owner.as_mut() {
            *c = count.max(1);
        }
        true
    }
}

/// A condition variable over a lock, with Python's notify order (first
/// come, first notified).
#[derive(Debug)]
pub(crate) struct CondObj {
    lock: Arc<Object>,
    state: Mutex<CondState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct CondState {
    next: u64,
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
}

impl CondObj {
    fn new(lock: Arc<Object>) -> CondObj {
        CondObj {
            lock,
            state: Mutex::new(CondState::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> &LockObj {
        match &*self.lock {
            Object::Lock(l) => l,
            _ => unreachable!("checked at creation"),
        }
    }

    /// Python's `wait`. A waiter whose client is gone leaves the queue;
    /// a notification it was given goes to the next waiter.
    fn wait(
        &self,
        conn: ConnId,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        if !self.lock().owned_by(conn) {
            return Err(Failure::Misuse("cannot wait on un-acquired lock".into()));
        }
        let token = {
            let mut s = lock(&self.state);
            s.next = s
                .next
                .checked_add(1)
                .ok_or_else(|| Failure::Overflow("condition waits".into()))?;
            let t = s.next;
            s.waiting.push_back(t);
            t
        };
        let count = self.lock().release_all(conn);
        let (mut s, waited) = wait_until(&self.cv, lock(&self.state), deadline, alive, true, |s| {
            s.notified.contains(&token)
        });
        let notified = s.notified.remove(&token);
        if !notified {
            s.waiting.retain(|&t| t != token);
        }
        if waited == Waited::Gone {
            if notified {
                if let Some(next) = s.waiting.pop_front() {
                    s.notified.insert(next);
                    drop(s);
                    self.cv.notify_all();
                }
            }
            return Err(Failure::PeerGone);
        }
        drop(s);
        if !self.lock().restore(conn, count, alive) {
            return Err(Failure::PeerGone);
        }
        Ok(notified)
    }

    fn notify(&self, conn: ConnId, n: u64) -> Result<(), Failure> {
        if !self.lock().owned_by(conn) {
            return Err(Failure::Misuse("cannot notify on un-acquired lock".into()));
        }
        let mut s = lock(&self.state);
        let mut n = n;
        while n > 0 {
            let Some(t) = s.waiting.pop_front() else {
                break;
            };
            s.notified.insert(t);
            n -= 1;
        }
        drop(s);
        self.cv.notify_all();
        Ok(())
    }
}

/// A counting semaphore, bounded or not.
#[derive(Debug)]
pub(crate) struct SemObj {
    value: Mutex<u64>,
    bound: Option<u64>,
    cv: Condvar,
}

impl SemObj {
    fn new(value: u64, bound: Option<u64>) -> SemObj {
        SemObj {
            value: Mutex::new(value),
            bound,
            cv: Condvar::new(),
        }
    }

    /// Takes a unit, waiting for one with `blocking`; a unit is taken
    /// only for a client that is there.
    fn acquire(
        &self,
        blocking: bool,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<bool, Failure> {
        let g = lock(&self.value);
        if *g == 0 && !blocking {
            return Ok(false);
        }
        let (mut g, waited) = wait_until(&self.cv, g, deadline, alive, true, |v| *v > 0);
        match waited {
            Waited::Ready => {
                *g -= 1;
                Ok(true)
            }
            Waited::Timeout => Ok(false),
            Waited::Gone => {
                // Another waiter may have been passed over for us.
                drop(g);
                self.cv.notify_one();
                Err(Failure::PeerGone)
            }
        }
    }

    fn release(&self) -> Result<(), Failure> {
        let mut g = lock(&self.value);
        if self.bound.is_some_and(|b| *g >= b) {
            return Err(Failure::Misuse("semaphore released too many times".into()));
        }
        *g = g
            .checked_add(1)
            .ok_or_else(|| Failure::Overflow("semaphore value at its largest".into()))?;
        drop(g);
        self.cv.notify_one();
        Ok(())
    }

    /// Returns a unit an undeliverable `acquire` had taken.
    fn give_back(&self) {
        let mut g = lock(&self.value);
        *g = g.saturating_add(1);
        drop(g);
        self.cv.notify_one();
    }
}

/// Python's `threading.Barrier` without an action (no code crosses the
/// wire).
#[derive(Debug)]
pub(crate) struct BarrierObj {
    parties: u64,
    state: Mutex<BarrierState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct BarrierState {
    count: u64,
    generation: u64,
    broken: bool,
}

impl BarrierObj {
    fn new(parties: u64) -> BarrierObj {
        BarrierObj {
            parties,
            state: Mutex::new(BarrierState::default()),
            cv: Condvar::new(),
        }
    }

    /// Waits for all parties; a party whose client is gone leaves the
    /// barrier as if it had never come.
    fn wait(&self, deadline: Option<Instant>, alive: Alive<'_>) -> Result<u64, Failure> {
        let mut g = lock(&self.state);
        if g.broken {
            return Err(Failure::BrokenBarrier);
        }
        let index = g.count;
        g.count += 1;
        if g.count == self.parties {
            g.count = 0;
            g.generation += 1;
            drop(g);
            self.cv.notify_all();
            return Ok(index);
        }
        let generation = g.generation;
        let (mut g, waited) = wait_until(&self.cv, g, deadline, alive, false, |s| {
            s.generation != generation || s.broken
        });
        if g.generation != generation {
            return Ok(index);
        }
        if waited == Waited::Gone {
            if !g.broken {
                g.count = g.count.saturating_sub(1);
            }
            return Err(Failure::PeerGone);
        }
        if waited == Waited::Timeout {
            // A timeout breaks the barrier for everyone, as in Python.
            g.broken = true;
            g.count = g.count.saturating_sub(1);
            drop(g);
            self.cv.notify_all();
        }
        Err(Failure::BrokenBarrier)
    }

    fn abort(&self) {
        lock(&self.state).broken = true;
        self.cv.notify_all();
    }

    fn reset(&self) {
        let mut g = lock(&self.state);
        if g.count > 0 {
            // Waiters see the barrier broken; later ones find it fresh.
            g.broken = true;
            drop(g);
            self.cv.notify_all();
            g = lock(&self.state);
        }
        g.count = 0;
        g.generation += 1;
        g.broken = false;
    }
}

/// A FIFO queue with an optional bound and a count of unfinished tasks.
#[derive(Debug)]
pub(crate) struct QueueObj {
    state: Mutex<QueueState>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
}

#[derive(Debug)]
struct QueueState {
    items: VecDeque<Vec<u8>>,
    maxsize: u64,
    unfinished: u64,
}

impl QueueObj {
    fn new(maxsize: u64) -> QueueObj {
        QueueObj {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                maxsize,
                unfinished: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
        }
    }

    /// Adds an item, waiting for room with `blocking`; for a client found
    /// gone while it waited, nothing is added.
    fn put(
        &self,
        item: Vec<u8>,
        blocking: bool,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<(), Failure> {
        let g = lock(&self.state);
        let full = |s: &mut QueueState| s.maxsize > 0 && s.items.len() as u64 >= s.maxsize;
        let mut g = g;
        if full(&mut g) {
            if !blocking {
                return Err(Failure::Full);
            }
            let (g2, waited) = wait_until(&self.not_full, g, deadline, alive, true, |s| !full(s));
            match waited {
                Waited::Ready => {}
                Waited::Timeout => return Err(Failure::Full),
                Waited::Gone => {
                    drop(g2);
                    self.not_full.notify_one();
                    return Err(Failure::PeerGone);
                }
            }
            g = g2;
        }
        g.unfinished = g
            .unfinished
            .checked_add(1)
            .ok_or_else(|| Failure::Overflow("unfinished tasks of a queue".into()))?;
        g.items.push_back(item);
        drop(g);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Takes the oldest item, waiting for one with `blocking`; an item is
    /// taken only for a client that is there.
    fn take(
        &self,
        blocking: bool,
        deadline: Option<Instant>,
        alive: Alive<'_>,
    ) -> Result<Vec<u8>, Failure> {
        let mut g = lock(&self.state);
        if g.items.is_empty() {
            if !blocking {
                return Err(Failure::Empty);
            }
            let (g2, waited) = wait_until(&self.not_empty, g, deadline, alive, true, |s| {
                !s.items.is_empty()
            });
            match waited {
                Waited::Ready => {}
                Waited::Timeout => return Err(Failure::Empty),
                Waited::Gone => {
                    // The item that woke us is for the next waiter.
                    drop(g2);
                    self.not_empty.notify_one();
                    return Err(Failure::PeerGone);
                }
            }
            g = g2;
        }
        let Some(item) = g.items.pop_front() else {
            return Err(Failure::Empty);
        };
        drop(g);
        self.not_full.notify_one();
        Ok(item)
    }

    /// Puts back, at the front, an item whose `get` reply could not be
    /// delivered.
    fn unget(&self, item: Vec<u8>) {
        lock(&self.state).items.push_front(item);
        self.not_empty.notify_one();
    }

    fn task_done(&self) -> Result<(), Failure> {
        let mut g = lock(&self.state);
        if g.unfinished == 0 {
            return Err(Failure::Misuse("task_done() called too many times".into()));
        }
        g.unfinished -= 1;
        if g.unfinished == 0 {
            self.all_done.notify_all();
        }
        Ok(())
    }
}

/// A map that keeps insertion order, as Python's dict does.
#[derive(Debug)]
pub(crate) struct OrderedMap<K> {
    entries: Vec<Option<(K, Vec<u8>)>>,
    index: HashMap<K, usize>,
    live: usize,
}

impl<K> Default for OrderedMap<K> {
    fn default() -> Self {
        OrderedMap {
            entries: Vec::new(),
            index: HashMap::new(),
            live: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> OrderedMap<K> {
    fn get(&self, k: &K) -> Option<&Vec<u8>> {
        self.index
            .get(k)
            .and_then(|&i| self.entries[i].as_ref())
            .map(|(_, v)| v)
    }

    fn insert(&mut self, k: K, v: Vec<u8>) -> Option<Vec<u8>> {
        if let Some(&i) = self.index.get(&k) {
            let slot = self.entries[i].as_mut().expect("indexed entries are live");
            return Some(std::mem::replace(&mut slot.1, v));
        }
        self.index.insert(k.clone(), self.entries.len());
        self.entries.push(Some((k, v)));
        self.live += 1;
        None
    }

    fn remove(&mut self, k: &K) -> Option<Vec<u8>> {
        let i = self.index.remove(k)?;
        let (_, v) = self.entries[i].take()?;
        self.live -= 1;
        // Compact once holes outnumber entries, keeping removal amortised O(1).
        if self.entries.len() > 32 && self.live * 2 < self.entries.len() {
            self.entries.retain(Option::is_some);
            for (j, e) in self.entries.iter().enumerate() {
                let (key, _) = e.as_ref().expect("retained");
                self.index.insert(key.clone(), j);
            }
        }
        Some(v)
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &Vec<u8>)> {
        self.entries.iter().flatten().map(|(k, v)| (k, v))
    }

    /// Removes the entry inserted last (Python's `popitem`).
    fn pop_last(&mut self) -> Option<(K, Vec<u8>)> {
        while let Some(None) = self.entries.last() {
            self.entries.pop();
        }
        let (k, v) = self.entries.pop()??;
        self.index.remove(&k);
        self.live -= 1;
        Some((k, v))
    }

    fn clear(&mut self) {
        *self = OrderedMap {
            entries: Vec::new(),
            index: HashMap::new(),
            live: 0,
        };
    }
}

fn dict_op(d: &mut OrderedMap<Vec<u8>>, op: Op) -> Option<Response> {
    Some(match op {
        Op::DictGet(k) => Response::MaybeBytes(d.get(&k).cloned()),
        Op::DictInsert(k, v) => Response::MaybeBytes(d.insert(k, v)),
        Op::DictContains(k) => Response::Bool(d.get(&k).is_some()),
        Op::DictRemove(k) => Response::MaybeBytes(d.remove(&k)),
        Op::DictLen => Response::Count(d.live as u64),
        Op::DictItems => Response::Pairs(d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Op::DictUpdate(pairs) => {
            for (k, v) in pairs {
                d.insert(k, v);
            }
            Response::Done
        }
        Op::DictSetDefault(k, v) => match d.get(&k) {
            Some(cur) => Response::Bytes(cur.clone()),
            None => {
                d.insert(k, v.clone());
                Response::Bytes(v)
            }
        },
        Op::DictClear => {
            d.clear();
            Response::Done
        }
        Op::DictPopItem => Response::Pairs(d.pop_last().into_iter().collect()),
        _ => return None,
    })
}

/// Python's index rules: negative counts from the end.
fn index(len: usize, i: i64) -> Result<usize, Failure> {
    let j = if i < 0 { len as i64 + i } else { i };
    if j < 0 || j as usize >= len {
        return Err(Failure::NotFound(format!(
            "list index {i} out of range for length {len}"
        )));
    }
    Ok(j as usize)
}

fn list_op(l: &mut Vec<Vec<u8>>, op: Op) -> Option<Result<Response, Failure>> {
    Some(match op {
        Op::ListPush(v) => {
            l.push(v);
            Ok(Response::Done)
        }
        Op::ListPop(None) => l
            .pop()
            .map(Response::Bytes)
            .ok_or_else(|| Failure::NotFound("pop from empty list".into())),
        Op::ListPop(Some(i)) => index(l.len(), i).map(|j| Response::Bytes(l.remove(j))),
        Op::ListInsert(i, v) => {
            // Python clamps insert positions instead of failing.
            let len = l.len() as i64;
            let j = if i < 0 { (len + i).max(0) } else { i.min(len) };
            l.insert(j as usize, v);
            Ok(Response::Done)
        }
        Op::ListGet(i) => index(l.len(), i).map(|j| Response::Bytes(l[j].clone())),
        Op::ListSet(i, v) => index(l.len(), i).map(|j| {
            l[j] = v;
            Response::Done
        }),
        Op::ListLen => Ok(Response::Count(l.len() as u64)),
        Op::ListExtend(vs) => {
            l.extend(vs);
            Ok(Response::Done)
        }
        Op::ListSnapshot => Ok(Response::Items(l.clone())),
        Op::ListClear => {
            l.clear();
            Ok(Response::Done)
        }
        Op::ListSlice(start, end) => {
            // Python clamps slice bounds instead of failing.
            let len = l.len() as i64;
            let clamp = |i: i64| (if i < 0 { len + i } else { i }).clamp(0, len) as usize;
            let (s, e) = (clamp(start), clamp(end));
            Ok(Response::Items(if s < e {
                l[s..e].to_vec()
            } else {
                Vec::new()
            }))
        }
        Op::ListCount(v) => Ok(Response::Count(l.iter().filter(|x| **x == v).count() as u64)),
        Op::ListIndex(v) => l
            .iter()
            .position(|x| *x == v)
            .map(|i| Response::Count(i as u64))
            .ok_or_else(|| Failure::NotFound("item is not in list".into())),
        Op::ListRemove(v) => match l.iter().position(|x| *x == v) {
            Some(i) => {
                l.remove(i);
                Ok(Response::Done)
            }
            None => Err(Failure::NotFound("list.remove(x): x not in list".into())),
        },
        Op::ListReverse => {
            l.reverse();
            Ok(Response::Done)
        }
        _ => return None,
    })
}

fn namespace_op(ns: &mut OrderedMap<String>, op: Op) -> Option<Result<Response, Failure>> {
    Some(match op {
        Op::AttrGet(name) => ns.get(&name).cloned().map(Response::Bytes).ok_or_else(|| {
            Failure::NotFound(format!("'Namespace' object has no attribute '{name}'"))
        }),
        Op::AttrSet(name, v) => {
            ns.insert(name, v);
            Ok(Response::Done)
        }
        Op::AttrDel(name) => ns.remove(&name).map(|_| Response::Done).ok_or_else(|| {
            Failure::NotFound(format!("'Namespace' object has no attribute '{name}'"))
        }),
        Op::AttrSnapshot => Ok(Response::Attrs(
            ns.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )),
        _ => return None,
    })
}

/// Adds `delta` to the value stored as `kind`; returns (old, new) bytes.
fn add(kind: NumKind, stored: &[u8], delta: Num) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    fn bad(e: impl std::fmt::Display) -> Failure {
        Failure::BadValue(format!("the value does not hold that number type: {e}"))
    }
    macro_rules! int {
        ($t:ty) => {{
            let cur: $t = postcard::from_bytes(stored).map_err(bad)?;
            let Num::Int(d) = delta else {
                return Err(bad("a float delta for an integer value"));
            };
            // Wrapping, like the atomics of std.
            let new = (cur as i128).wrapping_add(d) as $t;
            (
                postcard::to_stdvec(&cur).map_err(bad)?,
                postcard::to_stdvec(&new).map_err(bad)?,
            )
        }};
    }
    macro_rules! float {
        ($t:ty) => {{
            let cur: $t = postcard::from_bytes(stored).map_err(bad)?;
            let d = match delta {
                Num::Float(f) => f,
                Num::Int(i) => i as f64,
            };
            let new = (cur as f64 + d) as $t;
            (
                postcard::to_stdvec(&cur).map_err(bad)?,
                postcard::to_stdvec(&new).map_err(bad)?,
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
