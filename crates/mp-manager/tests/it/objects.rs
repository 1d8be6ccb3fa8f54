//! The shared objects' semantics, through proxies.

use std::time::{Duration, Instant};

use mp_manager::{Error, Manager};

#[test]
fn values_and_numbers() {
    let m = Manager::start().unwrap();
    let v = m.value(String::from("a")).unwrap();
    v.set(&"b".to_owned()).unwrap();
    assert_eq!(v.get().unwrap(), "b");
    assert_eq!(
        v.compare_exchange(&"b".into(), &"c".into()).unwrap(),
        Ok("b".to_owned())
    );
    assert_eq!(
        v.compare_exchange(&"x".into(), &"d".into()).unwrap(),
        Err("c".to_owned())
    );
    let n = m.value(10u8).unwrap();
    assert_eq!(n.fetch_add(250).unwrap(), 10);
    assert_eq!(n.get().unwrap(), 4, "wraps like std's atomics");
    let f = m.value(1.5f64).unwrap();
    assert_eq!(f.fetch_sub(0.5).unwrap(), 1.5);
    assert_eq!(f.get().unwrap(), 1.0);
}

#[test]
fn locks_and_rlocks() {
    let m = Manager::start().unwrap();
    let l = m.lock().unwrap();
    assert!(
        matches!(l.release(), Err(Error::Misuse(_))),
        "releasing an unlocked lock"
    );
    let g = l.lock().unwrap();
    assert!(l.try_lock().unwrap().is_none(), "a lock is not reentrant");
    let t = Instant::now();
    assert!(
        l.lock_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none()
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
    g.release().unwrap();
    assert!(l.try_lock().unwrap().is_some());

    let r = m.rlock().unwrap();
    assert!(r.acquire(true, None).unwrap());
    assert!(r.acquire(true, None).unwrap(), "an rlock is reentrant");
    r.release().unwrap();
    r.release().unwrap();
    assert!(matches!(r.release(), Err(Error::Misuse(_))));
    // Another thread has another connection, so another owner.
    assert!(r.acquire(true, None).unwrap());
    let r2 = r.clone();
    let other = std::thread::spawn(move || r2.release()).join().unwrap();
    assert!(
        matches!(other, Err(Error::Misuse(_))),
        "only the owner releases an rlock"
    );
    r.release().unwrap();
}

#[test]
fn conditions_events_semaphores() {
    let m = Manager::start().unwrap();
    let c = m.condition().unwrap();
    assert!(
        matches!(c.notify(1), Err(Error::Misuse(_))),
        "notify needs the lock"
    );
    let c2 = c.clone();
    let waiter = std::thread::spawn(move || {
        let _g = c2.lock().unwrap();
        c2.wait(Some(Duration::from_secs(30))).unwrap()
    });
    // Notify until the waiter has registered and been woken.
    loop {
        {
            let _g = c.lock().unwrap();
            c.notify_all().unwrap();
        }
        if waiter.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(waiter.join().unwrap());
    let _g = c.lock().unwrap();
    let t = Instant::now();
    assert!(!c.wait(Some(Duration::from_millis(100))).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(100));
    drop(_g);

    let e = m.event().unwrap();
    assert!(!e.is_set().unwrap());
    let t = Instant::now();
    assert!(!e.wait(Some(Duration::from_millis(100))).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(100));
    e.set().unwrap();
    assert!(e.wait(None).unwrap());
    e.clear().unwrap();
    assert!(!e.is_set().unwrap());

    let s = m.semaphore(2).unwrap();
    assert!(s.acquire(false, None).unwrap());
    assert!(s.acquire(false, None).unwrap());
    assert!(!s.acquire(false, None).unwrap());
    let t = Instant::now();
    assert!(!s.acquire(true, Some(Duration::from_millis(100))).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(100));
    s.release().unwrap();
    s.release().unwrap();
    s.release().unwrap();
    assert_eq!(
        s.value().unwrap(),
        3,
        "a plain semaphore goes over its start"
    );
    let b = m.bounded_semaphore(1).unwrap();
    assert!(matches!(b.release(), Err(Error::Misuse(_))));
}

#[test]
fn barriers() {
    let m = Manager::start().unwrap();
    let b = m.barrier(3).unwrap();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || b.wait(Some(Duration::from_secs(30))).unwrap())
        })
        .collect();
    let mut idx: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    idx.sort();
    assert_eq!(idx, vec![0, 1, 2]);
    // A timeout breaks it for everyone; reset mends it.
    let t = Instant::now();
    assert!(matches!(
        b.wait(Some(Duration::from_millis(100))),
        Err(Error::BrokenBarrier)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(b.state().unwrap().2);
    assert!(matches!(b.wait(None), Err(Error::BrokenBarrier)));
    b.reset().unwrap();
    assert_eq!(b.state().unwrap(), (3, 0, false));
    b.abort().unwrap();
    assert!(matches!(b.wait(None), Err(Error::BrokenBarrier)));
    assert!(m.barrier(0).is_err());
}

#[test]
fn queues() {
    let m = Manager::start().unwrap();
    let q = m.bounded_queue::<Vec<u8>>(2).unwrap();
    q.put(&vec![1]).unwrap();
    q.put(&vec![2; 1 << 20]).unwrap();
    assert!(matches!(q.try_put(&vec![3]), Err(Error::Full)));
    let t = Instant::now();
    assert!(matches!(
        q.put_timeout(&vec![3], Duration::from_millis(100)),
        Err(Error::Full)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(q.qsize().unwrap(), 2);
    assert_eq!(q.get().unwrap(), vec![1]);
    assert_eq!(q.get().unwrap().len(), 1 << 20);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(100)),
        Err(Error::Empty)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));

    let j = m.joinable_queue::<u32>().unwrap();
    j.put(&1).unwrap();
    j.put(&2).unwrap();
    assert!(matches!(
        j.join_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    j.get().unwrap();
    j.task_done().unwrap();
    j.get().unwrap();
    j.task_done().unwrap();
    j.join().unwrap();
    assert!(
        matches!(j.task_done(), Err(Error::Misuse(_))),
        "one task_done too many"
    );
}

#[test]
fn dicts_lists_namespaces() {
    let m = Manager::start().unwrap();
    let d = m.dict::<String, i32>().unwrap();
    assert_eq!(d.insert("b".into(), 2).unwrap(), None);
    assert_eq!(d.insert("a".into(), 1).unwrap(), None);
    assert_eq!(d.insert("b".into(), 3).unwrap(), Some(2));
    assert_eq!(
        d.keys().unwrap(),
        vec!["b".to_owned(), "a".to_owned()],
        "insertion order"
    );
    assert_eq!(d.setdefault("c".into(), 9).unwrap(), 9);
    assert_eq!(d.setdefault("c".into(), 0).unwrap(), 9);
    d.update([("d".to_owned(), 4), ("e".to_owned(), 5)])
        .unwrap();
    assert_eq!(d.len().unwrap(), 5);
    assert!(d.contains_key(&"d".into()).unwrap());
    assert_eq!(d.pop(&"d".into()).unwrap(), 4);
    assert!(matches!(d.pop(&"d".into()), Err(Error::NotFound(_))));
    assert_eq!(d.values().unwrap(), vec![3, 1, 9, 5]);
    assert_eq!(d.popitem().unwrap(), ("e".to_owned(), 5), "last inserted");
    assert_eq!(d.popitem().unwrap(), ("c".to_owned(), 9));
    d.clear().unwrap();
    assert!(d.is_empty().unwrap());
    assert!(matches!(d.popitem(), Err(Error::NotFound(_))));

    let l = m.list::<i32>().unwrap();
    l.extend(&[1, 2, 3]).unwrap();
    l.push(&4).unwrap();
    l.insert(0, &0).unwrap();
    l.insert(-1, &9).unwrap();
    assert_eq!(l.snapshot().unwrap(), vec![0, 1, 2, 3, 9, 4]);
    assert_eq!(l.get(-1).unwrap(), 4);
    l.set(-2, &8).unwrap();
    assert_eq!(l.pop_at(0).unwrap(), 0);
    assert_eq!(l.pop().unwrap(), 4);
    assert!(matches!(l.get(10), Err(Error::NotFound(_))));
    assert_eq!(l.len().unwrap(), 4);
    // [1, 2, 3, 8]
    l.extend(&[2, 7]).unwrap();
    assert_eq!(l.slice(1, 3).unwrap(), vec![2, 3]);
    assert_eq!(l.slice(-2, 100).unwrap(), vec![2, 7]);
    assert_eq!(l.slice(4, 1).unwrap(), Vec::<i32>::new());
    assert_eq!(l.count(&2).unwrap(), 2);
    assert_eq!(l.count(&5).unwrap(), 0);
    assert_eq!(l.index(&3).unwrap(), 2);
    assert!(matches!(l.index(&5), Err(Error::NotFound(_))));
    l.remove(&2).unwrap();
    assert!(matches!(l.remove(&5), Err(Error::NotFound(_))));
    l.reverse().unwrap();
    assert_eq!(l.snapshot().unwrap(), vec![7, 2, 8, 3, 1]);

    let ns = m.namespace().unwrap();
    ns.set("name", &"Bob").unwrap();
    ns.set("age", &30u32).unwrap();
    assert_eq!(ns.get::<String>("name").unwrap(), "Bob");
    assert_eq!(
        ns.names().unwrap(),
        vec!["name".to_owned(), "age".to_owned()]
    );
    ns.del("age").unwrap();
    assert!(matches!(ns.get::<u32>("age"), Err(Error::NotFound(_))));
    assert!(matches!(ns.del("age"), Err(Error::NotFound(_))));
    // A type mismatch is an error, not garbage.
    assert!(matches!(
        ns.get::<Vec<u64>>("name"),
        Err(Error::Serialization(_)) | Ok(_)
    ));
}

#[test]
fn large_messages_on_the_local_fast_path() {
    // Local connections carry messages through 64 KiB rings in shared
    // memory: longer ones stream through, over-limit ones end only the
    // connection that sent them.
    let m = Manager::start().unwrap();
    let v = m.value(Vec::<u8>::new()).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    v.set(&big).unwrap();
    assert_eq!(v.get().unwrap(), big);
    let d = m.dict::<u32, Vec<u8>>().unwrap();
    for (i, len) in [0usize, 1, 65_531, 65_532, 65_536, 200_000]
        .into_iter()
        .enumerate()
    {
        let item = vec![i as u8; len];
        d.set(&(i as u32), &item).unwrap();
        assert_eq!(d.get(&(i as u32)).unwrap(), Some(item), "{len} bytes");
    }
    let over = vec![7u8; 65 << 20];
    assert!(v.set(&over).is_err(), "over the server's request limit");
    // The server goes on, and so does this thread, on a new connection.
    assert_eq!(v.get().unwrap(), big);
}

#[test]
fn a_waiter_gets_the_lock_from_a_holder_that_takes_it_straight_back() {
    // A release does not wake the waiters while its client takes the lock
    // straight back, but a waiter starves for a few milliseconds at most.
    let m = Manager::start().unwrap();
    let lock = m.lock().unwrap();
    let got = m.event().unwrap();
    let hog = {
        let (lock, got) = (lock.clone(), got.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut rounds = 0u64;
            while start.elapsed() < Duration::from_secs(20) {
                drop(lock.lock().unwrap());
                rounds += 1;
                if rounds.is_multiple_of(100) && got.is_set().unwrap() {
                    return true;
                }
            }
            false
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let held = lock.lock_timeout(Duration::from_secs(15)).unwrap();
    assert!(
        held.is_some(),
        "starved by a holder that keeps taking it back"
    );
    got.set().unwrap();
    drop(held);
    assert!(hog.join().unwrap(), "the holder was still looping");
}
