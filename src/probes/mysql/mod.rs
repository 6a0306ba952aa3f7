//! The `mysql` probe (MySQL and MariaDB). authprobe speaks the client protocol itself
//! (see `wire`): the greeting and the SSLRequest, then the TLS handshake through the shared
//! TLS module (stage `tls`, certificate recorded and failures classified like every other
//! kind), the login over that same session (stage `auth`), and the check query (stage
//! `check`): one connection and the round trips the mysql client makes.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::net::{BoxIo, Record};
use crate::connect::tls::{self, Recorder, TlsOptions};
use crate::identity::kerberos::{self, KerberosAuth};
use crate::model::advice::{Fix, Key};
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::probes::InspectFuture;
use crate::probes::Probe;
use crate::probes::db::{
    DbTarget, IamSupport, KerberosFailure, release_proof, session_io_failure, unverified_peer_refusal,
};
use crate::probes::from_url::{UrlOptions, UrlProbe};
mod privileges;

use mysql_wire as wire;
use url::Url;
use wire::{Greeting, Packets, WireError};

pub const DEFAULT_PORT: u16 = 3306;

#[derive(Debug, Clone)]
pub struct MysqlProbe {
    db: DbTarget,
    /// `server_public_key`: the server's RSA key (PEM), so that sha256_password and
    /// caching_sha2_password's full authentication need not trust a key the server sends.
    server_public_key: Option<Arc<Vec<u8>>>,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    let key = match t.file_bytes("server_public_key") {
        Some((_, pem)) if pem.starts_with(b"-----BEGIN PUBLIC KEY-----") => Some(Some(Arc::new(pem))),
        Some((path, _)) => {
            t.error_at(
                "server_public_key",
                format!("{} is not a PEM public key (-----BEGIN PUBLIC KEY-----); the server's is its caching_sha2_password_public_key_path", path.display()),
            );
            None
        }
        None => (!t.has("server_public_key")).then_some(None),
    };
    // Every key is read before returning, so that one error does not hide the others.
    let db = DbTarget::read(t, DEFAULT_PORT, false, IamSupport::TokensAndKerberos, false);
    Some(Arc::new(MysqlProbe { db: db?, server_public_key: key? }))
}

/// The connection after the greeting (and TLS, if negotiated), ready for the login.
struct Session {
    packets: Packets<BoxIo>,
    greeting: Greeting,
    /// The handshake's record, to classify a TLS refusal that arrives with the login.
    tls: Option<Recorder>,
}

/// How long a server may stay silent before it is asked what it is. MySQL and MariaDB greet
/// at once (unless they resolve the client's name first, which `skip_name_resolve` avoids).
const GREETING_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads the greeting, classifying what is not one.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(packets: &mut Packets<S>) -> Result<Greeting, Failure> {
    match tokio::time::timeout(GREETING_WAIT, wire::read_greeting(packets)).await {
        Ok(greeting) => greeting.map_err(|err| plain_failure(err, "while reading the server's greeting")),
        Err(_silent) => Err(silent_server(packets.stream_mut()).await),
    }
}

/// The server accepted the connection and said nothing, where MySQL speaks first. The login
/// is lost anyway, so a PostgreSQL SSLRequest (the most common silent neighbour) is sent
/// to learn what listens: PostgreSQL answers one byte, HTTP a 400, TLS an alert.
async fn silent_server<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Failure {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let waited = humantime::format_duration(GREETING_WAIT);
    let mut answer = [0u8; 64];
    let read = async {
        stream.write_all(&crate::probes::postgres::SSL_REQUEST).await?;
        stream.read(&mut answer).await
    };
    let answered = match tokio::time::timeout(std::time::Duration::from_secs(1), read).await {
        Ok(Ok(n)) => &answer[..n],
        _ => &[][..],
    };
    let service = match answered {
        [b'S'] | [b'N'] => Some("PostgreSQL"),
        bytes => crate::model::sniff::identify(bytes),
    };
    match service {
        Some(found) if found.starts_with("MySQL") => Failure::new(
            ErrorClass::Timeout,
            format!("the server took more than {waited} to send its greeting"),
        )
        .with_hint("MySQL is slow to greet when it resolves the client's name: set skip_name_resolve, or check its load"),
        Some(found) => Failure::new(
            ErrorClass::Protocol,
            format!("this port speaks {found}, not MySQL or MariaDB (it sent no greeting within {waited})"),
        )
        .with_hint("check the port: MySQL and MariaDB usually listen on 3306"),
        None => Failure::new(
            ErrorClass::Timeout,
            format!("the server accepted the connection but sent no greeting within {waited}; MySQL and MariaDB greet first"),
        )
        .with_hint("check the port (another service that waits for its client, such as SQL Server, listens here?), or the server is hung"),
    }
}

/// Sends the SSLRequest and performs the TLS handshake; returns the handshake and the
/// packet sequence to carry on with.
async fn start_tls<IO: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    mut packets: Packets<IO>,
    caps: u32,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<(tls::Handshake<IO>, u8), Failure> {
    packets.write(&wire::ssl_request(caps)).await.map_err(|err| plain_failure(err, "while asking for TLS"))?;
    let (tcp, seq) = packets.into_parts();
    Ok((tls::handshake(ctx, &ctx.shared.trust, tcp, opts, host, &[], report).await?, seq))
}

/// Connects and upgrades to TLS the way the protocol does, up to (not including) login;
/// `None` when the server does not offer TLS. For `inspect`.
pub async fn tls_upgrade<IO: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    tcp: IO,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<Option<tls::Handshake<IO>>, Failure> {
    let mut packets = Packets::new(tcp);
    let greeting = greet(&mut packets).await?;
    if !greeting.supports_tls() {
        return Ok(None);
    }
    let caps = wire::client_capabilities(greeting.capabilities, true, false);
    Ok(Some(start_tls(ctx, packets, caps, opts, host, report).await?.0))
}

impl MysqlProbe {
    fn capabilities(&self, greeting: &Greeting, tls: bool) -> u32 {
        wire::client_capabilities(greeting.capabilities, tls, self.db.database.is_some())
    }

    async fn negotiate_tls(&self, ctx: &ProbeContext, tcp: BoxIo) -> Result<Session, Failure> {
        let mut packets = Packets::new(tcp);
        let greeting = greet(&mut packets).await?;
        if !greeting.supports_tls() {
            self.db.without_tls(ctx)?;
            return Ok(Session { packets, greeting, tls: None });
        }
        let caps = self.capabilities(&greeting, true);
        let (hs, seq) = start_tls(ctx, packets, caps, &self.db.tls, &self.db.host, true).await?;
        let stream: BoxIo = Box::new(hs.stream);
        Ok(Session { packets: Packets::resume(stream, seq), greeting, tls: Some(hs.recorder) })
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        // Without TLS, the greeting is read in the auth stage.
        let start = self.db.connect_then_tls(ctx, Record::Stages, |tcp| self.negotiate_tls(ctx, tcp)).await?;
        let password = self.db.login_password(ctx).await?;
        let (mut packets, tls_record) = ctx
            .stage(Stage::Auth, async {
                let Session { mut packets, greeting, tls } = match start {
                    Ok(session) => session,
                    Err(tcp) => {
                        let mut packets = Packets::new(tcp);
                        let greeting = greet(&mut packets).await?;
                        Session { packets, greeting, tls: None }
                    }
                };
                let encrypted = tls.is_some();
                let release = release_proof(ctx, tls.as_ref());
                let password = match &release {
                    None => wire::Password::ChallengeOnly(password.as_ref().map_or("", |p| p.for_proof())),
                    Some(proof) => {
                        let value = password.as_ref().map_or("", |p| p.release(proof));
                        if proof.peer_verified() {
                            wire::Password::ToVerifiedServer(value)
                        } else {
                            wire::Password::Consented(value)
                        }
                    }
                };
                let login = wire::Login {
                    user: &self.db.user,
                    password,
                    database: self.db.database.as_deref(),
                    encrypted,
                    server_public_key: self.server_public_key.as_deref().map(Vec::as_slice),
                };
                let caps = self.capabilities(&greeting, encrypted);
                let mut kerberos = self.db.kerberos.as_deref().map(|auth| KerberosLogin {
                    ctx,
                    auth,
                    host: &self.db.host,
                    service: None,
                });
                let gss = kerberos.as_mut().map(|k| k as &mut dyn wire::GssProvider);
                let plugin = wire::login(&mut packets, &greeting, caps, &login, gss)
                    .await
                    .map_err(|err| self.classify(err, tls.as_ref(), "during the login"))?;
                if let Some(service) = kerberos.and_then(|k| k.service) {
                    ctx.detail(format!("kerberos: mutual authentication: the server proved it is {service}"));
                }
                ctx.diagnostic(format!(
                    "mysql: server version {}, connection id {}, authentication {plugin}, session {}",
                    // MariaDB prefixes its version with 5.5.5- for old clients.
                    greeting.version.trim_start_matches("5.5.5-"),
                    greeting.connection_id,
                    if encrypted { "encrypted" } else { "not encrypted" }
                ));
                if !encrypted {
                    ctx.detail("session: not encrypted");
                }
                Ok((packets, tls))
            })
            .await?;
        let result = ctx
            .stage(Stage::Check, async {
                let during = |err| self.classify(err, tls_record.as_ref(), "during the check query");
                let rows = if ctx.hygiene.enabled {
                    // The question and the check query in one write: no round trip of its own.
                    let (grants, rows) =
                        wire::rows_then_query(&mut packets, privileges::QUERY, &self.db.query).await.map_err(
                            |err| self.classify(err, tls_record.as_ref(), "while asking for the account's grants"),
                        )?;
                    self.note_grants(ctx, grants);
                    rows.map_err(during)?
                } else {
                    wire::query(&mut packets, &self.db.query).await.map_err(during)?
                };
                ctx.diagnostic(format!("mysql: the check query returned {rows} row(s)"));
                Ok(())
            })
            .await;
        // Closing politely is best effort: the answer is known already.
        let _ = tokio::time::timeout(Duration::from_millis(200), wire::quit(&mut packets)).await;
        result
    }

    /// What the account may do beyond the probe's need, from the answer to the grants
    /// question: findings. A server that refused the question is noted, not a failure.
    fn note_grants(&self, ctx: &ProbeContext, grants: Result<Vec<Vec<Option<String>>>, WireError>) {
        match grants {
            Ok(rows) => {
                let found = privileges::findings(
                    &rows,
                    &self.db.user,
                    self.db.database.as_deref(),
                    ctx.hygiene.expect_read_only,
                );
                crate::probes::db::note_findings(ctx, found);
            }
            Err(WireError::Server { message, .. }) => {
                ctx.detail(format!("hygiene: the server did not list the grants: {}", ctx.server_text(&message, 200)));
            }
            Err(other) => ctx.detail(format!("hygiene: the grants were not read: {other}")),
        }
    }

    /// Classifies a failure after the greeting; `tls` is the handshake's record when the
    /// session is encrypted.
    fn classify(&self, err: WireError, tls: Option<&Recorder>, during: &str) -> Failure {
        let opts = &self.db.tls;
        match (err, tls) {
            (WireError::Io(io), tls) => session_io_failure(&io, tls, opts, during),
            (WireError::Server { code: 1045, message }, tls) => {
                let failure = server_error(1045, &message);
                // 1045 is also how servers refuse a login that lacks TLS or a certificate.
                if self.db.iam.is_some() {
                    self.db.explain_refusal(failure)
                } else if self.db.password.is_none() {
                    failure.with_hint(crate::advice![
                        "no password was sent (the probe has none): ",
                        Fix::SetPassword { variable: "MYSQL_PWD" }
                    ])
                } else if tls.is_none() {
                    failure.with_hint(crate::advice![
                        "the password is wrong, or the account requires TLS (REQUIRE SSL, require_secure_transport): try ",
                        Fix::TlsMode("verify-full")
                    ])
                } else if opts.identity.is_none() {
                    failure.with_hint("the password is wrong, or the account requires a client certificate (REQUIRE X509/SUBJECT): check both")
                } else {
                    failure
                }
            }
            (WireError::Unverified { plugin, how }, tls) => {
                let mut failure =
                    unverified_peer_refusal(&format!("the server asked for the password {how} ({plugin})"), tls);
                if how.avoided_by_a_configured_key() {
                    let hint = failure.hint.take().unwrap_or_default();
                    failure = failure.with_hint(hint.then("; or set server_public_key to the server's RSA public key file (PEM), as the mysql client's --server-public-key-path"));
                }
                failure
            }
            (err, _) => plain_failure(err, during),
        }
    }
}

/// MariaDB's Kerberos login (auth_gssapi): the server names the service principal it
/// accepts, and the ticket for it is fetched then (stage `token`, inside `auth`), as
/// MariaDB's client does; a `service_principal` on the probe wins.
struct KerberosLogin<'a> {
    ctx: &'a ProbeContext,
    auth: &'a KerberosAuth,
    host: &'a str,
    /// The service principal of the ticket, once fetched.
    service: Option<String>,
}

/// The Kerberos initiator, owned, as mysql-wire's GSS-API step.
struct GssTokens(kerberos::Initiator);

impl wire::GssInitiator for GssTokens {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, wire::BoxError> {
        self.0.step(input).map_err(KerberosFailure::boxed)
    }

    fn is_complete(&self) -> bool {
        self.0.is_complete()
    }
}

impl wire::GssProvider for KerberosLogin<'_> {
    fn initiator<'b>(&'b mut self, service_principal: &'b str) -> wire::InitiatorFuture<'b> {
        Box::pin(async move {
            let ctx = self.ctx;
            ctx.detail(format!(
                "credentials: Kerberos, {}; the server asks for a ticket for {service_principal}",
                self.auth.describe()
            ));
            let auth = KerberosAuth {
                service_principal: self.auth.service_principal.clone().or_else(|| Some(service_principal.to_string())),
                ..self.auth.clone()
            };
            let initiator = ctx
                .stage(
                    Stage::Token,
                    kerberos::acquire::initiator(ctx, &auth, "mariadb", self.host, kerberos::Mechanism::Krb5),
                )
                .await
                .map_err(KerberosFailure::boxed)?;
            self.service = Some(initiator.ticket().service.clone());
            Ok(Box::new(GssTokens(initiator)) as Box<dyn wire::GssInitiator>)
        })
    }
}

/// Classifies a protocol failure that owes nothing to TLS.
fn plain_failure(err: WireError, during: &str) -> Failure {
    match err {
        WireError::Io(io) => session_io_failure(&io, None, &TlsOptions::default(), during),
        WireError::Server { code, message } => server_error(code, &message),
        WireError::NotMysql(what) => Failure::new(ErrorClass::Protocol, what)
            .with_hint("check the port: this does not look like a MySQL server"),
        WireError::OtherService(first) => Failure::new(
            ErrorClass::Protocol,
            crate::model::sniff::wrong_service(&first, "MySQL or MariaDB")
                .unwrap_or_else(|| "the server did not greet like MySQL or MariaDB".into()),
        )
        .with_hint("check the port: MySQL and MariaDB usually listen on 3306"),
        WireError::Protocol(what) => Failure::new(ErrorClass::Protocol, format!("{during}: {what}")),
        WireError::UnsupportedPlugin(plugin) => Failure::new(
            ErrorClass::UnexpectedResponse,
            format!("the account uses the authentication plugin {plugin}, which authprobe does not implement"),
        )
        .with_hint("authprobe logs in with mysql_native_password, caching_sha2_password, sha256_password, client_ed25519, (over TLS) mysql_clear_password, and auth_gssapi_client with auth = { type = \"kerberos\" }"),
        WireError::Unverified { plugin, how } => {
            unverified_peer_refusal(&format!("the server asked for the password {how} ({plugin})"), None)
        }
        WireError::Gss(err) => KerberosFailure::unbox(err),
    }
}

/// The class of a MySQL/MariaDB server error, from its error number.
fn server_error(code: u16, message: &str) -> Failure {
    let said =
        format!("{} (error {code})", crate::model::redact::excerpt(message, crate::model::redact::SERVER_TEXT_MAX));
    match code {
        1045 => Failure::new(ErrorClass::AuthRejected, said).with_hint("the user name or password is wrong"),
        1130 => Failure::new(ErrorClass::AuthRejected, said).with_hint(
            "the server does not allow this user from this machine's address: ask the DBA to add a grant for it",
        ),
        1044 => Failure::new(ErrorClass::PermissionDenied, said)
            .with_hint("the user may not use this database: grant it access"),
        1049 => Failure::new(ErrorClass::NotFound, said).with_hint(crate::advice!["the database does not exist: check ", Fix::Key(Key::Database)]),
        1142 | 1143 | 1227 => Failure::new(ErrorClass::PermissionDenied, said)
            .with_hint(crate::advice!["the user logged in but may not run the check query: grant it, or change ", Fix::Key(Key::Query)]),
        1146 => Failure::new(ErrorClass::NotFound, said).with_hint("the check query names a table that does not exist"),
        // ER_MUST_CHANGE_PASSWORD_LOGIN at login, ER_MUST_CHANGE_PASSWORD for a client that
        // logged into the sandbox: the password is right but expired either way.
        1862 | 1820 => Failure::new(ErrorClass::AuthRejected, said).with_hint(
            "the account's password has expired: set a new one (ALTER USER … IDENTIFIED BY …) and update the probe's password",
        ),
        3159 => Failure::new(ErrorClass::TlsHandshake, said)
            .with_hint(crate::advice!["the server requires TLS (require_secure_transport): set ", Fix::TlsMode("verify-full")]),
        1040 => Failure::new(ErrorClass::UnexpectedResponse, said).with_hint("the server is out of connections").transient(),
        // ER_SERVER_SHUTDOWN, and ER_SERVER_OFFLINE_MODE: a server going down or not taking
        // clients yet; --wait retries them.
        1053 | 3032 => Failure::new(ErrorClass::UnexpectedResponse, said)
            .with_hint("the server is shutting down or offline: retry shortly (run --wait retries it)")
            .transient(),
        _ => Failure::new(ErrorClass::UnexpectedResponse, said),
    }
}

crate::probes::db::db_probe!(MysqlProbe, "mysql");

/// `check mysql://…` (and `mariadb://`).
pub fn from_url(url: &Url, opts: &UrlOptions, out: &mut UrlProbe) -> Result<(), String> {
    crate::probes::db::from_url(url, opts, out, "MYSQL_PWD", false)
}

/// `inspect mysql://…`: the greeting and the SSLRequest, then the handshake.
pub fn inspect_tls<'a>(ctx: &'a ProbeContext, io: BoxIo, opts: &'a TlsOptions, host: &'a str) -> InspectFuture<'a> {
    Box::pin(async move { Ok(tls_upgrade(ctx, io, opts, host, false).await?.map(|hs| hs.presented())) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_protocol_failures_are_classified() {
        assert_eq!(server_error(1130, "Host is not allowed").class, ErrorClass::AuthRejected);
        assert_eq!(server_error(1049, "Unknown database").class, ErrorClass::NotFound);
        assert_eq!(server_error(1142, "SELECT command denied").class, ErrorClass::PermissionDenied);
        assert_eq!(server_error(1862, "Your password has expired").class, ErrorClass::AuthRejected);
        let greeting = plain_failure(WireError::NotMysql("the server did not greet like MySQL or MariaDB".into()), "x");
        assert_eq!(greeting.class, ErrorClass::Protocol);
        assert!(greeting.hint.clone().unwrap_or_default().to_string().contains("port"));
        let clear = plain_failure(
            WireError::Unverified { plugin: "mysql_clear_password".into(), how: wire::Exposure::ClearText },
            "during the login",
        );
        assert_eq!(clear.class, ErrorClass::TlsHandshake);
        assert!(clear.hint.clone().unwrap_or_default().to_string().contains("allow_unverified_password"));
        let plugin = plain_failure(WireError::UnsupportedPlugin("authentication_kerberos".into()), "during the login");
        assert!(plugin.message.contains("authentication_kerberos"));
    }
}
