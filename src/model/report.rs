//! The result model: what a run produced, in the shape of the JSON contract
//! (`--format json`). Every other format renders from these types.

use serde::Serialize;

use crate::model::advice::Dialect;
use crate::model::error::{ErrorClass, Failure, Stage};

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Schema version of this document.
    pub version: u32,
    /// When the run started, RFC 3339.
    pub started_at: String,
    /// Wall-clock duration of the whole run.
    pub duration_ms: u64,
    pub summary: Summary,
    /// Probes in config order.
    pub probes: Vec<ProbeReport>,
    /// Seconds since the Unix epoch at the start of the run (for Prometheus).
    #[serde(skip)]
    pub started_unix: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub warned: usize,
    pub failed: usize,
    /// Probes that never finished (Ctrl-C or --fail-fast).
    pub cancelled: usize,
}

impl Summary {
    /// Counts one more probe's outcome (a report written as it comes is summed this way).
    pub fn count(&mut self, probe: &ProbeReport) {
        self.total += 1;
        match probe.status {
            Status::Pass => self.passed += 1,
            Status::Warn => self.warned += 1,
            Status::Fail => self.failed += 1,
            Status::Cancelled => self.cancelled += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Cancelled => "cancelled",
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub name: String,
    pub kind: String,
    /// What was probed, without credentials.
    pub target: String,
    pub tags: Vec<String>,
    pub status: Status,
    pub duration_ms: u64,
    /// Exact duration, for Prometheus; JSON keeps whole milliseconds.
    #[serde(skip)]
    pub duration_secs: f64,
    pub attempts: u32,
    pub stages: Vec<StageReport>,
    pub error: Option<ErrorReport>,
    pub warnings: Vec<String>,
    // Boxed, as the other parts most probes lack: a report of a run of 100,000 probes is
    // small when they are absent.
    pub tls: Option<Box<TlsReport>>,
    pub host_key: Option<Box<HostKeyReport>>,
    /// The first of `credentials` (kept for reports of schema version 1, where a signed
    /// link was the only credential with a known end).
    pub credential: Option<Box<CredentialReport>>,
    /// Every credential whose end authprobe read from the credential itself: signed links,
    /// JWTs (bearer, OAuth2 and cloud access tokens), client certificates.
    pub credentials: Vec<CredentialReport>,
    /// Credential hygiene: what the credential can do beyond what a probe needs (a
    /// warning each, also among `warnings`), and what is worth knowing (information).
    pub findings: Vec<Finding>,
    /// With `--wait`: why a failing probe was not tried again (its failure cannot pass by
    /// waiting). Null otherwise.
    pub not_retried: Option<String>,
    /// The exact `authprobe approve` command when the probe failed on a certificate or host
    /// key an approval would make it trust. Null otherwise.
    pub approve: Option<String>,
    /// The wire-level facts `serve` renders as the blackbox exporter's metrics.
    #[serde(skip)]
    pub facts: Option<Box<crate::model::facts::WireFacts>>,
    /// Details for `-v`, one line each (stage timings are rendered from `stages`).
    #[serde(skip)]
    pub details: Vec<String>,
    /// Protocol and driver diagnostics for `-vv`, one line each.
    #[serde(skip)]
    pub diagnostics: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Ok,
    Fail,
    Skipped,
}

impl StageStatus {
    /// The JSON name (`ok`, `fail`, `skipped`), as every surface writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Ok => "ok",
            StageStatus::Fail => "fail",
            StageStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub name: Stage,
    pub status: StageStatus,
    pub duration_ms: u64,
    /// Exact duration, for Prometheus; JSON keeps whole milliseconds.
    #[serde(skip)]
    pub duration_secs: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorReport {
    pub stage: Stage,
    pub class: ErrorClass,
    pub message: String,
    pub hint: String,
}

impl ErrorReport {
    /// The failure as reported, its hint said in `dialect`.
    pub fn from_failure(failure: &Failure, fallback_stage: Stage, dialect: Dialect) -> Self {
        ErrorReport {
            stage: failure.stage.unwrap_or(fallback_stage),
            class: failure.class,
            message: failure.message.clone(),
            hint: failure.hint_or_default().render(dialect),
        }
    }
}

/// The server certificate as presented during the probe's handshake.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TlsReport {
    /// Negotiated protocol version; null when the handshake did not complete.
    pub version: Option<String>,
    pub subject: String,
    pub issuer: String,
    /// Subject alternative names (DNS names and IP addresses).
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub sha1: String,
    pub sha256: String,
    /// True when trust came from `tls.pin_sha256` rather than a CA.
    pub pinned: bool,
    /// True when the certificate passed verification (CA, pin or approval); false when it
    /// failed or verification was switched off.
    pub verified: bool,
    /// Trusted because an approval covers it (`approvals.toml`): who approved it and when.
    pub approved: Option<crate::model::approvals::ApprovedBy>,
    #[serde(skip)]
    pub not_after_unix: i64,
    /// The certificate's public key, base64 SubjectPublicKeyInfo (for `setup-tests`).
    #[serde(skip)]
    pub public_key: String,
    /// The public key's algorithm and size ("EC 256", "RSA 2048").
    #[serde(skip)]
    pub key: String,
}

/// A credential whose expiry authprobe read from the credential itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CredentialReport {
    /// What it is ("an S3 presigned URL (SigV4)").
    pub what: String,
    /// RFC 3339; null when only its age is known (an IAM access key).
    pub not_after: Option<String>,
    /// Negative once expired; null with `not_after`.
    pub seconds_left: Option<i64>,
    /// How long ago it was issued or made, where the credential or its service says
    /// (a JWT's `iat`, a certificate's start, a key's creation date); null otherwise.
    pub age_seconds: Option<i64>,
    #[serde(skip)]
    pub not_after_unix: Option<i64>,
}

/// A credential hygiene finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// A stable name (`pg_superuser`, `mysql_all_privileges`…): alert rules match on it.
    pub what: String,
    /// `warning` (the probe WARNs) or `info`.
    pub severity: &'static str,
    /// What it means and the narrower grant.
    pub hint: String,
}

/// The SSH host key a server presented.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostKeyReport {
    pub algorithm: String,
    /// `SHA256:` and unpadded base64, as `ssh-keygen -l` prints it.
    pub sha256: String,
    /// The `host:port` that presented the key (a tunnel's bastion, when that failed).
    pub host: String,
    /// True when the key matched `host_key`, `known_hosts` or an approval.
    pub verified: bool,
    /// The OpenSSH public key (`ALGORITHM BASE64`), for `setup-tests`.
    #[serde(skip)]
    pub public_key: String,
    /// Trusted because an approval covers it (`approvals.toml`): who approved it and when.
    pub approved: Option<crate::model::approvals::ApprovedBy>,
}

/// How much of each free-text field a report keeps: server texts (error messages, headers,
/// certificate names) are hostile until proven otherwise, and a report must stay small
/// enough to mail, page or post as a CI summary.
pub mod bounds {
    pub const MESSAGE: usize = 2_000;
    pub const HINT: usize = 1_000;
    pub const LINE: usize = 1_000;
    pub const LINES: usize = 100;
    pub const NAMES: usize = 50;
}

impl ProbeReport {
    /// A failed probe's report with nothing but its error (a probe that never ran).
    pub fn failed_without_run(name: &str, kind: &str, target: &str, error: ErrorReport) -> ProbeReport {
        ProbeReport {
            name: name.into(),
            kind: kind.into(),
            target: target.into(),
            tags: Vec::new(),
            status: Status::Fail,
            duration_ms: 0,
            duration_secs: 0.0,
            attempts: 0,
            stages: Vec::new(),
            error: Some(error),
            warnings: Vec::new(),
            tls: None,
            host_key: None,
            credential: None,
            credentials: Vec::new(),
            findings: Vec::new(),
            not_retried: None,
            approve: None,
            facts: Default::default(),
            details: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// Scrubs every free-text field of this probe's report (see [`RunReport::scrub_secrets`]).
    pub fn scrub_secrets(&mut self) {
        use crate::model::redact::scrub_in_place;
        // Not name, target, tags or hint: see `ProbeReport::scrub_free_text`.
        if let Some(error) = &mut self.error {
            scrub_in_place(&mut error.message);
        }
        for warning in &mut self.warnings {
            scrub_in_place(warning);
        }
        for line in self.details.iter_mut().chain(self.diagnostics.iter_mut()) {
            scrub_in_place(line);
        }
        if let Some(tls) = &mut self.tls {
            scrub_in_place(&mut tls.subject);
            scrub_in_place(&mut tls.issuer);
            for san in &mut tls.sans {
                scrub_in_place(san);
            }
        }
    }

    /// Scrubs the fields a server can influence with `scrubber` (the registry plus this
    /// probe's run-time secrets): the message, warnings and details, where a server's words
    /// and drivers' texts land. Name, kind, target and tags are the config's non-secret
    /// fields and the hint is authprobe's own wording (any server text in it was scrubbed
    /// where it was put in): masking them would hide ordinary words that happen to equal a
    /// short password ("wrong"), or a user name that equals its password.
    pub fn scrub_free_text(&mut self, scrubber: &crate::model::redact::Scrubber) {
        if let Some(error) = &mut self.error {
            scrubber.scrub_in_place(&mut error.message);
        }
        for line in self.warnings.iter_mut().chain(self.details.iter_mut()).chain(self.diagnostics.iter_mut()) {
            scrubber.scrub_in_place(line);
        }
    }

    /// Caps every free-text field and list (after scrubbing).
    pub fn bound_texts(&mut self) {
        use crate::model::redact::cap_in_place;
        if let Some(error) = &mut self.error {
            cap_in_place(&mut error.message, bounds::MESSAGE);
            cap_in_place(&mut error.hint, bounds::HINT);
        }
        for lines in [&mut self.warnings, &mut self.details, &mut self.diagnostics] {
            if lines.len() > bounds::LINES {
                let dropped = lines.len() - bounds::LINES;
                lines.truncate(bounds::LINES);
                lines.push(format!("({dropped} more lines not shown)"));
            }
            for line in lines.iter_mut() {
                cap_in_place(line, bounds::LINE);
            }
        }
        if let Some(facts) = self.facts.as_mut() {
            facts.bound();
        }
        if let Some(tls) = &mut self.tls {
            cap_in_place(&mut tls.subject, bounds::LINE);
            cap_in_place(&mut tls.issuer, bounds::LINE);
            tls.sans.truncate(bounds::NAMES);
            for san in &mut tls.sans {
                cap_in_place(san, bounds::LINE);
            }
        }
    }
}

impl RunReport {
    pub fn summarize(probes: &[ProbeReport]) -> Summary {
        let mut summary = Summary::default();
        for probe in probes {
            summary.count(probe);
        }
        summary
    }

    /// Scrubs every free-text field. Done once, before any format renders, so that no
    /// format can forget to.
    pub fn scrub_secrets(&mut self) {
        for probe in &mut self.probes {
            probe.scrub_secrets();
        }
    }

    /// The closing line of the table format, also printed to stderr with `--output`.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let mut line = format!("{} passed, {} failed", s.passed, s.failed);
        if s.warned > 0 {
            line.push_str(&format!(", {} warned", s.warned));
        }
        if s.cancelled > 0 {
            line.push_str(&format!(", {} cancelled", s.cancelled));
        }
        line
    }
}
