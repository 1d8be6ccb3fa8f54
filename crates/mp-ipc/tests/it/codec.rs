//! The codec through queues and pipes, across processes: a value postcard
//! cannot decode is refused at a typed queue's sender in debug builds, and
//! otherwise comes back as an error that names its type and holds its
//! bytes (nothing is lost); one it cannot encode is refused at the sender,
//! the value handed back; `SelfDescribing` carries them intact.

use mp_ipc::{Connection, Error, GetError, JoinableQueue, PutError, Queue, SimpleQueue, pipe};
use mp_process::{CodecError, Process, SelfDescribing};
use mp_test_helpers::codec::{Flat, REFUSES, Refuses, Untagged, VALUE, flat, json};
use serde_json::Value;

use super::{GENEROUS, METHODS};

/// A decode error as every receiver must give it: the type named, the way
/// out said, the sender's bytes kept.
fn assert_named_with_bytes(c: &CodecError, type_end: &str, sent: &[u8]) {
    assert!(c.is_decode());
    assert!(c.type_name().ends_with(type_end), "{c}");
    assert!(c.reason().contains("deserialize_any"), "{c}");
    assert!(c.reason().contains("SelfDescribing"), "{c}");
    assert_eq!(c.bytes(), Some(sent), "the item's bytes come back");
}

/// A refusal at the sender, as debug builds give it (`check_sent`): the
/// item handed back, the type named, the way out said.
fn assert_refused_at_sender<T: std::fmt::Debug + PartialEq>(
    r: Result<(), PutError<T>>,
    item: &T,
    type_end: &str,
) {
    match r {
        Err(PutError::Encode(back, c)) => {
            assert_eq!(&back, item, "the item comes back");
            assert!(!c.is_decode(), "{c}");
            assert!(c.type_name().ends_with(type_end), "{c}");
            assert!(c.reason().contains("deserialize_any"), "{c}");
            assert!(c.reason().contains("SelfDescribing"), "{c}");
        }
        other => panic!("{other:?}"),
    }
}

fn put_plain((q, wq): (Queue<Value>, Queue<SelfDescribing<Value>>)) {
    let r = q.put(json());
    if cfg!(debug_assertions) {
        assert_refused_at_sender(r, &json(), VALUE);
    } else {
        r.unwrap();
    }
    wq.put(SelfDescribing(json())).unwrap();
}

/// Debug builds refuse a plain `Value` at `put`, in the child that puts
/// it; release builds let it through and the receiver refuses it, with
/// its bytes. Wrapped, it arrives intact either way.
#[test]
fn queue_plain_values_are_refused_wrapped_ones_arrive_intact() {
    let sent = mp_process::encode(&json()).unwrap();
    for m in METHODS {
        let q: Queue<Value> = Queue::new().unwrap();
        let wq: Queue<SelfDescribing<Value>> = Queue::new().unwrap();
        let mut p = Process::new(put_plain, (q.clone(), wq.clone())).start_method(m);
        p.start().unwrap();
        p.join_timeout(GENEROUS).unwrap();
        assert_eq!(wq.get_timeout(GENEROUS).unwrap().0, json(), "{m}");
        if cfg!(debug_assertions) {
            assert_eq!(q.qsize(), 0, "{m}: nothing half-sent");
            assert_refused_at_sender(q.put(json()), &json(), VALUE);
            continue;
        }
        match q.get_timeout(GENEROUS) {
            Err(GetError::Decode(c)) => assert_named_with_bytes(&c, VALUE, &sent),
            other => panic!("{m}: {other:?}"),
        }
        // The queue works on after the failure: taken, each time, with
        // its bytes.
        assert_eq!(q.qsize(), 0);
        q.put(json()).unwrap();
        assert_eq!(q.qsize(), 1);
        assert!(
            matches!(q.get_timeout(GENEROUS), Err(GetError::Decode(c)) if c.bytes() == Some(&sent[..]))
        );
    }
}

#[test]
fn queue_refuses_what_postcard_cannot_encode_and_gives_it_back() {
    let q: Queue<Flat> = Queue::new().unwrap();
    match q.put(flat()) {
        Err(PutError::Encode(v, c)) => {
            assert_eq!(v, flat());
            assert!(!c.is_decode() && c.type_name().ends_with("Flat"), "{c}");
            assert!(c.reason().contains("unknown length"), "{c}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.qsize(), 0);
    let q: Queue<Refuses> = Queue::new().unwrap();
    let e = q.put(Refuses).unwrap_err();
    let s = e.to_string();
    assert!(s.contains(REFUSES) && s.contains("Refuses`"), "{s}");
    assert_eq!(e.into_inner(), Refuses);
    // Wrapped, the flattened struct travels.
    let wq: Queue<SelfDescribing<Flat>> = Queue::new().unwrap();
    wq.put(SelfDescribing(flat())).unwrap();
    assert_eq!(wq.get_timeout(GENEROUS).unwrap().0, flat());
}

fn put_untagged((q, j): (SimpleQueue<Untagged>, JoinableQueue<Untagged>)) {
    let (t, n) = (Untagged::Text("t".into()), Untagged::Num(5));
    if cfg!(debug_assertions) {
        assert_refused_at_sender(q.put(t.clone()), &t, "Untagged");
        assert_refused_at_sender(j.put(n.clone()), &n, "Untagged");
    } else {
        q.put(t).unwrap();
        j.put(n).unwrap();
    }
}

#[test]
fn simple_and_joinable_queues_refuse_or_give_the_bytes_back() {
    for m in METHODS {
        let q: SimpleQueue<Untagged> = SimpleQueue::new().unwrap();
        let j: JoinableQueue<Untagged> = JoinableQueue::new().unwrap();
        let mut p = Process::new(put_untagged, (q.clone(), j.clone())).start_method(m);
        p.start().unwrap();
        p.join_timeout(GENEROUS).unwrap();
        if cfg!(debug_assertions) {
            // Refused at the sender: nothing queued, nothing unfinished.
            assert_eq!(j.unfinished_tasks(), 0, "{m}");
            assert!(q.empty(), "{m}");
            continue;
        }
        let sent = mp_process::encode(&Untagged::Text("t".into())).unwrap();
        match q.get_timeout(GENEROUS) {
            Err(GetError::Decode(c)) => assert_named_with_bytes(&c, "Untagged", &sent),
            other => panic!("{m}: {other:?}"),
        }
        let sent = mp_process::encode(&Untagged::Num(5)).unwrap();
        match j.get_timeout(GENEROUS) {
            Err(GetError::Decode(c)) => assert_named_with_bytes(&c, "Untagged", &sent),
            other => panic!("{m}: {other:?}"),
        }
        // The failed item still counts as unfinished until task_done.
        assert_eq!(j.unfinished_tasks(), 1);
        j.task_done().unwrap();
        j.join_timeout(GENEROUS).unwrap();
    }
    let q: SimpleQueue<SelfDescribing<Untagged>> = SimpleQueue::new().unwrap();
    q.put(SelfDescribing(Untagged::Num(1))).unwrap();
    assert_eq!(q.get().unwrap().0, Untagged::Num(1));
    let j: JoinableQueue<Refuses> = JoinableQueue::new().unwrap();
    assert!(matches!(j.put(Refuses), Err(PutError::Encode(_, c)) if c.reason() == REFUSES));
    assert_eq!(j.unfinished_tasks(), 0);
}

fn send_plain(mut c: Connection) {
    c.send(&json()).unwrap();
    c.send(&SelfDescribing(json())).unwrap();
    c.send(&Untagged::Num(2)).unwrap();
    // Wait for the parent, so that the end stays open under fork.
    let _ = c.recv::<()>();
}

#[test]
fn pipe_plain_values_come_back_as_bytes_and_the_connection_goes_on() {
    for m in METHODS {
        let (mut a, b) = pipe(true).unwrap();
        let mut p = Process::new(send_plain, b).start_method(m);
        p.start().unwrap();
        let sent = mp_process::encode(&json()).unwrap();
        match a.recv_timeout::<Value>(GENEROUS) {
            Err(Error::Decode(c)) => assert_named_with_bytes(&c, VALUE, &sent),
            other => panic!("{m}: {other:?}"),
        }
        let w: SelfDescribing<Value> = a.recv_timeout(GENEROUS).unwrap();
        assert_eq!(w.0, json(), "{m}");
        let e = a.recv_timeout::<Untagged>(GENEROUS).unwrap_err();
        assert!(e.to_string().contains("Untagged`"), "{e}");
        a.send(&()).unwrap();
        p.join_timeout(GENEROUS).unwrap();
    }
}

#[test]
fn pipe_refuses_unencodable_values_and_sends_nothing() {
    let (mut a, mut b) = pipe(true).unwrap();
    match a.send(&flat()) {
        Err(Error::Encode(c)) => {
            assert!(c.type_name().ends_with("Flat") && c.reason().contains("unknown length"))
        }
        other => panic!("{other:?}"),
    }
    let e = a.send(&Refuses).unwrap_err();
    assert!(e.to_string().contains(REFUSES), "{e}");
    assert!(!b.poll(Some(std::time::Duration::ZERO)).unwrap());
    a.send(&SelfDescribing(flat())).unwrap();
    assert_eq!(b.recv::<SelfDescribing<Flat>>().unwrap().0, flat());
}
