//! The mssql probe against the harness's SQL Server: the official image where Docker runs,
//! the pysqlbridge stand-in here (TDS PRELOGIN, TLS inside TDS, SQL logins, Msg 18456).
//! Unknown database (4060) and permission (229) need the real server; see the README.

use crate::util::*;

fn ms_probe(name: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mssql\"\nhost = \"localhost\"\nport = \"${{AP_MSSQL_PORT}}\"\nuser = \"${{AP_MSSQL_USER}}\"\n{extra}\n\n"
    )
}

#[tokio::test]
async fn mssql_login_and_tls_paths() {
    let env = harness_env();
    let ws = Workspace::new();
    let pw = "password = \"${AP_MSSQL_PASSWORD}\"";
    let mut cfg = String::new();
    cfg += &ms_probe(
        "ok",
        &format!("{pw}\nquery = \"SELECT item FROM orders\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}"),
    );
    cfg += &ms_probe("ok-default-prefer", pw);
    cfg += &ms_probe("ok-pinned", &format!("{pw}\ntls = {{ pin_sha256 = [\"${{AP_SERVER_SHA256}}\"] }}"));
    cfg += &ms_probe(
        "wrong-password",
        "password = \"not-the-password\"\ntls = { mode = \"verify-full\", ca = \"${AP_CA}\" }",
    );
    cfg += &ms_probe(
        "untrusted-ca",
        &format!("{pw}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CERTS}}/rogue-ca.crt\" }}"),
    );
    cfg += &ms_probe(
        "wrong-name",
        &format!("{pw}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    cfg += &ms_probe(
        "verify-ca-ignores-name",
        &format!("{pw}\ntls = {{ mode = \"verify-ca\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let secret = harness_var(&env, "AP_MSSQL_PASSWORD");
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret) && !out.stdout.contains("not-the-password"));
    let report = out.json();
    let ok = assert_passed(&report, "ok");
    assert_eq!(ok["tls"]["verified"], true, "{ok:#}");
    assert_eq!(ok["tls"]["sha256"], harness_var(&env, "AP_SERVER_SHA256"));
    assert_eq!(assert_passed(&report, "ok-default-prefer")["tls"]["verified"], false);
    assert_eq!(assert_passed(&report, "ok-pinned")["tls"]["pinned"], true);
    let wrong = assert_failed(&report, "wrong-password", "auth", "auth_rejected");
    assert!(wrong["error"]["message"].as_str().unwrap().contains("Msg 18456"), "{wrong:#}");
    let untrusted = assert_failed(&report, "untrusted-ca", "tls", "tls_untrusted");
    assert!(untrusted["error"]["hint"].as_str().unwrap().contains("pin_sha256 = [\""), "{untrusted:#}");
    assert_failed(&report, "wrong-name", "tls", "tls_hostname");
    assert_passed(&report, "verify-ca-ignores-name");
}

#[tokio::test]
async fn mssql_check_and_inspect() {
    let env = harness_env();
    let port = harness_var(&env, "AP_MSSQL_PORT");
    let url = format!("mssql://app_user@localhost:{port}/?encrypt=verify-full&ssl-ca={}", harness_var(&env, "AP_CA"));
    let mut with_pw = env.clone();
    with_pw.push(("MSSQL_PASSWORD".into(), harness_var(&env, "AP_MSSQL_PASSWORD")));
    let out = authprobe_harness(&["check", &url, "--format", "json"], &with_pw).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = authprobe_harness(&["inspect", &format!("mssql://localhost:{port}")], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("sha256   {}", harness_var(&env, "AP_SERVER_SHA256"))), "{}", out.stdout);
}
