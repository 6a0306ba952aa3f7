//! The s3 probe against the harness's S3 servers: s3s-fs (SigV4 checked for real, also
//! behind TLS), and moto (AWS's own error codes, IAM policies, STS AssumeRole, session
//! tokens).

use crate::util::servers;
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
    cfg += &s3_probe("anonymous", "${AP_S3_BUCKET}", "AP_S3_PORT", "{ type = \"anonymous\" }");
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
    assert_eq!(stages, ["dns", "connect", "token", "auth", "check"]);
    let p = assert_failed(&report, "wrong-secret", "auth", "auth_rejected");
    assert!(p["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{p:#}");
    assert_failed(&report, "unknown-key", "auth", "auth_rejected");
    assert_failed(&report, "no-such-bucket", "check", "not_found");
    let anonymous = assert_failed(&report, "anonymous", "check", "permission_denied");
    assert!(anonymous["error"]["hint"].as_str().unwrap().contains("anonymous listing"), "{anonymous:#}");
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

#[tokio::test]
async fn s3_over_tls_is_verified_like_every_other_probe() {
    let env = harness_env();
    let ws = Workspace::new();
    let good = static_auth("${AP_S3_ACCESS_KEY}", "${AP_S3_SECRET_KEY}");
    let probe = |name: &str, host: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"s3\"\nbucket = \"${{AP_S3_BUCKET}}\"\nendpoint = \"https://{host}:${{AP_S3_TLS_PORT}}\"\nauth = {good}\n{extra}\n\n"
        )
    };
    let mut cfg = String::new();
    cfg += &probe("ca", "localhost", "tls = { ca = \"${AP_CA}\" }");
    cfg += &probe("system-store", "localhost", "");
    cfg += &probe("pinned", "127.0.0.1", "tls = { pin_sha256 = [\"${AP_SERVER_SHA256}\"] }");
    cfg += &probe("wrong-name", "localhost", "tls = { ca = \"${AP_CA}\", server_name = \"s3.example.com\" }");
    cfg += &probe("tls-ok-wrong-secret", "localhost", "tls = { ca = \"${AP_CA}\" }")
        .replace(&good, &static_auth("${AP_S3_ACCESS_KEY}", "CANARY-s3-tls-wrong-5e1b"));
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    let fingerprint = harness_var(&env, "AP_SERVER_SHA256");
    let ok = assert_passed(&report, "ca");
    assert_eq!(ok["tls"]["sha256"], fingerprint.as_str(), "{ok:#}");
    assert_eq!(ok["tls"]["verified"], true, "{ok:#}");
    let stages: Vec<&str> = ok["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dns", "connect", "tls", "token", "auth", "check"]);
    let untrusted = assert_failed(&report, "system-store", "tls", "tls_untrusted");
    assert!(
        untrusted["error"]["hint"].as_str().unwrap().contains(&format!("pin_sha256 = [\"{fingerprint}\"]")),
        "{untrusted:#}"
    );
    assert_eq!(untrusted["tls"]["sha256"], fingerprint.as_str(), "{untrusted:#}");
    let pinned = assert_passed(&report, "pinned");
    assert_eq!(pinned["tls"]["pinned"], true, "{pinned:#}");
    assert_failed(&report, "wrong-name", "tls", "tls_hostname");
    let signed = assert_failed(&report, "tls-ok-wrong-secret", "auth", "auth_rejected");
    assert!(signed["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{signed:#}");
    assert!(!out.stdout.contains("CANARY-s3-tls-wrong-5e1b"), "a secret leaked");
}

/// An environment in which the AWS default chain finds nothing: no AWS_* variables (the
/// helpers never pass on the caller's), an empty home, and an instance metadata service
/// that accepts connections and never answers (the worst case: a machine outside a cloud
/// behind a silent firewall).
fn empty_aws_environment(env: &[(String, String)], home: &Workspace, imds: &servers::Server) -> Vec<(String, String)> {
    let mut vars = env.to_vec();
    vars.push(("HOME".into(), home.dir.path().display().to_string()));
    vars.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.url("http", "")));
    vars
}

#[tokio::test]
async fn the_default_chain_gives_up_in_time_and_static_keys_never_ask_the_metadata_service() {
    let env = harness_env();
    let imds = servers::silent().await;
    let home = Workspace::new();
    let vars = empty_aws_environment(&env, &home, &imds);
    let ws = Workspace::new();
    let mut cfg =
        s3_probe("static", "${AP_S3_BUCKET}", "AP_S3_PORT", &static_auth("${AP_S3_ACCESS_KEY}", "${AP_S3_SECRET_KEY}"));
    let path = ws.config(&cfg);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (out, report) = run_json(&path, &pairs).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_passed(&report, "static");
    assert_eq!(imds.requests(), 0, "static credentials must not touch the instance metadata service");

    cfg = s3_probe("nothing-configured", "${AP_S3_BUCKET}", "AP_S3_PORT", "{ type = \"default_chain\" }");
    cfg.push_str("timeout = \"4s\"\n");
    let path = ws.config(&cfg);
    let started = std::time::Instant::now();
    let (out, report) = run_json(&path, &pairs).await;
    let elapsed = started.elapsed();
    assert_eq!(out.code, 1);
    let p = assert_failed(&report, "nothing-configured", "token", "config");
    let message = p["error"]["message"].as_str().unwrap();
    assert!(!message.contains('\n'), "one line: {message}");
    for tried in ["Environment", "Profile", "WebIdentityToken", "EcsContainer", "Ec2InstanceMetadata"] {
        assert!(message.contains(tried), "{tried} missing from: {message}");
    }
    assert!(p["error"]["hint"].as_str().unwrap().contains("instance metadata service"), "{p:#}");
    assert!(imds.requests() >= 1, "the default chain asks the metadata service");
    assert!(elapsed < std::time::Duration::from_secs(4), "gave up after {elapsed:?}, not within the 4 s timeout");
}

#[tokio::test]
async fn session_tokens_are_sent_and_checked() {
    let env = harness_env();
    // Temporary credentials from moto's STS, minted with boto3 as a user's tooling would.
    let script = "import boto3,os,json\nsts=boto3.client('sts',endpoint_url='http://127.0.0.1:'+os.environ['AP_MOTO_PORT'],region_name='us-east-1',aws_access_key_id=os.environ['AP_MOTO_ACCESS_KEY'],aws_secret_access_key=os.environ['AP_MOTO_SECRET_KEY'])\nc=sts.assume_role(RoleArn=os.environ['AP_MOTO_ROLE_ARN'],RoleSessionName='authprobe-test')['Credentials']\nprint(json.dumps([c['AccessKeyId'],c['SecretAccessKey'],c['SessionToken']]))";
    let out = std::process::Command::new(require_tool("python3"))
        .args(["-c", script])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (key, secret, token): (String, String, String) = serde_json::from_slice(&out.stdout).unwrap();
    let ws = Workspace::new();
    let with_token = |t: &str| {
        format!(
            "{{ type = \"static\", access_key_id = \"{key}\", secret_access_key = \"{secret}\", session_token = \"{t}\" }}"
        )
    };
    let mut cfg = s3_probe("session", "${AP_MOTO_ALLOWED_BUCKET}", "AP_MOTO_PORT", &with_token(&token));
    cfg += &s3_probe(
        "bogus-token",
        "${AP_MOTO_ALLOWED_BUCKET}",
        "AP_MOTO_PORT",
        &with_token("CANARY-bogus-session-token-0a7d"),
    );
    cfg += &s3_probe("token-missing", "${AP_MOTO_ALLOWED_BUCKET}", "AP_MOTO_PORT", &static_auth(&key, &secret));
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-vv"], &env).await;
    for leaked in [&secret, &token, &"CANARY-bogus-session-token-0a7d".to_string()] {
        assert!(!out.stdout.contains(leaked.as_str()) && !out.stderr.contains(leaked.as_str()), "a secret leaked");
    }
    let report = out.json();
    assert_passed(&report, "session");
    let bogus = assert_failed(&report, "bogus-token", "auth", "auth_rejected");
    assert!(bogus["error"]["message"].as_str().unwrap().contains("InvalidToken"), "{bogus:#}");
    assert_failed(&report, "token-missing", "auth", "auth_rejected");
}
