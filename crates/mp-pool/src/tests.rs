//! Unit tests: the frame format and the default chunk size.

use crate::front::default_chunksize;
use crate::wire;

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
