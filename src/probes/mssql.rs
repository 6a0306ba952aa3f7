//! The `mssql` probe (SQL Server). tiberius builds its own TLS configuration and shows no
//! certificate, so authprobe first performs the protocol's own TLS upgrade itself: a TDS
//! PRELOGIN, then the TLS handshake carried inside TDS PRELOGIN packets (stages `connect`
//! and `tls`, certificate recorded, TLS failures classified as for every kind). tiberius
//! then logs in over its own connection with the same trust (stage `auth`) and runs the
//! query (stage `check`). Like the mysql probe, that costs one extra connection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tiberius::{AuthMethod, EncryptionLevel};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::compat::TokioAsyncWriteCompatExt;

use crate::config::TableReader;
use crate::error::{ErrorClass, Failure, Stage, classify_io, describe_io};
use crate::net::{self, Record};
use crate::probes::db::DbTarget;
use crate::probes::{Probe, ProbeFuture};
use crate::stage::ProbeContext;
use crate::tls::{self, TlsMode, TlsOptions};

pub const DEFAULT_PORT: u16 = 1433;
const PRELOGIN: u8 = 0x12;
const HEADER: usize = 8;
/// Largest TLS payload put in one TDS packet (the default packet size is 4096).
const MAX_CHUNK: usize = 4096 - HEADER;

#[derive(Debug)]
pub struct MssqlProbe {
    db: DbTarget,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    Some(Arc::new(MssqlProbe { db: DbTarget::read(t, DEFAULT_PORT, true)? }))
}

fn packet(kind: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + HEADER) as u16;
    let mut out = Vec::with_capacity(payload.len() + HEADER);
    out.extend_from_slice(&[kind, 0x01]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0, id, 0]);
    out.extend_from_slice(payload);
    out
}

/// A PRELOGIN message offering encryption: VERSION and ENCRYPTION options.
fn prelogin_request() -> Vec<u8> {
    let options_len = 2 * 5 + 1;
    let mut payload = Vec::new();
    payload.extend_from_slice(&[0x00, 0x00, options_len as u8, 0x00, 0x06]); // VERSION at 11, 6 bytes
    payload.extend_from_slice(&[0x01, 0x00, (options_len + 6) as u8, 0x00, 0x01]); // ENCRYPTION, 1 byte
    payload.push(0xff);
    payload.extend_from_slice(&[0x10, 0x00, 0x00, 0x00, 0x00, 0x00]);
    payload.push(EncryptionLevel::On as u8);
    packet(PRELOGIN, 1, &payload)
}

/// The value of one option of a PRELOGIN response payload (0x00 VERSION, 0x01 ENCRYPTION).
fn prelogin_option(payload: &[u8], option: u8) -> Result<&[u8], Failure> {
    let bad = || {
        Failure::new(ErrorClass::Protocol, "the server's PRELOGIN answer is malformed")
            .with_hint("check the port: this does not look like SQL Server")
    };
    let mut at = 0;
    while let Some(&token) = payload.get(at) {
        if token == 0xff {
            break;
        }
        let entry = payload.get(at..at + 5).ok_or_else(bad)?;
        let offset = usize::from(u16::from_be_bytes([entry[1], entry[2]]));
        let len = usize::from(u16::from_be_bytes([entry[3], entry[4]]));
        if token == option {
            return payload.get(offset..offset + len).filter(|v| !v.is_empty()).ok_or_else(bad);
        }
        at += 5;
    }
    Err(bad())
}

/// The ENCRYPTION value of a PRELOGIN response payload.
fn prelogin_encryption(payload: &[u8]) -> Result<u8, Failure> {
    Ok(prelogin_option(payload, 0x01)?[0])
}

/// The server version a PRELOGIN response announces, as SQL Server numbers its builds.
fn prelogin_version(payload: &[u8]) -> Option<String> {
    let v = prelogin_option(payload, 0x00).ok()?;
    let build = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
    Some(format!("{}.{}.{build}", v.first()?, v.get(1)?))
}

async fn read_tds_message(tcp: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, Failure> {
    let io = |err: std::io::Error| Failure::new(classify_io(&err), format!("during PRELOGIN: {}", describe_io(&err)));
    let mut message = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        tcp.read_exact(&mut header).await.map_err(io)?;
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if header[0] != 0x04 || len < HEADER {
            return Err(Failure::new(ErrorClass::Protocol, "the server did not answer the PRELOGIN like SQL Server")
                .with_hint("check the port: this does not look like SQL Server"));
        }
        let mut payload = vec![0u8; len - HEADER];
        tcp.read_exact(&mut payload).await.map_err(io)?;
        message.extend_from_slice(&payload);
        if header[1] & 0x01 != 0 {
            return Ok(message);
        }
    }
}

/// Carries TLS records inside TDS PRELOGIN packets, as TDS 7.x does during the handshake.
pub struct TdsTls<S> {
    inner: S,
    out: Vec<u8>,
    packet_id: u8,
    header: [u8; HEADER],
    header_filled: usize,
    payload_left: usize,
}

impl<S> TdsTls<S> {
    fn new(inner: S) -> Self {
        TdsTls { inner, out: Vec::new(), packet_id: 1, header: [0; HEADER], header_filled: 0, payload_left: 0 }
    }
}

impl<S: AsyncWrite + Unpin> TdsTls<S> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TdsTls<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while this.payload_left == 0 {
            let mut header = ReadBuf::new(&mut this.header[this.header_filled..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut header))?;
            let n = header.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(())); // EOF
            }
            this.header_filled += n;
            if this.header_filled == HEADER {
                this.payload_left =
                    usize::from(u16::from_be_bytes([this.header[2], this.header[3]])).saturating_sub(HEADER);
                this.header_filled = 0;
            }
        }
        let want = buf.remaining().min(this.payload_left);
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        this.payload_left -= n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TdsTls<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if !this.out.is_empty() {
            ready!(this.drain(cx))?;
        }
        let chunk = &data[..data.len().min(MAX_CHUNK)];
        let id = this.packet_id;
        this.packet_id = this.packet_id.wrapping_add(1);
        this.out = packet(PRELOGIN, id, chunk);
        // The bytes are ours now; they go out on this call or the next flush.
        let _ = this.drain(cx)?;
        Poll::Ready(Ok(chunk.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// PRELOGIN and the TLS handshake in TDS packets, up to (not including) the login. `None`
/// when the server does not support encryption.
pub async fn tls_upgrade<IO: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    mut tcp: IO,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<Option<tls::Handshake<TdsTls<IO>>>, Failure> {
    tcp.write_all(&prelogin_request())
        .await
        .map_err(|e| Failure::new(classify_io(&e), format!("while sending PRELOGIN: {}", describe_io(&e))))?;
    let answer = read_tds_message(&mut tcp).await?;
    if report && let Some(version) = prelogin_version(&answer) {
        ctx.diagnostic(format!("mssql: the server announces version {version}"));
    }
    if prelogin_encryption(&answer)? == EncryptionLevel::NotSupported as u8 {
        return Ok(None);
    }
    Ok(Some(tls::handshake(ctx, TdsTls::new(tcp), opts, host, &[], report).await?))
}

impl MssqlProbe {
    /// tiberius settings equivalent to this probe's TLS options.
    fn config(&self, ctx: &ProbeContext, presented: &[rustls::pki_types::CertificateDer<'static>]) -> tiberius::Config {
        let db = &self.db;
        let mut config = tiberius::Config::new();
        config.host(&db.host);
        config.port(db.port);
        config.application_name("authprobe");
        let password = db.password.as_ref().map(|p| p.expose()).unwrap_or_default();
        config.authentication(AuthMethod::sql_server(&db.user, password));
        if let Some(name) = &db.database {
            config.database(name);
        }
        config.encryption(match db.mode() {
            TlsMode::Disable => EncryptionLevel::NotSupported,
            TlsMode::Prefer => EncryptionLevel::On,
            _ => EncryptionLevel::Required,
        });
        let trust = db.driver_trust(ctx, presented);
        if trust.accept_any {
            config.trust_cert();
        } else {
            config.trust_cert_ca_bundle(trust.roots_pem);
            config.hostname_in_certificate(trust.verify_as);
        }
        if let Some((cert, key)) = &db.tls.identity_paths {
            config.client_certificate(cert.clone(), key.clone());
        }
        config
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        let first = net::connect(ctx, &self.db.host, self.db.port, Record::Stages).await?;
        let mut presented = Vec::new();
        let reuse = if self.db.mode() == TlsMode::Disable {
            Some(first.stream)
        } else {
            let upgraded =
                ctx.stage(Stage::Tls, tls_upgrade(ctx, first.stream, &self.db.tls, &self.db.host, true)).await?;
            match upgraded {
                Some(hs) => presented = hs.recorder.snapshot().chain,
                None => self.db.without_tls(ctx)?,
            }
            None
        };
        let config = self.config(ctx, &presented);
        let mut client = ctx
            .stage(Stage::Auth, async {
                // After a TLS peek the driver logs in over a connection of its own, to where
                // the first one went.
                let login_stream = match reuse {
                    Some(stream) => stream,
                    None => net::reconnect(&first.route, &self.db.host, self.db.port).await?,
                };
                tiberius::Client::connect(config, login_stream.compat_write()).await.map_err(|e| self.classify(&e))
            })
            .await?;
        ctx.stage(Stage::Check, async {
            let stream = client.simple_query(&self.db.query).await.map_err(|e| self.classify(&e))?;
            stream.into_results().await.map(|_| ()).map_err(|e| self.classify(&e))
        })
        .await
    }

    fn classify(&self, err: &tiberius::error::Error) -> Failure {
        use tiberius::error::Error as E;
        match err {
            E::Server(token) => server_error(token.code(), token.state(), token.message()),
            E::Io { kind, message } => {
                let io = std::io::Error::from(*kind);
                Failure::new(classify_io(&io), format!("{}: {message}", describe_io(&io)))
            }
            E::Tls(message) => Failure::new(ErrorClass::TlsHandshake, format!("TLS during login: {message}")),
            other => Failure::new(ErrorClass::Protocol, format!("SQL Server protocol error: {other}")),
        }
    }
}

/// The class of a SQL Server error, from its message number.
fn server_error(code: u32, state: u8, message: &str) -> Failure {
    let said = format!("{message} (Msg {code}, state {state})");
    match code {
        18456 => {
            // The server tells clients state 1 only; other states appear in its log, and
            // reach the client from some servers and proxies.
            let why = match state {
                2 | 5 => Some("the login does not exist"),
                6 => Some("a Windows login was used with SQL authentication"),
                7 => Some("the login is disabled"),
                8 | 9 => Some("the password is wrong"),
                11 | 12 => Some("the login is valid but has no access to the server"),
                18 => Some("the password must be changed first"),
                38 | 40 => Some("the login's default or requested database cannot be opened"),
                58 => Some("the server accepts Windows authentication only"),
                _ => None,
            };
            let hint = match why {
                Some(why) => format!("{why}; the server's error log has the details"),
                None => "the login or password is wrong (the server's error log says which: look for the state there)"
                    .into(),
            };
            Failure::new(ErrorClass::AuthRejected, said).with_hint(hint)
        }
        18452 | 18470 | 18486 | 18487 | 18488 => Failure::new(ErrorClass::AuthRejected, said),
        4060 => Failure::new(ErrorClass::NotFound, said)
            .with_hint("the database does not exist, or the login has no user in it: check `database`"),
        229 | 230 | 262 | 297 | 300 => Failure::new(ErrorClass::PermissionDenied, said)
            .with_hint("the login works but may not run the check query: grant it, or change `query`"),
        208 => {
            Failure::new(ErrorClass::NotFound, said).with_hint("the check query names an object that does not exist")
        }
        _ => Failure::new(ErrorClass::UnexpectedResponse, said),
    }
}

impl Probe for MssqlProbe {
    fn target(&self) -> String {
        self.db.url("mssql")
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
    fn prelogin_round_trip() {
        let request = prelogin_request();
        assert_eq!(request[0], PRELOGIN);
        assert_eq!(usize::from(u16::from_be_bytes([request[2], request[3]])), request.len());
        assert_eq!(prelogin_encryption(&request[HEADER..]).unwrap(), EncryptionLevel::On as u8);
        assert!(prelogin_encryption(&[0x00, 0x00]).is_err());
        assert_eq!(prelogin_version(&request[HEADER..]).as_deref(), Some("16.0.0"));
    }

    #[test]
    fn login_failures_explain_known_states() {
        let f = server_error(18456, 8, "Login failed for user 'x'.");
        assert_eq!(f.class, ErrorClass::AuthRejected);
        assert!(f.hint.unwrap().contains("password is wrong"));
        assert_eq!(server_error(4060, 1, "Cannot open database").class, ErrorClass::NotFound);
        assert_eq!(server_error(229, 1, "permission denied").class, ErrorClass::PermissionDenied);
    }
}
