//! Unit tests of the message parser and the client, against scripted servers.
use crate::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn authentication_requests_are_parsed() {
    assert_eq!(parse_backend(b'R', &0i32.to_be_bytes()).unwrap(), Backend::AuthOk);
    assert_eq!(parse_backend(b'R', &3i32.to_be_bytes()).unwrap(), Backend::AuthCleartext);
    let md5 = [&5i32.to_be_bytes()[..], b"salt"].concat();
    assert_eq!(parse_backend(b'R', &md5).unwrap(), Backend::AuthMd5 { salt: *b"salt" });
    let sasl = [&10i32.to_be_bytes()[..], b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"].concat();
    assert_eq!(
        parse_backend(b'R', &sasl).unwrap(),
        Backend::AuthSasl { mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()] }
    );
}

#[test]
fn malformed_bodies_are_protocol_errors() {
    for (tag, body) in [
        (b'R', &b"\0\0"[..]),
        (b'R', &[0, 0, 0, 5, 1][..]),
        (b'R', &[0, 0, 0, 10, b'S'][..]),
        (b'E', &b"Mno terminator"[..]),
        (b'S', &b"name-only\0"[..]),
    ] {
        assert!(matches!(parse_backend(tag, body), Err(PgError::Protocol(_))), "{tag} {body:?}");
    }
}

#[test]
fn error_fields_are_read() {
    let body = b"SFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0";
    let Backend::Error(e) = parse_backend(b'E', body).unwrap() else { panic!() };
    assert_eq!(e.code, "28P01");
    assert_eq!(e.severity, "FATAL");
    assert!(e.message.starts_with("password authentication failed"));
}

fn policy() -> AuthPolicy {
    AuthPolicy { allowed: Vec::new(), forbidden: Vec::new(), channel_binding: ChannelBindingMode::Prefer }
}

/// A server that asks for the password in clear text over an unverified session gets
/// nothing but the startup message.
#[tokio::test]
async fn cleartext_is_refused_to_an_unverified_server() {
    let (client, mut server) = tokio::io::duplex(4096);
    let mut transcript = Vec::new();
    let serve = async {
        let mut buf = [0u8; 1024];
        let n = server.read(&mut buf).await.unwrap();
        transcript.extend_from_slice(&buf[..n]);
        server.write_all(&message(b'R', &3i32.to_be_bytes())).await.unwrap();
        let mut rest = Vec::new();
        let _ = server.read_to_end(&mut rest).await;
        transcript.extend_from_slice(&rest);
    };
    let login = async {
        let mut c = Client::new(client);
        let r = c.login("u", "db", Some(Password::ChallengeOnly("hunter2-cleartext")), &policy(), None, None).await;
        drop(c);
        r
    };
    let (result, ()) = tokio::join!(login, serve);
    assert!(matches!(result, Err(PgError::Refused(Refusal::UnverifiedPeer { method: Method::Password }))));
    assert!(!String::from_utf8_lossy(&transcript).contains("hunter2"), "the password was sent");
}

/// The same request, with the password released by the caller: sent as asked.
#[test]
fn a_released_password_answers_cleartext_authentication() {
    use crate::exchange::{LoginExchange, LoginStep};
    let policy = policy();
    let (mut exchange, _) =
        LoginExchange::start("u", "db", Some(Password::Releasable("hunter2-cleartext")), &policy, None).unwrap();
    let step = exchange.on_message(Backend::AuthCleartext).unwrap();
    assert!(matches!(&step, LoginStep::Send(b) if b.windows(7).any(|w| w == b"hunter2")), "{step:?}");
    let (mut exchange, _) =
        LoginExchange::start("u", "db", Some(Password::ChallengeOnly("hunter2-md5")), &policy, None).unwrap();
    let step = exchange.on_message(Backend::AuthMd5 { salt: [1, 2, 3, 4] }).unwrap();
    assert!(matches!(&step, LoginStep::Send(b) if !b.windows(7).any(|w| w == b"hunter2")), "{step:?}");
}

#[tokio::test]
async fn lengths_are_checked_before_reading() {
    let (client, mut server) = tokio::io::duplex(64);
    tokio::spawn(async move {
        server.write_all(&[b'E', 0x7f, 0xff, 0xff, 0xff]).await.unwrap();
        server.write_all(&[b'E', 0, 0, 0, 1]).await.ok();
        std::future::pending::<()>().await;
    });
    let mut c = Client::new(client);
    let err = c.read().await.unwrap_err();
    assert!(matches!(&err, PgError::Protocol(m) if m.contains("reads at most")), "{err:?}");
    let err = c.read().await.unwrap_err();
    assert!(matches!(&err, PgError::Protocol(m) if m.contains("impossible length")), "{err:?}");
}

#[test]
fn require_auth_lists_are_enforced() {
    let mut p = policy();
    p.allowed = vec![Method::ScramSha256];
    assert!(p.check(Method::ScramSha256).is_ok());
    assert!(matches!(p.check(Method::Md5), Err(PgError::Refused(Refusal::NotAllowed { method: Method::Md5 }))));
    let mut p = policy();
    p.forbidden = vec![Method::Password];
    assert!(p.check(Method::Md5).is_ok());
    assert!(p.check(Method::Password).is_err());
}

/// A scripted GSS-API initiator: the first token, then completion on the server's reply.
struct ScriptedGss {
    complete: bool,
    seen: Vec<Option<Vec<u8>>>,
}

impl GssInitiator for ScriptedGss {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        self.seen.push(input.map(<[u8]>::to_vec));
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
fn gssapi_tokens_go_through_the_exchange_and_mutual_authentication_is_required() {
    use crate::exchange::{LoginExchange, LoginStep};
    let policy = policy();
    let run = |continue_with: &[u8]| {
        let mut gss = ScriptedGss { complete: false, seen: Vec::new() };
        let result = {
            let (exchange, _) = LoginExchange::start("u", "db", None, &policy, None).unwrap();
            let mut exchange = exchange.with_gss(&mut gss);
            let first = exchange.on_message(Backend::AuthGss).unwrap();
            // GSSResponse: 'p', length, the token
            assert!(matches!(&first, LoginStep::Send(b) if b[0] == b'p' && b.ends_with(b"AP-REQ")), "{first:?}");
            exchange
                .on_message(Backend::AuthGssContinue(continue_with.to_vec()))
                .and_then(|_| exchange.on_message(Backend::AuthOk))
                .map(|step| matches!(step, LoginStep::Read))
        };
        (result, gss.seen)
    };
    let (ok, seen) = run(b"AP-REP");
    assert!(ok.unwrap());
    assert_eq!(seen, vec![None, Some(b"AP-REP".to_vec())]);
    assert!(matches!(run(b"forged").0, Err(PgError::Gss(_))));
    // A server that lets the client in before proving itself is refused.
    let mut gss = ScriptedGss { complete: false, seen: Vec::new() };
    let (exchange, _) = LoginExchange::start("u", "db", None, &policy, None).unwrap();
    let mut exchange = exchange.with_gss(&mut gss);
    exchange.on_message(Backend::AuthGss).unwrap();
    assert!(matches!(exchange.on_message(Backend::AuthOk), Err(PgError::Protocol(_))));
    // Without Kerberos credentials, AuthenticationGSS is a refusal that says how to add them.
    let (mut bare, _) = LoginExchange::start("u", "db", None, &policy, None).unwrap();
    assert!(matches!(bare.on_message(Backend::AuthGss), Err(PgError::Refused(Refusal::Unsupported { .. }))));
}

#[test]
fn errors_are_std_errors_that_keep_their_cause() {
    let io = PgError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
    assert_eq!(io.to_string(), "connection: reset");
    assert!(std::error::Error::source(&io).is_some(), "the io error stays reachable for classification");
    assert_eq!(PgError::Protocol("short message".into()).to_string(), "protocol: short message");
}

#[test]
fn data_rows_are_read_within_their_bounds() {
    let row = |cols: &[Option<&[u8]>]| {
        let mut body = (cols.len() as i16).to_be_bytes().to_vec();
        for col in cols {
            match col {
                Some(v) => {
                    body.extend((v.len() as i32).to_be_bytes());
                    body.extend(*v);
                }
                None => body.extend((-1i32).to_be_bytes()),
            }
        }
        body
    };
    let parsed = crate::parse_data_row(&row(&[Some(b"t"), None, Some(b"")])).unwrap();
    assert_eq!(parsed, vec![Some("t".to_string()), None, Some(String::new())]);
    let mut long = row(&[Some(b"abc")]);
    long.truncate(long.len() - 1);
    assert!(crate::parse_data_row(&long).is_err(), "a length past the end");
    let mut lying = (1i16).to_be_bytes().to_vec();
    lying.extend(i32::MAX.to_be_bytes());
    assert!(crate::parse_data_row(&lying).is_err(), "a huge length is not allocated");
    assert!(crate::parse_data_row(&(-2i16).to_be_bytes()).is_err());
    assert!(crate::parse_data_row(&(65i16).to_be_bytes()).is_err());
    assert!(crate::parse_data_row(&[&row(&[Some(b"t")])[..], b"x"].concat()).is_err(), "trailing bytes");
}
