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

#[tokio::test]
async fn s3_profile_source_and_check_url() {
    let env = harness_env();
    let ws = Workspace::new();
    let (key, secret) = (harness_var(&env, "AP_S3_ACCESS_KEY"), harness_var(&env, "AP_S3_SECRET_KEY"));
    let credentials = ws.write("credentials", &format!("[ci]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n[stale]\naws_access_key_id = {key}\naws_secret_access_key = not-the-secret-any-more\n"));
    let config = ws.write("config", "[profile ci]\nregion = us-east-1\n\n[profile stale]\nregion = us-east-1\n");
    let mut with_files = env.clone();
    with_files.push(("AWS_SHARED_CREDENTIALS_FILE".into(), credentials.display().to_string()));
    with_files.push(("AWS_CONFIG_FILE".into(), config.display().to_string()));
    let mut cfg = String::new();
    for (name, profile) in [("profile-ci", "ci"), ("profile-stale", "stale"), ("profile-missing", "nope")] {
        cfg += &s3_probe(
            name,
            "${AP_S3_BUCKET}",
            "AP_S3_PORT",
            &format!("{{ type = \"profile\", profile = \"{profile}\" }}"),
        );
    }
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &with_files).await;
    let report = out.json();
    assert_passed(&report, "profile-ci");
    assert_failed(&report, "profile-stale", "auth", "auth_rejected");
    assert_failed(&report, "profile-missing", "token", "config");
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));

    // check s3:// takes AWS_* from the environment, as the AWS CLI does.
    let url = format!(
        "s3://{}/reports/?endpoint=http://127.0.0.1:{}",
        harness_var(&env, "AP_S3_BUCKET"),
        harness_var(&env, "AP_S3_PORT")
    );
    let mut with_keys = env.clone();
    with_keys.push(("AWS_ACCESS_KEY_ID".into(), key));
    with_keys.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
    let out = authprobe_harness(&["check", &url, "--format", "json"], &with_keys).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_passed(&out.json(), "check");
}
