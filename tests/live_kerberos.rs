//! Kerberos against the harness's MIT KDC (a realm made at each start) and Apache with
//! mod_auth_gssapi: every credential source, and every failure class the KDC and the
//! service produce for real (wrong password, stale keytab, unknown client, unknown service
//! principal, an expired cache, a KDC that is down or silent, a KDC whose clock is 10
//! minutes ahead, a refusal after a valid ticket).

use crate::util::servers;
use crate::util::*;

fn negotiate(name: &str, path: &str, host: &str, auth: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"https://{host}:${{AP_NEGOTIATE_PORT}}{path}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"kerberos\", {auth} }}\n\n"
    )
}

#[tokio::test]
async fn kerberos_http_negotiate_every_source_and_failure() {
    let env = harness_env();
    let ws = Workspace::new();
    let conf = "krb5_conf = \"${AP_KRB5_CONFIG}\"";
    let user = "principal = \"${AP_KRB_USER}@${AP_KRB_REALM}\"";
    let password = format!("{user}, password = \"${{AP_KRB_PASSWORD}}\", {conf}");
    let keytab_user = "principal = \"${AP_KRB_KEYTAB_USER}@${AP_KRB_REALM}\"";
    let silent = servers::silent().await;
    let ok = "/krb/ok.txt";
    let mut cfg = String::new();
    cfg += &negotiate("password", ok, "localhost", &password);
    cfg += &negotiate("keytab", ok, "localhost", &format!("{keytab_user}, keytab = \"${{AP_KRB_KEYTAB}}\", {conf}"));
    cfg += &negotiate("cache", ok, "localhost", &format!("ccache = \"${{AP_KRB_CCACHE}}\", {conf}"));
    cfg += &negotiate(
        "explicit-spn",
        ok,
        "127.0.0.1",
        &format!("{password}, service_principal = \"HTTP/localhost@${{AP_KRB_REALM}}\""),
    );
    cfg += &negotiate(
        "realm-and-kdc-on-the-probe",
        ok,
        "localhost",
        &format!(
            "{user}, password = \"${{AP_KRB_PASSWORD}}\", realm = \"${{AP_KRB_REALM}}\", kdc = \"127.0.0.1:${{AP_KDC_PORT}}\", krb5_conf = \"/nonexistent/krb5.conf\""
        ),
    );
    cfg +=
        &negotiate("wrong-password", ok, "localhost", &format!("{user}, password = \"CANARY-krb-wrong-3d1\", {conf}"));
    cfg += &negotiate(
        "stale-keytab",
        ok,
        "localhost",
        &format!("{keytab_user}, keytab = \"${{AP_KRB_STALE_KEYTAB}}\", {conf}"),
    );
    cfg += &negotiate(
        "unknown-client",
        ok,
        "localhost",
        &format!("principal = \"nobody@${{AP_KRB_REALM}}\", password = \"x\", {conf}"),
    );
    cfg += &negotiate("unknown-spn", ok, "127.0.0.1", &password);
    cfg += &negotiate("expired-cache", ok, "localhost", &format!("ccache = \"${{AP_KRB_EXPIRED_CCACHE}}\", {conf}"));
    cfg += &negotiate("no-cache", ok, "localhost", &format!("ccache = \"FILE:/nonexistent/krb5cc\", {conf}"));
    cfg += &negotiate(
        "kdc-down",
        ok,
        "localhost",
        &format!("{password}, realm = \"${{AP_KRB_REALM}}\", kdc = \"127.0.0.1:1\""),
    );
    cfg += &negotiate(
        "clock-skew",
        ok,
        "localhost",
        &format!("{user}, password = \"${{AP_KRB_PASSWORD}}\", krb5_conf = \"${{AP_KRB5_SKEWED_CONFIG}}\""),
    );
    cfg += &negotiate("refused-after-a-valid-ticket", "/krb/admin/ok.txt", "localhost", &password);
    cfg += &format!(
        "[[probe]]\nname = \"kdc-silent\"\nkind = \"http\"\nurl = \"https://localhost:${{AP_NEGOTIATE_PORT}}{ok}\"\ntimeout = \"2s\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"kerberos\", {password}, realm = \"${{AP_KRB_REALM}}\", kdc = \"127.0.0.1:{}\" }}\n\n",
        silent.port()
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-vv"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let secret = harness_var(&env, "AP_KRB_PASSWORD");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(!all.contains(&secret) && !all.contains("CANARY-krb-wrong-3d1"), "a password leaked:\n{all}");
    let keytab = std::fs::read(harness_var(&env, "AP_KRB_KEYTAB")).unwrap();
    assert!(!all.contains(&String::from_utf8_lossy(&keytab[keytab.len() - 16..]).to_string()));
    let report = out.json();
    for name in ["password", "keytab", "cache", "explicit-spn", "realm-and-kdc-on-the-probe"] {
        let p = assert_passed(&report, name);
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "tls", "token", "auth", "check"], "{p:#}");
    }
    let wrong = assert_failed(&report, "wrong-password", "token", "auth_rejected");
    assert!(wrong["error"]["message"].as_str().unwrap().contains("the password is wrong"), "{wrong:#}");
    let stale = assert_failed(&report, "stale-keytab", "token", "auth_rejected");
    assert!(stale["error"]["hint"].as_str().unwrap().contains("export the keytab again"), "{stale:#}");
    assert_failed(&report, "unknown-client", "token", "auth_rejected");
    let spn = assert_failed(&report, "unknown-spn", "token", "not_found");
    assert!(spn["error"]["message"].as_str().unwrap().contains("HTTP/127.0.0.1@AUTHPROBE.TEST"), "{spn:#}");
    assert!(spn["error"]["hint"].as_str().unwrap().contains("service_principal"), "{spn:#}");
    let expired = assert_failed(&report, "expired-cache", "token", "auth_rejected");
    assert!(expired["error"]["message"].as_str().unwrap().contains("expired at"), "{expired:#}");
    assert_failed(&report, "no-cache", "token", "config");
    let down = assert_failed(&report, "kdc-down", "token", "network");
    assert!(down["error"]["message"].as_str().unwrap().contains("127.0.0.1:1"), "{down:#}");
    let skew = assert_failed(&report, "clock-skew", "token", "auth_rejected");
    let message = skew["error"]["message"].as_str().unwrap();
    assert!(message.contains("Clock skew") && message.contains("ahead of this machine's"), "{skew:#}");
    let refused = assert_failed(&report, "refused-after-a-valid-ticket", "auth", "permission_denied");
    assert!(refused["error"]["message"].as_str().unwrap().contains("accepted the Kerberos ticket"), "{refused:#}");
    assert_failed(&report, "kdc-silent", "token", "timeout");

    // -v names the KDC that answered, the lifetimes, the encryption type and the proof.
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "password", "-v"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let kdc = format!("from the KDC at 127.0.0.1:{}", harness_var(&env, "AP_KDC_PORT"));
    for said in [
        &kdc as &str,
        "service ticket for HTTP/localhost@AUTHPROBE.TEST (aes256-cts",
        "valid until",
        "mutual authentication: the server proved it is HTTP/localhost@AUTHPROBE.TEST",
    ] {
        assert!(out.stdout.contains(said), "missing `{said}`:\n{}", out.stdout);
    }
}

#[tokio::test]
async fn kerberos_config_errors_name_the_key() {
    let ws = Workspace::new();
    let probe = |name: &str, auth: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"https://localhost/\"\nauth = {{ type = \"kerberos\", {auth} }}\n\n"
        )
    };
    let cfg = probe("keytab-without-principal", "keytab = \"/etc/krb5.keytab\"")
        + &probe("two-sources", "principal = \"a@R\", keytab = \"/k\", password = \"p\"")
        + &probe("kdc-without-realm", "kdc = \"kdc.example.com\"")
        + &probe("principal-with-cache", "principal = \"a@R\"");
    let path = ws.config(&cfg);
    let out = authprobe(&["validate", "-c", path.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    for said in [
        "probe `keytab-without-principal`, key `auth.keytab`: a keytab needs `principal`",
        "probe `two-sources`, key `auth`: use one of `ccache`, `keytab` or `password`",
        "probe `kdc-without-realm`, key `auth.kdc`: a `kdc` needs the realm it serves",
        "probe `principal-with-cache`, key `auth.principal`: with a ticket cache",
    ] {
        assert!(out.stderr.contains(said), "missing `{said}`:\n{}", out.stderr);
    }
}

/// PostgreSQL's GSSAPI authentication (pg_hba `gss`): the ticket for postgres/localhost,
/// the server's proof (mutual authentication), and the server's own refusal of a valid
/// ticket for a role it does not map to the principal.
#[tokio::test]
async fn kerberos_postgres_gssapi() {
    let env = harness_env();
    let ws = Workspace::new();
    let probe = |name: &str, user: &str, auth: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${{AP_PG_PORT}}\"\nuser = \"{user}\"\ndatabase = \"${{AP_PG_DATABASE}}\"\nquery = \"SELECT item FROM orders\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"kerberos\", {auth} }}\n\n"
        )
    };
    let password = "principal = \"${AP_KRB_USER}@${AP_KRB_REALM}\", password = \"${AP_KRB_PASSWORD}\", krb5_conf = \"${AP_KRB5_CONFIG}\"";
    let cfg = probe("gss", "${AP_KRB_USER}", password)
        + &probe(
            "gss-from-cache",
            "${AP_KRB_USER}",
            "ccache = \"${AP_KRB_CCACHE}\", krb5_conf = \"${AP_KRB5_CONFIG}\"",
        )
        + &probe("role-not-mapped", "${AP_PG_KRB_UNMAPPED}", password)
        + &probe(
            "wrong-password",
            "${AP_KRB_USER}",
            "principal = \"${AP_KRB_USER}@${AP_KRB_REALM}\", password = \"nope\", krb5_conf = \"${AP_KRB5_CONFIG}\"",
        );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stdout.contains(&harness_var(&env, "AP_KRB_PASSWORD")));
    let report = out.json();
    for name in ["gss", "gss-from-cache"] {
        let p = assert_passed(&report, name);
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "tls", "token", "auth", "check"], "{p:#}");
    }
    let unmapped = assert_failed(&report, "role-not-mapped", "auth", "auth_rejected");
    assert!(unmapped["error"]["message"].as_str().unwrap().contains("GSSAPI authentication failed"), "{unmapped:#}");
    assert!(unmapped["error"]["hint"].as_str().unwrap().contains("pg_ident.conf"), "{unmapped:#}");
    assert_failed(&report, "wrong-password", "token", "auth_rejected");
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "gss", "-vv"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("authentication gss"), "{}", out.stdout);
    assert!(out.stdout.contains("the server proved it is postgres/localhost@AUTHPROBE.TEST"), "{}", out.stdout);
}

/// `check` takes the user's ticket cache (--kerberos) or a keytab (--keytab, --principal).
#[tokio::test]
async fn kerberos_check_flags() {
    let env = harness_env();
    let mut with_krb = env.clone();
    with_krb.push(("KRB5_CONFIG".into(), harness_var(&env, "AP_KRB5_CONFIG")));
    with_krb.push(("KRB5CCNAME".into(), harness_var(&env, "AP_KRB_CCACHE")));
    let ca = harness_var(&env, "AP_CA");
    let url = format!("https://localhost:{}/krb/ok.txt", harness_var(&env, "AP_NEGOTIATE_PORT"));
    let out = authprobe_harness(&["check", &url, "--kerberos", "--ca", &ca, "-v"], &with_krb).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("TGT of ap_krb_user@AUTHPROBE.TEST from FILE:"), "{}", out.stdout);
    let pg = format!(
        "postgres://ap_krb_user@localhost:{}/appdb?sslmode=verify-full&sslrootcert={ca}",
        harness_var(&env, "AP_PG_PORT")
    );
    let keytab = harness_var(&env, "AP_KRB_KEYTAB");
    let principal = format!("ap_krb_keytab@{}", harness_var(&env, "AP_KRB_REALM"));
    let out = authprobe_harness(&["check", &pg, "--keytab", &keytab, "--principal", &principal], &with_krb).await;
    // The ticket is good; the server maps no role to this principal: its own refusal.
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("GSSAPI authentication failed"), "{}", out.stdout);
    let out =
        authprobe_harness(&["check", &url, "--keytab", &keytab, "--principal", &principal, "--ca", &ca], &with_krb)
            .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// MariaDB's Kerberos login (auth_gssapi): the server names its service principal, the
/// ticket for it is fetched then, and the server proves itself before OK.
#[tokio::test]
async fn kerberos_mariadb_gssapi() {
    let env = harness_env();
    let ws = Workspace::new();
    let probe = |name: &str, user: &str, auth: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"mysql\"\nhost = \"localhost\"\nport = \"${{AP_MYSQL_PORT}}\"\nuser = \"{user}\"\nquery = \"SELECT item FROM appdb.orders\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"kerberos\", {auth} }}\n\n"
        )
    };
    let password = "principal = \"${AP_KRB_USER}@${AP_KRB_REALM}\", password = \"${AP_KRB_PASSWORD}\", krb5_conf = \"${AP_KRB5_CONFIG}\"";
    let cfg = probe("gssapi", "${AP_KRB_USER}", password)
        + &probe(
            "gssapi-from-cache",
            "${AP_KRB_USER}",
            "ccache = \"${AP_KRB_CCACHE}\", krb5_conf = \"${AP_KRB5_CONFIG}\"",
        )
        + &probe("principal-not-the-accounts", "${AP_PG_KRB_UNMAPPED}", password);
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    for name in ["gssapi", "gssapi-from-cache"] {
        let p = assert_passed(&report, name);
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "tls", "token", "auth", "check"], "{p:#}");
    }
    assert_failed(&report, "principal-not-the-accounts", "auth", "auth_rejected");
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "gssapi", "-vv"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for said in [
        "the server asks for a ticket for mariadb/localhost@AUTHPROBE.TEST",
        "authentication auth_gssapi_client",
        "the server proved it is mariadb/localhost@AUTHPROBE.TEST",
    ] {
        assert!(out.stdout.contains(said), "missing `{said}`:\n{}", out.stdout);
    }
}

/// SFTP with gssapi-with-mic (RFC 4462) against OpenSSH: a ticket for host/localhost, the
/// server's proof, then a MIC over the session; a principal that maps to another account
/// is refused by sshd.
#[tokio::test]
async fn kerberos_sftp_gssapi_with_mic() {
    let env = harness_env();
    let ws = Workspace::new();
    let probe = |name: &str, user: &str, auth: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"sftp\"\nhost = \"localhost\"\nport = \"${{AP_SSH_PORT}}\"\nuser = \"{user}\"\nhost_key = \"${{AP_SSH_HOST_KEY}}\"\npath = \"data\"\nauth = {{ type = \"kerberos\", {auth} }}\n\n"
        )
    };
    let password = "principal = \"${AP_KRB_USER}@${AP_KRB_REALM}\", password = \"${AP_KRB_PASSWORD}\", krb5_conf = \"${AP_KRB5_CONFIG}\"";
    let cfg = probe("gssapi", "${AP_KRB_USER}", password)
        + &probe("from-cache", "${AP_KRB_USER}", "ccache = \"${AP_KRB_CCACHE}\", krb5_conf = \"${AP_KRB5_CONFIG}\"")
        + &probe("another-account", "${AP_SFTP_USER}", password);
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    for name in ["gssapi", "from-cache"] {
        let p = assert_passed(&report, name);
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "token", "auth", "check"], "{p:#}");
    }
    let refused = assert_failed(&report, "another-account", "auth", "auth_rejected");
    assert!(refused["error"]["hint"].as_str().unwrap().contains(".k5login"), "{refused:#}");
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "gssapi", "-v"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("service ticket for host/localhost@AUTHPROBE.TEST"), "{}", out.stdout);
    assert!(out.stdout.contains("the server proved it is host/localhost@AUTHPROBE.TEST"), "{}", out.stdout);
}

/// Every way an acquisition ends, success and each failure the KDC produces plus a
/// password krb5 cannot take (a NUL byte, refused after the client principal was made),
/// under valgrind: no block krb5 or GSS allocated is lost. (glibc's per-thread resolver
/// state, lost when tokio's threads end, is not Kerberos's and is not counted.)
#[tokio::test]
async fn kerberos_error_paths_leak_nothing_under_valgrind() {
    let valgrind = require_tool("valgrind");
    let env = harness_env();
    let ws = Workspace::new();
    let conf = "krb5_conf = \"${AP_KRB5_CONFIG}\"";
    let user = "principal = \"${AP_KRB_USER}@${AP_KRB_REALM}\"";
    let password = format!("{user}, password = \"${{AP_KRB_PASSWORD}}\", {conf}");
    let keytab_user = "principal = \"${AP_KRB_KEYTAB_USER}@${AP_KRB_REALM}\"";
    let ok = "/krb/ok.txt";
    let mut cfg = String::new();
    cfg += &negotiate("password", ok, "localhost", &password);
    cfg += &negotiate("keytab", ok, "localhost", &format!("{keytab_user}, keytab = \"${{AP_KRB_KEYTAB}}\", {conf}"));
    cfg += &negotiate("cache", ok, "localhost", &format!("ccache = \"${{AP_KRB_CCACHE}}\", {conf}"));
    cfg += &negotiate("wrong-password", ok, "localhost", &format!("{user}, password = \"not-the-password\", {conf}"));
    cfg += &negotiate(
        "stale-keytab",
        ok,
        "localhost",
        &format!("{keytab_user}, keytab = \"${{AP_KRB_STALE_KEYTAB}}\", {conf}"),
    );
    cfg += &negotiate("unknown-spn", ok, "127.0.0.1", &password);
    cfg += &negotiate("expired-cache", ok, "localhost", &format!("ccache = \"${{AP_KRB_EXPIRED_CCACHE}}\", {conf}"));
    cfg += &negotiate("no-cache", ok, "localhost", &format!("ccache = \"FILE:/nonexistent/krb5cc\", {conf}"));
    cfg += &negotiate(
        "kdc-down",
        ok,
        "localhost",
        &format!("{password}, realm = \"${{AP_KRB_REALM}}\", kdc = \"127.0.0.1:1\""),
    );
    cfg += &negotiate("nul-in-password", ok, "localhost", &format!("{user}, password = \"pass\\u0000word\", {conf}"));
    cfg += &negotiate("refused-after-a-valid-ticket", "/krb/admin/ok.txt", "localhost", &password);
    let path = ws.config(&cfg);
    let log = ws.path("valgrind.log");
    let mut command = tokio::process::Command::new(valgrind);
    command
        .args(["--leak-check=full", "--show-leak-kinds=definite", "--num-callers=40"])
        .arg(format!("--log-file={}", log.display()))
        .args([BIN, "run", "-c", path.to_str().unwrap(), "--format", "json", "--concurrency", "1"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), command.output())
        .await
        .expect("valgrind ran for three minutes")
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    for name in ["password", "keytab", "cache"] {
        assert_passed(&report, name);
    }
    assert_failed(&report, "nul-in-password", "token", "config");
    assert_failed(&report, "refused-after-a-valid-ticket", "auth", "permission_denied");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("LEAK SUMMARY"), "valgrind did not finish:\n{text}");
    // One record per paragraph (each line starts with `==PID== `); the Kerberos libraries
    // and authprobe's Kerberos code are what must not appear in a lost block's stack.
    let plain: Vec<&str> = text.lines().map(|l| l.split_once("== ").map_or(l, |(_, rest)| rest)).collect();
    let plain = plain.join("\n");
    let lost: Vec<&str> = plain
        .split("\n\n")
        .filter(|record| record.contains("definitely lost in loss record"))
        .filter(|record| ["libkrb5", "libgssapi", "libk5crypto", "kerberos::"].iter().any(|l| record.contains(l)))
        .collect();
    assert!(lost.is_empty(), "Kerberos blocks lost:\n{}", lost.join("\n\n"));
}
