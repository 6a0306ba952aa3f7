//! caching_sha2_password and sha256_password, MySQL 8's logins, against the harness's MySQL
//! 8 stand-in (held to two independent clients in harness_servers.rs): authprobe logs in
//! where they do, fails where they fail with the right class, and keeps the credential
//! release rule on the RSA paths.

use crate::util::*;

fn probe(name: &str, user_var: &str, port_var: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${{{port_var}}}\"\nuser = \"${{{user_var}}}\"\npassword = \"${{AP_MYSQL8_PASSWORD}}\"\n{extra}\n\n"
    )
}

#[tokio::test]
async fn mysql_8_logins_pass_and_fail_as_the_reference_clients_do() {
    let env = harness_env();
    let ws = Workspace::new();
    let verified = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let plain = "tls = { mode = \"disable\" }";
    let mut cfg = String::new();
    // Full authentication over verified TLS (the cold account is never cached).
    cfg += &probe("cold-tls", "AP_MYSQL8_COLD_USER", "AP_MYSQL8_PORT", verified);
    // RSA to the configured key, as --server-public-key-path: no consent needed.
    cfg += &probe(
        "cold-rsa-pinned-key",
        "AP_MYSQL8_COLD_USER",
        "AP_MYSQL8_PORT",
        &format!("{plain}\nserver_public_key = \"${{AP_MYSQL8_PUBLIC_KEY}}\""),
    );
    // RSA to the key the server sends: only with consent.
    cfg += &probe(
        "cold-rsa-asked",
        "AP_MYSQL8_COLD_USER",
        "AP_MYSQL8_PORT",
        &format!("{plain}\nallow_unverified_password = true"),
    );
    cfg += &probe("cold-rsa-refused", "AP_MYSQL8_COLD_USER", "AP_MYSQL8_PORT", plain);
    cfg += &probe("sha256-tls", "AP_MYSQL8_SHA256_USER", "AP_MYSQL8_PORT", verified);
    cfg += &probe(
        "sha256-pinned-key",
        "AP_MYSQL8_SHA256_USER",
        "AP_MYSQL8_PORT",
        &format!("{plain}\nserver_public_key = \"${{AP_MYSQL8_PUBLIC_KEY}}\""),
    );
    cfg += &probe("sha256-refused", "AP_MYSQL8_SHA256_USER", "AP_MYSQL8_PORT", plain);
    cfg += &probe("expired", "AP_MYSQL8_EXPIRED_USER", "AP_MYSQL8_PORT", verified);
    cfg += &probe("insecure-transport", "AP_MYSQL8_USER", "AP_MYSQL8_SECURE_PORT", plain);
    cfg += &probe("secure-transport-tls", "AP_MYSQL8_USER", "AP_MYSQL8_SECURE_PORT", verified);
    cfg += &format!(
        "[[probe]]\nname = \"wrong-password\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${{AP_MYSQL8_PORT}}\"\nuser = \"${{AP_MYSQL8_USER}}\"\npassword = \"CANARY-mysql8-wrong-7e1\"\n{verified}\n\n"
    );
    let config = ws.config(&cfg);
    let log_before = std::fs::read_to_string(harness_var(&env, "AP_MYSQL8_LOG")).unwrap_or_default().len();
    let run = |path: std::path::PathBuf| {
        let env = env.clone();
        async move {
            let path = path.display().to_string();
            authprobe_harness(&["run", "-c", &path, "--format", "json"], &env).await.json()
        }
    };
    let report = run(config).await;
    for name in
        ["cold-tls", "cold-rsa-pinned-key", "cold-rsa-asked", "sha256-tls", "sha256-pinned-key", "secure-transport-tls"]
    {
        assert_passed(&report, name);
    }
    for name in ["cold-rsa-refused", "sha256-refused"] {
        let failed = assert_failed(&report, name, "auth", "tls_handshake");
        let hint = failed["error"]["hint"].as_str().unwrap();
        assert!(hint.contains("server_public_key") && hint.contains("allow_unverified_password"), "{hint}");
    }
    assert_failed(&report, "expired", "auth", "auth_rejected");
    assert_failed(&report, "insecure-transport", "auth", "tls_handshake");
    assert_failed(&report, "wrong-password", "auth", "auth_rejected");
    assert!(!report.to_string().contains("CANARY-mysql8-wrong-7e1"));
    // The stand-in saw each path taken: full authentication, RSA only where allowed.
    let log = std::fs::read_to_string(harness_var(&env, "AP_MYSQL8_LOG")).unwrap();
    let log = &log[log_before.min(log.len())..];
    assert!(log.contains("full authentication cold8 tls=True"), "{log}");
    assert!(log.matches("sent the RSA public key").count() <= 2, "the key was asked for without consent:\n{log}");

    // The fast path: once a full authentication warmed the cache, even without TLS the
    // login needs no password in any recoverable form.
    let warm = ws.config(
        &(probe("warm-up", "AP_MYSQL8_USER", "AP_MYSQL8_PORT", verified)
            + &probe("fast-path-plain", "AP_MYSQL8_USER", "AP_MYSQL8_PORT", "tls = { mode = \"disable\" }")),
    );
    let first = run(warm.clone()).await;
    assert_passed(&first, "warm-up");
    let report = run(warm).await;
    assert_passed(&report, "fast-path-plain");
    let log = std::fs::read_to_string(harness_var(&env, "AP_MYSQL8_LOG")).unwrap();
    assert!(log.contains("fast path app8"), "{log}");
}
