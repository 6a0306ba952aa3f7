//! The class and hint of every TLS failure: handshake errors, alerts, and errors after the
//! handshake (a client certificate refused late).

use super::*;
use crate::model::advice::Fix;

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

pub(super) fn client_cert_missing() -> Failure {
    Failure::new(ErrorClass::TlsClientCert, "the server requires a client certificate and none is configured")
        .with_hint(crate::advice![Fix::ClientCertificate, " to a certificate the server trusts"])
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
                    .with_hint(crate::advice!["connect with a name the certificate covers, or ", Fix::ServerName])
            }
            CertificateError::Other(other) if other.0.downcast_ref::<ApprovalChanged>().is_some() => {
                let approved = other.0.downcast_ref::<ApprovalChanged>().map(|c| c.0.describe()).unwrap_or_default();
                let (issuer, from) = leaf
                    .as_ref()
                    .map(|l| (l.issuer.clone(), rfc3339(l.not_before)))
                    .unwrap_or_else(|| ("an unknown issuer".into(), "?".into()));
                Failure::new(
                    ErrorClass::TlsUntrusted,
                    format!("the certificate changed: approved {approved}, now presents {fp} (issuer {issuer}, valid from {from})"),
                )
                .with_hint(crate::advice![
                    "if the change is expected, verify the new certificate with the server's owner and approve it (`authprobe approve`), or ",
                    Fix::TrustIssuingCa,
                    "; otherwise someone may be intercepting the connection"
                ])
            }
            CertificateError::Other(other) if other.0.downcast_ref::<PinMismatch>().is_some() => Failure::new(
                ErrorClass::TlsUntrusted,
                format!("the certificate matches no pinned fingerprint: it has sha256 {fp}"),
            )
            .with_hint(crate::advice!["if the certificate changed on purpose, ", Fix::UpdatePin(fp)]),
            CertificateError::UnknownIssuer | CertificateError::BadSignature | CertificateError::BadEncoding | _ => {
                let issuer = leaf.as_ref().map(|l| l.issuer.clone()).unwrap_or_else(|| "an unknown issuer".into());
                let source = if opts.ca.is_some() { "tls.ca" } else { "the system trust store" };
                Failure::new(
                    ErrorClass::TlsUntrusted,
                    format!(
                        "the certificate is not trusted by {source} ({cert_err:?}): issued by {issuer}, sha256 {fp}"
                    ),
                )
                .with_hint(crate::advice![
                    Fix::TrustIssuingCa,
                    ", or ",
                    Fix::PinCertificate(fp),
                    ", or record an approval (who, when): `authprobe approve`"
                ])
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

pub(super) fn classify_alert(alert: AlertDescription, recording: &Recording, opts: &TlsOptions) -> Failure {
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
                .with_hint(crate::advice!["check the host name, or ", Fix::ServerName])
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
    pub(super) inner: S,
    pub(super) seen: Arc<Mutex<Option<rustls::Error>>>,
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

/// The credential release rule's refusal for a server whose certificate nothing vouched
/// for (sha256 `fingerprint`): `message` says what was not sent. The hint names each way
/// to verify the server, then the way to allow it anyway.
pub fn unverified_certificate_refusal(message: String, fingerprint: String) -> Failure {
    Failure::new(ErrorClass::TlsUntrusted, message).with_hint(
        crate::advice![
            "verify the server: ",
            Fix::TrustIssuingCa,
            ", or ",
            Fix::PinCertificate(fingerprint),
            ", or record an approval (who, when): `authprobe approve`; "
        ]
        .then(crate::advice!["or, to send it to an unverified server anyway, ", Fix::AllowUnverifiedPassword]),
    )
}
