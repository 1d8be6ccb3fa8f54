//! The authentication handshake of CPython's `multiprocessing.connection`:
//! a mutual HMAC challenge and response, as CPython 3.12+ speaks it, which
//! also answers 3.11 peers (HMAC-MD5, no digest tag).
//!
//! The server sends `#CHALLENGE#{sha256}` + 40 random bytes; the client
//! answers `{sha256}` + HMAC-SHA256(key, everything after `#CHALLENGE#`),
//! or, when it is a 3.11 peer, the bare 16-byte HMAC-MD5 of the same; the
//! server replies `#WELCOME#` or `#FAILURE#`. Then the roles swap. A 3.11
//! challenge has no tag (20 random bytes) and gets a bare HMAC-MD5 answer.

use std::time::Instant;

use hmac::{Hmac, Mac};

use crate::connection::Connection;
use crate::error::Error;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const MESSAGE_LENGTH: usize = 40;
/// Legacy (3.11) challenge and answer lengths: 20 random bytes, 16-byte MD5.
const LEGACY_LENGTHS: [usize; 2] = [20, 16];
/// The longest handshake message CPython accepts.
const MAX_HANDSHAKE: u64 = 256;

/// The digests this side computes ("" is legacy MD5 without a tag).
fn mac(digest: &str, key: &[u8], message: &[u8]) -> Result<Vec<u8>, Error> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        m.update(message);
        m.finalize().into_bytes().to_vec()
    }
    match digest {
        "md5" | "" => Ok(run::<Hmac<md5::Md5>>(key, message)),
        "sha256" => Ok(run::<Hmac<sha2::Sha256>>(key, message)),
        "sha384" => Ok(run::<Hmac<sha2::Sha384>>(key, message)),
        other => Err(Error::Authentication(format!(
            "digest {other:?} is not supported"
        ))),
    }
}

/// Splits a tagged message `{digest}payload` into its digest name and
/// payload; a legacy-length message is untagged MD5.
fn digest_and_payload(message: &[u8]) -> Result<(String, &[u8]), Error> {
    if LEGACY_LENGTHS.contains(&message.len()) {
        return Ok((String::new(), message));
    }
    if message.first() == Some(&b'{') {
        if let Some(end) = message.iter().take(12).position(|&b| b == b'}') {
            let name = &message[1..end];
            if [&b"md5"[..], b"sha256", b"sha384", b"sha3_256", b"sha3_384"].contains(&name) {
                let name = String::from_utf8_lossy(name).into_owned();
                return Ok((name, &message[end + 1..]));
            }
        }
    }
    Err(Error::Authentication(
        "unsupported message length, missing digest prefix, or unsupported digest".into(),
    ))
}

/// The answer to a challenge `message` (what follows `#CHALLENGE#`).
fn response(key: &[u8], message: &[u8]) -> Result<Vec<u8>, Error> {
    let (digest, _) = digest_and_payload(message)?;
    if digest.is_empty() {
        return mac("md5", key, message);
    }
    let mut r = format!("{{{digest}}}").into_bytes();
    r.extend(mac(&digest, key, message)?);
    Ok(r)
}

fn verify(key: &[u8], message: &[u8], answer: &[u8]) -> Result<(), Error> {
    let (digest, their_mac) = digest_and_payload(answer)?;
    let digest = if digest.is_empty() {
        "md5".to_string()
    } else {
        digest
    };
    let expected = mac(&digest, key, message)?;
    // Constant time: the comparison must not tell how much of it matched.
    let diff = expected.len() != their_mac.len()
        || expected
            .iter()
            .zip(their_mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0;
    if diff {
        Err(Error::Authentication("digest received was wrong".into()))
    } else {
        Ok(())
    }
}

/// Receives one handshake message, whole, by `deadline`.
fn recv_small(c: &mut Connection, deadline: Instant) -> Result<Vec<u8>, Error> {
    let max = c.max_message_size();
    c.set_max_message_size(MAX_HANDSHAKE);
    let r = c.recv_bytes_by(deadline);
    c.set_max_message_size(max);
    r
}

/// The server's half: challenge the peer, check its answer.
pub(crate) fn deliver_challenge(
    c: &mut Connection,
    key: &[u8],
    deadline: Instant,
) -> Result<(), Error> {
    let mut random = [0u8; MESSAGE_LENGTH];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())?;
    let mut message = b"{sha256}".to_vec();
    message.extend_from_slice(&random);
    let mut out = CHALLENGE.to_vec();
    out.extend_from_slice(&message);
    c.send_bytes_by(&out, deadline)?;
    let answer = recv_small(c, deadline)?;
    match verify(key, &message, &answer) {
        Ok(()) => c.send_bytes_by(WELCOME, deadline),
        Err(e) => {
            let _ = c.send_bytes_by(FAILURE, deadline);
            Err(e)
        }
    }
}

/// The client's half: answer the peer's challenge.
pub(crate) fn answer_challenge(
    c: &mut Connection,
    key: &[u8],
    deadline: Instant,
) -> Result<(), Error> {
    let message = recv_small(c, deadline)?;
    let Some(message) = message.strip_prefix(CHALLENGE) else {
        return Err(Error::Authentication(
            "protocol error, expected a challenge".into(),
        ));
    };
    if message.len() < LEGACY_LENGTHS[0] {
        return Err(Error::Authentication(format!(
            "challenge too short: {} bytes",
            message.len()
        )));
    }
    c.send_bytes_by(&response(key, message)?, deadline)?;
    let reply = recv_small(c, deadline)?;
    if reply == WELCOME {
        Ok(())
    } else {
        Err(Error::Authentication("digest sent was rejected".into()))
    }
}

#[cfg(test)]
mod tests;
