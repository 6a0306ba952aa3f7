//! `--format table` (the default): one row per probe, failures with their stage, class,
//! message and hint beneath; `-v` adds stage timings and the certificate.

use tabled::builder::Builder;
use tabled::settings::Style as TableStyle;

use super::{Style, human_secs};
use crate::report::{ProbeReport, RunReport, StageStatus, Status};

const RESET: &str = "\x1b[0m";

fn paint(text: &str, code: &str, style: Style) -> String {
    if style.color { format!("\x1b[{code}m{text}{RESET}") } else { text.to_string() }
}

fn status_cell(status: Status, style: Style) -> String {
    match status {
        Status::Pass => paint("pass", "32", style),
        Status::Warn => paint("WARN", "33", style),
        Status::Fail => paint("FAIL", "1;31", style),
        Status::Cancelled => paint("cancelled", "2", style),
    }
}

fn detail_cell(probe: &ProbeReport, style: Style) -> String {
    let mut lines = Vec::new();
    if let Some(err) = &probe.error {
        lines.push(format!("{}: {} — {}", err.stage, err.class, err.message));
        lines.push(paint(&format!("hint: {}", err.hint), "2", style));
    }
    for warning in &probe.warnings {
        lines.push(format!("warning: {warning}"));
    }
    if probe.attempts > 1 {
        lines.push(format!("attempts: {}", probe.attempts));
    }
    if style.verbose > 0 {
        let stages: Vec<String> = probe
            .stages
            .iter()
            .map(|s| match s.status {
                StageStatus::Ok => format!("{} {}", s.name, human_secs(s.duration_secs)),
                StageStatus::Fail => format!("{} {} (failed)", s.name, human_secs(s.duration_secs)),
                StageStatus::Skipped => format!("{} -", s.name),
            })
            .collect();
        if !stages.is_empty() {
            lines.push(stages.join(" · "));
        }
        if let Some(tls) = &probe.tls {
            let version = tls.version.clone().unwrap_or_else(|| "handshake failed".into());
            let trust = if tls.pinned {
                "pinned"
            } else if tls.verified {
                "verified"
            } else {
                "not verified"
            };
            lines.push(format!("tls: {version}, {trust}, subject {}, issuer {}", tls.subject, tls.issuer));
            lines.push(format!("tls: expires {} ({} days), sha256 {}", tls.not_after, tls.days_left, tls.sha256));
        }
        if let Some(key) = &probe.host_key {
            let trust = if key.verified { "verified" } else { "NOT verified" };
            lines.push(format!("host key: {} {} ({trust}), presented by {}", key.algorithm, key.sha256, key.host));
        }
        lines.extend(probe.details.iter().cloned());
        if style.verbose > 1 {
            lines.extend(probe.diagnostics.iter().map(|d| paint(d, "2", style)));
        }
    }
    lines.join("\n")
}

pub fn render(report: &RunReport, style: Style) -> String {
    let mut builder = Builder::default();
    builder.push_record(["PROBE", "KIND", "TARGET", "STATUS", "TIME", "DETAIL"]);
    for probe in &report.probes {
        builder.push_record([
            probe.name.clone(),
            probe.kind.clone(),
            probe.target.clone(),
            status_cell(probe.status, style),
            human_secs(probe.duration_secs),
            detail_cell(probe, style),
        ]);
    }
    let mut table = builder.build();
    table.with(TableStyle::blank());
    let mut out = table.to_string();
    // Blank-style tables pad every line; trailing spaces only get in the way of diff and grep.
    out = out.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
    out.push('\n');
    out.push_str(&report.summary_line());
    out.push('\n');
    out
}
