//! What the database kinds (postgres, mysql, mssql) share: their connection keys, their
//! stages, and how a socket error during an encrypted session is classified.

use std::sync::Arc;

use crate::advice;
use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::dial;
use crate::connect::net::{BoxIo, Record};
use crate::connect::proxy::Traffic;
use crate::connect::tls::{self, Recorder, TlsMode, TlsOptions};
use crate::model::advice::{Fix, Key};
use crate::model::error::{ErrorClass, Failure, Stage, classify_io, describe_io, find_cause};
use crate::model::redact::Secret;
use crate::model::release::Release;
use crate::probes::db_token::{DbToken, TOKEN_TYPES};
use crate::probes::from_url::{UrlOptions, UrlProbe, insert_address, literal, reference};
use url::Url;

/// A credential hygiene finding of a database kind, and the warning line the table shows
/// for it (`None`: information only).
pub struct Found {
    pub finding: crate::model::report::Finding,
    pub warning: Option<String>,
}

impl Found {
    /// A privilege beyond any probe's need: a warning naming the narrower grant.
    pub fn beyond_need(what: &str, meaning: String, narrower: &str) -> Found {
        Found {
            finding: crate::model::report::Finding { what: what.into(), severity: "warning", hint: narrower.into() },
            warning: Some(format!("{meaning}: it can do far more than this probe needs ({narrower})")),
        }
    }

    /// A privilege an application's own credential normally has: information, and a
    /// warning when the probe says the credential should only read.
    pub fn unless_read_only(what: &str, hint: String, expect_read_only: bool) -> Found {
        let warning = expect_read_only.then(|| format!("expect_read_only: {hint}"));
        let severity = if expect_read_only { "warning" } else { "info" };
        Found { finding: crate::model::report::Finding { what: what.into(), severity, hint }, warning }
    }
}

/// Puts what a privilege question found into the probe's report.
pub fn note_findings(ctx: &ProbeContext, found: Vec<Found>) {
    for found in found {
        ctx.add_finding(found.finding, found.warning.map(crate::model::advice::Advice::from));
    }
}

/// The `Probe` impl every database kind shares: a struct whose one field `db` is the
/// [`DbTarget`] and which has `async fn run_once(&self, ctx)`. `$scheme` names the target.
macro_rules! db_probe {
    ($probe:ident, $scheme:literal) => {
        impl $crate::probes::Probe for $probe {
            fn target(&self) -> String {
                self.db.url($scheme)
            }

            fn stages(&self) -> Vec<$crate::model::error::Stage> {
                self.db.stages()
            }

            fn run<'a>(&'a self, ctx: &'a $crate::connect::context::ProbeContext) -> $crate::probes::ProbeFuture<'a> {
                Box::pin(self.run_once(ctx))
            }

            fn retarget(&self, target: &str) -> Result<std::sync::Arc<dyn $crate::probes::Probe>, String> {
                let mut aimed = self.clone();
                aimed.db = self.db.retarget(target)?;
                Ok(std::sync::Arc::new(aimed))
            }
        }
    };
}
pub(crate) use db_probe;

/// The keys every database probe has.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: String,
    pub password: Option<Secret>,
    /// Log in with a cloud token (RDS IAM, Entra ID, Cloud SQL IAM) instead of a password.
    pub iam: Option<Arc<DbToken>>,
    /// Log in with a Kerberos ticket (GSSAPI) instead of a password.
    pub kerberos: Option<Arc<crate::identity::kerberos::KerberosAuth>>,
    pub query: String,
    pub tls: TlsOptions,
}

/// What `auth` a database kind accepts besides its password keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IamSupport {
    /// Cloud tokens ([`TOKEN_TYPES`]) and Kerberos (`auth = { type = "kerberos" }`).
    TokensAndKerberos,
    None,
}

/// A Kerberos failure carried through a wire crate (as its boxed GSS error) and taken back
/// unchanged by the probe.
#[derive(Debug)]
pub struct KerberosFailure(pub Failure);

impl std::fmt::Display for KerberosFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for KerberosFailure {}

impl KerberosFailure {
    pub fn boxed(failure: Failure) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(KerberosFailure(failure))
    }

    /// The failure back from a wire crate's boxed error.
    pub fn unbox(err: Box<dyn std::error::Error + Send + Sync>) -> Failure {
        match err.downcast::<KerberosFailure>() {
            Ok(failure) => failure.0,
            Err(other) => Failure::internal(format!("GSSAPI: {other}")),
        }
    }
}

/// What an `auth` table on a database probe asked for.
enum DbAuth {
    Token(Arc<DbToken>),
    Kerberos(Arc<crate::identity::kerberos::KerberosAuth>),
}

fn read_db_auth(t: &TableReader<'_, '_>, support: IamSupport) -> Option<Option<DbAuth>> {
    let Some(a) = t.table("auth") else {
        return (!t.has("auth")).then_some(None);
    };
    let types = "rds_iam | entra | gcp_iam | kerberos";
    let auth_type = a.required_string("type", types)?;
    let known = auth_type == "kerberos" || TOKEN_TYPES.contains(&auth_type.as_str());
    if !known {
        let hint = crate::config::reader::did_you_mean(&auth_type, &["rds_iam", "entra", "gcp_iam", "kerberos"])
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_else(|| format!(": use {} (a password goes in `password`)", types.replace(" | ", ", ")));
        a.error_at("type", format!("unknown database auth type `{auth_type}`{hint}"));
        return None;
    }
    if support == IamSupport::None {
        a.error_at("type", format!("{auth_type} is for postgres and mysql; SQL Server logs in with user and password here (Entra ID tokens for Azure SQL and integrated Kerberos authentication are not supported)"));
        return None;
    }
    if auth_type == "kerberos" {
        let kerberos = crate::identity::kerberos::KerberosAuth::read(&a);
        a.finish();
        return Some(Some(DbAuth::Kerberos(Arc::new(kerberos?))));
    }
    DbToken::read(a, &auth_type).map(|token| Some(DbAuth::Token(token)))
}

impl DbTarget {
    /// Reads the shared keys; `password_required` for kinds without passwordless logins,
    /// `tls_strict` for the kind that has a TLS-first mode (SQL Server's TDS 8).
    pub fn read(
        t: &TableReader<'_, '_>,
        default_port: u16,
        password_required: bool,
        iam_support: IamSupport,
        tls_strict: bool,
    ) -> Option<DbTarget> {
        let host = t.required_string("host", "the server's host name or address");
        let port = t.port("port");
        let port_ok = port.is_some() || !t.has("port");
        let user = t.required_string("user", "the database user");
        let database = t.string("database");
        let auth = read_db_auth(t, iam_support);
        let kerberos_set = matches!(auth, Some(Some(DbAuth::Kerberos(_))));
        let token = match &auth {
            Some(Some(DbAuth::Token(token))) => Some(token.clone()),
            _ => None,
        };
        let token_name = token.as_ref().map_or("a token login", |t| t.name());
        let iam_set = token.is_some() || (t.has("auth") && !kerberos_set);
        let password = if password_required && !iam_set && !kerberos_set {
            t.required_secret("password", "the password")
        } else {
            t.secret("password")
        };
        let password_needed = password_required && !iam_set && !kerberos_set;
        let mut password_ok = password.is_some() || (!password_needed && !t.has("password"));
        if (iam_set || kerberos_set) && t.has("password") {
            let what = if kerberos_set {
                "Kerberos logs in with a ticket".to_string()
            } else {
                format!("{token_name} logs in with a token made at each attempt")
            };
            t.error_at("password", format!("{what}: leave `password` out"));
            password_ok = false;
        }
        let query = t.string("query").unwrap_or_else(|| "SELECT 1".into());
        // libpq's default, except that tokens go only over TLS (RDS, Azure and Cloud SQL
        // accept them only so): verified, like every other connection.
        let default_mode = if iam_set { TlsMode::VerifyFull } else { TlsMode::Prefer };
        let tls = TlsOptions::read(t, Some(default_mode));
        let strict_ok = tls_strict || !tls.as_ref().is_some_and(|tls| tls.mode == Some(TlsMode::Strict));
        if !strict_ok {
            t.error_at(
                "tls",
                "tls.mode = \"strict\" is SQL Server's TDS 8; this kind uses verify-full for verified TLS",
            );
        }
        if iam_set && tls.as_ref().is_some_and(|tls| matches!(tls.mode, Some(TlsMode::Disable | TlsMode::Prefer))) {
            t.error_at(
                "tls",
                format!("{token_name} sends its token only over TLS: use tls.mode = \"require\", \"verify-ca\" or \"verify-full\""),
            );
            password_ok = false;
        }
        if let (Some(password), Some(user)) = (&password, &user)
            && password.read_here() == user
            && user != crate::probes::stored::STORE_PLACEHOLDER
        {
            // Said, not masked: masking the user wherever it appears would hide the target.
            t.warn_at(
                "password",
                "the password equals the user name: anyone who sees the target knows it; set a real password",
            );
        }
        if !(port_ok && password_ok && strict_ok) {
            return None;
        }
        Some(DbTarget {
            host: host?,
            port: port.unwrap_or(default_port),
            database,
            user: user?,
            password,
            iam: token,
            kerberos: match auth? {
                Some(DbAuth::Kerberos(kerberos)) => Some(kerberos),
                _ => None,
            },
            query,
            tls: tls?,
        })
    }

    /// Connects (stages `dns`, `connect`) and, unless TLS is disabled, runs the kind's TLS
    /// negotiation as stage `tls`. `Err(stream)` when disabled: the kind then reads the
    /// server's first message in its `auth` stage. With `Record::Quietly` no stage is
    /// recorded (a second connection inside another stage, such as a routed login).
    pub async fn connect_then_tls<S, F, Fut>(
        &self,
        ctx: &ProbeContext,
        record: Record,
        negotiate: F,
    ) -> Result<Result<S, BoxIo>, Failure>
    where
        F: FnOnce(BoxIo) -> Fut,
        Fut: std::future::Future<Output = Result<S, Failure>>,
    {
        let tcp = dial::connect(ctx, &self.host, self.port, Traffic::Other, record).await?.stream;
        if self.mode() == TlsMode::Disable {
            return Ok(Err(tcp));
        }
        Ok(Ok(crate::connect::net::maybe_stage(ctx, record, Stage::Tls, negotiate(tcp)).await?))
    }

    /// The password for this attempt: the configured one, or a fresh token (stage `token`).
    pub async fn login_password(&self, ctx: &ProbeContext) -> Result<Option<Secret>, Failure> {
        match &self.iam {
            Some(token) => Ok(Some(token.fetch(ctx, &self.host, self.port, &self.user).await?)),
            None => Ok(self.password.clone()),
        }
    }

    /// A refused login explained for a token, whose causes are not a wrong password.
    pub fn explain_refusal(&self, failure: Failure) -> Failure {
        match &self.iam {
            Some(token) => token.explain(&self.user, &self.host, self.port, failure),
            None => failure,
        }
    }

    pub fn mode(&self) -> TlsMode {
        self.tls.mode.unwrap_or(TlsMode::Prefer)
    }

    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::Dns, Stage::Connect];
        if self.mode() != TlsMode::Disable {
            stages.push(Stage::Tls);
        }
        if self.iam.is_some() || self.kerberos.is_some() {
            stages.push(Stage::Token);
        }
        stages.extend([Stage::Auth, Stage::Check]);
        stages
    }

    /// The server offers no TLS: acceptable for `prefer` (noted for -v), a `tls` stage
    /// failure for every stricter mode.
    pub fn without_tls(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        if self.mode() == TlsMode::Prefer {
            ctx.warn("the server does not offer TLS: the session is not encrypted (tls.mode = prefer); set tls.mode = \"disable\" if that is expected, or enable TLS on the server");
            return Ok(());
        }
        Err(Failure::new(ErrorClass::TlsHandshake, "the server does not offer TLS")
            .with_hint(crate::advice![
                "enable TLS on the server, or set ",
                Fix::TlsMode("prefer"),
                " if an unencrypted session is acceptable"
            ])
            .at(Stage::Tls))
    }

    /// The same database on another server (`host[:port]`; the port stays when not given).
    pub fn retarget(&self, target: &str) -> Result<DbTarget, String> {
        let (host, port) = super::host_and_port(target)?;
        Ok(DbTarget { host, port: port.unwrap_or(self.port), ..self.clone() })
    }

    /// The target as a URL without credentials.
    /// The target as a URL; the user is percent-encoded, as user names such as Cloud SQL's
    /// `sa@project.iam` would otherwise read as a host.
    pub fn url(&self, scheme: &str) -> String {
        const USERINFO: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
        let db = self.database.as_deref().unwrap_or("");
        let user = percent_encoding::utf8_percent_encode(&self.user, USERINFO);
        format!("{scheme}://{user}@{}:{}/{db}", self.host, self.port)
    }
}

/// The release rule's proof for the session's server: TLS whose certificate a CA, a pin or
/// an approval vouched for, or else the probe's consent to an unverified server.
pub fn release_proof(ctx: &ProbeContext, tls: Option<&Recorder>) -> Option<Release> {
    tls.and_then(Recorder::release_proof).or_else(|| ctx.consent())
}

/// The credential release rule's refusal: the server asked for the password in a
/// recoverable form (`asked` says how), and its identity is not verified, so the password
/// was not sent. Names both ways out: verify the server, or allow it for this probe.
pub fn unverified_peer_refusal(asked: &str, tls: Option<&Recorder>) -> Failure {
    let fingerprint = tls.and_then(|r| r.snapshot().chain.first().map(|c| tls::sha256_fingerprint(c)));
    let allow = advice!["or, to send it to an unverified server anyway, ", Fix::AllowUnverifiedPassword];
    match fingerprint {
        Some(fp) => tls::unverified_certificate_refusal(
            format!(
                "{asked}, and the server's certificate is not verified (sha256 {fp}): authprobe did not send the password"
            ),
            fp,
        ),
        None => Failure::new(
            ErrorClass::TlsHandshake,
            format!("{asked} over an unencrypted connection: authprobe did not send the password"),
        )
        .with_hint(
            advice![
                "enable TLS with a verified server: ",
                Fix::TlsMode("verify-full"),
                " with ",
                Fix::Key(Key::TlsCa),
                " (or ",
                Fix::Key(Key::PinSha256),
                "); "
            ]
            .then(allow),
        ),
    }
}

/// Classifies a socket error during a database session; `tls` is the handshake's record
/// when the session is encrypted. With TLS 1.3 the server judges a client certificate after
/// the handshake has completed on our side, so its refusal (an alert, or a bare close) only
/// shows on the login's first read.
pub fn session_io_failure(io: &std::io::Error, tls: Option<&Recorder>, opts: &TlsOptions, during: &str) -> Failure {
    if let Some(recorder) = tls {
        if let Some(tls_err) = find_cause::<rustls::Error>(io) {
            return tls::classify_post_handshake(tls_err, recorder, opts);
        }
        let dropped = matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        );
        if dropped && recorder.snapshot().client_cert_requested {
            return tls::client_cert_refused_silently(opts.identity.is_some());
        }
    }
    Failure::new(classify_io(io), format!("{during}: {}", describe_io(io)))
}

/// `check mysql://…` and `check mssql://…`: address, database, query and the TLS URL
/// parameters the clients use; the password from the flags, the URL or `password_var`
/// (which SQL Server requires: it has no passwordless SQL login).
pub fn from_url(
    url: &Url,
    opts: &UrlOptions,
    out: &mut UrlProbe,
    password_var: &str,
    password_required: bool,
) -> Result<(), String> {
    let UrlProbe { probe, tls, password } = out;
    insert_address(url, probe, &["USER"])?;
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        probe.insert("database", literal(database));
    }
    let password = password.take().or_else(|| std::env::var_os(password_var).map(|_| reference(password_var)));
    let kerberos = crate::probes::from_url::kerberos_auth(opts);
    let password = if kerberos.is_some() { None } else { password };
    if let Some(kerberos) = kerberos {
        probe.insert("auth", crate::config::document::Value::Table(kerberos));
    }
    match password {
        Some(p) => probe.insert("password", p),
        // SQL Server has no passwordless SQL login: say which variable, not which key.
        None if password_required => {
            return Err(format!("{}:// needs a password: set {password_var} (or --password-env NAME)", url.scheme()));
        }
        None => {}
    }
    if let Some(q) = &opts.query {
        probe.insert("query", literal(q));
    }
    for (key, value) in url.query_pairs() {
        match key.replace('_', "-").to_ascii_lowercase().as_str() {
            "ssl-mode" | "sslmode" | "encrypt" => tls.insert("mode", literal(&value)),
            "ssl-ca" | "trustservercertificateca" => tls.insert("ca", literal(&value)),
            "ssl-cert" => tls.insert("client_cert", literal(&value)),
            "ssl-key" => tls.insert("client_key", literal(&value)),
            other => {
                return Err(format!(
                    "unsupported URL parameter `{other}` (supported: ssl-mode, ssl-ca, ssl-cert, ssl-key)"
                ));
            }
        }
    }
    Ok(())
}
