//! The encoder makes exactly postcard's bytes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;

use super::encode_into;

fn same<T: Serialize + ?Sized>(v: &T) {
    let mut ours = vec![7u8];
    encode_into(v, &mut ours).expect("encodes");
    let mut theirs = vec![7u8];
    theirs.extend(postcard::to_stdvec(v).expect("postcard encodes"));
    assert_eq!(ours, theirs);
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(i32);

#[derive(Serialize)]
struct Tuple(u8, String);

#[derive(Serialize)]
struct Fields {
    a: Option<u64>,
    b: Vec<(i16, char)>,
    c: BTreeMap<String, f64>,
}

#[derive(Serialize)]
enum E {
    A,
    B(i64),
    C(u32, bool),
    D { x: f32, y: Vec<u8> },
}

#[test]
fn every_form_matches_postcard() {
    same(&());
    same(&Unit);
    same(&Newtype(-5));
    same(&Tuple(255, "héllo".into()));
    same(&Fields {
        a: Some(u64::MAX),
        b: vec![(-300, 'é'), (i16::MIN, '\u{10ffff}')],
        c: [("x".to_string(), 1.5), ("y".to_string(), -0.0)].into(),
    });
    same(&Fields {
        a: None,
        b: Vec::new(),
        c: BTreeMap::new(),
    });
    same(&[
        E::A,
        E::B(i64::MIN),
        E::C(u32::MAX, true),
        E::D {
            x: 2.5,
            y: vec![1, 2],
        },
    ]);
    same(&(i128::MIN, i128::MAX, u128::MAX, -1i8, 200u8));
    same(&serde_bytes_like(&[0, 1, 2, 255]));
    same(&format_args!("{}-{}", 1, "two"));
}

/// `serialize_bytes`, as `serde_bytes` would call it.
fn serde_bytes_like(b: &[u8]) -> impl Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Bytes(b)
}

#[test]
fn a_sequence_of_unknown_length_is_an_error_as_in_postcard() {
    struct Unknown;
    impl Serialize for Unknown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = s.serialize_seq(None)?;
            seq.serialize_element(&1u8)?;
            seq.end()
        }
    }
    assert!(postcard::to_stdvec(&Unknown).is_err());
    assert!(encode_into(&Unknown, &mut Vec::new()).is_err());
}

proptest! {
    #[test]
    fn integers_match_postcard(v in any::<Vec<(i64, u64, i32, u16, i128, u128)>>()) {
        same(&v);
    }

    #[test]
    fn floats_and_strings_match_postcard(v in any::<Vec<(f64, f32, String, Option<char>)>>()) {
        same(&v);
    }
}
