//! `--format setup-tests`: the results in the shape of a connector's setup tests
//! (Fivetran's `setup_tests`: `[{title, status, message, details}]`), one per probe, so a
//! connector can show them in its own setup flow. A certificate or host key that awaits
//! approval is in `details.certificate` with the fields an approval records.

use base64::Engine;
use serde_json::{Value, json};

use crate::model::report::{ProbeReport, RunReport, Status};

pub fn render(report: &RunReport) -> String {
    let tests: Vec<Value> = report.probes.iter().map(setup_test).collect();
    serde_json::to_string_pretty(&tests).unwrap_or_else(|_| "[]".into()) + "\n"
}

fn setup_test(p: &ProbeReport) -> Value {
    let status = match p.status {
        Status::Pass => "PASSED",
        Status::Warn => "WARNING",
        Status::Fail => "FAILED",
        Status::Cancelled => "SKIPPED",
    };
    let message = match (&p.error, p.warnings.first()) {
        (Some(e), _) => format!("{}: {}", e.stage.as_str(), e.message),
        (None, Some(warning)) => warning.clone(),
        (None, None) => format!("{} works", p.target),
    };
    let mut details = json!({ "kind": p.kind, "target": p.target });
    if let Some(e) = &p.error {
        details["stage"] = json!(e.stage.as_str());
        details["class"] = json!(e.class.as_str());
        details["hint"] = json!(e.hint);
    }
    if let Some(command) = &p.approve {
        details["approve"] = json!(command);
        details["certificate"] = awaiting(p);
    }
    json!({ "title": format!("{} ({})", p.name, p.kind), "status": status, "message": message, "details": details })
}

/// The certificate or host key a probe refused, as an approval would record it.
fn awaiting(p: &ProbeReport) -> Value {
    if let Some(t) = &p.tls {
        let der_hash = hex_bytes(&t.sha256);
        return json!({
            "type": "TLS",
            "name": t.subject,
            // A hash of the certificate (its SHA-256, base64url), as certificate APIs key it.
            "hash": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(der_hash),
            "public_key": t.public_key,
            "sha1": t.sha1,
            "sha256": t.sha256,
        });
    }
    match &p.host_key {
        Some(k) => json!({
            "type": "SSH",
            "name": k.algorithm,
            "hash": k.sha256.trim_start_matches("SHA256:"),
            "public_key": k.public_key,
            "sha1": Value::Null,
            "sha256": k.sha256,
        }),
        None => Value::Null,
    }
}

fn hex_bytes(colon_hex: &str) -> Vec<u8> {
    colon_hex.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect()
}
