//! The codec: how values travel between processes (postcard), and what a
//! failure to encode or decode one says.
//!
//! postcard is compact and fast, but not self-describing: it cannot decode
//! a type whose `Deserialize` asks the format what comes next
//! (`deserialize_any`: `serde_json::Value`, `#[serde(untagged)]`,
//! internally tagged and `#[serde(flatten)]` types), and its own error
//! drops serde's messages (`SerdeSerCustom`, `SerdeDeCustom`). So every
//! failure here is a [`CodecError`] that names the Rust type and says what
//! went wrong in words: serde's own message, captured by running the value
//! again through a capturing serializer or deserializer (`capture`, on the
//! error path only: the fast path is postcard's), or a reason postcard's
//! error stands for. A decode failure keeps the bytes, so that no receiver
//! loses an item it cannot decode. Values that need a self-describing
//! format travel inside [`SelfDescribing`].

mod capture;
mod selfdesc;

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use selfdesc::SelfDescribing;

/// Encoding or decoding a value failed: which type, which way, why, and
/// (for a decode) the bytes that did not decode.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, Debug)]
/// #[serde(untagged)]
/// enum Either { Num(u32), Text(String) }
///
/// let bytes = mp_process::encode(&Either::Num(1)).unwrap();
/// let err = mp_process::codec::decode::<Either>(&bytes).unwrap_err();
/// assert!(err.type_name().ends_with("Either"));
/// assert!(err.reason().contains("SelfDescribing"));
/// assert_eq!(err.bytes(), Some(&bytes[..])); // nothing is lost
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CodecError {
    decoding: bool,
    type_name: String,
    reason: String,
    bytes: Option<Vec<u8>>,
}

impl CodecError {
    /// An encoding failure of `type_name`.
    fn encode(type_name: &str, reason: String) -> CodecError {
        CodecError {
            decoding: false,
            type_name: type_name.to_owned(),
            reason,
            bytes: None,
        }
    }

    /// A decoding failure of `type_name`, keeping the bytes.
    fn decode(type_name: &str, reason: String, bytes: &[u8]) -> CodecError {
        CodecError {
            decoding: true,
            type_name: type_name.to_owned(),
            reason,
            bytes: Some(bytes.to_vec()),
        }
    }

    /// Whether this is a decoding failure (else an encoding one).
    pub fn is_decode(&self) -> bool {
        self.decoding
    }

    /// The Rust type that failed (`std::any::type_name`).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// What went wrong: serde's message, or what postcard's error means.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The bytes that did not decode (for a decoding failure), so that the
    /// item is not lost: decode them again as another type, or as
    /// [`SelfDescribing`] after fixing the sender.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }

    /// The bytes that did not decode, taken out.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        self.bytes
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let way = if self.decoding { "decode" } else { "encode" };
        write!(f, "cannot {way} `{}`: {}", self.type_name, self.reason)
    }
}

impl fmt::Debug for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CodecError");
        d.field("decoding", &self.decoding)
            .field("type_name", &self.type_name)
            .field("reason", &self.reason);
        if let Some(b) = &self.bytes {
            d.field("bytes", &b.len());
        }
        d.finish()
    }
}

impl std::error::Error for CodecError {}

/// Encodes `value` in postcard, the way arguments, results, queue items,
/// messages and managed values travel.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(value).map_err(|e| encode_failed(value, e))
}

/// Refuses, at the sender, a value postcard encoded into `bytes` but cannot
/// decode as a `T` (its `Deserialize` calls `deserialize_any`), in builds
/// with debug assertions: there every send of mp's typed channels (queue
/// items, pipe messages, process and pool arguments and results, managed
/// values) decodes its bytes once more before they leave, so the mistake
/// shows where it was made, with the type and the way out. Release builds
/// skip the check, as Rust skips overflow checks, and the receiver refuses
/// such an item instead, keeping its bytes ([`CodecError::bytes`]): a
/// trial decode per send would double the cost of every small message.
///
/// The trial runs with no descriptors to hand out, so a value that carries
/// handles (queues, shared memory, locks, connections) stops at its first
/// handle: the check covers the part of the value before it, the receiver
/// the rest. Only `deserialize_any` refusals count; any other failure is
/// the receiver's to report.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// #[serde(untagged)]
/// enum Either { Num(u32), Text(String) }
///
/// let bytes = mp_process::encode(&Either::Num(1)).unwrap();
/// let checked = mp_process::codec::check_sent::<Either>(&bytes);
/// if cfg!(debug_assertions) {
///     let err = checked.unwrap_err();
///     assert!(!err.is_decode());
///     assert!(err.reason().contains("SelfDescribing"));
/// } else {
///     assert!(checked.is_ok());
/// }
/// assert!(mp_process::codec::check_sent::<u32>(&mp_process::encode(&7u32).unwrap()).is_ok());
/// ```
pub fn check_sent<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), CodecError> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    crate::fdpass::SharedFd::receive(Vec::new(), || match postcard::take_from_bytes::<T>(bytes) {
        Err(e @ postcard::Error::WontImplement) => {
            let reason = decode_failed::<T>(bytes, e).reason;
            Err(CodecError::encode(
                std::any::type_name::<T>(),
                format!("postcard can encode it but not decode it: {reason}"),
            ))
        }
        _ => Ok(()),
    })
}

/// Decodes a whole `T` from `bytes` (made by [`encode`]); bytes left over
/// after the value are an error, since they mean the sender encoded
/// another type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(CodecError::decode(
            std::any::type_name::<T>(),
            format!(
                "{} of {} bytes left over after the value (was it sent as another type?)",
                rest.len(),
                bytes.len()
            ),
            bytes,
        )),
        Err(e) => Err(decode_failed::<T>(bytes, e)),
    }
}

/// Decodes a `T` from the front of `bytes`, leaving what follows (postcard
/// `take_from_bytes`, with this module's errors).
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), CodecError> {
    postcard::take_from_bytes::<T>(bytes).map_err(|e| decode_failed::<T>(bytes, e))
}

/// The error for `value` that postcard failed to encode with `e`: for
/// mp's crates that encode with postcard themselves (into a buffer of
/// their own, or through their own encoder). A custom error of the
/// value's `Serialize` is run again to recover serde's message.
pub fn encode_failed<T: Serialize + ?Sized>(value: &T, e: postcard::Error) -> CodecError {
    let name = std::any::type_name::<T>();
    let reason = match e {
        postcard::Error::SerdeSerCustom => capture::serialize_message(value).unwrap_or_else(|| {
            "its Serialize failed (and gave no message the second time)".to_owned()
        }),
        other => reason(&other),
    };
    CodecError::encode(name, reason)
}

/// The error for `bytes` that postcard failed to decode as a `T` with `e`:
/// for mp's crates that decode with postcard themselves. The bytes are
/// kept in the error. A custom error of `T`'s `Deserialize` (serde's
/// "invalid value", "unknown variant", or the type's own check) is run
/// again to recover serde's message.
pub fn decode_failed<T: DeserializeOwned>(bytes: &[u8], e: postcard::Error) -> CodecError {
    let name = std::any::type_name::<T>();
    let reason = match e {
        postcard::Error::SerdeDeCustom | postcard::Error::WontImplement => {
            capture::deserialize_message::<T>(bytes).unwrap_or_else(|| reason(&e))
        }
        other => reason(&other),
    };
    CodecError::decode(name, reason, bytes)
}

/// An encode failure found by a caller, in this module's terms.
pub fn encode_refused<T: ?Sized>(_value: &T, reason: impl Into<String>) -> CodecError {
    CodecError::encode(std::any::type_name::<T>(), reason.into())
}

/// A decode failure found by a caller (a frame of the wrong kind, a
/// length that does not fit), in this module's terms.
pub fn decode_refused<T: ?Sized>(bytes: &[u8], reason: impl Into<String>) -> CodecError {
    CodecError::decode(std::any::type_name::<T>(), reason.into(), bytes)
}

/// What the `deserialize_any` refusal means, with the way out.
pub(crate) fn any_reason(expecting: &str) -> String {
    format!(
        "its Deserialize asks for a self-describing format (deserialize_any, expecting \
         {expecting}), which postcard is not: serde_json::Value, #[serde(untagged)], \
         internally tagged and #[serde(flatten)] types need one; wrap the value in \
         mp::SelfDescribing"
    )
}

/// postcard's error in words (its own Display is terse and sometimes
/// wrong for mp's use: "a feature that PostCard will never implement").
fn reason(e: &postcard::Error) -> String {
    use postcard::Error as P;
    const NOT_THIS: &str = "the bytes are not an encoding of this type (sent as another type, or \
                            corrupt)";
    match e {
        P::WontImplement => any_reason("any value"),
        P::NotYetImplemented => "it uses a serde feature that postcard does not support".into(),
        P::SerializeBufferFull => "the output buffer is full".into(),
        P::SerializeSeqLengthUnknown => "a sequence or map of unknown length (#[serde(flatten)], \
             or collect_seq/collect_map over an iterator without an exact size): postcard \
             writes the length first; collect it into a Vec, or wrap the value in \
             mp::SelfDescribing"
            .into(),
        P::DeserializeUnexpectedEnd => {
            format!("the bytes end before the value does: {NOT_THIS}")
        }
        P::DeserializeBadVarint => format!("a malformed variable-length integer: {NOT_THIS}"),
        P::DeserializeBadBool => format!("a bool that is neither 0 nor 1: {NOT_THIS}"),
        P::DeserializeBadChar => format!("an invalid char: {NOT_THIS}"),
        P::DeserializeBadUtf8 => format!("a string that is not UTF-8: {NOT_THIS}"),
        P::DeserializeBadOption => format!("an Option tag that is neither 0 nor 1: {NOT_THIS}"),
        P::DeserializeBadEnum => format!("an enum variant index over u32::MAX: {NOT_THIS}"),
        P::DeserializeBadEncoding | P::DeserializeBadCrc => NOT_THIS.into(),
        P::SerdeSerCustom => "its Serialize failed".into(),
        P::SerdeDeCustom => format!("its Deserialize refused the bytes: {NOT_THIS}"),
        P::CollectStrError => "a Display impl failed while the value was encoded as a string \
             (collect_str)"
            .into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
