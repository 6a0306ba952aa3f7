//! `--format junit`: one test suite, one test case per probe, for CI systems that show test
//! results. Validated against `schemas/junit.xsd` in the tests.

use std::fmt::Write;

use crate::model::report::{RunReport, Status};

/// Escapes text for XML attributes and character data, dropping characters XML 1.0 forbids.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

pub fn render(report: &RunReport) -> String {
    let s = &report.summary;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"authprobe\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
        s.total,
        s.failed,
        s.cancelled,
        seconds(report.duration_ms),
        escape(&report.started_at)
    );
    for probe in &report.probes {
        let _ = write!(
            out,
            "  <testcase name=\"{}\" classname=\"authprobe.{}\" time=\"{}\"",
            escape(&probe.name),
            escape(&probe.kind),
            seconds(probe.duration_ms)
        );
        let mut body = String::new();
        match (&probe.status, &probe.error) {
            (Status::Fail, Some(err)) => {
                let _ = writeln!(
                    body,
                    "    <failure type=\"{}\" message=\"{}\">stage: {}&#10;target: {}&#10;hint: {}&#10;attempts: {}</failure>",
                    err.class,
                    escape(&err.message),
                    err.stage,
                    escape(&probe.target),
                    escape(&err.hint),
                    probe.attempts
                );
            }
            (Status::Cancelled, _) => body.push_str("    <skipped message=\"cancelled before it finished\"/>\n"),
            _ => {}
        }
        let mut notes: Vec<String> = probe.warnings.iter().map(|w| format!("warning: {}", escape(w))).collect();
        if probe.attempts > 1 && probe.status != Status::Fail {
            notes.push(format!("attempts: {}", probe.attempts));
        }
        if !notes.is_empty() {
            let _ = writeln!(body, "    <system-out>{}</system-out>", notes.join("&#10;"));
        }
        if body.is_empty() {
            out.push_str("/>\n");
        } else {
            out.push_str(">\n");
            out.push_str(&body);
            out.push_str("  </testcase>\n");
        }
    }
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}\nd"), "a&lt;b&gt;&amp;&quot;c&apos;&#10;d");
    }
}
