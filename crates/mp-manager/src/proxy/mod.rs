//! Proxies: typed handles to the objects a server holds.
//!
//! A proxy is an endpoint and an object id. Cloning it is cheap; it
//! serializes (for a child process or a pool task) as the endpoint, key
//! included, and the id, and works there through that process's own
//! connection.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

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

mod data;
mod sync;

pub use data::{DictProxy, ListProxy, NamespaceProxy, QueueProxy};
pub(crate) use sync::lock_id;
pub use sync::{BarrierProxy, ConditionProxy, EventProxy, LockGuard, LockProxy, SemaphoreProxy};

/// The kind a proxy type stands for, to check what a name refers to.
pub(crate) fn kind_matches(found: &str, expected: &str) -> bool {
    found == expected
        || (expected == "semaphore" && found == "bounded semaphore")
        || (expected == "lock" && found == "rlock")
        || (expected == "queue" && found == "joinable queue")
}
