//! Unit tests of mp-process, run across real processes: children re-enter
//! this very test binary (the library's own unit-test harness).

use std::time::Duration;

use crate::{ErrorKind, Process, StartMethod};

fn triple(x: i32) -> i32 {
    x * 3
}

fn fail(code: i32) {
    std::process::exit(code)
}

#[test]
fn every_method_from_a_unit_test() {
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let mut p = Process::new(triple, 14).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(60)).unwrap(), 42, "{m}");
        let mut q = Process::new(fail, 5).start_method(m);
        q.start().unwrap();
        let err = q.join().unwrap_err();
        assert_eq!(
            (err.kind(), err.exitcode()),
            (ErrorKind::Died, Some(5)),
            "{m}"
        );
    }
}

#[test]
fn exit_status_decoding() {
    use crate::ExitStatus;
    let exited = ExitStatus::from_raw(3 << 8);
    assert_eq!(
        (exited.code(), exited.signal(), exited.exitcode()),
        (Some(3), None, 3)
    );
    let killed = ExitStatus::from_raw(9);
    assert_eq!(
        (killed.code(), killed.signal(), killed.exitcode()),
        (None, Some(9), -9)
    );
    assert_eq!(killed.to_string(), "killed by SIGKILL");
    assert!(ExitStatus::from_raw(0).success());
}

#[test]
fn handles_are_send() {
    fn send<T: Send>() {}
    send::<Process<Vec<u8>>>();
    send::<crate::Error>();
    send::<crate::SharedFd>();
    send::<crate::Function<u8, u8>>();
}

/// `send_fds` and `recv_fds` carry descriptors that work at the other end;
/// too many, a full non-blocking socket and stray bytes are errors.
#[test]
fn descriptors_travel_by_send_fds() {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use crate::{MAX_FDS_PER_MESSAGE, recv_fds, send_fds};

    let (tx, rx) = UnixStream::pair().unwrap();
    let (mut mine, theirs) = UnixStream::pair().unwrap();
    send_fds(&tx, &[theirs.as_fd()]).unwrap();
    drop(theirs);
    let fds = recv_fds(&rx).unwrap();
    assert_eq!(fds.len(), 1);
    let mut got = UnixStream::from(fds.into_iter().next().unwrap());
    got.write_all(b"through").unwrap();
    let mut buf = [0u8; 7];
    mine.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"through");

    let many = vec![mine.as_fd(); MAX_FDS_PER_MESSAGE + 1];
    let e = send_fds(&tx, &many).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);

    tx.set_nonblocking(true).unwrap();
    let mut sent = 0;
    let full = loop {
        match send_fds(&tx, &[mine.as_fd()]) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100_000, "the socket never filled");
    };
    assert_eq!(full.kind(), std::io::ErrorKind::WouldBlock);
    for _ in 0..sent {
        assert_eq!(recv_fds(&rx).unwrap().len(), 1);
    }

    (&tx).write_all(b"x").unwrap();
    assert_eq!(
        recv_fds(&rx).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
    drop(tx);
    assert_eq!(
        recv_fds(&rx).unwrap_err().kind(),
        std::io::ErrorKind::UnexpectedEof
    );
}
