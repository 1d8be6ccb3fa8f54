//! The codec's hard cases, for every crate's tests: values whose
//! `Deserialize` needs a self-describing format (`serde_json::Value`, an
//! untagged enum, a flattened struct) and a type whose `Serialize` fails
//! with a message of its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An untagged enum: postcard encodes it, but cannot decode it.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(untagged)]
pub enum Untagged {
    /// A number.
    Num(u32),
    /// A string.
    Text(String),
}

/// A struct with a flattened map: postcard cannot even encode it (a map of
/// unknown length).
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct Flat {
    /// A plain field.
    pub id: u32,
    /// The other fields.
    #[serde(flatten)]
    pub rest: BTreeMap<String, u32>,
}

/// A type whose `Serialize` always fails with [`REFUSES`].
#[derive(Debug, Deserialize, PartialEq, Clone)]
pub struct Refuses;

/// `Refuses`' message.
pub const REFUSES: &str = "Refuses says no";

impl Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(REFUSES))
    }
}

/// A JSON document, as a Python dict would be.
pub fn json() -> serde_json::Value {
    serde_json::json!({"name": "x", "items": [1, 2.5, null, {"deep": true}], "n": -3})
}

/// A flattened struct with two extra fields.
pub fn flat() -> Flat {
    Flat {
        id: 4,
        rest: [("a".to_owned(), 1), ("b".to_owned(), 2)].into(),
    }
}

/// `serde_json::Value`'s type name, as errors give it.
pub const VALUE: &str = "serde_json::value::Value";
