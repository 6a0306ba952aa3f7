//! `--format json`: the report model as the contract's JSON document.

use std::io::Write;

use crate::model::report::{ProbeReport, RunReport};

/// The document written to standard output as it is serialized (a closed pipe is not an
/// error: the reader has what it wanted).
pub fn write_stdout(report: &RunReport) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, report)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    closed_pipe_is_fine(written)
}

/// A reader that closed the pipe has what it wanted: not an error.
fn closed_pipe_is_fine(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

pub fn render(report: &RunReport) -> String {
    // Serializing plain data with string keys cannot fail.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The document written as the probes finish, in config order: `version`, then each probe
/// as it comes, then `started_at`, `duration_ms` and `summary` (known at the end). The same
/// document as [`write_stdout`]'s, its keys in another order; a run of 100,000 probes never
/// holds their reports at once. A closed pipe ends the writing quietly.
pub struct Streamed<W: Write> {
    out: W,
    probes: usize,
    /// The first error; nothing more is written after it.
    failed: Option<std::io::Error>,
}

impl<W: Write> Streamed<W> {
    pub fn start(out: W) -> Self {
        let mut stream = Streamed { out, probes: 0, failed: None };
        stream.write(b"{\n  \"version\": 1,\n  \"probes\": [");
        stream
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_none()
            && let Err(err) = self.out.write_all(bytes)
        {
            self.failed = Some(err);
        }
    }

    /// One probe's report (scrubbed by the caller), indented as in the whole document.
    pub fn probe(&mut self, report: &ProbeReport) {
        if self.failed.is_some() {
            return;
        }
        // Serializing plain data with string keys cannot fail; JSON strings hold no raw
        // newline, so indenting after each one indents lines of the document only.
        let text = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let separator: &[u8] = if self.probes == 0 { b"\n    " } else { b",\n    " };
        self.write(separator);
        self.write(text.replace('\n', "\n    ").as_bytes());
        self.probes += 1;
    }

    /// The rest of the document: the run's times and summary.
    pub fn finish(mut self, run: &RunReport) -> std::io::Result<()> {
        let close: &[u8] = if self.probes == 0 { b"],\n" } else { b"\n  ],\n" };
        self.write(close);
        let summary = serde_json::to_string_pretty(&run.summary).unwrap_or_default().replace('\n', "\n  ");
        let started_at = serde_json::to_string(&run.started_at).unwrap_or_default();
        let tail = format!(
            "  \"started_at\": {started_at},\n  \"duration_ms\": {},\n  \"summary\": {summary}\n}}\n",
            run.duration_ms
        );
        self.write(tail.as_bytes());
        if self.failed.is_none()
            && let Err(err) = self.out.flush()
        {
            self.failed = Some(err);
        }
        closed_pipe_is_fine(self.failed.map_or(Ok(()), Err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_document_is_the_whole_one() {
        let report = RunReport {
            version: 1,
            started_at: "2026-12-07T10:00:00.000Z".into(),
            duration_ms: 12,
            summary: Default::default(),
            probes: Vec::new(),
            started_unix: 0.0,
        };
        for count in [0, 1, 3] {
            let probes: Vec<ProbeReport> = (0..count)
                .map(|i| {
                    let error = crate::model::report::ErrorReport {
                        stage: crate::model::error::Stage::Auth,
                        class: crate::model::error::ErrorClass::AuthRejected,
                        message: "the server said no\nat all".into(),
                        hint: "check the \"token\"".into(),
                    };
                    ProbeReport::failed_without_run(&format!("p{i}"), "http", "https://h/", error)
                })
                .collect();
            let mut whole = RunReport { probes: probes.clone(), ..report.clone() };
            whole.summary = RunReport::summarize(&whole.probes);
            let mut out = Vec::new();
            let mut stream = Streamed::start(&mut out);
            for p in &probes {
                stream.probe(p);
            }
            stream.finish(&RunReport { probes: Vec::new(), ..whole.clone() }).unwrap();
            let streamed: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let expected: serde_json::Value = serde_json::from_str(&render(&whole)).unwrap();
            assert_eq!(streamed, expected, "{}", String::from_utf8_lossy(&out));
        }
    }
}
