//! The failure model every probe shares: stages, stable error classes, and the failure a
//! probe returns (class, message, hint). Messages and hints never contain secrets; the
//! report is additionally scrubbed by [`crate::model::redact`] before it is rendered.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use serde::Serialize;

use crate::model::advice::{Advice, Fix, Key};

/// A step of a probe, recorded in this order in every report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Fetching the probe's secrets from their stores (Vault, …), before anything else.
    Secret,
    TunnelConnect,
    TunnelAuth,
    Dns,
    Proxy,
    Connect,
    Tls,
    Token,
    Auth,
    Check,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Secret => "secret",
            Stage::TunnelConnect => "tunnel_connect",
            Stage::TunnelAuth => "tunnel_auth",
            Stage::Dns => "dns",
            Stage::Proxy => "proxy",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Token => "token",
            Stage::Auth => "auth",
            Stage::Check => "check",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable error classes of the product contract. Scripts match on these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Config,
    Dns,
    ConnectRefused,
    Timeout,
    Network,
    TlsUntrusted,
    TlsExpired,
    TlsHostname,
    TlsClientCert,
    TlsHandshake,
    HostKey,
    AuthRejected,
    PermissionDenied,
    NotFound,
    UnexpectedResponse,
    Protocol,
    Internal,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 17] = [
        ErrorClass::Config,
        ErrorClass::Dns,
        ErrorClass::ConnectRefused,
        ErrorClass::Timeout,
        ErrorClass::Network,
        ErrorClass::TlsUntrusted,
        ErrorClass::TlsExpired,
        ErrorClass::TlsHostname,
        ErrorClass::TlsClientCert,
        ErrorClass::TlsHandshake,
        ErrorClass::HostKey,
        ErrorClass::AuthRejected,
        ErrorClass::PermissionDenied,
        ErrorClass::NotFound,
        ErrorClass::UnexpectedResponse,
        ErrorClass::Protocol,
        ErrorClass::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Config => "config",
            ErrorClass::Dns => "dns",
            ErrorClass::ConnectRefused => "connect_refused",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Network => "network",
            ErrorClass::TlsUntrusted => "tls_untrusted",
            ErrorClass::TlsExpired => "tls_expired",
            ErrorClass::TlsHostname => "tls_hostname",
            ErrorClass::TlsClientCert => "tls_client_cert",
            ErrorClass::TlsHandshake => "tls_handshake",
            ErrorClass::HostKey => "host_key",
            ErrorClass::AuthRejected => "auth_rejected",
            ErrorClass::PermissionDenied => "permission_denied",
            ErrorClass::NotFound => "not_found",
            ErrorClass::UnexpectedResponse => "unexpected_response",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Internal => "internal",
        }
    }

    /// The classes a service that is still coming up produces: `--wait` retries them.
    pub fn transient(self) -> bool {
        matches!(self, ErrorClass::Dns | ErrorClass::ConnectRefused | ErrorClass::Timeout | ErrorClass::Network)
    }

    /// What to do next when a probe fails with this class and nothing more specific is known.
    pub fn default_hint(self) -> Advice {
        let text = match self {
            ErrorClass::Config => "fix the probe's settings; `authprobe validate` checks the file",
            ErrorClass::Dns => "check the host name for typos, and that this machine's resolver knows it",
            ErrorClass::ConnectRefused => {
                "nothing listens on that port: check the port, that the service runs, and firewalls"
            }
            ErrorClass::Timeout => {
                return crate::advice![
                    "the peer did not answer in time: check firewalls and allow-lists (silent drops look like this), or ",
                    Fix::RaiseTimeout
                ];
            }
            ErrorClass::Network => {
                "the connection broke: check proxies, load balancers and firewalls between here and the server"
            }
            ErrorClass::TlsUntrusted => {
                return crate::advice![Fix::TrustIssuingCa, ", or pin it with ", Fix::Key(Key::PinSha256)];
            }
            ErrorClass::TlsExpired => {
                "the server's certificate is outside its validity period: renew it (or check this machine's clock)"
            }
            ErrorClass::TlsHostname => {
                return crate::advice!["connect with a name the certificate covers, or ", Fix::ServerName];
            }
            ErrorClass::TlsClientCert => {
                return crate::advice![Fix::ClientCertificate, " to a certificate the server trusts"];
            }
            ErrorClass::TlsHandshake => "the TLS versions or ciphers do not match, or TLS is not enabled on both sides",
            ErrorClass::HostKey => "verify the host key fingerprint out of band, then set host_key",
            ErrorClass::AuthRejected => {
                "the credentials were refused: check them, and that they have not expired or been rotated"
            }
            ErrorClass::PermissionDenied => "the credentials work but lack permission: ask the owner to grant access",
            ErrorClass::NotFound => "the credentials work but the thing checked does not exist: check the name or path",
            ErrorClass::UnexpectedResponse => {
                "the server answered, but not as `expect` says: check the endpoint and the expectation"
            }
            ErrorClass::Protocol => "the server does not speak the expected protocol: check the port and the scheme",
            ErrorClass::Internal => "this is a bug in authprobe; please report it with the output of -vv",
        };
        Advice::from(text)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A probe failure: which class, a one-line message and a hint. The stage is attached by
/// [`crate::connect::context::ProbeContext::stage`] unless the failure sets one itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Option<Stage>,
    pub class: ErrorClass,
    pub message: String,
    pub hint: Option<Advice>,
    /// Set by the probe when the server said it is not ready yet (a database still
    /// starting, an HTTP 503): `--wait` retries it although its class alone would not.
    pub transient: bool,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Failure { stage: None, class, message: message.into(), hint: None, transient: false }
    }

    /// Marks a failure that waiting can cure (see [`Failure::retryable`]).
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// Whether `--wait` may try again: only what can pass by itself. Retrying a refused
    /// password cannot succeed and can lock the account; an untrusted certificate or host
    /// key, a permission or a config error stays what it is however long one waits.
    pub fn retryable(&self) -> Result<(), String> {
        if self.transient || self.class.transient() {
            return Ok(());
        }
        let why = match self.class {
            ErrorClass::AuthRejected => {
                "a refused credential stays refused, and retrying it can lock the account".to_string()
            }
            ErrorClass::Config => "the probe's settings do not change while it waits".to_string(),
            ErrorClass::Internal => "a bug in authprobe does not go away by waiting".to_string(),
            class => format!("{class} does not change by waiting; it needs a change on one side"),
        };
        Err(why)
    }

    pub fn with_hint(mut self, hint: impl Into<Advice>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn at(mut self, stage: Stage) -> Self {
        self.stage = Some(stage);
        self
    }

    pub fn hint_or_default(&self) -> Advice {
        self.hint.clone().unwrap_or_else(|| self.class.default_hint())
    }

    /// A failure inside authprobe itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Failure::new(ErrorClass::Internal, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stage {
            Some(stage) => write!(f, "{stage}: {} — {}", self.class, self.message),
            None => write!(f, "{} — {}", self.class, self.message),
        }
    }
}

/// Finds the first error of type `T` in an error's `source()` chain, including itself.
/// Drivers wrap the typed cause (an io error, a rustls error) in their own types; the
/// classification needs the typed value, never the English text.
pub fn find_cause<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // io::Error keeps its payload behind get_ref(), which source() does not always expose.
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = inner.downcast_ref::<T>()
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A connection read more than its budget (`connect::net::ReadBudget`): the peer is
/// flooding, which is a protocol failure, not a network one.
#[derive(Debug)]
pub struct ReadBudgetExceeded {
    pub limit: u64,
}

impl fmt::Display for ReadBudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server sent more than {} MiB on one connection; authprobe stopped reading", self.limit >> 20)
    }
}

impl StdError for ReadBudgetExceeded {}

/// The class of a plain socket error (no TLS involved).
pub fn classify_io(err: &io::Error) -> ErrorClass {
    use io::ErrorKind::*;
    if find_cause::<ReadBudgetExceeded>(err).is_some() {
        return ErrorClass::Protocol;
    }
    match err.kind() {
        ConnectionRefused => ErrorClass::ConnectRefused,
        TimedOut | WouldBlock => ErrorClass::Timeout,
        _ => ErrorClass::Network,
    }
}

/// A short, secret-free description of a socket error, without Rust's "(os error N)" noise.
pub fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind::*;
    match err.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by peer".into(),
        ConnectionAborted => "connection aborted".into(),
        UnexpectedEof => "connection closed by peer".into(),
        BrokenPipe => "connection closed by peer while sending".into(),
        TimedOut => "timed out".into(),
        NetworkUnreachable => "network unreachable".into(),
        HostUnreachable => "host unreachable".into(),
        AddrNotAvailable => "address not available".into(),
        _ => {
            let text = err.to_string();
            match text.find(" (os error") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_the_contract_names() {
        let names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "config",
                "dns",
                "connect_refused",
                "timeout",
                "network",
                "tls_untrusted",
                "tls_expired",
                "tls_hostname",
                "tls_client_cert",
                "tls_handshake",
                "host_key",
                "auth_rejected",
                "permission_denied",
                "not_found",
                "unexpected_response",
                "protocol",
                "internal"
            ]
        );
        for class in ErrorClass::ALL {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
    }

    #[test]
    fn io_kinds_map_to_classes() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_io(&refused), ErrorClass::ConnectRefused);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(classify_io(&reset), ErrorClass::Network);
        assert_eq!(describe_io(&reset), "connection reset by peer");
    }

    #[test]
    fn find_cause_sees_through_io_error_payloads() {
        let inner = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let io = io::Error::new(io::ErrorKind::InvalidData, inner.clone());
        assert_eq!(find_cause::<rustls::Error>(&io), Some(&inner));
    }
}
