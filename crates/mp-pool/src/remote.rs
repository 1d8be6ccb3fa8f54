//! A hook for pool kinds that live outside this crate (mp-mpi's `MpiPool`):
//! they carry encoded tasks and results their own way, and this crate makes
//! the result handles, so that such a pool implements [`TaskPool`] with the
//! same [`AsyncResult`] and [`ImapIter`] as [`Pool`](crate::Pool).
//!
//! Each handle comes with one [`Completion`] per task; the pool completes
//! each exactly once with the task's result, encoded with
//! `mp_process::encode`, or its error. A chunk of `map` or `imap` is a
//! call of a function that returns [`Packed`], as this crate's workers run
//! them: its encoded result goes to the completion as it is.
//!
//! [`TaskPool`]: crate::TaskPool

use std::fmt;
use std::sync::{Arc, Weak};

use mp_process::PanicInfo;
use serde::de::DeserializeOwned;

pub use crate::chunk::Packed;
use crate::error::{Error, ErrorKind};
use crate::result::{AsyncResult, Cell, Gather, ImapIter, Sink, Stream, decode_many, decode_one};

/// Where the outcome of one task goes (see the [module docs](self)).
pub struct Completion {
    sink: Arc<dyn Sink>,
    index: usize,
}

impl Completion {
    /// Delivers the task's outcome: for [`async_result`], the encoded
    /// result; for [`map_result`] and [`imap_iter`], the chunk's encoded
    /// [`Packed`] results.
    pub fn complete(self, outcome: Result<Vec<u8>, Error>) {
        self.sink.complete(self.index, outcome);
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A result for one task (`apply_async`, `submit`).
pub fn async_result<T: DeserializeOwned + 'static>() -> (Completion, AsyncResult<T>) {
    let cell = Arc::new(Cell::default());
    let gather = Gather::new(1, cell.clone(), None, Weak::new());
    let done = Completion {
        sink: gather,
        index: 0,
    };
    (done, AsyncResult::new(cell, decode_one::<T>))
}

/// A result for `chunks` chunks of a `map`, joined in chunk order; on
/// failure, the error of the lowest failed chunk.
pub fn map_result<R: DeserializeOwned + 'static>(
    chunks: usize,
) -> (Vec<Completion>, AsyncResult<Vec<R>>) {
    let cell = Arc::new(Cell::default());
    let gather: Arc<dyn Sink> = Gather::new(chunks, cell.clone(), None, Weak::new());
    let done = (0..chunks)
        .map(|index| Completion {
            sink: gather.clone(),
            index,
        })
        .collect();
    (done, AsyncResult::new(cell, decode_many::<R>))
}

/// An `imap` (`ordered`) or `imap_unordered` iterator over `items` items in
/// chunks of `chunksize` (at least 1): one completion per chunk.
pub fn imap_iter<R: DeserializeOwned>(
    ordered: bool,
    chunksize: usize,
    items: usize,
) -> (Vec<Completion>, ImapIter<R>) {
    let chunksize = chunksize.max(1);
    let stream = Stream::new(ordered, chunksize, items);
    let sink: Arc<dyn Sink> = stream.clone();
    let done = (0..items.div_ceil(chunksize))
        .map(|index| Completion {
            sink: sink.clone(),
            index,
        })
        .collect();
    (done, ImapIter::new(stream))
}

/// An error of the given kind, for a failure the outside pool detects.
pub fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::new(kind, message)
}

/// A task's panic, as a worker of the outside pool caught it.
pub fn panicked(info: PanicInfo) -> Error {
    Error::new(ErrorKind::Panicked, "the task panicked").with_panic(Some(info))
}
