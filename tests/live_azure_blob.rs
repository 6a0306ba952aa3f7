//! The azure_blob probe against Azurite (npm), which checks Shared Key signatures, SAS
//! signatures, permissions and expiry, and Entra ID tokens' issuer, audience and lifetime;
//! the tokens come from the harness's IMDS and Entra ID (scripts/harness/cloud_tokens.py).

use crate::util::*;

/// The harness's account name, literally: a `${…}` reference would make it a secret, and
/// the report would hide it.
const ACCOUNT: &str = "authprobedemo";

fn blob_probe(name: &str, container: &str, auth: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"azure_blob\"\naccount = \"{ACCOUNT}\"\ncontainer = \"{container}\"\nendpoint = \"https://127.0.0.1:${{AP_AZURITE_PORT}}/{ACCOUNT}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\nauth = {auth}\n# The harness's token services speak plain HTTP.\nallow_unverified_password = true\n\n"
    )
}

#[tokio::test]
async fn azure_blob_passes_and_fails_with_azurites_own_error_codes() {
    let env = harness_env();
    assert_eq!(harness_var(&env, "AP_AZURE_STORAGE_ACCOUNT"), ACCOUNT);
    let ws = Workspace::new();
    let imds = "endpoint = \"http://127.0.0.1:${AP_CLOUD_PORT}\"";
    let entra = "tenant_id = \"${AP_AZURE_TENANT}\", client_id = \"${AP_AZURE_CLIENT_ID}\", authority = \"http://127.0.0.1:${AP_CLOUD_PORT}\"";
    // A well-formed key of the right length that is not the account's.
    let wrong_key = "Q0FOQVJZLWF6dXJlLXdyb25nLWtleS0wMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=";
    let mut cfg = String::new();
    cfg += &blob_probe(
        "shared-key",
        "${AP_AZURE_CONTAINER}",
        "{ type = \"shared_key\", key = \"${AP_AZURE_STORAGE_KEY}\" }",
    );
    cfg += &blob_probe(
        "shared-key-wrong",
        "${AP_AZURE_CONTAINER}",
        &format!("{{ type = \"shared_key\", key = \"{wrong_key}\" }}"),
    );
    cfg += &blob_probe("no-such-container", "nope", "{ type = \"shared_key\", key = \"${AP_AZURE_STORAGE_KEY}\" }");
    cfg += &blob_probe("sas", "${AP_AZURE_CONTAINER}", "{ type = \"sas\", token = \"${AP_AZURE_SAS}\" }");
    cfg += &blob_probe(
        "sas-without-list",
        "${AP_AZURE_CONTAINER}",
        "{ type = \"sas\", token = \"${AP_AZURE_SAS_NO_LIST}\" }",
    );
    cfg +=
        &blob_probe("sas-expired", "${AP_AZURE_CONTAINER}", "{ type = \"sas\", token = \"${AP_AZURE_SAS_EXPIRED}\" }");
    cfg += &blob_probe(
        "managed-identity",
        "${AP_AZURE_CONTAINER}",
        &format!("{{ type = \"azure_managed_identity\", {imds} }}"),
    );
    cfg += &blob_probe(
        "managed-identity-wrong-resource",
        "${AP_AZURE_CONTAINER}",
        &format!("{{ type = \"azure_managed_identity\", resource = \"https://management.azure.com/\", {imds} }}"),
    );
    cfg += &blob_probe(
        "client-secret",
        "${AP_AZURE_CONTAINER}",
        &format!("{{ type = \"azure_client_secret\", {entra}, client_secret = \"${{AP_AZURE_CLIENT_SECRET}}\" }}"),
    );
    cfg += &blob_probe(
        "client-secret-wrong",
        "${AP_AZURE_CONTAINER}",
        &format!("{{ type = \"azure_client_secret\", {entra}, client_secret = \"CANARY-azure-blob-secret-77e1\" }}"),
    );
    cfg += &blob_probe("anonymous-private-container", "${AP_AZURE_CONTAINER}", "{ type = \"anonymous\" }");
    let config = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    for (name, stages) in [
        ("shared-key", &["dns", "connect", "tls", "auth", "check"][..]),
        ("sas", &["dns", "connect", "tls", "auth", "check"][..]),
        ("managed-identity", &["dns", "connect", "tls", "token", "auth", "check"][..]),
        ("client-secret", &["dns", "connect", "tls", "token", "auth", "check"][..]),
    ] {
        let p = assert_passed(&report, name);
        let seen: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(seen, stages, "{name}");
        assert_eq!(p["tls"]["verified"], true, "{p:#}");
    }
    let wrong = assert_failed(&report, "shared-key-wrong", "auth", "auth_rejected");
    assert!(wrong["error"]["hint"].as_str().unwrap().contains("Shared Key signature"), "{wrong:#}");
    let missing = assert_failed(&report, "no-such-container", "check", "not_found");
    assert!(missing["error"]["message"].as_str().unwrap().contains("ContainerNotFound"), "{missing:#}");
    let no_list = assert_failed(&report, "sas-without-list", "check", "permission_denied");
    assert!(no_list["error"]["message"].as_str().unwrap().contains("AuthorizationPermissionMismatch"), "{no_list:#}");
    let expired = assert_failed(&report, "sas-expired", "auth", "auth_rejected");
    assert!(expired["error"]["hint"].as_str().unwrap().contains("SAS token expired at"), "{expired:#}");
    let audience = assert_failed(&report, "managed-identity-wrong-resource", "auth", "auth_rejected");
    assert!(audience["error"]["message"].as_str().unwrap().contains("AuthenticationFailed"), "{audience:#}");
    let secret = assert_failed(&report, "client-secret-wrong", "token", "auth_rejected");
    assert!(secret["error"]["message"].as_str().unwrap().contains("AADSTS7000215"), "{secret:#}");
    let anonymous = assert_failed(&report, "anonymous-private-container", "check", "permission_denied");
    assert!(anonymous["error"]["hint"].as_str().unwrap().contains("anonymous"), "{anonymous:#}");

    let verbose = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "-vv"], &env).await;
    let markdown = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", "markdown"], &env).await;
    let seen = [out.stdout, out.stderr, verbose.stdout, verbose.stderr, markdown.stdout, markdown.stderr].concat();
    assert!(seen.contains("blobs seen: 1"), "-vv should say what was listed:\n{seen}");
    let mut secrets = vec![
        harness_var(&env, "AP_AZURE_STORAGE_KEY"),
        harness_var(&env, "AP_AZURE_CLIENT_SECRET"),
        "CANARY-azure-blob-secret-77e1".to_string(),
        wrong_key.to_string(),
        "SharedKey ".to_string(),
        "sig=".to_string(),
    ];
    for sas in ["AP_AZURE_SAS", "AP_AZURE_SAS_NO_LIST", "AP_AZURE_SAS_EXPIRED"] {
        let value = harness_var(&env, sas);
        let sig = value.split('&').find_map(|p| p.strip_prefix("sig=")).unwrap().to_string();
        secrets.push(url_decode(&sig));
        secrets.push(sig);
    }
    let issued = std::fs::read_to_string(harness_var(&env, "AP_CLOUD_ISSUED")).unwrap();
    secrets.extend(issued.lines().map(str::to_string).filter(|t| t.len() > 20));
    for secret in secrets {
        assert!(!seen.contains(&secret), "`{secret}` leaked:\n{seen}");
    }
}

fn url_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes()).next().unwrap().1.into_owned()
}

#[tokio::test]
async fn azure_blob_misconfigurations_are_named_before_any_traffic() {
    let ws = Workspace::new();
    let probe = |auth: &str| {
        format!(
            "[[probe]]\nname = \"blob\"\nkind = \"azure_blob\"\naccount = \"{ACCOUNT}\"\ncontainer = \"c\"\nauth = {auth}\n"
        )
    };
    let cases = [
        ("{ type = \"shared_key\", key = \"not base64!\" }", "base64"),
        ("{ type = \"sas\", token = \"sv=2019-12-12&sp=rl\" }", "`sig=`"),
        ("{ type = \"sharedkey\", key = \"abcd\" }", "did you mean `shared_key`"),
        ("{ type = \"azure_client_secret\", client_id = \"x\" }", "tenant_id"),
    ];
    for (auth, expected) in cases {
        let config = ws.config(&probe(auth));
        let out = authprobe(&["validate", "-c", config.to_str().unwrap()], &[]).await;
        assert_eq!(out.code, 2, "{auth}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{auth}: expected `{expected}` in:\n{}", out.stderr);
        assert!(out.stderr.contains(":6:"), "{auth}: no line number in:\n{}", out.stderr);
    }
    let bad_account = "[[probe]]\nname = \"blob\"\nkind = \"azure_blob\"\naccount = \"My_Account\"\ncontainer = \"c\"\nauth = { type = \"anonymous\" }\n";
    let config = ws.config(bad_account);
    let out = authprobe(&["validate", "-c", config.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("lowercase letters and digits"), "{}", out.stderr);
}
