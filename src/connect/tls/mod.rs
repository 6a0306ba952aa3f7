//! TLS for every probe kind, built once: the `tls` config table, one rustls client
//! configuration builder (system roots or `tls.ca`, client identity, pins, insecure), a
//! verifier that records the presented chain during the real handshake (so the report shows
//! the certificate even when verification fails), and the classification of TLS failures.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::TableReader;
use crate::model::advice::{Fix, Key};
use crate::model::error::{ErrorClass, Failure, describe_io, find_cause};
use crate::model::report::TlsReport;
use crate::model::stages::StageLog;

mod certificate;
mod classify;
mod options;
mod verify;

pub use certificate::*;
pub use classify::*;
pub use options::*;
pub use verify::*;

/// A completed handshake: the stream and what it showed.
pub struct Handshake<IO> {
    pub stream: tokio_rustls::client::TlsStream<IO>,
    pub recorder: Recorder,
}

/// What a server presented in a handshake, for `inspect`.
pub struct Presented {
    pub chain: Vec<CertificateDer<'static>>,
    pub version: Option<String>,
}

impl<IO> Handshake<IO> {
    pub fn presented(&self) -> Presented {
        Presented {
            chain: self.recorder.snapshot().chain,
            version: self.stream.get_ref().1.protocol_version().map(version_name),
        }
    }
}

/// Performs the TLS handshake over `io`. With `report`, the presented certificate goes into
/// the probe's report (also when the handshake fails) and expiry warnings are raised.
pub async fn handshake<IO>(
    ctx: &StageLog,
    trust: &TrustStore,
    io: IO,
    opts: &TlsOptions,
    host: &str,
    alpn: &[&[u8]],
    report: bool,
) -> Result<Handshake<IO>, Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let endpoint = ctx.dialed();
    let (config, recorder) = client_config(opts, trust, alpn, endpoint.as_ref())?;
    handshake_with(ctx, config, recorder, io, opts, host, report).await
}

/// As [`handshake`], with a configuration made by [`client_config`] that the caller keeps:
/// FTP's data connections must resume the control connection's TLS session (servers
/// such as vsftpd refuse them otherwise, `require_ssl_reuse`), and resumption needs the
/// same configuration, whose session store holds the ticket.
pub async fn handshake_with<IO>(
    ctx: &StageLog,
    config: Arc<ClientConfig>,
    recorder: Recorder,
    io: IO,
    opts: &TlsOptions,
    host: &str,
    report: bool,
) -> Result<Handshake<IO>, Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name = opts.verify_name(host)?;
    if report && let Some(leaf) = opts.identity.as_ref().and_then(|identity| identity.cert.first()) {
        client_certificate_standing(ctx, leaf)?;
    }
    let connector = tokio_rustls::TlsConnector::from(config);
    let result = connector.connect(name.clone(), io).await;
    let recording = recorder.snapshot();
    let version = result.as_ref().ok().and_then(|s| s.get_ref().1.protocol_version()).map(version_name);
    let tls_report = recording.chain.first().map(|leaf| certificate_report(leaf, version, &recording));
    if report && let Some(r) = &tls_report {
        ctx.set_tls(r.clone());
        let chain = recording.chain.iter().take(crate::model::facts::CHAIN_CAP).map(|c| chain_cert(c)).collect();
        ctx.set_chain(chain);
    }
    match result {
        Ok(stream) => {
            if let Some(r) = &tls_report
                && report
            {
                expiry_warnings(ctx, r, opts.insecure);
                ctx.diagnostic(negotiated(stream.get_ref().1, &recording));
                if !recording.verified && !opts.insecure {
                    // Encrypted but not authenticated (database modes prefer and require):
                    // never a plain pass, and the warning says how to verify.
                    let mode = opts.mode.map(mode_name).unwrap_or("prefer");
                    ctx.warn(crate::advice![
                        format!("the server's certificate was not verified (tls.mode = {mode}): the session is encrypted, but the server could be an impostor; verify it with "),
                        Fix::Key(Key::TlsCa),
                        ", or ",
                        Fix::PinCertificate(r.sha256.clone()),
                    ]);
                }
            }
            if opts.insecure {
                ctx.warn("TLS certificate verification is off (tls.insecure = true)");
            }
            Ok(Handshake { stream, recorder })
        }
        Err(err) => Err(classify_handshake_error(&err, &recording, opts, &name)),
    }
}

/// The client certificate's end, in the report's credential list and warned about like the
/// server's; one that has expired (or is not valid yet) is not presented: the server would
/// refuse it, and the message says which certificate and when, instead of a TLS alert.
fn client_certificate_standing(ctx: &StageLog, leaf: &CertificateDer<'_>) -> Result<(), Failure> {
    use crate::model::expiry::{Standing, rfc3339};
    let info = cert_info(leaf);
    let what = format!("the client certificate {}", info.subject);
    let (message, hint) = match ctx.note_expiry(&what, info.not_after, Some(info.not_before), Some(info.not_before)) {
        Standing::Valid => return Ok(()),
        Standing::Expired(ago) => (
            format!(
                "{what} expired {} ago, on {}; authprobe did not present it (the server would refuse it)",
                crate::model::signed_link::approx(ago),
                rfc3339(info.not_after)
            ),
            "renew the client certificate (tls.client_cert and tls.client_key) with whoever issues it",
        ),
        Standing::NotYet(ahead) => (
            format!(
                "{what} is not valid until {} ({} from now); authprobe did not present it",
                rfc3339(info.not_before),
                crate::model::signed_link::approx(ahead)
            ),
            "check this machine's clock, or use a certificate whose validity has begun",
        ),
    };
    Err(Failure::new(ErrorClass::TlsClientCert, message).with_hint(hint))
}

/// What the handshake settled on, for `-vv`.
fn negotiated(conn: &rustls::ClientConnection, recording: &Recording) -> String {
    let mut parts = vec![conn.protocol_version().map(version_name).unwrap_or_else(|| "TLS".into())];
    if let Some(suite) = conn.negotiated_cipher_suite() {
        parts.push(format!("{:?}", suite.suite()));
    }
    if let Some(group) = conn.negotiated_key_exchange_group() {
        parts.push(format!("key exchange {:?}", group.name()));
    }
    let alpn = conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
    parts.push(format!("ALPN {}", alpn.as_deref().unwrap_or("none")));
    let n = recording.chain.len();
    parts.push(format!("{n} certificate{} presented", if n == 1 { "" } else { "s" }));
    if recording.client_cert_requested {
        parts.push("the server asked for a client certificate".into());
    }
    format!("tls: {}", parts.join(", "))
}

fn expiry_warnings(ctx: &StageLog, r: &TlsReport, insecure: bool) {
    if r.days_left < 0 {
        // Only reachable when trust came from a pin or verification is off.
        let why = if insecure { "" } else { " (trusted because it is pinned)" };
        ctx.warn(format!("certificate expired {} days ago on {}{why}", -r.days_left, r.not_after));
    } else if r.days_left < i64::from(ctx.warn_expiry_days) {
        ctx.warn(format!("certificate expires in {} days ({})", r.days_left, r.not_after));
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_accept_libpq_and_mysql_spellings() {
        assert_eq!(parse_mode("verify-full"), Some(TlsMode::VerifyFull));
        assert_eq!(parse_mode("VERIFY_IDENTITY"), Some(TlsMode::VerifyFull));
        assert_eq!(parse_mode("VERIFY_CA"), Some(TlsMode::VerifyCa));
        assert_eq!(parse_mode("REQUIRED"), Some(TlsMode::Require));
        assert_eq!(parse_mode("preferred"), Some(TlsMode::Prefer));
        assert_eq!(parse_mode("DISABLED"), Some(TlsMode::Disable));
        assert_eq!(parse_mode("sometimes"), None);
    }

    #[test]
    fn fingerprints_normalize_to_colon_hex() {
        let raw = "ab".repeat(32);
        let want = vec!["AB"; 32].join(":");
        assert_eq!(normalize_fingerprint(&raw).as_deref(), Some(want.as_str()));
        assert_eq!(normalize_fingerprint(&want.to_lowercase()).as_deref(), Some(want.as_str()));
        assert_eq!(normalize_fingerprint("AB:CD"), None);
    }

    #[test]
    fn rfc3339_formats_unix_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
