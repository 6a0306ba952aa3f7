//! Every report format, checked by its real consumer: the JSON against the shipped JSON
//! Schema (python-jsonschema), the JUnit XML against the shipped XSD (xmllint), the
//! Prometheus text by `promtool check metrics`.

use crate::util::servers::{self, ClientCerts};
use crate::util::{self, *};

const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");

/// A run with a pass, a warn, a TLS failure, an auth failure and awkward names.
async fn mixed_run(format: &str) -> (util::Output, Workspace, Vec<servers::Server>) {
    let pki = util::certs::pki();
    let plain = servers::http().await;
    let soon = servers::https(&pki.expiring_soon, ClientCerts::None).await;
    let untrusted = servers::https(&pki.untrusted, ClientCerts::None).await;
    let ws = Workspace::new();
    let mut cfg = http_probe("healthy", &plain.url("http", "/health"), "tags = [\"prod\"]");
    cfg += &http_probe("cert \\\"soon\\\" <expiring> & odd|name", &soon.url("https", "/health"), &tls_ca(&pki));
    cfg += &http_probe("untrusted", &untrusted.url("https", "/health"), &tls_ca(&pki));
    cfg +=
        &http_probe("bad-token", &plain.url("http", "/bearer"), "auth = { type = \"bearer\", token = \"${TOKEN}\" }");
    let path = ws.config(&cfg);
    let out =
        authprobe(&["run", "-c", path.to_str().unwrap(), "--format", format], &[("TOKEN", servers::BAD_TOKEN)]).await;
    assert_eq!(out.code, 1, "{out:?}");
    (out, ws, vec![plain, soon, untrusted])
}

fn tool_output(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Validates a JSON report against schemas/report.schema.json with python-jsonschema.
pub fn assert_matches_schema(ws: &Workspace, report_json: &str) {
    let python = require_tool("python3");
    let report = ws.write("report.json", report_json);
    let check = "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[2]))\n\
                 jsonschema.Draft202012Validator.check_schema(schema)\n\
                 jsonschema.validate(json.load(open(sys.argv[1])), schema, format_checker=jsonschema.FormatChecker())\n\
                 print('valid')";
    let (ok, text) = tool_output(std::process::Command::new(python).args([
        "-c",
        check,
        report.to_str().unwrap(),
        &format!("{SCHEMAS}/report.schema.json"),
    ]));
    assert!(
        ok && text.contains("valid"),
        "JSON report does not match schemas/report.schema.json (is python jsonschema installed? scripts/test.sh installs it):\n{text}"
    );
}

#[tokio::test]
async fn json_matches_the_shipped_schema() {
    let (out, ws, _servers) = mixed_run("json").await;
    assert_matches_schema(&ws, &out.stdout);
    let json = out.json();
    assert_eq!(json["summary"], serde_json::json!({"total": 4, "passed": 1, "warned": 1, "failed": 2, "cancelled": 0}));
}

#[tokio::test]
async fn junit_validates_against_the_shipped_xsd() {
    let xmllint = require_tool("xmllint");
    let (out, ws, _servers) = mixed_run("junit").await;
    let report = ws.write("report.xml", &out.stdout);
    let (ok, text) = tool_output(std::process::Command::new(xmllint).args([
        "--noout",
        "--schema",
        &format!("{SCHEMAS}/junit.xsd"),
        report.to_str().unwrap(),
    ]));
    assert!(ok, "JUnit XML does not validate:\n{text}\n{}", out.stdout);
    assert!(out.stdout.contains("<testcase name=\"healthy\" classname=\"authprobe.http\""), "{}", out.stdout);
    assert!(out.stdout.contains("<failure type=\"auth_rejected\""), "{}", out.stdout);
    assert!(out.stdout.contains("<failure type=\"tls_untrusted\""), "{}", out.stdout);
    assert!(out.stdout.contains("name=\"cert &quot;soon&quot; &lt;expiring&gt; &amp; odd|name\""), "{}", out.stdout);
}

#[tokio::test]
async fn prometheus_text_passes_promtool() {
    let promtool = require_tool("promtool");
    let (out, ws, _servers) = mixed_run("prometheus").await;
    let metrics = ws.write("metrics.prom", &out.stdout);
    let (ok, text) = tool_output(
        std::process::Command::new(&promtool).args(["check", "metrics"]).stdin(std::fs::File::open(&metrics).unwrap()),
    );
    assert!(ok, "promtool rejected the metrics:\n{text}\n{}", out.stdout);
    let m = &out.stdout;
    assert!(m.contains("authprobe_probe_success{probe=\"healthy\",kind=\"http\"} 1"), "{m}");
    assert!(m.contains("authprobe_probe_success{probe=\"bad-token\",kind=\"http\"} 0"), "{m}");
    assert!(
        m.contains("authprobe_probe_success{probe=\"cert \\\"soon\\\" <expiring> & odd|name\",kind=\"http\"} 1"),
        "{m}"
    );
    assert!(m.contains("authprobe_stage_duration_seconds{probe=\"healthy\",kind=\"http\",stage=\"connect\"}"), "{m}");
    assert!(
        m.contains(
            "authprobe_probe_failure_info{probe=\"bad-token\",kind=\"http\",stage=\"auth\",class=\"auth_rejected\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains("authprobe_tls_cert_not_after_timestamp_seconds{probe=\"untrusted\",kind=\"http\"}"), "{m}");
    assert!(m.contains("# TYPE authprobe_last_run_timestamp_seconds gauge"), "{m}");
}

#[tokio::test]
async fn markdown_shows_failures_hints_and_fingerprints_to_approve() {
    let (out, _ws, _servers) = mixed_run("markdown").await;
    let md = &out.stdout;
    assert!(md.starts_with("## ❌ authprobe: 1 passed, 2 failed, 1 warned"), "{md}");
    assert!(md.contains("| Probe | Kind | Target | Status | Time | Details |"), "{md}");
    assert!(md.contains("**tls: tls_untrusted**"), "{md}");
    assert!(
        md.contains("Hint: set tls.ca to the CA that issued the certificate, or approve this exact certificate"),
        "{md}"
    );
    assert!(md.contains("cert \"soon\" &lt;expiring&gt; & odd\\|name"), "{md}");
    assert!(md.contains("### Certificates and host keys seen"), "{md}");
    assert!(md.contains("| **no** |"), "{md}");
}

#[tokio::test]
async fn table_has_one_row_per_probe_details_beneath_and_the_closing_line() {
    let (out, _ws, _servers) = mixed_run("table").await;
    let t = &out.stdout;
    assert!(
        t.lines().next().unwrap().split_whitespace().eq(["PROBE", "KIND", "TARGET", "STATUS", "TIME", "DETAIL"]),
        "{t}"
    );
    assert!(t.contains("auth: auth_rejected — HTTP 401 Unauthorized"), "{t}");
    assert!(t.contains("hint: "), "{t}");
    assert!(t.contains("warning: certificate expires in"), "{t}");
    assert!(!t.contains('\x1b'), "no colour when stdout is not a terminal: {t}");
    assert_eq!(t.lines().last().unwrap(), "1 passed, 2 failed, 1 warned");
}

#[tokio::test]
async fn verbose_table_adds_stage_timings_and_certificate_details() {
    let pki = util::certs::pki();
    let server = servers::https(&pki.server, ClientCerts::None).await;
    let ws = Workspace::new();
    let cfg = ws.config(&http_probe("a", &server.url("https", "/health"), &tls_ca(&pki)));
    let out = authprobe(&["run", "-c", cfg.to_str().unwrap(), "-v"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("dns ") && out.stdout.contains("· connect ") && out.stdout.contains("· tls "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("sha256 {}", pki.server.sha256())), "{}", out.stdout);
}
