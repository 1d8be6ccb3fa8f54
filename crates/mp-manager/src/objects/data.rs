//! The data objects: queues, insertion-ordered dicts, lists, namespaces.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::{Alive, Waited, lock, wait_until};
use crate::protocol::{Failure, Op, Response};

/// A FIFO queue with an optional bound and a count of unfinished tasks.
#[derive(Debug)]
pub(crate) struct QueueObj {
    pub(super) state: Mutex<QueueState>,
    pub(super) not_empty: Condvar,
    pub(super) not_full: Condvar,
    pub(super) all_done: Condvar,
}

#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) items: VecDeque<Vec<u8>>,
    pub(super) maxsize: u64,
    pub(super) unfinished: u64,
}

impl QueueObj {
    pub(super) fn new(maxsize: u64) -> QueueObj {
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
    pub(super) fn put(
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
    pub(super) fn take(
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
    pub(super) fn unget(&self, item: Vec<u8>) {
        lock(&self.state).items.push_front(item);
        self.not_empty.notify_one();
    }

    pub(super) fn task_done(&self) -> Result<(), Failure> {
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
    pub(super) entries: Vec<Option<(K, Vec<u8>)>>,
    pub(super) index: HashMap<K, usize>,
    pub(super) live: usize,
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
    pub(super) fn get(&self, k: &K) -> Option<&Vec<u8>> {
        self.index
            .get(k)
            .and_then(|&i| self.entries[i].as_ref())
            .map(|(_, v)| v)
    }

    pub(super) fn insert(&mut self, k: K, v: Vec<u8>) -> Option<Vec<u8>> {
        if let Some(&i) = self.index.get(&k) {
            let slot = self.entries[i].as_mut().expect("indexed entries are live");
            return Some(std::mem::replace(&mut slot.1, v));
        }
        self.index.insert(k.clone(), self.entries.len());
        self.entries.push(Some((k, v)));
        self.live += 1;
        None
    }

    pub(super) fn remove(&mut self, k: &K) -> Option<Vec<u8>> {
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

    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &Vec<u8>)> {
        self.entries.iter().flatten().map(|(k, v)| (k, v))
    }

    /// Removes the entry inserted last (Python's `popitem`).
    pub(super) fn pop_last(&mut self) -> Option<(K, Vec<u8>)> {
        while let Some(None) = self.entries.last() {
            self.entries.pop();
        }
        let (k, v) = self.entries.pop()??;
        self.index.remove(&k);
        self.live -= 1;
        Some((k, v))
    }

    pub(super) fn clear(&mut self) {
        *self = OrderedMap {
            entries: Vec::new(),
            index: HashMap::new(),
            live: 0,
        };
    }
}

pub(super) fn dict_op(d: &mut OrderedMap<Vec<u8>>, op: Op) -> Option<Response> {
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
pub(super) fn index(len: usize, i: i64) -> Result<usize, Failure> {
    let j = if i < 0 { len as i64 + i } else { i };
    if j < 0 || j as usize >= len {
        return Err(Failure::NotFound(format!(
            "list index {i} out of range for length {len}"
        )));
    }
    Ok(j as usize)
}

pub(super) fn list_op(l: &mut Vec<Vec<u8>>, op: Op) -> Option<Result<Response, Failure>> {
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

pub(super) fn namespace_op(
    ns: &mut OrderedMap<String>,
    op: Op,
) -> Option<Result<Response, Failure>> {
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
