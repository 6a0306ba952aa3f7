//! `authprobe inspect TARGET`: connect, perform the protocol's own TLS upgrade, and print
//! the certificate chain the server presents, whether a probe would trust it, and the
//! config line that pins it; for SSH (`sftp://`, `ssh://`), every host key the server has
//! and the lines that approve them. Nothing is authenticated.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use url::Url;

use crate::connect::context::{ProbeContext, Shared};
use crate::connect::dial;
use crate::connect::net::Record;
use crate::connect::proxy::{ProxyPolicy, Traffic};
use crate::connect::ssh::{self, known_hosts::KnownHosts};
use crate::connect::tls::{self, Presented, TlsOptions};
use crate::model::approvals::{Approval, ApprovalKind};
use crate::model::error::{ErrorClass, Failure};
use crate::probes::{self, Inspect, InspectHow};

/// Where `inspect` goes for a target URL, and how: from the kind registry. A kind whose
/// requests go to another endpoint (s3) is resolved to that endpoint first.
fn endpoint(url: &Url) -> Result<(String, u16, &'static Inspect), Failure> {
    let config = |why: String| Failure::new(ErrorClass::Config, why);
    let Some((kind, inspect)) = probes::kind_for_inspect(url.scheme()) else {
        let schemes = probes::KINDS.iter().filter_map(|k| k.inspect.as_ref()).flat_map(|i| i.schemes.iter().copied());
        return Err(config(format!(
            "inspect supports {} targets, not {}://",
            probes::scheme_list(schemes),
            url.scheme()
        )));
    };
    if let InspectHow::Endpoint(resolve) = inspect.how {
        return endpoint(&resolve(url).map_err(config)?);
    }
    let host = url.host_str().ok_or_else(|| config("the target has no host".into()))?;
    let first = inspect.tls_first.iter().find(|(scheme, _)| *scheme == url.scheme()).map(|(_, port)| *port);
    let port = url.port().or(first).or(kind.default_port).or_else(|| url.port_or_known_default());
    let port = port.ok_or_else(|| config(format!("{url} names no port")))?;
    Ok((host.to_string(), port, inspect))
}

/// What the verdict is judged against: a CA bundle for TLS, a known_hosts file for SSH.
#[derive(Default)]
pub struct Trust {
    pub ca: Option<Arc<RootCertStore>>,
    pub known_hosts: Option<KnownHosts>,
    /// The approvals file's entries (`--approvals`, default ./approvals.toml).
    pub approvals: Vec<Approval>,
}

/// What the approvals say of a fingerprint seen at `host:port`: approved (by whom, when),
/// changed (another one is approved), or nothing.
fn approval_verdict(
    approvals: &[Approval],
    kind: ApprovalKind,
    host: &str,
    port: u16,
    sha256: &str,
) -> Option<(bool, String)> {
    let here: Vec<&Approval> = approvals.iter().filter(|a| a.covers(kind, host, port)).collect();
    if let Some(a) = here.iter().find(|a| a.sha256 == sha256) {
        return Some((true, format!("approved by {} on {}", a.validated_by, a.validated_date)));
    }
    here.first().map(|a| (false, format!("NOT the approved one: {} is approved for {}", a.describe(), a.endpoint)))
}

/// Connects and returns the report text.
/// What `inspect` shows, and whether a probe would trust it: the TLS chain verified
/// against the CA bundle or the system store, or the SSH key the probe would negotiate
/// approved by known_hosts. `authprobe inspect` exits 0 when it would, 1 when not.
pub struct Inspection {
    pub text: String,
    pub verified: bool,
}

/// `proxy` is used for TLS targets; SSH host keys are scanned directly.
pub async fn inspect(
    target: &str,
    trust: Trust,
    proxy: Arc<ProxyPolicy>,
    timeout: Duration,
) -> Result<Inspection, Failure> {
    let url = crate::surface::check::parse_target_url(target).map_err(|why| Failure::new(ErrorClass::Config, why))?;
    let (host, port, inspect) = endpoint(&url)?;
    let protocol = inspect.label;
    let upgrade = match inspect.how {
        InspectHow::Tls(upgrade) => upgrade,
        _ => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            return inspect_ssh(host, port, trust.known_hosts, &trust.approvals, timeout).await;
        }
    };
    let ca = trust.ca;
    let shared = Arc::new(Shared::default());
    let ctx = ProbeContext::new(shared.clone(), 0, timeout).with_proxy(proxy);
    let traffic = if protocol == "https" { Traffic::Https } else { Traffic::Other };
    let work = async {
        let tcp = dial::connect(&ctx, &host, port, traffic, Record::Quietly).await?.stream;
        // Everything is accepted here: the verdict is judged below, against the chain.
        let accept_all = TlsOptions { insecure: true, ..TlsOptions::default() };
        if inspect.tls_first.iter().any(|(scheme, _)| *scheme == url.scheme()) {
            let hs = tls::handshake(&ctx, &ctx.shared.trust, tcp, &accept_all, &host, &[], false).await?;
            return Ok(hs.presented());
        }
        upgrade(&ctx, tcp, &accept_all, &host)
            .await?
            .ok_or_else(|| Failure::new(ErrorClass::TlsHandshake, "the server does not offer TLS"))
    };
    let Presented { chain, version } = tokio::time::timeout(timeout, work).await.map_err(|_| {
        Failure::new(ErrorClass::Timeout, format!("no TLS handshake within {}", humantime::format_duration(timeout)))
    })??;
    let mut out = String::new();
    let _ = writeln!(out, "{host}:{port} ({protocol}, {})", version.unwrap_or_else(|| "TLS version unknown".into()));
    let _ = writeln!(out, "certificate chain as presented (leaf first):");
    for (i, der) in chain.iter().enumerate() {
        let info = tls::cert_info(der);
        let days = (info.not_after - tls::now_unix()).div_euclid(86_400);
        let _ = writeln!(out, "  [{i}] subject  {}", info.subject);
        let _ = writeln!(out, "      issuer   {}", info.issuer);
        if !info.sans.is_empty() {
            let _ = writeln!(out, "      names    {}", info.sans.join(", "));
        }
        let _ = writeln!(
            out,
            "      valid    {} to {} ({days} days left)",
            tls::rfc3339(info.not_before),
            tls::rfc3339(info.not_after)
        );
        let _ = writeln!(out, "      key      {}", info.key);
        let _ = writeln!(out, "      sha1     {}", info.sha1);
        let _ = writeln!(out, "      sha256   {}", info.sha256);
    }
    let source = if ca.is_some() { "the given CA bundle" } else { "the system trust store" };
    let name = TlsOptions::default().verify_name(&host)?;
    let verified = tls::verify_chain(&chain, &name, ca, &shared.trust);
    match &verified {
        Ok(()) => {
            let _ = writeln!(out, "verification against {source} for {host}: OK");
        }
        Err(failure) => {
            let _ = writeln!(
                out,
                "verification against {source} for {host}: FAILED: {}: {}",
                failure.class, failure.message
            );
        }
    }
    let mut approved = false;
    let approval = chain.iter().find_map(|c| {
        let verdict = approval_verdict(&trust.approvals, ApprovalKind::Tls, &host, port, &tls::sha256_fingerprint(c))?;
        verdict.0.then_some(verdict)
    });
    let approval = approval.or_else(|| {
        let leaf = chain.first()?;
        approval_verdict(&trust.approvals, ApprovalKind::Tls, &host, port, &tls::sha256_fingerprint(leaf))
    });
    if let Some((ok, said)) = approval {
        approved = ok;
        let _ = writeln!(out, "approvals: {said}");
    }
    if let Some(leaf) = chain.first() {
        let _ = writeln!(out, "to approve exactly this certificate, add to the probe's tls table:");
        let _ = writeln!(out, "  {}", tls::pin_line(&tls::sha256_fingerprint(leaf)));
        let _ = writeln!(out, "or record an approval (who, when): authprobe approve '{target}'");
    }
    Ok(Inspection { text: out, verified: verified.is_ok() || approved })
}

/// The host keys of an SSH server, each with its fingerprint, what known_hosts says of it,
/// and the lines that approve it.
async fn inspect_ssh(
    host: &str,
    port: u16,
    known: Option<KnownHosts>,
    approvals: &[Approval],
    timeout: Duration,
) -> Result<Inspection, Failure> {
    let keys = tokio::time::timeout(timeout, ssh::scan(host, port)).await.map_err(|_| {
        Failure::new(ErrorClass::Timeout, format!("no SSH key exchange within {}", humantime::format_duration(timeout)))
    })??;
    let mut out = String::new();
    let _ = writeln!(out, "{} (ssh)", crate::connect::ssh::known_hosts::host_entry_name(host, port));
    let _ = writeln!(out, "host keys (the first is the one a probe negotiates unless known_hosts prefers another):");
    let width = keys.iter().map(|k| k.algorithm.len()).max().unwrap_or(0);
    for key in &keys {
        let verdict = match &known {
            None => String::new(),
            Some(file) => match file.verdict(host, port, &key.algorithm, &key.blob) {
                crate::connect::ssh::known_hosts::Verdict::Trusted(line) => format!("  known_hosts: OK (line {line})"),
                crate::connect::ssh::known_hosts::Verdict::Revoked(line) => {
                    format!("  known_hosts: REVOKED (line {line})")
                }
                crate::connect::ssh::known_hosts::Verdict::Changed(lines) => {
                    format!("  known_hosts: CHANGED (line {} holds another key)", lines[0])
                }
                _ => "  known_hosts: not listed".into(),
            },
        };
        let approval = approval_verdict(approvals, ApprovalKind::Ssh, host, port, &key.sha256)
            .map(|(_, said)| format!("  approvals: {said}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {:width$}  {}{verdict}{approval}", key.algorithm, key.sha256);
    }
    if let Some(file) = &known {
        let _ = writeln!(out, "checked against {}", file.path.display());
    }
    if let Some(first) = keys.first() {
        let _ = writeln!(out, "to approve the key a probe negotiates, add to the probe or [[tunnel]]:");
        let _ = writeln!(out, "  {}", ssh::host_key_line(&first.sha256));
        let _ = writeln!(out, "or append to a known_hosts file:");
        for key in &keys {
            let _ = writeln!(
                out,
                "  {}",
                crate::connect::ssh::known_hosts::entry_line(host, port, &key.algorithm, &key.blob)
            );
        }
    }
    let verified = match (&known, keys.first()) {
        (Some(file), Some(first)) => matches!(
            file.verdict(host, port, &first.algorithm, &first.blob),
            crate::connect::ssh::known_hosts::Verdict::Trusted(_)
        ),
        _ => false,
    } || keys.first().is_some_and(|first| {
        approval_verdict(approvals, ApprovalKind::Ssh, host, port, &first.sha256).is_some_and(|(ok, _)| ok)
    });
    Ok(Inspection { text: out, verified })
}
