//! The postgres probe against the harness's real PostgreSQL: every class it claims,
//! produced by the server for real.

use crate::util::*;

fn pg_probe(name: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${{AP_PG_PORT}}\"\n{extra}\n\n"
    )
}

#[tokio::test]
async fn postgres_passes_and_fails_with_the_servers_own_codes() {
    let env = harness_env();
    let ws = Workspace::new();
    let full = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let app = "database = \"appdb\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_PASSWORD}\"";
    let cert_tls = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\", client_cert = \"${AP_CERTS}/client-pg.crt\", client_key = \"${AP_CERTS}/client-pg.key\" }";
    let mut cfg = String::new();
    cfg += &pg_probe("ok-verify-full", &format!("{app}\n{full}\nquery = \"SELECT item FROM orders\""));
    cfg += &pg_probe("ok-default-prefer", app);
    let limited = "user = \"${AP_PG_LIMITED_USER}\"\npassword = \"${AP_PG_LIMITED_PASSWORD}\"";
    cfg += &pg_probe(
        "wrong-password",
        &format!("database = \"appdb\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"not-the-password\"\n{full}"),
    );
    cfg += &pg_probe(
        "no-such-db",
        &format!("database = \"nosuchdb\"\nuser = \"${{AP_PG_USER}}\"\npassword = \"${{AP_PG_PASSWORD}}\"\n{full}"),
    );
    cfg += &pg_probe(
        "cert-user-untrusted-cert",
        "database = \"appdb\"\nuser = \"${AP_PG_CERT_USER}\"\ntls = { mode = \"verify-full\", ca = \"${AP_CA}\", client_cert = \"${AP_CERTS}/rogue-client.crt\", client_key = \"${AP_CERTS}/rogue-client.key\" }",
    );
    cfg += &pg_probe("no-hba-entry", &format!("database = \"postgres\"\n{limited}\n{full}"));
    cfg += &pg_probe(
        "no-permission",
        &format!("database = \"appdb\"\n{limited}\n{full}\nquery = \"SELECT * FROM payroll\""),
    );
    cfg += &pg_probe("cert-user-ok", &format!("database = \"appdb\"\nuser = \"${{AP_PG_CERT_USER}}\"\n{cert_tls}"));
    cfg +=
        &pg_probe("cert-user-without-cert", &format!("database = \"appdb\"\nuser = \"${{AP_PG_CERT_USER}}\"\n{full}"));
    cfg += &pg_probe(
        "cert-user-unencrypted",
        "database = \"appdb\"\nuser = \"${AP_PG_CERT_USER}\"\ntls = { mode = \"disable\" }",
    );
    cfg += &pg_probe(
        "untrusted-ca",
        &format!("{app}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CERTS}}/rogue-ca.crt\" }}"),
    );
    cfg += &pg_probe(
        "wrong-name",
        &format!("{app}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    cfg += &pg_probe(
        "verify-ca-ignores-name",
        &format!("{app}\ntls = {{ mode = \"verify-ca\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    cfg += &pg_probe("require-does-not-verify", &format!("{app}\ntls = {{ mode = \"require\" }}"));
    cfg += &pg_probe(
        "require-with-ca-verifies",
        &format!("{app}\ntls = {{ mode = \"require\", ca = \"${{AP_CERTS}}/rogue-ca.crt\" }}"),
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for secret in
        [harness_var(&env, "AP_PG_PASSWORD"), harness_var(&env, "AP_PG_LIMITED_PASSWORD"), "not-the-password".into()]
    {
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "a password leaked");
    }
    let report = out.json();
    let ok = assert_passed(&report, "ok-verify-full");
    assert_eq!(ok["tls"]["verified"], true, "{ok:#}");
    let stages: Vec<&str> = ok["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dns", "connect", "tls", "auth", "check"]);
    // Encrypted but not authenticated: SCRAM may go over it, the report warns with the pin.
    let prefer = assert_warned(&report, "ok-default-prefer", "pin_sha256 = [\"");
    assert_eq!(prefer["tls"]["verified"], false);
    let p = assert_failed(&report, "wrong-password", "auth", "auth_rejected");
    assert!(p["error"]["message"].as_str().unwrap().contains("28P01"), "{p:#}");
    assert_failed(&report, "no-such-db", "auth", "not_found");
    let no_entry = assert_failed(&report, "no-hba-entry", "auth", "auth_rejected");
    assert!(no_entry["error"]["hint"].as_str().unwrap().contains("pg_hba"), "{no_entry:#}");
    assert_failed(&report, "no-permission", "check", "permission_denied");
    assert_passed(&report, "cert-user-ok");
    assert_failed(&report, "cert-user-without-cert", "auth", "tls_client_cert");
    assert_failed(&report, "cert-user-untrusted-cert", "auth", "tls_client_cert");
    let plain = assert_failed(&report, "cert-user-unencrypted", "auth", "tls_handshake");
    assert!(plain["error"]["hint"].as_str().unwrap().contains("tls.mode"), "{plain:#}");
    let untrusted = assert_failed(&report, "untrusted-ca", "tls", "tls_untrusted");
    assert!(untrusted["error"]["hint"].as_str().unwrap().contains("pin_sha256 = [\""), "{untrusted:#}");
    assert!(untrusted["tls"]["sha256"].is_string(), "certificate captured although verification failed");
    assert_failed(&report, "wrong-name", "tls", "tls_hostname");
    assert_passed(&report, "verify-ca-ignores-name");
    assert_eq!(assert_warned(&report, "require-does-not-verify", "tls.mode = require")["tls"]["verified"], false);
    assert_failed(&report, "require-with-ca-verifies", "tls", "tls_untrusted");
}

/// libpq's require_auth and channel_binding against the real server: SCRAM is bound to the
/// TLS session (SCRAM-SHA-256-PLUS) when TLS is on, `require` insists on it, and a server
/// asking for a method require_auth does not list gets nothing.
#[tokio::test]
async fn require_auth_and_channel_binding_against_the_real_server() {
    let env = harness_env();
    let ws = Workspace::new();
    let full = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let app = "database = \"appdb\"\nuser = \"${AP_PG_USER}\"\npassword = \"${AP_PG_PASSWORD}\"";
    let mut cfg = String::new();
    cfg +=
        &pg_probe("bound", &format!("{app}\n{full}\nchannel_binding = \"require\"\nrequire_auth = \"scram-sha-256\""));
    cfg += &pg_probe("scram-allowed", &format!("{app}\n{full}\nrequire_auth = [\"md5\", \"scram-sha-256\"]"));
    cfg += &pg_probe("scram-not-allowed", &format!("{app}\n{full}\nrequire_auth = \"md5\""));
    cfg += &pg_probe("password-forbidden", &format!("{app}\n{full}\nrequire_auth = \"!password\""));
    cfg += &pg_probe("unbound-plain", &format!("{app}\ntls = {{ mode = \"disable\" }}\nchannel_binding = \"disable\""));
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    assert_passed(&report, "bound");
    assert_passed(&report, "scram-allowed");
    assert_passed(&report, "password-forbidden");
    let refused = assert_failed(&report, "scram-not-allowed", "auth", "unexpected_response");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("scram-sha-256 authentication, which require_auth"),
        "{refused:#}"
    );
    assert_passed(&report, "unbound-plain");
    let path = path.to_str().unwrap();
    let out = authprobe_harness(&["run", "-c", path, "-vv", "--only", "bound"], &env).await;
    assert!(
        out.stdout.contains("authentication scram-sha-256 with channel binding (SCRAM-SHA-256-PLUS)"),
        "{}",
        out.stdout
    );
    let out = authprobe_harness(&["run", "-c", path, "-vv", "--only", "unbound-plain"], &env).await;
    assert!(
        out.stdout.contains("authentication scram-sha-256") && !out.stdout.contains("channel binding"),
        "{}",
        out.stdout
    );

    // Channel binding needs TLS: required without it is a config error, before any traffic.
    let bad = ws
        .config(&pg_probe("no-tls", &format!("{app}\ntls = {{ mode = \"disable\" }}\nchannel_binding = \"require\"")));
    let out = authprobe_harness(&["validate", "-c", bad.to_str().unwrap()], &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("channel binding needs TLS"), "{}", out.stderr);
}
