//! Peers that stall the handshake against a manager: one byte of the
//! answer, a frame header without its payload, only the `-1` long-header
//! marker. While more of them than the server has acceptors hold on, a
//! legitimate client is served within a second. Local sockets only; every
//! wait bounded.
//!
//! Depends on mp-ipc's Listener running handshakes concurrently, off the
//! path that hands out authenticated connections, under one deadline per
//! handshake (issue 13, items 1 and 2). Wire it in with `mod stalls;` in
//! `main.rs` once that has landed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mp_manager::{Manager, connect};

const KEY: &[u8] = b"stall-test-key";

/// More than the server's four acceptors.
const STALLERS: usize = 8;

/// How a staller stops partway through its answer to the challenge.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// One byte of the 4-byte frame header.
    OneByte,
    /// A header announcing 32 bytes, and none of them.
    HeaderOnly,
    /// The long-header marker `-1`, without the 8-byte length after it.
    LongMarker,
}

impl Stall {
    fn bytes(self) -> &'static [u8] {
        match self {
            Stall::OneByte => &[0],
            Stall::HeaderOnly => &[0, 0, 0, 32],
            Stall::LongMarker => &[0xff, 0xff, 0xff, 0xff],
        }
    }
}

/// Connects to `path`, reads the server's challenge (if the server sends
/// it within 2 s: a bound on concurrent handshakes may keep this one
/// waiting, which stalls it all the same), sends `stall`'s bytes and keeps
/// the socket open and silent.
fn staller(path: &std::path::Path, stall: Stall) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // The challenge frame: a 4-byte big-endian length, then the message.
    let mut header = [0u8; 4];
    if s.read_exact(&mut header).is_ok() {
        let len = u32::from_be_bytes(header).min(1024) as usize;
        let mut challenge = vec![0u8; len];
        let _ = s.read_exact(&mut challenge);
    }
    let _ = s.write_all(stall.bytes());
    s
}

fn a_legitimate_client_is_served_while(stall: Stall) {
    let m = Manager::builder().authkey(KEY).start().unwrap();
    let mp_ipc::Address::Unix(path) = m.address() else {
        panic!("a local manager listens on a Unix path")
    };
    let stallers: Vec<_> = (0..STALLERS).map(|_| staller(&path, stall)).collect();
    for round in 0..3 {
        let address = m.address();
        let t = Instant::now();
        let served = std::thread::spawn(move || {
            connect(address, KEY)
                .and_then(|c| c.value(round)?.get())
                .map(|v| v == round)
        })
        .join()
        .unwrap();
        let took = t.elapsed();
        assert!(served.unwrap(), "{stall:?}: round {round}");
        assert!(
            took < Duration::from_secs(1),
            "{stall:?}: a legitimate client waited {took:?} behind {STALLERS} stalled handshakes"
        );
    }
    drop(stallers);
    m.shutdown().unwrap();
}

#[test]
fn a_one_byte_answer_stalls_nobody() {
    a_legitimate_client_is_served_while(Stall::OneByte);
}

#[test]
fn a_header_without_payload_stalls_nobody() {
    a_legitimate_client_is_served_while(Stall::HeaderOnly);
}

#[test]
fn a_long_header_marker_alone_stalls_nobody() {
    a_legitimate_client_is_served_while(Stall::LongMarker);
}
