//! Fault injection for every probe kind: peers that hang, stall after the hello, reset
//! mid-handshake, speak another protocol, trickle a byte a second, or send a 1 GB body.
//! Each probe ends within its timeout plus 10%, at the right stage with the right class,
//! memory stays bounded, and a healthy probe in the same run is not held up.

use crate::util::faults::{self, Fault, Speaks};
use crate::util::servers::{self, Server};
use crate::util::*;

const TIMEOUT_MS: u64 = 2_000;

/// One probe table against `port`, for the kind a peer speaks.
fn probe_for(name: &str, speaks: Speaks, port: u16) -> String {
    let body = match speaks {
        Speaks::Http => format!("kind = \"http\"\nurl = \"http://127.0.0.1:{port}/health\""),
        Speaks::Tls => format!("kind = \"http\"\nurl = \"https://localhost:{port}/health\""),
        Speaks::Postgres => format!(
            "kind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\npassword = \"CANARY-fault-pg-5c1e\"\ntls = {{ mode = \"require\" }}"
        ),
        Speaks::Mysql => format!(
            "kind = \"mysql\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\npassword = \"CANARY-fault-my-8d2a\"\ntls = {{ mode = \"require\" }}"
        ),
        Speaks::Mssql => format!(
            "kind = \"mssql\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\npassword = \"CANARY-fault-ms-3f7b\"\ntls = {{ mode = \"require\" }}"
        ),
        Speaks::Ssh => format!(
            "kind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\nauth = {{ type = \"password\", password = \"CANARY-fault-ssh-9e40\" }}"
        ),
    };
    format!("[[probe]]\nname = \"{name}\"\ntimeout = \"{TIMEOUT_MS}ms\"\n{body}\n\n")
}

fn s3_probe_for(name: &str, scheme: &str, port: u16) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"s3\"\ntimeout = \"{TIMEOUT_MS}ms\"\nbucket = \"b\"\nendpoint = \"{scheme}://localhost:{port}\"\nauth = {{ type = \"static\", access_key_id = \"AKIAFAULT\", secret_access_key = \"CANARY-fault-s3-2b8d\" }}\n\n"
    )
}

/// A probe's name, its peer, the S3 endpoint scheme when the probe is s3, and the stage
/// and class it must fail with.
type Case = (&'static str, Speaks, Fault, Option<&'static str>, &'static str, &'static str);

#[tokio::test]
async fn every_kind_survives_every_misbehaving_peer() {
    use Fault::*;
    use Speaks::*;
    let cases: Vec<Case> = vec![
        ("http-silent", Http, Silent, None, "check", "timeout"),
        ("http-wrong-protocol", Http, WrongProtocol, None, "check", "protocol"),
        ("http-trickle", Http, Trickle, None, "check", "timeout"),
        ("https-silent", Tls, Silent, None, "tls", "timeout"),
        ("https-stall-after-hello", Tls, StallAfterHello, None, "tls", "timeout"),
        ("https-reset-after-hello", Tls, ResetAfterHello, None, "tls", "network"),
        ("https-wrong-protocol", Tls, WrongProtocol, None, "tls", "protocol"),
        ("https-trickle", Tls, Trickle, None, "tls", "timeout"),
        ("postgres-silent", Postgres, Silent, None, "tls", "timeout"),
        ("postgres-stall-after-hello", Postgres, StallAfterHello, None, "tls", "timeout"),
        ("postgres-reset-after-hello", Postgres, ResetAfterHello, None, "tls", "network"),
        ("postgres-wrong-protocol", Postgres, WrongProtocol, None, "tls", "protocol"),
        ("postgres-trickle", Postgres, Trickle, None, "tls", "timeout"),
        ("mysql-silent", Mysql, Silent, None, "tls", "timeout"),
        ("mysql-stall-after-hello", Mysql, StallAfterHello, None, "tls", "timeout"),
        ("mysql-reset-after-hello", Mysql, ResetAfterHello, None, "tls", "network"),
        ("mysql-wrong-protocol", Mysql, WrongProtocol, None, "tls", "protocol"),
        ("mysql-trickle", Mysql, Trickle, None, "tls", "timeout"),
        ("mssql-silent", Mssql, Silent, None, "tls", "timeout"),
        ("mssql-stall-after-hello", Mssql, StallAfterHello, None, "tls", "timeout"),
        ("mssql-reset-after-hello", Mssql, ResetAfterHello, None, "tls", "network"),
        ("mssql-wrong-protocol", Mssql, WrongProtocol, None, "tls", "protocol"),
        ("mssql-trickle", Mssql, Trickle, None, "tls", "timeout"),
        ("s3-silent", Http, Silent, Some("http"), "auth", "timeout"),
        ("s3-wrong-protocol", Http, WrongProtocol, Some("http"), "auth", "protocol"),
        ("s3-trickle", Http, Trickle, Some("http"), "auth", "timeout"),
        ("s3-tls-stall-after-hello", Tls, StallAfterHello, Some("https"), "tls", "timeout"),
        ("s3-tls-reset-after-hello", Tls, ResetAfterHello, Some("https"), "tls", "network"),
        ("sftp-silent", Ssh, Silent, None, "connect", "timeout"),
        ("sftp-stall-after-hello", Ssh, StallAfterHello, None, "connect", "timeout"),
        ("sftp-reset-after-hello", Ssh, ResetAfterHello, None, "connect", "network"),
        ("sftp-wrong-protocol", Ssh, WrongProtocol, None, "connect", "protocol"),
        ("sftp-trickle", Ssh, Trickle, None, "connect", "timeout"),
    ];
    let healthy = servers::http().await;
    let mut peers: Vec<Server> = Vec::new();
    let mut cfg =
        format!("[defaults]\nconcurrency = 64\n\n{}", http_probe("healthy", &healthy.url("http", "/health"), ""));
    for (name, speaks, fault, s3, _, _) in &cases {
        let peer = faults::peer(*speaks, *fault).await;
        cfg += &match s3 {
            Some(scheme) => s3_probe_for(name, scheme, peer.port()),
            None => probe_for(name, *speaks, peer.port()),
        };
        peers.push(peer);
    }
    let ws = Workspace::new();
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 1);
    assert!(!out.stdout.contains("CANARY-fault"), "a password leaked");
    let healthy_probe = assert_passed(&report, "healthy");
    assert!(healthy_probe["duration_ms"].as_u64().unwrap() < 500, "the healthy probe was held up: {healthy_probe:#}");
    let mut wrong = Vec::new();
    for (name, _, _, _, stage, class) in &cases {
        let p = probe(&report, name);
        let (got_stage, got_class) = (p["error"]["stage"].as_str(), p["error"]["class"].as_str());
        let ms = p["duration_ms"].as_u64().unwrap_or(0);
        if got_stage != Some(stage) || got_class != Some(class) {
            wrong.push(format!(
                "{name}: expected {stage}/{class}, got {got_stage:?}/{got_class:?}: {}",
                p["error"]["message"]
            ));
        }
        let limit = TIMEOUT_MS + TIMEOUT_MS / 10;
        if *class == "timeout" && !(TIMEOUT_MS..=limit).contains(&ms) {
            wrong.push(format!("{name}: a {TIMEOUT_MS} ms timeout took {ms} ms"));
        }
        if *class != "timeout" && ms > limit {
            wrong.push(format!("{name}: took {ms} ms to fail as {class}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The most memory any child of this test process has used, in MiB.
fn children_peak_rss_mib() -> u64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    (usage.ru_maxrss as u64) / 1024
}

#[tokio::test]
async fn a_one_gigabyte_body_is_not_read_whole() {
    let huge = faults::huge_body(1 << 30).await;
    let healthy = servers::http().await;
    let url = huge.url("http", "/report");
    let mut cfg = http_probe("status-only", &url, "timeout = \"10s\"");
    cfg += &http_probe("body-search", &url, "timeout = \"10s\"\nexpect = { body_contains = \"needle\" }");
    cfg += &s3_probe_for("s3-listing", "http", huge.port()).replace("2000ms", "10s");
    cfg += &http_probe("healthy", &healthy.url("http", "/health"), "");
    let ws = Workspace::new();
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let peak = children_peak_rss_mib();
    assert!(peak < 96, "authprobe used {peak} MiB against a 1 GB body");
    assert_passed(&report, "status-only");
    let search = assert_failed(&report, "body-search", "check", "unexpected_response");
    assert!(search["error"]["message"].as_str().unwrap().contains("in the first 1024 KiB"), "{search:#}");
    let s3 = assert_failed(&report, "s3-listing", "check", "unexpected_response");
    assert!(s3["error"]["message"].as_str().unwrap().contains("more than 4 MiB"), "{s3:#}");
    for name in ["status-only", "body-search", "s3-listing", "healthy"] {
        let ms = probe(&report, name)["duration_ms"].as_u64().unwrap();
        assert!(ms < 2_000, "{name} took {ms} ms: a large body must not be read to the end");
    }
}
