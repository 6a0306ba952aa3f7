//! What a probe saw on the wire beyond pass or fail: the address it reached, the
//! certificate chain presented, and the HTTP answer's shape and timing. `serve` renders
//! these as the blackbox exporter's `probe_*` metrics; they are not in the JSON report.

use std::net::SocketAddr;

/// At most this many certificates of a presented chain are kept (a hostile server can
/// send hundreds).
pub const CHAIN_CAP: usize = 10;

#[derive(Debug, Clone, Default)]
pub struct WireFacts {
    /// The address the probe's own connection reached; none through a proxy or a tunnel,
    /// where the other side resolved and connected.
    pub peer: Option<SocketAddr>,
    /// The presented chain, leaf first.
    pub chain: Vec<ChainCert>,
    pub http: Option<HttpFacts>,
}

/// One presented certificate, in the forms the blackbox exporter labels it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCert {
    pub not_after_unix: i64,
    /// Lowercase hex, no separators.
    pub sha256_hex: String,
    /// RFC 2253 order and form, as Go's `pkix.Name.String()`: "CN=host,O=Org".
    pub subject: String,
    pub issuer: String,
    /// The serial's bytes in lowercase hex, leading zero bytes dropped.
    pub serial_hex: String,
    pub dns_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpFacts {
    pub status: u16,
    /// 1.0, 1.1 or 2.0.
    pub version: f64,
    /// Content-Length, or -1 when the answer did not say.
    pub content_length: i64,
    /// Bytes of body read (authprobe reads at most 1 MiB; a ranged fetch of a signed link one).
    pub body_length: u64,
    pub last_modified_unix: Option<i64>,
    /// From the request sent to the answer's head, and from the head to the body's end.
    pub processing_secs: f64,
    pub transfer_secs: f64,
    pub tls: bool,
    /// `expect.body_contains` did not match.
    pub failed_due_to_regex: bool,
}

impl WireFacts {
    /// Caps what a server chose (names, chain length), as reports cap their free text.
    pub fn bound(&mut self) {
        self.chain.truncate(CHAIN_CAP);
        for cert in &mut self.chain {
            for text in [&mut cert.subject, &mut cert.issuer, &mut cert.serial_hex] {
                crate::model::redact::cap_in_place(text, super::report::bounds::LINE);
            }
            cert.dns_names.truncate(super::report::bounds::NAMES);
            for name in &mut cert.dns_names {
                crate::model::redact::cap_in_place(name, super::report::bounds::LINE);
            }
        }
    }
}

/// Go's `tls.VersionName` for rustls's names ("TLSv1.3" → "TLS 1.3").
pub fn go_tls_version(rustls_name: &str) -> String {
    match rustls_name.strip_prefix("TLSv") {
        Some(number) => format!("TLS {number}"),
        None => rustls_name.to_string(),
    }
}

/// The blackbox exporter's `probe_ip_addr_hash`: FNV-1a (32-bit) of the address's bytes
/// (4 for IPv4, 16 for IPv6).
pub fn ip_addr_hash(ip: &std::net::IpAddr) -> u32 {
    let bytes = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hashes_as_blackbox_makes_them() {
        assert_eq!(go_tls_version("TLSv1.3"), "TLS 1.3");
        // What blackbox_exporter 0.23 answers for 127.0.0.1.
        assert_eq!(ip_addr_hash(&"127.0.0.1".parse().unwrap()), 3_668_918_509);
    }
}
