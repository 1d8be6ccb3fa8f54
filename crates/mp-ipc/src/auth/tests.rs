//! Unit tests of the handshake's digests against known values.

use super::*;

#[test]
fn hmac_known_values() {
    // RFC 2202 and RFC 4231 test case 2: key "Jefe".
    let m = b"what do ya want for nothing?";
    let md5 = mac("md5", b"Jefe", m).unwrap();
    assert_eq!(md5[..4], [0x75, 0x0c, 0x78, 0x3e]);
    let sha = mac("sha256", b"Jefe", m).unwrap();
    assert_eq!(sha[..4], [0x5b, 0xdc, 0xc1, 0x46]);
}

#[test]
fn legacy_and_tagged_answers() {
    let legacy = [7u8; 20];
    assert_eq!(response(b"k", &legacy).unwrap().len(), 16);
    verify(b"k", &legacy, &response(b"k", &legacy).unwrap()).unwrap();
    let mut tagged = b"{sha256}".to_vec();
    tagged.extend([9u8; 40]);
    let r = response(b"k", &tagged).unwrap();
    assert!(r.starts_with(b"{sha256}"));
    verify(b"k", &tagged, &r).unwrap();
    // A 3.11 peer answers a tagged challenge with a bare MD5 of all of it.
    verify(b"k", &tagged, &mac("md5", b"k", &tagged).unwrap()).unwrap();
    assert!(matches!(
        verify(b"x", &tagged, &r),
        Err(Error::Authentication(_))
    ));
    assert!(digest_and_payload(b"{nope}123456789012345678901").is_err());
}
