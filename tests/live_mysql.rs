//! The mysql probe against the harness's real MariaDB: every class it claims, produced by
//! the server for real.

use crate::util::*;

fn my_probe(name: &str, user: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${{AP_MYSQL_PORT}}\"\nuser = \"{user}\"\n{extra}\n\n"
    )
}

#[tokio::test]
async fn mysql_passes_and_fails_with_the_servers_own_error_numbers() {
    let env = harness_env();
    let ws = Workspace::new();
    let full = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let app_pw = "password = \"${AP_MYSQL_PASSWORD}\"";
    let x509 = "password = \"${AP_MYSQL_X509_PASSWORD}\"";
    let mut cfg = String::new();
    cfg += &my_probe(
        "ok",
        "${AP_MYSQL_USER}",
        &format!("{app_pw}\ndatabase = \"appdb\"\nquery = \"SELECT item FROM orders\"\n{full}"),
    );
    cfg += &my_probe("ok-default-prefer", "${AP_MYSQL_USER}", app_pw);
    cfg += &my_probe("ok-disabled", "${AP_MYSQL_USER}", &format!("{app_pw}\ntls = {{ mode = \"DISABLED\" }}"));
    cfg += &my_probe(
        "ok-pinned",
        "${AP_MYSQL_USER}",
        &format!("{app_pw}\ntls = {{ pin_sha256 = [\"${{AP_SERVER_SHA256}}\"] }}"),
    );
    cfg += &my_probe("wrong-password", "${AP_MYSQL_USER}", &format!("password = \"not-the-password\"\n{full}"));
    cfg += &my_probe(
        "no-such-db",
        "root",
        &format!("password = \"${{AP_MYSQL_ROOT_PASSWORD}}\"\ndatabase = \"nosuchdb\"\n{full}"),
    );
    cfg += &my_probe(
        "db-not-granted",
        "${AP_MYSQL_LIMITED_USER}",
        &format!("password = \"${{AP_MYSQL_LIMITED_PASSWORD}}\"\ndatabase = \"mysql\"\n{full}"),
    );
    cfg += &my_probe(
        "no-permission",
        "${AP_MYSQL_LIMITED_USER}",
        &format!(
            "password = \"${{AP_MYSQL_LIMITED_PASSWORD}}\"\ndatabase = \"appdb\"\nquery = \"SELECT * FROM payroll\"\n{full}"
        ),
    );
    cfg += &my_probe(
        "x509-with-cert",
        "${AP_MYSQL_X509_USER}",
        &format!(
            "{x509}\ntls = {{ mode = \"VERIFY_IDENTITY\", ca = \"${{AP_CA}}\", client_cert = \"${{AP_CERTS}}/client-mysql.crt\", client_key = \"${{AP_CERTS}}/client-mysql.key\" }}"
        ),
    );
    cfg += &my_probe("x509-without-cert", "${AP_MYSQL_X509_USER}", &format!("{x509}\n{full}"));
    cfg += &my_probe(
        "x509-untrusted-cert",
        "${AP_MYSQL_X509_USER}",
        &format!(
            "{x509}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\", client_cert = \"${{AP_CERTS}}/rogue-client.crt\", client_key = \"${{AP_CERTS}}/rogue-client.key\" }}"
        ),
    );
    cfg += &my_probe(
        "untrusted-ca",
        "${AP_MYSQL_USER}",
        &format!("{app_pw}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CERTS}}/rogue-ca.crt\" }}"),
    );
    cfg += &my_probe(
        "wrong-name",
        "${AP_MYSQL_USER}",
        &format!("{app_pw}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    cfg += &my_probe(
        "verify-ca-ignores-name",
        "${AP_MYSQL_USER}",
        &format!("{app_pw}\ntls = {{ mode = \"VERIFY_CA\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    // MariaDB's ed25519 plugin is not the server's default: the login switches to it.
    let ed25519 = "password = \"${AP_MYSQL_ED25519_PASSWORD}\"";
    cfg += &my_probe("ed25519", "${AP_MYSQL_ED25519_USER}", &format!("{ed25519}\ndatabase = \"appdb\"\n{full}"));
    cfg += &my_probe(
        "ed25519-unencrypted",
        "${AP_MYSQL_ED25519_USER}",
        &format!("{ed25519}\ntls = {{ mode = \"disable\" }}"),
    );
    cfg += &my_probe(
        "ed25519-wrong-password",
        "${AP_MYSQL_ED25519_USER}",
        &format!("password = \"not-the-password\"\n{full}"),
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for secret in [
        harness_var(&env, "AP_MYSQL_PASSWORD"),
        harness_var(&env, "AP_MYSQL_X509_PASSWORD"),
        harness_var(&env, "AP_MYSQL_ED25519_PASSWORD"),
        "not-the-password".into(),
    ] {
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "a password leaked");
    }
    let report = out.json();
    let ok = assert_passed(&report, "ok");
    assert_eq!(ok["tls"]["verified"], true, "{ok:#}");
    assert_eq!(ok["tls"]["sha256"], harness_var(&env, "AP_SERVER_SHA256"));
    let stages: Vec<&str> = ok["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dns", "connect", "tls", "auth", "check"]);
    let prefer = assert_warned(&report, "ok-default-prefer", "pin_sha256 = [\"");
    assert_eq!(prefer["tls"]["verified"], false);
    assert!(assert_passed(&report, "ok-disabled")["tls"].is_null());
    assert_eq!(assert_passed(&report, "ok-pinned")["tls"]["pinned"], true);
    let p = assert_failed(&report, "wrong-password", "auth", "auth_rejected");
    assert!(p["error"]["message"].as_str().unwrap().contains("error 1045"), "{p:#}");
    assert_failed(&report, "no-such-db", "auth", "not_found");
    assert_failed(&report, "db-not-granted", "auth", "permission_denied");
    assert_failed(&report, "no-permission", "check", "permission_denied");
    assert_passed(&report, "x509-with-cert");
    let no_cert = assert_failed(&report, "x509-without-cert", "auth", "auth_rejected");
    assert!(no_cert["error"]["hint"].as_str().unwrap().contains("client certificate"), "{no_cert:#}");
    assert_failed(&report, "x509-untrusted-cert", "auth", "tls_client_cert");
    let untrusted = assert_failed(&report, "untrusted-ca", "tls", "tls_untrusted");
    assert!(untrusted["error"]["hint"].as_str().unwrap().contains("pin_sha256 = [\""), "{untrusted:#}");
    assert!(untrusted["tls"]["sha256"].is_string(), "certificate captured although verification failed");
    assert_failed(&report, "wrong-name", "tls", "tls_hostname");
    assert_passed(&report, "verify-ca-ignores-name");
    assert_passed(&report, "ed25519");
    assert!(assert_passed(&report, "ed25519-unencrypted")["tls"].is_null());
    let p = assert_failed(&report, "ed25519-wrong-password", "auth", "auth_rejected");
    assert!(p["error"]["message"].as_str().unwrap().contains("error 1045"), "{p:#}");
    let only = ws.config(&my_probe("ed25519", "${AP_MYSQL_ED25519_USER}", &format!("{ed25519}\n{full}")));
    let out = authprobe_harness(&["run", "-c", only.to_str().unwrap(), "-vv"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("authentication client_ed25519, session encrypted"), "{}", out.stdout);
    assert!(out.stdout.contains("server version 10.11"), "{}", out.stdout);
}
