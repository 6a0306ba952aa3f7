//! TLS for every probe kind, built once: the `tls` config table, one rustls client
//! configuration builder (system roots or `tls.ca`, client identity, pins, insecure), a
//! verifier that records the presented chain during the real handshake (so the report shows
//! the certificate even when verification fails), and the classification of TLS failures.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::TableReader;
use crate::model::error::{ErrorClass, Failure, describe_io, find_cause};
use crate::model::report::TlsReport;
use crate::model::stages::StageLog;

/// How a database session negotiates TLS (libpq's names; drivers' spellings map onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The checked `tls` table of a probe.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Trust only this CA bundle instead of the system roots (as curl's --cacert).
    pub ca: Option<Arc<RootCertStore>>,
    pub identity: Option<Arc<CertifiedKey>>,
    /// Name to verify the certificate against (and send as SNI) instead of the host.
    pub server_name: Option<String>,
    /// SHA-256 fingerprints (upper-case hex, colon separated) of trusted certificates.
    pub pins: Vec<String>,
    pub insecure: bool,
    pub mode: Option<TlsMode>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .field("pins", &self.pins)
            .field("insecure", &self.insecure)
            .field("mode", &self.mode)
            .finish()
    }
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

impl TlsOptions {
    /// Reads a probe's `tls` table. Kinds that negotiate TLS in-protocol (databases) accept
    /// `mode` and give the one used when it is absent; the others pass `None`.
    pub fn read(probe: &TableReader<'_, '_>, default_mode: Option<TlsMode>) -> Option<TlsOptions> {
        let modes = default_mode.is_some();
        let Some(table) = probe.table("tls") else {
            // A `tls` key of the wrong type was reported already; absent means defaults.
            return (!probe.has("tls")).then(|| TlsOptions { mode: default_mode, ..TlsOptions::default() });
        };
        let mut ok = true;
        let mut opts = TlsOptions::default();
        if let Some((path, pem)) = table.file_bytes("ca") {
            match parse_ca(&pem) {
                Ok(store) => opts.ca = Some(Arc::new(store)),
                Err(why) => {
                    table.error_at("ca", format!("{}: {why}", path.display()));
                    ok = false;
                }
            }
        }
        let cert = table.file_bytes("client_cert");
        let key = table.file_bytes("client_key");
        match (cert, key) {
            (Some((cert_path, cert_pem)), Some((key_path, key_pem))) => match load_identity(&cert_pem, &key_pem) {
                Ok(identity) => opts.identity = Some(Arc::new(identity)),
                Err(why) => {
                    table.error_at(
                        "client_key",
                        format!("client identity {} + {}: {why}", cert_path.display(), key_path.display()),
                    );
                    ok = false;
                }
            },
            (None, None) => {}
            _ => {
                if table.has("client_cert") != table.has("client_key") {
                    table.error_here("tls.client_cert and tls.client_key go together: set both or neither");
                }
                ok = false;
            }
        }
        opts.server_name = table.string("server_name");
        if let Some(pins) = table.string_list("pin_sha256") {
            for pin in pins {
                match normalize_fingerprint(&pin) {
                    Some(p) => opts.pins.push(p),
                    None => {
                        table.error_at(
                            "pin_sha256",
                            format!("`{pin}` is not a SHA-256 fingerprint (64 hex digits, colons optional)"),
                        );
                        ok = false;
                    }
                }
            }
        }
        opts.insecure = table.bool("insecure").unwrap_or(false);
        if modes && let Some(raw) = table.string("mode") {
            match parse_mode(&raw) {
                Some(mode) => opts.mode = Some(mode),
                None => {
                    table.error_at(
                        "mode",
                        format!("unknown TLS mode `{raw}`; use disable, prefer, require, verify-ca or verify-full"),
                    );
                    ok = false;
                }
            }
        }
        if opts.mode.is_none() {
            opts.mode = default_mode;
        }
        table.finish();
        ok.then_some(opts)
    }

    /// The name the certificate must carry: `server_name`, else the host connected to.
    pub fn verify_name(&self, host: &str) -> Result<ServerName<'static>, Failure> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_string())
            .map_err(|_| Failure::new(ErrorClass::Config, format!("`{name}` is not a valid TLS server name")))
    }
}

/// libpq's name of a mode.
pub fn mode_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Disable => "disable",
        TlsMode::Prefer => "prefer",
        TlsMode::Require => "require",
        TlsMode::VerifyCa => "verify-ca",
        TlsMode::VerifyFull => "verify-full",
    }
}

/// Accepts libpq's spellings, MySQL's and the common synonyms.
pub fn parse_mode(raw: &str) -> Option<TlsMode> {
    let norm = raw.trim().to_ascii_lowercase().replace('_', "-");
    Some(match norm.as_str() {
        "disable" | "disabled" | "off" | "false" => TlsMode::Disable,
        "prefer" | "preferred" | "allow" => TlsMode::Prefer,
        "require" | "required" | "on" | "true" => TlsMode::Require,
        "verify-ca" => TlsMode::VerifyCa,
        "verify-full" | "verify-identity" => TlsMode::VerifyFull,
        _ => return None,
    })
}

pub fn parse_ca(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate bundle ({e})"))?;
        store.add(cert).map_err(|e| format!("unusable CA certificate: {e}"))?;
        found += 1;
    }
    if found == 0 {
        return Err("no PEM certificate found".into());
    }
    Ok(store)
}

fn load_identity(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("client_cert is not PEM ({e})"))?;
    if certs.is_empty() {
        return Err("no certificate in client_cert".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("client_key holds no usable private key ({e})"))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| format!("the key does not fit the certificate ({e})"))
}

/// Upper-case hex with colons, the form reports show and pins are compared in.
pub fn normalize_fingerprint(raw: &str) -> Option<String> {
    let digits = raw.trim().trim_start_matches("sha256:").trim_start_matches("SHA256:").bytes().filter(|b| *b != b':');
    // One pass, one allocation: configs with thousands of pins are read in milliseconds.
    let mut out = String::with_capacity(95);
    let mut count = 0;
    for digit in digits {
        if !digit.is_ascii_hexdigit() || count == 64 {
            return None;
        }
        if count > 0 && count % 2 == 0 {
            out.push(':');
        }
        out.push(char::from(digit.to_ascii_uppercase()));
        count += 1;
    }
    (count == 64).then_some(out)
}

fn fingerprint(algorithm: &'static aws_lc_rs::digest::Algorithm, der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(algorithm, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

pub fn sha256_fingerprint(der: &[u8]) -> String {
    fingerprint(&aws_lc_rs::digest::SHA256, der)
}

pub fn sha1_fingerprint(der: &[u8]) -> String {
    fingerprint(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
}

/// The system trust roots, loaded at most once per run and only if a probe needs them.
#[derive(Default)]
pub struct TrustStore {
    system: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl TrustStore {
    pub fn system_verifier(&self) -> Result<Arc<WebPkiServerVerifier>, Failure> {
        let loaded = self.system.get_or_init(|| {
            let result = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(result.certs);
            if added == 0 {
                return Err(
                    "no usable system trust roots (install ca-certificates, or set SSL_CERT_FILE or tls.ca)".into()
                );
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider()).build().map_err(|e| e.to_string())
        });
        loaded.clone().map_err(|why| Failure::new(ErrorClass::Config, why))
    }
}

/// Checks a recorded chain against a CA bundle (or the system store) and a name, the way
/// a probe would: `Ok` or the classified failure. Used by `inspect` after an accept-all
/// handshake, to say whether a probe would trust what was shown.
pub fn verify_chain(
    chain: &[CertificateDer<'static>],
    name: &ServerName<'_>,
    ca: Option<Arc<RootCertStore>>,
    trust: &TrustStore,
) -> Result<(), Failure> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(Failure::new(ErrorClass::TlsHandshake, "the server presented no certificate"));
    };
    let verifier = match ca.clone() {
        Some(store) => WebPkiServerVerifier::builder_with_provider(store, provider())
            .build()
            .map_err(|e| Failure::new(ErrorClass::Config, format!("unusable CA bundle: {e}")))?,
        None => trust.system_verifier()?,
    };
    let now = UnixTime::now();
    verifier.verify_server_cert(leaf, intermediates, name, &[], now).map(|_| ()).map_err(|err| {
        let recording = Recording { chain: chain.to_vec(), ..Recording::default() };
        let opts = TlsOptions { ca, ..TlsOptions::default() };
        classify_tls_error(&err, &recording, &opts, name)
    })
}

/// What the handshake showed, recorded whether or not it succeeded.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    pub chain: Vec<CertificateDer<'static>>,
    pub pinned: bool,
    pub verified: bool,
    pub client_cert_requested: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Recording>>);

impl Recorder {
    fn with<R>(&self, f: impl FnOnce(&mut Recording) -> R) -> R {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub fn snapshot(&self) -> Recording {
        self.with(|r| r.clone())
    }
}

#[derive(Debug)]
struct RecordingVerifier {
    /// None when trust comes from pins or verification is off: no CA is consulted then,
    /// so the system store is not even loaded.
    inner: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<String>,
    /// Accept any certificate (recorded, reported unverified): `insecure`, or the database
    /// modes `prefer`/`require`, which encrypt without verifying, as libpq does.
    accept_any: bool,
    /// False for `verify-ca`: the chain must be trusted, the name need not match.
    check_name: bool,
    recorder: Recorder,
    provider: Arc<CryptoProvider>,
}

/// The chain matched none of the configured pins.
#[derive(Debug)]
struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate matches none of the pinned fingerprints")
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<CertificateDer<'static>> =
            std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        let pinned = !self.pins.is_empty() && chain.iter().any(|c| self.pins.contains(&sha256_fingerprint(c)));
        self.recorder.with(|r| {
            r.chain = chain;
            r.pinned = pinned;
        });
        if !self.pins.is_empty() {
            // A pin is an explicit approval of this exact certificate: no CA or name check.
            if pinned {
                self.recorder.with(|r| r.verified = true);
                return Ok(ServerCertVerified::assertion());
            }
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                PinMismatch,
            )))));
        }
        if self.accept_any {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(inner) = &self.inner else {
            return Err(rustls::Error::General("no trust anchors configured".into()));
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(_) => {}
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => {}
            Err(err) => return Err(err),
        }
        self.recorder.with(|r| r.verified = true);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Presents the configured identity (if any) and records that the server asked for one,
/// so that a later refusal can be blamed on the client certificate precisely.
#[derive(Debug)]
struct RecordingClientCert {
    identity: Option<Arc<CertifiedKey>>,
    recorder: Recorder,
}

impl ResolvesClientCert for RecordingClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.recorder.with(|r| r.client_cert_requested = true);
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        // Always answer a CertificateRequest so that it is recorded; with no identity the
        // resolver returns None and rustls sends an empty certificate list.
        true
    }
}

/// A rustls client configuration for one connection, and the recorder it writes to.
pub fn client_config(
    opts: &TlsOptions,
    trust: &TrustStore,
    alpn: &[&[u8]],
) -> Result<(Arc<ClientConfig>, Recorder), Failure> {
    let provider = provider();
    // As libpq: `require` with an explicit CA verifies the chain (like verify-ca).
    let accept_any = opts.insecure
        || opts.mode == Some(TlsMode::Prefer)
        || (opts.mode == Some(TlsMode::Require) && opts.ca.is_none());
    let inner = match &opts.ca {
        _ if accept_any || !opts.pins.is_empty() => None,
        Some(store) => Some(
            WebPkiServerVerifier::builder_with_provider(store.clone(), provider.clone())
                .build()
                .map_err(|e| Failure::new(ErrorClass::Config, format!("unusable tls.ca: {e}")))?,
        ),
        None => Some(trust.system_verifier()?),
    };
    let recorder = Recorder::default();
    let verifier = RecordingVerifier {
        inner,
        pins: opts.pins.clone(),
        accept_any,
        check_name: !matches!(opts.mode, Some(TlsMode::VerifyCa | TlsMode::Require)),
        recorder: recorder.clone(),
        provider: provider.clone(),
    };
    let resolver = RecordingClientCert { identity: opts.identity.clone(), recorder: recorder.clone() };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::internal(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok((Arc::new(config), recorder))
}

/// A completed handshake: the stream and what it showed.
pub struct Handshake<IO> {
    pub stream: tokio_rustls::client::TlsStream<IO>,
    pub recorder: Recorder,
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
    let (config, recorder) = client_config(opts, trust, alpn)?;
    let name = opts.verify_name(host)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let result = connector.connect(name.clone(), io).await;
    let recording = recorder.snapshot();
    let version = result.as_ref().ok().and_then(|s| s.get_ref().1.protocol_version()).map(version_name);
    let tls_report = recording.chain.first().map(|leaf| certificate_report(leaf, version, &recording));
    if report && let Some(r) = &tls_report {
        ctx.set_tls(r.clone());
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
                    ctx.warn(format!(
                        "the server's certificate was not verified (tls.mode = {mode}): the session is encrypted, but the server could be an impostor; verify it with tls.ca, or approve this certificate: {}",
                        pin_line(&r.sha256)
                    ));
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

pub fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1".into(),
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1.0".into(),
        other => format!("{other:?}"),
    }
}

/// Everything a person needs to recognise (and approve) a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub key: String,
    pub sha1: String,
    pub sha256: String,
}

pub fn cert_info(der: &[u8]) -> CertInfo {
    let sha1 = sha1_fingerprint(der);
    let sha256 = sha256_fingerprint(der);
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let mut sans = Vec::new();
            if let Ok(Some(ext)) = cert.subject_alternative_name() {
                for name in &ext.value.general_names {
                    match name {
                        x509_parser::extensions::GeneralName::DNSName(d) => sans.push(d.to_string()),
                        x509_parser::extensions::GeneralName::IPAddress(ip) => {
                            if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                                sans.push(std::net::Ipv4Addr::from(v4).to_string());
                            } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                                sans.push(std::net::Ipv6Addr::from(v6).to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
            CertInfo {
                subject: non_empty(cert.subject().to_string()),
                issuer: non_empty(cert.issuer().to_string()),
                sans,
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
                key: key_description(&cert),
                sha1,
                sha256,
            }
        }
        Err(_) => CertInfo {
            subject: "(unparsable certificate)".into(),
            issuer: String::new(),
            sans: Vec::new(),
            not_before: 0,
            not_after: 0,
            key: String::new(),
            sha1,
            sha256,
        },
    }
}

fn non_empty(s: String) -> String {
    if s.is_empty() { "(empty)".into() } else { s }
}

fn key_description(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => format!("EC {}", ec.key_size()),
        Ok(PublicKey::DSA(_)) => "DSA".into(),
        Ok(_) => {
            let oid = cert.public_key().algorithm.algorithm.to_id_string();
            match oid.as_str() {
                "1.3.101.112" => "Ed25519".into(),
                "1.3.101.113" => "Ed448".into(),
                other => other.to_string(),
            }
        }
        Err(_) => "unknown".into(),
    }
}

pub fn rfc3339(unix: i64) -> String {
    let time = if unix >= 0 {
        UNIX_EPOCH + std::time::Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_secs(unix.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(time).to_string()
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn certificate_report(leaf: &CertificateDer<'_>, version: Option<String>, recording: &Recording) -> TlsReport {
    let info = cert_info(leaf);
    let days_left = (info.not_after - now_unix()).div_euclid(86_400);
    TlsReport {
        version,
        subject: info.subject,
        issuer: info.issuer,
        sans: info.sans,
        not_before: rfc3339(info.not_before),
        not_after: rfc3339(info.not_after),
        days_left,
        sha1: info.sha1,
        sha256: info.sha256,
        pinned: recording.pinned,
        verified: recording.verified,
        not_after_unix: info.not_after,
    }
}

/// The config line that approves a certificate by its fingerprint.
pub fn pin_line(sha256: &str) -> String {
    format!("pin_sha256 = [\"{sha256}\"]")
}

/// Turns a failed handshake (or a failure right after it) into a class, message and hint.
pub fn classify_handshake_error(
    err: &io::Error,
    recording: &Recording,
    opts: &TlsOptions,
    name: &ServerName<'_>,
) -> Failure {
    if let Some(tls) = find_cause::<rustls::Error>(err) {
        return classify_tls_error(tls, recording, opts, name);
    }
    let asked_for_cert = recording.client_cert_requested && opts.identity.is_none();
    match err.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe if asked_for_cert => {
            client_cert_missing()
        }
        io::ErrorKind::UnexpectedEof => {
            Failure::new(ErrorClass::Network, "the server closed the connection during the TLS handshake")
                .with_hint("the server may not speak TLS on this port, or a proxy cut the connection")
        }
        _ => Failure::new(crate::model::error::classify_io(err), format!("TLS handshake: {}", describe_io(err))),
    }
}

/// The server asked for a client certificate, completed the handshake, then dropped the
/// connection without a word: that is how servers refuse a certificate under TLS 1.3 when
/// their alert is lost to the connection reset.
pub fn client_cert_refused_silently(presented: bool) -> Failure {
    if !presented {
        return client_cert_missing();
    }
    Failure::new(
        ErrorClass::TlsClientCert,
        "the server asked for a client certificate, then closed the connection right after the handshake: it most likely rejected ours",
    )
    .with_hint("use a client certificate issued by a CA the server trusts, and check that it has not expired")
}

fn client_cert_missing() -> Failure {
    Failure::new(ErrorClass::TlsClientCert, "the server requires a client certificate and none is configured")
        .with_hint("set tls.client_cert and tls.client_key to a certificate the server trusts")
}

/// Classifies a rustls error, with the recorded chain for fingerprints and names.
pub fn classify_tls_error(
    err: &rustls::Error,
    recording: &Recording,
    opts: &TlsOptions,
    name: &ServerName<'_>,
) -> Failure {
    let leaf = recording.chain.first().map(|c| cert_info(c));
    let fp = leaf.as_ref().map(|l| l.sha256.clone()).unwrap_or_default();
    let host = name.to_str();
    match err {
        rustls::Error::InvalidCertificate(cert_err) => match cert_err {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                let when = leaf.as_ref().map(|l| format!(" on {}", rfc3339(l.not_after))).unwrap_or_default();
                Failure::new(ErrorClass::TlsExpired, format!("the server certificate expired{when} (sha256 {fp})"))
                    .with_hint("renew the server's certificate (or check this machine's clock)")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                let when = leaf.as_ref().map(|l| format!(" until {}", rfc3339(l.not_before))).unwrap_or_default();
                Failure::new(ErrorClass::TlsExpired, format!("the server certificate is not valid yet{when}"))
                    .with_hint("check this machine's clock, or wait for the certificate's start date")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                // Our own reading of the certificate: the driver's list is Debug-formatted.
                let names = leaf.as_ref().map(|l| l.sans.join(", ")).unwrap_or_default();
                Failure::new(ErrorClass::TlsHostname, format!("the certificate is for [{names}], not for {host}"))
                    .with_hint("connect with a name the certificate covers, or set tls.server_name to one of its names")
            }
            CertificateError::Other(other) if other.0.downcast_ref::<PinMismatch>().is_some() => Failure::new(
                ErrorClass::TlsUntrusted,
                format!("the certificate matches no pinned fingerprint: it has sha256 {fp}"),
            )
            .with_hint(format!("if the certificate changed on purpose, update the pin: {}", pin_line(&fp))),
            CertificateError::UnknownIssuer | CertificateError::BadSignature | CertificateError::BadEncoding | _ => {
                let issuer = leaf.as_ref().map(|l| l.issuer.clone()).unwrap_or_else(|| "an unknown issuer".into());
                let source = if opts.ca.is_some() { "tls.ca" } else { "the system trust store" };
                Failure::new(
                    ErrorClass::TlsUntrusted,
                    format!("the certificate is not trusted by {source} ({cert_err:?}): issued by {issuer}, sha256 {fp}"),
                )
                .with_hint(format!(
                    "set tls.ca to the CA that issued it, or approve this exact certificate in the probe's tls table: {}",
                    pin_line(&fp)
                ))
            }
        },
        rustls::Error::AlertReceived(alert) => classify_alert(*alert, recording, opts),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            Failure::new(ErrorClass::Protocol, "the server did not answer with TLS")
                .with_hint("this port probably speaks plain text: check the scheme (http:// vs https://) and the port")
        }
        rustls::Error::NoCertificatesPresented => {
            Failure::new(ErrorClass::TlsHandshake, "the server presented no certificate")
        }
        other => Failure::new(ErrorClass::TlsHandshake, format!("TLS handshake failed: {other}")),
    }
}

fn classify_alert(alert: AlertDescription, recording: &Recording, opts: &TlsOptions) -> Failure {
    use AlertDescription as A;
    let ours = if opts.identity.is_some() { "our client certificate" } else { "the missing client certificate" };
    match alert {
        A::CertificateRequired => client_cert_missing(),
        A::BadCertificate
        | A::UnknownCA
        | A::CertificateUnknown
        | A::CertificateExpired
        | A::CertificateRevoked
        | A::UnsupportedCertificate
        | A::AccessDenied
            if recording.client_cert_requested =>
        {
            if opts.identity.is_none() {
                return client_cert_missing();
            }
            Failure::new(ErrorClass::TlsClientCert, format!("the server rejected {ours} (TLS alert {alert:?})"))
                .with_hint(
                    "use a client certificate issued by a CA the server trusts, and check that it has not expired",
                )
        }
        A::HandshakeFailure if recording.client_cert_requested && opts.identity.is_none() => client_cert_missing(),
        A::ProtocolVersion | A::InsufficientSecurity | A::HandshakeFailure => {
            Failure::new(ErrorClass::TlsHandshake, format!("the server refused the handshake (TLS alert {alert:?})"))
                .with_hint(
                    "the server and authprobe share no TLS version or cipher suite (authprobe speaks TLS 1.2 and 1.3)",
                )
        }
        A::UnrecognisedName => {
            Failure::new(ErrorClass::TlsHostname, "the server does not know the requested host name (SNI)")
                .with_hint("check the host name, or set tls.server_name")
        }
        other => Failure::new(ErrorClass::TlsHandshake, format!("the server sent TLS alert {other:?}")),
    }
}

/// Errors after the handshake (on the first read or write) that are really TLS failures:
/// with TLS 1.3 the server judges our client certificate after the handshake has
/// completed on our side, so its refusal arrives on the first read.
pub fn classify_post_handshake(err: &rustls::Error, recorder: &Recorder, opts: &TlsOptions) -> Failure {
    let recording = recorder.snapshot();
    match err {
        rustls::Error::AlertReceived(alert) => classify_alert(*alert, &recording, opts),
        other => Failure::new(ErrorClass::TlsHandshake, format!("TLS error: {other}")),
    }
}

/// Wraps a TLS stream and keeps the first rustls error that passes through it. HTTP/2
/// turns I/O errors into strings, so the typed cause must be caught here, at the socket.
pub struct ErrorTap<S> {
    inner: S,
    seen: Arc<Mutex<Option<rustls::Error>>>,
}

impl<S> ErrorTap<S> {
    pub fn new(inner: S) -> (Self, Arc<Mutex<Option<rustls::Error>>>) {
        let seen = Arc::new(Mutex::new(None));
        (ErrorTap { inner, seen: seen.clone() }, seen)
    }

    fn note<T>(&self, result: std::task::Poll<io::Result<T>>) -> std::task::Poll<io::Result<T>> {
        if let std::task::Poll::Ready(Err(err)) = &result
            && let Some(tls) = find_cause::<rustls::Error>(err)
            && let Ok(mut slot) = self.seen.lock()
        {
            slot.get_or_insert_with(|| tls.clone());
        }
        result
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ErrorTap<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        self.note(result)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ErrorTap<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(result)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.note(result)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        self.note(result)
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
