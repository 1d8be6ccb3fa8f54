//! Hostile and broken peers against `Listener` and `Client`, over loopback
//! only (Unix paths in a temporary directory, abstract names, 127.0.0.1
//! TCP): handshakes that stall after one byte, after a header, after the
//! `-1` long-header marker; a server that stalls; peers announcing a
//! gigabyte and sending a few bytes; garbage frames; peers gone mid-frame;
//! and what a dropped listener leaves behind.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mp_ipc::{Address, Client, Connection, Error, Listener, ListenerConfig};
use mp_process::{Process, StartMethod};

use super::{GENEROUS, fd_count};

const KEY: &[u8] = b"hostile key";

/// The bound on "served at once" while an attack lasts (not a speed claim:
/// an honest handshake over loopback takes well under a millisecond).
const SERVED_WITHIN: Duration = Duration::from_secs(1);

/// A fresh directory for Unix socket paths, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "mp-ipc-hostile-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One address of each kind: a path in `dir`, an abstract name, TCP port 0.
fn addresses(dir: &TempDir, tag: &str) -> Vec<Address> {
    vec![
        Address::Unix(dir.0.join(format!("{tag}.sock"))),
        Address::Abstract(format!("mp-ipc-hostile-{}-{tag}", std::process::id()).into_bytes()),
        Address::Tcp("127.0.0.1:0".parse().unwrap()),
    ]
}

/// A raw socket to `addr`. A TCP socket is carried in a `UnixStream` too:
/// only `read`, `write` and the socket options common to both are used.
fn raw(addr: &Address) -> UnixStream {
    let s = match addr {
        Address::Unix(p) => UnixStream::connect(p).unwrap(),
        Address::Abstract(n) => {
            let a = std::os::unix::net::SocketAddr::from_abstract_name(n).unwrap();
            UnixStream::connect_addr(&a).unwrap()
        }
        Address::Tcp(a) => UnixStream::from(OwnedFd::from(TcpStream::connect(a).unwrap())),
    };
    s.set_read_timeout(Some(GENEROUS)).unwrap();
    s
}

/// A second handle on a connection's socket, to write bytes that are not
/// frames.
fn raw_of(c: &Connection) -> UnixStream {
    UnixStream::from(c.as_fd().try_clone_to_owned().unwrap())
}

/// The ways a peer stalls a handshake: the first bytes of a frame, then
/// silence.
const STALLS: [(&str, &[u8]); 3] = [
    ("one byte", &[0]),
    ("header only", &[0, 0, 0, 40]),
    ("-1 only", &[0xff, 0xff, 0xff, 0xff]),
];

/// Connects peers that stall their answer to the listener's challenge,
/// `per_kind` of each kind.
fn stallers(addr: &Address, per_kind: usize) -> Vec<UnixStream> {
    let mut v = Vec::new();
    for _ in 0..per_kind {
        for (_, bytes) in STALLS {
            let mut s = raw(addr);
            s.write_all(bytes).unwrap();
            v.push(s);
        }
    }
    v
}

/// An honest client served while the attack lasts: connected,
/// authenticated, accepted and answered within [`SERVED_WITHIN`].
fn served_at_once(l: &Listener) {
    let start = Instant::now();
    let addr = l.address().clone();
    let t = std::thread::spawn(move || {
        let mut c = Client::new(addr)
            .authkey(KEY)
            .timeout(GENEROUS)
            .connect()
            .unwrap();
        c.send_bytes(b"ping").unwrap();
        c.recv_bytes_timeout(GENEROUS).unwrap()
    });
    let mut s = l.accept_timeout(GENEROUS).unwrap();
    assert_eq!(s.recv_bytes_timeout(GENEROUS).unwrap(), b"ping");
    s.send_bytes(b"pong").unwrap();
    assert_eq!(t.join().unwrap(), b"pong");
    let took = start.elapsed();
    assert!(took < SERVED_WITHIN, "an honest client waited {took:?}");
}

/// Whether the listener still holds `s` open: what it sent can be read,
/// then nothing more comes (no end of stream).
fn still_open(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return true;
            }
            Err(_) => return false,
        }
    }
}

/// Waits for the listener to drop `s`; returns how long that took.
fn dropped_within(s: &mut UnixStream, bound: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(bound)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("the listener kept a stalled peer past {bound:?}: {e}"),
        }
    }
}

#[test]
fn stalled_handshakes_never_delay_an_honest_client() {
    let dir = TempDir::new();
    let deadline = Duration::from_millis(1500);
    let config = ListenerConfig::new().handshake_timeout(deadline);
    for addr in addresses(&dir, "stall") {
        let l = Listener::bind_with(addr, Some(KEY), config).unwrap();
        // Three of each kind, fewer than the handshake slots: nobody is cut
        // off early, the attack lasts through the honest exchange.
        let mut attack = stallers(l.address(), 3);
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        served_at_once(&l);
        served_at_once(&l);
        for s in &mut attack {
            assert!(still_open(s), "a stalled peer was dropped early");
        }
        assert!(started.elapsed() < deadline);
        // Each stalled peer costs at most the handshake deadline.
        for s in &mut attack {
            dropped_within(s, GENEROUS);
        }
        let took = started.elapsed();
        assert!(took >= deadline - Duration::from_millis(100), "{took:?}");
        assert!(matches!(
            l.accept_timeout(Duration::ZERO),
            Err(Error::Timeout)
        ));
        served_at_once(&l);
    }
}

#[test]
fn more_stalled_peers_than_handshake_slots() {
    let dir = TempDir::new();
    // A deadline longer than the test: only the bound can free the slots.
    let config = ListenerConfig::new()
        .handshake_timeout(Duration::from_secs(60))
        .max_handshakes(4);
    for addr in addresses(&dir, "slots") {
        let l = Listener::bind_with(addr, Some(KEY), config).unwrap();
        let mut attack = stallers(l.address(), 4); // 12 peers, 4 slots
        // Let the handshakes that hold the slots grow old enough to be cut
        // off for a waiting peer.
        std::thread::sleep(Duration::from_millis(300));
        served_at_once(&l);
        served_at_once(&l);
        // The peers beyond the bound wait in the backlog or were cut off;
        // none got a connection out of `accept`.
        assert!(matches!(
            l.accept_timeout(Duration::from_millis(50)),
            Err(Error::Timeout)
        ));
        attack.clear();
        served_at_once(&l);
    }
}

/// What a fake server does after accepting a client.
#[derive(Debug, Clone, Copy)]
enum FakeServer {
    /// Nothing at all.
    Silent,
    /// The first bytes of a challenge frame (each of [`STALLS`]).
    Partial(&'static [u8]),
    /// A whole challenge, then silence instead of `#WELCOME#`.
    ChallengeOnly,
}

/// Serves one client the `FakeServer` way and holds the connection until
/// the client hangs up.
///
/// A write that fails is ignored: on a loaded machine the client may have
/// given up (its timeout passed) before this thread got to the connection,
/// which the client's own assertions check.
fn fake_server(s: &mut UnixStream, how: FakeServer) {
    let _ = match how {
        FakeServer::Silent => Ok(()),
        FakeServer::Partial(b) => s.write_all(b),
        FakeServer::ChallengeOnly => {
            let mut m = b"#CHALLENGE#{sha256}".to_vec();
            m.extend([7u8; 40]);
            let mut frame = (m.len() as u32).to_be_bytes().to_vec();
            frame.extend(m);
            s.write_all(&frame)
        }
    };
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn a_stalling_server_holds_a_client_no_longer_than_its_timeout() {
    let dir = TempDir::new();
    let mut ways = vec![FakeServer::Silent, FakeServer::ChallengeOnly];
    ways.extend(STALLS.map(|(_, b)| FakeServer::Partial(b)));
    let timeout = Duration::from_millis(400);
    for (i, how) in ways.into_iter().enumerate() {
        let path = dir.0.join(format!("fake-{i}.sock"));
        let unix = UnixListener::bind(&path).unwrap();
        let name = format!("mp-ipc-fake-{}-{i}", std::process::id());
        let abs = UnixListener::bind_addr(
            &std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap(),
        )
        .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_addr: SocketAddr = tcp.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                fake_server(&mut unix.accept().unwrap().0, how);
                fake_server(&mut abs.accept().unwrap().0, how);
                let (t, _) = tcp.accept().unwrap();
                fake_server(&mut UnixStream::from(OwnedFd::from(t)), how);
            }
        });
        let targets = [
            Address::Unix(path),
            Address::Abstract(name.into_bytes()),
            Address::Tcp(tcp_addr),
        ];
        for _ in 0..2 {
            for addr in &targets {
                let start = Instant::now();
                // On a thread, so that a client that ignored its timeout
                // fails the test instead of hanging it.
                let (tx, rx) = std::sync::mpsc::channel();
                let client = Client::new(addr.clone()).authkey(KEY).timeout(timeout);
                std::thread::spawn(move || tx.send(client.connect().map(|_| ())));
                let r = rx
                    .recv_timeout(timeout + GENEROUS)
                    .unwrap_or_else(|_| panic!("{how:?} {addr}: the client ignored its timeout"));
                let took = start.elapsed();
                assert!(matches!(r, Err(Error::Timeout)), "{how:?} {addr}: {r:?}");
                assert!(took >= timeout - Duration::from_millis(50), "{took:?}");
                assert!(took < timeout + GENEROUS, "{how:?} {addr}: {took:?}");
            }
        }
        server.join().unwrap();
    }
}

/// The resident set of this process, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// This process's threads, from `/proc/self/status`.
fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// In a child of its own (the test binary's other tests allocate in
/// parallel): a listener, three authenticated peers that each announce a
/// 1 GiB frame and send 12 bytes of it, and three threads receiving those
/// frames. Returns the resident set before and while they wait, and what
/// the receivers got once the peers hung up.
fn gigabyte_announcers(_: ()) -> (u64, u64, Vec<String>) {
    let dir = TempDir::new();
    let l = Listener::bind(dir.0.join("gib.sock"), Some(KEY)).unwrap();
    let addr = l.address().clone();
    // Warm up what is created lazily (threads, buffers, the allocator).
    let mut warm = Client::new(addr.clone()).authkey(KEY).connect().unwrap();
    let mut w = l.accept_timeout(GENEROUS).unwrap();
    warm.send_bytes(&[1; 1000]).unwrap();
    w.recv_bytes().unwrap();
    let before = rss_bytes();
    let mut peers = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let c = Client::new(addr.clone()).authkey(KEY).connect().unwrap();
        let mut s = l.accept_timeout(GENEROUS).unwrap();
        receivers.push(std::thread::spawn(move || {
            format!("{:?}", s.recv_bytes().map(|v| v.len()))
        }));
        let mut r = raw_of(&c);
        r.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
        r.write_all(b"twelve bytes").unwrap();
        peers.push((c, r));
    }
    // Give the receivers time to take the headers and start their frames.
    std::thread::sleep(Duration::from_millis(500));
    let during = rss_bytes();
    drop(peers);
    let got = receivers.into_iter().map(|t| t.join().unwrap()).collect();
    (before, during, got)
}

#[test]
fn announced_gigabytes_cost_only_what_arrived() {
    let mut p = Process::new(gigabyte_announcers, ()).start_method(StartMethod::Spawn);
    p.start().unwrap();
    let (before, during, got) = p.join_timeout(Duration::from_secs(60)).unwrap();
    let grew = during.saturating_sub(before);
    assert!(grew < 64 << 20, "RSS grew by {} MiB", grew >> 20);
    // The receivers were inside their frames: cut off, they see the end.
    assert_eq!(got, vec!["Err(Eof)"; 3]);
}

#[test]
fn a_long_frame_that_trickles_in_arrives_whole() {
    let (mut a, mut b) = mp_ipc::pipe(true).unwrap();
    let message: Vec<u8> = (0..3 << 20)
        .map(|i: u32| (i * 7 + i / 4096) as u8)
        .collect();
    let mut raw = raw_of(&a);
    let m = message.clone();
    let t = std::thread::spawn(move || {
        raw.write_all(&(m.len() as u32).to_be_bytes()).unwrap();
        for chunk in m.chunks(100_000) {
            raw.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    assert_eq!(b.recv_bytes().unwrap(), message);
    t.join().unwrap();
    // The stream goes on after it.
    a.send(&42u32).unwrap();
    assert_eq!(b.recv::<u32>().unwrap(), 42);
}

/// An authenticated pair over `l`: (client side, server side).
fn pair(l: &Listener) -> (Connection, Connection) {
    let c = Client::new(l.address().clone())
        .authkey(KEY)
        .timeout(GENEROUS)
        .connect()
        .unwrap();
    (c, l.accept_timeout(GENEROUS).unwrap())
}

#[test]
fn garbage_after_the_handshake_closes_only_that_connection() {
    let dir = TempDir::new();
    for addr in addresses(&dir, "garbage") {
        let l = Listener::bind(addr, Some(KEY)).unwrap();
        let (mut good_c, mut good_s) = pair(&l);
        // A negative length other than -1.
        let (bad_c, mut bad_s) = pair(&l);
        raw_of(&bad_c).write_all(&(-5i32).to_be_bytes()).unwrap();
        let e = bad_s.recv_bytes_timeout(GENEROUS).unwrap_err();
        assert!(e.to_string().contains("malformed frame header"), "{e}");
        assert!(bad_s.closed());
        // Past the limit, announced by a long header.
        let (bad_c2, mut bad_s2) = pair(&l);
        let mut r = raw_of(&bad_c2);
        r.write_all(&(-1i32).to_be_bytes()).unwrap();
        r.write_all(&(5u64 << 30).to_be_bytes()).unwrap();
        assert!(matches!(
            bad_s2.recv_bytes_timeout(GENEROUS),
            Err(Error::MessageTooLong { len, .. }) if len == 5 << 30
        ));
        assert!(bad_s2.closed());
        // The peers of the closed connections see the end of stream.
        let mut sink = Vec::new();
        r.set_read_timeout(Some(GENEROUS)).unwrap();
        assert_eq!(r.read_to_end(&mut sink).unwrap(), 0);
        // A frame whose payload is not the type asked for: an error, the
        // message is consumed, the connection stays.
        good_c.send_bytes(&[0xff; 3]).unwrap();
        assert!(matches!(
            good_s.recv_timeout::<String>(GENEROUS),
            Err(Error::Decode(_))
        ));
        good_c.send(&"still here").unwrap();
        assert_eq!(
            good_s.recv_timeout::<String>(GENEROUS).unwrap(),
            "still here"
        );
        good_s.send_bytes(b"and back").unwrap();
        assert_eq!(good_c.recv_bytes().unwrap(), b"and back");
        served_at_once(&l);
    }
}

#[test]
fn a_peer_gone_mid_frame_gives_end_of_stream() {
    let dir = TempDir::new();
    let l = Listener::bind(dir.0.join("gone.sock"), Some(KEY)).unwrap();
    // A short frame cut after its header and 10 bytes; a long one after
    // 100 KiB of 1 MiB; a long header cut inside its length.
    let cuts: [(&[u8], usize); 3] = [
        (&100u32.to_be_bytes(), 10),
        (&(1u32 << 20).to_be_bytes(), 100 << 10),
        (&[0xff, 0xff, 0xff, 0xff, 0, 0], 0),
    ];
    for (header, body) in cuts {
        let (c, mut s) = pair(&l);
        let mut r = raw_of(&c);
        r.write_all(header).unwrap();
        r.write_all(&vec![9; body]).unwrap();
        drop(r);
        drop(c);
        assert!(matches!(s.recv_bytes_timeout(GENEROUS), Err(Error::Eof)));
        // In the middle of a handshake, too: only that peer is lost.
        let mut h = raw(l.address());
        h.write_all(&[0, 0]).unwrap();
        drop(h);
        served_at_once(&l);
    }
}

/// In a child of its own (other tests open descriptors and threads in
/// parallel): a keyed listener with stalled peers, peers authenticated but
/// not accepted and one accepted connection is dropped; every socket it
/// held is closed and its threads are gone. Returns the descriptor and
/// thread counts before and after.
fn drop_a_busy_listener(_: ()) -> ((usize, usize), (usize, usize)) {
    let dir = TempDir::new();
    let before = || (fd_count(), thread_count());
    {
        // Warm up: the first listener starts what lasts (the allocator's
        // arenas, thread-locals).
        let l = Listener::bind(dir.0.join("warm.sock"), Some(KEY)).unwrap();
        let (_c, _s) = pair(&l);
    }
    let start = before();
    {
        let l = Listener::bind(dir.0.join("busy.sock"), Some(KEY)).unwrap();
        let mut attack = stallers(l.address(), 2);
        let (mut accepted_c, accepted_s) = pair(&l);
        let mut waiting: Vec<Connection> = (0..3)
            .map(|_| {
                Client::new(l.address().clone())
                    .authkey(KEY)
                    .timeout(GENEROUS)
                    .connect()
                    .unwrap()
            })
            .collect();
        drop(l);
        // Everything the listener held is closed: the stalled peers and the
        // authenticated peers nobody accepted see the end of stream.
        for s in &mut attack {
            dropped_within(s, GENEROUS);
        }
        for c in &mut waiting {
            assert!(matches!(c.recv_bytes_timeout(GENEROUS), Err(Error::Eof)));
        }
        // A connection already accepted is the caller's: it lives on.
        drop(accepted_s);
        assert!(matches!(
            accepted_c.recv_bytes_timeout(GENEROUS),
            Err(Error::Eof)
        ));
    }
    (start, before())
}

#[test]
fn a_dropped_listener_leaves_no_descriptor_and_no_thread() {
    let mut p = Process::new(drop_a_busy_listener, ()).start_method(StartMethod::Spawn);
    p.start().unwrap();
    let (before, after) = p.join_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(before, after, "(descriptors, threads) before and after");
}
