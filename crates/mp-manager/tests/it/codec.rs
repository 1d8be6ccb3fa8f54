//! The codec through proxies: a managed value or queue of a type postcard
//! cannot decode is refused at the proxy in debug builds, and otherwise
//! gives an error that names the type and holds the bytes (the value stays
//! on the server; a queue item comes back as bytes); one
//! it cannot encode is refused here; `SelfDescribing` carries them.

use mp_manager::{Error, Manager, QueueProxy, ValueProxy};
use mp_process::{CodecError, Process, SelfDescribing};
use mp_test_helpers::codec::{Flat, REFUSES, Refuses, Untagged, VALUE, flat, json};
use serde_json::Value;

use crate::METHODS;

fn codec(r: Result<impl std::fmt::Debug, Error>) -> CodecError {
    match r {
        Err(Error::Codec(c)) => c,
        other => panic!("{other:?}"),
    }
}

fn put_from_child((q, w): (QueueProxy<Value>, QueueProxy<SelfDescribing<Untagged>>)) {
    let r = q.put(&json());
    if cfg!(debug_assertions) {
        // Refused at the sender (`check_sent`): nothing reaches the server.
        let c = codec(r);
        assert!(!c.is_decode() && c.type_name() == VALUE, "{c}");
        assert!(c.reason().contains("SelfDescribing"), "{c}");
    } else {
        r.unwrap();
    }
    w.put(&SelfDescribing(Untagged::Text("u".into()))).unwrap();
}

/// Debug builds refuse a plain `Value` at the proxy's `put`; release builds
/// store it, and the reader gets its bytes back.
#[test]
fn a_managed_queue_refuses_or_gives_back_the_bytes_of_what_it_cannot_decode() {
    let m = Manager::start().unwrap();
    let sent = mp_process::encode(&json()).unwrap();
    for method in METHODS {
        let q = m.queue::<Value>().unwrap();
        let w = m.queue::<SelfDescribing<Untagged>>().unwrap();
        let mut p = Process::new(put_from_child, (q.clone(), w.clone())).start_method(method);
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(w.get().unwrap().0, Untagged::Text("u".into()), "{method}");
        if cfg!(debug_assertions) {
            assert_eq!(q.qsize().unwrap(), 0, "{method}");
            continue;
        }
        assert_eq!(q.qsize().unwrap(), 1);
        let c = codec(q.get());
        assert!(c.is_decode() && c.type_name() == VALUE, "{c}");
        assert!(c.reason().contains("SelfDescribing"), "{c}");
        assert_eq!(
            c.bytes(),
            Some(&sent[..]),
            "{method}: the item's bytes come back"
        );
    }
}

fn read_value(v: ValueProxy<SelfDescribing<Value>>) -> SelfDescribing<Value> {
    v.get().unwrap()
}

#[test]
fn a_managed_value_is_refused_or_stays_on_the_server_when_it_does_not_decode() {
    let m = Manager::start().unwrap();
    if cfg!(debug_assertions) {
        // Refused before the server stores it.
        let c = codec(m.value(json()));
        assert!(!c.is_decode() && c.type_name() == VALUE, "{c}");
        assert!(c.reason().contains("deserialize_any"), "{c}");
        let c = codec(m.value(Untagged::Num(1)));
        assert!(c.type_name().ends_with("Untagged"), "{c}");
    } else {
        let v = m.value(json()).unwrap();
        for _ in 0..2 {
            let c = codec(v.get());
            assert!(
                c.type_name() == VALUE && c.reason().contains("deserialize_any"),
                "{c}"
            );
            assert_eq!(c.bytes(), Some(&mp_process::encode(&json()).unwrap()[..]));
        }
        let u = m.value(Untagged::Num(1)).unwrap();
        assert!(codec(u.get()).type_name().ends_with("Untagged"));
    }

    let w = m.value(SelfDescribing(json())).unwrap();
    for method in METHODS {
        let mut p = Process::new(read_value, w.clone()).start_method(method);
        p.start().unwrap();
        assert_eq!(p.join().unwrap().0, json(), "{method}");
    }
    let d = m.dict::<String, SelfDescribing<Untagged>>().unwrap();
    d.set(&"k".into(), &SelfDescribing(Untagged::Num(3)))
        .unwrap();
    assert_eq!(d.get(&"k".into()).unwrap().unwrap().0, Untagged::Num(3));
}

#[test]
fn what_postcard_cannot_encode_is_refused_before_the_server() {
    let m = Manager::start().unwrap();
    let c = codec(m.value(flat()));
    assert!(!c.is_decode() && c.type_name().ends_with("Flat"), "{c}");
    assert!(c.reason().contains("unknown length"), "{c}");
    let q = m.queue::<Refuses>().unwrap();
    let c = codec(q.put(&Refuses));
    assert_eq!(c.reason(), REFUSES);
    assert!(c.to_string().contains("Refuses`"), "{c}");
    assert_eq!(q.qsize().unwrap(), 0, "nothing was put");
    let l = m.list::<SelfDescribing<Flat>>().unwrap();
    l.push(&SelfDescribing(flat())).unwrap();
    assert_eq!(l.get(0).unwrap().0, flat());
}
