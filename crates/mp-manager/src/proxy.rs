//! Proxies: typed handles to the objects a server holds.
//!
//! A proxy is an endpoint and an object id. Cloning it is cheap; it
//! serializes (for a child process or a pool task) as the endpoint, key
//! included, and the id, and works there through that process's own
//! connection.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::{Endpoint, Remote, call_timeout};
use crate::error::Error;
use crate::protocol::{Micros, Num, NumKind, Op, Request, Response};

/// Encodes a value the way the server stores it; a failure names the type.
/// Debug builds refuse here a value that postcard cannot decode, before the
/// server stores it for a reader that could not read it (`check_sent`).
pub(crate) fn encode<T: Serialize + DeserializeOwned>(v: &T) -> Result<Vec<u8>, Error> {
    let bytes = mp_process::codec::encode(v).map_err(Error::Codec)?;
    mp_process::codec::check_sent::<T>(&bytes).map_err(Error::Codec)?;
    Ok(bytes)
}

/// [`encode`] of a value whose reader picks its own type (a namespace's
/// attributes, a registered value): nothing to check against at the sender.
pub(crate) fn encode_untyped<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
    mp_process::codec::encode(v).map_err(Error::Codec)
}

/// Decodes the server's bytes; a failure names the type and keeps them.
fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, Error> {
    mp_process::codec::decode(b).map_err(Error::Codec)
}

fn micros(d: Option<Duration>) -> Micros {
    d.map(|d| d.as_micros().min(u64::MAX as u128) as u64)
}

/// How long to wait for the reply to an operation that waits up to `t`
/// on the server: `t` plus a margin, or as long as the server lives.
fn reply_wait(t: Option<Duration>) -> Option<Duration> {
    t.map(|t| t + Duration::from_secs(10))
}

/// A server and an object id: what every proxy is. Counted in its
/// process's [`Remote`], which holds the process's reference to the object
/// on the server while any proxy of it lives.
pub(crate) struct Handle {
    remote: Arc<Remote>,
    id: u64,
}

/// How a handle travels: the endpoint (address and key) and the id.
#[derive(Serialize)]
struct HandleRef<'a> {
    ep: &'a Endpoint,
    id: u64,
}

#[derive(Deserialize)]
struct HandleRepr {
    ep: Endpoint,
    id: u64,
}

impl Serialize for Handle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HandleRef {
            ep: self.remote.endpoint(),
            id: self.id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Handle {
    /// A proxy arriving in a process: that process's session takes a
    /// reference to the object if it has none yet.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let HandleRepr { ep, id } = HandleRepr::deserialize(d)?;
        let remote = Remote::of(&ep);
        remote.incref(id);
        Ok(Handle { remote, id })
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        // In a forked child, the clone is counted in the child's own
        // session.
        let remote = self.remote.current();
        remote.incref(self.id);
        Handle {
            remote,
            id: self.id,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.remote.decref(self.id);
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.remote.endpoint() == other.remote.endpoint()
    }
}

impl Eq for Handle {}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} at {}", self.id, self.remote.endpoint().address())
    }
}

impl Handle {
    /// The handle of an object whose reference `remote` just took and
    /// counted ([`Remote::take_ref`]).
    pub(crate) fn counted(remote: Arc<Remote>, id: u64) -> Handle {
        Handle { remote, id }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Runs `op`, which waits at most `wait` on the server (`Some(ZERO)`
    /// for operations that never wait).
    fn op(&self, op: Op, wait: Option<Duration>) -> Result<Response, Error> {
        let resp = self.remote.call(&Request::Op(self.id, op), wait)?;
        match resp {
            Response::Failed(f) => Err(Error::from_failure(f)),
            r => Ok(r),
        }
    }

    /// An operation that does not wait on the server.
    fn quick(&self, op: Op) -> Result<Response, Error> {
        self.op(op, Some(call_timeout()))
    }
}

fn unexpected(r: Response) -> Error {
    Error::Protocol(format!("unexpected reply {r:?}"))
}

fn done(r: Response) -> Result<(), Error> {
    match r {
        Response::Done => Ok(()),
        r => Err(unexpected(r)),
    }
}

fn boolean(r: Response) -> Result<bool, Error> {
    match r {
        Response::Bool(b) => Ok(b),
        r => Err(unexpected(r)),
    }
}

fn count(r: Response) -> Result<usize, Error> {
    match r {
        Response::Count(n) => Ok(n as usize),
        r => Err(unexpected(r)),
    }
}

fn bytes<T: DeserializeOwned>(r: Response) -> Result<T, Error> {
    match r {
        Response::Bytes(b) => decode(&b),
        r => Err(unexpected(r)),
    }
}

fn maybe<T: DeserializeOwned>(r: Response) -> Result<Option<T>, Error> {
    match r {
        Response::MaybeBytes(Some(b)) => decode(&b).map(Some),
        Response::MaybeBytes(None) => Ok(None),
        r => Err(unexpected(r)),
    }
}

macro_rules! proxy_common {
    ($name:ident $(<$($g:ident),*>)?) => {
        impl$(<$($g),*>)? Clone for $name$(<$($g),*>)? {
            fn clone(&self) -> Self {
                $name { h: self.h.clone(), $( _t: PhantomData::<fn() -> ($($g,)*)>, )? }
            }
        }

        impl$(<$($g),*>)? fmt::Debug for $name$(<$($g),*>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.h)
            }
        }

        impl$(<$($g),*>)? Serialize for $name$(<$($g),*>)? {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.h.serialize(s)
            }
        }

        impl<'de $($(, $g)*)?> Deserialize<'de> for $name$(<$($g),*>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name { h: Handle::deserialize(d)?, $( _t: PhantomData::<fn() -> ($($g,)*)>, )? })
            }
        }

        impl$(<$($g),*>)? PartialEq for $name$(<$($g),*>)? {
            /// Two proxies are equal when they refer to the same object.
            fn eq(&self, other: &Self) -> bool {
                self.h == other.h
            }
        }
    };
}

/// A shared value: Python's `manager.Value`.
pub struct ValueProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> (T,)>,
}
proxy_common!(ValueProxy<T>);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    pub(crate) fn from_handle(h: Handle) -> Self {
        ValueProxy { h, _t: PhantomData }
    }

    /// The value now.
    pub fn get(&self) -> Result<T, Error> {
        bytes(self.h.quick(Op::Get)?)
    }

    /// Replaces the value.
    ///
    /// Returns once the server has stored it, so that whatever this thread
    /// does next (a message to another thread, its process's exit) comes
    /// after the new value is visible to every client.
    pub fn set(&self, value: &T) -> Result<(), Error> {
        done(self.h.quick(Op::Set(encode(value)?))?)
    }

    /// Replaces the value with `new` if it equals `current` (compared as
    /// encoded bytes); returns the previous value, or the value found.
    pub fn compare_exchange(&self, current: &T, new: &T) -> Result<Result<T, T>, Error> {
        match self
            .h
            .quick(Op::CompareExchange(encode(current)?, encode(new)?))?
        {
            Response::Exchanged(true, old) => Ok(Ok(decode(&old)?)),
            Response::Exchanged(false, found) => Ok(Err(decode(&found)?)),
            r => Err(unexpected(r)),
        }
    }
}

/// The numbers a [`ValueProxy`] can add to on the server, in one round
/// trip and atomically.
pub trait Number: Serialize + DeserializeOwned + Copy + sealed::Sealed {
    #[doc(hidden)]
    fn kind() -> NumKindPublic;
    #[doc(hidden)]
    fn to_num(self) -> NumPublic;
}

mod sealed {
    pub trait Sealed {}
}

#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct NumKindPublic(NumKind);

#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct NumPublic(Num);

macro_rules! number {
    ($($t:ty => $k:ident, $conv:ident;)*) => {$(
        impl sealed::Sealed for $t {}
        impl Number for $t {
            fn kind() -> NumKindPublic {
                NumKindPublic(NumKind::$k)
            }
            fn to_num(self) -> NumPublic {
                NumPublic(number!(@$conv self))
            }
        }
    )*};
    (@int $v:expr) => { Num::Int($v as i128) };
    (@float $v:expr) => { Num::Float($v as f64) };
}

number! {
    i8 => I8, int; i16 => I16, int; i32 => I32, int; i64 => I64, int;
    u8 => U8, int; u16 => U16, int; u32 => U32, int; u64 => U64, int;
    f32 => F32, float; f64 => F64, float;
}

impl<T: Number> ValueProxy<T> {
    /// Adds `delta` on the server (wrapping for integers) and returns the
    /// previous value: a counter that needs no lock.
    pub fn fetch_add(&self, delta: T) -> Result<T, Error> {
        bytes(self.h.quick(Op::FetchAdd(T::kind().0, delta.to_num().0))?)
    }

    /// Subtracts `delta` on the server; returns the previous value.
    pub fn fetch_sub(&self, delta: T) -> Result<T, Error> {
        let d = match delta.to_num().0 {
            Num::Int(i) => Num::Int(-i),
            Num::Float(f) => Num::Float(-f),
        };
        bytes(self.h.quick(Op::FetchAdd(T::kind().0, d))?)
    }
}

/// A lock held on the server: Python's `manager.Lock()` (or `RLock()`).
///
/// Ownership is per connection, that is per thread of a client process.
/// A lock held by a client that disconnects or dies is released by the
/// server, so nobody waits for it forever.
pub struct LockProxy {
    h: Handle,
}
proxy_common!(LockProxy);

/// Holds a [`LockProxy`] (or a [`ConditionProxy`]'s lock) until dropped.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    h: &'a Handle,
    released: bool,
}

impl LockGuard<'_> {
    /// Releases now, reporting a failure (`drop` cannot).
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        done(self.h.quick(Op::Release)?)
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            // Waits for the reply, as `set` does: a process that drops a
            // guard and exits must leave the lock free for its joiner's
            // non-blocking acquire. A failure cannot be reported here; the
            // next call on this thread reports a lost connection anyway.
            let _ = self.h.quick(Op::Release);
        }
    }
}

fn acquire(h: &Handle, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
    let try_once = || {
        boolean(h.quick(Op::Acquire {
            blocking: false,
            timeout: None,
        })?)
    };
    if !blocking {
        return try_once();
    }
    // The server never takes the lock on behalf of a waiting client: it
    // says when the lock is free, and the client, running again, tries.
    // Otherwise the lock would be held by a process still asleep in its
    // wake-up while the others wait: on the article's counter that turned
    // every hand-over into two sleeps.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        if try_once()? {
            return Ok(true);
        }
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(false),
            },
        };
        if !boolean(h.op(Op::AwaitFree(micros(left)), reply_wait(left))?)? {
            return Ok(false);
        }
    }
}

impl LockProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        LockProxy { h }
    }

    /// Waits for the lock and returns a guard that releases it.
    pub fn lock(&self) -> Result<LockGuard<'_>, Error> {
        acquire(&self.h, true, None)?;
        Ok(LockGuard {
            h: &self.h,
            released: false,
        })
    }

    /// Like [`lock`](LockProxy::lock), giving up after `timeout`
    /// (`Ok(None)`).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>, Error> {
        Ok(acquire(&self.h, true, Some(timeout))?.then(|| LockGuard {
            h: &self.h,
            released: false,
        }))
    }

    /// Takes the lock if it is free (`Ok(None)` otherwise).
    pub fn try_lock(&self) -> Result<Option<LockGuard<'_>>, Error> {
        Ok(acquire(&self.h, false, None)?.then(|| LockGuard {
            h: &self.h,
            released: false,
        }))
    }

    /// Python's `acquire(blocking, timeout)`: whether the lock was taken.
    /// Pair it with [`release`](LockProxy::release).
    pub fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        acquire(&self.h, blocking, timeout)
    }

    /// Python's `release()`: an unlocked lock, or an rlock this thread
    /// does not own, is an [`Error::Misuse`].
    pub fn release(&self) -> Result<(), Error> {
        done(self.h.quick(Op::Release)?)
    }
}

/// A condition variable on the server: Python's `manager.Condition()`.
pub struct ConditionProxy {
    h: Handle,
}
proxy_common!(ConditionProxy);

impl ConditionProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        ConditionProxy { h }
    }

    /// Takes the condition's lock; the guard releases it.
    pub fn lock(&self) -> Result<LockGuard<'_>, Error> {
        acquire(&self.h, true, None)?;
        Ok(LockGuard {
            h: &self.h,
            released: false,
        })
    }

    /// Python's `acquire(blocking, timeout)`.
    pub fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        acquire(&self.h, blocking, timeout)
    }

    /// Python's `release()`.
    pub fn release(&self) -> Result<(), Error> {
        done(self.h.quick(Op::Release)?)
    }

    /// Releases the lock, waits for a notification (or the timeout), takes
    /// the lock again; whether it was notified. Calling it without holding
    /// the lock is an [`Error::Misuse`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        boolean(self.h.op(Op::Wait(micros(timeout)), reply_wait(timeout))?)
    }

    /// Waits until `predicate` holds or the timeout passes; the
    /// predicate's last value.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if predicate() {
                return Ok(true);
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => Some(l),
                    _ => return Ok(predicate()),
                },
            };
            self.wait(left)?;
        }
    }

    /// Wakes up to `n` waiters (needs the lock).
    pub fn notify(&self, n: usize) -> Result<(), Error> {
        done(self.h.quick(Op::Notify(n as u64))?)
    }

    /// Wakes every waiter (needs the lock).
    pub fn notify_all(&self) -> Result<(), Error> {
        done(self.h.quick(Op::NotifyAll)?)
    }
}

/// An event on the server: Python's `manager.Event()`.
pub struct EventProxy {
    h: Handle,
}
proxy_common!(EventProxy);

impl EventProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        EventProxy { h }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) -> Result<(), Error> {
        done(self.h.quick(Op::SetFlag)?)
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<(), Error> {
        done(self.h.quick(Op::ClearFlag)?)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool, Error> {
        boolean(self.h.quick(Op::IsSet)?)
    }

    /// Waits until the flag is set or `timeout` passes; whether it is set.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        boolean(
            self.h
                .op(Op::WaitFlag(micros(timeout)), reply_wait(timeout))?,
        )
    }
}

/// A semaphore on the server: Python's `manager.Semaphore(n)` and
/// `BoundedSemaphore(n)`.
pub struct SemaphoreProxy {
    h: Handle,
}
proxy_common!(SemaphoreProxy);

impl SemaphoreProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        SemaphoreProxy { h }
    }

    /// Python's `acquire(blocking, timeout)`: whether a unit was taken.
    pub fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        let wait = if blocking {
            reply_wait(timeout)
        } else {
            Some(call_timeout())
        };
        boolean(self.h.op(
            Op::SemAcquire {
                blocking,
                timeout: micros(timeout),
            },
            wait,
        )?)
    }

    /// Gives a unit back; over the bound of a bounded semaphore it is an
    /// [`Error::Misuse`].
    pub fn release(&self) -> Result<(), Error> {
        done(self.h.quick(Op::SemRelease)?)
    }

    /// The units available now.
    pub fn value(&self) -> Result<usize, Error> {
        count(self.h.quick(Op::SemValue)?)
    }
}

/// A barrier on the server: Python's `manager.Barrier(n)`, without an
/// action (no code crosses the wire).
pub struct BarrierProxy {
    h: Handle,
}
proxy_common!(BarrierProxy);

impl BarrierProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        BarrierProxy { h }
    }

    /// Waits for all parties; returns this party's arrival index. A timeout
    /// breaks the barrier ([`Error::BrokenBarrier`] for every waiter).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<usize, Error> {
        count(
            self.h
                .op(Op::BarrierWait(micros(timeout)), reply_wait(timeout))?,
        )
    }

    /// Breaks the barrier: waiters now and later get [`Error::BrokenBarrier`].
    pub fn abort(&self) -> Result<(), Error> {
        done(self.h.quick(Op::BarrierAbort)?)
    }

    /// Returns the barrier to its empty, unbroken state.
    pub fn reset(&self) -> Result<(), Error> {
        done(self.h.quick(Op::BarrierReset)?)
    }

    /// (parties, waiting now, broken).
    pub fn state(&self) -> Result<(usize, usize, bool), Error> {
        match self.h.quick(Op::BarrierState)? {
            Response::Barrier {
                parties,
                waiting,
                broken,
            } => Ok((parties as usize, waiting as usize, broken)),
            r => Err(unexpected(r)),
        }
    }
}

/// A FIFO queue on the server: Python's `manager.Queue()` and
/// `JoinableQueue()`. The one kind of queue a pool worker can use in
/// CPython; here it works everywhere.
pub struct QueueProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> (T,)>,
}
proxy_common!(QueueProxy<T>);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    pub(crate) fn from_handle(h: Handle) -> Self {
        QueueProxy { h, _t: PhantomData }
    }

    fn put_op(&self, item: &T, blocking: bool, timeout: Option<Duration>) -> Result<(), Error> {
        let wait = if blocking {
            reply_wait(timeout)
        } else {
            Some(call_timeout())
        };
        done(self.h.op(
            Op::Put {
                item: encode(item)?,
                blocking,
                timeout: micros(timeout),
            },
            wait,
        )?)
    }

    fn get_op(&self, blocking: bool, timeout: Option<Duration>) -> Result<T, Error> {
        let wait = if blocking {
            reply_wait(timeout)
        } else {
            Some(call_timeout())
        };
        bytes(self.h.op(
            Op::Take {
                blocking,
                timeout: micros(timeout),
            },
            wait,
        )?)
    }

    /// Adds an item, waiting for room in a bounded queue.
    pub fn put(&self, item: &T) -> Result<(), Error> {
        self.put_op(item, true, None)
    }

    /// Like [`put`](QueueProxy::put), giving up after `timeout` ([`Error::Full`]).
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), Error> {
        self.put_op(item, true, Some(timeout))
    }

    /// Adds an item if there is room ([`Error::Full`] otherwise).
    pub fn try_put(&self, item: &T) -> Result<(), Error> {
        self.put_op(item, false, None)
    }

    /// Takes the oldest item, waiting for one.
    pub fn get(&self) -> Result<T, Error> {
        self.get_op(true, None)
    }

    /// Like [`get`](QueueProxy::get), giving up after `timeout` ([`Error::Empty`]).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.get_op(true, Some(timeout))
    }

    /// Takes the oldest item if there is one ([`Error::Empty`] otherwise).
    pub fn try_get(&self) -> Result<T, Error> {
        self.get_op(false, None)
    }

    /// The number of items now.
    pub fn qsize(&self) -> Result<usize, Error> {
        count(self.h.quick(Op::QueueLen)?)
    }

    /// Whether the queue is empty now.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.qsize()? == 0)
    }

    /// Marks one item taken earlier as processed (joinable queues); one
    /// call too many is an [`Error::Misuse`].
    pub fn task_done(&self) -> Result<(), Error> {
        done(self.h.quick(Op::TaskDone)?)
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) -> Result<(), Error> {
        done(self.h.op(Op::JoinQueue(None), None)?)
    }

    /// Like [`join`](QueueProxy::join), giving up after `timeout` ([`Error::Timeout`]).
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Error> {
        done(self.h.op(
            Op::JoinQueue(micros(Some(timeout))),
            reply_wait(Some(timeout)),
        )?)
    }
}

/// A dict on the server: Python's `manager.dict()`, in insertion order.
/// Keys compare by their encoded bytes.
pub struct DictProxy<K, V> {
    h: Handle,
    _t: PhantomData<fn() -> (K, V)>,
}
proxy_common!(DictProxy<K, V>);

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    pub(crate) fn from_handle(h: Handle) -> Self {
        DictProxy { h, _t: PhantomData }
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        maybe(self.h.quick(Op::DictGet(encode(key)?))?)
    }

    /// Sets `key` to `value` (Python's `d[key] = value`), without
    /// sending the value it replaced back.
    pub fn set(&self, key: &K, value: &V) -> Result<(), Error> {
        match self.h.quick(Op::DictInsert(encode(key)?, encode(value)?))? {
            Response::MaybeBytes(_) => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
        maybe(
            self.h
                .quick(Op::DictInsert(encode(&key)?, encode(&value)?))?,
        )
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> Result<bool, Error> {
        boolean(self.h.quick(Op::DictContains(encode(key)?))?)
    }

    /// Removes `key`; returns its value (Python's `pop(key, None)`).
    pub fn remove(&self, key: &K) -> Result<Option<V>, Error> {
        maybe(self.h.quick(Op::DictRemove(encode(key)?))?)
    }

    /// Removes `key` and returns its value; a missing key is
    /// [`Error::NotFound`] (Python's `pop(key)` and its `KeyError`).
    pub fn pop(&self, key: &K) -> Result<V, Error> {
        self.remove(key)?
            .ok_or_else(|| Error::NotFound("key not in dict".into()))
    }

    /// The number of entries.
    pub fn len(&self) -> Result<usize, Error> {
        count(self.h.quick(Op::DictLen)?)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// A snapshot of the entries, in insertion order.
    pub fn items(&self) -> Result<Vec<(K, V)>, Error> {
        match self.h.quick(Op::DictItems)? {
            Response::Pairs(p) => p
                .iter()
                .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
                .collect(),
            r => Err(unexpected(r)),
        }
    }

    /// A snapshot of the keys, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>, Error> {
        match self.h.quick(Op::DictItems)? {
            Response::Pairs(p) => p.iter().map(|(k, _)| decode(k)).collect(),
            r => Err(unexpected(r)),
        }
    }

    /// A snapshot of the values, in insertion order.
    pub fn values(&self) -> Result<Vec<V>, Error> {
        match self.h.quick(Op::DictItems)? {
            Response::Pairs(p) => p.iter().map(|(_, v)| decode(v)).collect(),
            r => Err(unexpected(r)),
        }
    }

    /// Inserts every pair, in one round trip.
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), Error> {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| Ok((encode(&k)?, encode(&v)?)))
            .collect::<Result<_, Error>>()?;
        done(self.h.quick(Op::DictUpdate(pairs))?)
    }

    /// The value under `key`, inserting `default` first if absent.
    pub fn setdefault(&self, key: K, default: V) -> Result<V, Error> {
        bytes(
            self.h
                .quick(Op::DictSetDefault(encode(&key)?, encode(&default)?))?,
        )
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), Error> {
        done(self.h.quick(Op::DictClear)?)
    }

    /// Removes and returns the entry inserted last (Python's `popitem`);
    /// an empty dict is [`Error::NotFound`].
    pub fn popitem(&self) -> Result<(K, V), Error> {
        match self.h.quick(Op::DictPopItem)? {
            Response::Pairs(p) => match p.into_iter().next() {
                Some((k, v)) => Ok((decode(&k)?, decode(&v)?)),
                None => Err(Error::NotFound("popitem(): dictionary is empty".into())),
            },
            r => Err(unexpected(r)),
        }
    }
}

/// A list on the server: Python's `manager.list()`. Indexes may be
/// negative, counting from the end.
///
/// [`count`](ListProxy::count), [`index`](ListProxy::index) and
/// [`remove`](ListProxy::remove) compare items on the server by their
/// encoding: equal for values that are equal, except floats (`-0.0` and
/// `0.0` differ, a NaN equals itself) and maps whose iteration order is
/// not fixed.
pub struct ListProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> (T,)>,
}
proxy_common!(ListProxy<T>);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    pub(crate) fn from_handle(h: Handle) -> Self {
        ListProxy { h, _t: PhantomData }
    }

    /// Appends an item (Python's `append`).
    pub fn push(&self, item: &T) -> Result<(), Error> {
        done(self.h.quick(Op::ListPush(encode(item)?))?)
    }

    /// Removes and returns the last item; an empty list is [`Error::NotFound`].
    pub fn pop(&self) -> Result<T, Error> {
        bytes(self.h.quick(Op::ListPop(None))?)
    }

    /// Removes and returns the item at `index`.
    pub fn pop_at(&self, index: i64) -> Result<T, Error> {
        bytes(self.h.quick(Op::ListPop(Some(index)))?)
    }

    /// Inserts before `index` (clamped to the list, as in Python).
    pub fn insert(&self, index: i64, item: &T) -> Result<(), Error> {
        done(self.h.quick(Op::ListInsert(index, encode(item)?))?)
    }

    /// The item at `index`; out of range is [`Error::NotFound`].
    pub fn get(&self, index: i64) -> Result<T, Error> {
        bytes(self.h.quick(Op::ListGet(index))?)
    }

    /// Replaces the item at `index`.
    pub fn set(&self, index: i64, item: &T) -> Result<(), Error> {
        done(self.h.quick(Op::ListSet(index, encode(item)?))?)
    }

    /// The number of items.
    pub fn len(&self) -> Result<usize, Error> {
        count(self.h.quick(Op::ListLen)?)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Appends every item, in one round trip.
    pub fn extend<'a>(&self, items: impl IntoIterator<Item = &'a T>) -> Result<(), Error>
    where
        T: 'a,
    {
        let items = items.into_iter().map(encode).collect::<Result<_, _>>()?;
        done(self.h.quick(Op::ListExtend(items))?)
    }

    /// A copy of the whole list (Python's `l[:]`).
    pub fn snapshot(&self) -> Result<Vec<T>, Error> {
        match self.h.quick(Op::ListSnapshot)? {
            Response::Items(items) => items.iter().map(|b| decode(b)).collect(),
            r => Err(unexpected(r)),
        }
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<(), Error> {
        done(self.h.quick(Op::ListClear)?)
    }

    /// The items from `start` up to `end` (Python's `l[start:end]`:
    /// negative bounds count from the end, bounds past it are clamped).
    pub fn slice(&self, start: i64, end: i64) -> Result<Vec<T>, Error> {
        match self.h.quick(Op::ListSlice(start, end))? {
            Response::Items(items) => items.iter().map(|b| decode(b)).collect(),
            r => Err(unexpected(r)),
        }
    }

    /// How many items equal `item`.
    pub fn count(&self, item: &T) -> Result<usize, Error> {
        count(self.h.quick(Op::ListCount(encode(item)?))?)
    }

    /// Where the first item equal to `item` is; absent is
    /// [`Error::NotFound`] (Python's `ValueError`).
    pub fn index(&self, item: &T) -> Result<usize, Error> {
        count(self.h.quick(Op::ListIndex(encode(item)?))?)
    }

    /// Removes the first item equal to `item`; absent is
    /// [`Error::NotFound`].
    pub fn remove(&self, item: &T) -> Result<(), Error> {
        done(self.h.quick(Op::ListRemove(encode(item)?))?)
    }

    /// Reverses the list in place.
    pub fn reverse(&self) -> Result<(), Error> {
        done(self.h.quick(Op::ListReverse)?)
    }
}

/// A namespace on the server: Python's `manager.Namespace()`, attributes
/// by name, each of its own type.
pub struct NamespaceProxy {
    h: Handle,
}
proxy_common!(NamespaceProxy);

impl NamespaceProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        NamespaceProxy { h }
    }

    /// The attribute `name`; a missing one is [`Error::NotFound`].
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        bytes(self.h.quick(Op::AttrGet(name.to_owned()))?)
    }

    /// Sets the attribute `name`.
    pub fn set<T: Serialize>(&self, name: &str, value: &T) -> Result<(), Error> {
        done(
            self.h
                .quick(Op::AttrSet(name.to_owned(), encode_untyped(value)?))?,
        )
    }

    /// Deletes the attribute `name`; a missing one is [`Error::NotFound`].
    pub fn del(&self, name: &str) -> Result<(), Error> {
        done(self.h.quick(Op::AttrDel(name.to_owned()))?)
    }

    /// The attribute names, in the order they were first set.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        match self.h.quick(Op::AttrSnapshot)? {
            Response::Attrs(a) => Ok(a.into_iter().map(|(k, _)| k).collect()),
            r => Err(unexpected(r)),
        }
    }
}

/// The id of the lock behind a proxy, for a condition over it.
pub(crate) fn lock_id(lock: &LockProxy) -> u64 {
    lock.h.id()
}

/// The kind a proxy type stands for, to check what a name refers to.
pub(crate) fn kind_matches(found: &str, expected: &str) -> bool {
    found == expected
        || (expected == "semaphore" && found == "bounded semaphore")
        || (expected == "lock" && found == "rlock")
        || (expected == "queue" && found == "joinable queue")
}
