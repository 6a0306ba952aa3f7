//! What the database kinds (postgres, mysql, mssql) share: their connection keys, their
//! stages, and how a socket error during an encrypted session is classified.

use crate::config::TableReader;
use crate::error::{ErrorClass, Failure, Stage, classify_io, describe_io, find_cause};
use crate::redact::Secret;
use crate::stage::ProbeContext;
use crate::tls::{self, Recorder, TlsMode, TlsOptions};

/// The `Probe` impl every database kind shares: a struct whose one field `db` is the
/// [`DbTarget`] and which has `async fn run_once(&self, ctx)`. `$scheme` names the target.
macro_rules! db_probe {
    ($probe:ident, $scheme:literal) => {
        impl $crate::probes::Probe for $probe {
            fn target(&self) -> String {
                self.db.url($scheme)
            }

            fn stages(&self) -> Vec<$crate::error::Stage> {
                self.db.stages()
            }

            fn run<'a>(&'a self, ctx: &'a $crate::stage::ProbeContext) -> $crate::probes::ProbeFuture<'a> {
                Box::pin(self.run_once(ctx))
            }

            fn retarget(&self, target: &str) -> Result<std::sync::Arc<dyn $crate::probes::Probe>, String> {
                Ok(std::sync::Arc::new($probe { db: self.db.retarget(target)? }))
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
    pub query: String,
    pub tls: TlsOptions,
}

impl DbTarget {
    /// Reads the shared keys; `password_required` for kinds without passwordless logins.
    pub fn read(t: &TableReader<'_, '_>, default_port: u16, password_required: bool) -> Option<DbTarget> {
        let host = t.required_string("host", "the server's host name or address");
        let port = t.port("port");
        let port_ok = port.is_some() || !t.has("port");
        let user = t.required_string("user", "the database user");
        let database = t.string("database");
        let password =
            if password_required { t.required_secret("password", "the password") } else { t.secret("password") };
        let password_ok = password.is_some() || !(password_required || t.has("password"));
        let query = t.string("query").unwrap_or_else(|| "SELECT 1".into());
        let tls = TlsOptions::read(t, true);
        if !(port_ok && password_ok) {
            return None;
        }
        Some(DbTarget {
            host: host?,
            port: port.unwrap_or(default_port),
            database,
            user: user?,
            password,
            query,
            tls: tls?,
        })
    }

    pub fn mode(&self) -> TlsMode {
        self.tls.mode.unwrap_or(TlsMode::Prefer)
    }

    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::Dns, Stage::Connect];
        if self.mode() != TlsMode::Disable {
            stages.push(Stage::Tls);
        }
        stages.extend([Stage::Auth, Stage::Check]);
        stages
    }

    /// The server offers no TLS: acceptable for `prefer` (noted for -v), a `tls` stage
    /// failure for every stricter mode.
    pub fn without_tls(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        if self.mode() == TlsMode::Prefer {
            ctx.detail("tls: the server does not offer TLS; continuing unencrypted (mode prefer)");
            return Ok(());
        }
        Err(Failure::new(ErrorClass::TlsHandshake, "the server does not offer TLS")
            .with_hint("enable TLS on the server, or set tls.mode = \"prefer\" or \"disable\" if an unencrypted session is acceptable")
            .at(Stage::Tls))
    }

    /// The same database on another server (`host[:port]`; the port stays when not given).
    pub fn retarget(&self, target: &str) -> Result<DbTarget, String> {
        let (host, port) = super::host_and_port(target)?;
        Ok(DbTarget { host, port: port.unwrap_or(self.port), ..self.clone() })
    }

    /// The target as a URL without credentials.
    pub fn url(&self, scheme: &str) -> String {
        let db = self.database.as_deref().unwrap_or("");
        format!("{scheme}://{}@{}:{}/{db}", self.user, self.host, self.port)
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
