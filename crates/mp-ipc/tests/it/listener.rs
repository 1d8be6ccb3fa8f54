//! `Listener` and `Client`: Unix, abstract and TCP addresses, the
//! authentication handshake, bad frames, and Python interoperability.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mp_ipc::{Address, Client, Error, Listener};

use super::GENEROUS;

fn exchange(listener: &Listener, key: Option<&[u8]>) {
    let mut client = Client::new(listener.address().clone());
    if let Some(k) = key {
        client = client.authkey(k);
    }
    let t = std::thread::spawn(move || {
        let mut c = client.connect().unwrap();
        c.send(&"ping").unwrap();
        c.recv::<String>().unwrap()
    });
    let mut conn = listener.accept_timeout(GENEROUS).unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), "ping");
    conn.send(&"pong").unwrap();
    assert!(conn.poll(Some(Duration::ZERO)).is_ok());
    assert_eq!(t.join().unwrap(), "pong");
}

#[test]
fn unix_abstract_and_tcp_with_and_without_a_key() {
    for key in [None, Some(&b"k3y"[..])] {
        let l = Listener::new(key).unwrap();
        exchange(&l, key);
        let name = format!("\0mp-ipc-test-{}-{}", std::process::id(), key.is_some());
        let l = Listener::bind(name.as_str(), key).unwrap();
        assert!(matches!(l.address(), Address::Abstract(_)));
        exchange(&l, key);
        let l = Listener::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap(), key).unwrap();
        exchange(&l, key);
    }
}

#[test]
fn a_wrong_key_fails_on_both_sides_and_the_listener_goes_on() {
    let l = Listener::new(Some(b"right")).unwrap();
    let addr = l.address().clone();
    let r = Client::new(addr).authkey(b"wrong").connect().map(|_| ());
    assert!(matches!(r, Err(Error::Authentication(_))), "{r:?}");
    // The listener refused it: `accept` never hands it out.
    assert!(matches!(
        l.accept_timeout(Duration::from_millis(200)),
        Err(Error::Timeout)
    ));
    exchange(&l, Some(b"right"));
}

#[test]
fn bad_frames_close_that_connection_and_others_are_served() {
    let l = Listener::new(None).unwrap();
    let Address::Unix(path) = l.address().clone() else {
        panic!()
    };
    // A malformed header (a negative length other than -1).
    let mut raw = UnixStream::connect(&path).unwrap();
    raw.write_all(&(-5i32).to_be_bytes()).unwrap();
    let mut c = l.accept_timeout(GENEROUS).unwrap();
    assert!(matches!(c.recv_bytes(), Err(Error::Io(_))));
    assert!(c.closed());
    // An oversized frame.
    let mut raw2 = UnixStream::connect(&path).unwrap();
    raw2.write_all(&0x7000_0000i32.to_be_bytes()).unwrap();
    let mut c2 = l.accept_timeout(GENEROUS).unwrap();
    c2.set_max_message_size(1 << 20);
    assert!(matches!(c2.recv_bytes(), Err(Error::MessageTooLong { .. })));
    // A keyed listener facing garbage instead of an answer.
    let kl = Listener::new(Some(b"k")).unwrap();
    let Address::Unix(kpath) = kl.address().clone() else {
        panic!()
    };
    let mut raw3 = UnixStream::connect(&kpath).unwrap();
    raw3.write_all(&[0, 0, 0, 3, b'x', b'y', b'z']).unwrap();
    // Refused in the background: the peer is disconnected, `accept` never
    // sees it.
    raw3.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut raw3, &mut seen).unwrap();
    assert!(seen.ends_with(b"#FAILURE#"), "{seen:?}");
    assert!(matches!(
        kl.accept_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    exchange(&kl, Some(b"k"));
    exchange(&l, None);
}

#[test]
fn accept_timeout_bind_in_use_connect_refused_and_close() {
    let mut l = Listener::new(None).unwrap();
    let t = Duration::from_millis(100);
    let start = Instant::now();
    assert!(matches!(l.accept_timeout(t), Err(Error::Timeout)));
    assert!(start.elapsed() >= t && start.elapsed() < GENEROUS);
    assert!(matches!(
        Listener::bind(l.address().clone(), None),
        Err(Error::Io(_))
    ));
    let addr = l.address().clone();
    l.close();
    l.close();
    assert!(matches!(l.accept(), Err(Error::Closed)));
    assert!(matches!(Client::new(addr).connect(), Err(Error::Io(_))));
    // Port 1 (tcpmux) has no listener here; a freshly freed port could be
    // taken by a parallel test at once.
    let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert!(matches!(Client::new(nobody).connect(), Err(Error::Io(_))));
}

/// A command running the machine's `python3`: an external program the test
/// talks to over a socket, waited for by the test, not an mp child.
#[allow(clippy::disallowed_methods)]
fn python_command() -> Command {
    Command::new("python3")
}

/// The machine's `python3`, or a visible notice and `None`.
fn python() -> Option<()> {
    let ok = python_command()
        .arg("-c")
        .arg("import multiprocessing.connection")
        .status();
    if ok.is_ok_and(|s| s.success()) {
        Some(())
    } else {
        eprintln!("NOTICE: python3 not found: CPython interoperability tests skipped");
        None
    }
}

const PY_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client
from multiprocessing import AuthenticationError
try:
    c = Client(sys.argv[1], authkey=sys.argv[2].encode())
except AuthenticationError:
    print("auth-error"); sys.exit(3)
c.send_bytes(b"from python")
print(c.recv_bytes().decode())
"#;

const PY_LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
from multiprocessing import AuthenticationError
l = Listener(authkey=sys.argv[1].encode())
print(l.address, flush=True)
try:
    c = l.accept()
except AuthenticationError:
    print("auth-error", flush=True); sys.exit(3)
m = c.recv_bytes()
c.send_bytes(m + b" and back")
print("ok", flush=True)
"#;

#[test]
fn python_client_to_rust_listener() {
    let Some(()) = python() else { return };
    for (key, good) in [("secret", true), ("wrong", false)] {
        let l = Listener::new(Some(b"secret")).unwrap();
        let child = python_command()
            .args(["-c", PY_CLIENT, &l.address().to_string(), key])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        if good {
            let mut c = l.accept_timeout(GENEROUS).unwrap();
            assert_eq!(c.recv_bytes().unwrap(), b"from python");
            c.send_bytes(b"from rust").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        if !good {
            // Refused in the background: nothing to accept.
            assert!(matches!(
                l.accept_timeout(Duration::from_millis(100)),
                Err(Error::Timeout)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if good {
            assert_eq!(text.trim(), "from rust");
        } else {
            assert_eq!((text.trim(), out.status.code()), ("auth-error", Some(3)));
        }
    }
}

#[test]
fn rust_client_to_python_listener() {
    let Some(()) = python() else { return };
    for (key, good) in [(&b"secret"[..], true), (b"wrong", false)] {
        let mut child = python_command()
            .args(["-c", PY_LISTENER, "secret"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addr = String::new();
        out.read_line(&mut addr).unwrap();
        let r = Client::new(addr.trim())
            .authkey(key)
            .timeout(GENEROUS)
            .connect();
        if good {
            let mut c = r.unwrap();
            c.send_bytes(b"from rust").unwrap();
            assert_eq!(c.recv_bytes().unwrap(), b"from rust and back");
        } else {
            assert!(matches!(r, Err(Error::Authentication(_))), "{r:?}");
        }
        let mut rest = String::new();
        out.read_line(&mut rest).unwrap();
        assert_eq!(rest.trim(), if good { "ok" } else { "auth-error" });
        child.wait().unwrap();
    }
}
