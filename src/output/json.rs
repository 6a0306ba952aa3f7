//! `--format json`: the report model as the contract's JSON document.

use crate::model::report::RunReport;

pub fn render(report: &RunReport) -> String {
    // Serializing plain data with string keys cannot fail.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
