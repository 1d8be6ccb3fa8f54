//! Bad input, dead clients, dead servers, remote use.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mp_manager::{Error, LockProxy, Manager, Server, connect};
use mp_process::{Process, StartMethod};

/// Takes the lock and dies holding it.
fn die_holding(lock: LockProxy) {
    let g = lock.lock().unwrap();
    std::mem::forget(g);
    std::process::exit(3);
}

#[test]
fn a_lock_held_by_a_dead_client_is_released() {
    let m = Manager::start().unwrap();
    let lock = m.lock().unwrap();
    let mut p = Process::new(die_holding, lock.clone());
    p.start().unwrap();
    assert_eq!(p.join().unwrap_err().exitcode(), Some(3));
    let g = lock.lock_timeout(Duration::from_secs(10)).unwrap();
    assert!(g.is_some(), "the dead client's lock was not released");
}

#[test]
fn calls_fail_promptly_after_shutdown_or_death() {
    let m = Manager::start().unwrap();
    let v = m.value(1u32).unwrap();
    let q = m.queue::<u32>().unwrap();
    m.shutdown().unwrap();
    let t = Instant::now();
    assert!(matches!(v.get(), Err(Error::Connection(_))));
    assert!(
        matches!(q.get(), Err(Error::Connection(_))),
        "a blocking get must not hang"
    );
    assert!(t.elapsed() < Duration::from_secs(10));

    let m = Manager::start().unwrap();
    let q = m.queue::<u32>().unwrap();
    let pid = m.pid().unwrap();
    let waiter = std::thread::spawn(move || q.get());
    std::thread::sleep(Duration::from_millis(100));
    mp_test_helpers::kill(pid, 9);
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
    drop(m);
}

#[test]
fn a_remote_server_on_tcp_with_a_second_program() {
    let server = Server::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap(), b"secret").unwrap();
    server.register_queue("jobs", 0).unwrap();
    server.register_dict::<String, u64>("results").unwrap();
    let address = server.address().clone();
    let handle = server.serve_in_background().unwrap();
    let mp_ipc::Address::Tcp(addr) = address else {
        panic!("tcp")
    };

    // A second program: a fresh run of this executable that knows only the
    // address and the key.
    fn worker(addr: SocketAddr) -> u64 {
        let remote = connect(addr, b"secret").unwrap();
        let jobs = remote.get_queue::<u64>("jobs").unwrap();
        let results = remote.get_dict::<String, u64>("results").unwrap();
        let mut n = 0;
        while let Ok(j) = jobs.get_timeout(Duration::from_millis(500)) {
            results.insert(format!("job{j}"), j * j).unwrap();
            n += 1;
        }
        n
    }
    let local = connect(addr, b"secret").unwrap();
    let jobs = local.get_queue::<u64>("jobs").unwrap();
    for j in 0..20 {
        jobs.put(&j).unwrap();
    }
    let mut p = Process::new(worker, addr).start_method(StartMethod::Spawn);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 20);
    let results = local.get_dict::<String, u64>("results").unwrap();
    assert_eq!(results.get(&"job7".into()).unwrap(), Some(49));
    assert!(matches!(
        local.get_list::<u8>("results"),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        local.get_dict::<u8, u8>("nothing"),
        Err(Error::NoSuchObject(_))
    ));

    // A wrong key is refused.
    assert!(matches!(
        connect(addr, b"wrong"),
        Err(Error::Connection(mp_ipc::Error::Authentication(_)))
    ));

    local.shutdown_server().unwrap();
    handle.join().unwrap();
}

#[test]
fn bad_input_does_not_stop_the_server() {
    let server = Server::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap(), b"k").unwrap();
    server.register_value("v", 5i32).unwrap();
    let mp_ipc::Address::Tcp(addr) = server.address().clone() else {
        panic!("tcp")
    };
    let handle = server.serve_in_background().unwrap();

    // Random bytes, an oversized length, a truncated frame: before and
    // instead of the handshake.
    for junk in [
        &b"\x00\x01\x02garbage garbage garbage"[..],
        &[0x7f, 0xff, 0xff, 0xff, 1, 2],
        &[0, 0, 0, 9, 1],
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(junk);
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
    }
    // Thousands of connects and disconnects.
    for _ in 0..2000 {
        drop(TcpStream::connect(addr).unwrap());
    }
    // A wrong key.
    assert!(connect(addr, b"nope").is_err());
    // An authenticated client that sends garbage frames loses only its own
    // connection.
    let mut c = mp_ipc::Client::new(addr).authkey(b"k").connect().unwrap();
    // The server's greeting comes first.
    c.recv_bytes_timeout(Duration::from_secs(10)).unwrap();
    c.send_bytes(b"\xff\xff\xff\xff\xff not a request").unwrap();
    assert!(c.recv_bytes_timeout(Duration::from_secs(10)).is_err());
    // An unknown object id and a type mismatch are errors, not crashes.
    let good = connect(addr, b"k").unwrap();
    let v = good.get_value::<i32>("v").unwrap();
    assert_eq!(v.get().unwrap(), 5);
    assert!(matches!(
        good.get_queue::<i32>("v"),
        Err(Error::WrongKind { .. })
    ));
    let as_string = good.get_value::<String>("v").unwrap();
    assert!(as_string.get().is_err() || as_string.get().is_ok());
    assert_eq!(v.fetch_add(1).unwrap(), 5);
    good.shutdown_server().unwrap();
    handle.join().unwrap();
}
