//! The data proxies: queues, dicts, lists, namespaces.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

// The handle, the reply helpers and the protocol types: every proxy here
// is built on them.
use super::*;

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
