//! How the items and results of a chunk (`map`, `imap`) are encoded: in
//! postcard, mp-process's wire format, but through our own encoder (`enc`),
//! which makes the same bytes about 4x faster than `mp_process::encode`
//! (postcard's `to_stdvec` flavor) on many small items: 17 us instead of
//! 56 us for 12,500 `i64`s (postcard's `to_extend` flavor: 25 us). At
//! `map(f, 0..100_000)` that is most of the CPU time the parent and the
//! workers spend per call.
//!
//! Arguments: [`encode_items`] makes exactly the bytes of
//! `mp_process::encode(&items)`, so the worker decodes `Vec<A>` unchanged.
//! Results: the worker encodes a function's result with
//! `mp_process::encode`, which the pool cannot change; so the chunk
//! function returns [`Packed`], whose `Serialize` encodes the results
//! quickly into one byte string that the slow flavor then copies in one
//! piece.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Encodes a chunk's items; the bytes are those of `mp_process::encode`.
/// `capacity`: the expected size (the size of the chunk before), which
/// saves growing the vector step by step.
pub(crate) fn encode_items<A: Serialize>(items: &[A], capacity: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(capacity);
    crate::enc::encode_into(items, &mut out).map_err(|e| {
        Error::codec(
            "cannot encode the items",
            mp_process::codec::encode_failed(items, e),
        )
    })?;
    Ok(out)
}

thread_local! {
    /// Where a worker encodes a chunk's results before they are copied
    /// into the function's result, kept from chunk to chunk: a new vector
    /// per chunk grew step by step, each step into fresh pages (page
    /// faults, and the allocator giving the memory back after each chunk).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A scratch vector larger than this is not kept.
const SCRATCH_KEEP: usize = 4 << 20;

/// A chunk's results, travelling as one postcard byte string that holds
/// the encoded `Vec<R>`: what a chunk function returns, on this crate's
/// workers and on those of outside pools ([`remote`](crate::remote)).
#[derive(Debug)]
pub struct Packed<R>(pub Vec<R>);

impl<R: Serialize> Serialize for Packed<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SCRATCH.with(|scratch| {
            let mut fresh = Vec::new();
            // Not reentered (no result holds a `Packed`); if it were, the
            // inner one gets a vector of its own.
            let mut kept = scratch.try_borrow_mut();
            let buf = kept.as_deref_mut().unwrap_or(&mut fresh);
            buf.clear();
            // The codec's words (the type, serde's message), which
            // postcard's error would drop on the way out.
            crate::enc::encode_into(&self.0, buf)
                .map_err(|e| ser::Error::custom(mp_process::codec::encode_failed(&self.0, e)))?;
            let r = s.serialize_bytes(buf);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
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

            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Packed<R>, E> {
                let mut out = Vec::new();
                let mut de = postcard::Deserializer::from_bytes(b);
                Extend(&mut out)
                    .deserialize(&mut de)
                    .map_err(|e| E::custom(mp_process::codec::decode_failed::<Vec<R>>(b, e)))?;
                Ok(Packed(out))
            }
        }

        d.deserialize_bytes(Bytes(PhantomData))
    }
}

/// Decodes a chunk's results, as the worker sent them, onto the end of
/// `out`: decoding straight into the caller's vector saves a copy of every
/// result and an allocation per chunk.
pub(crate) fn decode_results_into<R: DeserializeOwned>(
    blob: &[u8],
    out: &mut Vec<R>,
) -> Result<(), Error> {
    let inner: &[u8] = postcard::from_bytes(blob).map_err(|e| {
        let why = format!("not the byte string of a chunk's results ({e})");
        Error::codec(
            "cannot decode the results",
            mp_process::codec::decode_refused::<Packed<R>>(blob, why),
        )
    })?;
    let mut de = postcard::Deserializer::from_bytes(inner);
    let before = out.len();
    Extend(out).deserialize(&mut de).map_err(|e| {
        // What this chunk decoded is not kept: its results go together.
        out.truncate(before);
        Error::codec(
            "cannot decode the results",
            mp_process::codec::decode_failed::<Vec<R>>(inner, e),
        )
    })
}

/// Decodes a sequence onto the end of a vector (what `Vec<R>`'s
/// `Deserialize` does into a new vector).
struct Extend<'a, R>(&'a mut Vec<R>);

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for Extend<'_, R> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for Extend<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of results")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        // A corrupt length must not reserve memory beyond reason (serde's
        // own bound for `Vec`).
        let cap = (1 << 20) / std::mem::size_of::<R>().max(1);
        self.0.reserve(seq.size_hint().unwrap_or(0).min(cap));
        while let Some(x) = seq.next_element()? {
            self.0.push(x);
        }
        Ok(())
    }
}
