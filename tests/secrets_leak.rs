//! Canary secrets in every credential field, driven through every failure mode the HTTP
//! probe implements, every format and verbosity: none may appear in stdout, stderr or the
//! report file, neither plain nor percent-encoded nor base64.

use base64::Engine;

use crate::util::servers::{self, *};
use crate::util::{self, *};

fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        secret.to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        b64.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        b64.encode(format!("{BASIC_USER}:{secret}")),
    ]
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    let mut canaries = servers::all_canaries();
    canaries.extend(
        [
            "CANARY-url-password-5d2c",
            "CANARY-url-query-8e4b",
            "CANARY-header-9f3a",
            "CANARY-body-1b7d",
            "CANARY-file-3c9e",
        ]
        .map(String::from),
    );
    for canary in canaries {
        for form in forms(&canary) {
            assert!(!text.contains(&form), "{what} leaks a secret ({form}):\n{text}");
        }
    }
    // Whatever the names, no CANARY substring at all may survive.
    assert!(!text.contains("CANARY"), "{what} leaks a secret:\n{text}");
}

#[tokio::test]
async fn no_secret_appears_in_any_format_or_verbosity() {
    let pki = util::certs::pki();
    let plain = servers::http().await;
    let untrusted = servers::https(&pki.untrusted, ClientCerts::None).await;
    let mtls = servers::https(&pki.server, ClientCerts::Required(pki.ca_der.clone())).await;
    let silent = servers::silent().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ws = Workspace::new();
    ws.write("token-file", "CANARY-file-3c9e\n");
    let token_url = plain.url("http", "/oauth/token");
    let bearer = |var: &str| format!("auth = {{ type = \"bearer\", token = \"${{{var}}}\" }}");
    let mut cfg = String::from("[defaults]\ntimeout = \"1s\"\n\n");
    // Passing probes: the secrets are sent and accepted.
    cfg += &http_probe("bearer-ok", &plain.url("http", "/bearer"), &bearer("GOOD"));
    cfg += &http_probe(
        "basic-ok",
        &plain.url("http", "/basic"),
        "auth = { type = \"basic\", username = \"alice\", password = \"${BASIC}\" }",
    );
    cfg += &http_probe(
        "cc-ok",
        &plain.url("http", "/oauth/api"),
        &format!(
            "auth = {{ type = \"oauth2_client_credentials\", token_url = \"{token_url}\", client_id = \"{CLIENT_ID}\", client_secret = \"${{SECRET}}\" }}"
        ),
    );
    cfg += &http_probe(
        "refresh-ok",
        &plain.url("http", "/oauth/api"),
        &format!(
            "auth = {{ type = \"oauth2_refresh_token\", token_url = \"{token_url}\", client_id = \"{CLIENT_ID}\", refresh_token = \"${{REFRESH}}\" }}"
        ),
    );
    // Refused credentials.
    cfg += &http_probe("bearer-bad", &plain.url("http", "/bearer"), &bearer("BAD"));
    cfg += &http_probe(
        "file-token-bad",
        &plain.url("http", "/bearer"),
        "auth = { type = \"bearer\", token = \"${file:token-file}\" }",
    );
    cfg += &http_probe(
        "basic-bad",
        &plain.url("http", "/basic"),
        "auth = { type = \"basic\", username = \"alice\", password = \"${BAD_BASIC}\" }",
    );
    cfg += &http_probe(
        "key-query-bad",
        &plain.url("http", "/apikey-query"),
        "auth = { type = \"api_key\", key = \"${BAD_KEY}\", query = \"api_key\" }",
    );
    cfg += &http_probe(
        "key-header-bad",
        &plain.url("http", "/apikey"),
        "auth = { type = \"api_key\", key = \"${BAD_KEY}\", header = \"X-API-Key\" }",
    );
    cfg += &http_probe(
        "cc-bad",
        &plain.url("http", "/oauth/api"),
        &format!(
            "auth = {{ type = \"oauth2_client_credentials\", token_url = \"{token_url}\", client_id = \"{CLIENT_ID}\", client_secret = \"${{BAD_SECRET}}\", client_auth = \"post\" }}"
        ),
    );
    cfg += &http_probe(
        "refresh-bad",
        &plain.url("http", "/oauth/api"),
        &format!(
            "auth = {{ type = \"oauth2_refresh_token\", token_url = \"{token_url}\", client_id = \"{CLIENT_ID}\", client_secret = \"${{SECRET}}\", refresh_token = \"${{BAD_REFRESH}}\" }}"
        ),
    );
    // Secrets in the URL, headers and body, sent to a server that refuses or errors.
    cfg += &http_probe(
        "url-userinfo",
        &format!("http://alice:${{URL_PW}}@127.0.0.1:{}/missing?token=${{URL_Q}}", plain.port()),
        "headers = { \"X-Token\" = \"${HDR}\" }\nbody = \"${BODY}\"\nmethod = \"POST\"",
    );
    // Failures before the credentials are ever sent.
    cfg += &http_probe(
        "tls-untrusted",
        &untrusted.url("https", "/bearer"),
        &format!("{}\n{}", tls_ca(&pki), bearer("GOOD")),
    );
    cfg += &http_probe("mtls-missing", &mtls.url("https", "/bearer"), &format!("{}\n{}", tls_ca(&pki), bearer("GOOD")));
    cfg += &http_probe("refused", &format!("http://127.0.0.1:{closed}/x?k=${{URL_Q}}"), &bearer("GOOD"));
    cfg += &http_probe("timeout", &silent.url("http", "/bearer"), &bearer("GOOD"));
    cfg += &http_probe(
        "token-refused",
        &plain.url("http", "/oauth/api"),
        &format!(
            "auth = {{ type = \"oauth2_client_credentials\", token_url = \"http://127.0.0.1:{closed}/token\", client_id = \"{CLIENT_ID}\", client_secret = \"${{SECRET}}\" }}"
        ),
    );
    let path = ws.config(&cfg);
    let env = [
        ("GOOD", GOOD_TOKEN),
        ("BAD", BAD_TOKEN),
        ("BASIC", BASIC_PASSWORD),
        ("BAD_BASIC", BAD_PASSWORD),
        ("BAD_KEY", BAD_API_KEY),
        ("SECRET", CLIENT_SECRET),
        ("BAD_SECRET", BAD_CLIENT_SECRET),
        ("REFRESH", REFRESH_TOKEN),
        ("BAD_REFRESH", BAD_REFRESH_TOKEN),
        ("URL_PW", "CANARY-url-password-5d2c"),
        ("URL_Q", "CANARY-url-query-8e4b"),
        ("HDR", "CANARY-header-9f3a"),
        ("BODY", "CANARY-body-1b7d"),
    ];
    let p = path.to_str().unwrap();
    let mut checked_failures = 0;
    for format in ["table", "json", "junit", "prometheus", "markdown"] {
        for verbosity in [None, Some("-v"), Some("-vv")] {
            let mut args = vec!["run", "-c", p, "--format", format];
            args.extend(verbosity);
            let out = authprobe(&args, &env).await;
            assert_eq!(out.code, 1, "{out:?}");
            assert_clean(&format!("{format} {verbosity:?} stdout"), &out.stdout);
            assert_clean(&format!("{format} {verbosity:?} stderr"), &out.stderr);
            if format == "json" && verbosity.is_none() {
                let report = out.json();
                for name in ["bearer-ok", "basic-ok", "cc-ok", "refresh-ok"] {
                    assert_passed(&report, name);
                }
                for p in report["probes"].as_array().unwrap().iter().filter(|p| p["status"] == "fail") {
                    assert!(!p["error"]["message"].as_str().unwrap().is_empty());
                    checked_failures += 1;
                }
                assert!(!probe(&report, "url-userinfo")["target"].as_str().unwrap().contains("alice"));
            }
        }
        let file = ws.path(&format!("report.{format}"));
        let out =
            authprobe(&["run", "-c", p, "--format", format, "--output", file.to_str().unwrap(), "-vv"], &env).await;
        assert_clean("summary on stderr", &out.stderr);
        assert_clean(&format!("{format} report file"), &std::fs::read_to_string(&file).unwrap());
    }
    assert_eq!(checked_failures, 13, "every failure mode above must actually fail");
}

#[tokio::test]
async fn config_errors_never_show_secret_values() {
    let ws = Workspace::new();
    ws.write("token-file", "CANARY-file-3c9e\n");
    let cfg = ws.config(&http_probe(
        "a",
        "http://127.0.0.1:9/",
        "auth = { type = \"bearer\", token = \"${file:token-file}\", tokne = \"${GOOD}\" }\nheaders = { \"X-A\" = \"${GOOD}\" }\ntimeout = \"${GOOD}\"",
    ));
    let out = authprobe(&["run", "-c", cfg.to_str().unwrap()], &[("GOOD", GOOD_TOKEN)]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unknown key `tokne`"), "{}", out.stderr);
    assert_clean("config error output", &format!("{}{}", out.stdout, out.stderr));
}

/// A presigned or signed URL is a bearer credential: its signature and credential
/// parameters never appear, in the target column or anywhere else, in any format.
#[tokio::test]
async fn signed_url_parameters_are_masked_everywhere() {
    let server = servers::http().await;
    let signature = "9f2c4e1d7a0b3c5e6f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e";
    let credential = "AKIAEXAMPLESIGNEDURL7/20261124/us-east-1/s3/aws4_request";
    let token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN1234";
    let sas = "sv%3D2022-sig-Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA";
    // Signed now, so that it has not expired; the server is plain HTTP, allowed explicitly.
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let date: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let url = format!(
        "{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={date}&X-Amz-Expires=3600&X-Amz-Security-Token={token}&X-Amz-Signature={signature}&sig={sas}",
        server.url("http", "/health"),
        credential.replace('/', "%2F"),
    );
    for format in ["table", "json", "markdown", "junit", "prometheus"] {
        let out = authprobe(&["check", &url, "--format", format, "-vv", "--allow-unverified-password"], &[]).await;
        assert_eq!(out.code, 0, "{format}: {}{}", out.stdout, out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        for secret in
            [signature, credential, &credential.replace('/', "%2F"), token, sas, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA"]
        {
            assert!(!all.contains(secret), "{format}: `{secret}` shows in:\n{all}");
        }
        if format == "table" {
            assert!(all.contains("X-Amz-Signature="), "the parameter names stay: {all}");
        }
    }
}
