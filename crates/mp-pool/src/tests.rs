//! Unit tests: the frame format, the default chunk size, how a blocking
//! `map` gathers its chunks, and chunks larger than the sockets' buffers.

use std::sync::Arc;

use crate::chunk::Packed;
use crate::front::default_chunksize;
use crate::result::{Collect, Sink};
use crate::{Error, ErrorKind, Pool, wire};

#[test]
fn frames_round_trip() {
    let mut buf = Vec::new();
    wire::write_frame(&mut buf, wire::TASK, b"abc").unwrap();
    wire::write_frame(&mut buf, wire::EXIT, b"").unwrap();
    assert!(wire::has_frame(&buf));
    assert!(!wire::has_frame(&buf[..wire::HEADER + 2]));
    let mut r = &buf[..];
    let mut body = Vec::new();
    assert_eq!(
        wire::read_frame(&mut r, &mut body).unwrap(),
        Some(wire::TASK)
    );
    assert_eq!(body, b"abc");
    assert_eq!(
        wire::read_frame(&mut r, &mut body).unwrap(),
        Some(wire::EXIT)
    );
    assert!(body.is_empty());
    assert_eq!(wire::read_frame(&mut r, &mut body).unwrap(), None);
}

#[test]
fn a_truncated_frame_is_an_error() {
    let mut buf = Vec::new();
    wire::write_frame(&mut buf, wire::TASK, b"abcdef").unwrap();
    let mut r = &buf[..buf.len() - 1];
    assert!(wire::read_frame(&mut r, &mut Vec::new()).is_err());
}

#[test]
fn cpython_default_chunksize() {
    // ceil(len / (4 * workers)), at least 1.
    assert_eq!(default_chunksize(100_000, 2), 12_500);
    assert_eq!(default_chunksize(10, 2), 2);
    assert_eq!(default_chunksize(4, 2), 1);
    assert_eq!(default_chunksize(0, 2), 1);
}

fn packed(v: &[i64]) -> Vec<u8> {
    mp_process::encode(&Packed(v.to_vec())).unwrap()
}

#[test]
fn collect_keeps_order_and_the_lowest_failure() {
    // Chunks arrive out of order, big (woken at once) and small.
    let big: Vec<i64> = (0..10_000).collect();
    let c = Collect::new(3);
    let sink: Arc<dyn Sink> = c.clone();
    let t = std::thread::spawn(move || {
        sink.complete(2, Ok(packed(&[7])));
        sink.complete(0, Ok(packed(&big)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        sink.complete(1, Ok(packed(&[-1, -2])));
        // A chunk delivered twice counts once.
        sink.complete(1, Ok(packed(&[9])));
    });
    let got: Vec<i64> = c.wait(10_003).unwrap();
    t.join().unwrap();
    assert_eq!(got.len(), 10_003);
    assert_eq!(got[..3], [0, 1, 2]);
    assert_eq!(got[10_000..], [-1, -2, 7]);

    // A failed chunk wins over an undecodable one before it, and the
    // failure with the lowest index wins.
    let c = Collect::new(4);
    c.complete(3, Err(Error::new(ErrorKind::Panicked, "three")));
    c.complete(0, Ok(vec![1, 2, 3]));
    c.complete(2, Err(Error::new(ErrorKind::Panicked, "two")));
    c.complete(1, Ok(packed(&[1])));
    let e = c.wait::<i64>(4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.to_string().contains("two"), "{e}");

    // With no failure, the first undecodable chunk is the error.
    let c = Collect::new(2);
    c.complete(1, Ok(packed(&[1])));
    c.complete(0, Ok(vec![0xff]));
    assert_eq!(
        c.wait::<i64>(2).unwrap_err().kind(),
        ErrorKind::Serialization
    );

    assert!(Collect::new(0).wait::<i64>(0).unwrap().is_empty());
}

fn double(x: u64) -> u64 {
    x * 2
}

fn fail_at_1_500_000(x: u64) -> u64 {
    assert!(x != 1_500_000, "item {x}");
    x
}

#[test]
fn chunks_larger_than_the_socket_buffers_round_trip() {
    // Each chunk is megabytes, more than a socket holds: the submitter
    // writes what the socket takes and the writer thread the rest.
    let pool = Pool::new(2).unwrap();
    let got = pool.map(double, 0..2_000_000u64, Some(500_000)).unwrap();
    assert_eq!(got.len(), 2_000_000);
    assert!(got.iter().enumerate().all(|(i, &v)| v == 2 * i as u64));
    let e = pool
        .map(fail_at_1_500_000, 0..2_000_000u64, Some(500_000))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(pool.map(double, [1, 2], None).unwrap(), [2, 4]);
    pool.close();
    pool.join().unwrap();
}
