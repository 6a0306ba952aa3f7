//! What a certificate says, for reports and `inspect`: names, validity, key, fingerprints,
//! and the config line that pins it.

use super::*;

pub fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1".into(),
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1.0".into(),
        other => format!("{other:?}"),
    }
}

/// A presented certificate as the blackbox exporter labels it (Go's forms).
pub fn chain_cert(der: &[u8]) -> crate::model::facts::ChainCert {
    let sha256_hex: String = sha256_fingerprint(der).chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
    let mut out = crate::model::facts::ChainCert {
        not_after_unix: 0,
        sha256_hex,
        subject: String::new(),
        issuer: String::new(),
        serial_hex: String::new(),
        dns_names: Vec::new(),
    };
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        out.not_after_unix = cert.validity().not_after.timestamp();
        out.subject = go_name(cert.subject());
        out.issuer = go_name(cert.issuer());
        let serial = cert.raw_serial();
        let first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
        out.serial_hex = serial[first..].iter().map(|b| format!("{b:02x}")).collect();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                    out.dns_names.push(d.to_string());
                }
            }
        }
    }
    out
}

/// A distinguished name as Go's `pkix.Name.String()` writes it (and so blackbox labels it):
/// the standard attributes in Go's fixed order, each type's values as one RDN, written last
/// to first ("CN=host,O=Org"); other attributes, by dotted OID, at the end.
fn go_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    // Go's ToRDNSequence order, by the last arc of 2.5.4.x and its name.
    const ORDER: [(u64, &str); 9] = [
        (6, "C"),
        (8, "ST"),
        (7, "L"),
        (9, "STREET"),
        (17, "POSTALCODE"),
        (10, "O"),
        (11, "OU"),
        (3, "CN"),
        (5, "SERIALNUMBER"),
    ];
    let standard = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| -> Option<u64> {
        let arcs: Vec<u64> = attr.attr_type().iter()?.collect();
        match arcs.as_slice() {
            [2, 5, 4, last] if ORDER.iter().any(|(n, _)| n == last) => Some(*last),
            _ => None,
        }
    };
    let value = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| go_escape(attr.as_str().unwrap_or_default());
    let mut sequence: Vec<String> = name
        .iter_attributes()
        .filter(|attr| standard(attr).is_none())
        .map(|attr| format!("{}={}", attr.attr_type().to_id_string(), value(attr)))
        .collect();
    for (arc, key) in ORDER {
        let values: Vec<String> = name
            .iter_attributes()
            .filter(|attr| standard(attr) == Some(arc))
            .map(|attr| format!("{key}={}", value(attr)))
            .collect();
        if !values.is_empty() {
            sequence.push(values.join("+"));
        }
    }
    sequence.reverse();
    sequence.join(",")
}

/// RFC 2253 escaping, as Go's `pkix.Name.String()` applies it.
fn go_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
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

pub(super) fn non_empty(s: String) -> String {
    if s.is_empty() { "(empty)".into() } else { s }
}

pub(super) fn key_description(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
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

/// A certificate's public key, base64 SubjectPublicKeyInfo.
pub fn spki_base64(der: &[u8]) -> String {
    use base64::Engine;
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| base64::engine::general_purpose::STANDARD.encode(cert.tbs_certificate.subject_pki.raw))
        .unwrap_or_default()
}

/// The approval record of a certificate seen at `host:port`.
pub fn approval_for(der: &[u8], host: &str, port: u16, by: &str) -> crate::model::approvals::Approval {
    use base64::Engine;
    let info = cert_info(der);
    let public_key = spki_base64(der);
    crate::model::approvals::Approval {
        kind: crate::model::approvals::ApprovalKind::Tls,
        endpoint: crate::model::approvals::endpoint_name(host, port),
        name: info.subject,
        sha1: Some(info.sha1),
        sha256: info.sha256,
        public_key,
        encoded_cert: Some(base64::engine::general_purpose::STANDARD.encode(der)),
        not_after: Some(rfc3339(info.not_after)),
        validated_by: by.to_string(),
        validated_date: rfc3339(now_unix()),
    }
}

// One clock and one date format for certificates and every other credential's end.
pub use crate::model::expiry::{now_unix, rfc3339};

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
        approved: recording.approved.clone(),
        public_key: spki_base64(leaf),
        key: info.key,
        not_after_unix: info.not_after,
    }
}

pub use crate::model::advice::pin_line;
