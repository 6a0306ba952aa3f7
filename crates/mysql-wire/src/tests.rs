//! Unit tests of the codec and the exchanges, without a server.
use crate::codec::xor;
use crate::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn greetings_are_parsed() {
    let mut greeting = vec![0x0a];
    greeting.extend_from_slice(b"10.11.6-MariaDB\0");
    greeting.extend_from_slice(&7u32.to_le_bytes());
    greeting.extend_from_slice(b"abcdefgh\0");
    let caps = CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
    greeting.extend_from_slice(&(caps as u16).to_le_bytes());
    greeting.push(45);
    greeting.extend_from_slice(&[2, 0]);
    greeting.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    greeting.push(21);
    greeting.extend_from_slice(&[0; 10]);
    greeting.extend_from_slice(b"ijklmnopqrst\0");
    greeting.extend_from_slice(b"mysql_native_password\0");
    let parsed = parse_greeting(&greeting).unwrap();
    assert_eq!(parsed.version, "10.11.6-MariaDB");
    assert_eq!(parsed.connection_id, 7);
    assert_eq!(parsed.scramble, b"abcdefghijklmnopqrst");
    assert_eq!(parsed.plugin, "mysql_native_password");
    assert!(parsed.supports_tls());
    let mut error = vec![0xff];
    error.extend_from_slice(&1130u16.to_le_bytes());
    error.extend_from_slice(b"Host '10.0.0.1' is not allowed to connect");
    assert!(matches!(parse_greeting(&error), Err(WireError::Server { code: 1130, .. })));
    assert!(matches!(parse_greeting(b"SSH-2.0-OpenSSH"), Err(WireError::NotMysql(_))));
}

/// Reference values computed independently (Python hashlib) for password "secret" and
/// scramble "0123456789abcdefghij".
#[test]
fn password_hashes_match_the_documented_algorithms() {
    let scramble = b"0123456789abcdefghij";
    assert_eq!(native_password("secret", scramble), hex("f5cac3f3b3df2133feb57db682c71e6ed433a988"));
    assert_eq!(
        caching_sha2("secret", scramble),
        hex("7e4adda2f2d5ef09b4147518becb0cee2939376203650a8c2bb2815959364bd0")
    );
    assert!(native_password("", scramble).is_empty());
}

#[test]
fn the_rsa_path_encrypts_the_scrambled_password_for_the_server_key() {
    use aws_lc_rs::encoding::AsDer;
    let private = aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public_der = private.public_key().as_der().unwrap();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(public_der.as_ref());
    let pem_text = format!("-----BEGIN PUBLIC KEY-----\n{encoded}\n-----END PUBLIC KEY-----\n");
    let scramble = b"0123456789abcdefghij";
    let sealed = rsa_password("secret", scramble, pem_text.as_bytes()).unwrap();
    let key = aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(private).unwrap();
    let mut out = vec![0u8; key.min_output_size()];
    let opened = key.decrypt(&aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1, &sealed, &mut out, None).unwrap();
    assert_eq!(xor(opened, scramble), b"secret\0");
}
