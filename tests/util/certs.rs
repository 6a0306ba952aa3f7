//! A throwaway PKI for one test: a trusted test CA and an untrusted one, server
//! certificates that are valid, expired, for the wrong host, from the untrusted CA or about
//! to expire, and client certificates from both CAs. Written to a temp dir as PEM.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A leaf certificate with its key, as PEM files and as rustls values.
#[derive(Clone)]
pub struct Leaf {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    pub fn sha256(&self) -> String {
        authprobe::connect::tls::sha256_fingerprint(&self.chain[0])
    }
}

pub struct Pki {
    /// Keeps the PEM files alive for the test's duration.
    _dir: tempfile::TempDir,
    /// The test CA's certificate: what `tls.ca` points at.
    pub ca_path: PathBuf,
    pub ca_der: CertificateDer<'static>,
    pub server: Leaf,
    pub expired: Leaf,
    pub wrong_host: Leaf,
    pub untrusted: Leaf,
    pub expiring_soon: Leaf,
    pub client: Leaf,
    pub rogue_client: Leaf,
    /// A client certificate from the test CA whose validity ended two days ago.
    pub expired_client: Leaf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationName, "authprobe tests");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca cert")
}

fn leaf(
    dir: &std::path::Path,
    file: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    validity_days: (i64, i64),
    client: bool,
) -> Leaf {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or(file));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(validity_days.0);
    params.not_after = now + time::Duration::days(validity_days.1);
    params.extended_key_usages =
        vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf cert");
    let cert_path = dir.join(format!("{file}.crt"));
    let key_path = dir.join(format!("{file}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Leaf { cert_path, key_path, chain: vec![cert.der().clone(), issuer.der().clone()], key_der: key.serialize_der() }
}

pub fn pki() -> Pki {
    authprobe::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let test_ca = ca("authprobe Test CA");
    let rogue_ca = ca("Rogue CA");
    let ca_path = d.join("ca.crt");
    let rogue_ca_path = d.join("rogue-ca.crt");
    std::fs::write(&ca_path, test_ca.pem()).expect("write ca");
    std::fs::write(&rogue_ca_path, rogue_ca.pem()).expect("write rogue ca");
    let local = ["localhost", "127.0.0.1"];
    Pki {
        ca_der: test_ca.der().clone(),
        server: leaf(d, "server", &test_ca, &local, (-1, 365), false),
        expired: leaf(d, "expired", &test_ca, &local, (-400, -35), false),
        wrong_host: leaf(d, "wrong-host", &test_ca, &["wrong.example.com"], (-1, 365), false),
        untrusted: leaf(d, "untrusted", &rogue_ca, &local, (-1, 365), false),
        expiring_soon: leaf(d, "expiring-soon", &test_ca, &local, (-1, 5), false),
        client: leaf(d, "client", &test_ca, &["authprobe-client"], (-1, 365), true),
        rogue_client: leaf(d, "rogue-client", &rogue_ca, &["rogue-client"], (-1, 365), true),
        expired_client: leaf(d, "expired-client", &test_ca, &["expired-client"], (-400, -2), true),
        ca_path,
        _dir: dir,
    }
}
