//! Functions as values: named in one process, called in another.

use mp_process::{ErrorKind, Function, Process, RawFunction, decode, encode};

use crate::{METHODS, shared};

fn square(x: i64) -> i64 {
    x * x
}

fn boom(_: ()) -> u8 {
    panic!("worker task failed")
}

/// A worker: calls whatever function it is given on encoded arguments.
fn call_remote(job: (RawFunction, Vec<u8>)) -> Result<Vec<u8>, String> {
    job.0
        .call(&job.1)
        .map_err(|e| format!("{:?}: {e}", e.kind()))
}

#[test]
fn a_function_named_here_runs_in_a_child() {
    let _g = shared();
    let f = Function::new(square).unwrap();
    assert_eq!(f.call(&7).unwrap(), 49);
    for m in METHODS {
        let job = (f.raw().clone(), encode(&12i64).unwrap());
        let mut p = Process::new(call_remote, job).start_method(m);
        p.start().unwrap();
        let out: i64 = decode(&p.join().unwrap().unwrap()).unwrap();
        assert_eq!(out, 144, "{m}");
    }
}

#[test]
fn a_panic_is_a_value() {
    let _g = shared();
    let f = Function::new(boom).unwrap();
    let err = f.call(&()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.panic_info().unwrap().message(), "worker task failed");
    assert!(
        err.panic_info()
            .unwrap()
            .location()
            .unwrap()
            .file()
            .ends_with("function.rs")
    );
}

#[test]
fn a_forged_function_is_refused() {
    let f = Function::new(square).unwrap();
    // Flip one bit of the encoded offset: the tag no longer matches.
    let mut bytes = encode(f.raw()).unwrap();
    bytes[0] ^= 2;
    let forged: RawFunction = decode(&bytes).unwrap();
    let err = forged.call(&encode(&1i64).unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unresolvable);
    // Bad arguments are a serialization error, not a crash.
    let err = f.raw().call(&[0xff; 20]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
}
