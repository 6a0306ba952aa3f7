//! The blackbox exporter's `probe_*` metrics for one probe, with its names, labels, units
//! and meanings (blackbox_exporter 0.23, the version Debian ships), from what the probe saw
//! on the wire (`model::facts`). docs/serve.md has the table of each metric's source and
//! where authprobe differs on purpose.

use std::fmt::Write;

use crate::model::error::Stage;
use crate::model::report::ProbeReport;
use crate::output::prometheus::{gauge, label};

fn stage_secs(probe: &ProbeReport, stage: Stage) -> f64 {
    probe.stages.iter().find(|s| s.name == stage).map_or(0.0, |s| s.duration_secs)
}

/// Every blackbox metric that means something for this probe, after `probe_success` and
/// `probe_duration_seconds` (written by the caller).
pub fn render(out: &mut String, probe: &ProbeReport) {
    let facts = facts_of(probe);
    gauge(out, "probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds");
    let _ = writeln!(out, "probe_dns_lookup_time_seconds {}", stage_secs(probe, Stage::Dns));
    gauge(out, "probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6");
    let protocol = match facts.peer {
        Some(addr) if addr.is_ipv4() => 4,
        Some(_) => 6,
        None => 0,
    };
    let _ = writeln!(out, "probe_ip_protocol {protocol}");
    if let Some(addr) = facts.peer {
        gauge(
            out,
            "probe_ip_addr_hash",
            "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        );
        let _ = writeln!(out, "probe_ip_addr_hash {}", crate::model::facts::ip_addr_hash(&addr.ip()));
    }
    if probe.kind == "http" {
        http(out, probe);
    }
    tls(out, probe);
}

fn http(out: &mut String, probe: &ProbeReport) {
    let facts = facts_of(probe).http.clone().unwrap_or_default();
    gauge(out, "probe_http_duration_seconds", "Duration of http request by phase, summed over all redirects");
    let phases = [
        ("connect", stage_secs(probe, Stage::Connect)),
        ("processing", facts.processing_secs),
        ("resolve", stage_secs(probe, Stage::Dns)),
        ("tls", stage_secs(probe, Stage::Tls)),
        ("transfer", facts.transfer_secs),
    ];
    for (phase, secs) in phases {
        let _ = writeln!(out, "probe_http_duration_seconds{{phase=\"{phase}\"}} {secs}");
    }
    let simple: [(&str, &str, String); 7] = [
        ("probe_http_content_length", "Length of http content response", facts.content_length.to_string()),
        ("probe_http_redirects", "The number of redirects", "0".into()),
        (
            "probe_http_ssl",
            "Indicates if SSL was used for the final redirect",
            u8::from(facts.tls && facts.status != 0).to_string(),
        ),
        ("probe_http_status_code", "Response HTTP status code", facts.status.to_string()),
        ("probe_http_uncompressed_body_length", "Length of uncompressed response body", facts.body_length.to_string()),
        ("probe_http_version", "Returns the version of HTTP of the probe response", facts.version.to_string()),
        (
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
            u8::from(facts.failed_due_to_regex).to_string(),
        ),
    ];
    for (name, help, value) in simple {
        gauge(out, name, help);
        let _ = writeln!(out, "{name} {value}");
    }
    if let Some(modified) = facts.last_modified_unix {
        gauge(
            out,
            "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime",
        );
        let _ = writeln!(out, "probe_http_last_modified_timestamp_seconds {modified}");
    }
}

/// The probe's wire facts (`serve` keeps them; none is the same as nothing learned).
fn facts_of(probe: &ProbeReport) -> &crate::model::facts::WireFacts {
    static NONE: std::sync::LazyLock<crate::model::facts::WireFacts> = std::sync::LazyLock::new(Default::default);
    probe.facts.as_deref().unwrap_or(&NONE)
}

fn tls(out: &mut String, probe: &ProbeReport) {
    let chain = &facts_of(probe).chain;
    let Some(leaf) = chain.first() else {
        return;
    };
    let earliest = chain.iter().map(|c| c.not_after_unix).min().unwrap_or(leaf.not_after_unix);
    gauge(out, "probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime");
    let _ = writeln!(out, "probe_ssl_earliest_cert_expiry {earliest}");
    gauge(out, "probe_ssl_last_chain_expiry_timestamp_seconds", "Returns last SSL chain expiry in timestamp");
    let _ = writeln!(out, "probe_ssl_last_chain_expiry_timestamp_seconds {earliest}");
    gauge(out, "probe_ssl_last_chain_info", "Contains SSL leaf certificate information");
    let _ = writeln!(
        out,
        "probe_ssl_last_chain_info{{fingerprint_sha256=\"{}\",issuer=\"{}\",serialnumber=\"{}\",subject=\"{}\",subjectalternative=\"{}\"}} 1",
        label(&leaf.sha256_hex),
        label(&leaf.issuer),
        label(&leaf.serial_hex),
        label(&leaf.subject),
        label(&leaf.dns_names.join(","))
    );
    if let Some(version) = probe.tls.as_ref().and_then(|t| t.version.as_deref()) {
        gauge(out, "probe_tls_version_info", "Returns the TLS version used or NaN when unknown");
        let version = crate::model::facts::go_tls_version(version);
        let _ = writeln!(out, "probe_tls_version_info{{version=\"{}\"}} 1", label(&version));
    }
}
