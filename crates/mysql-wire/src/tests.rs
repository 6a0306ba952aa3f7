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

/// A scripted GSS-API initiator: the first token, then completion on the server's reply.
struct ScriptedGss {
    complete: bool,
}

impl GssInitiator for ScriptedGss {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, BoxError> {
        match input {
            None => Ok(b"AP-REQ".to_vec()),
            Some(b"AP-REP") => {
                self.complete = true;
                Ok(Vec::new())
            }
            Some(_) => Err("the server's token does not verify".into()),
        }
    }

    fn is_complete(&self) -> bool {
        self.complete
    }
}

#[test]
fn mariadb_gssapi_names_the_servers_principal_and_requires_its_proof() {
    let greeting = Greeting {
        version: "10.11.6-MariaDB".into(),
        connection_id: 1,
        capabilities: CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH,
        scramble: b"0123456789abcdefghij".to_vec(),
        plugin: "mysql_native_password".into(),
    };
    let login = Login {
        user: "ap_krb_user",
        password: Password::ToVerifiedServer(""),
        database: None,
        encrypted: true,
        server_public_key: None,
    };
    let switch = [&[0xfe][..], b"auth_gssapi_client\0", b"mariadb/db@R\0", b"Kerberos\0"].concat();
    let run = |reply: &[u8], ok_early: bool| -> Result<String, WireError> {
        let (mut exchange, _) = LoginExchange::start(&greeting, greeting.capabilities, &login)?;
        let LoginStep::GssStart { service_principal } = exchange.on_packet(&switch)? else { panic!("no GssStart") };
        assert_eq!(service_principal, "mariadb/db@R");
        let LoginStep::Send(first) = exchange.begin_gss(Box::new(ScriptedGss { complete: false }))? else {
            panic!("no first token")
        };
        assert_eq!(first, b"AP-REQ");
        if !ok_early {
            // MariaDB sends plugin data as it is, unless it begins with 0x01, 0xfe or 0xff.
            let framed = if reply.first() == Some(&0x60) { reply.to_vec() } else { [&[0x01][..], reply].concat() };
            assert!(matches!(exchange.on_packet(&framed)?, LoginStep::Read));
        }
        match exchange.on_packet(&[0x00, 0, 0, 2, 0, 0, 0])? {
            LoginStep::Done(plugin) => Ok(plugin),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(run(b"AP-REP", false).unwrap(), "auth_gssapi_client");
    assert!(matches!(run(b"\x60forged", false), Err(WireError::Gss(_))));
    assert!(matches!(run(b"forged", false), Err(WireError::Gss(_))));
    // OK before the server proved itself is refused.
    assert!(matches!(run(b"", true), Err(WireError::Protocol(_))));
}

#[test]
fn errors_are_std_errors_that_keep_their_cause() {
    let io = WireError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
    assert!(std::error::Error::source(&io).is_some());
    let server = WireError::Server { code: 1045, message: "Access denied".into() };
    assert_eq!(server.to_string(), "server error 1045: Access denied");
    assert!(WireError::OtherService(b"SSH-2.0-".to_vec()).to_string().contains("8 bytes seen"));
}

#[test]
fn a_question_reads_every_row_within_bounds() {
    let lenenc_str = |s: &str| [&[s.len() as u8][..], s.as_bytes()].concat();
    let mut exchange = crate::RowsExchange::default();
    assert_eq!(exchange.on_packet(&[1]).unwrap(), None, "one column");
    assert_eq!(exchange.on_packet(b"\x03defcolumn").unwrap(), None);
    assert_eq!(exchange.on_packet(&[0xfe, 0, 0, 2, 0]).unwrap(), None, "end of columns");
    assert_eq!(exchange.on_packet(&lenenc_str("GRANT SELECT ON db.* TO u")).unwrap(), None);
    assert_eq!(exchange.on_packet(&[0xfb]).unwrap(), None, "NULL");
    let rows = exchange.on_packet(&[0xfe, 0, 0, 2, 0]).unwrap().unwrap();
    assert_eq!(rows, vec![vec![Some("GRANT SELECT ON db.* TO u".to_string())], vec![None]]);
    assert!(crate::parse_text_row(&[5, b'a']).is_err(), "shorter than it says");
    assert!(crate::parse_text_row(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    let mut endless = crate::RowsExchange::default();
    endless.on_packet(&[1]).unwrap();
    endless.on_packet(b"\x03def").unwrap();
    endless.on_packet(&[0xfe, 0, 0, 2, 0]).unwrap();
    let mut outcome = Ok(None);
    for _ in 0..=crate::exchange::MAX_ROWS + 1 {
        outcome = endless.on_packet(&lenenc_str("x"));
        if outcome.is_err() {
            break;
        }
    }
    assert!(outcome.is_err(), "rows beyond the bound end the exchange");
}
