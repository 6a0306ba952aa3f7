//! Approved certificates and SSH host keys, as records: what was approved (names,
//! fingerprints, the public key, the certificate), for which `host:port`, by whom and when.
//! A probe trusts what an approval covers exactly as it trusts a pin; when a server shows
//! something else where an approval exists, the failure names the approval it no longer
//! matches. The file is read and written by `config::approvals`.

use std::sync::Mutex;

use serde::Serialize;

use crate::model::glob::{self, Wildcards};

/// What an approval is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalKind {
    Tls,
    Ssh,
}

impl ApprovalKind {
    pub fn name(self) -> &'static str {
        match self {
            ApprovalKind::Tls => "tls",
            ApprovalKind::Ssh => "ssh",
        }
    }

    pub fn parse(raw: &str) -> Option<ApprovalKind> {
        match raw {
            "tls" => Some(ApprovalKind::Tls),
            "ssh" => Some(ApprovalKind::Ssh),
            _ => None,
        }
    }
}

/// One approved certificate or host key. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    #[serde(rename = "type")]
    pub kind: ApprovalKind,
    /// The `host:port` it was seen at; a hand-written entry may use `*` and `?`.
    #[serde(rename = "for")]
    pub endpoint: String,
    /// The certificate's subject DN, or the SSH key's algorithm.
    pub name: String,
    /// TLS only: colon hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// TLS: colon hex of the certificate; SSH: `SHA256:` and base64, as `ssh-keygen -l`.
    pub sha256: String,
    /// Base64 SubjectPublicKeyInfo, or the OpenSSH public key (`ALGORITHM BASE64`).
    pub public_key: String,
    /// TLS only: the certificate, base64 DER, so the record can be shown and re-checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoded_cert: Option<String>,
    /// TLS only: RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    pub validated_by: String,
    /// RFC 3339.
    pub validated_date: String,
}

/// Who approved what a probe trusted, for reports (`tls.approved`, `host_key.approved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedBy {
    pub by: String,
    pub date: String,
}

/// `host:port` as approvals name it (`[::1]:22` for IPv6).
pub fn endpoint_name(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Whether `raw` is `bytes` bytes in colon-separated hex.
pub fn colon_hex(raw: &str, bytes: usize) -> bool {
    let parts: Vec<&str> = raw.split(':').collect();
    parts.len() == bytes && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Approval {
    /// Whether this approval is for `host:port`.
    pub fn covers(&self, kind: ApprovalKind, host: &str, port: u16) -> bool {
        let endpoint = endpoint_name(host, port);
        self.kind == kind
            && (self.endpoint.eq_ignore_ascii_case(&endpoint)
                || glob::matches(
                    &self.endpoint.to_ascii_lowercase(),
                    &endpoint.to_ascii_lowercase(),
                    Wildcards::StarAndQuestion,
                ))
    }

    pub fn approved_by(&self) -> ApprovedBy {
        ApprovedBy { by: self.validated_by.clone(), date: self.validated_date.clone() }
    }

    /// "SHA-256 AA:… by alice on 2026-12-06", for messages about a change.
    pub fn describe(&self) -> String {
        let day = self.validated_date.get(..10).unwrap_or(&self.validated_date);
        match self.kind {
            ApprovalKind::Tls => format!("SHA-256 {} by {} on {day}", self.sha256, self.validated_by),
            ApprovalKind::Ssh => format!("{} by {} on {day}", self.sha256, self.validated_by),
        }
    }
}

/// What `authprobe approve` saw where a probe would not trust the server: the record to
/// write, the chain's top certificate for `--ca-of-chain`, and what to show before asking.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub approval: Approval,
    /// TLS with a chain of two or more: the record of its top certificate.
    pub top_of_chain: Option<Approval>,
    /// `(label, value)` lines: subject, issuer, validity, fingerprints, key.
    pub shown: Vec<(String, String)>,
    /// What the probe said it would have done instead (the refusal's message).
    pub refusal: String,
}

/// The approvals a run trusts: the file's entries, and those `--trust-new` adds while it
/// runs (kept apart, to be written to the file when the run ends).
#[derive(Debug, Default)]
pub struct Approvals {
    entries: Mutex<Vec<Approval>>,
    /// `--trust-new`: what is seen for the first time at an endpoint without approvals is
    /// approved and recorded; a change never is.
    trust_new: bool,
    added: Mutex<Vec<Approval>>,
    /// `approve`: what the servers presented that the probes refused, kept to be shown.
    capturing: bool,
    captured: Mutex<Vec<Candidate>>,
}

impl Approvals {
    pub fn new(entries: Vec<Approval>) -> Approvals {
        Approvals { entries: Mutex::new(entries), ..Approvals::default() }
    }

    /// The same entries, approving first-seen certificates and keys as the run goes.
    pub fn trusting_new(self) -> Approvals {
        Approvals { trust_new: true, ..self }
    }

    pub fn trusts_new(&self) -> bool {
        self.trust_new
    }

    /// The same entries, keeping what a refused server presented (`authprobe approve`).
    pub fn capturing(self) -> Approvals {
        Approvals { capturing: true, ..self }
    }

    /// Keeps a refused certificate or host key, when capturing; the probe still fails.
    pub fn capture(&self, candidate: impl FnOnce() -> Candidate) {
        if self.capturing {
            let candidate = candidate();
            let mut captured = Self::lock(&self.captured);
            let seen = captured.iter().any(|c| {
                c.approval.kind == candidate.approval.kind
                    && c.approval.endpoint == candidate.approval.endpoint
                    && c.approval.sha256 == candidate.approval.sha256
            });
            if !seen {
                captured.push(candidate);
            }
        }
    }

    pub fn take_captured(&self) -> Vec<Candidate> {
        std::mem::take(&mut *Self::lock(&self.captured))
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn all(&self) -> Vec<Approval> {
        Self::lock(&self.entries).clone()
    }

    /// The approvals of this kind for `host:port`.
    pub fn for_endpoint(&self, kind: ApprovalKind, host: &str, port: u16) -> Vec<Approval> {
        Self::lock(&self.entries).iter().filter(|a| a.covers(kind, host, port)).cloned().collect()
    }

    /// `--trust-new`: approves `approval` when nothing is approved for its endpoint yet (so
    /// a changed certificate or key is never approved this way). True when it was.
    pub fn approve_first_seen(&self, approval: Approval, host: &str, port: u16) -> bool {
        if !self.trust_new {
            return false;
        }
        let mut entries = Self::lock(&self.entries);
        if entries.iter().any(|a| a.covers(approval.kind, host, port)) {
            // Another probe of this run approved it a moment ago: the same one is fine.
            return entries.iter().any(|a| a.covers(approval.kind, host, port) && a.sha256 == approval.sha256);
        }
        entries.push(approval.clone());
        Self::lock(&self.added).push(approval);
        true
    }

    /// What `--trust-new` approved during the run, to be written to the file.
    pub fn take_added(&self) -> Vec<Approval> {
        std::mem::take(&mut *Self::lock(&self.added))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(endpoint: &str, sha256: &str) -> Approval {
        Approval {
            kind: ApprovalKind::Tls,
            endpoint: endpoint.into(),
            name: "CN=db".into(),
            sha1: None,
            sha256: sha256.into(),
            public_key: String::new(),
            encoded_cert: None,
            not_after: None,
            validated_by: "alice".into(),
            validated_date: "2026-12-06T10:12:00Z".into(),
        }
    }

    #[test]
    fn approvals_cover_their_endpoint_and_globs() {
        assert!(tls("db.example.com:5432", "AA").covers(ApprovalKind::Tls, "DB.example.com", 5432));
        assert!(!tls("db.example.com:5432", "AA").covers(ApprovalKind::Tls, "db.example.com", 5433));
        assert!(!tls("db.example.com:5432", "AA").covers(ApprovalKind::Ssh, "db.example.com", 5432));
        assert!(tls("*.example.com:443", "AA").covers(ApprovalKind::Tls, "api.example.com", 443));
        assert!(tls("[::1]:22", "AA").covers(ApprovalKind::Tls, "::1", 22));
        assert_eq!(tls("h:1", "AA:BB").describe(), "SHA-256 AA:BB by alice on 2026-12-06");
    }

    #[test]
    fn trust_new_approves_the_first_seen_and_never_a_change() {
        let approvals = Approvals::new(vec![tls("old:443", "AA")]).trusting_new();
        assert!(approvals.approve_first_seen(tls("new:443", "BB"), "new", 443));
        assert!(approvals.approve_first_seen(tls("new:443", "BB"), "new", 443), "the same one again");
        assert!(!approvals.approve_first_seen(tls("new:443", "CC"), "new", 443), "a change");
        assert!(!approvals.approve_first_seen(tls("old:443", "DD"), "old", 443), "a change");
        assert_eq!(approvals.take_added().len(), 1);
        assert!(!Approvals::new(vec![]).approve_first_seen(tls("x:1", "AA"), "x", 1), "only with --trust-new");
    }
}
