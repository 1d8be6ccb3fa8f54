//! The codec across real children: what postcard cannot carry is named
//! (type and reason) and never lost, `SelfDescribing` carries it, and a
//! child's panic brings its backtrace when the child captured one.

use std::collections::BTreeMap;

use mp_process::{ErrorKind, Process, SelfDescribing, StartMethod};
use mp_test_helpers::run_again;
use serde::{Deserialize, Serialize};

use crate::{METHODS, shared};

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
    rest: BTreeMap<String, u32>,
}

/// Serializes with a custom error, always.
#[derive(Debug, Deserialize)]
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Refuses says no"))
    }
}

fn json() -> serde_json::Value {
    serde_json::json!({"name": "x", "items": [1, 2.5, null, {"deep": true}]})
}

fn flat() -> Flat {
    Flat {
        id: 4,
        rest: [("a".to_owned(), 1), ("b".to_owned(), 2)].into(),
    }
}

fn echo_value(v: serde_json::Value) -> serde_json::Value {
    v
}

fn echo_wrapped(
    v: (
        SelfDescribing<serde_json::Value>,
        SelfDescribing<Untagged>,
        SelfDescribing<Flat>,
    ),
) -> (
    SelfDescribing<serde_json::Value>,
    SelfDescribing<Untagged>,
    SelfDescribing<Flat>,
) {
    v
}

fn make_untagged(_: ()) -> Untagged {
    Untagged::Text("made".into())
}

fn take_flat(f: Flat) -> u32 {
    f.id
}

fn refuses(_: ()) -> Refuses {
    Refuses
}

fn take_refuses(_: Refuses) {}

/// Debug builds refuse, at `start`, an argument postcard cannot decode
/// (`check_sent`); release builds let the child refuse it.
#[test]
fn a_plain_value_argument_is_refused_by_name() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(echo_value, json()).start_method(m);
        let err = if cfg!(debug_assertions) {
            let err = p.start().unwrap_err();
            let c = err.codec_error().expect("the codec's error");
            assert!(!c.is_decode(), "{c}");
            assert!(
                err.to_string().contains("cannot encode the arguments"),
                "{err}"
            );
            err
        } else {
            p.start().unwrap();
            let err = p.join().unwrap_err();
            assert!(
                err.to_string().contains("cannot decode the arguments"),
                "{err}"
            );
            err
        };
        assert_eq!(err.kind(), ErrorKind::Serialization, "{m}");
        let s = err.to_string();
        assert!(s.contains("serde_json::value::Value"), "{s}");
        assert!(s.contains("deserialize_any"), "{s}");
        assert!(s.contains("SelfDescribing"), "{s}");
    }
}

#[test]
fn wrapped_values_arrive_intact() {
    let _g = shared();
    let args = (
        SelfDescribing(json()),
        SelfDescribing(Untagged::Num(9)),
        SelfDescribing(flat()),
    );
    for m in METHODS {
        let mut p = Process::new(echo_wrapped, args.clone()).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), args, "{m}");
    }
}

/// A result postcard cannot decode: refused by the child that made it in
/// debug builds; in release builds the parent refuses it, and keeps its
/// bytes.
#[test]
fn a_result_that_does_not_decode_is_refused_or_keeps_its_bytes() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(make_untagged, ()).start_method(m);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{m}");
        if cfg!(debug_assertions) {
            let s = err.to_string();
            assert!(s.contains("cannot encode the result in the child"), "{s}");
            assert!(s.contains("Untagged"), "{s}");
            assert!(s.contains("SelfDescribing"), "{s}");
            continue;
        }
        let c = err.codec_error().expect("the codec's error");
        assert!(c.is_decode());
        assert!(c.type_name().ends_with("Untagged"), "{c}");
        assert!(c.reason().contains("SelfDescribing"), "{c}");
        // The result is not lost: the child's bytes are all here.
        let sent = mp_process::encode(&Untagged::Text("made".into())).unwrap();
        assert_eq!(c.bytes(), Some(&sent[..]), "{m}");
        assert!(
            err.to_string().contains("cannot decode the result"),
            "{err}"
        );
    }
}

#[test]
fn unencodable_arguments_are_refused_at_the_sender() {
    let _g = shared();
    for m in METHODS {
        // flatten: postcard needs the length of the map first.
        let mut p = Process::new(take_flat, flat()).start_method(m);
        let err = p.start().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{m}");
        let c = err.codec_error().expect("the codec's error");
        assert!(!c.is_decode());
        assert!(c.type_name().ends_with("Flat"), "{c}");
        assert!(c.reason().contains("unknown length"), "{c}");
        assert!(p.pid().is_none(), "nothing started");

        // A custom error keeps serde's message.
        let mut p = Process::new(take_refuses, Refuses).start_method(m);
        let err = p.start().unwrap_err();
        let s = err.to_string();
        assert!(
            s.contains("Refuses says no") && s.contains("codec::Refuses`"),
            "{s}"
        );
    }
}

#[test]
fn an_unencodable_result_is_named_with_serdes_message() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(refuses, ()).start_method(m);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{m}");
        let s = err.to_string();
        assert!(s.contains("cannot encode the result"), "{s}");
        assert!(s.contains("codec::Refuses`"), "{s}");
        assert!(s.contains("Refuses says no"), "{s}");
    }
}

fn panics_deep(n: u32) -> u32 {
    if n == 0 {
        panic!("deep panic");
    }
    panics_deep(n - 1) + 1
}

/// Set when this test binary runs again as the child of
/// `a_child_panic_carries_its_backtrace`, with the wanted `RUST_BACKTRACE`.
const AGAIN: &str = "MP_PROCESS_TEST_BACKTRACE";

#[test]
fn a_child_panic_carries_its_backtrace() {
    run_again("codec::backtrace_in_children", AGAIN, Some("1"));
    run_again("codec::backtrace_in_children", AGAIN, None);
}

/// The other half of `a_child_panic_carries_its_backtrace` (does nothing
/// when run on its own).
#[test]
fn backtrace_in_children() {
    let Ok(want) = std::env::var(AGAIN) else {
        return;
    };
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(panics_deep, 3).start_method(m);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panicked, "{m}");
        assert_eq!(err.panic_info().unwrap().message(), "deep panic");
        if want == "off" {
            assert_eq!(err.backtrace(), None, "{m}");
            continue;
        }
        let bt = err.backtrace().expect("a backtrace");
        // The child's own frames, resolved in the child.
        assert!(bt.contains("panics_deep"), "{m}: {bt}");
        assert_eq!(err.panic_info().unwrap().backtrace(), Some(bt));
        let shown = format!("{err:#}");
        assert!(shown.contains("child's backtrace") && shown.contains("panics_deep"));
        assert!(!err.to_string().contains("child's backtrace"));
    }
    let _ = StartMethod::Fork;
}
