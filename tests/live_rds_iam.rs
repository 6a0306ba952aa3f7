//! `auth = { type = "rds_iam" }` for postgres and mysql against the harness's real
//! PostgreSQL and MariaDB, which hand the password to PAM; there pam_exec runs
//! scripts/harness/rds_token_check.py, which accepts only a correctly presigned RDS token
//! (SigV4 over host, port, user, region and rds-db, current, from a known key allowed to
//! connect as that user), as RDS does.

use crate::util::*;

fn iam_probe(name: &str, kind: &str, port_var: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"{kind}\"\nhost = \"127.0.0.1\"\nport = \"${{{port_var}}}\"\nuser = \"${{AP_IAM_DB_USER}}\"\ndatabase = \"appdb\"\nquery = \"SELECT item FROM orders\"\n{extra}\n\n"
    )
}

fn rds_iam(region: &str, key: &str, secret: &str) -> String {
    format!(
        "auth = {{ type = \"rds_iam\", region = \"{region}\", credentials = {{ type = \"static\", access_key_id = \"{key}\", secret_access_key = \"{secret}\" }} }}"
    )
}

#[tokio::test]
async fn rds_iam_tokens_are_accepted_and_refused_by_the_database() {
    let env = harness_env();
    let ws = Workspace::new();
    let ca = "tls = { ca = \"${AP_CA}\" }";
    let good = rds_iam("${AP_RDS_REGION}", "${AP_RDS_ACCESS_KEY_ID}", "${AP_RDS_SECRET_ACCESS_KEY}");
    let wrong_secret = rds_iam("${AP_RDS_REGION}", "${AP_RDS_ACCESS_KEY_ID}", "CANARY-rds-wrong-9f3e1a");
    let other_key = rds_iam("${AP_RDS_REGION}", "${AP_RDS_OTHER_ACCESS_KEY_ID}", "${AP_RDS_OTHER_SECRET_ACCESS_KEY}");
    let wrong_region = rds_iam("ap-south-1", "${AP_RDS_ACCESS_KEY_ID}", "${AP_RDS_SECRET_ACCESS_KEY}");
    let mut cfg = String::new();
    for (kind, port) in [("postgres", "AP_PG_PORT"), ("mysql", "AP_MYSQL_PORT")] {
        cfg += &iam_probe(&format!("{kind}-iam"), kind, port, &format!("{ca}\n{good}"));
        cfg += &iam_probe(&format!("{kind}-iam-wrong-secret"), kind, port, &format!("{ca}\n{wrong_secret}"));
        cfg += &iam_probe(&format!("{kind}-iam-key-not-allowed"), kind, port, &format!("{ca}\n{other_key}"));
        cfg += &iam_probe(&format!("{kind}-iam-wrong-region"), kind, port, &format!("{ca}\n{wrong_region}"));
        // No CA: rds_iam verifies the server by default, so the token is never sent.
        cfg += &iam_probe(&format!("{kind}-iam-unverified-server"), kind, port, &good);
    }
    let config = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    for kind in ["postgres", "mysql"] {
        let ok = assert_passed(&report, &format!("{kind}-iam"));
        let stages: Vec<&str> = ok["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "tls", "token", "auth", "check"], "{ok:#}");
        assert_eq!(ok["tls"]["verified"], true, "{ok:#}");
        for refused in ["wrong-secret", "key-not-allowed", "wrong-region"] {
            let p = assert_failed(&report, &format!("{kind}-iam-{refused}"), "auth", "auth_rejected");
            let hint = p["error"]["hint"].as_str().unwrap();
            assert!(hint.contains("RDS IAM token was refused") && hint.contains("rds-db:connect"), "{p:#}");
        }
        let p = assert_failed(&report, &format!("{kind}-iam-unverified-server"), "tls", "tls_untrusted");
        let token = p["stages"].as_array().unwrap().iter().find(|s| s["name"] == "token").unwrap();
        assert_eq!(token["status"], "skipped", "the token was made for an unverified server: {p:#}");
    }
    assert!(
        probe(&report, "postgres-iam-wrong-secret")["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PAM authentication failed")
    );
    assert!(probe(&report, "mysql-iam-wrong-secret")["error"]["message"].as_str().unwrap().contains("1045"));

    // The servers' verdicts, as the token checker logged them.
    let state = std::path::Path::new(&harness_var(&env, "AP_CERTS")).parent().unwrap().to_path_buf();
    let log = std::fs::read_to_string(state.join("logs/rds-iam.log")).unwrap_or_default();
    for reason in [
        "accepted",
        "refused: the signature does not match",
        "may not rds-db:connect as",
        "credential scope ap-south-1/rds-db/aws4_request is not",
    ] {
        assert!(log.contains(reason), "the token checker never logged `{reason}`:\n{log}");
    }

    let verbose = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "-vv"], &env).await;
    let markdown = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "markdown"], &env).await;
    let seen = [out.stdout, out.stderr, verbose.stdout, verbose.stderr, markdown.stdout, markdown.stderr].concat();
    assert!(seen.contains("token: RDS auth token for"), "-vv should say how the token was made:\n{seen}");
    for secret in [
        harness_var(&env, "AP_RDS_SECRET_ACCESS_KEY"),
        harness_var(&env, "AP_RDS_OTHER_SECRET_ACCESS_KEY"),
        "CANARY-rds-wrong-9f3e1a".into(),
        "X-Amz-Signature".into(),
        "X-Amz-Credential".into(),
        "Action=connect".into(),
    ] {
        assert!(!seen.contains(&secret), "`{secret}` leaked:\n{seen}");
    }
}

#[tokio::test]
async fn rds_iam_misconfigurations_are_refused_before_any_traffic() {
    let ws = Workspace::new();
    let auth = rds_iam("eu-west-1", "AKIAAUTHPROBERDS0001", "CANARY-rds-config-2b7d");
    let probe = |name: &str, kind: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"{kind}\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\n{extra}\n\n"
        )
    };
    let cases = [
        ("mssql", probe("sqlserver-iam", "mssql", &auth), "rds_iam is for postgres and mysql"),
        ("with a password", probe("both", "postgres", &format!("password = \"p\"\n{auth}")), "leave `password` out"),
        ("unencrypted", probe("plain", "mysql", &format!("tls = {{ mode = \"prefer\" }}\n{auth}")), "only over TLS"),
        (
            "anonymous",
            probe(
                "anon",
                "postgres",
                "auth = { type = \"rds_iam\", region = \"eu-west-1\", credentials = { type = \"anonymous\" } }",
            ),
            "nothing to sign with",
        ),
        ("no region", probe("noregion", "postgres", "auth = { type = \"rds_iam\" }"), "`region`"),
        (
            "unknown type",
            probe("typo", "postgres", "auth = { type = \"rds-iam\" }"),
            "unknown database auth type `rds-iam` (did you mean `rds_iam`?)",
        ),
    ];
    for (what, cfg, expected) in cases {
        let config = ws.config(&cfg);
        let out = authprobe(&["validate", "-c", config.to_str().unwrap()], &[]).await;
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{what}: expected `{expected}` in:\n{}", out.stderr);
        assert!(out.stderr.contains(":7:") || out.stderr.contains(":6:"), "{what}: no line in:\n{}", out.stderr);
        assert!(!out.stderr.contains("CANARY-rds-config-2b7d"), "{what}: the secret leaked");
    }
}
