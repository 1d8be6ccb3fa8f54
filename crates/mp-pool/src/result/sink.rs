//! The sinks a task's outcome is delivered to: `Gather`, which sets a
//! call's cell when its last chunk arrives (`apply_async`, `map_async`),
//! and `Collect`, which a blocking `map` decodes from as chunks arrive;
//! and the decoders of what they hold.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, Weak};

use serde::de::DeserializeOwned;

use super::{
    Blob, Callbacks, Cell, OnDone, Outcome, Waiters, dispatch, lock, run_caught, wait_once,
};
use crate::error::{Error, ErrorKind};

/// What a task's outcome is delivered to.
pub(crate) trait Sink: Send + Sync {
    /// The task `index` of the call ended with `blob`.
    fn complete(&self, index: usize, blob: Blob);

    /// Several tasks of the call ended, in this order.
    fn complete_many(&self, done: Vec<(usize, Blob)>) {
        for (index, blob) in done {
            self.complete(index, blob);
        }
    }
}

/// Gathers the chunks of one call (`apply_async`: one; `map_async`: one per
/// chunk) and sets its cell when the last one arrives.
pub(crate) struct Gather {
    parts: Mutex<GatherState>,
    cell: Arc<Cell>,
    callbacks: Weak<Callbacks>,
    progress: Option<GatherProgress>,
}

/// A progress callback: `(done, total)`.
pub(crate) type ProgressFn = Box<dyn FnMut(usize, usize) + Send>;

/// A progress callback of `map_async`, with what it needs to count items.
struct GatherProgress {
    chunksize: usize,
    items: usize,
    /// The callback and the count it reported last: reports from two
    /// reader threads may reach the callback thread out of order, and a
    /// stale one is dropped, so the counts it sees only grow.
    report: Arc<Mutex<(usize, ProgressFn)>>,
}

struct GatherState {
    blobs: Vec<Option<Vec<u8>>>,
    /// The failure with the lowest chunk index.
    error: Option<(usize, Error)>,
    remaining: usize,
    on_done: Option<OnDone>,
    /// Items whose chunk has completed (kept only with a progress
    /// callback).
    done_items: usize,
}

impl Gather {
    pub(crate) fn new(
        chunks: usize,
        cell: Arc<Cell>,
        on_done: Option<OnDone>,
        callbacks: Weak<Callbacks>,
    ) -> Arc<Gather> {
        Gather::make(chunks, cell, on_done, callbacks, None)
    }

    /// A `Gather` for `items` items in chunks of `chunksize` that calls
    /// `progress(done, total)` on the callback thread as chunks complete,
    /// the last time before the result is marked ready.
    pub(crate) fn with_progress(
        items: usize,
        chunksize: usize,
        cell: Arc<Cell>,
        on_done: Option<OnDone>,
        callbacks: Weak<Callbacks>,
        progress: ProgressFn,
    ) -> Arc<Gather> {
        let chunksize = chunksize.max(1);
        // The result is then set from the callback thread too, after the
        // progress reports queued before it.
        let on_done = on_done.or_else(|| Some(Box::new(|_: &Outcome| {})));
        let progress = GatherProgress {
            chunksize,
            items,
            report: Arc::new(Mutex::new((0, progress))),
        };
        Gather::make(
            items.div_ceil(chunksize),
            cell,
            on_done,
            callbacks,
            Some(progress),
        )
    }

    fn make(
        chunks: usize,
        cell: Arc<Cell>,
        on_done: Option<OnDone>,
        callbacks: Weak<Callbacks>,
        progress: Option<GatherProgress>,
    ) -> Arc<Gather> {
        let g = Arc::new(Gather {
            parts: Mutex::new(GatherState {
                blobs: (0..chunks).map(|_| None).collect(),
                error: None,
                remaining: chunks,
                on_done,
                done_items: 0,
            }),
            cell,
            callbacks,
            progress,
        });
        if chunks == 0 {
            g.finish(Ok(Vec::new()), lock(&g.parts).on_done.take());
        }
        g
    }

    fn finish(&self, outcome: Outcome, on_done: Option<OnDone>) {
        match on_done {
            None => {
                let after = self.cell.set(outcome);
                if !after.is_empty() {
                    dispatch(
                        &self.callbacks,
                        Box::new(move || after.into_iter().for_each(run_caught)),
                    );
                }
            }
            Some(on_done) => {
                // The callback runs before the result is marked ready, as in
                // CPython: once `get` returns, the callback has run.
                let cell = self.cell.clone();
                dispatch(
                    &self.callbacks,
                    Box::new(move || {
                        let _ = catch_unwind(AssertUnwindSafe(|| on_done(&outcome)));
                        cell.set(outcome).into_iter().for_each(run_caught);
                    }),
                );
            }
        }
    }
}

impl Sink for Gather {
    fn complete(&self, index: usize, blob: Blob) {
        let mut st = lock(&self.parts);
        if index >= st.blobs.len() || st.remaining == 0 {
            return;
        }
        match blob {
            Ok(b) => st.blobs[index] = Some(b),
            Err(e) => {
                if st.error.as_ref().is_none_or(|(i, _)| index < *i) {
                    st.error = Some((index, e));
                }
                st.blobs[index] = Some(Vec::new());
            }
        }
        st.remaining -= 1;
        if let Some(p) = &self.progress {
            st.done_items += p.chunksize.min(p.items.saturating_sub(index * p.chunksize));
            let (done, total) = (st.done_items, p.items);
            let report = p.report.clone();
            let last = st.remaining == 0;
            drop(st);
            dispatch(
                &self.callbacks,
                Box::new(move || {
                    let mut r = lock(&report);
                    if done > r.0 {
                        r.0 = done;
                        (r.1)(done, total);
                    }
                }),
            );
            if !last {
                return;
            }
            st = lock(&self.parts);
        }
        if st.remaining > 0 {
            return;
        }
        let outcome = match st.error.take() {
            Some((_, e)) => Err(e),
            None => Ok(st
                .blobs
                .iter_mut()
                .map(|b| b.take().unwrap_or_default())
                .collect()),
        };
        let on_done = st.on_done.take();
        drop(st);
        self.finish(outcome, on_done);
    }
}

/// The chunks of a blocking `map`, which the caller decodes in order as
/// they arrive, while the later ones are still being computed: decoding
/// them all after the last one arrived kept the caller busy for ~0.15 ms
/// past the workers at `map(f, 0..100_000)`. The caller's thread decodes
/// (not the reader threads), so `R` need not be `Send`.
pub(crate) struct Collect {
    state: Mutex<CollectState>,
    cv: Condvar,
    /// For a `map` that reports progress: the chunk size and the number
    /// of items (the waiting caller is then woken for every chunk).
    counting: Option<(usize, usize)>,
}

struct CollectState {
    waiters: usize,
    chunks: Vec<Part>,
    /// Chunks not arrived yet.
    remaining: usize,
    /// Items whose chunk has arrived (kept only when `counting`).
    done_items: usize,
}

/// A waiting `map` is woken for a chunk this large, else only for the last
/// one: a wake-up per tiny chunk (`chunksize=1`) cost more than decoding
/// them all at the end.
const EAGER_BYTES: usize = 16 * 1024;

/// A chunk of a `map`, as the caller waits for it.
enum Part {
    Pending,
    Arrived(Blob),
    Taken,
}

impl Waiters for CollectState {
    fn waiters(&mut self) -> &mut usize {
        &mut self.waiters
    }
}

impl Collect {
    pub(crate) fn new(chunks: usize) -> Arc<Collect> {
        Collect::make(chunks, None)
    }

    /// A `Collect` for `items` items in chunks of `chunksize`, whose
    /// [`wait_progress`](Collect::wait_progress) reports each chunk.
    pub(crate) fn counting(items: usize, chunksize: usize) -> Arc<Collect> {
        let chunksize = chunksize.max(1);
        Collect::make(items.div_ceil(chunksize), Some((chunksize, items)))
    }

    fn make(chunks: usize, counting: Option<(usize, usize)>) -> Arc<Collect> {
        Arc::new(Collect {
            state: Mutex::new(CollectState {
                waiters: 0,
                chunks: (0..chunks).map(|_| Part::Pending).collect(),
                remaining: chunks,
                done_items: 0,
            }),
            cv: Condvar::new(),
            counting,
        })
    }

    /// Like [`wait`](Collect::wait), calling `progress(done, total)` here
    /// (on the caller's thread, outside the lock) whenever more items'
    /// chunks have arrived; the last call is `(total, total)`.
    pub(crate) fn wait_progress<R: DeserializeOwned>(
        &self,
        capacity: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<R>, Error> {
        self.wait_inner(capacity, Some(progress))
    }

    /// Waits for every chunk and returns the results in order, or the
    /// error `map_async(...).get()` returns: the failure of the chunk with
    /// the lowest index, else the first chunk that cannot be decoded.
    /// `capacity` is how many results to expect.
    pub(crate) fn wait<R: DeserializeOwned>(&self, capacity: usize) -> Result<Vec<R>, Error> {
        self.wait_inner(capacity, None)
    }

    fn wait_inner<R: DeserializeOwned>(
        &self,
        capacity: usize,
        mut progress: Option<&mut dyn FnMut(usize, usize)>,
    ) -> Result<Vec<R>, Error> {
        let mut out: Vec<R> = Vec::new();
        let mut failed: Option<Error> = None;
        let mut undecodable: Option<Error> = None;
        let total = self.counting.map_or(0, |(_, items)| items);
        let mut reported = 0;
        let n = lock(&self.state).chunks.len();
        for next in 0..n {
            let mut g = lock(&self.state);
            loop {
                if let Some(p) = progress.as_deref_mut()
                    && g.done_items > reported
                {
                    // User code runs outside the lock: a slow callback
                    // must not hold up the reader threads.
                    reported = g.done_items;
                    drop(g);
                    p(reported, total);
                    g = lock(&self.state);
                    continue;
                }
                if matches!(g.chunks[next], Part::Arrived(_)) {
                    break;
                }
                g.waiters += 1;
                g = wait_once(&self.cv, g, None);
                g.waiters -= 1;
            }
            let blob = match std::mem::replace(&mut g.chunks[next], Part::Taken) {
                Part::Arrived(blob) => blob,
                // Not reached: the wait above ends only on an arrived chunk.
                _ => Err(Error::new(
                    ErrorKind::Process,
                    "a chunk of the map was lost",
                )),
            };
            drop(g);
            match blob {
                Ok(bytes) if failed.is_none() && undecodable.is_none() => {
                    if out.capacity() == 0 {
                        out.reserve(capacity);
                    }
                    if let Err(e) = crate::chunk::decode_results_into(&bytes, &mut out) {
                        undecodable = Some(e);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if failed.is_none() {
                        failed = Some(e);
                    }
                }
            }
        }
        match failed.or(undecodable) {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl Sink for Collect {
    fn complete(&self, index: usize, blob: Blob) {
        let big = blob.as_ref().is_ok_and(|b| b.len() >= EAGER_BYTES);
        let mut st = lock(&self.state);
        match st.chunks.get_mut(index) {
            Some(p @ Part::Pending) => *p = Part::Arrived(blob),
            _ => return,
        }
        st.remaining -= 1;
        if let Some((chunksize, items)) = self.counting {
            st.done_items += chunksize.min(items.saturating_sub(index * chunksize));
        }
        let wake = st.waiters > 0 && (big || st.remaining == 0 || self.counting.is_some());
        drop(st);
        if wake {
            self.cv.notify_all();
        }
    }
}

/// Decodes one result (`apply_async`).
pub(crate) fn decode_one<R: DeserializeOwned>(blobs: &[Vec<u8>]) -> Result<R, Error> {
    let b = blobs
        .first()
        .ok_or_else(|| Error::new(ErrorKind::Serialization, "no result"))?;
    Ok(mp_process::decode(b)?)
}

/// Decodes and joins the results of every chunk (`map_async`).
pub(crate) fn decode_many<R: DeserializeOwned>(blobs: &[Vec<u8>]) -> Result<Vec<R>, Error> {
    let mut out = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        crate::chunk::decode_results_into(b, &mut out)?;
        if i == 0 {
            // Room for the others: every chunk but the last has the size
            // of the first.
            out.reserve(out.len() * (blobs.len() - 1));
        }
    }
    Ok(out)
}
