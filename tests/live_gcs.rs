//! The gcs probe. Tokens come from the harness's Google token endpoint and metadata server
//! (scripts/harness/cloud_tokens.py, which check the JWT's signature and the metadata
//! header); listings from the GCS emulator (PyPI gcp-storage-emulator) behind the token
//! service's /storage/v1 front, which checks the bearer token and bucket IAM because the
//! emulator checks no credentials. HMAC keys use the XML API with SigV4, checked by s3s-fs.

use crate::util::*;

fn gcs_probe(name: &str, bucket: &str, endpoint: &str, auth: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"gcs\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nauth = {auth}\n# The harness's token services speak plain HTTP.\nallow_unverified_password = true\n\n"
    )
}

#[tokio::test]
async fn gcs_passes_and_fails_with_the_services_own_answers() {
    let env = harness_env();
    let ws = Workspace::new();
    let gcs = "http://127.0.0.1:${AP_CLOUD_PORT}";
    let key = "{ type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\" }";
    let metadata = "{ type = \"gcp_metadata\", endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\" }";
    let mut cfg = String::new();
    cfg += &gcs_probe("service-account", "${AP_GCS_BUCKET}", gcs, key);
    cfg += &gcs_probe("metadata", "${AP_GCS_BUCKET}", gcs, metadata);
    cfg += &gcs_probe("no-list-permission", "${AP_GCS_LOCKED_BUCKET}", gcs, metadata);
    cfg += &gcs_probe("no-such-bucket", "authprobe-gcs-missing", gcs, key);
    cfg += &gcs_probe(
        "rotated-key",
        "${AP_GCS_BUCKET}",
        gcs,
        "{ type = \"gcp_service_account\", key_file = \"${AP_GCP_ROTATED_KEY_FILE}\" }",
    );
    // An ID token is not an access token: the storage API refuses it.
    cfg += &gcs_probe(
        "id-token-instead",
        "${AP_GCS_BUCKET}",
        gcs,
        "{ type = \"gcp_service_account\", key_file = \"${AP_GCP_KEY_FILE}\", audience = \"https://storage.googleapis.com\" }",
    );
    cfg += &gcs_probe("anonymous-private-bucket", "${AP_GCS_BUCKET}", gcs, "{ type = \"anonymous\" }");
    let s3s = "http://127.0.0.1:${AP_S3_PORT}";
    cfg += &gcs_probe(
        "hmac",
        "${AP_S3_BUCKET}",
        s3s,
        "{ type = \"hmac\", access_id = \"${AP_S3_ACCESS_KEY}\", secret = \"${AP_S3_SECRET_KEY}\" }",
    );
    cfg += &gcs_probe(
        "hmac-wrong-secret",
        "${AP_S3_BUCKET}",
        s3s,
        "{ type = \"hmac\", access_id = \"${AP_S3_ACCESS_KEY}\", secret = \"CANARY-gcs-hmac-4e0d\" }",
    );
    let config = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    for (name, stages) in [
        ("service-account", &["dns", "connect", "token", "auth", "check"][..]),
        ("metadata", &["dns", "connect", "token", "auth", "check"][..]),
        ("hmac", &["dns", "connect", "auth", "check"][..]),
    ] {
        let p = assert_passed(&report, name);
        let seen: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(seen, stages, "{name}");
    }
    let denied = assert_failed(&report, "no-list-permission", "check", "permission_denied");
    assert!(denied["error"]["message"].as_str().unwrap().contains("storage.objects.list"), "{denied:#}");
    assert!(denied["error"]["hint"].as_str().unwrap().contains("roles/storage.objectViewer"), "{denied:#}");
    assert_failed(&report, "no-such-bucket", "check", "not_found");
    let rotated = assert_failed(&report, "rotated-key", "token", "auth_rejected");
    assert!(rotated["error"]["message"].as_str().unwrap().contains("invalid_grant"), "{rotated:#}");
    let id_token = assert_failed(&report, "id-token-instead", "auth", "auth_rejected");
    assert!(id_token["error"]["message"].as_str().unwrap().contains("Invalid Credentials"), "{id_token:#}");
    assert_failed(&report, "anonymous-private-bucket", "check", "permission_denied");
    let hmac = assert_failed(&report, "hmac-wrong-secret", "auth", "auth_rejected");
    assert!(hmac["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{hmac:#}");

    let verbose = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "-vv"], &env).await;
    let markdown = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "markdown"], &env).await;
    let seen = [out.stdout, out.stderr, verbose.stdout, verbose.stderr, markdown.stdout, markdown.stderr].concat();
    assert!(seen.contains("objects seen: 1"), "-vv should say what was listed:\n{seen}");
    let key_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(harness_var(&env, "AP_GCP_KEY_FILE")).unwrap()).unwrap();
    let private_key = key_file["private_key"].as_str().unwrap();
    let mut secrets = vec![
        harness_var(&env, "AP_S3_SECRET_KEY"),
        "CANARY-gcs-hmac-4e0d".to_string(),
        "Signature=".to_string(),
        "Bearer ya29".to_string(),
    ];
    secrets.extend(private_key.lines().filter(|l| l.len() > 40).map(str::to_string));
    let issued = std::fs::read_to_string(harness_var(&env, "AP_CLOUD_ISSUED")).unwrap();
    secrets.extend(issued.lines().map(str::to_string).filter(|t| t.len() > 20));
    for secret in secrets {
        assert!(!seen.contains(&secret), "`{secret}` leaked:\n{seen}");
    }
}

/// A bearer token or a SAS is not sent to a plain http:// storage endpoint without the
/// probe's consent (the credential release rule); with it, the same probe passes.
#[tokio::test]
async fn storage_credentials_are_not_sent_over_plain_http_without_consent() {
    let env = harness_env();
    let ws = Workspace::new();
    let cfg = "[[probe]]\nname = \"gcs-plain\"\nkind = \"gcs\"\nbucket = \"${AP_GCS_BUCKET}\"\nendpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\"\nauth = { type = \"gcp_metadata\", endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\" }\n\n\
               [[probe]]\nname = \"azure-sas-plain\"\nkind = \"azure_blob\"\naccount = \"authprobedemo\"\ncontainer = \"demo\"\nendpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}/authprobedemo\"\nauth = { type = \"sas\", token = \"${AP_AZURE_SAS}\" }\n\n\
               [[probe]]\nname = \"gcs-consented\"\nkind = \"gcs\"\nbucket = \"${AP_GCS_BUCKET}\"\nendpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\"\nauth = { type = \"gcp_metadata\", endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\" }\nallow_unverified_password = true\n";
    let out = authprobe_harness(&["run", "-c", ws.config(cfg).to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    for (name, what) in [("gcs-plain", "the access token"), ("azure-sas-plain", "the SAS token")] {
        let p = assert_failed(&report, name, "auth", "tls_handshake");
        let message = p["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(what) && message.contains("did not send it"), "{p:#}");
        assert!(p["error"]["hint"].as_str().unwrap().contains("allow_unverified_password = true"), "{p:#}");
    }
    assert_passed(&report, "gcs-consented");
    assert!(!out.stdout.contains("sig="), "{}", out.stdout);
}
