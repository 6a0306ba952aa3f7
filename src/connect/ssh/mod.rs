//! SSH for every kind that speaks it (the `sftp` probe, `[[tunnel]]` bastions, `inspect`):
//! the host-key policy (pins and `known_hosts`, mandatory: an unapproved key always
//! fails, with its fingerprint and the line that approves it), the credentials (password,
//! private key, agent), and the transport handshake and user authentication on top of
//! russh, with their failures classified.

mod callbacks;
mod credentials;
mod host_certificates;
mod host_keys;
pub mod known_hosts;
mod scan;
mod session;
mod sniff;

use callbacks::*;
pub use credentials::*;
use host_certificates::*;
pub use host_keys::*;
pub use scan::*;
pub use session::*;
pub use sniff::*;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use russh::client::{self, Handle};
use russh::keys::{
    Algorithm, EcdsaCurve, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use russh::{ChannelOpenFailure, MethodKind};

use crate::config::TableReader;
use crate::connect::net::BoxIo;
use crate::model::error::{ErrorClass, Failure, classify_io, describe_io, find_cause};
use crate::model::redact::Secret;
use crate::model::report::HostKeyReport;
use crate::model::stages::StageLog;
use known_hosts::{KnownHosts, Verdict};

pub const DEFAULT_PORT: u16 = 22;

/// How many connections to one SSH server may be logging in at once. OpenSSH starts
/// dropping new connections beyond 10 unauthenticated ones (MaxStartups 10:30:100), so more
/// probes than this against one server queue instead of being refused.
pub const LOGINS_PER_SERVER: usize = 8;

/// Admits connections to each SSH server at most [`LOGINS_PER_SERVER`] at a time (an
/// sftp probe's whole session, a tunnel's connection until it is logged in). One per run
/// (one per `serve` process), shared by every probe and tunnel.
#[derive(Default)]
pub struct LoginGate {
    per_server: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl LoginGate {
    pub async fn admit(&self, address: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut servers = match self.per_server.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            servers
                .entry(address.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(LOGINS_PER_SERVER)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

/// Who an SSH connection belongs to, for messages: the probe itself, or a tunnel.
#[derive(Debug, Clone)]
pub enum Role {
    Probe,
    Tunnel(String),
}

impl Role {
    /// Where the settings that fix a problem live.
    fn settings(&self) -> String {
        match self {
            Role::Probe => "the probe".into(),
            Role::Tunnel(name) => format!("[[tunnel]] `{name}`"),
        }
    }

    /// Prefixes a tunnel's failure with the tunnel's name, so it is never blamed on the target.
    pub fn label(&self, failure: Failure) -> Failure {
        match self {
            Role::Probe => failure,
            Role::Tunnel(name) => Failure { message: format!("tunnel `{name}`: {}", failure.message), ..failure },
        }
    }

    /// Prefixes a failure to reach the target through this connection: the tunnel worked,
    /// and what follows is what its far end found.
    fn via(&self, failure: Failure) -> Failure {
        match self {
            Role::Probe => failure,
            Role::Tunnel(name) => Failure { message: format!("via tunnel `{name}`: {}", failure.message), ..failure },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_accept_fingerprints_and_public_keys() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert_eq!(parse_pin(fp).unwrap(), Pin { algorithm: None, sha256: fp.into() });
        assert_eq!(
            parse_pin(&format!("ssh-ed25519 {fp}")).unwrap(),
            Pin { algorithm: Some("ssh-ed25519".into()), sha256: fp.into() }
        );
        let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINKDXRsnH3EkTIceVHujDgkybLokvjJpkGgyB0wjMTfV root@vm";
        let pin = parse_pin(public).unwrap();
        assert_eq!(pin.algorithm.as_deref(), Some("ssh-ed25519"));
        assert!(pin.sha256.starts_with("SHA256:") && pin.sha256.len() == 50, "{}", pin.sha256);
        assert!(parse_pin("SHA256:short").is_err());
        assert!(parse_pin("MD5:12:34").is_err());
        assert!(parse_pin("").is_err());
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // `ssh-keygen -l -E sha256` of the key in the known_hosts tests.
        let blob = base64::engine::general_purpose::STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAINKDXRsnH3EkTIceVHujDgkybLokvjJpkGgyB0wjMTfV")
            .unwrap();
        assert_eq!(sha256_fingerprint(&blob), "SHA256:Toz1v0I20ZMI9Ak7vlAnkxpe3I+ONtReRP5Jj27PLwM");
    }

    #[test]
    fn unknown_keys_fail_with_the_line_that_approves_them() {
        let blob = [0, 0, 0, 11].iter().copied().chain(*b"ssh-ed25519").chain([0, 0, 0, 1, 7]).collect::<Vec<u8>>();
        let failure =
            HostKeyPolicy::default().judge("h", 22, "ssh-ed25519", &blob, &Role::Tunnel("bastion".into())).unwrap_err();
        assert_eq!(failure.class, ErrorClass::HostKey);
        let fp = sha256_fingerprint(&blob);
        assert!(failure.message.contains(&fp), "{}", failure.message);
        assert!(
            failure.hint_or_default().to_string().contains(&format!("[[tunnel]] `bastion`: host_key = \"{fp}\"")),
            "{}",
            failure.hint_or_default().to_string()
        );
        let pinned = HostKeyPolicy { pins: vec![parse_pin(&fp).unwrap()], ..HostKeyPolicy::default() };
        assert_eq!(pinned.judge("h", 22, "ssh-ed25519", &blob, &Role::Probe), Ok("pinned by host_key".into()));
    }

    #[test]
    fn foreign_protocols_are_told_from_lines_before_the_banner() {
        assert!(!foreign(b"SSH-2.0-OpenSSH_9.2p1\r\n"));
        assert!(!foreign(b"Authorized users only\r\nSSH-2.0-OpenSSH_9.2p1\r\n"));
        assert!(!foreign(b"Authorized use"));
        assert!(foreign(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(foreign(&[0x16, 0x03, 0x03, 0x00, 0x40]));
        assert!(foreign(b"\x0a\x00\x00\x005.7.44\x00"));
    }

    #[test]
    fn channel_refusals_are_classified_from_the_servers_words() {
        let refused = classify_open_failure(&ChannelOpenFailure::ConnectFailed, "Connection refused", "db", 5432);
        assert_eq!(refused.class, ErrorClass::ConnectRefused);
        let dns = classify_open_failure(&ChannelOpenFailure::ConnectFailed, "Name or service not known", "db", 5432);
        assert_eq!(dns.class, ErrorClass::Dns);
        let prohibited = classify_open_failure(&ChannelOpenFailure::AdministrativelyProhibited, "", "db", 5432);
        assert_eq!(prohibited.class, ErrorClass::PermissionDenied);
    }
}
