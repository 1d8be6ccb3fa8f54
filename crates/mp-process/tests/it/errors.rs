//! Bad input and failure: each is a typed error, within a bounded time.

use std::time::Duration;

use mp_process::{ErrorKind, Process, StartMethod};
use serde::{Serialize, Serializer};

use crate::{METHODS, shared};

fn boom(n: u32) -> u32 {
    if n > 0 {
        panic!("boom {n}");
    }
    n
}

/// A result type whose serialization always fails.
#[derive(Debug, serde::Deserialize)]
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialize"))
    }
}

fn unserializable(_: ()) -> Unserializable {
    Unserializable
}

fn len(v: Vec<u8>) -> usize {
    v.len()
}

fn big(n: usize) -> Vec<u8> {
    vec![1; n]
}

fn noop(_: ()) {}

#[test]
fn panic_message_and_location_come_back() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(boom, 7).start_method(m);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panicked, "{m}");
        let info = err.panic_info().unwrap();
        assert_eq!(info.message(), "boom 7");
        let loc = info.location().expect("location");
        assert!(loc.file().ends_with("errors.rs"), "{loc}");
        assert_eq!(loc.line(), 12);
        // Python's exit code for an uncaught exception.
        assert_eq!(p.exitcode(), Some(1));
        assert!(err.to_string().contains("boom 7"));
    }
}

#[test]
fn a_result_that_fails_to_serialize() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(unserializable, ()).start_method(m);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{m}");
        assert!(
            err.to_string().contains("cannot encode the result")
                && err.to_string().contains("refuses to serialize"),
            "{err}"
        );
    }
}

#[test]
fn an_argument_over_the_limit() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(len, vec![0u8; 4096])
            .start_method(m)
            .max_message_size(1024);
        let err = p.start().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{m}");
        assert!(p.pid().is_none());
        // Under the limit it runs.
        let mut p = Process::new(len, vec![0u8; 512])
            .start_method(m)
            .max_message_size(1024);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 512);
    }
}

#[test]
fn a_result_over_the_limit() {
    let _g = shared();
    for m in METHODS {
        let mut p = Process::new(big, 4096)
            .start_method(m)
            .max_message_size(1024);
        p.start().unwrap();
        let err = p.join().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{m}: {err}");
    }
}

#[test]
fn misuse_of_the_handle() {
    let _g = shared();
    let mut p = Process::new(noop, ());
    assert_eq!(p.join().unwrap_err().kind(), ErrorKind::NotStarted);
    assert_eq!(p.kill().unwrap_err().kind(), ErrorKind::NotStarted);
    p.start().unwrap();
    assert_eq!(p.start().unwrap_err().kind(), ErrorKind::AlreadyStarted);
    p.join().unwrap();
    assert_eq!(p.join().unwrap_err().kind(), ErrorKind::AlreadyJoined);
}

#[test]
fn closures_need_fork() {
    let _g = shared();
    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        let mut p = Process::closure(|| 1).start_method(m);
        assert_eq!(p.start().unwrap_err().kind(), ErrorKind::NotAllowed);
    }
}

#[test]
fn start_methods_by_name() {
    assert_eq!("fork".parse::<StartMethod>().unwrap(), StartMethod::Fork);
    assert_eq!(
        "forkserver".parse::<StartMethod>().unwrap(),
        StartMethod::ForkServer
    );
    let err = "bogus".parse::<StartMethod>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidStartMethod);
    assert_eq!(
        mp_process::get_all_start_methods()[0],
        StartMethod::ForkServer
    );
}

#[test]
fn a_timeout_of_zero_polls() {
    let _g = shared();
    let mut p = Process::new(boom, 0).start_method(StartMethod::Fork);
    p.start().unwrap();
    let mut result = p.join_timeout(Duration::ZERO);
    for _ in 0..10_000 {
        match &result {
            Err(e) if e.is_timeout() => {
                std::thread::sleep(Duration::from_millis(1));
                result = p.join_timeout(Duration::ZERO);
            }
            _ => break,
        }
    }
    assert_eq!(result.unwrap(), 0);
}
