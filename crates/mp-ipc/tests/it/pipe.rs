//! `pipe`, `Connection` and `wait`.

use std::time::{Duration, Instant};

use mp_ipc::{Connection, Error, pipe, wait};
use mp_process::Process;

use super::{GENEROUS, METHODS, fd_count};

/// Echoes until `(0, "stop")`: under fork the child inherits the parent's
/// end too, so end of stream alone would never come.
fn echo(mut c: Connection) {
    loop {
        let v = c.recv::<(u32, String)>().unwrap();
        if v == (0, "stop".to_string()) {
            return;
        }
        c.send(&v).unwrap();
    }
}

#[test]
fn values_and_bytes_round_trip_in_children_under_every_method() {
    for m in METHODS {
        let (mut a, b) = pipe(true).unwrap();
        let mut p = Process::new(echo, b).start_method(m);
        p.start().unwrap();
        for i in 1..50 {
            a.send(&(i, format!("m{i}"))).unwrap();
            assert_eq!(a.recv::<(u32, String)>().unwrap(), (i, format!("m{i}")));
        }
        a.send(&(0, "stop")).unwrap();
        p.join().unwrap();
    }
}

#[test]
fn boundaries_empty_messages_and_bytes_into() {
    let (mut a, mut b) = pipe(true).unwrap();
    for m in [&b"a"[..], b"b", b"cd", b""] {
        a.send_bytes(m).unwrap();
    }
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(b.recv_bytes().unwrap(), b"a");
    assert_eq!(b.recv_bytes().unwrap(), b"b");
    let mut buf = [0u8; 1];
    match b.recv_bytes_into(&mut buf) {
        Err(Error::BufferTooShort(m)) => assert_eq!(m, b"cd"),
        other => panic!("{other:?}"),
    }
    assert!(
        b.poll(Some(Duration::ZERO)).unwrap(),
        "an empty message is a message"
    );
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 0);
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    a.send_bytes_range(b"hello", 1, Some(3)).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"ell");
    a.send_bytes_range(b"hello", 5, None).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
    assert!(matches!(
        a.send_bytes_range(b"hello", 6, None),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        a.send_bytes_range(b"hello", 2, Some(4)),
        Err(Error::InvalidInput(_))
    ));
    // A value of the wrong type is a decode error, not a panic.
    a.send(&"text").unwrap();
    assert!(matches!(b.recv::<u64>(), Err(Error::Decode(_))));
}

#[test]
fn one_way_pipe_and_close() {
    let (mut r, mut w) = pipe(false).unwrap();
    assert!(r.readable() && !r.writable() && w.writable() && !w.readable());
    assert!(matches!(r.send(&1), Err(Error::NotWritable)));
    assert!(matches!(w.recv::<i32>(), Err(Error::NotReadable)));
    assert!(matches!(w.poll(None), Err(Error::NotReadable)));
    w.send(&1).unwrap();
    w.send(&2).unwrap();
    w.close();
    w.close();
    assert!(w.closed());
    assert!(matches!(w.send(&3), Err(Error::Closed)));
    assert_eq!(r.recv::<i32>().unwrap(), 1);
    assert_eq!(r.recv::<i32>().unwrap(), 2);
    assert!(matches!(r.recv::<i32>(), Err(Error::Eof)));
    assert!(
        r.poll(Some(Duration::ZERO)).unwrap(),
        "end of stream counts as ready"
    );
    r.close();
    assert!(matches!(r.recv::<i32>(), Err(Error::Closed)));
}

#[test]
fn send_to_a_closed_peer_is_an_error() {
    let (mut a, b) = pipe(true).unwrap();
    drop(b);
    let e = (0..100).find_map(|_| a.send_bytes(&[0; 1024]).err());
    assert!(matches!(e, Some(Error::Io(_))), "{e:?}");
}

fn send_then_hang(mut c: Connection) {
    for i in 0..100u32 {
        c.send(&i).unwrap();
    }
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn peer_killed_mid_stream_buffered_messages_then_eof() {
    for m in METHODS {
        let (mut a, b) = pipe(true).unwrap();
        let mut p = Process::new(send_then_hang, b).start_method(m);
        p.start().unwrap();
        assert_eq!(a.recv::<u32>().unwrap(), 0);
        // Everything is sent before the kill (the child then sleeps).
        std::thread::sleep(Duration::from_millis(100));
        p.kill().unwrap();
        let killed = Instant::now();
        for i in 1..100u32 {
            assert_eq!(a.recv::<u32>().unwrap(), i);
        }
        assert!(matches!(
            a.recv_timeout::<u32>(Duration::from_secs(2)),
            Err(Error::Eof)
        ));
        assert!(killed.elapsed() < GENEROUS);
        let _ = p.join();
    }
}

#[test]
fn timeouts_return_no_earlier_than_asked() {
    let (mut a, _b) = pipe(true).unwrap();
    let t = Duration::from_millis(150);
    let start = Instant::now();
    assert!(!a.poll(Some(t)).unwrap());
    assert!(start.elapsed() >= t);
    let start = Instant::now();
    assert!(matches!(a.recv_timeout::<u8>(t), Err(Error::Timeout)));
    assert!(start.elapsed() >= t && start.elapsed() < GENEROUS);
    let start = Instant::now();
    assert!(matches!(a.recv_bytes_timeout(t), Err(Error::Timeout)));
    assert!(start.elapsed() >= t);
    let start = Instant::now();
    let mut into = [0u8; 8];
    assert!(matches!(
        a.recv_bytes_into_timeout(&mut into, t),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= t);
    let start = Instant::now();
    assert_eq!(wait(&[&a], Some(t)).unwrap(), Vec::<usize>::new());
    assert!(start.elapsed() >= t);
    // Fill the peer's buffer: a timed send then gives up, having sent nothing.
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    loop {
        match a.send_bytes_timeout(&chunk, Duration::from_millis(20)) {
            Ok(()) => sent += 1,
            Err(Error::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 100_000, "the buffer never filled");
    }
    let start = Instant::now();
    assert!(matches!(
        a.send_timeout(&[1u8; 100_000][..], t),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= t && start.elapsed() < GENEROUS);
    // Everything sent arrives whole.
    let mut b = _b;
    for _ in 0..sent {
        assert_eq!(b.recv_bytes().unwrap().len(), chunk.len());
    }
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    // A message that is there is taken at once, whatever the timeout.
    b.send_bytes(b"abc").unwrap();
    assert_eq!(a.recv_bytes_into_timeout(&mut into, t).unwrap(), 3);
    assert_eq!(&into[..3], b"abc");
}

#[test]
fn large_messages_and_the_size_limit() {
    let (mut a, mut b) = pipe(true).unwrap();
    let big: Vec<u8> = (0..64usize << 20).map(|i| (i % 251) as u8).collect();
    let t = std::thread::spawn(move || {
        a.send_bytes(&big).unwrap();
        a.send_bytes(&[1; 100]).unwrap();
        a.send_bytes(b"after").unwrap();
        (a, big)
    });
    let got = b.recv_bytes().unwrap();
    let (_a, big) = t.join().unwrap();
    assert!(got == big, "64 MiB arrive intact");
    b.set_max_message_size(50);
    match b.recv_bytes() {
        Err(Error::MessageTooLong { len: 100, max: 50 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(b.closed(), "a bad frame closes the connection");
}

fn send_n((mut c, id): (Connection, u32)) {
    for i in 0..10u32 {
        c.send(&(id, i)).unwrap();
    }
}

#[test]
fn wait_collects_from_four_children() {
    let mut mine = Vec::new();
    let mut ps = Vec::new();
    for id in 0..4 {
        let (a, b) = pipe(false).unwrap();
        let mut p = Process::new(send_n, (b, id));
        p.start().unwrap();
        ps.push(p);
        mine.push(a);
    }
    let mut got = Vec::new();
    let mut open: Vec<bool> = vec![true; 4];
    while open.iter().any(|&o| o) {
        let live: Vec<usize> = (0..4).filter(|&i| open[i]).collect();
        let refs: Vec<&Connection> = live.iter().map(|&i| &mine[i]).collect();
        let ready = wait(&refs, Some(GENEROUS)).unwrap();
        assert!(!ready.is_empty());
        for r in ready {
            let i = live[r];
            match mine[i].recv::<(u32, u32)>() {
                Ok(v) => got.push(v),
                Err(Error::Eof) => open[i] = false,
                Err(e) => panic!("{e}"),
            }
        }
    }
    for mut p in ps {
        p.join().unwrap();
    }
    got.sort();
    let want: Vec<(u32, u32)> = (0..4)
        .flat_map(|id| (0..10).map(move |i| (id, i)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn connection_with_unread_bytes_does_not_serialize() {
    let (mut a, mut b) = pipe(true).unwrap();
    a.send(&1u8).unwrap();
    a.send(&2u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 1); // the second is now buffered in b
    let mut p = Process::new(echo, b);
    assert!(p.start().is_err());
}

/// Runs in a spawned child: the test binary's other tests open and close
/// descriptors in parallel threads, which would blur the count here.
fn churn(_: ()) -> (usize, usize) {
    // Warm up lazily created things (thread-locals, the fork server).
    {
        let (mut a, mut b) = pipe(true).unwrap();
        a.send(&1).unwrap();
        b.recv::<i32>().unwrap();
        let q = mp_ipc::Queue::<i32>::new().unwrap();
        q.put(1).unwrap();
        q.get().unwrap();
    }
    let before = fd_count();
    for i in 0..1000 {
        let (mut a, mut b) = pipe(i % 2 == 0).unwrap();
        a.send(&i).ok();
        b.send(&i).ok();
        let _ = a.recv_timeout::<i32>(Duration::ZERO);
        let _ = b.recv_timeout::<i32>(Duration::ZERO);
        let q = mp_ipc::Queue::<serde_bytes::ByteBuf>::with_maxsize(2).unwrap();
        q.put(vec![1; 100].into()).unwrap();
        q.get().unwrap();
        if i % 10 == 0 {
            // Longer than any inline limit: the memfd path.
            q.put(vec![0; 3 << 20].into()).unwrap();
            drop(q.get().unwrap());
        }
    }
    (before, fd_count())
}

#[test]
fn a_thousand_pipes_and_queues_leave_the_fd_count_unchanged() {
    let mut p = Process::new(churn, ()).start_method(mp_process::StartMethod::Spawn);
    p.start().unwrap();
    let (before, after) = p.join().unwrap();
    assert_eq!(before, after);
}

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// `wait` takes process sentinels beside connections and sockets: each
/// becomes ready when its process ends, in the order they end, and stays
/// ready, under every start method.
#[test]
fn wait_takes_process_sentinels_connections_and_sockets() {
    use mp_ipc::Waitable;
    for m in METHODS {
        let mut early = Process::new(nap, 20).start_method(m);
        let mut late = Process::new(nap, 1500).start_method(m);
        assert!(early.sentinel().is_err(), "{m:?}: not started yet");
        early.start().unwrap();
        late.start().unwrap();
        let (a, _b) = pipe(true).unwrap();
        let (s1, mut s2) = std::os::unix::net::UnixStream::pair().unwrap();
        let se = early.sentinel().unwrap();
        let sl = late.sentinel().unwrap();
        let objs: [&dyn Waitable; 4] = [&a, &s1, &se, &sl];
        assert_eq!(wait(&objs, Some(GENEROUS)).unwrap(), [2], "{m:?}");
        // The early one stays ready; a socket with bytes is ready too.
        std::io::Write::write_all(&mut s2, b"x").unwrap();
        assert_eq!(wait(&objs, Some(GENEROUS)).unwrap(), [1, 2], "{m:?}");
        let objs: [&dyn Waitable; 2] = [&a, &sl];
        assert_eq!(wait(&objs, Some(GENEROUS)).unwrap(), [1], "{m:?}");
        early.join().unwrap();
        late.join().unwrap();
        // After the join: a sentinel made now is ready at once.
        let after = late.sentinel().unwrap();
        assert_eq!(wait(&[&after], Some(Duration::ZERO)).unwrap(), [0], "{m:?}");
    }
}

/// A sentinel asked for after the process ended (reaped by the fork
/// server, or a zombie of ours), before any join, is ready at once.
#[test]
fn a_sentinel_of_a_process_that_already_ended_is_ready() {
    for m in METHODS {
        let mut p = Process::new(nap, 0).start_method(m);
        p.start().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let s = p.sentinel().unwrap();
        assert_eq!(wait(&[&s], Some(GENEROUS)).unwrap(), [0], "{m:?}");
        p.join().unwrap();
    }
}
