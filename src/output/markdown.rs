//! `--format markdown`: a report fit for a CI job summary, or to send to whoever owns the
//! credentials: what failed, why, what to do, and the certificate fingerprints to approve.

use std::fmt::Write;

use super::human_ms;
use crate::model::report::{RunReport, Status};

/// Makes text safe inside a table cell: no pipes breaking columns, no newlines, no HTML.
pub fn cell(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;").replace(['\n', '\r'], " ")
}

fn code(text: &str) -> String {
    // Backticks inside a code span would end it early.
    format!("`{}`", cell(text).replace('`', "'"))
}

pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let headline = if report.summary.failed > 0 {
        "❌"
    } else if report.summary.warned > 0 {
        "⚠️"
    } else {
        "✅"
    };
    let _ = writeln!(out, "## {headline} authprobe: {}\n", report.summary_line());
    let _ = writeln!(out, "Run started {} and took {}.\n", report.started_at, human_ms(report.duration_ms));
    out.push_str("| Probe | Kind | Target | Status | Time | Details |\n|---|---|---|---|---|---|\n");
    for p in &report.probes {
        let status = match p.status {
            Status::Pass => "✅ pass",
            Status::Warn => "⚠️ warn",
            Status::Fail => "❌ fail",
            Status::Cancelled => "⏹ cancelled",
        };
        let mut details = Vec::new();
        if let Some(err) = &p.error {
            details.push(format!(
                "**{}: {}** — {}<br>Hint: {}",
                err.stage,
                err.class,
                cell(&err.message),
                cell(&err.hint)
            ));
        }
        for w in &p.warnings {
            details.push(format!("Warning: {}", cell(w)));
        }
        if p.attempts > 1 {
            details.push(format!("{} attempts", p.attempts));
        }
        if let Some(why) = &p.not_retried {
            details.push(cell(why));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {status} | {} | {} |",
            cell(&p.name),
            cell(&p.kind),
            code(&p.target),
            human_ms(p.duration_ms),
            details.join("<br>")
        );
    }
    let with_tls: Vec<_> = report.probes.iter().filter(|p| p.tls.is_some() || p.host_key.is_some()).collect();
    if !with_tls.is_empty() {
        out.push_str("\n### Certificates and host keys seen\n\n");
        out.push_str(
            "| Probe | Subject | Issuer | Expires | Trusted | SHA-256 fingerprint |\n|---|---|---|---|---|---|\n",
        );
        for p in with_tls {
            if let Some(t) = &p.tls {
                let trusted = match &t.approved {
                    Some(a) => format!("approved by {} on {}", cell(&a.by), a.date.get(..10).unwrap_or(&a.date)),
                    None if t.pinned => "pinned".into(),
                    None if t.verified => "yes".into(),
                    None => "**no**".into(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} ({} days) | {trusted} | {} |",
                    cell(&p.name),
                    cell(&t.subject),
                    cell(&t.issuer),
                    cell(&t.not_after),
                    t.days_left,
                    code(&t.sha256)
                );
            }
            if let Some(k) = &p.host_key {
                // Verified means approved by host_key or a known_hosts line.
                let trusted = match &k.approved {
                    Some(a) => format!("approved by {} on {}", cell(&a.by), a.date.get(..10).unwrap_or(&a.date)),
                    None if k.verified => "yes".into(),
                    None => "**no**".into(),
                };
                let _ = writeln!(
                    out,
                    "| {} | SSH host key | {} | | {trusted} | {} |",
                    cell(&p.name),
                    cell(&k.algorithm),
                    code(&k.sha256)
                );
            }
        }
    }
    awaiting_approval(&mut out, report);
    let with_expiry: Vec<_> = report
        .probes
        .iter()
        .flat_map(|p| p.credentials.iter().filter_map(move |c| Some((p, c, c.not_after.as_deref()?, c.seconds_left?))))
        .collect();
    if !with_expiry.is_empty() {
        out.push_str("\n### Credentials that expire\n\n| Probe | Credential | Expires |\n|---|---|---|\n");
        for (p, c, not_after, seconds_left) in with_expiry {
            // Days once it is days away, as the certificate table says it.
            let left = match seconds_left {
                s if s < 0 => "expired".to_string(),
                s if s >= 2 * 86_400 => format!("in {} days", s / 86_400),
                s => format!("in {}", human_seconds(s)),
            };
            let _ = writeln!(out, "| {} | {} | {} ({left}) |", cell(&p.name), cell(&c.what), cell(not_after));
        }
    }
    out
}

fn human_seconds(seconds: i64) -> String {
    crate::model::signed_link::approx(std::time::Duration::from_secs(seconds.unsigned_abs()))
}

/// What the credential's owner (or whoever runs the servers) is asked to approve: every
/// field of each certificate or host key a probe refused, and the command that approves it.
fn awaiting_approval(out: &mut String, report: &RunReport) {
    let waiting: Vec<_> = report.probes.iter().filter_map(|p| Some((p, p.approve.as_ref()?))).collect();
    if waiting.is_empty() {
        return;
    }
    out.push_str("\n### Awaiting approval\n\nVerify each fingerprint with the server's owner before approving it.\n");
    for (p, command) in waiting {
        let _ = writeln!(out, "\n**{}** ({})\n", cell(&p.name), code(&p.target));
        if let Some(t) = &p.tls {
            for (label, value) in [
                ("Subject", t.subject.clone()),
                ("Issuer", t.issuer.clone()),
                ("Valid", format!("{} to {}", t.not_before, t.not_after)),
                ("Names", t.sans.join(", ")),
                ("Public key", t.key.clone()),
                ("SHA-1", t.sha1.clone()),
                ("SHA-256", t.sha256.clone()),
            ] {
                let _ = writeln!(out, "- {label}: {}", code(&value));
            }
        } else if let Some(k) = &p.host_key {
            let _ = writeln!(out, "- SSH host key of {}: {} {}", code(&k.host), code(&k.algorithm), code(&k.sha256));
        }
        let _ = writeln!(out, "- Approve with: {}", code(command));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc<d>"), "a\\|b c&lt;d&gt;");
    }
}
