//! The PostgreSQL frontend/backend protocol (v3), as much as a probe needs: the startup
//! message, authentication (trust, cleartext, MD5, SCRAM-SHA-256 and SCRAM-SHA-256-PLUS
//! with tls-server-end-point channel binding), one simple query, and terminate.
//!
//! Spoken here rather than through a driver so that the probe decides, per request of the
//! server, whether a password may be handed over (see [`AuthPolicy`]), and so that every
//! byte read is budgeted: a message's announced length is checked before anything is
//! allocated, and the check query stops at its first row. Parsing is a pure function of the
//! bytes ([`parse_backend`]), fuzzed and unit-tested without a server.

pub mod client;
pub mod exchange;

pub use client::Client;
pub use exchange::{LoginExchange, LoginStep};

/// The largest backend message read into memory. Real servers' authentication, parameter
/// and error messages are a few hundred bytes; a data row is never read whole.
pub const MESSAGE_CAP: usize = 256 * 1024;
/// Messages the server may send before it answers what was asked (notices, parameters):
/// a server that floods them is refused long before the timeout.
pub(crate) const CHATTER_CAP: usize = 1_000;

/// Why an exchange failed. Its texts are the server's as sent: the caller scrubs them
/// before they are shown.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// An ErrorResponse.
    #[error("server error {}: {}", .0.code, .0.message)]
    Server(ServerError),
    /// Bytes that are not the protocol, or a step the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server asked for a method authprobe will not use here; the policy explains.
    #[error("refused to answer the server's authentication request: {0:?}")]
    Refused(Refusal),
    /// The caller's GSS-API initiator failed; its own error, to be taken back by the caller.
    #[error("GSS-API: {0}")]
    Gss(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The GSS-API side of a Kerberos login, supplied by the caller (which owns the ticket):
/// `step(None)` makes the first token, `step(Some(token))` reads the server's next one;
/// each returns the token to send (empty: nothing to send).
pub trait GssInitiator: Send {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
    /// Whether the context is established (the server proved itself).
    fn is_complete(&self) -> bool;
}

pub(crate) fn protocol(what: impl Into<String>) -> PgError {
    PgError::Protocol(what.into())
}

/// An ErrorResponse's fields (texts as the server sent them; the probe scrubs and caps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

/// Authentication methods, with libpq's `require_auth` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The server let the client in without asking (trust, peer, or a client certificate).
    None,
    Password,
    Md5,
    ScramSha256,
    Gss,
    Sspi,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Password => "password",
            Method::Md5 => "md5",
            Method::ScramSha256 => "scram-sha-256",
            Method::Gss => "gss",
            Method::Sspi => "sspi",
        }
    }

    pub fn parse(name: &str) -> Option<Method> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "none" => Method::None,
            "password" => Method::Password,
            "md5" => Method::Md5,
            "scram-sha-256" => Method::ScramSha256,
            "gss" => Method::Gss,
            "sspi" => Method::Sspi,
            _ => return None,
        })
    }
}

/// libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBindingMode {
    Disable,
    Prefer,
    Require,
}

/// Why the client stopped before answering the server's authentication request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The method is not in `require_auth`.
    NotAllowed { method: Method },
    /// The server wants the password in recoverable form and its identity is not verified.
    UnverifiedPeer { method: Method },
    /// `channel_binding = "require"`, and SCRAM-SHA-256-PLUS could not be used.
    ChannelBindingUnavailable { why: &'static str },
    /// A method authprobe does not implement (Kerberos, GSS, SSPI, an unknown SASL one).
    Unsupported { what: String },
    /// A password method, and no password is configured.
    NoPassword { method: Method },
}

/// What the probe allows during authentication.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Methods the server may use (`require_auth`); empty means any.
    pub allowed: Vec<Method>,
    /// Methods the server may not use (`require_auth = "!password"`).
    pub forbidden: Vec<Method>,
    pub channel_binding: ChannelBindingMode,
}

/// The password, and whether it may go to this server as it is. The caller decides with the
/// credential release rule (a verified server, or the probe's consent); the exchange only
/// answers cleartext authentication with a [`Password::Releasable`] one.
#[derive(Clone, Copy)]
pub enum Password<'a> {
    /// For challenge-response only (SCRAM, MD5): cleartext authentication is refused.
    ChallengeOnly(&'a str),
    /// May also be sent in clear text (AuthenticationCleartextPassword).
    Releasable(&'a str),
}

impl<'a> Password<'a> {
    /// The value, to answer a challenge with.
    fn for_challenge(self) -> &'a str {
        match self {
            Password::ChallengeOnly(p) | Password::Releasable(p) => p,
        }
    }

    /// The value, to send as it is, if the caller released it.
    fn released(self) -> Option<&'a str> {
        match self {
            Password::ChallengeOnly(_) => None,
            Password::Releasable(p) => Some(p),
        }
    }
}

impl std::fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Password::ChallengeOnly(_) => "Password::ChallengeOnly(********)",
            Password::Releasable(_) => "Password::Releasable(********)",
        })
    }
}

impl AuthPolicy {
    pub(crate) fn check(&self, method: Method) -> Result<(), PgError> {
        let allowed = self.allowed.is_empty() || self.allowed.contains(&method);
        if !allowed || self.forbidden.contains(&method) {
            return Err(PgError::Refused(Refusal::NotAllowed { method }));
        }
        Ok(())
    }
}

/// What the login learned.
#[derive(Debug, Clone, Default)]
pub struct LoginOutcome {
    pub method: Option<Method>,
    pub channel_binding: bool,
    /// ParameterStatus values the probe reports (server_version, server_encoding, TimeZone).
    pub parameters: Vec<(String, String)>,
}

/// One backend message, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Backend {
    AuthOk,
    AuthCleartext,
    AuthMd5 {
        salt: [u8; 4],
    },
    AuthSasl {
        mechanisms: Vec<String>,
    },
    AuthSaslContinue(Vec<u8>),
    AuthSaslFinal(Vec<u8>),
    /// AuthenticationGSS: the client starts a GSS-API (Kerberos) exchange.
    AuthGss,
    /// AuthenticationGSSContinue: the server's next GSS-API token.
    AuthGssContinue(Vec<u8>),
    AuthOther {
        code: i32,
    },
    Error(ServerError),
    Notice,
    Parameter {
        name: String,
        value: String,
    },
    BackendKeyData,
    ReadyForQuery,
    RowDescription,
    DataRow,
    CommandComplete,
    EmptyQuery,
    NegotiateProtocolVersion,
    /// A copy, a notification, or anything else the probe's query never asks for.
    Other(u8),
}

fn be_i32(bytes: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|b| *b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses one message body. The type byte is known valid only for what is listed; any
/// malformed body is [`PgError::Protocol`].
pub fn parse_backend(tag: u8, body: &[u8]) -> Result<Backend, PgError> {
    let malformed = |what: &str| protocol(format!("malformed {what} message from the server"));
    Ok(match tag {
        b'R' => {
            let code = be_i32(body).ok_or_else(|| malformed("authentication"))?;
            let rest = &body[4..];
            match code {
                0 => Backend::AuthOk,
                3 => Backend::AuthCleartext,
                5 => {
                    let salt = rest.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(|| malformed("MD5 request"))?;
                    Backend::AuthMd5 { salt }
                }
                10 => {
                    let mut mechanisms = Vec::new();
                    let mut rest = rest;
                    loop {
                        let (name, after) = cstr(rest).ok_or_else(|| malformed("SASL mechanism list"))?;
                        if name.is_empty() {
                            break;
                        }
                        if mechanisms.len() == 16 {
                            return Err(malformed("SASL mechanism list (too many mechanisms)"));
                        }
                        mechanisms.push(lossy(name));
                        rest = after;
                    }
                    Backend::AuthSasl { mechanisms }
                }
                7 => Backend::AuthGss,
                8 => Backend::AuthGssContinue(rest.to_vec()),
                11 => Backend::AuthSaslContinue(rest.to_vec()),
                12 => Backend::AuthSaslFinal(rest.to_vec()),
                code => Backend::AuthOther { code },
            }
        }
        b'E' => Backend::Error(parse_fields(body).ok_or_else(|| malformed("error"))?),
        b'N' => Backend::Notice,
        b'S' => {
            let (name, rest) = cstr(body).ok_or_else(|| malformed("parameter status"))?;
            let (value, _) = cstr(rest).ok_or_else(|| malformed("parameter status"))?;
            Backend::Parameter { name: lossy(name), value: lossy(value) }
        }
        b'K' => Backend::BackendKeyData,
        b'Z' => Backend::ReadyForQuery,
        b'T' => Backend::RowDescription,
        b'D' => Backend::DataRow,
        b'C' => Backend::CommandComplete,
        b'I' => Backend::EmptyQuery,
        b'v' => Backend::NegotiateProtocolVersion,
        other => Backend::Other(other),
    })
}

/// The columns of a DataRow in text format: a 16-bit count, then per column a 32-bit
/// length (-1 for NULL) and its bytes. At most 64 columns; every length is checked against
/// what is left before it is used.
pub fn parse_data_row(body: &[u8]) -> Result<Vec<Option<String>>, PgError> {
    let malformed = || protocol("malformed data row from the server");
    let count = i16::from_be_bytes(body.get(..2).and_then(|b| b.try_into().ok()).ok_or_else(malformed)?);
    if !(0..=64).contains(&count) {
        return Err(protocol(format!("a data row with {count} columns; authprobe reads at most 64")));
    }
    let mut rest = &body[2..];
    let mut columns = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = be_i32(rest).ok_or_else(malformed)?;
        rest = &rest[4..];
        if len == -1 {
            columns.push(None);
            continue;
        }
        let len = usize::try_from(len).map_err(|_| malformed())?;
        let value = rest.get(..len).ok_or_else(malformed)?;
        columns.push(Some(lossy(value)));
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok(columns)
}

/// The fields of an ErrorResponse: (type byte, C string) pairs ending in a zero byte.
fn parse_fields(mut body: &[u8]) -> Option<ServerError> {
    let mut error = ServerError::default();
    loop {
        let (&kind, rest) = body.split_first()?;
        if kind == 0 {
            return Some(error);
        }
        let (value, rest) = cstr(rest)?;
        match kind {
            b'S' => error.severity = lossy(value),
            b'C' => error.code = lossy(value),
            b'M' => error.message = lossy(value),
            _ => {}
        }
        body = rest;
    }
}

/// The tls-server-end-point channel binding data (RFC 5929): the certificate hashed with
/// its signature's hash, SHA-256 for MD5 and SHA-1 signatures.
pub fn tls_server_end_point(cert_der: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest;
    let algorithm = match x509_parser::parse_x509_certificate(cert_der) {
        Ok((_, cert)) => match cert.signature_algorithm.algorithm.to_id_string().as_str() {
            // sha384WithRSAEncryption, ecdsa-with-SHA384
            "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => &digest::SHA384,
            // sha512WithRSAEncryption, ecdsa-with-SHA512
            "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => &digest::SHA512,
            _ => &digest::SHA256,
        },
        Err(_) => &digest::SHA256,
    };
    digest::digest(algorithm, cert_der).as_ref().to_vec()
}

#[cfg(test)]
mod tests;
