//! The codec's messages and the wrapper, in one process.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{SelfDescribing, decode, decode_prefix, encode};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(untagged)]
enum Untagged {
    Num(u32),
    Text(String),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Flat {
    id: u32,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Holder {
    id: u32,
    any: serde_json::Value,
}

#[derive(Serialize, Deserialize, Debug)]
enum Untagged2 {
    A,
    B,
}

/// Serializes with a custom error.
#[derive(Debug, Deserialize)]
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Refuses never serializes"))
    }
}

/// Deserializes only even numbers.
#[derive(Serialize, Debug)]
struct Even(u32);

impl<'de> Deserialize<'de> for Even {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n % 2 == 0 {
            Ok(Even(n))
        } else {
            Err(serde::de::Error::custom(format!("{n} is odd")))
        }
    }
}

#[test]
fn deserialize_any_is_named_and_bytes_kept() {
    let bytes = encode(&Untagged::Num(3)).unwrap();
    let e = decode::<Untagged>(&bytes).unwrap_err();
    assert!(e.is_decode());
    assert!(e.type_name().ends_with("Untagged"), "{e}");
    assert!(e.reason().contains("deserialize_any"), "{e}");
    assert!(e.reason().contains("SelfDescribing"), "{e}");
    assert_eq!(e.bytes(), Some(&bytes[..]));

    // Nested: the outer type is named, the inner one's expectation given.
    let h = Holder {
        id: 1,
        any: serde_json::json!({"a": [1, 2]}),
    };
    let bytes = encode(&h).unwrap();
    let e = decode::<Holder>(&bytes).unwrap_err();
    assert!(e.type_name().ends_with("Holder"), "{e}");
    assert!(e.reason().contains("any valid JSON value"), "{e}");
    assert!(e.to_string().starts_with("cannot decode `"), "{e}");
}

#[test]
fn flatten_is_refused_at_the_sender() {
    let f = Flat {
        id: 1,
        rest: [("k".to_owned(), "v".to_owned())].into(),
    };
    let e = encode(&f).unwrap_err();
    assert!(!e.is_decode());
    assert!(e.type_name().ends_with("Flat"), "{e}");
    assert!(e.reason().contains("unknown length"), "{e}");
    assert!(e.reason().contains("SelfDescribing"), "{e}");
}

#[test]
fn custom_messages_are_kept() {
    let e = encode(&Refuses).unwrap_err();
    assert!(e.type_name().ends_with("Refuses"), "{e}");
    assert_eq!(e.reason(), "Refuses never serializes");
    // Deep inside a value, too.
    let e = encode(&vec![Some((1u8, Refuses))]).unwrap_err();
    assert_eq!(e.reason(), "Refuses never serializes");

    let bytes = encode(&3u32).unwrap();
    let e = decode::<Even>(&bytes).unwrap_err();
    assert_eq!(e.reason(), "3 is odd");
    let bytes = encode(&vec![2u32, 4, 5]).unwrap();
    let e = decode::<Vec<Even>>(&bytes).unwrap_err();
    assert_eq!(e.reason(), "5 is odd");
    assert!(e.type_name().contains("Vec"), "{e}");

    // serde's own messages: an unknown variant index.
    let e = decode::<Option<Untagged2>>(&[1, 9]).unwrap_err();
    assert!(e.reason().contains("variant index"), "{e}");
}

#[test]
fn wrong_and_short_bytes_say_so() {
    let bytes = encode(&(1u64, 2u64)).unwrap();
    let e = decode::<u64>(&bytes).unwrap_err();
    assert!(e.reason().contains("left over"), "{e}");
    let e = decode::<String>(&[5, b'a']).unwrap_err();
    assert!(e.reason().contains("end before"), "{e}");
    let e = decode::<bool>(&[7]).unwrap_err();
    assert!(e.reason().contains("neither 0 nor 1"), "{e}");
    let (v, rest) = decode_prefix::<u8>(&[1, 2]).unwrap();
    assert_eq!((v, rest), (1, &[2u8][..]));
}

#[test]
fn self_describing_carries_what_postcard_cannot() {
    for v in [Untagged::Num(7), Untagged::Text("seven".into())] {
        let b = encode(&SelfDescribing(v.clone())).unwrap();
        assert_eq!(decode::<SelfDescribing<Untagged>>(&b).unwrap().0, v);
    }
    let f = Flat {
        id: 2,
        rest: [("a".to_owned(), "b".to_owned())].into(),
    };
    let b = encode(&SelfDescribing(f.clone())).unwrap();
    assert_eq!(decode::<SelfDescribing<Flat>>(&b).unwrap().0, f);
    let h = Holder {
        id: 3,
        any: serde_json::json!({"x": null, "y": [true, 1.5, "z"]}),
    };
    let b = encode(&SelfDescribing(h.clone())).unwrap();
    assert_eq!(decode::<SelfDescribing<Holder>>(&b).unwrap().0, h);
    // Inside a plain postcard value.
    let b = encode(&(1u8, vec![SelfDescribing(Untagged::Num(1))])).unwrap();
    let (n, v): (u8, Vec<SelfDescribing<Untagged>>) = decode(&b).unwrap();
    assert_eq!((n, v[0].0.clone()), (1, Untagged::Num(1)));
}

#[test]
fn self_describing_refuses_at_the_sender_what_json_loses() {
    let e = encode(&SelfDescribing(f64::NAN)).unwrap_err();
    assert!(e.type_name().contains("SelfDescribing<f64>"), "{e}");
    assert!(e.reason().contains("would not decode"), "{e}");
    let mut m = BTreeMap::new();
    m.insert((1u8, 2u8), 3u8);
    let e = encode(&SelfDescribing(m)).unwrap_err();
    assert!(e.reason().contains("JSON"), "{e}");
    // Bytes that are not JSON: refused at the receiver, with the bytes.
    let b = encode(&serde_bytes_like(b"{oops")).unwrap();
    let e = decode::<SelfDescribing<Holder>>(&b).unwrap_err();
    assert!(e.reason().contains("from JSON"), "{e}");
    assert_eq!(e.bytes(), Some(&b[..]));
}

/// A byte string as postcard writes one (`serialize_bytes`).
fn serde_bytes_like(b: &[u8]) -> Vec<u8> {
    let mut out = vec![b.len() as u8];
    out.extend_from_slice(b);
    out
}

#[test]
fn hostile_bytes_give_errors_never_panics() {
    // A fixed xorshift stream: the same bytes on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    };
    for len in 0..64 {
        for _ in 0..40 {
            let b: Vec<u8> = (0..len).map(|_| next()).collect();
            // Each goes through the capturing deserializer on most errors.
            let _ = decode::<Vec<Even>>(&b);
            let _ = decode::<Holder>(&b);
            let _ = decode::<Option<Untagged2>>(&b);
            let _ = decode::<(String, Vec<Untagged>)>(&b);
            let _ = decode::<SelfDescribing<Flat>>(&b);
            if let Err(e) = decode::<BTreeMap<String, Even>>(&b) {
                assert_eq!(e.bytes(), Some(&b[..]));
                assert!(!e.reason().is_empty());
            }
        }
    }
}
