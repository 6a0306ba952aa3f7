//! The `mysql` probe (MySQL and MariaDB). mysql_async builds its own TLS configuration and
//! offers no hook to see the server's certificate, so authprobe first performs the
//! protocol's own TLS upgrade itself (initial handshake, SSLRequest packet, TLS): that is
//! the `connect` and `tls` stages, with the certificate recorded and TLS failures
//! classified exactly as for every other kind. mysql_async then logs in over its own
//! connection (stage `auth`), trusting the same roots, and runs the query (stage `check`).
//!
//! Cost: one extra connection compared with the mysql client; removing it needs a login
//! implemented here rather than in the driver.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, OptsBuilder, SslOpts};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::TableReader;
use crate::error::{ErrorClass, Failure, Stage, classify_io, describe_io, find_cause};
use crate::net::{self, Record};
use crate::probes::db::DbTarget;
use crate::probes::{Probe, ProbeFuture};
use crate::stage::ProbeContext;
use crate::tls::{self, TlsMode, TlsOptions};

pub const DEFAULT_PORT: u16 = 3306;
const CLIENT_SSL: u32 = 0x0800;
const CLIENT_PROTOCOL_41: u32 = 0x0200;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_LONG_PASSWORD: u32 = 0x0001;

#[derive(Debug)]
pub struct MysqlProbe {
    db: DbTarget,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    Some(Arc::new(MysqlProbe { db: DbTarget::read(t, DEFAULT_PORT, false)? }))
}

/// What the server's initial handshake packet says.
struct Greeting {
    supports_tls: bool,
}

/// The largest greeting a server sends; anything claiming more is not a MySQL server.
const GREETING_MAX: usize = 16 * 1024;

/// Reads the server's greeting packet: 3-byte length, sequence number 0, payload. A header
/// that cannot be a greeting is refused before waiting for a payload that will not come.
async fn read_greeting(tcp: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, Failure> {
    let io = io_failure("while reading the server's greeting");
    let mut header = [0u8; 4];
    tcp.read_exact(&mut header).await.map_err(&io)?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if header[3] != 0 || len == 0 || len > GREETING_MAX {
        return Err(not_mysql());
    }
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.map_err(&io)?;
    Ok(payload)
}

fn not_mysql() -> Failure {
    Failure::new(ErrorClass::Protocol, "the server did not greet like MySQL or MariaDB")
        .with_hint("check the port: this does not look like a MySQL server")
}

fn io_failure(what: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |err| Failure::new(classify_io(&err), format!("{what}: {}", describe_io(&err)))
}

/// Parses the initial handshake (protocol 10) or the error packet a server sends instead.
fn parse_greeting(payload: &[u8]) -> Result<Greeting, Failure> {
    match payload.first() {
        Some(0x0a) => {}
        Some(0xff) if payload.len() >= 3 => {
            let code = u16::from_le_bytes([payload[1], payload[2]]);
            let message = String::from_utf8_lossy(&payload[3..]).trim_start_matches('#').to_string();
            return Err(server_error(code, &message));
        }
        _ => return Err(not_mysql()),
    }
    // version string, then connection id (4), scramble part 1 (8), filler (1), capabilities (2).
    let version_end = payload[1..].iter().position(|b| *b == 0).map(|p| p + 1).unwrap_or(payload.len());
    let caps_at = version_end + 1 + 4 + 8 + 1;
    let caps = payload
        .get(caps_at..caps_at + 2)
        .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
        .ok_or_else(|| Failure::new(ErrorClass::Protocol, "the server's greeting is truncated"))?;
    Ok(Greeting { supports_tls: caps & CLIENT_SSL != 0 })
}

/// The SSLRequest packet (sequence 1): capabilities, max packet size, charset, 23 zeros.
fn ssl_request() -> Vec<u8> {
    let caps = CLIENT_SSL | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_LONG_PASSWORD;
    let mut payload = Vec::with_capacity(32);
    payload.extend_from_slice(&caps.to_le_bytes());
    payload.extend_from_slice(&(16u32 * 1024 * 1024).to_le_bytes());
    payload.push(0x21); // utf8_general_ci
    payload.extend_from_slice(&[0u8; 23]);
    let mut packet = vec![32, 0, 0, 1];
    packet.extend_from_slice(&payload);
    packet
}

/// Connects and upgrades to TLS the way the protocol does, up to (not including) login.
/// Returns whether the session can be encrypted; records the certificate.
pub async fn tls_upgrade<IO: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    mut tcp: IO,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<Option<tls::Handshake<IO>>, Failure> {
    let greeting = read_greeting(&mut tcp).await?;
    let greeting = parse_greeting(&greeting)?;
    if !greeting.supports_tls {
        return Ok(None);
    }
    tcp.write_all(&ssl_request()).await.map_err(io_failure("while asking for TLS"))?;
    Ok(Some(tls::handshake(ctx, tcp, opts, host, &[], report).await?))
}

impl MysqlProbe {
    /// mysql_async's TLS settings equivalent to this probe's.
    fn ssl_opts(&self, ctx: &ProbeContext, presented: &[rustls::pki_types::CertificateDer<'static>]) -> SslOpts {
        let trust = self.db.driver_trust(ctx, presented);
        let mut opts = SslOpts::default();
        if !trust.accept_any {
            opts = opts.with_root_certs(vec![trust.roots_pem.into()]).with_disable_built_in_roots(true);
        }
        opts = opts
            .with_danger_accept_invalid_certs(trust.accept_any)
            .with_danger_skip_domain_validation(trust.skip_name)
            .with_danger_tls_hostname_override(Some(trust.verify_as));
        if let Some(identity) = &self.db.tls.identity_pem {
            let (cert, key) = identity.as_ref();
            opts = opts.with_client_identity(Some(ClientIdentity::new(cert.clone().into(), key.clone().into())));
        }
        opts
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        let first = net::connect(ctx, &self.db.host, self.db.port, Record::Stages).await?;
        let encrypt = self.db.mode() != TlsMode::Disable;
        let mut peek = tls::Recording::default();
        let mut encrypted = false;
        if encrypt {
            let upgraded =
                ctx.stage(Stage::Tls, tls_upgrade(ctx, first.stream, &self.db.tls, &self.db.host, true)).await?;
            match upgraded {
                Some(hs) => {
                    peek = hs.recorder.snapshot();
                    encrypted = true;
                }
                None => self.db.without_tls(ctx)?,
            }
        } else {
            drop(first.stream);
        }
        let (mut conn, _forward) = ctx
            .stage(Stage::Auth, async {
                // The driver connects by address: the one that answered, or a loopback port
                // joined to a new tunnel channel.
                let (addr, forward) = net::driver_address(&first.route, &self.db.host, self.db.port).await?;
                let mut builder = OptsBuilder::default()
                    .ip_or_hostname(addr.ip().to_string())
                    .tcp_port(addr.port())
                    .prefer_socket(false)
                    .user(Some(self.db.user.clone()))
                    .pass(self.db.password.as_ref().map(|p| p.expose().to_string()))
                    .db_name(self.db.database.clone())
                    .stmt_cache_size(0);
                if encrypted {
                    builder = builder.ssl_opts(self.ssl_opts(ctx, &peek.chain));
                }
                let conn = mysql_async::Conn::new(builder).await.map_err(|e| self.classify(&e, &peek, encrypted))?;
                let (major, minor, patch) = conn.server_version();
                ctx.diagnostic(format!(
                    "mysql: server version {major}.{minor}.{patch}, connection id {}, session {}",
                    conn.id(),
                    if encrypted { "encrypted" } else { "not encrypted" }
                ));
                Ok((conn, forward))
            })
            .await?;
        let result = ctx
            .stage(Stage::Check, async {
                conn.query_drop(&self.db.query).await.map_err(|e| self.classify(&e, &peek, encrypted))
            })
            .await;
        // Closing politely is best effort: the answer is known already.
        let _ = tokio::time::timeout(Duration::from_millis(200), conn.disconnect()).await;
        result
    }

    /// Classifies a driver error; `peek` is what the tls stage saw (whether the server asked
    /// for a client certificate), `encrypted` whether the login went over TLS.
    fn classify(&self, err: &mysql_async::Error, peek: &tls::Recording, encrypted: bool) -> Failure {
        let tls_opts = &self.db.tls;
        match err {
            mysql_async::Error::Server(server) => {
                let failure = server_error(server.code, &server.message);
                if server.code != 1045 {
                    return failure;
                }
                // 1045 is also how servers refuse a login that lacks TLS or a certificate.
                if !encrypted {
                    failure.with_hint("the password is wrong, or the account requires TLS (REQUIRE SSL, require_secure_transport): try tls.mode = \"require\"")
                } else if tls_opts.identity.is_none() {
                    failure.with_hint("the password is wrong, or the account requires a client certificate (REQUIRE X509/SUBJECT): check both")
                } else {
                    failure
                }
            }
            other => {
                let name = tls_opts
                    .verify_name(&self.db.host)
                    .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
                if let Some(tls_err) = find_cause::<rustls::Error>(other) {
                    return tls::classify_tls_error(tls_err, peek, tls_opts, &name);
                }
                if let Some(io) = find_cause::<std::io::Error>(other) {
                    let dropped = matches!(
                        io.kind(),
                        std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::BrokenPipe
                    );
                    if dropped && encrypted && peek.client_cert_requested {
                        return tls::client_cert_refused_silently(tls_opts.identity.is_some());
                    }
                    return Failure::new(classify_io(io), describe_io(io));
                }
                Failure::new(ErrorClass::Protocol, format!("MySQL driver error: {other}"))
            }
        }
    }
}

/// The class of a MySQL/MariaDB server error, from its error number.
fn server_error(code: u16, message: &str) -> Failure {
    let said = format!("{message} (error {code})");
    match code {
        1045 => Failure::new(ErrorClass::AuthRejected, said).with_hint("the user name or password is wrong"),
        1130 => Failure::new(ErrorClass::AuthRejected, said).with_hint(
            "the server does not allow this user from this machine's address: ask the DBA to add a grant for it",
        ),
        1044 => Failure::new(ErrorClass::PermissionDenied, said)
            .with_hint("the user may not use this database: grant it access"),
        1049 => Failure::new(ErrorClass::NotFound, said).with_hint("the database does not exist: check `database`"),
        1142 | 1143 | 1227 => Failure::new(ErrorClass::PermissionDenied, said)
            .with_hint("the user logged in but may not run the check query: grant it, or change `query`"),
        1146 => Failure::new(ErrorClass::NotFound, said).with_hint("the check query names a table that does not exist"),
        3159 => Failure::new(ErrorClass::TlsHandshake, said)
            .with_hint("the server requires TLS (require_secure_transport): set tls.mode to require or verify-full"),
        1040 => Failure::new(ErrorClass::UnexpectedResponse, said).with_hint("the server is out of connections"),
        _ => Failure::new(ErrorClass::UnexpectedResponse, said),
    }
}

impl Probe for MysqlProbe {
    fn target(&self) -> String {
        self.db.url("mysql")
    }

    fn stages(&self) -> Vec<Stage> {
        self.db.stages()
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(self.run_once(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_are_parsed_and_error_packets_classified() {
        let mut greeting = vec![0x0a];
        greeting.extend_from_slice(b"10.11.6-MariaDB\0");
        greeting.extend_from_slice(&[1, 0, 0, 0]);
        greeting.extend_from_slice(&[0; 8]);
        greeting.push(0);
        greeting.extend_from_slice(&(CLIENT_SSL as u16 | 0x0200).to_le_bytes());
        assert!(parse_greeting(&greeting).unwrap().supports_tls);
        let mut error = vec![0xff];
        error.extend_from_slice(&1130u16.to_le_bytes());
        error.extend_from_slice(b"Host '10.0.0.1' is not allowed to connect");
        let failure = parse_greeting(&error).err().unwrap();
        assert_eq!(failure.class, ErrorClass::AuthRejected);
        assert!(parse_greeting(b"SSH-2.0-OpenSSH").is_err());
        assert_eq!(ssl_request().len(), 36);
    }
}
