//! Hostile and broken peers against a manager: idle connections past the
//! cap, garbage after the handshake, clients killed while their operation
//! waits, another local user, and the client's own descriptors across
//! manager lifetimes. Loopback and local sockets only; every wait bounded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mp_manager::{
    BarrierProxy, ConditionProxy, Error, LockProxy, Manager, QueueProxy, SemaphoreProxy, Server,
    ValueProxy, connect,
};
use mp_process::{Process, StartMethod};

const KEY: &[u8] = b"hostile-test-key";

/// `(threads, descriptors)` of process `pid`, from `/proc`.
fn load(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (threads, fds)
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Waits (at most 5 s) until `pid` has no more threads and descriptors
/// than `base`; the load found last.
fn settles_to(pid: u32, base: (usize, usize)) -> (usize, usize) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let now = load(pid);
        if (now.0 <= base.0 && now.1 <= base.1) || Instant::now() > until {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` for up to 5 s until it holds.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn manager() -> Manager {
    serving(Manager::builder().authkey(KEY).start().unwrap())
}

/// `m` once its server's acceptor threads run (the main thread and four),
/// so that loads measured from then on count connections only.
fn serving(m: Manager) -> Manager {
    let pid = m.pid().unwrap();
    assert!(eventually(|| load(pid).0 >= 5));
    m
}

/// Starts `f(arg)` in a fresh child and waits (at most 10 s) until it has
/// its connections to the server at `pid` (`base` before it), and a little
/// more for it to block in its operation. The assertions that follow hold
/// whatever it was doing when killed.
fn start_blocked<F, A>(pid: u32, base: (usize, usize), f: F, arg: A) -> Process<()>
where
    F: Fn(A) + Copy + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let mut p = Process::new(f, arg).start_method(StartMethod::Spawn);
    p.start().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    // Its session and its thread's connection: two server threads.
    while load(pid).0 < base.0 + 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    p
}

fn kill(mut p: Process<()>) {
    mp_test_helpers::kill(p.pid().unwrap(), 9);
    assert!(
        p.join_timeout(Duration::from_secs(10)).is_err(),
        "the child was killed"
    );
}

/// Starts `f(arg)` in a child, lets it block on the server at `pid`, kills
/// it.
fn kill_while_blocked<F, A>(pid: u32, base: (usize, usize), f: F, arg: A)
where
    F: Fn(A) + Copy + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    kill(start_blocked(pid, base, f, arg));
}

#[test]
fn a_thousand_idle_connections_meet_the_cap_with_a_clear_refusal() {
    const CAP: usize = 32;
    let m = serving(
        Manager::builder()
            .authkey(KEY)
            .max_connections(CAP)
            .start()
            .unwrap(),
    );
    let pid = m.pid().unwrap();
    let address = m.address();
    let base = load(pid);
    let start = Instant::now();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for _ in 0..1000 {
        let mut c = mp_ipc::Client::new(address.clone())
            .authkey(KEY)
            .timeout(Duration::from_secs(5))
            .connect()
            .unwrap();
        // The greeting: `Done` (one byte, 0) when served, a refusal
        // otherwise; never silence.
        let hello = c.recv_bytes_timeout(Duration::from_secs(5)).unwrap();
        if hello == [0] {
            admitted.push(c);
        } else {
            refused += 1;
        }
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(admitted.len(), CAP);
    assert_eq!(refused, 1000 - CAP);
    // The server's threads and descriptors stay within the cap. The
    // listener's handshake threads end just after their peer is answered,
    // so the last one may still be on its way out: give it a moment.
    let settled = eventually(|| {
        let (threads, fds) = load(pid);
        threads <= base.0 + CAP && fds <= base.1 + CAP + 2
    });
    assert!(
        settled,
        "threads and descriptors {:?}, base {base:?}",
        load(pid)
    );
    // A legitimate client beyond the cap is told why, at once.
    let a = address.clone();
    let t = Instant::now();
    let r = std::thread::spawn(move || connect(a, KEY).map(|_| ()))
        .join()
        .unwrap();
    assert!(
        matches!(r, Err(Error::TooManyConnections { limit }) if limit == CAP as u64),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    // Once the idle connections go, it is served.
    drop(admitted);
    let a = address.clone();
    let served = std::thread::spawn(move || {
        eventually(|| {
            connect(a.clone(), KEY)
                .and_then(|c| c.value(7u8)?.get())
                .is_ok_and(|v| v == 7)
        })
    })
    .join()
    .unwrap();
    assert!(served);
    let after = settles_to(pid, (base.0 + 2, base.1 + 2));
    assert!(
        after.0 <= base.0 + 2 && after.1 <= base.1 + 2,
        "{after:?} vs {base:?}"
    );
}

#[test]
fn garbage_frames_after_a_valid_handshake_end_only_that_connection() {
    let m = manager();
    let pid = m.pid().unwrap();
    let v = m.value(5i64).unwrap();
    assert_eq!(v.get().unwrap(), 5);
    let base = load(pid);
    let garbage: [&[u8]; 6] = [
        b"\xff\xff\xff\xff\xff not a request",
        &[],
        &[
            2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        &[0, 9, 0xff],
        &[4],
        &[0x80; 64],
    ];
    for junk in garbage {
        let mut c = mp_ipc::Client::new(m.address())
            .authkey(KEY)
            .connect()
            .unwrap();
        assert_eq!(c.recv_bytes_timeout(Duration::from_secs(5)).unwrap(), [0]);
        c.send_bytes(junk).unwrap();
        // An answer or the end: never a crash, never a hang.
        let _ = c.recv_bytes_timeout(Duration::from_secs(5));
    }
    // A frame header announcing more than the request limit, then silence.
    let mut c = mp_ipc::Client::new(m.address())
        .authkey(KEY)
        .connect()
        .unwrap();
    c.recv_bytes_timeout(Duration::from_secs(5)).unwrap();
    let huge = vec![0u8; (mp_manager::DEFAULT_MAX_REQUEST + 1) as usize];
    let _ = c.send_bytes(&huge);
    assert!(c.recv_bytes_timeout(Duration::from_secs(10)).is_err());
    drop(c);
    // The server goes on, and what the garbage cost it is given back.
    assert_eq!(v.fetch_add(1).unwrap(), 5);
    let after = settles_to(pid, base);
    assert!(
        after.0 <= base.0 && after.1 <= base.1,
        "{after:?} vs {base:?}"
    );
}

fn blocked_get(q: QueueProxy<u32>) {
    let _ = q.get();
}

#[test]
fn a_client_killed_in_a_queue_get_swallows_no_item() {
    let m = manager();
    let pid = m.pid().unwrap();
    let q = m.queue::<u32>().unwrap();
    assert_eq!(q.qsize().unwrap(), 0);
    let base = load(pid);
    kill_while_blocked(pid, base, blocked_get, q.clone());
    // Put at once: the gone client's thread may wake for it before it
    // noticed the kill.
    q.put(&41).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 41);
    // And once the server has surely noticed.
    let after = settles_to(pid, base);
    assert!(
        after.0 <= base.0 && after.1 <= base.1,
        "{after:?} vs {base:?}"
    );
    q.put(&42).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 42);
}

fn blocked_put(q: QueueProxy<u32>) {
    let _ = q.put(&2);
}

fn blocked_event(e: mp_manager::EventProxy) {
    let _ = e.wait(None);
}

#[test]
fn a_client_killed_in_a_full_put_or_an_event_wait_adds_nothing_and_ends() {
    let m = manager();
    let pid = m.pid().unwrap();
    let q = m.bounded_queue::<u32>(1).unwrap();
    q.put(&1).unwrap();
    let e = m.event().unwrap();
    assert!(!e.is_set().unwrap());
    let base = load(pid);
    kill_while_blocked(pid, base, blocked_put, q.clone());
    let after = settles_to(pid, base);
    assert!(
        after.0 <= base.0 && after.1 <= base.1,
        "{after:?} vs {base:?}"
    );
    kill_while_blocked(pid, base, blocked_event, e.clone());
    let after = settles_to(pid, base);
    assert!(
        after.0 <= base.0 && after.1 <= base.1,
        "{after:?} vs {base:?}"
    );
    // The room the killed `put` waited for is not taken by its item.
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    q.put(&3).unwrap();
    assert_eq!(q.qsize().unwrap(), 1);
}

fn blocked_acquire(s: SemaphoreProxy) {
    let _ = s.acquire(true, None);
}

#[test]
fn a_client_killed_in_a_semaphore_acquire_swallows_no_unit() {
    let m = manager();
    let pid = m.pid().unwrap();
    let s = m.semaphore(0).unwrap();
    assert_eq!(s.value().unwrap(), 0);
    let base = load(pid);
    kill_while_blocked(pid, base, blocked_acquire, s.clone());
    s.release().unwrap();
    let after = settles_to(pid, base);
    assert!(
        after.0 <= base.0 && after.1 <= base.1,
        "{after:?} vs {base:?}"
    );
    assert_eq!(s.value().unwrap(), 1, "the unit is still there");
    assert!(s.acquire(false, None).unwrap());
}

fn blocked_lock(l: LockProxy) {
    let _ = l.lock();
}

#[test]
fn a_client_killed_in_a_lock_acquire_leaves_the_lock_to_the_others() {
    let m = manager();
    let pid = m.pid().unwrap();
    let l = m.lock().unwrap();
    let held = l.lock().unwrap();
    let base = load(pid);
    kill_while_blocked(pid, base, blocked_lock, l.clone());
    drop(held);
    // Another connection (another thread) takes it at once.
    let l2 = l.clone();
    let took = std::thread::spawn(move || {
        let t = Instant::now();
        let g = l2.lock_timeout(Duration::from_secs(5)).unwrap();
        (g.is_some(), t.elapsed())
    })
    .join()
    .unwrap();
    assert!(took.0, "the lock went to the killed waiter");
    let after = settles_to(pid, (base.0 + 1, base.1 + 2));
    assert!(after.0 <= base.0 + 1, "{after:?} vs {base:?}");
}

fn blocked_wait(c: ConditionProxy) {
    let _held = c.lock().unwrap();
    let _ = c.wait(None);
}

#[test]
fn a_client_killed_in_a_condition_wait_swallows_no_notification() {
    let m = manager();
    let pid = m.pid().unwrap();
    let c = m.condition().unwrap();
    let flag = m.value(false).unwrap();
    let base = load(pid);
    // The doomed waiter first, then a live one in another thread.
    let doomed = start_blocked(pid, base, blocked_wait, c.clone());
    let (c2, f2) = (c.clone(), flag.clone());
    let waiter = std::thread::spawn(move || {
        let _held = c2.lock().unwrap();
        f2.set(&true).unwrap();
        c2.wait(Some(Duration::from_secs(10))).unwrap()
    });
    assert!(eventually(|| flag.get().unwrap()));
    std::thread::sleep(Duration::from_millis(100));
    kill(doomed);
    // At once: the first notification goes to the killed waiter's turn,
    // and must reach the live one.
    {
        let _held = c.lock().unwrap();
        c.notify(1).unwrap();
    }
    assert!(waiter.join().unwrap(), "the notification was swallowed");
    let after = settles_to(pid, (base.0 + 1, base.1 + 2));
    assert!(after.0 <= base.0 + 1, "{after:?} vs {base:?}");
}

fn blocked_barrier(b: BarrierProxy) {
    let _ = b.wait(None);
}

#[test]
fn a_client_killed_in_a_barrier_wait_leaves_the_barrier() {
    let m = manager();
    let pid = m.pid().unwrap();
    let b = m.barrier(2).unwrap();
    assert_eq!(b.state().unwrap(), (2, 0, false));
    let base = load(pid);
    kill_while_blocked(pid, base, blocked_barrier, b.clone());
    // Its thread and descriptors are freed, and it no longer counts.
    let after = settles_to(pid, base);
    assert!(
        after.0 <= base.0 && after.1 <= base.1,
        "{after:?} vs {base:?}"
    );
    assert!(eventually(|| b.state().unwrap() == (2, 0, false)));
    // Two live parties still pass together.
    let b2 = b.clone();
    let other = std::thread::spawn(move || b2.wait(Some(Duration::from_secs(10))));
    let mine = b.wait(Some(Duration::from_secs(10))).unwrap();
    let theirs = other.join().unwrap().unwrap();
    assert_eq!(mine + theirs, 1);
}

/// In a child that drops to uid `nobody`: what connecting gives.
fn connect_as_nobody(address: PathBuf) -> String {
    const NOBODY: u32 = 65534;
    // The thread's credentials are what the kernel checks on `connect`
    // and reports to the peer.
    if let Err(e) = rustix::thread::set_thread_res_uid(
        rustix::process::Uid::from_raw(NOBODY),
        rustix::process::Uid::from_raw(NOBODY),
        rustix::process::Uid::from_raw(NOBODY),
    ) {
        return format!("setuid failed: {e}");
    }
    match connect(address, KEY) {
        Ok(c) => match c.value(1u8) {
            Ok(_) => "served".into(),
            Err(e) => format!("refused: {e:?}"),
        },
        Err(e) => format!("refused: {e:?}"),
    }
}

#[test]
fn another_local_user_cannot_reach_a_local_manager() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: dropping to uid nobody needs root, and this test runs as another user");
        return;
    }
    // The manager's own socket: in a 0700 directory.
    let m = manager();
    let mp_ipc::Address::Unix(path) = m.address() else {
        panic!("a local manager listens on a Unix path")
    };
    let mut p = Process::new(connect_as_nobody, path.clone()).start_method(StartMethod::Spawn);
    p.start().unwrap();
    let got = p.join_timeout(Duration::from_secs(30)).unwrap();
    assert!(got.starts_with("refused"), "{got}");
    // The key is still required of the owner.
    assert!(matches!(
        connect(path, b"not the key"),
        Err(Error::Connection(mp_ipc::Error::Authentication(_)))
    ));

    // A server whose socket anyone may open: the peer-credential check
    // alone refuses the other user, and without it the other user gets
    // in (so the refusal above is the check's doing).
    for check in [true, false] {
        let dir =
            std::env::temp_dir().join(format!("mp-manager-hostile-{}-{check}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let sock = dir.join("socket");
        let server = Server::bind(sock.clone(), KEY)
            .unwrap()
            .same_user_only(check);
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
        let handle = server.serve_in_background().unwrap();
        let mut p = Process::new(connect_as_nobody, sock.clone()).start_method(StartMethod::Spawn);
        p.start().unwrap();
        let got = p.join_timeout(Duration::from_secs(30)).unwrap();
        if check {
            assert!(got.starts_with("refused"), "{got}");
        } else {
            assert_eq!(got, "served");
        }
        connect(sock, KEY).unwrap().shutdown_server().unwrap();
        handle.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Five managers started, used and shut down in this (fresh) process:
/// the descriptors before and after.
fn five_lifetimes(_: ()) -> (usize, usize) {
    // The fork server that starts manager processes stays for the
    // process's life: started first, before the count.
    Manager::start().unwrap().shutdown().unwrap();
    let before = mp_test_helpers::fd_count();
    for i in 0..5 {
        let m = Manager::start().unwrap();
        let v = m.value(i).unwrap();
        let d = m.dict::<String, i32>().unwrap();
        d.insert("k".into(), v.get().unwrap()).unwrap();
        let moved = v.clone();
        std::thread::spawn(move || moved.fetch_add(1).unwrap())
            .join()
            .unwrap();
        m.shutdown().unwrap();
        drop((v, d));
    }
    // A client of a server that stays: its last proxy dropped, its
    // descriptors go too.
    let server = Server::bind(
        mp_ipc::Address::Abstract(format!("mp-hostile-{}", std::process::id()).into_bytes()),
        KEY,
    )
    .unwrap();
    let address = server.address().clone();
    let handle = server.serve_in_background().unwrap();
    let mid = mp_test_helpers::fd_count();
    {
        let c = connect(address.clone(), KEY).unwrap();
        let q = c.queue::<u8>().unwrap();
        q.put(&1).unwrap();
        drop(c);
        assert_eq!(q.get().unwrap(), 1);
    }
    // The server's ends, in this process too, close as it notices.
    let until = Instant::now() + Duration::from_secs(5);
    while mp_test_helpers::fd_count() > mid && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        mp_test_helpers::fd_count(),
        mid,
        "a client's descriptors outlived its proxies"
    );
    connect(address, KEY).unwrap().shutdown_server().unwrap();
    handle.join().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while mp_test_helpers::fd_count() > before && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    (before, mp_test_helpers::fd_count())
}

#[test]
fn five_manager_lifetimes_in_one_thread_leave_no_descriptor() {
    // In a fresh process, so that no other test opens descriptors meanwhile.
    let mut p = Process::new(five_lifetimes, ()).start_method(StartMethod::Spawn);
    p.start().unwrap();
    let (before, after) = p.join_timeout(Duration::from_secs(120)).unwrap();
    assert_eq!(before, after);
}

#[test]
fn a_stopped_address_is_refused_and_a_restart_is_served_at_once() {
    let address = mp_ipc::Address::Abstract(
        format!("mp-hostile-restart-{}", std::process::id()).into_bytes(),
    );
    let first = Server::bind(address.clone(), KEY).unwrap();
    let handle = first.serve_in_background().unwrap();
    let old = connect(address.clone(), KEY).unwrap();
    let v = old.value(1u32).unwrap();
    assert_eq!(v.get().unwrap(), 1);
    old.shutdown_server().unwrap();
    handle.join().unwrap();
    // This thread still has its connection to the old server cached.
    let r = connect(address.clone(), KEY);
    assert!(
        matches!(&r, Err(Error::Connection(mp_ipc::Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{:?}",
        r.map(|_| ())
    );
    let second = Server::bind(address.clone(), KEY).unwrap();
    let handle = second.serve_in_background().unwrap();
    let new = connect(address.clone(), KEY).expect("the first connect after a restart");
    let w = new.value(2u32).unwrap();
    assert_eq!(w.get().unwrap(), 2);
    new.shutdown_server().unwrap();
    handle.join().unwrap();
    drop((v, old));
}

/// Makes `n` dicts, says so, and waits to be killed.
fn make_and_hang(args: (mp_manager::ManagerClient, ValueProxy<u32>, u32)) {
    let (client, made, n) = args;
    let dicts: Vec<_> = (0..n).map(|_| client.dict::<u32, u32>().unwrap()).collect();
    made.set(&n).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(dicts);
}

/// Holds a proxy until told to let go.
fn hold(args: (ValueProxy<u64>, ValueProxy<bool>, ValueProxy<bool>)) -> u64 {
    let (v, holding, release) = args;
    holding.set(&true).unwrap();
    while !release.get().unwrap() {
        std::thread::sleep(Duration::from_millis(10));
    }
    v.get().unwrap()
}

#[test]
fn objects_without_proxies_are_freed_and_a_killed_clients_objects_too() {
    let m = manager();
    let objects = || m.server_stats().unwrap().objects;
    assert_eq!(objects(), 0);
    // Dropped proxies free their objects.
    let values: Vec<_> = (0..100u32).map(|i| m.value(i).unwrap()).collect();
    let copies: Vec<_> = values.iter().map(Clone::clone).collect();
    assert_eq!(objects(), 100);
    drop(values);
    assert_eq!(objects(), 100, "clones keep their objects");
    drop(copies);
    assert!(eventually(|| objects() == 0), "{}", objects());

    // A proxy sent to another process keeps its object there.
    let holding = m.value(false).unwrap();
    let release = m.value(false).unwrap();
    let v = m.value(99u64).unwrap();
    let mut p = Process::new(hold, (v.clone(), holding.clone(), release.clone()))
        .start_method(StartMethod::Spawn);
    p.start().unwrap();
    assert!(eventually(|| holding.get().unwrap()));
    drop(v);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(objects(), 3, "the child's proxy keeps the value");
    release.set(&true).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), 99);
    assert!(eventually(|| objects() == 2), "{}", objects());

    // A killed client's objects go with it.
    let made = m.value(0u32).unwrap();
    let mut p = Process::new(make_and_hang, ((*m).clone(), made.clone(), 50))
        .start_method(StartMethod::Spawn);
    p.start().unwrap();
    assert!(eventually(|| made.get().unwrap() == 50));
    assert_eq!(objects(), 53);
    mp_test_helpers::kill(p.pid().unwrap(), 9);
    let _ = p.join();
    assert!(eventually(|| objects() == 3), "{}", objects());
}

#[test]
fn a_value_is_held_once_and_counters_do_not_wrap() {
    let m = manager();
    let pid = m.pid().unwrap();
    let before = rss(pid);
    let big = m.value(vec![7u8; 48 << 20]).unwrap();
    let grown = rss(pid).saturating_sub(before);
    // 48 MiB held once, plus the buffers of the one request in flight
    // that are returned after it.
    assert!(grown < 80 << 20, "the server grew by {} MiB", grown >> 20);
    drop(big);

    let s = m.semaphore(usize::MAX).unwrap();
    assert!(matches!(s.release(), Err(Error::Overflow(_))));
    assert_eq!(s.value().unwrap(), usize::MAX);
    let r = m.rlock().unwrap();
    assert!(r.acquire(true, None).unwrap());
    r.release().unwrap();
}
