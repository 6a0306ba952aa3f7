//! The `postgres` probe. authprobe performs the SSLRequest and the TLS handshake itself
//! (stage `tls`), so the certificate is recorded during the real handshake and TLS
//! failures are classified by rustls, then speaks the startup and authentication (stage
//! `auth`, see `wire`) and runs the check query with the simple query protocol up to its
//! first row (stage `check`): one connection, as psql makes.
//!
//! The credential release rule lives in the login: a cleartext password request is only
//! answered when the server is verified (or the probe allows it), `require_auth` limits
//! the methods as libpq's does, and SCRAM binds to the TLS session when the server offers
//! SCRAM-SHA-256-PLUS.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::dial;
use crate::connect::net::{BoxIo, Record};
use crate::connect::proxy::Traffic;
use crate::connect::tls::TlsOptions;
use crate::connect::tls::{self, Recorder, TlsMode};
use crate::identity::kerberos;
use crate::model::advice::{Fix, Key};
use crate::model::error::{ErrorClass, Failure, Stage, classify_io, describe_io};
use crate::model::redact;
use crate::probes::InspectFuture;
use crate::probes::Probe;
use crate::probes::db::{
    DbTarget, IamSupport, KerberosFailure, release_proof, session_io_failure, unverified_peer_refusal,
};
use crate::probes::from_url::{UrlOptions, UrlProbe, insert_address, literal, reference};
mod privileges;

use pg_wire as wire;
use url::Url;
use wire::{AuthPolicy, ChannelBindingMode, Method, PgError, Refusal, ServerError};

pub const DEFAULT_PORT: u16 = 5432;
/// The SSLRequest message: length 8, request code 80877103.
pub(crate) const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[derive(Debug, Clone)]
pub struct PostgresProbe {
    db: DbTarget,
    /// libpq's `require_auth`: the methods the server may use (`!m` forbids one).
    allowed: Vec<Method>,
    forbidden: Vec<Method>,
    channel_binding: ChannelBindingMode,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    let require_auth = read_require_auth(t);
    let channel_binding = match t.string("channel_binding").as_deref() {
        None | Some("prefer") => Some(ChannelBindingMode::Prefer),
        Some("require") => Some(ChannelBindingMode::Require),
        Some("disable") => Some(ChannelBindingMode::Disable),
        Some(other) => {
            t.error_at("channel_binding", format!("unknown channel_binding `{other}`; use disable, prefer or require"));
            None
        }
    };
    // Every key is read before returning, so that one error does not hide the others.
    let db = DbTarget::read(t, DEFAULT_PORT, false, IamSupport::TokensAndKerberos, false);
    if channel_binding == Some(ChannelBindingMode::Require)
        && db.as_ref().is_some_and(|db| db.mode() == TlsMode::Disable)
    {
        t.error_at("channel_binding", "channel binding needs TLS: it cannot be required with tls.mode = \"disable\"");
        return None;
    }
    let mut db = db?;
    // PostgreSQL up to 17 takes only P-256 for the key exchange unless configured otherwise
    // (ssl_ecdh_curve = prime256v1): its share offered first saves a HelloRetryRequest's
    // round trip (libpq pays it). PostgreSQL 18's default list has P-256 too.
    db.tls.key_share_first = Some(rustls::NamedGroup::secp256r1);
    // libpq's default: the database named after the user.
    db.database.get_or_insert_with(|| db.user.clone());
    let (allowed, forbidden) = require_auth?;
    Some(Arc::new(PostgresProbe { db, allowed, forbidden, channel_binding: channel_binding? }))
}

/// `require_auth`, as libpq spells it: "scram-sha-256", "md5,scram-sha-256" or "!password"
/// (a list of the same is accepted too). Methods are either all allowed or all forbidden.
fn read_require_auth(t: &TableReader<'_, '_>) -> Option<(Vec<Method>, Vec<Method>)> {
    let items: Vec<String> = if t.has("require_auth") {
        match t.string_or_list("require_auth") {
            Some(items) => items.iter().flat_map(|i| i.split(',')).map(|i| i.trim().to_string()).collect(),
            None => return None,
        }
    } else {
        Vec::new()
    };
    let (mut allowed, mut forbidden) = (Vec::new(), Vec::new());
    for item in items.iter().filter(|i| !i.is_empty()) {
        let (negated, name) = match item.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, item.as_str()),
        };
        let Some(method) = Method::parse(name) else {
            t.error_at(
                "require_auth",
                format!("unknown authentication method `{name}`; use password, md5, scram-sha-256, gss, sspi or none (prefix ! to forbid)"),
            );
            return None;
        };
        if negated { forbidden.push(method) } else { allowed.push(method) }
    }
    if !allowed.is_empty() && !forbidden.is_empty() {
        t.error_at(
            "require_auth",
            "require_auth either lists the methods allowed or (with !) those forbidden, not both",
        );
        return None;
    }
    Some((allowed, forbidden))
}

/// The Kerberos initiator, as pg-wire's GSS-API step (pg-wire knows nothing of tickets).
struct GssTokens<'a>(&'a mut kerberos::Initiator);

impl wire::GssInitiator for GssTokens<'_> {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        self.0.step(input).map_err(KerberosFailure::boxed)
    }

    fn is_complete(&self) -> bool {
        self.0.is_complete()
    }
}

/// What the TLS step left: the stream to continue on, and (for TLS) the handshake's
/// record, to classify a TLS failure that surfaces later (the client speaks the protocol
/// itself, so rustls's error arrives typed inside the io::Error).
struct Session {
    stream: BoxIo,
    tls: Option<Recorder>,
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
                let hs = tls::handshake(ctx, &ctx.shared.trust, tcp, &self.db.tls, &self.db.host, &[], true).await?;
                return Ok(Session { stream: Box::new(hs.stream), tls: Some(hs.recorder) });
            }
            self.db.without_tls(ctx)?;
            Ok(Session { stream: tcp, tls: None })
        })
        .await
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        let tcp = dial::connect(ctx, &self.db.host, self.db.port, Traffic::Other, Record::Stages).await?.stream;
        let session = self.negotiate_tls(ctx, tcp).await?;
        if session.tls.is_none() {
            ctx.detail("session: not encrypted");
        }
        let recorder = session.tls;
        let end_point =
            recorder.as_ref().and_then(|r| r.snapshot().chain.first().map(|c| wire::tls_server_end_point(c)));
        let policy = AuthPolicy {
            allowed: self.allowed.clone(),
            forbidden: self.forbidden.clone(),
            channel_binding: self.channel_binding,
        };
        let release = release_proof(ctx, recorder.as_ref());
        let password = self.db.login_password(ctx).await?;
        let mut initiator = match &self.db.kerberos {
            Some(kerberos) => {
                ctx.detail(format!("credentials: Kerberos, {}", kerberos.describe()));
                Some(
                    // libpq's krbsrvname: "postgres"
                    ctx.stage(
                        Stage::Token,
                        kerberos::acquire::initiator(
                            ctx,
                            kerberos,
                            "postgres",
                            &self.db.host,
                            kerberos::Mechanism::Krb5,
                        ),
                    )
                    .await?,
                )
            }
            None => None,
        };
        let mut gss = initiator.as_mut().map(GssTokens);
        let mut client = wire::Client::new(session.stream);
        let outcome = ctx
            .stage(Stage::Auth, async {
                let password = password.as_ref().map(|p| match &release {
                    Some(proof) => wire::Password::Releasable(p.release(proof)),
                    None => wire::Password::ChallengeOnly(p.for_proof()),
                });
                let gss = gss.as_mut().map(|g| g as &mut dyn wire::GssInitiator);
                client
                    .login(&self.db.user, self.database(), password, &policy, end_point, gss)
                    .await
                    .map_err(|e| self.classify(e, recorder.as_ref()))
            })
            .await?;
        if let Some(initiator) = &initiator {
            initiator.report_proof(ctx);
        }
        let said: Vec<String> = ["server_version", "server_encoding", "TimeZone"]
            .iter()
            .filter_map(|name| outcome.parameters.iter().find(|(n, _)| n == name))
            .map(|(name, value)| format!("{name} {}", ctx.server_text(value, 120)))
            .collect();
        let method = outcome.method.map_or("none", Method::name);
        let binding = if outcome.channel_binding { " with channel binding (SCRAM-SHA-256-PLUS)" } else { "" };
        ctx.diagnostic(format!("postgres: {}, authentication {method}{binding}", said.join(", ")));
        if release.as_ref().is_some_and(|r| !r.peer_verified()) && outcome.method == Some(Method::Password) {
            ctx.detail("release: the password was sent in clear text to a server whose identity is not verified (allow_unverified_password = true)");
        }
        let result = ctx
            .stage(Stage::Check, async {
                if !ctx.hygiene.enabled {
                    return client.query(&self.db.query).await.map_err(|e| self.classify(e, recorder.as_ref()));
                }
                // The question goes in the same write as the check query: no round trip of its own.
                let answer = client
                    .ask_then_query(privileges::QUERY, &self.db.query)
                    .await
                    .map_err(|e| self.classify(e, recorder.as_ref()))?;
                self.note_privileges(answer, ctx);
                Ok(())
            })
            .await;
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), client.terminate()).await;
        result
    }

    /// What the role may do beyond the probe's need (the answer to the hygiene question):
    /// findings. A server that refuses the question is noted, not a failure.
    fn note_privileges(&self, answer: Result<Option<Vec<Option<String>>>, ServerError>, ctx: &ProbeContext) {
        match answer {
            Ok(Some(row)) => {
                let found = privileges::findings(&row, &self.db.user, self.database(), ctx.hygiene.expect_read_only);
                crate::probes::db::note_findings(ctx, found);
            }
            Ok(None) => {}
            Err(e) => ctx.detail(format!(
                "hygiene: the server did not say what the role may do: {}",
                ctx.server_text(&e.message, 200)
            )),
        }
    }

    fn classify(&self, err: PgError, recorder: Option<&Recorder>) -> Failure {
        match err {
            PgError::Io(io) => session_io_failure(&io, recorder, &self.db.tls, "while talking to the server"),
            PgError::Server(e) => {
                let failure = classify_db_error(&e, self.db.tls.identity.is_some(), &self.db.user, self.database());
                if self.db.kerberos.is_some() && e.message.contains("GSSAPI authentication failed") {
                    // The ticket was good (the KDC issued it for this server): the server's
                    // mapping of principal to role refused it.
                    return failure.with_hint(format!(
                        "the server accepted the Kerberos ticket but does not let its principal in as `{}`: check pg_hba.conf's gss line (include_realm, krb_realm, map=) and pg_ident.conf",
                        self.db.user
                    ));
                }
                self.db.explain_refusal(failure)
            }
            PgError::Protocol(what) => Failure::new(ErrorClass::Protocol, format!("PostgreSQL protocol error: {what}"))
                .with_hint("the server does not speak PostgreSQL's protocol as expected: check the port, and that nothing in between rewrites the connection"),
            PgError::Refused(refusal) => self.refusal(refusal, recorder),
            PgError::Gss(err) => KerberosFailure::unbox(err),
        }
    }

    fn refusal(&self, refusal: Refusal, tls: Option<&Recorder>) -> Failure {
        let required = || {
            let names: Vec<&str> = self.allowed.iter().map(|m| m.name()).collect();
            let forbidden: Vec<String> = self.forbidden.iter().map(|m| format!("!{}", m.name())).collect();
            if names.is_empty() { forbidden.join(",") } else { names.join(",") }
        };
        match refusal {
            Refusal::UnverifiedPeer { .. } => {
                unverified_peer_refusal("the server asked for the password in clear text (AuthenticationCleartextPassword)", tls)
            }
            Refusal::NotAllowed { method: Method::None } => Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("the server let `{}` in without asking for credentials (trust), which require_auth = \"{}\" does not allow", self.db.user, required()),
            )
            .with_hint("pg_hba.conf trusts this connection, so the credentials were not tested: ask the DBA, or add none to require_auth"),
            Refusal::NotAllowed { method } => Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("the server asked for {} authentication, which require_auth = \"{}\" does not allow: nothing was sent", method.name(), required()),
            )
            .with_hint("the server's pg_hba.conf uses another method than expected: ask the DBA, or change require_auth"),
            Refusal::ChannelBindingUnavailable { why } => Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("channel_binding = \"require\", but {why}"),
            )
            .with_hint("channel binding needs TLS and a SCRAM-SHA-256 password on PostgreSQL 11 or newer; set channel_binding = \"prefer\" to allow logins without it"),
            Refusal::Unsupported { what } => Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("the server asked for {what}, which authprobe does not implement"),
            )
            .with_hint("authprobe logs in to PostgreSQL with scram-sha-256 (and -PLUS), md5, a cleartext password over a verified server, or a client certificate"),
            Refusal::NoPassword { method } => Failure::new(
                ErrorClass::Config,
                format!("the server asked for a password ({} authentication) and the probe has none", method.name()),
            )
            .with_hint(crate::advice![
                Fix::SetPassword { variable: "PGPASSWORD" },
                ", or log in with a client certificate (",
                Fix::ClientCertificate,
                ")"
            ]),
        }
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
    // PostgreSQL answers with one byte and waits. Whatever came with it was sent by a
    // server that spoke first (an SSH banner begins with 'S' too), and libpq refuses bytes
    // before the TLS handshake for the same reason (CVE-2021-23222).
    let mut first = answer.to_vec();
    if answer[0] != b'E' {
        first.extend(crate::connect::net::read_already_sent(tcp, 256).await);
    }
    if first.len() > 1 {
        let said = crate::model::sniff::wrong_service(&first, "PostgreSQL")
            .unwrap_or_else(|| "the server sent more than PostgreSQL's one-byte answer to the SSLRequest".into());
        return Err(Failure::new(ErrorClass::Protocol, said)
            .with_hint("check the port: this is not a PostgreSQL server (5432 is the usual one)"));
    }
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
fn classify_db_error(db: &ServerError, has_client_cert: bool, user: &str, database: &str) -> Failure {
    let said = format!(
        "{} (SQLSTATE {})",
        redact::excerpt(&db.message, redact::SERVER_TEXT_MAX),
        redact::excerpt(&db.code, 5)
    );
    match db.code.as_str() {
        // invalid_password
        "28P01" => Failure::new(ErrorClass::AuthRejected, said).with_hint(format!(
            "the password for `{user}` is wrong or expired: check it, and that the role may log in"
        )),
        // invalid_authorization_specification: pg_hba rejections, TLS-only lines and
        // certificate authentication alike; only the server's message tells them apart.
        "28000" if db.message.ends_with("no encryption") => Failure::new(
            ErrorClass::TlsHandshake,
            format!("the server requires TLS for this connection: {said}"),
        )
        .with_hint(crate::advice!["set ", Fix::TlsMode("verify-full"), " (pg_hba.conf only allows this user over TLS)"]),
        "28000" if db.message.contains("certificate") => {
            let what = if has_client_cert { "refused our client certificate" } else { "requires a client certificate" };
            Failure::new(ErrorClass::TlsClientCert, format!("the server {what}: {said}"))
                .with_hint(crate::advice![
                    Fix::ClientCertificate,
                    " to a certificate whose CN is the user name, from a CA the server trusts"
                ])
        }
        "28000" => Failure::new(ErrorClass::AuthRejected, said).with_hint(
            "pg_hba.conf has no line that lets this user connect from this address with this method (or rejects it): ask the DBA, and check IP allow-lists",
        ),
        // invalid_catalog_name
        "3D000" => Failure::new(ErrorClass::NotFound, said)
            .with_hint(crate::advice![format!("the credentials work, but database `{database}` does not exist: check "), Fix::Key(Key::Database)]),
        // insufficient_privilege
        "42501" => Failure::new(ErrorClass::PermissionDenied, said)
            .with_hint(crate::advice![format!("`{user}` logged in but may not run the check query: grant it, or change "), Fix::Key(Key::Query)]),
        // undefined_table, undefined_schema
        "42P01" | "3F000" => Failure::new(ErrorClass::NotFound, said)
            .with_hint("the check query names a table that does not exist here"),
        // too_many_connections
        "53300" => Failure::new(ErrorClass::UnexpectedResponse, said)
            .with_hint("the server is out of connection slots")
            .transient(),
        // cannot_connect_now: starting up, shutting down or in recovery; --wait retries it.
        "57P03" => Failure::new(ErrorClass::UnexpectedResponse, said)
            .with_hint("the server is starting up or in recovery: retry shortly (run --wait retries it)")
            .transient(),
        _ => Failure::new(ErrorClass::UnexpectedResponse, said),
    }
}

crate::probes::db::db_probe!(PostgresProbe, "postgres");

/// `check postgres://…`: libpq's URL parameters; the password from the flags, the URL or
/// PGPASSWORD.
pub fn from_url(url: &Url, opts: &UrlOptions, out: &mut UrlProbe) -> Result<(), String> {
    let UrlProbe { probe, tls, password } = out;
    insert_address(url, probe, &["PGUSER", "USER"])?;
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        probe.insert("database", literal(database));
    }
    if let Some(kerberos) = crate::probes::from_url::kerberos_auth(opts) {
        probe.insert("auth", crate::config::document::Value::Table(kerberos));
    } else {
        let password = password.take().or_else(|| std::env::var_os("PGPASSWORD").map(|_| reference("PGPASSWORD")));
        if let Some(p) = password {
            probe.insert("password", p);
        }
    }
    if let Some(q) = &opts.query {
        probe.insert("query", literal(q));
    }
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => tls.insert("mode", literal(&value)),
            "sslrootcert" => tls.insert("ca", literal(&value)),
            "sslcert" => tls.insert("client_cert", literal(&value)),
            "sslkey" => tls.insert("client_key", literal(&value)),
            other => {
                return Err(format!(
                    "unsupported URL parameter `{other}` (supported: sslmode, sslrootcert, sslcert, sslkey)"
                ));
            }
        }
    }
    Ok(())
}

/// `inspect postgres://…`: the SSLRequest, then the handshake; `None` when the server
/// does not offer TLS.
pub fn inspect_tls<'a>(ctx: &'a ProbeContext, mut io: BoxIo, opts: &'a TlsOptions, host: &'a str) -> InspectFuture<'a> {
    Box::pin(async move {
        if !ssl_request(&mut io).await? {
            return Ok(None);
        }
        Ok(Some(tls::handshake(ctx, &ctx.shared.trust, io, opts, host, &[], false).await?.presented()))
    })
}
