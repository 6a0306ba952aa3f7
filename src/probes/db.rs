//! What the database kinds (postgres, mysql, mssql) share: their connection keys, their
//! stages, and — for drivers that build their own TLS — what the driver's connection must
//! trust so that it accepts exactly what the `tls` stage verified.

use rustls::pki_types::CertificateDer;

use crate::config::TableReader;
use crate::error::{ErrorClass, Failure, Stage};
use crate::redact::Secret;
use crate::stage::ProbeContext;
use crate::tls::{self, TlsMode, TlsOptions};

/// The keys every database probe has.
#[derive(Debug)]
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

    /// The target as a URL without credentials.
    pub fn url(&self, scheme: &str) -> String {
        let db = self.database.as_deref().unwrap_or("");
        format!("{scheme}://{}@{}:{}/{db}", self.user, self.host, self.port)
    }

    /// What a driver with its own TLS must trust on its connection.
    pub fn driver_trust(&self, ctx: &ProbeContext, presented: &[CertificateDer<'static>]) -> DriverTrust {
        let mode = self.mode();
        let accept_any =
            self.tls.insecure || mode == TlsMode::Prefer || (mode == TlsMode::Require && self.tls.ca.is_none());
        if accept_any {
            return DriverTrust { accept_any, roots_pem: Vec::new(), verify_as: self.host.clone(), skip_name: true };
        }
        let skip_name = !self.tls.pins.is_empty() || matches!(mode, TlsMode::VerifyCa | TlsMode::Require);
        let roots_pem = if !self.tls.pins.is_empty() {
            // A pin trusts exactly the chain the tls stage saw.
            tls::pem_bundle(presented.iter())
        } else {
            self.tls.ca_pem.as_deref().cloned().unwrap_or_else(|| ctx.shared.trust.system_pem().as_ref().clone())
        };
        // Drivers' "skip the name check" switches miss rustls' newer name errors, so where
        // the name must not matter, verify against a name the certificate (already checked
        // in the tls stage) carries.
        let verify_as = match presented.first() {
            Some(leaf) if skip_name => tls::cert_info(leaf).sans.into_iter().next(),
            _ => None,
        }
        .or_else(|| self.tls.server_name.clone())
        .unwrap_or_else(|| self.host.clone());
        DriverTrust { accept_any, roots_pem, verify_as, skip_name }
    }
}

/// TLS settings for a driver's own connection.
pub struct DriverTrust {
    /// Encrypt without verifying (prefer, require without a CA, insecure).
    pub accept_any: bool,
    /// The roots to trust, as PEM (empty when `accept_any`).
    pub roots_pem: Vec<u8>,
    /// The name to verify the certificate against.
    pub verify_as: String,
    /// Whether the name did not matter to the tls stage.
    pub skip_name: bool,
}
