//! Each HTTP auth method against a server that checks it: right credentials pass, wrong
//! ones are refused by the server and classified.

use crate::util::servers::{self, *};
use crate::util::{self, *};

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GOOD_TOKEN", GOOD_TOKEN),
        ("BAD_TOKEN", BAD_TOKEN),
        ("BASIC_PW", BASIC_PASSWORD),
        ("BAD_PW", BAD_PASSWORD),
        ("API_KEY", API_KEY),
        ("BAD_API_KEY", BAD_API_KEY),
        ("CLIENT_SECRET", CLIENT_SECRET),
        ("BAD_CLIENT_SECRET", BAD_CLIENT_SECRET),
        ("REFRESH", REFRESH_TOKEN),
        ("BAD_REFRESH", BAD_REFRESH_TOKEN),
    ]
}

#[tokio::test]
async fn bearer_basic_and_api_keys_pass_with_the_right_secret_and_fail_with_the_wrong_one() {
    let server = servers::http().await;
    let u = |p: &str| server.url("http", p);
    let ws = Workspace::new();
    let mut cfg = String::new();
    cfg += &http_probe("bearer-ok", &u("/bearer"), "auth = { type = \"bearer\", token = \"${GOOD_TOKEN}\" }");
    cfg += &http_probe("bearer-bad", &u("/bearer"), "auth = { type = \"bearer\", token = \"${BAD_TOKEN}\" }");
    cfg += &http_probe(
        "basic-ok",
        &u("/basic"),
        "auth = { type = \"basic\", username = \"alice\", password = \"${BASIC_PW}\" }",
    );
    cfg += &http_probe(
        "basic-bad",
        &u("/basic"),
        "auth = { type = \"basic\", username = \"alice\", password = \"${BAD_PW}\" }",
    );
    cfg += &http_probe(
        "key-header-ok",
        &u("/apikey"),
        "auth = { type = \"api_key\", key = \"${API_KEY}\", header = \"X-API-Key\" }",
    );
    cfg += &http_probe(
        "key-header-bad",
        &u("/apikey"),
        "auth = { type = \"api_key\", key = \"${BAD_API_KEY}\", header = \"X-API-Key\" }",
    );
    cfg += &http_probe(
        "key-query-ok",
        &u("/apikey-query"),
        "auth = { type = \"api_key\", key = \"${API_KEY}\", query = \"api_key\" }",
    );
    cfg += &http_probe(
        "key-query-bad",
        &u("/apikey-query"),
        "auth = { type = \"api_key\", key = \"${BAD_API_KEY}\", query = \"api_key\" }",
    );
    cfg += &http_probe("no-auth-needed", &u("/health"), "expect = { body_contains = \"healthy\" }");
    cfg += &http_probe("auth-missing", &u("/bearer"), "");
    let (out, report) = run_json(&ws.config(&cfg), &env()).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for ok in ["bearer-ok", "basic-ok", "key-header-ok", "key-query-ok", "no-auth-needed"] {
        assert_passed(&report, ok);
    }
    for bad in ["bearer-bad", "basic-bad", "key-header-bad", "key-query-bad"] {
        assert_failed(&report, bad, "auth", "auth_rejected");
    }
    let bearer = assert_failed(&report, "bearer-bad", "auth", "auth_rejected");
    assert!(bearer["error"]["message"].as_str().unwrap().contains("invalid_token"), "{bearer:#}");
    let missing = assert_failed(&report, "auth-missing", "check", "auth_rejected");
    assert!(missing["error"]["hint"].as_str().unwrap().contains("add an `auth` table"), "{missing:#}");
    // The stages of an authenticated request, in order.
    let stages: Vec<&str> =
        probe(&report, "bearer-ok")["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dns", "connect", "auth", "check"]);
}

#[tokio::test]
async fn status_classes_come_from_the_http_status() {
    let server = servers::http().await;
    let u = |p: &str| server.url("http", p);
    let ws = Workspace::new();
    let bearer = "auth = { type = \"bearer\", token = \"${GOOD_TOKEN}\" }";
    let mut cfg = String::new();
    cfg += &http_probe("forbidden", &u("/forbidden"), bearer);
    cfg += &http_probe("missing", &u("/nope"), bearer);
    cfg += &http_probe("server-error", &u("/error"), "");
    cfg += &http_probe("redirect", &u("/redirect"), "");
    cfg += &http_probe("redirect-expected", &u("/redirect"), "expect = { status = [302] }");
    cfg += &http_probe("wrong-body", &u("/health"), "expect = { body_contains = \"degraded\" }");
    cfg += &http_probe("expect-401", &u("/bearer"), "expect = { status = [401] }");
    let (_, report) = run_json(&ws.config(&cfg), &env()).await;
    assert_failed(&report, "forbidden", "check", "permission_denied");
    assert_failed(&report, "missing", "check", "not_found");
    let err = assert_failed(&report, "server-error", "check", "unexpected_response");
    assert!(err["error"]["message"].as_str().unwrap().contains("500"), "{err:#}");
    let redirect = assert_failed(&report, "redirect", "check", "unexpected_response");
    assert!(redirect["error"]["message"].as_str().unwrap().contains("/health"), "{redirect:#}");
    assert_passed(&report, "redirect-expected");
    assert_failed(&report, "wrong-body", "check", "unexpected_response");
    assert_passed(&report, "expect-401");
}

#[tokio::test]
async fn oauth2_client_credentials_and_refresh_tokens_are_checked_by_the_token_endpoint() {
    let server = servers::http().await;
    let token_url = server.url("http", "/oauth/token");
    let api = server.url("http", "/oauth/api");
    let ws = Workspace::new();
    let cc = |secret: &str, extra: &str| {
        format!(
            "auth = {{ type = \"oauth2_client_credentials\", token_url = \"{token_url}\", client_id = \"{CLIENT_ID}\", client_secret = \"${{{secret}}}\"{extra} }}"
        )
    };
    let rt = |refresh: &str, secret: &str| {
        format!(
            "auth = {{ type = \"oauth2_refresh_token\", token_url = \"{token_url}\", client_id = \"{CLIENT_ID}\", refresh_token = \"${{{refresh}}}\"{secret} }}"
        )
    };
    let mut cfg = String::new();
    cfg += &http_probe("cc-basic", &api, &cc("CLIENT_SECRET", ""));
    cfg += &http_probe("cc-post", &api, &cc("CLIENT_SECRET", ", client_auth = \"post\", scope = \"read\""));
    cfg += &http_probe("cc-bad-secret", &api, &cc("BAD_CLIENT_SECRET", ""));
    cfg += &http_probe("cc-bad-scope", &api, &cc("CLIENT_SECRET", ", scope = \"admin\""));
    cfg += &http_probe("refresh-ok", &api, &rt("REFRESH", ""));
    cfg += &http_probe("refresh-with-secret", &api, &rt("REFRESH", ", client_secret = \"${CLIENT_SECRET}\""));
    cfg += &http_probe("refresh-bad", &api, &rt("BAD_REFRESH", ""));
    cfg += &http_probe(
        "token-url-404",
        &api,
        &format!(
            "auth = {{ type = \"oauth2_client_credentials\", token_url = \"{}\", client_id = \"x\", client_secret = \"${{CLIENT_SECRET}}\" }}",
            server.url("http", "/nowhere")
        ),
    );
    let (_, report) = run_json(&ws.config(&cfg), &env()).await;
    for ok in ["cc-basic", "cc-post", "refresh-ok", "refresh-with-secret"] {
        let p = assert_passed(&report, ok);
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "token", "auth", "check"], "{p:#}");
    }
    let bad = assert_failed(&report, "cc-bad-secret", "token", "auth_rejected");
    assert!(bad["error"]["message"].as_str().unwrap().contains("invalid_client"), "{bad:#}");
    assert_failed(&report, "cc-bad-scope", "token", "permission_denied");
    let grant = assert_failed(&report, "refresh-bad", "token", "auth_rejected");
    assert!(grant["error"]["message"].as_str().unwrap().contains("invalid_grant"), "{grant:#}");
    assert_failed(&report, "token-url-404", "token", "not_found");
    // The stage after a failed token stage is skipped, not invented.
    let skipped = &probe(&report, "cc-bad-secret")["stages"];
    assert!(skipped.as_array().unwrap().iter().any(|s| s["name"] == "auth" && s["status"] == "skipped"), "{skipped:#}");
}

#[tokio::test]
async fn mtls_combines_with_bearer_over_https_and_http2() {
    let pki = util::certs::pki();
    let server = servers::https(&pki.server, ClientCerts::Required(pki.ca_der.clone())).await;
    let ws = Workspace::new();
    let tls = format!(
        "tls = {{ ca = \"{}\", client_cert = \"{}\", client_key = \"{}\" }}",
        pki.ca_path.display(),
        pki.client.cert_path.display(),
        pki.client.key_path.display()
    );
    let cfg = http_probe(
        "mtls-bearer",
        &server.url("https", "/bearer"),
        &format!("{tls}\nauth = {{ type = \"bearer\", token = \"${{GOOD_TOKEN}}\" }}"),
    );
    let (out, report) = run_json(&ws.config(&cfg), &env()).await;
    assert_eq!(out.code, 0, "{report:#}");
    let p = assert_passed(&report, "mtls-bearer");
    assert_eq!(p["tls"]["verified"], true);
    assert_eq!(p["tls"]["sha256"], pki.server.sha256());
    assert!(p["tls"]["subject"].as_str().unwrap().contains("localhost"), "{p:#}");
}

/// The credential release rule over plain HTTP: a bearer token, a basic-auth password, an
/// API key or a client secret is not sent to an http:// server unless the probe allows it,
/// and the refusal says how to verify or allow. SigV4 (a signature) is not held back.
#[tokio::test]
async fn secrets_are_not_sent_over_plain_http_without_consent() {
    let server = servers::http().await;
    let u = |p: &str| server.url("http", p);
    let ws = Workspace::new();
    let plain = |name: &str, path: &str, auth: &str| {
        format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{}\"\n{auth}\n\n", u(path))
    };
    let mut cfg = String::new();
    cfg += &plain("bearer", "/bearer", "auth = { type = \"bearer\", token = \"${GOOD_TOKEN}\" }");
    cfg += &plain("basic", "/basic", "auth = { type = \"basic\", username = \"alice\", password = \"${BASIC_PW}\" }");
    cfg += &plain("api-key", "/apikey", "auth = { type = \"api_key\", key = \"${API_KEY}\", header = \"X-API-Key\" }");
    cfg += &plain("credential-header", "/bearer", "headers = { Authorization = \"Bearer ${GOOD_TOKEN}\" }");
    cfg += &plain(
        "client-secret",
        "/api",
        &format!(
            "auth = {{ type = \"oauth2_client_credentials\", token_url = \"{}\", client_id = \"authprobe\", client_secret = \"${{CLIENT_SECRET}}\" }}",
            u("/token")
        ),
    );
    // A body that holds a reference may carry a credential; one of config text only does not.
    cfg += &plain("body-reference", "/api", "method = \"POST\"\nbody = \"{\\\"token\\\": \\\"${GOOD_TOKEN}\\\"}\"");
    cfg += &plain("body-text", "/health", "method = \"POST\"\nbody = \"{\\\"ping\\\": true}\"");
    cfg += &plain(
        "bearer-allowed",
        "/bearer",
        "auth = { type = \"bearer\", token = \"${GOOD_TOKEN}\" }\nallow_unverified_password = true",
    );
    let (out, report) = run_json(&ws.config(&cfg), &env()).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let body = assert_failed(&report, "body-reference", "auth", "tls_handshake");
    assert!(body["error"]["message"].as_str().unwrap().contains("the request body"), "{body:#}");
    assert_ne!(probe(&report, "body-text")["error"]["class"], "tls_handshake", "{report:#}");
    for name in ["bearer", "basic", "api-key", "credential-header", "client-secret", "body-reference"] {
        let p = assert_failed(&report, name, "auth", "tls_handshake");
        let hint = p["error"]["hint"].as_str().unwrap();
        assert!(hint.contains("https://") && hint.contains("allow_unverified_password = true"), "{p:#}");
        assert!(p["error"]["message"].as_str().unwrap().contains("did not send it"), "{p:#}");
    }
    assert_eq!(server.requests(), 2, "only the allowed probe and the body of text reached the server");
    let allowed = assert_passed(&report, "bearer-allowed");
    assert_eq!(allowed["status"], "pass");
}
