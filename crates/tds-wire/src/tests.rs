//! Unit tests of the codec, the carrier and the token walker, against scripted servers.
use crate::codec::*;
use crate::*;
use tokio::io::AsyncWriteExt;

#[test]
fn prelogin_round_trip() {
    let request = prelogin_request(Encryption::On);
    assert_eq!(request[0], PRELOGIN);
    assert_eq!(usize::from(u16::from_be_bytes([request[2], request[3]])), request.len());
    let answer = parse_prelogin(&request[HEADER..]).unwrap();
    assert_eq!(answer.encryption, Encryption::On);
    assert_eq!(answer.version.as_deref(), Some("16.0.0"));
    assert!(parse_prelogin(&[0x00, 0x00]).is_err());
}

#[test]
fn login7_lays_out_the_documented_fields() {
    let login = Login {
        user: "app",
        password: "pw",
        database: Some("appdb"),
        server: "db",
        app: "authprobe",
        workstation: "ws",
    };
    let packet = login7(&login);
    assert_eq!(u32::from_le_bytes(packet[0..4].try_into().unwrap()) as usize, packet.len());
    assert_eq!(&packet[4..8], &[0x04, 0x00, 0x00, 0x74]);
    // the user name's offset and length
    let at = usize::from(u16::from_le_bytes([packet[40], packet[41]]));
    assert_eq!(u16::from_le_bytes([packet[42], packet[43]]), 3);
    assert_eq!(utf16_text(&packet[at..at + 6]), "app");
    // the password, obfuscated: 'p' 0x70 -> 0x07 ^ 0xA5; 'w' 0x77 -> 0x77 ^ 0xA5; 0x00 -> 0xA5
    let at = usize::from(u16::from_le_bytes([packet[44], packet[45]]));
    assert_eq!(&packet[at..at + 4], &[0xA2, 0xA5, 0xD2, 0xA5]);
    let at = usize::from(u16::from_le_bytes([packet[68], packet[69]]));
    assert_eq!(utf16_text(&packet[at..at + 10]), "appdb");
    // the plain password appears nowhere
    assert!(!packet.windows(4).any(|w| w == utf16("pw").as_slice()));
}

#[test]
fn large_messages_are_split_into_packets() {
    let out = packets(SQL_BATCH, &vec![7u8; 5000], 4096);
    assert_eq!(out[1], 0);
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), 4096);
    assert_eq!(out[4096], SQL_BATCH);
    assert_eq!(out[4097], STATUS_EOM);
    assert_eq!(out.len(), 5000 + 2 * HEADER);
}

fn answer(tokens: &[u8]) -> Vec<u8> {
    packets(TABULAR_RESULT, tokens, 512).into_iter().collect()
}

fn error_token(number: u32, state: u8, text: &str) -> Vec<u8> {
    let mut body = number.to_le_bytes().to_vec();
    body.extend_from_slice(&[state, 14]);
    body.extend_from_slice(&(text.len() as u16).to_le_bytes());
    body.extend(utf16(text));
    body.extend_from_slice(&[0, 0]); // server name, procedure
    body.extend_from_slice(&1u32.to_le_bytes());
    let mut token = vec![0xAA];
    token.extend_from_slice(&(body.len() as u16).to_le_bytes());
    token.extend(body);
    token
}

fn done(status: u16) -> Vec<u8> {
    let mut token = vec![0xFD];
    token.extend_from_slice(&status.to_le_bytes());
    token.extend_from_slice(&[0; 10]);
    token
}

#[tokio::test]
async fn results_are_walked_and_errors_kept() {
    // An int column and a nvarchar(max) column; a ROW and an NBCROW with the second NULL.
    let mut tokens = vec![0x81, 2, 0];
    tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x26, 4, 1, b'a', 0]);
    tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xE7, 0xFF, 0xFF, 9, 4, 0xD0, 0, 0x34, 1, b'b', 0]);
    tokens.extend_from_slice(&[0xD1, 4, 1, 0, 0, 0]);
    tokens.extend_from_slice(&6u64.to_le_bytes());
    tokens.extend_from_slice(&6u32.to_le_bytes());
    tokens.extend(utf16("abc"));
    tokens.extend_from_slice(&0u32.to_le_bytes());
    tokens.extend_from_slice(&[0xD2, 0b10, 4, 2, 0, 0, 0]);
    tokens.extend(done(0x10));
    let (client, mut server) = tokio::io::duplex(1 << 16);
    server.write_all(&answer(&tokens)).await.unwrap();
    let mut tds = Tds::new(client);
    assert_eq!(tds.walk().await.unwrap().rows, 2);

    let mut tokens = error_token(229, 5, "The SELECT permission was denied");
    tokens.extend(error_token(1, 1, "a consequence"));
    tokens.extend(done(0x02));
    server.write_all(&answer(&tokens)).await.unwrap();
    match tds.walk().await.unwrap().error {
        Some(TdsError::Server { number: 229, state: 5, message }) => assert!(message.contains("SELECT")),
        other => panic!("{other:?}"),
    }
}

/// Answers recorded from the harness's SQL Server stand-in (scripts/record-transcripts.py),
/// whose behaviour was first checked with Microsoft's ODBC driver, tedious, python-tds and
/// tsql: the login's answer, then the check query's, as they came off the wire.
async fn recorded(name: &str) -> Tds<tokio::io::DuplexStream> {
    let path = format!("{}/fixtures/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (client, mut server) = tokio::io::duplex(1 << 16);
    server.write_all(&bytes).await.unwrap();
    drop(server);
    Tds::new(client)
}

#[tokio::test]
async fn recorded_routing_names_the_routed_server() {
    match recorded("routing-envchange").await.login_answer().await {
        Err(TdsError::Routed(target)) => assert!(target.starts_with("localhost:"), "{target}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn recorded_unknown_database_reports_4060_before_18456() {
    match recorded("cannot-open-database-4060").await.login_answer().await {
        Err(TdsError::Server { number: 4060, state: 1, message }) => assert!(message.contains("no_such_db")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn recorded_permission_denied_comes_after_a_good_login() {
    let mut tds = recorded("permission-denied-229").await;
    let ack = tds.login_answer().await.unwrap();
    assert_eq!(ack.database.as_deref(), Some("appdb"));
    match tds.walk().await.unwrap().error {
        Some(TdsError::Server { number: 229, state: 5, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn recorded_answer_in_512_byte_packets_is_reassembled() {
    let mut tds = recorded("packet-size-512").await;
    tds.login_answer().await.unwrap();
    assert_eq!(tds.packet_size(), 512, "the ENVCHANGE's size is the one used from now on");
    let outcome = tds.walk().await.unwrap();
    assert!(outcome.error.is_none());
    assert_eq!(outcome.rows, 1);
}

#[test]
fn errors_are_std_errors_that_keep_their_cause() {
    let io = TdsError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
    assert!(std::error::Error::source(&io).is_some());
    let server = TdsError::Server { number: 18456, state: 1, message: "Login failed".into() };
    assert_eq!(server.to_string(), "Msg 18456, state 1: Login failed");
}

#[tokio::test]
async fn the_first_rows_integers_are_kept_when_asked() {
    // IS_SRVROLEMEMBER and IS_MEMBER as SQL Server types them (intn), a bit, and an int
    // column (fixed 4); then a second statement's row.
    let mut tokens = vec![0x81, 4, 0];
    tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x26, 4, 0]);
    tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x26, 4, 0]);
    tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x68, 1, 0]);
    tokens.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x38, 0]);
    tokens.extend_from_slice(&[0xD1, 4, 1, 0, 0, 0, 0, 1, 1]);
    tokens.extend_from_slice(&(-5i32).to_le_bytes());
    tokens.extend(done(0x11));
    tokens.extend_from_slice(&[0x81, 1, 0, 0, 0, 0, 0, 0, 0, 0x38, 0, 0xD1, 7, 0, 0, 0]);
    tokens.extend(done(0x10));
    let (client, mut server) = tokio::io::duplex(1 << 16);
    server.write_all(&answer(&tokens)).await.unwrap();
    let mut tds = Tds::new(client);
    let outcome = tds.walk_keeping(true).await.unwrap();
    assert_eq!(outcome.first_row, Some(vec![Some(1), None, Some(1), Some(-5)]));
    assert_eq!(outcome.rows, 2);
}
