//! HTTP probes against the harness's real servers: nginx checking bearer tokens, basic
//! auth, API keys and client certificates, and oidc-provider issuing and checking OAuth2
//! tokens. Runs the shipped example config, so the README's demo is tested too.

use crate::util::*;

#[tokio::test]
async fn the_example_config_passes_and_fails_exactly_as_documented() {
    let env = harness_env();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/probes.toml.example");
    let out = authprobe_harness(&["run", "-c", example, "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    let broken = [
        ("broken-wrong-token", "auth", "auth_rejected"),
        ("broken-untrusted-cert", "tls", "tls_untrusted"),
        ("broken-expired-cert", "tls", "tls_expired"),
        ("broken-missing-client-cert", "check", "tls_client_cert"),
        ("broken-oauth2-secret", "token", "auth_rejected"),
        ("broken-db-permission", "check", "permission_denied"),
        ("broken-bucket-policy", "check", "permission_denied"),
    ];
    for (name, stage, class) in broken {
        assert_failed(&report, name, stage, class);
    }
    for p in report["probes"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if !name.starts_with("broken-") {
            assert_passed(&report, name);
        }
    }
    // oidc-provider issues client-credentials tokens for 600 s: their end is listed (from
    // expires_in, or the token's own exp), and a fresh token does not warn.
    let oauth2 = probe(&report, "oauth2-client-credentials");
    let token = oauth2["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["what"].as_str().is_some_and(|w| w.starts_with("the OAuth2 access token")));
    let left = token.and_then(|t| t["seconds_left"].as_i64()).unwrap_or_else(|| panic!("{oauth2:#}"));
    assert!((590..=600).contains(&left), "{oauth2:#}");
    let pinned = probe(&report, "api-pinned");
    assert_eq!(pinned["tls"]["pinned"], true);
    assert_eq!(pinned["tls"]["sha256"], harness_var(&env, "AP_UNTRUSTED_SHA256"));
}

#[tokio::test]
async fn nginx_refuses_wrong_credentials_of_every_kind() {
    let env = harness_env();
    let ws = Workspace::new();
    let https = format!("https://localhost:{}", harness_var(&env, "AP_HTTPS_PORT"));
    let tls = format!("tls = {{ ca = \"{}\" }}", harness_var(&env, "AP_CA"));
    let mut cfg = String::new();
    cfg += &http_probe(
        "bearer",
        &format!("{https}/bearer"),
        &format!("{tls}\nauth = {{ type = \"bearer\", token = \"nope-nope\" }}"),
    );
    cfg += &http_probe(
        "basic",
        &format!("{https}/basic"),
        &format!("{tls}\nauth = {{ type = \"basic\", username = \"demo\", password = \"nope-nope\" }}"),
    );
    cfg += &http_probe(
        "key",
        &format!("{https}/apikey"),
        &format!("{tls}\nauth = {{ type = \"api_key\", key = \"nope-nope\", header = \"X-API-Key\" }}"),
    );
    cfg += &http_probe(
        "forbidden",
        &format!("{https}/forbidden"),
        &format!("{tls}\nauth = {{ type = \"bearer\", token = \"${{AP_BEARER_TOKEN}}\" }}"),
    );
    cfg += &http_probe("missing", &format!("{https}/nothing-here"), &tls);
    cfg += &http_probe(
        "wrong-host",
        &format!("https://localhost:{}/health", harness_var(&env, "AP_WRONG_HOST_PORT")),
        &tls,
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    let report = out.json();
    for name in ["bearer", "basic", "key"] {
        assert_failed(&report, name, "auth", "auth_rejected");
    }
    assert_failed(&report, "forbidden", "check", "permission_denied");
    assert_failed(&report, "missing", "check", "not_found");
    assert_failed(&report, "wrong-host", "tls", "tls_hostname");
}
