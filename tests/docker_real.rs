//! The same cases against the real servers docker-compose.yml adds where a Docker engine
//! runs: MySQL 8.4 (caching_sha2_password and sha256_password as Oracle implements them,
//! require_secure_transport) and SQL Server 2022 (TDS 8 strict on its own port, Msgs 4060
//! and 229 from the real engine). These machines have no Docker engine, so the tests are
//! `#[ignore]`d: scripts/test.sh runs them (`--run-ignored only`) when the servers came up
//! through docker-compose, and otherwise says they were not run. They never pass silently.

use crate::util::*;

fn compose_only(env: &[(String, String)]) {
    assert_eq!(
        harness_var(env, "AP_SERVERS"),
        "compose",
        "these tests need the real servers of docker-compose.yml (scripts/servers.sh up with a Docker engine)"
    );
}

fn mysql84(name: &str, user_var: &str, port_var: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${{{port_var}}}\"\nuser = \"${{{user_var}}}\"\npassword = \"${{AP_MYSQL8_PASSWORD}}\"\n{extra}\n\n"
    )
}

/// Empties caching_sha2_password's cache, so that the next login takes full authentication
/// (as the stand-in's never-cached account does).
fn flush_mysql84_cache(env: &[(String, String)]) {
    let out = std::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &harness_var(env, "AP_MYSQL84_PORT"), "-uroot", "-pRoot-demo-pw-84a1"])
        .args(["--ssl", "--ssl-ca", &harness_var(env, "AP_CA"), "-e", "FLUSH PRIVILEGES"])
        .output()
        .expect("run mariadb");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
#[ignore = "needs MySQL 8.4 from docker-compose.yml: scripts/test.sh runs it when a Docker engine answers"]
async fn mysql_84_logins_pass_and_fail_as_with_the_stand_in() {
    let env = harness_env();
    compose_only(&env);
    let ws = Workspace::new();
    let verified = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let plain = "tls = { mode = \"disable\" }";
    let pinned = format!("{plain}\nserver_public_key = \"${{AP_MYSQL84_PUBLIC_KEY}}\"");
    let asked = format!("{plain}\nallow_unverified_password = true");
    // (name, user, port, tls, expected: None = pass, Some((stage, class)))
    type Expected<'a> = Option<(&'a str, &'a str)>;
    let cases: Vec<(&str, &str, &str, &str, Expected)> = vec![
        ("cold-tls", "AP_MYSQL8_COLD_USER", "AP_MYSQL84_PORT", verified, None),
        ("cold-rsa-pinned-key", "AP_MYSQL8_COLD_USER", "AP_MYSQL84_PORT", &pinned, None),
        ("cold-rsa-asked", "AP_MYSQL8_COLD_USER", "AP_MYSQL84_PORT", &asked, None),
        ("cold-rsa-refused", "AP_MYSQL8_COLD_USER", "AP_MYSQL84_PORT", plain, Some(("auth", "tls_handshake"))),
        ("sha256-tls", "AP_MYSQL8_SHA256_USER", "AP_MYSQL84_PORT", verified, None),
        ("sha256-pinned-key", "AP_MYSQL8_SHA256_USER", "AP_MYSQL84_PORT", &pinned, None),
        ("sha256-refused", "AP_MYSQL8_SHA256_USER", "AP_MYSQL84_PORT", plain, Some(("auth", "tls_handshake"))),
        ("expired", "AP_MYSQL8_EXPIRED_USER", "AP_MYSQL84_PORT", verified, Some(("auth", "auth_rejected"))),
        ("insecure-transport", "AP_MYSQL8_USER", "AP_MYSQL84_SECURE_PORT", plain, Some(("auth", "tls_handshake"))),
        ("secure-transport-tls", "AP_MYSQL8_USER", "AP_MYSQL84_SECURE_PORT", verified, None),
    ];
    // One run per case, each after the cache is emptied: concurrent probes would warm it
    // for each other and turn an RSA case into the fast path.
    for (name, user, port, tls, expected) in cases {
        flush_mysql84_cache(&env);
        let path = ws.config(&mysql84(name, user, port, tls));
        let report = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await.json();
        match expected {
            None => {
                assert_passed(&report, name);
            }
            Some((stage, class)) => {
                assert_failed(&report, name, stage, class);
            }
        }
    }
    // The fast path, once a full authentication warmed the cache: no TLS needed.
    flush_mysql84_cache(&env);
    let warm = ws.config(&mysql84("warm-up", "AP_MYSQL8_USER", "AP_MYSQL84_PORT", verified));
    let report = authprobe_harness(&["run", "-c", warm.to_str().unwrap(), "--format", "json"], &env).await.json();
    assert_passed(&report, "warm-up");
    let fast = ws.config(&mysql84("fast-path-plain", "AP_MYSQL8_USER", "AP_MYSQL84_PORT", plain));
    let report = authprobe_harness(&["run", "-c", fast.to_str().unwrap(), "--format", "json"], &env).await.json();
    assert_passed(&report, "fast-path-plain");
}

#[tokio::test]
#[ignore = "needs SQL Server 2022 from docker-compose.yml: scripts/test.sh runs it when a Docker engine answers"]
async fn sql_server_2022_speaks_tds_8_and_its_own_errors() {
    let env = harness_env();
    compose_only(&env);
    let ws = Workspace::new();
    let probe = |name: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"mssql\"\nhost = \"localhost\"\nport = \"${{AP_MSSQL_PORT}}\"\nuser = \"${{AP_MSSQL_USER}}\"\npassword = \"${{AP_MSSQL_PASSWORD}}\"\n{extra}\n\n"
        )
    };
    let tls = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let cfg = probe("tds7", &format!("{tls}\ndatabase = \"appdb\"\nquery = \"SELECT item FROM orders\""))
        + &probe("tds8-strict", "tls = { mode = \"strict\", ca = \"${AP_CA}\" }\ndatabase = \"appdb\"")
        + &probe("no-such-database", &format!("{tls}\ndatabase = \"no_such_db\""))
        + &probe("denied-table", &format!("{tls}\ndatabase = \"appdb\"\nquery = \"SELECT * FROM payroll\""));
    let path = ws.config(&cfg);
    let report = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await.json();
    assert_passed(&report, "tds7");
    assert_eq!(assert_passed(&report, "tds8-strict")["tls"]["verified"], true);
    let db = assert_failed(&report, "no-such-database", "auth", "not_found");
    assert!(db["error"]["message"].as_str().unwrap().contains("Msg 4060"), "{db:#}");
    let denied = assert_failed(&report, "denied-table", "check", "permission_denied");
    assert!(denied["error"]["message"].as_str().unwrap().contains("Msg 229"), "{denied:#}");
}
