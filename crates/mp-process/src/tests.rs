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
