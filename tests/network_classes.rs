//! Network-level failure classes, each produced by a real peer misbehaving on loopback.

use crate::util::servers;
use crate::util::{self, *};

#[tokio::test]
async fn refused_timeout_reset_and_wrong_protocol() {
    let pki = util::certs::pki();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = servers::silent().await;
    let stall = servers::stall_after_hello().await;
    let reset = servers::reset_after_hello().await;
    let ssh_like = servers::wrong_protocol().await;
    let plain = servers::http().await;
    let ws = Workspace::new();
    let mut cfg = String::from("[defaults]\ntimeout = \"1s\"\n\n");
    cfg += &http_probe("refused", &format!("http://127.0.0.1:{closed_port}/"), "");
    cfg += &http_probe("silent-http", &silent.url("http", "/health"), "");
    cfg += &http_probe("stall-tls", &stall.url("https", "/health"), &tls_ca(&pki));
    cfg += &http_probe("reset-tls", &reset.url("https", "/health"), &tls_ca(&pki));
    cfg += &http_probe("ssh-not-http", &ssh_like.url("http", "/"), "");
    cfg += &http_probe("tls-to-plaintext", &plain.url("https", "/health"), &tls_ca(&pki));
    cfg += &http_probe("fine", &plain.url("http", "/health"), "");
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 1);
    assert_failed(&report, "refused", "connect", "connect_refused");
    for (name, stage) in [("silent-http", "check"), ("stall-tls", "tls")] {
        let p = assert_failed(&report, name, stage, "timeout");
        let ms = p["duration_ms"].as_u64().unwrap();
        // Generous upper bound: CI machines are noisy; the tight +10% bound is for the fault-injection suite.
        assert!((1000..1500).contains(&ms), "{name} took {ms} ms for a 1 s timeout");
        assert!(p["error"]["message"].as_str().unwrap().contains(&format!("{stage} stage")), "{p:#}");
    }
    assert_failed(&report, "reset-tls", "tls", "network");
    assert_failed(&report, "ssh-not-http", "check", "protocol");
    let p = assert_failed(&report, "tls-to-plaintext", "tls", "protocol");
    assert!(p["error"]["hint"].as_str().unwrap().contains("plain text"), "{p:#}");
    // The misbehaving peers did not hold up or break the healthy probe.
    let fine = assert_passed(&report, "fine");
    assert!(fine["duration_ms"].as_u64().unwrap() < 500, "{fine:#}");
}

/// The resolver itself says the name does not exist: the binary runs in a private mount
/// namespace whose resolv.conf points at an NXDOMAIN server on a loopback address, so no
/// query leaves the machine.
#[tokio::test]
async fn an_unknown_host_name_is_a_dns_failure() {
    util::require_tool("unshare");
    let ip = "127.0.0.153";
    let _dns = servers::nxdomain_dns(ip).await;
    let ws = Workspace::new();
    let resolv = ws.write("resolv.conf", &format!("nameserver {ip}\noptions timeout:1 attempts:1\n"));
    let cfg =
        ws.config(&http_probe("no-such-host", "http://no-such-host.authprobe.test:8080/health", "timeout = \"5s\""));
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec {} run -c {} --format json",
        resolv.display(),
        util::BIN,
        cfg.display()
    );
    let out = tokio::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let p = assert_failed(&report, "no-such-host", "dns", "dns");
    assert!(p["error"]["message"].as_str().unwrap().contains("no-such-host.authprobe.test"), "{p:#}");
}

/// SSH peers that misbehave before any credential is sent: for the sftp probe they fail
/// its `connect` stage, for a tunnel its `tunnel_connect` stage, never the target's.
#[tokio::test]
async fn ssh_peers_that_hang_reset_or_speak_http() {
    let silent = servers::silent().await;
    let reset = servers::reset_after_hello().await;
    let http = servers::http().await;
    let ws = Workspace::new();
    let login = "user = \"u\"\nauth = { type = \"password\", password = \"CANARY-ssh-peer-pw-71c3\" }";
    let sftp = |name: &str, port: u16| {
        format!("[[probe]]\nname = \"{name}\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\n{login}\n\n")
    };
    let mut cfg = String::from("[defaults]\ntimeout = \"1s\"\n\n");
    cfg += &format!("[[tunnel]]\nname = \"hung-bastion\"\nhost = \"127.0.0.1\"\nport = {}\n{login}\n\n", silent.port());
    cfg += &format!(
        "[[tunnel]]\nname = \"resetting-bastion\"\nhost = \"127.0.0.1\"\nport = {}\n{login}\n\n",
        reset.port()
    );
    cfg += &sftp("sftp-silent", silent.port());
    cfg += &sftp("sftp-reset", reset.port());
    cfg += &sftp("sftp-to-http", http.port());
    cfg += &http_probe("via-hung-bastion", "http://127.0.0.1:9/", "via = \"hung-bastion\"");
    cfg += &http_probe("via-resetting-bastion", "http://127.0.0.1:9/", "via = \"resetting-bastion\"");
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 1);
    assert!(!out.stdout.contains("CANARY-ssh-peer-pw-71c3"));
    for (name, stage) in [("sftp-silent", "connect"), ("via-hung-bastion", "tunnel_connect")] {
        let p = assert_failed(&report, name, stage, "timeout");
        let ms = p["duration_ms"].as_u64().unwrap();
        assert!((1000..1500).contains(&ms), "{name} took {ms} ms for a 1 s timeout");
    }
    assert_failed(&report, "sftp-reset", "connect", "network");
    let resetting = assert_failed(&report, "via-resetting-bastion", "tunnel_connect", "network");
    assert!(
        resetting["error"]["message"].as_str().unwrap().starts_with("tunnel `resetting-bastion`: "),
        "{resetting:#}"
    );
    let http_peer = assert_failed(&report, "sftp-to-http", "connect", "protocol");
    assert!(
        http_peer["error"]["message"].as_str().unwrap().contains("did not answer with an SSH banner"),
        "{http_peer:#}"
    );
}
