//! The `tls` table of a probe: mode, CA bundle, client identity, pins, insecure.

use super::*;

/// How a database session negotiates TLS (libpq's names; drivers' spellings map onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
    /// SQL Server's TDS 8 (Encrypt=Strict): TLS before any TDS, verified as verify-full.
    Strict,
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
    /// The key-exchange group to offer a key share for first, for servers known to accept
    /// another than rustls' first by default (PostgreSQL up to 17 accepts only P-256 unless
    /// configured): the share they take is in the first ClientHello, with no retry.
    pub key_share_first: Option<rustls::NamedGroup>,
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
            .field("key_share_first", &self.key_share_first)
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
        Self::read_table(probe, default_mode, None)
    }

    /// As [`TlsOptions::read`], for a kind whose `tls.mode` has its own vocabulary (ftp:
    /// explicit, implicit, disable): `own_mode` reads the `mode` key from the `tls` table
    /// (reporting its own errors, `false` on one), and the options keep no libpq mode, so
    /// the server is verified in full.
    pub fn read_with_own_mode(
        probe: &TableReader<'_, '_>,
        own_mode: &mut dyn FnMut(&TableReader<'_, '_>) -> bool,
    ) -> Option<TlsOptions> {
        Self::read_table(probe, None, Some(own_mode))
    }

    fn read_table(
        probe: &TableReader<'_, '_>,
        default_mode: Option<TlsMode>,
        own_mode: Option<&mut dyn FnMut(&TableReader<'_, '_>) -> bool>,
    ) -> Option<TlsOptions> {
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
        if let Some(own_mode) = own_mode {
            ok &= own_mode(&table);
        }
        if modes && let Some(raw) = table.string("mode") {
            match parse_mode(&raw) {
                Some(mode) => opts.mode = Some(mode),
                None => {
                    table.error_at(
                        "mode",
                        format!("unknown TLS mode `{raw}`; use disable, prefer, require, verify-ca or verify-full (mssql also: strict)"),
                    );
                    ok = false;
                }
            }
        }
        if opts.mode.is_none() {
            // A CA or a pin given means the user wants the server verified: without a
            // written mode they imply verify-full (as libpq does for sslrootcert=system),
            // instead of the `prefer` that would ignore them. `prefer` stays for a probe
            // that says nothing about trust.
            let trust_given = table.has("ca") || table.has("pin_sha256");
            opts.mode = match default_mode {
                Some(TlsMode::Prefer) if trust_given => Some(TlsMode::VerifyFull),
                other => other,
            };
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
        TlsMode::Strict => "strict",
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
        "strict" => TlsMode::Strict,
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

pub(super) fn load_identity(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
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
