//! Hints and warnings as structured text: prose with the steps that fix or approve
//! something kept as values ([`Fix`]), so that each surface says them its own way: a
//! config line for `run` and `serve` (`pin_sha256 = ["…"]`), a flag or a variable for
//! `check` (`--pin-sha256 …`). Nothing is reworded after the fact.

use std::fmt;

/// How the steps of a hint are said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// As lines of `probes.toml` (`run`, `validate`, `serve`).
    #[default]
    Config,
    /// As flags and environment variables of `authprobe check`.
    Flags,
}

/// A configuration key named inside prose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    TlsCa,
    PinSha256,
    /// A database probe's check query.
    Query,
    /// A database probe's database.
    Database,
}

/// One step that fixes or approves something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Trust the CA that issued the server's certificate.
    TrustIssuingCa,
    /// Approve exactly this certificate (SHA-256 fingerprint).
    PinCertificate(String),
    /// The pinned certificate changed on purpose: pin the new one.
    UpdatePin(String),
    /// Approve exactly this SSH host key where the connection is configured (`the probe`,
    /// or ``[[tunnel]] `name` ``).
    ApproveHostKey { fingerprint: String, holder: String },
    /// Consent to the credential release rule's exception.
    AllowUnverifiedPassword,
    /// Give the probe a password, conventionally from this variable.
    SetPassword { variable: &'static str },
    /// Give the probe a client certificate and key.
    ClientCertificate,
    /// A key's name, where prose mentions it.
    Key(Key),
    /// Verify the certificate against another name than the host connected to.
    ServerName,
    /// The endpoint wants credentials and the probe sends none.
    AddCredentials,
    /// Give the probe more time.
    RaiseTimeout,
    /// Set a database probe's TLS mode (libpq's name: `require`, `verify-full`, `strict`).
    TlsMode(&'static str),
    /// Set an ftp probe's TLS mode (`explicit`, `implicit`, `disable`).
    FtpTls(&'static str),
}

impl Fix {
    pub fn render(&self, dialect: Dialect) -> String {
        use Dialect::{Config, Flags};
        match (self, dialect) {
            (Fix::TrustIssuingCa, Config) => "set tls.ca to the CA that issued the certificate".into(),
            (Fix::TrustIssuingCa, Flags) => "pass --ca with the CA that issued the certificate".into(),
            (Fix::PinCertificate(fp), Config) => {
                format!("approve this exact certificate in the probe's tls table: {}", pin_line(fp))
            }
            (Fix::PinCertificate(fp), Flags) => format!("approve this exact certificate with --pin-sha256 {fp}"),
            (Fix::UpdatePin(fp), Config) => format!("update the pin: {}", pin_line(fp)),
            (Fix::UpdatePin(fp), Flags) => format!("rerun with --pin-sha256 {fp}"),
            (Fix::ApproveHostKey { fingerprint, holder }, Config) => {
                format!("add to {holder}: {}", host_key_line(fingerprint))
            }
            (Fix::ApproveHostKey { fingerprint, .. }, Flags) => format!("rerun with --host-key {fingerprint}"),
            (Fix::AllowUnverifiedPassword, Config) => "set allow_unverified_password = true in the probe".into(),
            (Fix::AllowUnverifiedPassword, Flags) => "rerun with --allow-unverified-password".into(),
            (Fix::SetPassword { variable }, Config) => format!("set password (e.g. password = \"${{{variable}}}\")"),
            (Fix::SetPassword { variable }, Flags) => format!("set {variable} (or --password-env NAME)"),
            (Fix::ClientCertificate, Config) => "set tls.client_cert and tls.client_key".into(),
            (Fix::ClientCertificate, Flags) => "pass --client-cert and --client-key".into(),
            (Fix::Key(Key::TlsCa), Config) => "tls.ca".into(),
            (Fix::Key(Key::TlsCa), Flags) => "--ca".into(),
            (Fix::Key(Key::PinSha256), Config) => "tls.pin_sha256".into(),
            (Fix::Key(Key::PinSha256), Flags) => "--pin-sha256".into(),
            (Fix::ServerName, Config) => "set tls.server_name to one of its names".into(),
            (Fix::ServerName, Flags) => "rerun with --server-name set to one of its names".into(),
            (Fix::AddCredentials, Config) => "add an `auth` table to the probe".into(),
            (Fix::AddCredentials, Flags) => {
                "pass --bearer-env NAME, --basic-user USER with --password-env NAME, or -H 'Name: ${NAME}'".into()
            }
            (Fix::Key(Key::Query), Config) => "`query`".into(),
            (Fix::Key(Key::Query), Flags) => "--query".into(),
            (Fix::Key(Key::Database), Config) => "`database`".into(),
            (Fix::Key(Key::Database), Flags) => "the URL's database (its path)".into(),
            (Fix::TlsMode(mode), Config) => format!("tls.mode = \"{mode}\""),
            (Fix::TlsMode("strict"), Flags) => "?encrypt=strict in the URL (TDS 8)".into(),
            (Fix::TlsMode(mode), Flags) => format!(
                "the URL's TLS mode {mode} (?sslmode={mode} for postgres://, ?ssl-mode={mode} for mysql://, ?encrypt=true for mssql://)"
            ),
            (Fix::FtpTls(mode), Config) => format!("tls.mode = \"{mode}\""),
            (Fix::FtpTls("implicit"), Flags) => "an ftps:// URL (implicit FTPS, port 990)".into(),
            (Fix::FtpTls("explicit"), Flags) => "an ftp:// URL without --tls disable (AUTH TLS)".into(),
            (Fix::FtpTls(mode), Flags) => format!("--tls {mode}"),
            (Fix::RaiseTimeout, Config) => "raise `timeout`".into(),
            (Fix::RaiseTimeout, Flags) => "raise --timeout".into(),
        }
    }
}

/// The config line that approves a certificate by its fingerprint.
pub fn pin_line(sha256: &str) -> String {
    format!("pin_sha256 = [\"{sha256}\"]")
}

/// The config line that approves an SSH host key.
pub fn host_key_line(fingerprint: &str) -> String {
    format!("host_key = \"{fingerprint}\"")
}

/// A piece of advice: text, or a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Fix(Fix),
}

impl From<&str> for Part {
    fn from(text: &str) -> Self {
        Part::Text(text.to_string())
    }
}

impl From<String> for Part {
    fn from(text: String) -> Self {
        Part::Text(text)
    }
}

impl From<Fix> for Part {
    fn from(fix: Fix) -> Self {
        Part::Fix(fix)
    }
}

/// A hint or a warning: prose and steps, rendered per [`Dialect`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advice {
    parts: Vec<Part>,
}

/// `advice!["verify the server: ", Fix::TrustIssuingCa, ", or ", Fix::PinCertificate(fp)]`
#[macro_export]
macro_rules! advice {
    ($($part:expr),* $(,)?) => {
        $crate::model::advice::Advice::from_parts(vec![$($crate::model::advice::Part::from($part)),*])
    };
}

impl Advice {
    pub fn from_parts(parts: Vec<Part>) -> Self {
        Advice { parts }
    }

    /// This advice followed by more.
    pub fn then(mut self, more: impl Into<Advice>) -> Self {
        self.parts.extend(more.into().parts);
        self
    }

    /// The steps it names, for surfaces that act on them rather than print them.
    pub fn fixes(&self) -> impl Iterator<Item = &Fix> {
        self.parts.iter().filter_map(|p| match p {
            Part::Fix(fix) => Some(fix),
            Part::Text(_) => None,
        })
    }

    pub fn render(&self, dialect: Dialect) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Fix(fix) => out.push_str(&fix.render(dialect)),
            }
        }
        out
    }
}

impl From<&str> for Advice {
    fn from(text: &str) -> Self {
        Advice { parts: vec![Part::from(text)] }
    }
}

impl From<String> for Advice {
    fn from(text: String) -> Self {
        Advice { parts: vec![Part::Text(text)] }
    }
}

impl From<Fix> for Advice {
    fn from(fix: Fix) -> Self {
        Advice { parts: vec![Part::Fix(fix)] }
    }
}

/// As config lines: the dialect of logs, `serve` and messages outside a report.
impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Dialect::Config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_said_as_config_lines_or_as_flags() {
        let hint = crate::advice![
            "verify the server: ",
            Fix::TrustIssuingCa,
            ", or ",
            Fix::PinCertificate("AB:CD".into()),
            "; or, anyway, ",
            Fix::AllowUnverifiedPassword,
        ];
        assert_eq!(
            hint.render(Dialect::Config),
            "verify the server: set tls.ca to the CA that issued the certificate, or approve this exact certificate in the probe's tls table: pin_sha256 = [\"AB:CD\"]; or, anyway, set allow_unverified_password = true in the probe"
        );
        assert_eq!(
            hint.render(Dialect::Flags),
            "verify the server: pass --ca with the CA that issued the certificate, or approve this exact certificate with --pin-sha256 AB:CD; or, anyway, rerun with --allow-unverified-password"
        );
        let key = Advice::from("then ")
            .then(Fix::ApproveHostKey { fingerprint: "SHA256:abc".into(), holder: "[[tunnel]] `bastion`".into() });
        assert_eq!(key.render(Dialect::Config), "then add to [[tunnel]] `bastion`: host_key = \"SHA256:abc\"");
        assert_eq!(key.render(Dialect::Flags), "then rerun with --host-key SHA256:abc");
        assert_eq!(key.fixes().count(), 1);
        let password = Advice::from(Fix::SetPassword { variable: "PGPASSWORD" });
        assert_eq!(password.render(Dialect::Config), "set password (e.g. password = \"${PGPASSWORD}\")");
        assert_eq!(password.render(Dialect::Flags), "set PGPASSWORD (or --password-env NAME)");
    }
}
