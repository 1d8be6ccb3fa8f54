//! The results of `imap` and `imap_unordered`: the sink that gathers a
//! call's chunks as they complete (`Stream`), and [`ImapIter`], which
//! yields them in order (or in completion order) as an `Iterator` for
//! blocking code, and [`ImapStream`], the same as a `futures_core::Stream`
//! for async code.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::result::{Blob, Sink, Waiters, lock, wait_until};

/// The chunks of an `imap` call as they complete.
pub(crate) struct Stream {
    state: Mutex<StreamState>,
    cv: Condvar,
    chunksize: usize,
    items: usize,
}

struct StreamState {
    waiters: usize,
    /// Completed chunks by index (ordered) ...
    by_index: BTreeMap<usize, Blob>,
    /// ... or in completion order (unordered).
    arrived: VecDeque<(usize, Blob)>,
    ordered: bool,
    done_items: usize,
    /// The task polling the iterator as a stream, when it found nothing
    /// ready. One slot: the iterator is not `Clone`, so one task at a time
    /// polls it.
    waker: Option<Waker>,
}

impl Waiters for StreamState {
    fn waiters(&mut self) -> &mut usize {
        &mut self.waiters
    }
}

impl StreamState {
    /// The chunk the iterator takes next, if it has arrived: chunk `next`
    /// (ordered), or the first to arrive (unordered).
    fn take(&mut self, next: usize) -> Option<(usize, Blob)> {
        if self.ordered {
            self.by_index.remove(&next).map(|b| (next, b))
        } else {
            self.arrived.pop_front()
        }
    }
}

impl Stream {
    pub(crate) fn new(ordered: bool, chunksize: usize, items: usize) -> Arc<Stream> {
        Arc::new(Stream {
            state: Mutex::new(StreamState {
                waiters: 0,
                by_index: BTreeMap::new(),
                arrived: VecDeque::new(),
                ordered,
                done_items: 0,
                waker: None,
            }),
            cv: Condvar::new(),
            chunksize,
            items,
        })
    }

    fn chunk_len(&self, index: usize) -> usize {
        let start = index * self.chunksize;
        self.chunksize.min(self.items.saturating_sub(start))
    }
}

impl Sink for Stream {
    fn complete(&self, index: usize, blob: Blob) {
        self.complete_many(vec![(index, blob)]);
    }

    /// One lock and at most one wake-up for a whole result batch: per
    /// chunk, the iterating thread was woken once per chunk of a batch
    /// (`imap(f, 0..100_000, chunksize=64)`: 1,563 chunks).
    fn complete_many(&self, done: Vec<(usize, Blob)>) {
        let mut st = lock(&self.state);
        for (index, blob) in done {
            st.done_items += self.chunk_len(index);
            if st.ordered {
                st.by_index.insert(index, blob);
            } else {
                st.arrived.push_back((index, blob));
            }
        }
        let wake = st.waiters > 0;
        // A task polling the stream is woken by whoever delivers (a
        // reader thread, a pool thread): no runtime needs to look.
        let waker = st.waker.take();
        drop(st);
        if wake {
            self.cv.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The iterator of `imap` and `imap_unordered`: each item is the result of
/// one input item, or its error. [`next_timeout`](ImapIter::next_timeout)
/// waits at most a given time.
///
/// The iterator does not borrow the pool. If the pool is terminated (or
/// dropped) first, the items not yet computed come out as
/// [`ErrorKind::Terminated`](crate::ErrorKind::Terminated) errors:
/// iteration never hangs.
///
/// In async code, [`into_stream`](ImapIter::into_stream) turns it into an
/// [`ImapStream`] of the same items.
pub struct ImapIter<R> {
    stream: Arc<Stream>,
    /// The rest of the chunk taken last: its results, or its error once
    /// per item. (Not a queue of `Result<R, Error>`: moving each item
    /// through one cost more than decoding it, at `imap(f, 0..100_000,
    /// chunksize=64)`.)
    ready: std::vec::IntoIter<R>,
    failed: Option<(Error, usize)>,
    taken: usize,
    chunks: usize,
    consumed: usize,
    _r: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> ImapIter<R> {
    pub(crate) fn new(stream: Arc<Stream>) -> ImapIter<R> {
        let chunks = stream.items.div_ceil(stream.chunksize.max(1));
        ImapIter {
            stream,
            ready: Vec::new().into_iter(),
            failed: None,
            taken: 0,
            chunks,
            consumed: 0,
            _r: PhantomData,
        }
    }

    fn next_deadline(&mut self, deadline: Option<Instant>) -> Option<Result<R, Error>> {
        if let Some(x) = self.pop_ready() {
            return Some(x);
        }
        if self.taken == self.chunks {
            return None;
        }
        let s = &self.stream;
        let next = self.taken;
        let g = lock(&s.state);
        let (mut g, ok) = wait_until(&s.cv, g, deadline, |st| {
            if st.ordered {
                st.by_index.contains_key(&next)
            } else {
                !st.arrived.is_empty()
            }
        });
        if !ok {
            return Some(Err(Error::timeout()));
        }
        let (index, blob) = g.take(next).expect("present");
        drop(g);
        self.load(index, blob);
        self.pop_ready()
    }

    /// Decodes a chunk taken from the stream into `ready` (or `failed`).
    fn load(&mut self, index: usize, blob: Blob) {
        self.taken += 1;
        let n = self.stream.chunk_len(index);
        self.consumed += n;
        let mut items = Vec::new();
        match blob.and_then(|b| crate::chunk::decode_results_into::<R>(&b, &mut items)) {
            Ok(()) => self.ready = items.into_iter(),
            Err(e) => self.failed = (n > 0).then_some((e, n)),
        }
    }

    fn pop_ready(&mut self) -> Option<Result<R, Error>> {
        if let Some(x) = self.ready.next() {
            return Some(Ok(x));
        }
        let (e, left) = self.failed.as_mut()?;
        *left -= 1;
        if *left > 0 {
            return Some(Err(e.clone()));
        }
        self.failed.take().map(|(e, _)| Err(e))
    }

    fn ready_len(&self) -> usize {
        self.ready.len() + self.failed.as_ref().map_or(0, |(_, n)| *n)
    }

    /// The next result, waiting at most `timeout`. On timeout it returns
    /// `Some(Err(e))` with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout);
    /// nothing is lost, and the iterator can be used again (Python's
    /// `next(timeout)`).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R, Error>> {
        self.next_deadline(Some(Instant::now() + timeout))
    }

    pub(crate) fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<R, Error>> {
        self.next_deadline(deadline)
    }

    /// Progress of the whole call: (items completed, items in total).
    pub fn progress(&self) -> (usize, usize) {
        (lock(&self.stream.state).done_items, self.stream.items)
    }

    /// The rest of the results as a [`futures_core::Stream`], for async
    /// code (see [`ImapStream`]). Nothing is lost: the stream starts where
    /// the iterator stopped.
    pub fn into_stream(self) -> ImapStream<R> {
        ImapStream { inner: self }
    }

    /// Takes the next result if its chunk has arrived; otherwise registers
    /// `waker`, which the pool thread delivering the next chunk wakes.
    fn poll_item(&mut self, waker: &Waker) -> Poll<Option<Result<R, Error>>> {
        loop {
            if let Some(x) = self.pop_ready() {
                return Poll::Ready(Some(x));
            }
            if self.taken == self.chunks {
                return Poll::Ready(None);
            }
            let mut g = lock(&self.stream.state);
            let Some((index, blob)) = g.take(self.taken) else {
                match &mut g.waker {
                    Some(w) if w.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
                return Poll::Pending;
            };
            drop(g);
            // A chunk may decode to nothing (a hostile or broken worker's
            // reply): take the next rather than end the stream early.
            self.load(index, blob);
        }
    }
}

impl<R: DeserializeOwned> Iterator for ImapIter<R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Result<R, Error>> {
        self.next_deadline(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.stream.items - self.consumed + self.ready_len();
        (left, Some(left))
    }
}

/// The results of `imap` and `imap_unordered` as a
/// [`futures_core::Stream`], on any runtime or none:
/// [`ImapIter::into_stream`]. Items are those of the iterator: each input
/// item's result or its error, in input order (`imap`) or completion
/// order (`imap_unordered`), decoded on the polling thread.
///
/// Polling takes a chunk that has arrived, or registers the task's waker,
/// which the pool's thread that delivers the next chunk wakes: no thread
/// waits per stream, and `poll_next` never blocks or spins. If the pool is
/// terminated (or dropped) first, the items not yet computed come out as
/// [`ErrorKind::Terminated`](crate::ErrorKind::Terminated) errors, and
/// the stream ends.
///
/// A type of its own rather than `Stream` on [`ImapIter`]: a type that is
/// both an `Iterator` and a `Stream` makes every `.next()` and `.map()`
/// ambiguous wherever a `StreamExt` trait is in scope.
///
/// Cancellation safety: dropping the stream (or the task polling it)
/// before its end cancels nothing and never blocks: the remaining chunks
/// still run, and their results are dropped as they arrive.
///
/// ```
/// use mp_pool::Pool;
/// use smol::stream::StreamExt;
///
/// fn double(x: u64) -> u64 { x * 2 }
///
/// let pool = Pool::new(2)?;
/// let mut results = pool.imap(double, 0..10, Some(3))?.into_stream();
/// let all = smol::block_on(async {
///     let mut all = Vec::new();
///     while let Some(x) = results.next().await {
///         all.push(x?);
///     }
///     Ok::<_, mp_pool::Error>(all)
/// })?;
/// assert_eq!(all, (0..10).map(double).collect::<Vec<_>>());
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub struct ImapStream<R> {
    inner: ImapIter<R>,
}

// Nothing in the stream is pinned (`poll_next` only moves its state
// through `&mut`): a stream of any `R` may be polled through `Pin::new`.
impl<R> Unpin for ImapStream<R> {}

impl<R: DeserializeOwned> ImapStream<R> {
    /// Progress of the whole call: (items completed, items in total).
    pub fn progress(&self) -> (usize, usize) {
        self.inner.progress()
    }

    /// The rest of the results as a blocking iterator again.
    pub fn into_inner(self) -> ImapIter<R> {
        self.inner
    }
}

impl<R: DeserializeOwned> futures_core::Stream for ImapStream<R> {
    type Item = Result<R, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_item(cx.waker())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<R> fmt::Debug for ImapStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapStream")
            .field("chunks", &self.inner.chunks)
            .field("taken", &self.inner.taken)
            .finish()
    }
}

impl<R> fmt::Debug for ImapIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapIter")
            .field("chunks", &self.chunks)
            .field("taken", &self.taken)
            .finish()
    }
}
