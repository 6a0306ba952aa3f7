//! Trust: fingerprints, the system roots loaded once, the verifier that records the
//! presented chain during the real handshake (so the report shows the certificate even
//! when verification fails), and the rustls client configuration built from them.

use super::*;
use crate::model::approvals::{Approval, ApprovalKind, Approvals, ApprovedBy, Candidate};
use crate::model::release::Release;

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

pub(super) fn fingerprint(algorithm: &'static aws_lc_rs::digest::Algorithm, der: &[u8]) -> String {
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
    pub(super) system: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
    /// Certificates and host keys approved for endpoints (`approvals.toml`), trusted as pins.
    pub approvals: Arc<Approvals>,
}

impl TrustStore {
    pub fn with_approvals(approvals: Arc<Approvals>) -> TrustStore {
        TrustStore { system: OnceLock::new(), approvals }
    }

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
    /// Trusted because an approval covers it: who approved it and when.
    pub approved: Option<ApprovedBy>,
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

    /// The release rule's proof for this handshake's server: `Some` when a CA, a pin or an
    /// approval vouched for its certificate.
    pub fn release_proof(&self) -> Option<Release> {
        self.with(|r| r.verified).then(Release::verified_tls)
    }
}

#[derive(Debug)]
pub(super) struct RecordingVerifier {
    /// None when trust comes from pins or verification is off: no CA is consulted then,
    /// so the system store is not even loaded.
    pub(super) inner: Option<Arc<WebPkiServerVerifier>>,
    pub(super) pins: Vec<String>,
    /// Accept any certificate (recorded, reported unverified): `insecure`, or the database
    /// modes `prefer`/`require`, which encrypt without verifying, as libpq does.
    pub(super) accept_any: bool,
    /// False for `verify-ca`: the chain must be trusted, the name need not match.
    pub(super) check_name: bool,
    pub(super) recorder: Recorder,
    pub(super) provider: Arc<CryptoProvider>,
    /// What is approved for the endpoint being connected to.
    pub(super) approved: Vec<Approval>,
    /// The run's approvals and the endpoint being connected to: where `--trust-new`
    /// records a first-seen certificate and `approve` keeps a refused one.
    pub(super) endpoint: Option<(Arc<Approvals>, String, u16)>,
}

/// The server presents another certificate than the one approved for its endpoint.
#[derive(Debug)]
pub struct ApprovalChanged(pub Approval);

impl std::fmt::Display for ApprovalChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the certificate changed: approved {}", self.0.describe())
    }
}

impl std::error::Error for ApprovalChanged {}

/// The chain matched none of the configured pins.
#[derive(Debug)]
pub(super) struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate matches none of the pinned fingerprints")
    }
}

impl std::error::Error for PinMismatch {}

impl RecordingVerifier {
    /// The approval this chain matches, checked: an approved leaf must still be valid, and
    /// an approved CA (`approve --ca-of-chain`) must have issued the chain, for the name.
    fn approval_of(
        &self,
        chain: &[CertificateDer<'static>],
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<Option<Approval>, rustls::Error> {
        let found = chain.iter().enumerate().find_map(|(depth, cert)| {
            let sha256 = sha256_fingerprint(cert);
            self.approved.iter().find(|a| a.sha256 == sha256).map(|a| (depth, a))
        });
        let Some((depth, approval)) = found else { return Ok(None) };
        if depth == 0 {
            let info = cert_info(end_entity);
            if info.not_after < now.as_secs() as i64 {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
            }
            return Ok(Some(approval.clone()));
        }
        let mut roots = RootCertStore::empty();
        roots
            .add(chain[depth].clone())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        match verifier.verify_server_cert(end_entity, intermediates, server_name, &[], now) {
            Ok(_) => Ok(Some(approval.clone())),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(Some(approval.clone())),
            Err(err) => Err(err),
        }
    }

    /// A chain the CA check refused: a change when something else is approved for the
    /// endpoint; approved and recorded under `--trust-new` when nothing is and the refusal
    /// is about trust (not a name or a date); the refusal otherwise.
    fn unverified(&self, err: rustls::Error, chain: &[CertificateDer<'static>]) -> rustls::Error {
        let (Some(end_entity), Some((approvals, host, port))) = (chain.first(), &self.endpoint) else { return err };
        let refused = if let Some(approval) = self.approved.first() {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(ApprovalChanged(
                approval.clone(),
            )))))
        } else {
            let untrusted = matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)
            );
            let approval = approval_for(end_entity, host, *port, "trust-new");
            if untrusted && approvals.approve_first_seen(approval.clone(), host, *port) {
                self.recorder.with(|r| {
                    r.verified = true;
                    r.approved = Some(approval.approved_by());
                });
                return rustls::Error::General(TRUSTED_NEW.into());
            }
            err
        };
        approvals.capture(|| candidate(chain, host, *port, &refused));
        refused
    }
}

/// What `approve` shows and records for a refused chain.
fn candidate(chain: &[CertificateDer<'static>], host: &str, port: u16, refused: &rustls::Error) -> Candidate {
    let leaf = cert_info(&chain[0]);
    let shown = vec![
        ("subject".to_string(), leaf.subject.clone()),
        ("issuer".to_string(), leaf.issuer.clone()),
        ("valid".to_string(), format!("{} to {}", rfc3339(leaf.not_before), rfc3339(leaf.not_after))),
        ("names".to_string(), leaf.sans.join(", ")),
        ("public key".to_string(), leaf.key.clone()),
        ("SHA-1".to_string(), leaf.sha1.clone()),
        ("SHA-256".to_string(), leaf.sha256.clone()),
    ];
    let top_of_chain = (chain.len() > 1).then(|| approval_for(&chain[chain.len() - 1], host, port, ""));
    Candidate {
        approval: approval_for(&chain[0], host, port, ""),
        top_of_chain,
        shown,
        refusal: match refused {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other.0.to_string(),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                "its issuer is not a CA the probe trusts".into()
            }
            rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                "it has expired".into()
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => "it is not for the name connected to".into(),
            rustls::Error::General(why) => why.clone(),
            other => other.to_string(),
        },
    }
}

/// Not an error: `unverified` approved a first-seen certificate (`--trust-new`).
const TRUSTED_NEW: &str = "authprobe: approved as first seen";

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
        let approval = self.approval_of(&chain, end_entity, intermediates, server_name, now)?;
        self.recorder.with(|r| {
            r.chain = chain;
            r.pinned = pinned;
        });
        if let Some(approval) = approval {
            self.recorder.with(|r| {
                r.verified = true;
                r.approved = Some(approval.approved_by());
            });
            return Ok(ServerCertVerified::assertion());
        }
        if !self.pins.is_empty() {
            // A pin is an explicit approval of this exact certificate: no CA or name check.
            if pinned {
                self.recorder.with(|r| r.verified = true);
                return Ok(ServerCertVerified::assertion());
            }
            let mismatch =
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch))));
            return Err(self.unverified(mismatch, &self.recorder.snapshot().chain));
        }
        if self.accept_any {
            // Encrypted without verifying (the database modes `prefer`/`require`): a probe
            // then refuses to send a recoverable secret, so `approve` offers the certificate.
            if let Some((approvals, host, port)) = &self.endpoint {
                let chain = self.recorder.snapshot().chain;
                let unverified =
                    rustls::Error::General("the certificate is not verified (the TLS mode accepts any)".into());
                approvals.capture(|| candidate(&chain, host, *port, &unverified));
            }
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
            Err(err) => match self.unverified(err, &self.recorder.snapshot().chain) {
                rustls::Error::General(why) if why == TRUSTED_NEW => return Ok(ServerCertVerified::assertion()),
                err => return Err(err),
            },
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
pub(super) struct RecordingClientCert {
    pub(super) identity: Option<Arc<CertifiedKey>>,
    pub(super) recorder: Recorder,
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
    endpoint: Option<&(String, u16)>,
) -> Result<(Arc<ClientConfig>, Recorder), Failure> {
    let mut provider = provider();
    if let Some(first) = opts.key_share_first {
        // The same provider, its groups reordered: rustls sends a key share for the first.
        let mut reordered = (*provider).clone();
        reordered.kx_groups.sort_by_key(|group| group.name() != first);
        provider = Arc::new(reordered);
    }
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
        approved: endpoint
            .map(|(host, port)| trust.approvals.for_endpoint(ApprovalKind::Tls, host, *port))
            .unwrap_or_default(),
        endpoint: endpoint.map(|(host, port)| (trust.approvals.clone(), host.clone(), *port)),
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
