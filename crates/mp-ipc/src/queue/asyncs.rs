//! The async forms of the queues' `get` and `put`: futures that never
//! block the thread that polls them, woken by mp's futex reactor
//! (`mp_process::reactor::FutexWaiter`) on the ring's bell.
//!
//! A waiting `get_async` counts itself in the ring's `sleepers` from its
//! first empty look to its end, exactly as a blocked `get` does while it
//! sleeps, so producers ring the bell (a `FUTEX_WAKE`) after their commits;
//! it reads the bell, looks at the ring once more, and registers the bell
//! with the value it read, so a commit between the look and the
//! registration wakes it at once.
//!
//! Cancellation: an item is taken from the ring only inside the poll that
//! returns it, so a dropped `get_async` leaves every item in the queue for
//! the next `get`. A `put_async` waits only for a slot of a bounded queue;
//! dropped while it waits, it has put nothing and taken no slot (the item
//! is dropped with the future).

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use mp_process::reactor::FutexWaiter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EncodeError, Handle, JoinableQueue, Queue, SimpleQueue, decode, encode};
use crate::error::{GetError, PutError};

/// Counted in the ring's `sleepers` while it lives.
struct Sleeping<'a>(&'a AtomicU64);

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handle {
    async fn get_async<T: DeserializeOwned>(&self) -> Result<T, GetError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(GetError::Closed);
        }
        if let Some(item) = self.core.take(|bytes| decode::<T>(bytes))? {
            return item;
        }
        let ring = &self.core.ring;
        let sleepers = ring.sleepers().map_err(GetError::Io)?;
        let bell = ring.bell().map_err(GetError::Io)?;
        // SeqCst pairs with the producer's store of `tail` and load of
        // `sleepers` (see `Core::wake_consumers`).
        sleepers.fetch_add(1, Ordering::SeqCst);
        let _sleeping = Sleeping(sleepers);
        let mut waiter = FutexWaiter::new();
        poll_fn(|cx| {
            loop {
                if self.closed.load(Ordering::Relaxed) {
                    return Poll::Ready(Err(GetError::Closed));
                }
                let rung = bell.load(Ordering::SeqCst);
                match self.core.take(|bytes| decode::<T>(bytes)) {
                    Err(e) => return Poll::Ready(Err(e)),
                    Ok(Some(item)) => return Poll::Ready(item),
                    Ok(None) => {}
                }
                match waiter.arm(bell, rung, false, cx.waker()) {
                    Ok(()) => return Poll::Pending,
                    // The reactor cannot start (out of threads or memory):
                    // a bounded sleep on the bell, never a hang or a spin.
                    Err(_) => {
                        mp_shm::futex_wait(bell, rung, Some(std::time::Duration::from_millis(1)));
                    }
                }
            }
        })
        .await
    }

    async fn put_async<T: Serialize + DeserializeOwned>(&self, item: T) -> Result<(), PutError<T>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PutError::Closed(item));
        }
        // Encoded first, as `put` does: an item that cannot be encoded
        // takes no slot.
        let msg = match encode(&item, self.core.inline_max) {
            Ok(m) => m,
            Err(EncodeError::Encode(s)) => return Err(PutError::Encode(item, s)),
            Err(EncodeError::Io(e)) => return Err(PutError::Io(item, e)),
        };
        if let Some(slots) = &self.core.slots {
            slots.acquire_async().await;
        }
        if let Some(u) = &self.core.unfinished {
            let _ = u.release();
        }
        // Never blocks: a full ring hands the item to the feeder thread.
        match self.commit_or_queue(msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.core.release_slot();
                if let Some(u) = &self.core.unfinished {
                    u.try_acquire();
                }
                Err(PutError::Io(item, e))
            }
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Takes the next item without blocking the thread: the async form of
    /// [`get`](Queue::get), for any executor (put it in a `select!` beside
    /// a timer for a timeout).
    ///
    /// Cancel-safe: an item is taken only in the poll that returns it, so a
    /// future dropped before it completes leaves every item in the queue.
    pub async fn get_async(&self) -> Result<T, GetError> {
        self.h.get_async().await
    }

    /// Puts an item without blocking the thread: the async form of
    /// [`put`](Queue::put). Only a bounded queue's put ever waits (for a
    /// slot); dropped while it waits, nothing was put and no slot taken.
    pub async fn put_async(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put_async(item).await
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// [`Queue::get_async`]; cancel-safe likewise.
    pub async fn get_async(&self) -> Result<T, GetError> {
        self.h.get_async().await
    }

    /// [`Queue::put_async`] (never waits: a simple queue is unbounded).
    pub async fn put_async(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put_async(item).await
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// [`Queue::get_async`]; cancel-safe likewise. Each item taken still
    /// needs its [`task_done`](JoinableQueue::task_done).
    pub async fn get_async(&self) -> Result<T, GetError> {
        self.h.get_async().await
    }

    /// [`Queue::put_async`]: the item counts as unfinished once put (not if
    /// the future is dropped while it waits for a slot).
    pub async fn put_async(&self, item: T) -> Result<(), PutError<T>> {
        self.h.put_async(item).await
    }
}
