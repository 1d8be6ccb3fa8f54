//! [`SelfDescribing`]: a value that travels in JSON inside postcard's
//! bytes, for the types postcard cannot decode.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

/// A value that travels in a self-describing format (JSON, by
/// `serde_json`), as one byte string inside mp's postcard bytes.
///
/// postcard cannot decode a type whose `Deserialize` asks the format what
/// comes next (`deserialize_any`): `serde_json::Value` (the natural stand-in
/// for a Python dict), `#[serde(untagged)]` and internally tagged enums,
/// structs with `#[serde(flatten)]`. Such a value put on a queue, sent on
/// a pipe, or passed to a process, a pool or a manager comes back as a
/// decode error that names the type (with the bytes, so nothing is lost).
/// Wrapped in `SelfDescribing` it arrives intact:
///
/// ```
/// use mp_process::SelfDescribing;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// #[serde(untagged)]
/// enum Either { Num(u32), Text(String) }
///
/// let bytes = mp_process::encode(&SelfDescribing(Either::Text("hi".into()))).unwrap();
/// let back: SelfDescribing<Either> = mp_process::decode(&bytes).unwrap();
/// assert_eq!(back.0, Either::Text("hi".into()));
/// ```
///
/// JSON has limits of its own, checked when the value is encoded so that
/// a value that would not come back is refused at the sender, naming its
/// type: map keys must be strings or numbers; an `f64` NaN or infinity
/// becomes `null`, so it is refused where the field is an `f64` (an
/// `Option<f64>` would come back `None`; keep such floats outside the
/// wrapper). The check decodes the JSON once more, which roughly doubles
/// the wrapper's cost: it is for values that cannot travel otherwise, not
/// for bulk data (bytes take up to four characters each).
///
/// Encoding and decoding a wrapped value runs its own `Serialize` and
/// `Deserialize` once more for the check: wrap plain data, not handles
/// (queues, shared values, proxies), which travel by postcard as they are.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelfDescribing<T>(pub T);

impl<T> SelfDescribing<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for SelfDescribing<T> {
    fn from(v: T) -> Self {
        SelfDescribing(v)
    }
}

impl<T> Deref for SelfDescribing<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for SelfDescribing<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for SelfDescribing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SelfDescribing").field(&self.0).finish()
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for SelfDescribing<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let name = std::any::type_name::<T>();
        let json = serde_json::to_vec(&self.0)
            .map_err(|e| ser::Error::custom(format_args!("cannot encode `{name}` in JSON: {e}")))?;
        // Refused here, rather than at the receiver: what JSON cannot give
        // back (a NaN `f64` written as `null`, a number out of range).
        if let Err(e) = serde_json::from_slice::<T>(&json) {
            return Err(ser::Error::custom(format_args!(
                "`{name}` encodes in JSON but would not decode from it ({e}); \
                 JSON writes NaN and infinite floats as null"
            )));
        }
        s.serialize_bytes(&json)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for SelfDescribing<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(Json(PhantomData))
    }
}

/// Reads the JSON byte string.
struct Json<T>(PhantomData<fn() -> T>);

impl<T: DeserializeOwned> Json<T> {
    fn parse<E: de::Error>(b: &[u8]) -> Result<SelfDescribing<T>, E> {
        serde_json::from_slice(b).map(SelfDescribing).map_err(|e| {
            E::custom(format_args!(
                "cannot decode `{}` from JSON: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Json<T> {
    type Value = SelfDescribing<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document as bytes")
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
        Json::parse(b)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Json::parse(s.as_bytes())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        // A self-describing outer format writes bytes as a list of numbers.
        let mut b = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(x) = a.next_element::<u8>()? {
            b.push(x);
        }
        Json::parse(&b)
    }
}
