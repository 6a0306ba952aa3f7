//! Which host keys are approved: pinned fingerprints and `known_hosts`, the fingerprint
//! and config line shown for a key nobody approved, and the algorithms asked of the server.

use super::*;
use crate::model::advice::Fix;
use crate::model::approvals::{Approval, ApprovalKind, Approvals, ApprovedBy, Candidate, endpoint_name};

/// A host key as `ssh-keygen -l` shows it: `SHA256:` and unpadded base64.
pub fn sha256_fingerprint(blob: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, blob);
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()))
}

pub use crate::model::advice::host_key_line;

/// One approved key: its fingerprint, and optionally the algorithm it was pinned with
/// (`"ssh-ed25519 SHA256:…"`), which then is the only one asked of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pin {
    pub(super) algorithm: Option<String>,
    pub(super) sha256: String,
}

/// How a server's host key is approved: pinned fingerprints, a `known_hosts` file, or
/// (when neither is configured) nothing, which fails every key with the line to add.
#[derive(Debug, Clone, Default)]
pub struct HostKeyPolicy {
    pub(super) pins: Vec<Pin>,
    pub(super) known_hosts: Option<Arc<KnownHosts>>,
    /// Accept any key without judging it: only for `inspect`, which shows keys and
    /// authenticates nothing.
    pub(super) show_only: bool,
}

/// Parses `SHA256:…`, `ALGORITHM SHA256:…`, or a public key line `ALGORITHM BASE64 [comment]`.
pub(super) fn parse_pin(raw: &str) -> Result<Pin, String> {
    let fields: Vec<&str> = raw.split_whitespace().collect();
    let (algorithm, value) = match fields.as_slice() {
        [fingerprint] => (None, *fingerprint),
        [algorithm, value, ..] => (Some(algorithm.to_string()), *value),
        [] => return Err("empty host key".into()),
    };
    if let Some(b64) = value.strip_prefix("SHA256:") {
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64.trim_end_matches('='));
        return match decoded {
            Ok(bytes) if bytes.len() == 32 => {
                Ok(Pin { algorithm, sha256: format!("SHA256:{}", b64.trim_end_matches('=')) })
            }
            _ => Err(format!("`{value}` is not a SHA256 fingerprint (SHA256: and 43 base64 characters)")),
        };
    }
    if value.starts_with("MD5:") || value.contains(':') && value.len() == 47 {
        return Err(
            "MD5 fingerprints are not accepted: use the SHA256 one (`ssh-keygen -l -E sha256 -f KEY.pub`)".into()
        );
    }
    // A public key as in known_hosts or *.pub: pin exactly that key.
    if let Some(algorithm) = algorithm
        && let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(value)
        && known_hosts::blob_algorithm(&blob) == Some(algorithm.as_str())
    {
        return Ok(Pin { algorithm: Some(algorithm), sha256: sha256_fingerprint(&blob) });
    }
    Err(format!("`{raw}` is not a host key: write \"SHA256:…\" as `ssh-keygen -lf` prints it, or the public key line"))
}

impl HostKeyPolicy {
    /// Reads `host_key` (a string or a list, for rotations) and `known_hosts`.
    pub fn read(t: &TableReader<'_, '_>) -> Option<HostKeyPolicy> {
        let mut ok = true;
        let mut policy = HostKeyPolicy::default();
        let raw_pins: Vec<String> = match t.get("host_key").map(|v| v.as_str().is_some()) {
            Some(true) => t.string("host_key").into_iter().collect(),
            Some(false) => t.string_list("host_key").unwrap_or_default(),
            None => Vec::new(),
        };
        for raw in raw_pins {
            match parse_pin(&raw) {
                Ok(pin) => policy.pins.push(pin),
                Err(why) => {
                    t.error_at("host_key", why);
                    ok = false;
                }
            }
        }
        if let Some((path, bytes)) = t.file_bytes("known_hosts") {
            match KnownHosts::parse(&path, &String::from_utf8_lossy(&bytes)) {
                Ok(file) => policy.known_hosts = Some(Arc::new(file)),
                Err(why) => {
                    t.error_at("known_hosts", format!("{}: {why}", path.display()));
                    ok = false;
                }
            }
        } else if t.has("known_hosts") {
            ok = false;
        }
        ok.then_some(policy)
    }

    /// The host-key algorithms to ask for, approved ones first (as `ssh` orders them by
    /// known_hosts), so that a server with several keys presents one that can be checked.
    pub(super) fn preferred_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let mut named: Vec<String> = self.pins.iter().filter_map(|p| p.algorithm.clone()).collect();
        if let Some(file) = &self.known_hosts {
            named.extend(file.algorithms_for(host, port));
        }
        let mut preferred: Vec<Algorithm> = Vec::new();
        for name in named {
            for algorithm in negotiable(&name) {
                if !preferred.contains(&algorithm) {
                    preferred.push(algorithm);
                }
            }
        }
        let pinned_algorithm_only = !self.pins.is_empty() && self.pins.iter().all(|p| p.algorithm.is_some());
        if !pinned_algorithm_only {
            for algorithm in russh::Preferred::DEFAULT.key.iter() {
                if !preferred.contains(algorithm) {
                    preferred.push(algorithm.clone());
                }
            }
        }
        preferred
    }
}

/// The negotiation names under which a key type is asked for.
pub(super) fn negotiable(key_type: &str) -> Vec<Algorithm> {
    match key_type {
        "ssh-rsa" | "rsa-sha2-256" | "rsa-sha2-512" => {
            vec![Algorithm::Rsa { hash: Some(HashAlg::Sha512) }, Algorithm::Rsa { hash: Some(HashAlg::Sha256) }]
        }
        "ssh-ed25519" => vec![Algorithm::Ed25519],
        "ecdsa-sha2-nistp256" => vec![Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 }],
        "ecdsa-sha2-nistp384" => vec![Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 }],
        "ecdsa-sha2-nistp521" => vec![Algorithm::Ecdsa { curve: EcdsaCurve::NistP521 }],
        _ => Vec::new(),
    }
}

/// A key the server presented, and what the policy made of it.
#[derive(Debug, Clone)]
pub(super) struct Presented {
    pub(super) algorithm: String,
    pub(super) sha256: String,
    pub(super) blob: Vec<u8>,
    /// How the key was approved, or why not.
    pub(super) verdict: Result<String, Failure>,
    /// Approved by an entry of the approvals file: who and when.
    pub(super) approved: Option<ApprovedBy>,
    /// The host certificate the key came in, when the server presented one.
    pub(super) certificate: Option<HostCertificate>,
}

/// The approval record of a host key seen at `host:port`.
pub fn approval_for_key(host: &str, port: u16, algorithm: &str, blob: &[u8], by: &str) -> Approval {
    Approval {
        kind: ApprovalKind::Ssh,
        endpoint: endpoint_name(host, port),
        name: algorithm.to_string(),
        sha1: None,
        sha256: sha256_fingerprint(blob),
        public_key: format!("{algorithm} {}", base64::engine::general_purpose::STANDARD.encode(blob)),
        encoded_cert: None,
        not_after: None,
        validated_by: by.to_string(),
        validated_date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    }
}

impl HostKeyPolicy {
    /// [`HostKeyPolicy::judge`], with the approvals file: an approved key is trusted; a key
    /// other than the approved one fails naming who approved which; under `--trust-new` a
    /// key seen for the first time (no pin, not in known_hosts, nothing approved) is
    /// approved and recorded.
    pub(super) fn judge_approved(
        &self,
        approvals: &Approvals,
        host: &str,
        port: u16,
        algorithm: &str,
        blob: &[u8],
        role: &Role,
    ) -> (Result<String, Failure>, Option<ApprovedBy>) {
        if self.show_only {
            return (self.judge(host, port, algorithm, blob, role), None);
        }
        let sha256 = sha256_fingerprint(blob);
        let here = approvals.for_endpoint(ApprovalKind::Ssh, host, port);
        if let Some(approval) = here.iter().find(|a| a.sha256 == sha256) {
            let day = approval.validated_date.get(..10).unwrap_or(&approval.validated_date);
            return (Ok(format!("approved by {} on {day}", approval.validated_by)), Some(approval.approved_by()));
        }
        let failure = match self.judge(host, port, algorithm, blob, role) {
            Ok(how) => return (Ok(how), None),
            Err(failure) => failure,
        };
        let revoked = failure.message.contains("@revoked");
        if !revoked {
            approvals.capture(|| Candidate {
                approval: approval_for_key(host, port, algorithm, blob, ""),
                top_of_chain: None,
                shown: vec![("key type".into(), algorithm.to_string()), ("SHA-256".into(), sha256.clone())],
                refusal: failure.message.clone(),
            });
        }
        if let (Some(approval), false) = (here.first(), revoked) {
            let changed = Failure::new(
                ErrorClass::HostKey,
                format!(
                    "the host key of {} changed: approved {} {}, now presents {algorithm} {sha256}",
                    endpoint_name(host, port),
                    approval.name,
                    approval.describe()
                ),
            )
            .with_hint("someone may be intercepting the connection, or the server was rebuilt: verify the new key with the server's owner, then approve it (`authprobe approve`)");
            return (Err(changed), None);
        }
        let first_seen = self.pins.is_empty()
            && self
                .known_hosts
                .as_ref()
                .is_none_or(|file| matches!(file.verdict(host, port, algorithm, blob), Verdict::Unknown));
        if first_seen && approvals.trusts_new() {
            let approval = approval_for_key(host, port, algorithm, blob, "trust-new");
            if approvals.approve_first_seen(approval.clone(), host, port) {
                return (Ok("approved as first seen (--trust-new)".into()), Some(approval.approved_by()));
            }
        }
        (Err(failure), None)
    }
}

impl HostKeyPolicy {
    pub fn judge(&self, host: &str, port: u16, algorithm: &str, blob: &[u8], role: &Role) -> Result<String, Failure> {
        if self.show_only {
            return Ok("shown, not judged".into());
        }
        let sha256 = sha256_fingerprint(blob);
        let approve = Fix::ApproveHostKey { fingerprint: sha256.clone(), holder: role.settings() };
        let known_line = known_hosts::entry_line(host, port, algorithm, blob);
        if self.pins.iter().any(|p| p.sha256 == sha256) {
            return Ok("pinned by host_key".into());
        }
        if let Some(file) = &self.known_hosts {
            let path = file.path.display();
            let name = known_hosts::host_entry_name(host, port);
            match file.verdict(host, port, algorithm, blob) {
                Verdict::Trusted(line) => return Ok(format!("listed in {path} line {line}")),
                Verdict::Revoked(line) => {
                    return Err(Failure::new(
                        ErrorClass::HostKey,
                        format!("the server presented {algorithm} {sha256}, which {path} line {line} marks @revoked"),
                    )
                    .with_hint("a revoked key must never be accepted: this server (or whoever answers for it) is not to be trusted; ask its owner"));
                }
                Verdict::Changed(lines) => {
                    let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    return Err(Failure::new(
                        ErrorClass::HostKey,
                        format!(
                            "the host key of {name} has CHANGED: the server presented {algorithm} {sha256}, but {path} line {} holds another {algorithm} key",
                            lines.join(", ")
                        ),
                    )
                    .with_hint(crate::advice![
                        format!("someone may be intercepting the connection, or the server was rebuilt: verify the new key with its owner, then run `ssh-keygen -R '{name}' -f {path}` and add `{known_line}` (or "),
                        approve,
                        ")"
                    ]));
                }
                Verdict::OtherAlgorithms(known) if self.pins.is_empty() => {
                    return Err(Failure::new(
                        ErrorClass::HostKey,
                        format!(
                            "{path} lists {name} only with {} keys, but the server presented {algorithm} {sha256}",
                            known.join(", ")
                        ),
                    )
                    .with_hint(crate::advice![
                        format!("the server no longer offers the known key type: verify the new key with its owner, then add `{known_line}` to {path} (or "),
                        approve,
                        ")"
                    ]));
                }
                Verdict::OtherAlgorithms(_) | Verdict::Unknown => {}
            }
        }
        let (message, hint) = if !self.pins.is_empty() {
            (
                format!("the server presented {algorithm} {sha256}, which matches no pinned host_key"),
                crate::advice![
                    "if the key changed on purpose (server rebuilt), verify it with the server's owner, then ",
                    approve,
                    "; otherwise someone may be intercepting the connection"
                ],
            )
        } else if let Some(file) = &self.known_hosts {
            (
                format!(
                    "{} is not in {}; the server presented {algorithm} {sha256}",
                    known_hosts::host_entry_name(host, port),
                    file.path.display()
                ),
                crate::advice![
                    format!(
                        "verify the fingerprint with the server's owner (`ssh-keygen -lf` on its host key), then add `{known_line}` to {}, or ",
                        file.path.display()
                    ),
                    approve,
                    ", or record an approval (who, when): `authprobe approve`",
                ],
            )
        } else {
            (
                format!(
                    "the server's host key is not approved: it presented {algorithm} {sha256} and no host_key or known_hosts is configured"
                ),
                crate::advice![
                    "verify the fingerprint with the server's owner (`ssh-keygen -lf` on its host key), then ",
                    approve,
                    ", or record an approval (who, when): `authprobe approve`",
                ],
            )
        };
        Err(Failure::new(ErrorClass::HostKey, message).with_hint(hint))
    }
}
