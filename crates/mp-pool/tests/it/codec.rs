//! The codec through a pool: what postcard cannot decode is refused where
//! it is sent in debug builds, and otherwise fails the task with an error
//! that names the type (a result keeps its bytes, and stays in its
//! `AsyncResult`); what it cannot encode is refused at the call,
//! `SelfDescribing` carries both, and a task's panic brings the worker's
//! backtrace when the worker captured one.

use mp_pool::{ErrorKind, Pool, ProcessPoolExecutor};
use mp_process::SelfDescribing;
use mp_test_helpers::codec::{Flat, REFUSES, Refuses, Untagged, VALUE, flat, json};
use mp_test_helpers::run_again;
use serde_json::Value;

use crate::{METHODS, inc, pool_with, shared};

fn echo_value(v: Value) -> Value {
    v
}

fn echo_wrapped(v: SelfDescribing<Value>) -> SelfDescribing<Value> {
    v
}

fn wrap_untagged(n: u32) -> SelfDescribing<Untagged> {
    SelfDescribing(if n.is_multiple_of(2) {
        Untagged::Num(n)
    } else {
        Untagged::Text(n.to_string())
    })
}

fn make_untagged(n: u32) -> Untagged {
    Untagged::Num(n)
}

fn flat_id(f: Flat) -> u32 {
    f.id
}

fn wrapped_flat_id(f: SelfDescribing<Flat>) -> u32 {
    f.id
}

fn refuses(_: u32) -> Refuses {
    Refuses
}

#[test]
/// Refused at the call in debug builds (`check_sent`), by the worker in
/// release builds: named either way.
fn plain_arguments_are_refused_by_name_and_the_pool_goes_on() {
    let _g = shared();
    for m in METHODS {
        let pool = pool_with(m);
        let e = pool.apply(echo_value, json()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization, "{m}");
        let s = e.to_string();
        assert!(
            s.contains(VALUE) && s.contains("deserialize_any"),
            "{m}: {s}"
        );
        assert!(s.contains("SelfDescribing"), "{s}");
        assert_eq!(pool.apply(inc, 1).unwrap(), 2, "{m}");
        // Wrapped, the same value goes and comes back.
        assert_eq!(
            pool.apply(echo_wrapped, SelfDescribing(json())).unwrap().0,
            json()
        );
        let out = pool.map(wrap_untagged, 0..9, Some(2)).unwrap();
        assert_eq!(out, (0..9).map(wrap_untagged).collect::<Vec<_>>(), "{m}");
    }
}

#[test]
/// A result postcard cannot decode: refused by the worker that made it in
/// debug builds; in release builds by the caller, keeping its bytes. Either
/// way the failure stays in its `AsyncResult` and names the type.
fn a_result_that_does_not_decode_is_refused_or_keeps_its_bytes_and_stays() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let r = pool.apply_async(make_untagged, 7).unwrap();
    for _ in 0..2 {
        let e = r.get().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        if cfg!(debug_assertions) {
            let s = e.to_string();
            assert!(
                s.contains("Untagged") && s.contains("SelfDescribing"),
                "{s}"
            );
            assert!(
                s.contains("postcard can encode it but not decode it"),
                "{s}"
            );
            continue;
        }
        let c = e.codec_error().expect("the codec's error");
        assert!(c.is_decode() && c.type_name().ends_with("Untagged"), "{c}");
        let sent = mp_process::encode(&Untagged::Num(7)).unwrap();
        assert_eq!(c.bytes(), Some(&sent[..]));
    }
    // In chunks: the error names the element type.
    let e = pool.map(make_untagged, 0..10, Some(3)).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("Untagged"), "{s}");
    assert!(s.contains("SelfDescribing"), "{s}");
    // imap: each chunk's failure at its place, and iteration goes on.
    let got: Vec<_> = pool.imap(make_untagged, 0..4, Some(2)).unwrap().collect();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| {
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("Untagged"))
    }));
    // The executor: the future's error names the type.
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let e = ex.submit(make_untagged, 1).unwrap().result().unwrap_err();
    assert!(e.to_string().contains("Untagged`"), "{e}");
    ex.shutdown(true, false).unwrap();
}

#[test]
fn unencodable_arguments_and_results_are_named_with_serdes_message() {
    let _g = shared();
    let pool = Pool::new(2).unwrap();
    let e = pool.apply(flat_id, flat()).unwrap_err();
    let c = e.codec_error().expect("refused at the call");
    assert!(!c.is_decode() && c.type_name().ends_with("Flat"), "{c}");
    assert!(c.reason().contains("unknown length"), "{c}");
    let e = pool
        .map(flat_id, vec![flat(), flat()], Some(1))
        .unwrap_err();
    assert!(
        e.to_string().contains("Flat") && e.to_string().contains("unknown length"),
        "{e}"
    );
    assert_eq!(
        pool.apply(wrapped_flat_id, SelfDescribing(flat())).unwrap(),
        4
    );

    // A result whose Serialize fails: serde's message, the type, one task
    // or a chunk of them.
    let e = pool.apply(refuses, 1).unwrap_err();
    let s = e.to_string();
    assert!(s.contains(REFUSES) && s.contains("Refuses`"), "{s}");
    let e = pool.map(refuses, 0..6, Some(3)).unwrap_err();
    assert!(e.to_string().contains(REFUSES), "{e}");
    assert_eq!(pool.apply(inc, 41).unwrap(), 42);
}

fn panics_deep(n: u32) -> u32 {
    if n == 0 {
        panic!("deep task panic");
    }
    panics_deep(n - 1) + 1
}

/// Set when this test binary runs again for `a_task_panic_carries_the_workers_backtrace`.
const AGAIN: &str = "MP_POOL_TEST_BACKTRACE";

#[test]
fn a_task_panic_carries_the_workers_backtrace() {
    run_again("codec::backtrace_in_workers", AGAIN, Some("1"));
    run_again("codec::backtrace_in_workers", AGAIN, None);
}

/// The other half of `a_task_panic_carries_the_workers_backtrace` (does
/// nothing when run on its own).
#[test]
fn backtrace_in_workers() {
    let Ok(want) = std::env::var(AGAIN) else {
        return;
    };
    let _g = shared();
    for m in METHODS {
        let pool = pool_with(m);
        let e = pool.apply(panics_deep, 2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{m}");
        assert_eq!(e.panic_info().unwrap().message(), "deep task panic");
        let e2 = pool.map(panics_deep, [1, 0], Some(2)).unwrap_err();
        if want == "off" {
            assert_eq!(e.backtrace(), None, "{m}");
            assert_eq!(e2.backtrace(), None, "{m}");
            continue;
        }
        for e in [e, e2] {
            let bt = e.backtrace().expect("a backtrace");
            assert!(bt.contains("panics_deep"), "{m}: {bt}");
            assert!(format!("{e:#}").contains("worker's backtrace"));
        }
    }
}
