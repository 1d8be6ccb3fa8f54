//! How a chunk's results (`map`, `imap`) travel from a worker: as one
//! postcard byte string holding the encoded `Vec<R>`, made with postcard's
//! `to_extend` flavor into a kept buffer. `mp_process::encode` (the
//! `to_stdvec` flavor, which a worker's `RawFunction::call` uses for a
//! task's result) was the slowest step of `map(f, 0..100_000)` on the
//! workers; through `Packed` it copies one byte string instead. mp-pool's
//! workers do the same (its `chunk.rs`).

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind};

thread_local! {
    /// Where a worker encodes a chunk's results, kept from chunk to chunk.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer larger than this is not kept.
const SCRATCH_KEEP: usize = 4 << 20;

/// A chunk's results.
pub(crate) struct Packed<R>(pub(crate) Vec<R>);

impl<R: Serialize> Serialize for Packed<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SCRATCH.with(|scratch| {
            let mut fresh = Vec::new();
            // Not reentered; if it were, the inner one gets its own buffer.
            let mut kept = scratch.try_borrow_mut();
            let buf = kept.as_deref_mut().unwrap_or(&mut fresh);
            let taken = std::mem::take(buf);
            let mut bytes = postcard::to_extend(&self.0, taken).map_err(ser::Error::custom)?;
            let r = s.serialize_bytes(&bytes);
            bytes.clear();
            if bytes.capacity() <= SCRATCH_KEEP {
                *buf = bytes;
            }
            r
        })
    }
}

impl<'de, R: DeserializeOwned> Deserialize<'de> for Packed<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes<R>(PhantomData<fn() -> R>);

        impl<R: DeserializeOwned> Visitor<'_> for Bytes<R> {
            type Value = Packed<R>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the encoded results of a chunk")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Packed<R>, E> {
                postcard::from_bytes(v).map(Packed).map_err(E::custom)
            }
        }

        d.deserialize_bytes(Bytes(PhantomData))
    }
}

/// The encoded `Vec<R>` inside an encoded [`Packed`] (what mp-pool's chunk
/// completions take).
pub(crate) fn unpack(encoded: &[u8]) -> Result<Vec<u8>, Error> {
    postcard::from_bytes::<&[u8]>(encoded)
        .map(<[u8]>::to_vec)
        .map_err(|e| {
            crate::error(
                ErrorKind::Serialization,
                format!("cannot decode a chunk: {e}"),
            )
        })
}
