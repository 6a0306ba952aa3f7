//! The `postgres` probe. authprobe performs the SSLRequest and the TLS handshake itself
//! (stage `tls`), so the certificate is recorded during the real handshake and TLS
//! failures are classified by rustls, then hands the (encrypted) stream to tokio-postgres
//! for the startup and authentication (stage `auth`) and runs the check query with the
//! simple query protocol (stage `check`): one connection, as psql makes.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::error::SqlState;

use crate::config::TableReader;
use crate::error::{ErrorClass, Failure, Stage, classify_io, describe_io, find_cause};
use crate::net::{self, BoxIo, Record};
use crate::probes::Probe;
use crate::probes::db::{DbTarget, IamSupport};
use crate::stage::ProbeContext;
use crate::tls::{self, Recorder, TlsMode};

pub const DEFAULT_PORT: u16 = 5432;
/// The SSLRequest message: length 8, request code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[derive(Debug, Clone)]
pub struct PostgresProbe {
    db: DbTarget,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    let mut db = DbTarget::read(t, DEFAULT_PORT, false, IamSupport::RdsIam)?;
    // libpq's default: the database named after the user.
    db.database.get_or_insert_with(|| db.user.clone());
    Some(Arc::new(PostgresProbe { db }))
}

/// What the TLS step left: the stream to continue on, and (for TLS) how to classify a
/// failure that surfaces later, during authentication.
struct Session {
    stream: BoxIo,
    tls: Option<(Recorder, Arc<Mutex<Option<rustls::Error>>>)>,
}

impl PostgresProbe {
    fn database(&self) -> &str {
        self.db.database.as_deref().unwrap_or(&self.db.user)
    }

    async fn negotiate_tls(&self, ctx: &ProbeContext, mut tcp: BoxIo) -> Result<Session, Failure> {
        if self.db.mode() == TlsMode::Disable {
            return Ok(Session { stream: tcp, tls: None });
        }
        ctx.stage(Stage::Tls, async {
            if ssl_request(&mut tcp).await? {
                let hs = tls::handshake(ctx, tcp, &self.db.tls, &self.db.host, &[], true).await?;
                let (tapped, seen) = tls::ErrorTap::new(hs.stream);
                return Ok(Session { stream: Box::new(tapped), tls: Some((hs.recorder, seen)) });
            }
            self.db.without_tls(ctx)?;
            Ok(Session { stream: tcp, tls: None })
        })
        .await
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        let tcp = net::connect(ctx, &self.db.host, self.db.port, Record::Stages).await?.stream;
        let session = self.negotiate_tls(ctx, tcp).await?;
        if session.tls.is_none() {
            ctx.detail("session: not encrypted");
        }
        let tls_state = session.tls.clone();
        let mut config = tokio_postgres::Config::new();
        config
            .user(&self.db.user)
            .dbname(self.database())
            .application_name("authprobe")
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        let password = self.db.login_password(ctx).await?;
        if let Some(password) = &password {
            config.password(password.expose());
        }
        let (client, connection) = ctx
            .stage(Stage::Auth, async {
                config
                    .connect_raw(session.stream, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| self.classify(&e, &tls_state))
            })
            .await?;
        let said: Vec<String> = ["server_version", "server_encoding", "TimeZone"]
            .iter()
            .filter_map(|name| connection.parameter(name).map(|v| format!("{name} {v}")))
            .collect();
        ctx.diagnostic(format!("postgres: {}", said.join(", ")));
        let driver = tokio::spawn(connection);
        let result = ctx
            .stage(Stage::Check, async {
                client.simple_query(&self.db.query).await.map(|_| ()).map_err(|e| self.classify(&e, &tls_state))
            })
            .await;
        drop(client);
        driver.abort();
        result
    }

    fn classify(
        &self,
        err: &tokio_postgres::Error,
        tls_state: &Option<(Recorder, Arc<Mutex<Option<rustls::Error>>>)>,
    ) -> Failure {
        if let Some((recorder, seen)) = tls_state {
            let tapped = seen.lock().ok().and_then(|s| s.clone());
            if let Some(tls_err) = tapped.as_ref().or_else(|| find_cause::<rustls::Error>(err)) {
                return tls::classify_post_handshake(tls_err, recorder, &self.db.tls);
            }
        }
        if let Some(db) = err.as_db_error() {
            let failure = classify_db_error(db, self.db.tls.identity.is_some(), &self.db.user, self.database());
            return self.db.explain_refusal(failure);
        }
        if let Some(io) = find_cause::<std::io::Error>(err) {
            return Failure::new(classify_io(io), describe_io(io));
        }
        if err.is_closed() {
            return Failure::new(ErrorClass::Network, "the server closed the connection");
        }
        Failure::new(ErrorClass::Protocol, format!("PostgreSQL protocol error: {err}"))
    }
}

/// Sends the SSLRequest; true when the server agrees to TLS ('S'), false when it declines
/// ('N'). Anything else is not a PostgreSQL server.
pub async fn ssl_request(tcp: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> Result<bool, Failure> {
    let io_failure = |err: std::io::Error| {
        Failure::new(classify_io(&err), format!("while asking for TLS (SSLRequest): {}", describe_io(&err)))
    };
    tcp.write_all(&SSL_REQUEST).await.map_err(io_failure)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(io_failure)?;
    match answer[0] {
        b'S' => Ok(true),
        b'N' => Ok(false),
        b'E' => Err(Failure::new(
            ErrorClass::Protocol,
            "the server answered the SSLRequest with an error: it is very old, or not PostgreSQL",
        )),
        _ => Err(Failure::new(ErrorClass::Protocol, "the server did not answer like PostgreSQL")
            .with_hint("check the port: this does not look like a PostgreSQL server")),
    }
}

/// The class of a server error, from its SQLSTATE.
fn classify_db_error(
    db: &tokio_postgres::error::DbError,
    has_client_cert: bool,
    user: &str,
    database: &str,
) -> Failure {
    let code = db.code();
    let said = format!("{} (SQLSTATE {})", db.message(), code.code());
    if *code == SqlState::INVALID_PASSWORD {
        return Failure::new(ErrorClass::AuthRejected, said).with_hint(format!(
            "the password for `{user}` is wrong or expired: check it, and that the role may log in"
        ));
    }
    if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        // 28000 covers pg_hba rejections, TLS-only lines and certificate authentication
        // alike; only the server's message tells them apart.
        if db.message().ends_with("no encryption") {
            return Failure::new(
                ErrorClass::TlsHandshake,
                format!("the server requires TLS for this connection: {said}"),
            )
            .with_hint("set tls.mode to require or verify-full (pg_hba.conf only allows this user over TLS)");
        }
        if db.message().contains("certificate") {
            let what = if has_client_cert { "refused our client certificate" } else { "requires a client certificate" };
            return Failure::new(ErrorClass::TlsClientCert, format!("the server {what}: {said}"))
                .with_hint("set tls.client_cert and tls.client_key to a certificate whose CN is the user name, from a CA the server trusts");
        }
        return Failure::new(ErrorClass::AuthRejected, said).with_hint(
            "pg_hba.conf has no line that lets this user connect from this address with this method (or rejects it): ask the DBA, and check IP allow-lists",
        );
    }
    if *code == SqlState::INVALID_CATALOG_NAME {
        return Failure::new(ErrorClass::NotFound, said)
            .with_hint(format!("the credentials work, but database `{database}` does not exist: check `database`"));
    }
    if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        return Failure::new(ErrorClass::PermissionDenied, said)
            .with_hint(format!("`{user}` logged in but may not run the check query: grant it, or change `query`"));
    }
    if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_SCHEMA {
        return Failure::new(ErrorClass::NotFound, said)
            .with_hint("the check query names a table that does not exist here");
    }
    if *code == SqlState::TOO_MANY_CONNECTIONS {
        return Failure::new(ErrorClass::UnexpectedResponse, said).with_hint("the server is out of connection slots");
    }
    Failure::new(ErrorClass::UnexpectedResponse, said)
}

crate::probes::db::db_probe!(PostgresProbe, "postgres");
