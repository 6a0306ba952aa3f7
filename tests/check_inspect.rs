//! `authprobe check URL` and `authprobe inspect TARGET` against the harness's servers.

use crate::util::*;

#[tokio::test]
async fn check_probes_a_postgres_url_with_the_password_from_the_environment() {
    let env = harness_env();
    let (port, ca) = (harness_var(&env, "AP_PG_PORT"), harness_var(&env, "AP_CA"));
    let url = format!("postgres://app_user@localhost:{port}/appdb?sslmode=verify-full&sslrootcert={ca}");
    let mut with_pw = env.clone();
    with_pw.push(("PGPASSWORD".into(), harness_var(&env, "AP_PG_PASSWORD")));
    let out = authprobe_harness(&["check", &url, "--format", "json"], &with_pw).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report = out.json();
    assert_eq!(assert_passed(&report, "check")["tls"]["verified"], true);

    let mut wrong = env.clone();
    wrong.push(("WRONG_PW".into(), "not-the-password".into()));
    let out = authprobe_harness(&["check", &url, "--password-env", "WRONG_PW", "--format", "json"], &wrong).await;
    assert_eq!(out.code, 1);
    assert_failed(&out.json(), "check", "auth", "auth_rejected");

    // A password in the URL works, is warned about, and never shows up.
    let inline = format!("postgres://app_user:{}@localhost:{port}/appdb", harness_var(&env, "AP_PG_PASSWORD"));
    let out = authprobe_harness(&["check", &inline], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("warning: the URL contains a password"), "{}", out.stderr);
    let password = harness_var(&env, "AP_PG_PASSWORD");
    assert!(!out.stdout.contains(&password) && !out.stderr.contains(&password));
}

#[tokio::test]
async fn check_probes_an_https_url_with_a_bearer_token() {
    let env = harness_env();
    let url = format!("https://localhost:{}/bearer", harness_var(&env, "AP_HTTPS_PORT"));
    let ca = harness_var(&env, "AP_CA");
    let out =
        authprobe_harness(&["check", &url, "--bearer-env", "AP_BEARER_TOKEN", "--ca", &ca, "--format", "json"], &env)
            .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_passed(&out.json(), "check");
    let out = authprobe_harness(&["check", &url, "--ca", &ca, "--format", "json"], &env).await;
    assert_failed(&out.json(), "check", "check", "auth_rejected");
    let out = authprobe_harness(&["check", "gopher://example.com/"], &env).await;
    assert_eq!(out.code, 2);
}

#[tokio::test]
async fn inspect_shows_the_chain_the_verdict_and_the_pin_line() {
    let env = harness_env();
    let fp = harness_var(&env, "AP_SERVER_SHA256");
    let ca = harness_var(&env, "AP_CA");
    for target in [
        format!("https://localhost:{}", harness_var(&env, "AP_HTTPS_PORT")),
        format!("postgres://localhost:{}", harness_var(&env, "AP_PG_PORT")),
        format!("mysql://localhost:{}", harness_var(&env, "AP_MYSQL_PORT")),
        format!("mssql://localhost:{}", harness_var(&env, "AP_MSSQL_PORT")),
        format!("s3://demo-bucket/?endpoint=https://localhost:{}", harness_var(&env, "AP_S3_TLS_PORT")),
    ] {
        // Shown, but not verified by the system store: exit 1, as `run` for a failed probe.
        let out = authprobe_harness(&["inspect", &target], &env).await;
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains(&format!("sha256   {fp}")), "{}", out.stdout);
        assert!(out.stdout.contains("issuer   CN=authprobe Test CA"), "{}", out.stdout);
        assert!(out.stdout.contains("FAILED: tls_untrusted"), "{}", out.stdout);
        assert!(out.stdout.contains(&format!("pin_sha256 = [\"{fp}\"]")), "{}", out.stdout);
        let out = authprobe_harness(&["inspect", &target, "--ca", &ca], &env).await;
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("verification against the given CA bundle for localhost: OK"), "{}", out.stdout);
    }
    let expired = format!("https://localhost:{}", harness_var(&env, "AP_EXPIRED_PORT"));
    let out = authprobe_harness(&["inspect", &expired, "--ca", &ca], &env).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("FAILED: tls_expired"), "{}", out.stdout);
    let out = authprobe_harness(&["inspect", "https://127.0.0.1:1"], &env).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("connect_refused"), "{}", out.stderr);
    let plain = format!("s3://demo-bucket/?endpoint=http://127.0.0.1:{}", harness_var(&env, "AP_S3_PORT"));
    let out = authprobe_harness(&["inspect", &plain], &env).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not use TLS"), "{}", out.stderr);
}

#[tokio::test]
async fn check_probes_a_mysql_url_with_the_password_from_mysql_pwd() {
    let env = harness_env();
    let url = format!(
        "mysql://app_user@localhost:{}/appdb?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        harness_var(&env, "AP_MYSQL_PORT"),
        harness_var(&env, "AP_CA")
    );
    let mut with_pw = env.clone();
    with_pw.push(("MYSQL_PWD".into(), harness_var(&env, "AP_MYSQL_PASSWORD")));
    let out = authprobe_harness(&["check", &url, "--format", "json"], &with_pw).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(assert_passed(&out.json(), "check")["tls"]["verified"], true);
    let out = authprobe_harness(&["check", &url, "--format", "json"], &env).await;
    assert_failed(&out.json(), "check", "auth", "auth_rejected");
}

/// Without a password, each database's check says which variable to set (or the flag),
/// not a config key or a wrong password.
#[tokio::test]
async fn check_without_a_database_password_names_the_variable() {
    let env: Vec<(String, String)> = harness_env()
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "PGPASSWORD" | "MYSQL_PWD" | "MSSQL_PASSWORD"))
        .collect();
    let ca = harness_var(&env, "AP_CA");
    let pg = format!(
        "postgres://app_user@localhost:{}/appdb?sslmode=verify-full&sslrootcert={ca}",
        harness_var(&env, "AP_PG_PORT")
    );
    let out = authprobe_harness(&["check", &pg], &env).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("set PGPASSWORD (or --password-env NAME)"), "{}", out.stdout);
    let my =
        format!("mysql://app_user@127.0.0.1:{}/?ssl-mode=verify-ca&ssl-ca={ca}", harness_var(&env, "AP_MYSQL_PORT"));
    let out = authprobe_harness(&["check", &my], &env).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("set MYSQL_PWD (or --password-env NAME)"), "{}", out.stdout);
    let ms = format!("mssql://app_user@localhost:{}/", harness_var(&env, "AP_MSSQL_PORT"));
    let out = authprobe_harness(&["check", &ms], &env).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("set MSSQL_PASSWORD (or --password-env NAME)"), "{}", out.stderr);
}

/// The same failure, said for where the user is: `run` names config lines, `check` names
/// its flags (hints carry the step as a value, not as text to reword).
#[tokio::test]
async fn hints_name_config_lines_for_run_and_flags_for_check() {
    let env = harness_env();
    let url = format!("https://localhost:{}/health", harness_var(&env, "AP_UNTRUSTED_PORT"));
    let fp = harness_var(&env, "AP_UNTRUSTED_SHA256");
    let out = authprobe_harness(&["check", &url, "--format", "json"], &env).await;
    let report = out.json();
    let failed = assert_failed(&report, "check", "tls", "tls_untrusted");
    let hint = failed["error"]["hint"].as_str().unwrap();
    assert!(hint.contains(&format!("approve this exact certificate with --pin-sha256 {fp}")), "{hint}");
    assert!(hint.contains("pass --ca with the CA"), "{hint}");
    assert!(!hint.contains("pin_sha256 = [") && !hint.contains("tls.ca"), "{hint}");
    let out = authprobe_harness(&["check", &url, "--pin-sha256", &fp], &env).await;
    assert_eq!(out.code, 0, "the flag the hint names works: {}{}", out.stdout, out.stderr);

    let ws = Workspace::new();
    let config = ws.config(&http_probe("check", &url, ""));
    let config = config.display().to_string();
    let out = authprobe_harness(&["run", "-c", &config, "--format", "json"], &env).await;
    let report = out.json();
    let hint = assert_failed(&report, "check", "tls", "tls_untrusted")["error"]["hint"].as_str().unwrap().to_string();
    assert!(hint.contains(&format!("pin_sha256 = [\"{fp}\"]")) && hint.contains("set tls.ca"), "{hint}");
    assert!(!hint.contains("--pin-sha256"), "{hint}");

    // An unknown SSH host key: `check` names --host-key, `run` the host_key line.
    let port = harness_var(&env, "AP_SSH_PORT");
    let host_key = harness_var(&env, "AP_SSH_HOST_KEY");
    let home = Workspace::new();
    let mut no_known_hosts = env.clone();
    no_known_hosts.push(("HOME".into(), home.dir.path().display().to_string()));
    no_known_hosts.push(("SSHPASS".into(), harness_var(&env, "AP_SFTP_PASSWORD")));
    let sftp = format!("sftp://sftp_pw@127.0.0.1:{port}/");
    let out = authprobe_harness(&["check", &sftp, "--format", "json"], &no_known_hosts).await;
    let report = out.json();
    let hint = assert_failed(&report, "check", "connect", "host_key")["error"]["hint"].as_str().unwrap().to_string();
    assert!(hint.contains(&format!("rerun with --host-key {host_key}")), "{hint}");
    assert!(!hint.contains("host_key = "), "{hint}");
}
