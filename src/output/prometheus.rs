//! `--format prometheus`: the text exposition format, for node_exporter's textfile
//! collector or any scraper. Checked with `promtool check metrics` in the tests.

use std::fmt::Write;

use crate::model::report::{ProbeReport, RunReport, StageStatus, Status};

/// Escapes a label value: backslash, double quote and newline.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// HELP and TYPE lines of a gauge.
pub fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// HELP and TYPE lines of a counter.
pub fn counter(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
}

/// HELP and TYPE lines of a summary (samples `_sum` and `_count`).
pub fn summary(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} summary");
}

/// A gauge with one sample per finished probe, labelled with its name and kind.
fn per_probe(out: &mut String, report: &RunReport, name: &str, help: &str, value: impl Fn(&ProbeReport) -> String) {
    gauge(out, name, help);
    for p in report.probes.iter().filter(|p| p.status != Status::Cancelled) {
        let _ = writeln!(out, "{name}{{probe=\"{}\",kind=\"{}\"}} {}", label(&p.name), label(&p.kind), value(p));
    }
}

pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let finished = || report.probes.iter().filter(|p| p.status != Status::Cancelled);
    per_probe(
        &mut out,
        report,
        "authprobe_probe_success",
        "Whether the probe passed (1, warnings allowed) or failed (0).",
        |p| u8::from(matches!(p.status, Status::Pass | Status::Warn)).to_string(),
    );
    per_probe(
        &mut out,
        report,
        "authprobe_probe_duration_seconds",
        "How long the probe took, all stages and attempts together.",
        |p| p.duration_secs.to_string(),
    );
    per_probe(
        &mut out,
        report,
        "authprobe_probe_attempts",
        "How many attempts the probe made (more than 1 only with --wait).",
        |p| p.attempts.to_string(),
    );

    gauge(&mut out, "authprobe_stage_duration_seconds", "How long each stage of the probe took.");
    for p in finished() {
        for s in p.stages.iter().filter(|s| s.status != StageStatus::Skipped) {
            let _ = writeln!(
                out,
                "authprobe_stage_duration_seconds{{probe=\"{}\",kind=\"{}\",stage=\"{}\"}} {}",
                label(&p.name),
                label(&p.kind),
                s.name,
                s.duration_secs
            );
        }
    }

    gauge(
        &mut out,
        "authprobe_probe_failure_info",
        "Present (1) for a failed probe, labelled with the stage and error class of the failure.",
    );
    for p in finished() {
        if let Some(err) = &p.error {
            let _ = writeln!(
                out,
                "authprobe_probe_failure_info{{probe=\"{}\",kind=\"{}\",stage=\"{}\",class=\"{}\"}} 1",
                label(&p.name),
                label(&p.kind),
                err.stage,
                err.class
            );
        }
    }

    gauge(
        &mut out,
        "authprobe_tls_cert_not_after_timestamp_seconds",
        "Expiry of the server certificate the probe saw, in seconds since the Unix epoch.",
    );
    for p in finished() {
        if let Some(tls) = &p.tls {
            let _ = writeln!(
                out,
                "authprobe_tls_cert_not_after_timestamp_seconds{{probe=\"{}\",kind=\"{}\"}} {}",
                label(&p.name),
                label(&p.kind),
                tls.not_after_unix
            );
        }
    }

    type Value = fn(&crate::model::report::CredentialReport) -> Option<i64>;
    let credential_series: [(&str, &str, Value); 2] = [
        (
            "authprobe_credential_not_after_timestamp_seconds",
            "Expiry a credential carries itself (a signed link, a JWT, a client certificate, a ticket), in seconds since the Unix epoch.",
            |c| c.not_after_unix,
        ),
        (
            "authprobe_credential_age_seconds",
            "How long ago a credential was issued or made, where it or its service says (a key's creation date, a JWT's iat).",
            |c| c.age_seconds,
        ),
    ];
    for (name, help, value) in credential_series {
        let series: Vec<(&ProbeReport, &str, i64)> = finished()
            .flat_map(|p| p.credentials.iter().filter_map(move |c| Some((p, c.what.as_str(), value(c)?))))
            .collect();
        if !series.is_empty() {
            gauge(&mut out, name, help);
        }
        for (p, what, value) in series {
            let _ = writeln!(
                out,
                "{name}{{probe=\"{}\",kind=\"{}\",credential=\"{}\"}} {value}",
                label(&p.name),
                label(&p.kind),
                label(what)
            );
        }
    }

    let with_findings: Vec<&ProbeReport> = report.probes.iter().filter(|p| !p.findings.is_empty()).collect();
    if !with_findings.is_empty() {
        gauge(
            &mut out,
            "authprobe_finding_info",
            "Credential hygiene findings (1 each): what the credential can do beyond what the probe needs; severity warning or info.",
        );
    }
    for p in with_findings {
        for finding in &p.findings {
            let _ = writeln!(
                out,
                "authprobe_finding_info{{probe=\"{}\",kind=\"{}\",finding=\"{}\",severity=\"{}\"}} 1",
                label(&p.name),
                label(&p.kind),
                label(&finding.what),
                finding.severity
            );
        }
    }

    gauge(&mut out, "authprobe_last_run_timestamp_seconds", "When this run started, in seconds since the Unix epoch.");
    let _ = writeln!(out, "authprobe_last_run_timestamp_seconds {:.3}", report.started_unix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
