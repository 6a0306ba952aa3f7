//! The s3 probe against the harness's S3 servers: s3s-fs (SigV4 checked for real) and moto
//! (AWS's own error codes, IAM policies, STS AssumeRole).

use crate::util::*;

fn s3_probe(name: &str, bucket: &str, port_var: &str, auth: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"http://127.0.0.1:${{{port_var}}}\"\nauth = {auth}\n\n"
    )
}

fn static_auth(key: &str, secret: &str) -> String {
    format!("{{ type = \"static\", access_key_id = \"{key}\", secret_access_key = \"{secret}\" }}")
}

#[tokio::test]
async fn s3_credentials_policies_and_roles_are_checked_by_real_servers() {
    let mut env = harness_env();
    env.push(("AWS_ACCESS_KEY_ID".into(), harness_var(&env, "AP_S3_ACCESS_KEY")));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), harness_var(&env, "AP_S3_SECRET_KEY")));
    let ws = Workspace::new();
    let good = static_auth("${AP_S3_ACCESS_KEY}", "${AP_S3_SECRET_KEY}");
    let moto = static_auth("${AP_MOTO_ACCESS_KEY}", "${AP_MOTO_SECRET_KEY}");
    let wrong_secret = "CANARY-s3-wrong-secret-77aa01";
    let mut cfg = String::new();
    cfg += &s3_probe("ok", "${AP_S3_BUCKET}", "AP_S3_PORT", &good).replace("auth =", "prefix = \"reports/\"\nauth =");
    cfg +=
        &s3_probe("wrong-secret", "${AP_S3_BUCKET}", "AP_S3_PORT", &static_auth("${AP_S3_ACCESS_KEY}", wrong_secret));
    cfg +=
        &s3_probe("unknown-key", "${AP_S3_BUCKET}", "AP_S3_PORT", &static_auth("AKIAUNKNOWNKEY000000", wrong_secret));
    cfg += &s3_probe("no-such-bucket", "no-such-bucket", "AP_S3_PORT", &good);
    cfg += &s3_probe("env-source", "${AP_S3_BUCKET}", "AP_S3_PORT", "{ type = \"env\" }");
    cfg += &s3_probe("moto-allowed", "${AP_MOTO_ALLOWED_BUCKET}", "AP_MOTO_PORT", &moto);
    cfg += &s3_probe("moto-denied", "${AP_MOTO_DENIED_BUCKET}", "AP_MOTO_PORT", &moto);
    cfg += &s3_probe(
        "moto-wrong-secret",
        "${AP_MOTO_ALLOWED_BUCKET}",
        "AP_MOTO_PORT",
        &static_auth("${AP_MOTO_ACCESS_KEY}", wrong_secret),
    );
    cfg += &s3_probe(
        "moto-unknown-key",
        "${AP_MOTO_ALLOWED_BUCKET}",
        "AP_MOTO_PORT",
        &static_auth("AKIAUNKNOWNKEY000000", wrong_secret),
    );
    let assume = |role: &str| {
        format!(
            "{{ type = \"assume_role\", role_arn = \"{role}\", session_name = \"authprobe-test\", source = {moto} }}"
        )
    };
    cfg += &s3_probe("moto-assume-role", "${AP_MOTO_ALLOWED_BUCKET}", "AP_MOTO_PORT", &assume("${AP_MOTO_ROLE_ARN}"));
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-v"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for secret in [harness_var(&env, "AP_S3_SECRET_KEY"), harness_var(&env, "AP_MOTO_SECRET_KEY"), wrong_secret.into()]
    {
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "a secret leaked");
    }
    let report = out.json();
    let ok = assert_passed(&report, "ok");
    let stages: Vec<&str> = ok["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["token", "auth", "check"]);
    let p = assert_failed(&report, "wrong-secret", "auth", "auth_rejected");
    assert!(p["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{p:#}");
    assert_failed(&report, "unknown-key", "auth", "auth_rejected");
    assert_failed(&report, "no-such-bucket", "check", "not_found");
    assert_passed(&report, "env-source");
    assert_passed(&report, "moto-allowed");
    assert_failed(&report, "moto-denied", "check", "permission_denied");
    let sig = assert_failed(&report, "moto-wrong-secret", "auth", "auth_rejected");
    assert!(sig["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{sig:#}");
    let unknown = assert_failed(&report, "moto-unknown-key", "auth", "auth_rejected");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("InvalidAccessKeyId"), "{unknown:#}");
    assert_passed(&report, "moto-assume-role");
}
