//! The `mssql` probe (SQL Server). authprobe speaks TDS itself (see `tds`): PRELOGIN, then
//! the TLS handshake carried inside TDS packets through the shared TLS module (stage `tls`,
//! certificate recorded and failures classified like every other kind), LOGIN7 over that
//! same session (stage `auth`), and the check query as a SQL batch (stage `check`): one
//! connection, as sqlcmd makes.
//!
//! `tls.mode = "disable"` asks for what Microsoft's drivers call Encrypt=no: the server
//! still encrypts the login packet when it can (so the password never crosses in clear),
//! and the rest of the session is not encrypted.
//!
//! `tls.mode = "strict"` is TDS 8 (SQL Server 2022, Azure SQL; Microsoft's Encrypt=Strict):
//! the TLS handshake comes first on the bare connection, with ALPN `tds/8.0`, and PRELOGIN,
//! LOGIN7 and everything after travel inside it; verified like verify-full.
//!
//! A gateway may route the login (ENVCHANGE 20: Azure SQL's Redirect connection policy, the
//! default from inside Azure): the probe then connects to the routed host and logs in again
//! there, once, verifying that server's certificate against the routed name, as Microsoft's
//! drivers do.
//!
//! LOGIN7 carries the password only obfuscated (a reversible nibble swap and XOR), so it
//! goes only to a verified server (TLS verified by a CA or a pin), unless the probe sets
//! `allow_unverified_password`: the credential release rule.

mod privileges;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::net::{BoxIo, Record};
use crate::connect::tls::{self, Recorder, TlsMode, TlsOptions};
use crate::model::advice::{Fix, Key};
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::release::Release;
use crate::probes::InspectFuture;
use crate::probes::Probe;
use crate::probes::db::{DbTarget, release_proof, session_io_failure, unverified_peer_refusal};
use crate::probes::from_url::{UrlOptions, UrlProbe};
pub use tds::TdsTls;
use tds::{Encryption, Tds, TdsError};
use tds_wire as tds;
use url::Url;

pub const DEFAULT_PORT: u16 = 1433;

#[derive(Debug, Clone)]
pub struct MssqlProbe {
    db: DbTarget,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    Some(Arc::new(MssqlProbe { db: DbTarget::read(t, DEFAULT_PORT, true, crate::probes::db::IamSupport::None, true)? }))
}

/// PRELOGIN, noting the version the server announces.
async fn prelogin<IO: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    tcp: &mut IO,
    encryption: Encryption,
    report: bool,
) -> Result<Encryption, Failure> {
    let answer = tds::prelogin(tcp, encryption).await.map_err(|err| {
        let closed = matches!(&err, TdsError::Io(io) if matches!(io.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset));
        let failure = plain_failure(err, "during PRELOGIN");
        if closed && encryption != Encryption::NotSupported {
            failure.with_hint(crate::advice![
                "the server closed the connection at PRELOGIN: one that enforces TDS 8 strict encryption (SQL Server 2022 or Azure SQL with Force Strict Encryption) does this; set ",
                Fix::TlsMode("strict")
            ])
        } else {
            failure
        }
    })?;
    if report && let Some(version) = &answer.version {
        ctx.diagnostic(format!("mssql: the server announces version {version}"));
    }
    Ok(answer.encryption)
}

/// The TLS handshake inside TDS packets; afterwards the records travel bare.
async fn start_tls<IO: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    tcp: IO,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<tls::Handshake<TdsTls<IO>>, Failure> {
    let mut hs = tls::handshake(ctx, &ctx.shared.trust, TdsTls::new(tcp), opts, host, &[], report).await?;
    hs.stream.get_mut().0.handshake_done();
    Ok(hs)
}

/// PRELOGIN and the TLS handshake, up to (not including) the login; `None` when the
/// server does not support encryption. For `inspect`.
pub async fn tls_upgrade<IO: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    mut tcp: IO,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<Option<tls::Handshake<TdsTls<IO>>>, Failure> {
    if prelogin(ctx, &mut tcp, Encryption::On, report).await? == Encryption::NotSupported {
        return Ok(None);
    }
    Ok(Some(start_tls(ctx, tcp, opts, host, report).await?))
}

/// This machine's name, which SQL Server shows as the session's host.
fn workstation() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
    if rc != 0 || end == 0 { "authprobe".into() } else { String::from_utf8_lossy(&buf[..end]).into_owned() }
}

/// The connection (ready for LOGIN7, or past it), and whether (and how) it is encrypted.
struct Session {
    tds: Tds<BoxIo>,
    tls: Option<Recorder>,
}

impl MssqlProbe {
    /// LOGIN7's fields: the password in it is only reversibly obfuscated, so it needs the
    /// release rule's proof ([`Self::may_send_login`]).
    fn login<'a>(&'a self, db: &'a DbTarget, workstation: &'a str, release: &Release) -> tds::Login<'a> {
        tds::Login {
            user: &db.user,
            password: db.password.as_ref().map(|p| p.release(release)).unwrap_or_default(),
            database: db.database.as_deref(),
            server: &db.host,
            app: "authprobe",
            workstation,
        }
    }

    /// The credential release rule for LOGIN7: `tls` is the session the login would travel in.
    fn may_send_login(&self, ctx: &ProbeContext, tls: Option<&Recorder>) -> Result<Release, Failure> {
        if let Some(proof) = release_proof(ctx, tls) {
            if !proof.peer_verified() {
                ctx.detail("release: the login (password reversibly obfuscated) was sent to a server whose identity is not verified (allow_unverified_password = true)");
            }
            return Ok(proof);
        }
        Err(unverified_peer_refusal(
            "SQL Server's login packet (LOGIN7) carries the password only reversibly obfuscated",
            tls,
        ))
    }

    /// Stage `tls`: PRELOGIN asking for encryption, then the handshake; under TDS 8, the
    /// handshake first and PRELOGIN inside it.
    async fn negotiate_tls(&self, ctx: &ProbeContext, db: &DbTarget, mut tcp: BoxIo) -> Result<Session, Failure> {
        if db.mode() == TlsMode::Strict {
            let hs = tls::handshake(ctx, &ctx.shared.trust, tcp, &db.tls, &db.host, &[b"tds/8.0"], true)
                .await
                .map_err(|failure| match failure.class {
                    // A TDS 7 server reads the ClientHello as a broken TDS packet and hangs up.
                    ErrorClass::Network | ErrorClass::TlsHandshake | ErrorClass::Protocol => failure.with_hint(
                        "tls.mode = \"strict\" is TDS 8 (SQL Server 2022 and later, Azure SQL), which this server did not answer: use tls.mode = \"verify-full\" for an older server",
                    ),
                    _ => failure,
                })?;
            let alpn = hs.stream.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
            ctx.detail(format!(
                "session: TDS 8 strict: TLS first, ALPN {}",
                alpn.as_deref().unwrap_or("not selected by the server")
            ));
            let mut stream: BoxIo = Box::new(hs.stream);
            // Inside TLS the ENCRYPTION option has nothing left to negotiate; Microsoft's
            // ODBC driver sends "not supported" there, and so does this.
            prelogin(ctx, &mut stream, Encryption::NotSupported, true).await?;
            return Ok(Session { tds: Tds::new(stream), tls: Some(hs.recorder) });
        }
        if prelogin(ctx, &mut tcp, Encryption::On, true).await? == Encryption::NotSupported {
            db.without_tls(ctx)?;
            return Ok(Session { tds: Tds::new(tcp), tls: None });
        }
        let hs = start_tls(ctx, tcp, &db.tls, &db.host, true).await?;
        Ok(Session { tds: Tds::new(Box::new(hs.stream)), tls: Some(hs.recorder) })
    }

    /// With `tls.mode = "disable"`: PRELOGIN with encryption off, LOGIN7 through a TLS
    /// session that covers only it when the server offers one, the rest in the clear.
    async fn login_unencrypted(
        &self,
        ctx: &ProbeContext,
        db: &DbTarget,
        mut tcp: BoxIo,
    ) -> Result<Tds<BoxIo>, Failure> {
        let host_name = workstation();
        match prelogin(ctx, &mut tcp, Encryption::Off, true).await? {
            Encryption::NotSupported => {
                ctx.detail("session: not encrypted (the server supports no encryption, not even for the login)");
                let release = self.may_send_login(ctx, None)?;
                let mut tds = Tds::new(tcp);
                tds.send_login(&self.login(db, &host_name, &release))
                    .await
                    .map_err(|err| self.classify(err, None, "sending the login"))?;
                Ok(tds)
            }
            Encryption::Off => {
                ctx.detail("session: not encrypted after the login (the login packet itself was)");
                // Encrypt=no in Microsoft's drivers: the login-only session is verified when
                // the probe names a CA or a pin, and is otherwise only encrypted.
                let verifies = db.tls.ca.is_some() || !db.tls.pins.is_empty();
                let login_only = if verifies {
                    TlsOptions { mode: Some(TlsMode::VerifyFull), ..db.tls.clone() }
                } else {
                    TlsOptions { mode: Some(TlsMode::Prefer), ..TlsOptions::default() }
                };
                let hs = start_tls(ctx, tcp, &login_only, &db.host, false).await?;
                let release = self.may_send_login(ctx, Some(&hs.recorder))?;
                let mut tds = Tds::new(hs.stream);
                tds.send_login(&self.login(db, &host_name, &release))
                    .await
                    .map_err(|err| self.classify(err, None, "sending the login"))?;
                let (tds_tls, _) = tds.into_inner().into_inner();
                Ok(Tds::new(tds_tls.into_inner()))
            }
            Encryption::On | Encryption::Required => Err(Failure::new(
                ErrorClass::TlsHandshake,
                "the server requires encryption (Force Encryption) and tls.mode is disable",
            )
            .with_hint(crate::advice![
                "set tls.mode = \"verify-full\" with ",
                Fix::Key(Key::TlsCa),
                " (or \"require\") for this server"
            ])),
        }
    }

    /// LOGIN7 and its answer on a connection `start` prepared for `db`. `Ok(Err(target))`
    /// when the server routes the login elsewhere.
    async fn log_in(
        &self,
        ctx: &ProbeContext,
        db: &DbTarget,
        start: Result<Session, BoxIo>,
    ) -> Result<Result<Session, String>, Failure> {
        let (mut tds, tls) = match start {
            Ok(Session { mut tds, tls }) => {
                let release = self.may_send_login(ctx, tls.as_ref())?;
                let host_name = workstation();
                tds.send_login(&self.login(db, &host_name, &release))
                    .await
                    .map_err(|err| self.classify(err, tls.as_ref(), "sending the login"))?;
                (tds, tls)
            }
            Err(tcp) => (self.login_unencrypted(ctx, db, tcp).await?, None),
        };
        let ack = match tds.login_answer().await {
            Ok(ack) => ack,
            Err(TdsError::Routed(target)) => return Ok(Err(target)),
            Err(err) => return Err(self.classify(err, tls.as_ref(), "during the login")),
        };
        ctx.diagnostic(format!(
            "mssql: logged in to {}, TDS {}, database {}, session {}",
            ack.server,
            ack.tds_version,
            ack.database.as_deref().unwrap_or("(default)"),
            if tls.is_some() { "encrypted" } else { "not encrypted" }
        ));
        Ok(Ok(Session { tds, tls }))
    }

    /// One routing hop: the routed server gets a connection and a login of its own, its
    /// certificate verified against the routed name (a `server_name` set for the gateway
    /// does not carry over: it named the gateway).
    async fn follow_route(&self, ctx: &ProbeContext, target: &str) -> Result<Session, Failure> {
        let routed = self.db.retarget(target).map_err(|why| {
            Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("the server routed the login to `{target}`, which is no host and port: {why}"),
            )
        })?;
        let routed = DbTarget { tls: TlsOptions { server_name: None, ..routed.tls.clone() }, ..routed };
        ctx.detail(format!(
            "routing: {}:{} routed the login to {}:{} (Azure SQL's redirect connection policy); logging in there",
            self.db.host, self.db.port, routed.host, routed.port
        ));
        let hop = async {
            let start =
                routed.connect_then_tls(ctx, Record::Quietly, |tcp| self.negotiate_tls(ctx, &routed, tcp)).await?;
            match self.log_in(ctx, &routed, start).await? {
                Ok(logged_in) => Ok(logged_in),
                Err(again) => Err(Failure::new(
                    ErrorClass::UnexpectedResponse,
                    format!(
                        "it routed the login again, to {again}; authprobe follows one redirect, as SQL Server's drivers do"
                    ),
                )),
            }
        };
        hop.await.map_err(|mut failure| {
            failure.message = format!("at {}:{}, where the gateway routed the login: {}", routed.host, routed.port, failure.message);
            if failure.class == ErrorClass::TlsHostname {
                failure = failure.with_hint(format!(
                    "the routed server's certificate must cover the name the gateway routed to ({}): the gateway's routing or that server's certificate is wrong (tls.server_name applies to the gateway only)",
                    routed.host
                ));
            }
            failure
        })
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        // Without TLS, PRELOGIN is part of the auth stage.
        let start = self.db.connect_then_tls(ctx, Record::Stages, |tcp| self.negotiate_tls(ctx, &self.db, tcp)).await?;
        let Session { tds: mut session, tls: tls_record } = ctx
            .stage(Stage::Auth, async {
                match self.log_in(ctx, &self.db, start).await? {
                    Ok(logged_in) => Ok(logged_in),
                    Err(target) => self.follow_route(ctx, &target).await,
                }
            })
            .await?;
        let result = ctx
            .stage(Stage::Check, async {
                let during = |err| self.classify(err, tls_record.as_ref(), "during the check query");
                let rows = if ctx.hygiene.enabled {
                    let batch = format!("{}\n{}", privileges::QUERY, self.db.query);
                    let (flags, rows) = session.batch_after_flags(&batch).await.map_err(during)?;
                    self.note_privileges(ctx, flags.as_deref());
                    rows
                } else {
                    session.batch(&self.db.query).await.map_err(during)?
                };
                ctx.diagnostic(format!("mssql: the check query returned {rows} row(s)"));
                Ok(())
            })
            .await;
        // Closing politely is best effort: the answer is known already.
        let _ = tokio::time::timeout(Duration::from_millis(200), session.get_mut().shutdown()).await;
        result
    }

    fn note_privileges(&self, ctx: &ProbeContext, flags: Option<&[Option<i64>]>) {
        let Some(flags) = flags else {
            ctx.detail("hygiene: the server did not answer what the login may do");
            return;
        };
        let database = self.db.database.as_deref().unwrap_or("the login's default database");
        let found = privileges::findings(flags, &self.db.user, database, ctx.hygiene.expect_read_only);
        crate::probes::db::note_findings(ctx, found);
    }

    fn classify(&self, err: TdsError, tls: Option<&Recorder>, during: &str) -> Failure {
        match err {
            TdsError::Io(io) => session_io_failure(&io, tls, &self.db.tls, during),
            other => plain_failure(other, during),
        }
    }
}

/// Classifies a protocol failure that owes nothing to TLS.
fn plain_failure(err: TdsError, during: &str) -> Failure {
    match err {
        TdsError::Io(io) => session_io_failure(&io, None, &TlsOptions::default(), during),
        TdsError::Server { number, state, message } => server_error(number, state, &message),
        TdsError::NotTds(what) => {
            Failure::new(ErrorClass::Protocol, what).with_hint("check the port: this does not look like SQL Server")
        }
        TdsError::OtherService(first) => Failure::new(
            ErrorClass::Protocol,
            crate::model::sniff::wrong_service(&first, "SQL Server")
                .unwrap_or_else(|| "the server did not answer the PRELOGIN like SQL Server".into()),
        )
        .with_hint("check the port: SQL Server usually listens on 1433"),
        TdsError::Protocol(what) => Failure::new(ErrorClass::Protocol, format!("{during}: {what}")),
        // Routing is followed where the login is answered; anywhere else it makes no sense.
        TdsError::Routed(target) => Failure::new(
            ErrorClass::UnexpectedResponse,
            format!("{during}: the server sent a routing redirect (to {target}) outside the login"),
        ),
    }
}

/// The class of a SQL Server error, from its message number.
fn server_error(code: u32, state: u8, message: &str) -> Failure {
    let said = format!(
        "{} (Msg {code}, state {state})",
        crate::model::redact::excerpt(message, crate::model::redact::SERVER_TEXT_MAX)
    );
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
        // A database still recovering or being attached answers 4060 too (SQL Server opens
        // databases after it accepts logins), so --wait retries it; a missing one costs a
        // wait, never a lockout.
        4060 => Failure::new(ErrorClass::NotFound, said)
            .with_hint(crate::advice![
                "the database does not exist, or the login has no user in it: check ",
                Fix::Key(Key::Database)
            ])
            .transient(),
        // Being recovered; Azure SQL's "not currently available" and "service busy".
        922 | 40613 | 40197 | 40501 => Failure::new(ErrorClass::UnexpectedResponse, said)
            .with_hint("the database is recovering or the service is busy: retry shortly (run --wait retries it)")
            .transient(),
        229 | 230 | 262 | 297 | 300 => Failure::new(ErrorClass::PermissionDenied, said).with_hint(crate::advice![
            "the login works but may not run the check query: grant it, or change ",
            Fix::Key(Key::Query)
        ]),
        208 => {
            Failure::new(ErrorClass::NotFound, said).with_hint("the check query names an object that does not exist")
        }
        _ => Failure::new(ErrorClass::UnexpectedResponse, said),
    }
}

crate::probes::db::db_probe!(MssqlProbe, "mssql");

/// `check mssql://…` (and `sqlserver://`): SQL Server has no passwordless SQL login.
pub fn from_url(url: &Url, opts: &UrlOptions, out: &mut UrlProbe) -> Result<(), String> {
    crate::probes::db::from_url(url, opts, out, "MSSQL_PASSWORD", true)
}

/// `inspect mssql://…`: PRELOGIN, then the handshake inside TDS packets.
pub fn inspect_tls<'a>(ctx: &'a ProbeContext, io: BoxIo, opts: &'a TlsOptions, host: &'a str) -> InspectFuture<'a> {
    Box::pin(async move { Ok(tls_upgrade(ctx, io, opts, host, false).await?.map(|hs| hs.presented())) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_failures_explain_known_states() {
        let f = server_error(18456, 8, "Login failed for user 'x'.");
        assert_eq!(f.class, ErrorClass::AuthRejected);
        assert!(f.hint.unwrap().to_string().contains("password is wrong"));
        assert_eq!(server_error(4060, 1, "Cannot open database").class, ErrorClass::NotFound);
        assert_eq!(server_error(229, 1, "permission denied").class, ErrorClass::PermissionDenied);
        let not_sql = plain_failure(TdsError::NotTds("the server did not answer like SQL Server".into()), "x");
        assert_eq!(not_sql.class, ErrorClass::Protocol);
        assert!(not_sql.hint.unwrap().to_string().contains("port"));
        assert_eq!(plain_failure(TdsError::Routed("a:1433".into()), "x").class, ErrorClass::UnexpectedResponse);
    }
}
