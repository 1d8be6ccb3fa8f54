//! A hook for pool kinds that live outside this crate (mp-mpi's `MpiPool`):
//! they carry encoded tasks and results their own way, and this crate makes
//! the result handles, so that such a pool implements [`TaskPool`] with the
//! same [`AsyncResult`] and [`ImapIter`] as [`Pool`](crate::Pool).
//!
//! Each handle comes with one [`Completion`] per task; the pool completes
//! each exactly once with the task's result, encoded with
//! `mp_process::encode`, or its error.
//!
//! [`TaskPool`]: crate::TaskPool

use std::fmt;
use std::sync::{Arc, Weak};

use mp_process::PanicInfo;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::result::{AsyncResult, Cell, Gather, ImapIter, Sink, Stream, decode_many, decode_one};

/// Where the outcome of one task goes (see the [module docs](self)).
pub struct Completion {
    sink: Arc<dyn Sink>,
    index: usize,
    /// A chunk of `map` or `imap`: its `Vec<R>` is wrapped as the pool's
    /// workers send it (one postcard byte string).
    chunk: bool,
}

impl Completion {
    /// Delivers the task's outcome: for [`async_result`], the encoded
    /// result; for [`map_result`] and [`imap_iter`], the encoded `Vec<R>` of
    /// the chunk's results.
    pub fn complete(self, outcome: Result<Vec<u8>, Error>) {
        let outcome = match outcome {
            Ok(bytes) if self.chunk => Ok(wrap_bytes(&bytes)),
            other => other,
        };
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

/// postcard's encoding of a byte string: its length (a varint), then the
/// bytes; what `chunk::Packed` makes on a worker.
fn wrap_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 10);
    let mut n = bytes.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
    out
}

/// A result for one task (`apply_async`, `submit`).
pub fn async_result<T: DeserializeOwned + 'static>() -> (Completion, AsyncResult<T>) {
    let cell = Arc::new(Cell::default());
    let gather = Gather::new(1, cell.clone(), None, Weak::new());
    let done = Completion {
        sink: gather,
        index: 0,
        chunk: false,
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
            chunk: true,
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
            chunk: true,
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
