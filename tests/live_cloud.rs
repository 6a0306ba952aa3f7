//! Cloud identities for http probes against the harness's local implementations of the
//! token protocols (scripts/harness/cloud_tokens.py): Google service-account keys (a signed
//! JWT checked against the registered public key), the GCP metadata server, Azure managed
//! identity (IMDS) and Entra ID client secrets. Every class produced by the server for real,
//! and no token, secret or key in any output.

use crate::util::*;

fn probe(name: &str, path: &str, auth: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:${{AP_CLOUD_PORT}}{path}\"\nauth = {{ {auth} }}\n# The harness's token services speak plain HTTP.\nallow_unverified_password = true\n\n"
    )
}

const HERE: &str = "endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\"";
const ENTRA: &str = "authority = \"http://127.0.0.1:${AP_CLOUD_PORT}\", tenant_id = \"${AP_AZURE_TENANT}\"";

#[tokio::test]
async fn cloud_identities_pass_and_fail_with_the_token_services_own_answers() {
    let env = harness_env();
    let ws = Workspace::new();
    let mut cfg = String::new();
    // Google service-account keys.
    cfg += &probe("gcp-key", "/gcp/api", "type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\"");
    cfg += &probe(
        "gcp-key-id-token",
        "/gcp/id-api",
        "type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\", audience = \"https://api.authprobe.test\"",
    );
    cfg += &probe(
        "gcp-key-rotated",
        "/gcp/api",
        "type = \"gcp_service_account\", key_file = \"${AP_GCP_ROTATED_KEY_FILE}\"",
    );
    cfg += &probe(
        "gcp-key-account-deleted",
        "/gcp/api",
        "type = \"gcp_service_account\", key_file = \"${AP_GCP_DELETED_KEY_FILE}\"",
    );
    // The ID token is for another audience: the token stage passes, the API refuses it.
    cfg += &probe(
        "gcp-key-wrong-audience",
        "/gcp/id-api",
        "type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\", audience = \"https://other.example\"",
    );
    // GCP metadata server.
    cfg += &probe("gcp-metadata", "/gcp/api", &format!("type = \"gcp_metadata\", {HERE}"));
    cfg += &probe(
        "gcp-metadata-id-token",
        "/gcp/id-api",
        &format!("type = \"gcp_metadata\", {HERE}, audience = \"https://api.authprobe.test\""),
    );
    cfg += &probe(
        "gcp-metadata-unknown-account",
        "/gcp/api",
        &format!(
            "type = \"gcp_metadata\", {HERE}, service_account = \"nobody@authprobe-test.iam.gserviceaccount.com\""
        ),
    );
    cfg += &probe("gcp-metadata-outside-gcp", "/gcp/api", "type = \"gcp_metadata\", endpoint = \"http://127.0.0.1:9\"");
    // Azure managed identity.
    let storage = "resource = \"https://storage.azure.com/\"";
    cfg += &probe("azure-mi", "/azure/api", &format!("type = \"azure_managed_identity\", {storage}, {HERE}"));
    cfg += &probe(
        "azure-mi-user-assigned",
        "/azure/api",
        &format!("type = \"azure_managed_identity\", {storage}, client_id = \"${{AP_AZURE_MI_CLIENT_ID}}\", {HERE}"),
    );
    cfg += &probe(
        "azure-mi-no-such-identity",
        "/azure/api",
        &format!(
            "type = \"azure_managed_identity\", {storage}, client_id = \"00000000-0000-0000-0000-000000000000\", {HERE}"
        ),
    );
    cfg += &probe(
        "azure-mi-unknown-resource",
        "/azure/api",
        &format!("type = \"azure_managed_identity\", resource = \"https://nothing.example/\", {HERE}"),
    );
    cfg += &probe(
        "azure-mi-outside-azure",
        "/azure/api",
        &format!("type = \"azure_managed_identity\", {storage}, endpoint = \"http://127.0.0.1:9\""),
    );
    // Entra ID client secret.
    let app = "client_id = \"${AP_AZURE_CLIENT_ID}\", scope = \"https://storage.azure.com/.default\"";
    cfg += &probe(
        "azure-secret",
        "/azure/api",
        &format!("type = \"azure_client_secret\", {ENTRA}, {app}, client_secret = \"${{AP_AZURE_CLIENT_SECRET}}\""),
    );
    cfg += &probe(
        "azure-secret-wrong",
        "/azure/api",
        &format!("type = \"azure_client_secret\", {ENTRA}, {app}, client_secret = \"CANARY-azure-wrong-3b9e\""),
    );
    cfg += &probe(
        "azure-secret-unknown-app",
        "/azure/api",
        &format!(
            "type = \"azure_client_secret\", {ENTRA}, client_id = \"12345678-0000-0000-0000-000000000000\", scope = \"https://storage.azure.com/.default\", client_secret = \"${{AP_AZURE_CLIENT_SECRET}}\""
        ),
    );
    cfg += &probe(
        "azure-secret-unknown-tenant",
        "/azure/api",
        &format!(
            "type = \"azure_client_secret\", authority = \"http://127.0.0.1:${{AP_CLOUD_PORT}}\", tenant_id = \"no-such-tenant\", {app}, client_secret = \"${{AP_AZURE_CLIENT_SECRET}}\""
        ),
    );
    cfg += &probe(
        "azure-secret-scope-without-default",
        "/azure/api",
        &format!(
            "type = \"azure_client_secret\", {ENTRA}, client_id = \"${{AP_AZURE_CLIENT_ID}}\", scope = \"https://storage.azure.com/user_impersonation\", client_secret = \"${{AP_AZURE_CLIENT_SECRET}}\""
        ),
    );
    // A valid Google token where an Azure one is needed: refused by the API, at `auth`.
    cfg += &probe("gcp-token-at-azure", "/azure/api", &format!("type = \"gcp_metadata\", {HERE}"));
    let config = ws.config(&cfg);
    let path = config.to_str().unwrap();

    let out = authprobe_harness(&["run", "-c", path, "--format", "json"], &env).await;
    let report = out.json();
    for name in [
        "gcp-key",
        "gcp-key-id-token",
        "gcp-metadata",
        "gcp-metadata-id-token",
        "azure-mi",
        "azure-mi-user-assigned",
        "azure-secret",
    ] {
        let p = assert_passed(&report, name);
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "token", "auth", "check"], "{name}");
    }
    let rotated = assert_failed(&report, "gcp-key-rotated", "token", "auth_rejected");
    assert!(rotated["error"]["message"].as_str().unwrap().contains("Invalid JWT Signature"), "{rotated:#}");
    assert!(rotated["error"]["hint"].as_str().unwrap().contains("keys list"), "{rotated:#}");
    let deleted = assert_failed(&report, "gcp-key-account-deleted", "token", "auth_rejected");
    assert!(deleted["error"]["message"].as_str().unwrap().contains("account not found"), "{deleted:#}");
    assert_failed(&report, "gcp-key-wrong-audience", "auth", "auth_rejected");
    assert_failed(&report, "gcp-metadata-unknown-account", "token", "not_found");
    let outside = assert_failed(&report, "gcp-metadata-outside-gcp", "token", "network");
    assert!(outside["error"]["hint"].as_str().unwrap().contains("only on GCP"), "{outside:#}");
    let no_identity = assert_failed(&report, "azure-mi-no-such-identity", "token", "auth_rejected");
    assert!(no_identity["error"]["message"].as_str().unwrap().contains("Identity not found"), "{no_identity:#}");
    assert_failed(&report, "azure-mi-unknown-resource", "token", "permission_denied");
    let outside = assert_failed(&report, "azure-mi-outside-azure", "token", "network");
    assert!(outside["error"]["hint"].as_str().unwrap().contains("only on Azure"), "{outside:#}");
    let wrong = assert_failed(&report, "azure-secret-wrong", "token", "auth_rejected");
    assert!(wrong["error"]["message"].as_str().unwrap().contains("AADSTS7000215"), "{wrong:#}");
    let unknown_app = assert_failed(&report, "azure-secret-unknown-app", "token", "auth_rejected");
    assert!(unknown_app["error"]["message"].as_str().unwrap().contains("AADSTS700016"), "{unknown_app:#}");
    assert_failed(&report, "azure-secret-unknown-tenant", "token", "not_found");
    assert_failed(&report, "azure-secret-scope-without-default", "token", "permission_denied");
    assert_failed(&report, "gcp-token-at-azure", "auth", "auth_rejected");

    // No token, assertion, secret or key material in any output, at any verbosity.
    let mut seen = out.stdout.clone() + &out.stderr;
    for args in [vec!["-vv"], vec!["--format", "markdown"], vec!["--format", "prometheus"], vec!["--format", "junit"]] {
        let mut full = vec!["run", "-c", path];
        full.extend(args);
        let out = authprobe_harness(&full, &env).await;
        seen += &out.stdout;
        seen += &out.stderr;
    }
    assert!(seen.contains("token: a Bearer token"), "-vv shows what kind of token came back:\n{seen}");
    let issued = std::fs::read_to_string(harness_var(&env, "AP_CLOUD_ISSUED")).unwrap();
    let mut secrets: Vec<String> = issued.lines().filter(|l| l.len() > 20).map(str::to_string).collect();
    assert!(secrets.len() > 20, "the token services issued tokens to these runs");
    secrets.push(harness_var(&env, "AP_AZURE_CLIENT_SECRET"));
    secrets.push("CANARY-azure-wrong-3b9e".into());
    for key in ["AP_GCP_KEY_FILE", "AP_GCP_ROTATED_KEY_FILE"] {
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(harness_var(&env, key)).unwrap()).unwrap();
        let pem = file["private_key"].as_str().unwrap();
        secrets.extend(pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_string));
    }
    for secret in secrets {
        assert!(!seen.contains(&secret), "`{secret}` leaked:\n{seen}");
    }
}

#[tokio::test]
async fn unusable_cloud_credentials_are_config_errors_naming_the_key() {
    let ws = Workspace::new();
    let not_json = ws.write("not-json.json", "this is not JSON");
    let user_creds = ws.write("adc.json", r#"{"type": "authorized_user", "client_id": "x", "client_secret": "CANARY-adc-secret-7a1f", "refresh_token": "r"}"#);
    let cfg = format!(
        "{}{}{}{}",
        probe("a", "/", &format!("type = \"gcp_service_account\", key_file = \"{}\"", not_json.display())),
        probe("b", "/", &format!("type = \"gcp_service_account\", key_file = \"{}\"", user_creds.display())),
        probe("c", "/", "type = \"gcp_service_account\", key_file = \"/nonexistent/key.json\""),
        probe("d", "/", "type = \"azure_managed_identity\""),
    );
    let config = ws.config(&cfg);
    let out = authprobe(&["validate", "-c", config.to_str().unwrap()], &[("AP_CLOUD_PORT", "1")]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not-json.json: not a service-account key file (invalid JSON"), "{}", out.stderr);
    assert!(out.stderr.contains("adc.json: a `authorized_user` credential file"), "{}", out.stderr);
    assert!(out.stderr.contains("cannot read /nonexistent/key.json"), "{}", out.stderr);
    assert!(out.stderr.contains("missing required key `resource`"), "{}", out.stderr);
    assert!(!out.stderr.contains("CANARY-adc-secret-7a1f"), "{}", out.stderr);
}

/// `aws_sigv4` against servers that check SigV4 for real: s3s-fs (S3's REST API) and moto
/// (STS and IAM policies).
#[tokio::test]
async fn aws_sigv4_signed_requests_pass_and_fail_with_aws_error_codes() {
    let env = harness_env();
    let ws = Workspace::new();
    let s3s = |secret: &str| {
        format!(
            "type = \"aws_sigv4\", service = \"s3\", region = \"us-east-1\", credentials = {{ type = \"static\", access_key_id = \"${{AP_S3_ACCESS_KEY}}\", secret_access_key = \"{secret}\" }}"
        )
    };
    let moto = |key: &str, secret: &str| {
        format!(
            "type = \"aws_sigv4\", service = \"{{SERVICE}}\", region = \"us-east-1\", credentials = {{ type = \"static\", access_key_id = \"{key}\", secret_access_key = \"{secret}\" }}"
        )
    };
    let s3_url = "http://127.0.0.1:${AP_S3_PORT}/${AP_S3_BUCKET}?list-type=2&max-keys=1";
    let mut cfg = String::new();
    cfg += &http_probe("s3-rest", s3_url, &format!("auth = {{ {} }}", s3s("${AP_S3_SECRET_KEY}")));
    cfg += &http_probe("s3-rest-wrong-secret", s3_url, &format!("auth = {{ {} }}", s3s("CANARY-sigv4-wrong-1d2c")));
    let sts_call = "method = \"POST\"\nheaders = { \"Content-Type\" = \"application/x-www-form-urlencoded; charset=utf-8\" }\nbody = \"Action=GetCallerIdentity&Version=2011-06-15\"";
    let good = moto("${AP_MOTO_ACCESS_KEY}", "${AP_MOTO_SECRET_KEY}").replace("{SERVICE}", "sts");
    cfg += &http_probe(
        "sts-caller-identity",
        "http://127.0.0.1:${AP_MOTO_PORT}/",
        &format!("{sts_call}\nauth = {{ {good} }}"),
    );
    let unknown = moto("AKIAUNKNOWNKEY000000", "CANARY-sigv4-unknown-5a0b").replace("{SERVICE}", "sts");
    cfg += &http_probe(
        "sts-unknown-key",
        "http://127.0.0.1:${AP_MOTO_PORT}/",
        &format!("{sts_call}\nauth = {{ {unknown} }}"),
    );
    let s3_on_moto = moto("${AP_MOTO_ACCESS_KEY}", "${AP_MOTO_SECRET_KEY}").replace("{SERVICE}", "s3");
    cfg += &http_probe(
        "moto-bucket-allowed",
        "http://127.0.0.1:${AP_MOTO_PORT}/${AP_MOTO_ALLOWED_BUCKET}?list-type=2",
        &format!("auth = {{ {s3_on_moto} }}"),
    );
    cfg += &http_probe(
        "moto-bucket-denied",
        "http://127.0.0.1:${AP_MOTO_PORT}/${AP_MOTO_DENIED_BUCKET}?list-type=2",
        &format!("auth = {{ {s3_on_moto} }}"),
    );
    let config = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    for name in ["s3-rest", "sts-caller-identity", "moto-bucket-allowed"] {
        let p = assert_passed(&report, name);
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "token", "auth", "check"], "{name}");
    }
    let wrong = assert_failed(&report, "s3-rest-wrong-secret", "auth", "auth_rejected");
    assert!(wrong["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{wrong:#}");
    let unknown = assert_failed(&report, "sts-unknown-key", "auth", "auth_rejected");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("InvalidClientTokenId"), "{unknown:#}");
    let denied = assert_failed(&report, "moto-bucket-denied", "check", "permission_denied");
    assert!(denied["error"]["message"].as_str().unwrap().contains("AccessDenied"), "{denied:#}");

    let verbose = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "-vv"], &env).await;
    let seen = out.stdout + &out.stderr + &verbose.stdout + &verbose.stderr;
    for secret in [
        harness_var(&env, "AP_S3_SECRET_KEY"),
        harness_var(&env, "AP_MOTO_SECRET_KEY"),
        "CANARY-sigv4-wrong-1d2c".into(),
        "CANARY-sigv4-unknown-5a0b".into(),
    ] {
        assert!(!seen.contains(&secret), "`{secret}` leaked:\n{seen}");
    }
    assert!(!seen.contains("Signature="), "a signature leaked:\n{seen}");
}

/// `web_identity` reads its token at each attempt (Kubernetes rotates it): a missing token
/// is a `config` failure at `token`, naming the file and what provides it.
#[tokio::test]
async fn a_missing_web_identity_token_is_named() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = "[[probe]]\nname = \"irsa\"\nkind = \"s3\"\nbucket = \"${AP_MOTO_ALLOWED_BUCKET}\"\nendpoint = \"http://127.0.0.1:${AP_MOTO_PORT}\"\nauth = { type = \"web_identity\", role_arn = \"${AP_MOTO_ROLE_ARN}\", token_file = \"/nonexistent/token\" }\n";
    let config = ws.config(cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    let p = assert_failed(&report, "irsa", "token", "config");
    assert!(p["error"]["message"].as_str().unwrap().contains("/nonexistent/token"), "{p:#}");
    assert!(p["error"]["hint"].as_str().unwrap().contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{p:#}");
}

/// `web_identity` end to end: the harness's STS checks the projected service-account token
/// (signature against the cluster issuer's key, issuer, audience, expiry, the role's trust
/// in its subject) and hands out keys that s3s-fs and the RDS token checker accept.
#[tokio::test]
async fn web_identity_roles_are_assumed_and_refused_by_sts() {
    let env = harness_env();
    let ws = Workspace::new();
    let web_identity = |role: &str, token: &str| {
        format!(
            "{{ type = \"web_identity\", role_arn = \"${{{role}}}\", token_file = \"${{AP_WEB_IDENTITY_DIR}}/{token}\", sts_endpoint = \"http://127.0.0.1:${{AP_CLOUD_PORT}}\" }}"
        )
    };
    let s3 = |name: &str, token: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"s3\"\nbucket = \"${{AP_S3_BUCKET}}\"\nendpoint = \"http://127.0.0.1:${{AP_S3_PORT}}\"\nauth = {}\n\n",
            web_identity("AP_WEB_IDENTITY_S3_ROLE", token)
        )
    };
    let mut cfg = String::new();
    cfg += &s3("irsa", "token");
    cfg += &s3("irsa-expired", "token-expired");
    cfg += &s3("irsa-wrong-audience", "token-wrong-audience");
    cfg += &s3("irsa-forged", "token-forged");
    cfg += &s3("irsa-untrusted-service-account", "token-untrusted-sa");
    cfg += &format!(
        "[[probe]]\nname = \"rds-iam-via-irsa\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = \"${{AP_PG_PORT}}\"\nuser = \"${{AP_IAM_DB_USER}}\"\ndatabase = \"appdb\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {{ type = \"rds_iam\", region = \"${{AP_RDS_REGION}}\", credentials = {} }}\n\n",
        web_identity("AP_WEB_IDENTITY_DB_ROLE", "token")
    );
    let config = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    let ok = assert_passed(&report, "irsa");
    let stages: Vec<&str> = ok["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dns", "connect", "token", "auth", "check"]);
    assert_passed(&report, "rds-iam-via-irsa");
    for (name, code) in [
        ("irsa-expired", "ExpiredTokenException"),
        ("irsa-wrong-audience", "InvalidIdentityToken"),
        ("irsa-forged", "InvalidIdentityToken"),
    ] {
        let p = assert_failed(&report, name, "token", "auth_rejected");
        assert!(p["error"]["message"].as_str().unwrap().contains(code), "{p:#}");
    }
    let denied = assert_failed(&report, "irsa-untrusted-service-account", "token", "permission_denied");
    assert!(denied["error"]["message"].as_str().unwrap().contains("AccessDenied"), "{denied:#}");
    assert!(denied["error"]["hint"].as_str().unwrap().contains("trust policy"), "{denied:#}");

    let verbose = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "-vv"], &env).await;
    let seen = out.stdout + &out.stderr + &verbose.stdout + &verbose.stderr;
    let dir = std::path::PathBuf::from(harness_var(&env, "AP_WEB_IDENTITY_DIR"));
    let mut secrets: Vec<String> = ["token", "token-expired", "token-forged", "token-untrusted-sa"]
        .iter()
        .map(|t| std::fs::read_to_string(dir.join(t)).unwrap().trim().to_string())
        .collect();
    // Session tokens STS handed out, and the keys behind the roles.
    let issued = std::fs::read_to_string(harness_var(&env, "AP_CLOUD_ISSUED")).unwrap();
    secrets.extend(issued.lines().filter(|l| l.starts_with("IQoJ")).map(str::to_string));
    secrets.push(harness_var(&env, "AP_S3_SECRET_KEY"));
    secrets.push(harness_var(&env, "AP_RDS_SECRET_ACCESS_KEY"));
    for secret in secrets {
        assert!(!seen.contains(&secret), "a token or key leaked:\n{seen}");
    }
}
