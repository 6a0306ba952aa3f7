//! Every TLS failure class, produced by a real handshake against a server with the
//! offending certificate; the report shows the certificate even when verification fails.

use crate::util::servers::{self, ClientCerts};
use crate::util::{self, *};

#[tokio::test]
async fn a_trusted_certificate_passes_and_is_reported() {
    let pki = util::certs::pki();
    let server = servers::https(&pki.server, ClientCerts::None).await;
    let ws = Workspace::new();
    let cfg = http_probe("ok", &server.url("https", "/health"), &tls_ca(&pki));
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 0, "{report:#}");
    let p = assert_passed(&report, "ok");
    let tls = &p["tls"];
    assert_eq!(tls["sha256"], pki.server.sha256());
    assert_eq!(tls["sha1"].as_str().unwrap().len(), 59, "{tls:#}");
    assert_eq!(tls["verified"], true);
    assert_eq!(tls["pinned"], false);
    assert!(tls["issuer"].as_str().unwrap().contains("authprobe Test CA"), "{tls:#}");
    assert!(tls["days_left"].as_i64().unwrap() >= 363, "{tls:#}");
    assert!(matches!(tls["version"].as_str(), Some("TLSv1.3")), "{tls:#}");
}

#[tokio::test]
async fn an_untrusted_certificate_shows_its_fingerprint_and_the_pin_line_and_the_pin_works() {
    let pki = util::certs::pki();
    let server = servers::https(&pki.untrusted, ClientCerts::None).await;
    let ws = Workspace::new();
    let url = server.url("https", "/health");
    let fp = pki.untrusted.sha256();
    let mut cfg = http_probe("untrusted", &url, &tls_ca(&pki));
    cfg += &http_probe("pinned", &url, &format!("tls = {{ pin_sha256 = [\"{fp}\"] }}"));
    cfg += &http_probe("pin-mismatch", &url, &format!("tls = {{ pin_sha256 = [\"{}\"] }}", pki.server.sha256()));
    cfg += &http_probe("insecure", &url, "tls = { insecure = true }");
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 1);
    let p = assert_failed(&report, "untrusted", "tls", "tls_untrusted");
    assert!(p["error"]["message"].as_str().unwrap().contains(&fp), "{p:#}");
    assert!(p["error"]["hint"].as_str().unwrap().contains(&format!("pin_sha256 = [\"{fp}\"]")), "{p:#}");
    assert_eq!(p["tls"]["sha256"], fp, "certificate captured although verification failed");
    assert_eq!(p["tls"]["verified"], false);
    let pinned = assert_passed(&report, "pinned");
    assert_eq!(pinned["tls"]["pinned"], true);
    let mismatch = assert_failed(&report, "pin-mismatch", "tls", "tls_untrusted");
    assert!(mismatch["error"]["message"].as_str().unwrap().contains(&fp), "{mismatch:#}");
    let insecure = probe(&report, "insecure");
    assert_eq!(insecure["status"], "warn", "{insecure:#}");
    assert!(insecure["warnings"][0].as_str().unwrap().contains("verification is off"), "{insecure:#}");
}

#[tokio::test]
async fn expired_and_wrong_host_certificates_have_their_own_classes() {
    let pki = util::certs::pki();
    let expired = servers::https(&pki.expired, ClientCerts::None).await;
    let wrong = servers::https(&pki.wrong_host, ClientCerts::None).await;
    let ws = Workspace::new();
    let mut cfg = http_probe("expired", &expired.url("https", "/health"), &tls_ca(&pki));
    cfg += &http_probe("wrong-host", &wrong.url("https", "/health"), &tls_ca(&pki));
    cfg += &http_probe(
        "server-name-override",
        &wrong.url("https", "/health"),
        &format!("tls = {{ ca = \"{}\", server_name = \"wrong.example.com\" }}", pki.ca_path.display()),
    );
    let (_, report) = run_json(&ws.config(&cfg), &[]).await;
    let e = assert_failed(&report, "expired", "tls", "tls_expired");
    assert!(e["tls"]["days_left"].as_i64().unwrap() < 0, "{e:#}");
    let w = assert_failed(&report, "wrong-host", "tls", "tls_hostname");
    assert!(w["error"]["message"].as_str().unwrap().contains("wrong.example.com"), "{w:#}");
    assert_passed(&report, "server-name-override");
}

#[tokio::test]
async fn a_certificate_expiring_soon_warns_but_exits_zero() {
    let pki = util::certs::pki();
    let server = servers::https(&pki.expiring_soon, ClientCerts::None).await;
    let ws = Workspace::new();
    let cfg = http_probe("soon", &server.url("https", "/health"), &tls_ca(&pki));
    let (out, report) = run_json(&ws.config(&cfg), &[]).await;
    assert_eq!(out.code, 0, "{report:#}");
    let p = probe(&report, "soon");
    assert_eq!(p["status"], "warn");
    assert!(p["warnings"][0].as_str().unwrap().contains("expires in"), "{p:#}");
    assert_eq!(report["summary"]["warned"], 1);
}

#[tokio::test]
async fn client_certificates_missing_or_from_an_unknown_ca_are_tls_client_cert() {
    let pki = util::certs::pki();
    let server = servers::https(&pki.server, ClientCerts::Required(pki.ca_der.clone())).await;
    let ws = Workspace::new();
    let url = server.url("https", "/health");
    let with_cert = |leaf: &util::certs::Leaf| {
        format!(
            "tls = {{ ca = \"{}\", client_cert = \"{}\", client_key = \"{}\" }}",
            pki.ca_path.display(),
            leaf.cert_path.display(),
            leaf.key_path.display()
        )
    };
    let mut cfg = http_probe("no-client-cert", &url, &tls_ca(&pki));
    cfg += &http_probe("rogue-client-cert", &url, &with_cert(&pki.rogue_client));
    cfg += &http_probe("good-client-cert", &url, &with_cert(&pki.client));
    let (_, report) = run_json(&ws.config(&cfg), &[]).await;
    for name in ["no-client-cert", "rogue-client-cert"] {
        let p = probe(&report, name);
        assert_eq!(p["status"], "fail", "{p:#}");
        assert_eq!(p["error"]["class"], "tls_client_cert", "{p:#}");
    }
    assert!(probe(&report, "no-client-cert")["error"]["message"].as_str().unwrap().contains("none is configured"));
    assert_passed(&report, "good-client-cert");
    assert_eq!(server.requests(), 1, "only the probe with a good certificate reached the application");
}

/// The credential release rule is the same for every kind: `tls.insecure` turns
/// verification off, not the rule, so a bearer token goes to a server whose certificate
/// nothing vouched for only with `allow_unverified_password` (as for FTP and databases).
/// The refusal names the certificate and every way to verify it; nothing reaches the server.
#[tokio::test]
async fn an_unverified_certificate_gets_no_credential_without_consent() {
    let pki = util::certs::pki();
    let server = servers::https(&pki.untrusted, ClientCerts::None).await;
    let ws = Workspace::new();
    let url = server.url("https", "/health");
    let fp = pki.untrusted.sha256();
    let bearer = "auth = { type = \"bearer\", token = \"${TLS_CLASSES_TOKEN}\" }";
    let mut cfg = http_probe("refused", &url, &format!("tls = {{ insecure = true }}\n{bearer}"));
    let env = [("TLS_CLASSES_TOKEN", "tls-classes-token-3f9a1c")];
    let (out, report) = run_json(&ws.config(&cfg), &env).await;
    assert_eq!(out.code, 1, "{report:#}");
    let refused = assert_failed(&report, "refused", "auth", "tls_untrusted");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("the bearer token") && message.contains(&fp), "{refused:#}");
    assert!(message.contains("authprobe did not send it"), "{refused:#}");
    let hint = refused["error"]["hint"].as_str().unwrap();
    assert!(hint.contains(&format!("pin_sha256 = [\"{fp}\"]")) && hint.contains("allow_unverified_password"), "{hint}");
    assert_eq!(server.requests(), 0, "the request went out");
    assert!(!out.stdout.contains("tls-classes-token-3f9a1c") && !out.stderr.contains("tls-classes-token-3f9a1c"));

    cfg = http_probe(
        "consented",
        &url,
        &format!("tls = {{ insecure = true }}\n{bearer}\nallow_unverified_password = true"),
    );
    let (_, report) = run_json(&ws.config(&cfg), &env).await;
    let consented = probe(&report, "consented");
    assert_eq!(consented["status"], "warn", "{consented:#}");
    assert_eq!(server.requests(), 1);
}
