//! Credentials that carry their own end (issue 35): client certificates against the
//! harness's nginx (which verifies them), and bearer JWTs. Each appears in the report's
//! `credentials` list and in Prometheus' `authprobe_credential_not_after_timestamp_seconds`;
//! one near its end warns, one past it is refused before it is sent.

use base64::Engine;

use crate::util::servers::{self, ClientCerts};
use crate::util::*;

/// A client certificate signed by the harness CA that has lived 362 days of 365 (made with
/// OpenSSL under faketime, so that it is not a short-lived one in its first quarter).
fn nearly_expired_client_cert(ws: &Workspace, env: &[(String, String)]) -> (String, String) {
    let certs = harness_var(env, "AP_CERTS");
    let key = ws.path("nearly.key");
    let csr = ws.path("nearly.csr");
    let crt = ws.path("nearly.crt");
    let ext = ws.write("client.ext", "extendedKeyUsage=clientAuth\n");
    let openssl = require_tool("openssl");
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().expect("run openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(std::process::Command::new(&openssl)
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=nearly-expired-client",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    run(std::process::Command::new(require_tool("faketime"))
        .args(["-f", "-362d"])
        .arg(&openssl)
        .args(["x509", "-req", "-days", "365", "-set_serial", "4242"])
        .arg("-in")
        .arg(&csr)
        .args(["-CA", &format!("{certs}/ca.crt"), "-CAkey", &format!("{certs}/ca.key")])
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&crt));
    (crt.display().to_string(), key.display().to_string())
}

#[tokio::test]
async fn client_certificates_near_and_past_their_end_warn_and_are_refused() {
    let env = harness_env();
    let ws = Workspace::new();
    let pki = certs::pki();
    let (crt, key) = nearly_expired_client_cert(&ws, &env);
    let url = format!("https://localhost:{}/health", harness_var(&env, "AP_MTLS_PORT"));
    let mut cfg = http_probe(
        "nearly-expired",
        &url,
        &format!("tls = {{ ca = \"${{AP_CA}}\", client_cert = \"{crt}\", client_key = \"{key}\" }}"),
    );
    cfg += &http_probe(
        "expired",
        &url,
        &format!(
            "tls = {{ ca = \"${{AP_CA}}\", client_cert = \"{}\", client_key = \"{}\" }}",
            pki.expired_client.cert_path.display(),
            pki.expired_client.key_path.display()
        ),
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    // nginx verified the certificate and let it in; the probe warns that it ends soon.
    let nearly =
        assert_warned(&report, "nearly-expired", "the client certificate CN=nearly-expired-client expires in ");
    let listed = &nearly["credentials"][0];
    assert_eq!(listed["what"], "the client certificate CN=nearly-expired-client", "{nearly:#}");
    let left = listed["seconds_left"].as_i64().unwrap();
    assert!((2 * 86_400..3 * 86_400 + 60).contains(&left), "{nearly:#}");
    assert_eq!(nearly["credential"], *listed, "the version-1 field is the list's first");
    let expired = assert_failed(&report, "expired", "tls", "tls_client_cert");
    let message = expired["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("CN=expired-client expired 2 days") && message.contains("did not present it"),
        "{message}"
    );
    assert!(expired["credentials"][0]["seconds_left"].as_i64().unwrap() < 0, "{expired:#}");

    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "prometheus"], &env).await;
    assert!(
        out.stdout.contains("authprobe_credential_not_after_timestamp_seconds{probe=\"nearly-expired\",kind=\"http\",credential=\"the client certificate CN=nearly-expired-client\"} "),
        "{}",
        out.stdout
    );
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "markdown"], &env).await;
    assert!(
        out.stdout.contains("### Credentials that expire") && out.stdout.contains("CN=expired-client"),
        "{}",
        out.stdout
    );
}

fn jwt(claims: &str) -> String {
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.{}", enc("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"), enc(claims), enc("not-checked-here"))
}

#[tokio::test]
async fn bearer_jwts_are_read_for_their_end_and_opaque_tokens_say_nothing() {
    let pki = certs::pki();
    let server = servers::https(&pki.server, ClientCerts::None).await;
    let url = server.url("https", "/health");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let in_two_days =
        jwt(&format!("{{\"sub\":\"svc\",\"iat\":{},\"exp\":{}}}", now - 88 * 86_400, now + 2 * 86_400 + 600));
    let hour_long = jwt(&format!("{{\"iat\":{},\"exp\":{}}}", now - 60, now + 3540));
    let expired = jwt(&format!("{{\"iat\":{},\"exp\":{}}}", now - 7200, now - 3600));
    let ws = Workspace::new();
    let bearer = |token: &str| format!("{}\nauth = {{ type = \"bearer\", token = \"{token}\" }}", tls_ca(&pki));
    let mut cfg = http_probe("jwt-two-days", &url, &bearer(&in_two_days));
    cfg += &http_probe("jwt-hour-long", &url, &bearer(&hour_long));
    cfg += &http_probe("jwt-expired", &url, &bearer(&expired));
    cfg += &http_probe("opaque", &url, &bearer("an-opaque-token-7f3a"));
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    for token in [&in_two_days, &hour_long, &expired] {
        assert!(!out.stdout.contains(token.as_str()), "a token leaked");
    }
    assert_warned(&report, "jwt-two-days", "the bearer token (a JWT) expires in 2 days");
    // A one-hour token with most of its hour left: listed, not warned about.
    let hour = assert_passed(&report, "jwt-hour-long");
    assert_eq!(hour["status"], "pass", "{hour:#}");
    assert_eq!(hour["credentials"][0]["what"], "the bearer token (a JWT)", "{hour:#}");
    let refused = assert_failed(&report, "jwt-expired", "auth", "auth_rejected");
    assert!(refused["error"]["message"].as_str().unwrap().contains("expired 1h 0m ago"), "{refused:#}");
    assert_eq!(server.requests(), 3, "the expired token's probe sent a request");
    let opaque = assert_passed(&report, "opaque");
    assert_eq!(opaque["credentials"], serde_json::json!([]), "{opaque:#}");
    assert!(opaque["credential"].is_null(), "{opaque:#}");
}

/// A host certificate (the harness's second sshd presents its key certified by a host CA,
/// in its last 3 days): asked for as ssh asks, trusted through an `@cert-authority` line of
/// known_hosts or by the certified key's own approval, listed among the credentials with
/// its end (warning); a CA that did not sign it is no trust, and the refusal says so. The
/// same known_hosts lets OpenSSH's own client in (so the two agree on the CA line).
#[tokio::test]
async fn ssh_host_certificates_are_trusted_by_their_ca_and_their_ends_read() {
    let env = harness_env();
    let ws = Workspace::new();
    let port = harness_var(&env, "AP_SSH_HOSTCERT_PORT");
    let ca = std::fs::read_to_string(harness_var(&env, "AP_SSH_HOST_CA")).unwrap();
    let user_ca = std::fs::read_to_string(format!("{}/user_ca.pub", harness_var(&env, "AP_SSH_DIR"))).unwrap();
    let by_ca = ws.write("known_hosts", &format!("@cert-authority [127.0.0.1]:{port} {ca}"));
    let by_other_ca = ws.write("known_hosts_other", &format!("@cert-authority [127.0.0.1]:{port} {user_ca}"));
    let sftp = |name: &str, trust: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = \"${{AP_SSH_HOSTCERT_PORT}}\"\n\
             user = \"${{AP_SFTP_KEY_USER}}\"\npath = \"data\"\n{trust}\n\
             auth = {{ type = \"key\", private_key = \"${{AP_SSH_DIR}}/client_ed25519\" }}\n\n"
        )
    };
    let mut cfg = sftp("by-ca", &format!("known_hosts = \"{}\"", by_ca.display()));
    cfg += &sftp("by-key", "host_key = \"${AP_SSH_HOST_KEY}\"");
    cfg += &sftp("by-another-ca", &format!("known_hosts = \"{}\"", by_other_ca.display()));
    let path = ws.config(&cfg);
    let (out, report) = run_json(&path, &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for name in ["by-ca", "by-key"] {
        let probe = assert_warned(&report, name, "SSH host certificate");
        let credential = &probe["credentials"][0];
        assert!(credential["what"].as_str().unwrap().contains("`authprobe-test-host`"), "{probe:#}");
        let left = credential["seconds_left"].as_i64().unwrap();
        assert!((2 * 86_400..3 * 86_400 + 60).contains(&left), "{probe:#}");
        assert_eq!(probe["host_key"]["verified"], true, "{probe:#}");
    }
    let table = authprobe(&["run", "-c", path.to_str().unwrap(), "-v"], &[]).await;
    assert!(table.stdout.contains("host key approved: certified by CA SHA256:"), "{}", table.stdout);
    let refused = assert_failed(&report, "by-another-ca", "connect", "host_key");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("not by the @cert-authority"), "{message}");
    assert!(refused["credentials"].as_array().is_none_or(|c| c.is_empty()), "{refused:#}");
    crate::formats::assert_matches_schema(&ws, &serde_json::to_string(&report).unwrap());

    let ssh = require_tool("ssh");
    let out = std::process::Command::new(ssh)
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", by_ca.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-i"])
        .arg(format!("{}/client_ed25519", harness_var(&env, "AP_SSH_DIR")))
        .args(["-p", &port, &format!("{}@127.0.0.1", harness_var(&env, "AP_SFTP_KEY_USER")), "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "OpenSSH refused what authprobe trusted: {}", String::from_utf8_lossy(&out.stderr));
}
