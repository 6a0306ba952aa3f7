//! `--format table` (the default): one row per probe, failures with their stage, class,
//! message and hint beneath; `-v` adds stage timings and the certificate.

use tabled::builder::Builder;
use tabled::settings::Style as TableStyle;

use super::{Style, human_secs};
use crate::model::report::{ProbeReport, RunReport, StageStatus, Status};

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

/// The DETAIL column's lines, each with its colour (painted after wrapping, so that a
/// wrapped line keeps its colour on every piece).
fn detail_lines(probe: &ProbeReport, style: Style) -> Vec<(String, Option<&'static str>)> {
    let mut lines: Vec<(String, Option<&'static str>)> = Vec::new();
    if let Some(err) = &probe.error {
        lines.push((format!("{}: {} — {}", err.stage, err.class, err.message), None));
        lines.push((format!("hint: {}", err.hint), Some("2")));
    }
    for warning in &probe.warnings {
        lines.push((format!("warning: {warning}"), None));
    }
    if probe.attempts > 1 {
        lines.push((format!("attempts: {}", probe.attempts), None));
    }
    if let Some(why) = &probe.not_retried {
        lines.push((why.clone(), Some("2")));
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
            lines.push((stages.join(" · "), None));
        }
        if let Some(tls) = &probe.tls {
            let version = tls.version.clone().unwrap_or_else(|| "handshake failed".into());
            let trust = match &tls.approved {
                Some(a) => format!("approved by {} on {}", a.by, a.date.get(..10).unwrap_or(&a.date)),
                None if tls.pinned => "pinned".into(),
                None if tls.verified => "verified".into(),
                None => "not verified".into(),
            };
            lines.push((format!("tls: {version}, {trust}, subject {}, issuer {}", tls.subject, tls.issuer), None));
            lines.push((
                format!("tls: expires {} ({} days), sha256 {}", tls.not_after, tls.days_left, tls.sha256),
                None,
            ));
        }
        if let Some(key) = &probe.host_key {
            let trust = match &key.approved {
                Some(a) => format!("approved by {} on {}", a.by, a.date.get(..10).unwrap_or(&a.date)),
                None if key.verified => "verified".into(),
                None => "NOT verified".into(),
            };
            lines.push((
                format!("host key: {} {} ({trust}), presented by {}", key.algorithm, key.sha256, key.host),
                None,
            ));
        }
        lines.extend(probe.details.iter().map(|d| (d.clone(), None)));
        if style.verbose > 1 {
            lines.extend(probe.diagnostics.iter().map(|d| (d.clone(), Some("2"))));
        }
    }
    lines
}

fn detail_cell(probe: &ProbeReport, style: Style, width: Option<usize>) -> String {
    let mut out = Vec::new();
    for (line, color) in detail_lines(probe, style) {
        let pieces = match width {
            Some(w) => wrap(&line, w),
            None => vec![line],
        };
        for piece in pieces {
            out.push(match color {
                Some(code) => paint(&piece, code, style),
                None => piece,
            });
        }
    }
    out.join("\n")
}

/// Word-wraps `line` to `width` characters (at least 8); a word longer than a line (a
/// fingerprint) is cut. Continuation lines are indented two spaces.
fn wrap(line: &str, width: usize) -> Vec<String> {
    const INDENT: usize = 2;
    let width = width.max(8);
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut len = 0;
    for word in line.split(' ') {
        let mut chars: Vec<char> = word.chars().collect();
        loop {
            let limit = if out.is_empty() { width } else { width - INDENT };
            let gap = usize::from(len > 0);
            if len + gap + chars.len() <= limit {
                if gap == 1 {
                    current.push(' ');
                }
                current.extend(chars.iter());
                len += gap + chars.len();
                break;
            }
            if len > 0 && chars.len() <= width - INDENT {
                out.push(std::mem::take(&mut current));
                len = 0;
                continue;
            }
            // Longer than any line: fill this one with its start. With `len == 0` the room
            // is the whole line, so every round takes at least one character.
            let room = limit.saturating_sub(len + gap);
            if room == 0 {
                out.push(std::mem::take(&mut current));
                len = 0;
                continue;
            }
            if gap == 1 {
                current.push(' ');
            }
            current.extend(chars.drain(..room.min(chars.len())));
            out.push(std::mem::take(&mut current));
            len = 0;
            if chars.is_empty() {
                break;
            }
        }
    }
    if len > 0 || out.is_empty() {
        out.push(current);
    }
    out.into_iter().enumerate().map(|(i, l)| if i == 0 { l } else { format!("  {l}") }).collect()
}

pub fn render(report: &RunReport, style: Style) -> String {
    let mut builder = Builder::default();
    builder.push_record(["PROBE", "KIND", "TARGET", "STATUS", "TIME", "DETAIL"]);
    // On a terminal, DETAIL gets what the other columns leave (each is its widest cell plus
    // the blank style's padding).
    let column = |f: &dyn Fn(&ProbeReport) -> usize, header: usize| {
        report.probes.iter().map(f).max().unwrap_or(0).max(header) + 2
    };
    let others = column(&|p| p.name.chars().count(), 5)
        + column(&|p| p.kind.chars().count(), 4)
        + column(&|p| p.target.chars().count(), 6)
        + column(&|p| p.status.as_str().len(), 6)
        + column(&|p| human_secs(p.duration_secs).len(), 4)
        // The blank style's separators (a space between each of the six columns) and
        // DETAIL's own padding.
        + 5
        + 2;
    // Too narrow for a DETAIL column beside the others: the details go beneath each row,
    // indented, wrapped to the terminal.
    let beneath = style.width.filter(|w| w.saturating_sub(others) < 40);
    let detail_width = style.width.map(|w| w.saturating_sub(others)).filter(|w| *w >= 40);
    for probe in &report.probes {
        let mut row = vec![
            probe.name.clone(),
            probe.kind.clone(),
            probe.target.clone(),
            status_cell(probe.status, style),
            human_secs(probe.duration_secs),
        ];
        if beneath.is_none() {
            row.push(detail_cell(probe, style, detail_width));
        }
        builder.push_record(row);
    }
    if beneath.is_some() {
        // The header row was pushed with six cells; a five-cell table drops DETAIL.
        let mut records: Vec<Vec<String>> = builder.clone().into();
        records[0].truncate(5);
        builder = Builder::from(records);
    }
    let mut table = builder.build();
    table.with(TableStyle::blank());
    let rendered = table.to_string();
    // Blank-style tables pad every line; trailing spaces only get in the way of diff and grep.
    let mut lines: Vec<String> = rendered.lines().map(|l| l.trim_end().to_string()).collect();
    if let Some(width) = beneath {
        // Every cell is one line, so line i + 1 is probe i.
        let mut with_details = vec![lines.remove(0)];
        for (probe, line) in report.probes.iter().zip(lines) {
            with_details.push(line);
            let indent = "      ";
            let shown = detail_cell(probe, style, Some(width.saturating_sub(indent.len()).max(20)));
            with_details.extend(shown.lines().filter(|l| !l.is_empty()).map(|l| format!("{indent}{l}")));
        }
        lines = with_details;
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.push_str(&report.summary_line());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::error::{ErrorClass, Stage};
    use crate::model::report::{ErrorReport, Summary};

    fn report(target: &str) -> RunReport {
        let error = ErrorReport {
            stage: Stage::Tls,
            class: ErrorClass::TlsUntrusted,
            message: format!("the certificate is not trusted: sha256 {}", "AB:".repeat(31) + "AB"),
            hint: "set tls.ca to the CA that issued it, or approve this exact certificate in the probe's tls table"
                .into(),
        };
        let probe = ProbeReport {
            duration_ms: 3,
            duration_secs: 0.003,
            attempts: 1,
            ..ProbeReport::failed_without_run("orders-api", "http", target, error)
        };
        RunReport {
            version: 1,
            started_at: String::new(),
            duration_ms: 3,
            summary: Summary { total: 1, failed: 1, ..Summary::default() },
            probes: vec![probe],
            started_unix: 0.0,
        }
    }

    fn widest(text: &str) -> usize {
        text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn on_a_terminal_lines_fit_and_in_pipes_they_stay_whole() {
        let plain = Style { verbose: 0, color: false, width: None };
        let whole = render(&report("https://api.example.com/health"), plain);
        assert!(widest(&whole) > 150, "{whole}");
        for width in [80, 100, 160, 220] {
            let fitted = render(&report("https://api.example.com/health"), Style { width: Some(width), ..plain });
            assert!(widest(&fitted) <= width, "{width}:\n{fitted}");
            assert!(fitted.contains("AB:AB"), "nothing is lost:\n{fitted}");
        }
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_cuts_only_what_cannot_fit() {
        assert_eq!(wrap("one two three", 7), ["one two", "  three"]);
        assert_eq!(wrap("abcdefghijklmnop", 8), ["abcdefgh", "  ijklmn", "  op"]);
        assert_eq!(wrap("x abcdefghijklmnop", 4), ["x abcdef", "  ghijkl", "  mnop"]);
        assert_eq!(wrap("short", 40), ["short"]);
        // Server texts reach this: any text and width ends, fits and keeps every character.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2_000 {
            let text: String =
                (0..rng.usize(..300)).map(|_| if rng.u8(..6) == 0 { ' ' } else { rng.alphanumeric() }).collect();
            let width = rng.usize(..120);
            let lines = wrap(&text, width);
            assert!(lines.iter().all(|l| l.chars().count() <= width.max(8)), "{width} {lines:?}");
            let kept: String = lines.concat().chars().filter(|c| *c != ' ').collect();
            assert_eq!(kept, text.chars().filter(|c| *c != ' ').collect::<String>());
        }
    }
}
