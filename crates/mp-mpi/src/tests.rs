//! Unit tests of what works without an MPI job: naming functions for other
//! ranks, and refusing tokens this job did not make.

use mp_process::{decode, encode};

use crate::func::{resolve, set_job, token};

fn double(x: u32) -> u32 {
    x * 2
}

fn boom(_: ()) -> u8 {
    panic!("on purpose")
}

fn setup() {
    // What `init` sets from rank 0's broadcast.
    set_job(0x1234_5678, 42);
}

#[test]
fn a_token_resolves_to_the_same_function() {
    setup();
    let t = token(double).unwrap();
    // It travels as serde data, as in a batch.
    let t = decode(&encode(&t).unwrap()).unwrap();
    let raw = resolve(&t).unwrap();
    let out: u32 = decode(&raw.call(&encode(&21u32).unwrap()).unwrap()).unwrap();
    assert_eq!(out, 42);
    assert!(raw.name().contains("double"));
}

#[test]
fn closures_that_capture_nothing_have_tokens_too() {
    setup();
    let t = token(|s: String| s.len()).unwrap();
    let raw = resolve(&t).unwrap();
    let out: usize = decode(&raw.call(&encode("four").unwrap()).unwrap()).unwrap();
    assert_eq!(out, 4);
}

#[test]
fn a_panic_in_a_resolved_function_is_an_error() {
    setup();
    let raw = resolve(&token(boom).unwrap()).unwrap();
    let e = raw.call(&encode(&()).unwrap()).unwrap_err();
    assert_eq!(e.kind(), mp_process::ErrorKind::Panicked);
    assert_eq!(e.panic_info().unwrap().message(), "on purpose");
}

#[test]
fn a_forged_token_is_refused_and_nothing_is_called() {
    setup();
    let t = token(double).unwrap();
    // Change the offset without the key: the tag no longer matches. (A
    // value bit of the varint's first byte: adding to it could carry into
    // the continuation bit, depending on where the linker put the code.)
    let mut bytes = encode(&t).unwrap();
    bytes[0] ^= 0x02;
    let forged = decode(&bytes).unwrap();
    let e = resolve(&forged).unwrap_err();
    assert_eq!(e.kind(), mp_pool::ErrorKind::Process);
    assert!(e.to_string().contains("was not named by rank 0"), "{e}");
}

#[test]
fn packed_results_unpack_to_the_encoded_vec() {
    use mp_pool::remote::Packed;
    let results = vec![1i64, -5, 1 << 40];
    let on_the_wire = encode(&Packed(results.clone())).unwrap();
    let inner: &[u8] = postcard::from_bytes(&on_the_wire).unwrap();
    assert_eq!(inner, encode(&results).unwrap());
    let back: Packed<i64> = decode(&on_the_wire).unwrap();
    assert_eq!(back.0, results);
    assert!(postcard::from_bytes::<&[u8]>(&[0xff]).is_err());
}
