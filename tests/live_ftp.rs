//! The ftp probe against the harness's real vsftpd: explicit FTPS (with TLS session reuse
//! required, vsftpd's default), implicit FTPS, plain FTP with consent, every class the
//! kind claims produced by vsftpd for real, curl shown to agree on each case, and the
//! data connection through the SSH bastion and both proxies.

use std::process::Command;

use crate::util::*;

fn ftp_probe(name: &str, port_var: &str, extra: &str) -> String {
    let timeout = if extra.contains("timeout =") { "" } else { "timeout = \"5s\"\n" };
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"ftp\"\nhost = \"127.0.0.1\"\nport = \"${{{port_var}}}\"\n{timeout}{extra}\n\n"
    )
}

const LOGIN: &str = "user = \"${AP_FTP_USER}\"\npassword = \"${AP_FTP_PASSWORD}\"";
const VERIFIED: &str = "tls = { ca = \"${AP_CA}\" }";

/// curl's exit code and verbose transcript for an FTP URL (curl is the reference client).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new(require_tool("curl"))
        .args(["-sS", "-v", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn every_ftp_class_is_produced_by_vsftpd_and_curl_agrees() {
    let env = harness_env();
    let var = |name: &str| harness_var(&env, name);
    let ws = Workspace::new();
    let wrong = "CANARY-ftp-wrong-pw-81d2e0";
    let mut cfg = String::new();
    cfg += &ftp_probe("explicit", "AP_FTP_PORT", &format!("{LOGIN}\n{VERIFIED}\npath = \"drop\""));
    cfg += &ftp_probe(
        "implicit",
        "AP_FTPS_PORT",
        &format!("{LOGIN}\npath = \"drop\"\ntls = {{ mode = \"implicit\", ca = \"${{AP_CA}}\" }}"),
    );
    cfg += &ftp_probe(
        "plain-with-consent",
        "AP_FTP_PORT",
        &format!("{LOGIN}\npath = \"drop\"\ntls = {{ mode = \"disable\" }}\nallow_unverified_password = true"),
    );
    cfg += &ftp_probe("plain-without-consent", "AP_FTP_PORT", &format!("{LOGIN}\ntls = {{ mode = \"disable\" }}"));
    cfg += &ftp_probe("unverified-without-consent", "AP_FTP_PORT", &format!("{LOGIN}\ntls = {{ insecure = true }}"));
    cfg += &ftp_probe(
        "wrong-password",
        "AP_FTP_PORT",
        &format!("user = \"${{AP_FTP_USER}}\"\npassword = \"{wrong}\"\n{VERIFIED}"),
    );
    cfg += &ftp_probe(
        "denied-user",
        "AP_FTP_PORT",
        &format!("user = \"${{AP_FTP_DENIED_USER}}\"\npassword = \"${{AP_FTP_PASSWORD}}\"\n{VERIFIED}"),
    );
    cfg += &ftp_probe("missing-directory", "AP_FTP_PORT", &format!("{LOGIN}\n{VERIFIED}\npath = \"no-such-dir\""));
    cfg += &ftp_probe("private-directory", "AP_FTP_PORT", &format!("{LOGIN}\n{VERIFIED}\npath = \"private\""));
    cfg += &ftp_probe("unlistable-directory", "AP_FTP_PORT", &format!("{LOGIN}\n{VERIFIED}\npath = \"unlistable\""));
    cfg += &ftp_probe("large-directory", "AP_FTP_PORT", &format!("{LOGIN}\n{VERIFIED}\npath = \"big\""));
    cfg += &ftp_probe("anonymous-allowed", "AP_FTP_PORT", VERIFIED);
    cfg += &ftp_probe(
        "anonymous-refused",
        "AP_FTPS_PORT",
        "user = \"anonymous\"\ntls = { mode = \"implicit\", ca = \"${AP_CA}\" }",
    );
    cfg += &ftp_probe("expired-certificate", "AP_FTP_EXPIRED_PORT", &format!("{LOGIN}\n{VERIFIED}"));
    cfg += &ftp_probe("untrusted-certificate", "AP_FTP_UNTRUSTED_PORT", &format!("{LOGIN}\n{VERIFIED}"));
    cfg +=
        &ftp_probe("explicit-at-the-implicit-port", "AP_FTPS_PORT", &format!("{LOGIN}\n{VERIFIED}\ntimeout = \"2s\""));
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-vv"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for secret in [var("AP_FTP_PASSWORD"), wrong.to_string()] {
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "a secret leaked:\n{}", out.stdout);
    }
    let report = out.json();
    // `-v`'s details are the table's: the same run once more, shown as a person reads it.
    let table = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "-v"], &env).await.stdout;
    let stages = |p: &serde_json::Value| -> Vec<String> {
        p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
    };

    let explicit = assert_passed(&report, "explicit");
    assert_eq!(explicit["tls"]["verified"], true, "{explicit:#}");
    assert_eq!(explicit["tls"]["sha256"], var("AP_SERVER_SHA256").as_str(), "{explicit:#}");
    assert_eq!(stages(explicit), ["dns", "connect", "tls", "auth", "check"]);
    assert!(table.contains("drop lists (1 entry)"), "{explicit:#}");
    let implicit = assert_passed(&report, "implicit");
    assert_eq!(implicit["tls"]["verified"], true, "{implicit:#}");
    let plain = assert_passed(&report, "plain-with-consent");
    assert_eq!(stages(plain), ["dns", "connect", "auth", "check"]);
    assert!(table.contains("sent over plain FTP (allow_unverified_password = true)"), "{plain:#}");
    let large = assert_passed(&report, "large-directory");
    assert!(table.contains("the rest was not read"), "{large:#}");
    let anonymous = assert_passed(&report, "anonymous-allowed");
    assert!(table.contains(". lists (1 entry)"), "{anonymous:#}");

    let refused = assert_failed(&report, "plain-without-consent", "auth", "tls_handshake");
    assert!(refused["error"]["message"].as_str().unwrap().contains("did not send it"), "{refused:#}");
    assert!(refused["error"]["hint"].as_str().unwrap().contains("allow_unverified_password = true"), "{refused:#}");
    let unverified = assert_failed(&report, "unverified-without-consent", "auth", "tls_untrusted");
    assert!(unverified["error"]["hint"].as_str().unwrap().contains(&var("AP_SERVER_SHA256")), "{unverified:#}");
    let wrong_password = assert_failed(&report, "wrong-password", "auth", "auth_rejected");
    assert!(
        wrong_password["error"]["message"].as_str().unwrap().contains("530 Login incorrect."),
        "{wrong_password:#}"
    );
    let denied = assert_failed(&report, "denied-user", "auth", "auth_rejected");
    assert!(denied["error"]["message"].as_str().unwrap().contains("before asking for a password"), "{denied:#}");
    assert_failed(&report, "missing-directory", "check", "not_found");
    assert_failed(&report, "private-directory", "check", "permission_denied");
    let unlistable = assert_failed(&report, "unlistable-directory", "check", "permission_denied");
    assert!(unlistable["error"]["message"].as_str().unwrap().contains("may enter `unlistable` but not read it"));
    let anonymous_refused = assert_failed(&report, "anonymous-refused", "auth", "auth_rejected");
    assert!(anonymous_refused["error"]["message"].as_str().unwrap().contains("anonymous"), "{anonymous_refused:#}");
    assert_failed(&report, "expired-certificate", "tls", "tls_expired");
    let untrusted = assert_failed(&report, "untrusted-certificate", "tls", "tls_untrusted");
    assert_eq!(untrusted["tls"]["verified"], false, "{untrusted:#}");
    let silent = assert_failed(&report, "explicit-at-the-implicit-port", "connect", "timeout");
    assert!(silent["error"]["hint"].as_str().unwrap().contains("tls.mode = \"implicit\""), "{silent:#}");

    // curl, the reference client, on the same servers: it passes and fails the same cases
    // (its exit codes: 67 login denied, 9 directory refused, 60 certificate not verified).
    let user = var("AP_FTP_USER");
    let password = var("AP_FTP_PASSWORD");
    let login = format!("{user}:{password}");
    let ca = var("AP_CA");
    let url = |port: &str, path: &str| format!("ftp://127.0.0.1:{}/{path}", var(port));
    let explicit_curl = ["--ssl-reqd", "--cacert", ca.as_str()];
    let cases: Vec<(&str, Vec<String>, i32)> = vec![
        ("explicit", vec!["-u".into(), login.clone(), url("AP_FTP_PORT", "drop/")], 0),
        ("implicit", vec!["-u".into(), login.clone(), format!("ftps://127.0.0.1:{}/drop/", var("AP_FTPS_PORT"))], 0),
        ("plain-with-consent", vec!["-u".into(), login.clone(), url("AP_FTP_PORT", "drop/")], 0),
        ("wrong-password", vec!["-u".into(), format!("{user}:{wrong}"), url("AP_FTP_PORT", "")], 67),
        (
            "denied-user",
            vec!["-u".into(), format!("{}:{password}", var("AP_FTP_DENIED_USER")), url("AP_FTP_PORT", "")],
            67,
        ),
        ("missing-directory", vec!["-u".into(), login.clone(), url("AP_FTP_PORT", "no-such-dir/")], 9),
        ("private-directory", vec!["-u".into(), login.clone(), url("AP_FTP_PORT", "private/")], 9),
        ("anonymous-allowed", vec![url("AP_FTP_PORT", "")], 0),
        ("anonymous-refused", vec![format!("ftps://127.0.0.1:{}/", var("AP_FTPS_PORT"))], 67),
        ("expired-certificate", vec!["-u".into(), login.clone(), url("AP_FTP_EXPIRED_PORT", "")], 60),
        ("untrusted-certificate", vec!["-u".into(), login.clone(), url("AP_FTP_UNTRUSTED_PORT", "")], 60),
    ];
    for (case, args, expected) in cases {
        let mut argv: Vec<&str> = if case == "plain-with-consent" { vec![] } else { explicit_curl.to_vec() };
        if case == "implicit" || case == "anonymous-refused" {
            argv = vec!["--cacert", ca.as_str()];
        }
        argv.extend(args.iter().map(String::as_str));
        let (code, transcript) = curl(&argv);
        assert_eq!(code, expected, "curl on `{case}` exited {code}:\n{transcript}");
    }
    // vsftpd's answer for a directory that may be entered but not read: curl exits 0 with
    // an empty listing, and the transcript shows what authprobe reads as permission_denied.
    let (code, transcript) = curl(&[&explicit_curl[..], &["-u", &login, &url("AP_FTP_PORT", "unlistable/")]].concat());
    assert_eq!(code, 0, "{transcript}");
    assert!(transcript.contains("226 Transfer done (but failed to open directory)."), "{transcript}");
}

#[tokio::test]
async fn ftp_goes_through_the_bastion_and_both_proxies_data_connection_included() {
    let env = harness_env();
    let var = |name: &str| harness_var(&env, name);
    let ws = Workspace::new();
    let proxy = |scheme: &str, port: &str| {
        format!("proxy = \"{scheme}://${{AP_PROXY_USER}}:${{AP_PROXY_PASSWORD}}@127.0.0.1:${{{port}}}\"")
    };
    let mut cfg = "[[tunnel]]\nname = \"bastion\"\nhost = \"127.0.0.1\"\nport = \"${AP_BASTION_PORT}\"\nuser = \"${AP_BASTION_USER}\"\nauth = { type = \"key\", private_key = \"${AP_BASTION_DIR}/jump_ed25519\" }\nhost_key = \"${AP_BASTION_HOST_KEY}\"\n\n".to_string();
    // Inside the bastion's namespace the server listens on AP_INNER_FTP_PORT, and its passive
    // ports at their own numbers; nothing outside reaches them there.
    cfg += &ftp_probe(
        "via-bastion",
        "AP_INNER_FTP_PORT",
        &format!("{LOGIN}\n{VERIFIED}\npath = \"drop\"\nvia = \"bastion\""),
    );
    cfg += &ftp_probe(
        "via-http-proxy",
        "AP_FTP_PORT",
        &format!("{LOGIN}\n{VERIFIED}\npath = \"drop\"\n{}", proxy("http", "AP_SQUID_PORT")),
    );
    cfg += &ftp_probe(
        "via-socks5",
        "AP_FTP_PORT",
        &format!("{LOGIN}\n{VERIFIED}\npath = \"drop\"\n{}", proxy("socks5h", "AP_SOCKS_PORT")),
    );
    let path = ws.config(&cfg);
    let squid_before = std::fs::read_to_string(var("AP_SQUID_LOG")).unwrap_or_default().len();
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report = out.json();
    for name in ["via-bastion", "via-http-proxy", "via-socks5"] {
        let p = assert_passed(&report, name);
        let stages = p["stages"].to_string();
        assert!(stages.contains("\"check\""), "{p:#}");
    }
    let table = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "-v"], &env).await.stdout;
    assert_eq!(table.matches("ftp: drop lists (1 entry)").count(), 3, "{table}");
    // The data connection went through squid too: a CONNECT to one of the passive ports.
    let log = std::fs::read_to_string(var("AP_SQUID_LOG")).unwrap_or_default();
    let (low, high) = var("AP_FTP_PASV")
        .split_once(':')
        .map(|(a, b)| (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()))
        .unwrap();
    let data_through_squid = log[squid_before.min(log.len())..]
        .lines()
        .filter(|l| l.contains("CONNECT"))
        .any(|l| (low..=high).any(|p| l.contains(&format!("127.0.0.1:{p} "))));
    assert!(data_through_squid, "no CONNECT to a passive port in squid's log:\n{log}");
}

#[tokio::test]
async fn check_and_inspect_speak_ftp_and_ftps_urls() {
    let env = harness_env();
    let var = |name: &str| harness_var(&env, name);
    let mut with_password = env.clone();
    with_password.push(("FTP_PASSWORD".into(), var("AP_FTP_PASSWORD")));
    let ca = var("AP_CA");
    let explicit = format!("ftp://{}@127.0.0.1:{}/drop", var("AP_FTP_USER"), var("AP_FTP_PORT"));
    let out = authprobe_harness(&["check", &explicit, "--ca", &ca], &with_password).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = authprobe_harness(&["check", &explicit, "--tls", "disable", "--format", "json"], &with_password).await;
    let report = out.json();
    let refused = assert_failed(&report, "check", "auth", "tls_handshake");
    assert!(refused["error"]["hint"].as_str().unwrap().contains("--allow-unverified-password"), "{refused:#}");
    let implicit = format!("ftps://{}@127.0.0.1:{}/drop", var("AP_FTP_USER"), var("AP_FTPS_PORT"));
    let out = authprobe_harness(&["check", &implicit, "--ca", &ca], &with_password).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out =
        authprobe_harness(&["check", &format!("ftp://127.0.0.1:{}/", var("AP_FTP_PORT")), "--ca", &ca], &env).await;
    assert_eq!(out.code, 0, "anonymous: {}{}", out.stdout, out.stderr);
    let out =
        authprobe_harness(&["check", &format!("ftp://{}@127.0.0.1:{}/", var("AP_FTP_USER"), var("AP_FTP_PORT"))], &env)
            .await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("FTP_PASSWORD"), "{}", out.stderr);

    // inspect: AUTH TLS then the chain for ftp://, the chain first for ftps:// (port 990 by
    // default, given here).
    for target in
        [format!("ftp://127.0.0.1:{}", var("AP_FTP_PORT")), format!("ftps://127.0.0.1:{}", var("AP_FTPS_PORT"))]
    {
        let out = authprobe_harness(&["inspect", &target, "--ca", &ca], &env).await;
        assert_eq!(out.code, 0, "{target}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("(ftp, TLSv1.3)") && out.stdout.contains(&var("AP_SERVER_SHA256")),
            "{}",
            out.stdout
        );
    }
    let out =
        authprobe_harness(&["inspect", &format!("ftp://127.0.0.1:{}", var("AP_FTP_EXPIRED_PORT")), "--ca", &ca], &env)
            .await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&var("AP_FTP_EXPIRED_SHA256")), "{}", out.stdout);
}

/// An untrusted certificate, approved as a record (who, when): the probe then trusts it for
/// that endpoint, the data connection's resumed session included, and sends the password.
#[tokio::test]
async fn an_approved_ftps_certificate_is_trusted_for_its_endpoint() {
    let env = harness_env();
    let var = |name: &str| harness_var(&env, name);
    let ws = Workspace::new();
    let dir = ws.path("");
    let password = var("AP_FTP_PASSWORD");
    let vars = [("FTP_PASSWORD", password.as_str())];
    let url = format!("ftp://{}@127.0.0.1:{}/drop", var("AP_FTP_USER"), var("AP_FTP_UNTRUSTED_PORT"));
    let before = authprobe_in(Some(&dir), &["check", &url, "--format", "json"], &vars).await;
    let report = before.json();
    let refused = assert_failed(&report, "check", "tls", "tls_untrusted");
    assert!(refused["approve"].as_str().unwrap_or_default().contains("authprobe approve"), "{refused:#}");
    let approved = authprobe_in(Some(&dir), &["approve", &url, "--yes", "--by", "alice"], &vars).await;
    assert_eq!(approved.code, 0, "{}{}", approved.stdout, approved.stderr);
    let record = std::fs::read_to_string(dir.join("approvals.toml")).unwrap();
    assert!(record.contains("validated_by = \"alice\"") && record.contains(&var("AP_UNTRUSTED_SHA256")), "{record}");
    assert!(!record.contains(&password), "{record}");
    let after = authprobe_in(Some(&dir), &["check", &url, "--format", "json"], &vars).await;
    assert_eq!(after.code, 0, "{}{}", after.stdout, after.stderr);
    assert_eq!(after.json()["probes"][0]["tls"]["approved"]["by"], "alice", "{}", after.stdout);
}

/// A server without TLS refuses AUTH TLS (`tls_handshake` at `tls`, its reply quoted), and
/// a server at its client limit turns the next one away with 421 (`unexpected_response` at
/// `connect`); curl meets the same answers.
#[tokio::test]
async fn auth_tls_refused_and_a_full_server_are_their_own_classes() {
    use tokio::io::AsyncReadExt;
    let env = harness_env();
    let port = harness_var(&env, "AP_FTP_NOTLS_PORT");
    let ws = Workspace::new();
    let path = ws.config(&ftp_probe("no-tls-here", "AP_FTP_NOTLS_PORT", "tls = { ca = \"${AP_CA}\" }"));
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    let refused = assert_failed(&report, "no-tls-here", "tls", "tls_handshake");
    assert!(refused["error"]["message"].as_str().unwrap().contains("refused AUTH TLS: 530"), "{refused:#}");
    let (code, transcript) = curl(&["--ssl-reqd", &format!("ftp://127.0.0.1:{port}/")]);
    assert_eq!(code, 64, "curl requires TLS and is refused it too:\n{transcript}");

    // The one client this server takes: connected and greeted, held open. vsftpd counts a
    // session until its process has exited, so the connections above may still fill the
    // slot for a moment on a loaded machine: wait for it to free up.
    let mut greeting = [0u8; 64];
    let mut attempts = 0;
    let holder = loop {
        let mut holder = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
        let n = holder.read(&mut greeting).await.unwrap();
        if greeting[..n].starts_with(b"220") {
            break holder;
        }
        attempts += 1;
        assert!(attempts < 50, "the slot never freed: {:?}", String::from_utf8_lossy(&greeting[..n]));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let plain = ws.config(&ftp_probe("full", "AP_FTP_NOTLS_PORT", "tls = { mode = \"disable\" }"));
    let out = authprobe_harness(&["run", "-c", plain.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    let full = assert_failed(&report, "full", "connect", "unexpected_response");
    assert!(full["error"]["message"].as_str().unwrap().contains("turned the connection away: 421"), "{full:#}");
    let (code, transcript) = curl(&[&format!("ftp://127.0.0.1:{port}/")]);
    assert_ne!(code, 0, "{transcript}");
    assert!(transcript.contains("421"), "{transcript}");
    drop(holder);
}
