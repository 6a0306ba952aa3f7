//! Signed links (issue 20): S3 presigned URLs (SigV4 and SigV2) against s3s-fs, which checks
//! query signatures and their expiry; Azure SAS against Azurite; Cloud Storage V4 and V2
//! signed URLs against the harness's XML API front (scripts/harness/gcs_signed.py), which
//! checks them with the service account's registered key. The links are made by boto3,
//! azure-storage-blob and google-cloud-storage (scripts/harness/signed_links.py), never by
//! authprobe.

use crate::util::*;

const LINKS: &[(&str, &str)] = &[
    ("s3-v4", "AP_LINK_S3_V4"),
    ("s3-v4-closing", "AP_LINK_S3_V4_SHORT"),
    ("s3-v4-expired", "AP_LINK_S3_V4_EXPIRED"),
    ("s3-v4-missing", "AP_LINK_S3_V4_MISSING"),
    ("s3-v4-empty", "AP_LINK_S3_V4_EMPTY"),
    ("s3-v4-tampered", "AP_LINK_S3_V4_TAMPERED"),
    ("s3-v2", "AP_LINK_S3_V2"),
    ("sas", "AP_LINK_AZURE_SAS"),
    ("sas-write-only", "AP_LINK_AZURE_SAS_WRITE_ONLY"),
    ("sas-missing", "AP_LINK_AZURE_SAS_MISSING"),
    ("sas-expired", "AP_LINK_AZURE_SAS_EXPIRED"),
    ("sas-not-yet", "AP_LINK_AZURE_SAS_NOT_YET"),
    ("sas-tampered", "AP_LINK_AZURE_SAS_TAMPERED"),
    ("gcs-v4", "AP_LINK_GCS_V4"),
    ("gcs-v4-expired", "AP_LINK_GCS_V4_EXPIRED"),
    ("gcs-v4-locked-bucket", "AP_LINK_GCS_V4_LOCKED"),
    ("gcs-v4-missing", "AP_LINK_GCS_V4_MISSING"),
    ("gcs-v4-unregistered-key", "AP_LINK_GCS_V4_ROTATED_KEY"),
    ("gcs-v2", "AP_LINK_GCS_V2"),
];

/// The values that must never show: every signature and credential parameter of every link.
fn link_secrets(env: &[(String, String)]) -> Vec<String> {
    let mut secrets = Vec::new();
    for (_, var) in LINKS {
        let link = url::Url::parse(&harness_var(env, var)).expect("a URL");
        for (name, value) in link.query_pairs() {
            if ["x-amz-signature", "x-amz-credential", "x-goog-signature", "x-goog-credential", "signature", "sig"]
                .contains(&name.to_ascii_lowercase().as_str())
            {
                secrets.push(value.into_owned());
                let raw = link.query().unwrap_or_default();
                let encoded = raw.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap_or_default();
                secrets.push(encoded.to_string());
            }
        }
    }
    secrets.retain(|s| s.len() >= 8);
    secrets
}

#[tokio::test]
async fn signed_links_are_judged_by_their_own_times_and_the_services_answers() {
    let env = harness_env();
    let ws = Workspace::new();
    let mut cfg = String::from("[defaults]\nwarn_expiry_days = 14\n\n");
    for (name, var) in LINKS {
        // Kept whole in a variable, as a user would keep a link they were sent.
        cfg += &format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"${{{var}}}\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n\n"
        );
    }
    let config = ws.config(&cfg);
    let secrets = link_secrets(&env);
    let mut json = None;
    for format in ["json", "table", "markdown", "junit", "prometheus"] {
        let out = authprobe_harness(&["run", "-c", config.to_str().unwrap(), "--format", format, "-vv"], &env).await;
        assert_eq!(out.code, 1, "{format}: {}", out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        for secret in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{format}: a link's signature or credential `{secret}` shows:\n{all}"
            );
        }
        if format == "json" {
            crate::formats::assert_matches_schema(&ws, &out.stdout);
            json = Some(out.json());
        }
        if format == "table" {
            // A byte was fetched, not the object; an empty object has no first byte.
            assert!(all.contains("object: 14 bytes; one was fetched") && all.contains("object: empty"), "{all}");
        }
        if format == "markdown" {
            assert!(
                all.contains("### Credentials that expire") && all.contains("a Cloud Storage signed URL (V4)"),
                "{all}"
            );
        }
        if format == "prometheus" {
            assert!(
                all.contains(
                    "authprobe_credential_not_after_timestamp_seconds{probe=\"sas\",kind=\"http\",credential=\""
                ),
                "{all}"
            );
        }
    }
    let report = json.expect("the json report");
    for name in ["s3-v4", "s3-v4-empty", "s3-v2", "sas", "gcs-v4", "gcs-v2"] {
        let p = assert_passed(&report, name);
        let stages: Vec<_> = p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(stages, ["dns", "connect", "tls", "auth", "check"], "{name}: {p:#}");
        let shown = p["target"].as_str().unwrap();
        assert!(shown.contains("=********"), "{name}: the target shows the link with its signature masked: {shown}");
        // The report says when the link expires (all of these were made for 7 days).
        let left = p["credential"]["seconds_left"].as_i64().unwrap_or_default();
        assert!((6 * 86400..=7 * 86400).contains(&left), "{name}: {p:#}");
        assert!(p["credential"]["not_after"].as_str().unwrap().starts_with("20"), "{name}: {p:#}");
    }
    // Signed 3 hours before the harness started, for 4 hours: in its last quarter.
    assert_warned(&report, "s3-v4-closing", "the link expires in");
    let expired = probe(&report, "s3-v4-expired");
    assert!(expired["credential"]["seconds_left"].as_i64().unwrap() < -7000, "{expired:#}");

    for (name, scheme) in
        [("s3-v4-expired", "S3 presigned URL (SigV4)"), ("sas-expired", "SAS"), ("gcs-v4-expired", "Cloud Storage")]
    {
        let p = assert_failed(&report, name, "auth", "auth_rejected");
        let message = p["error"]["message"].as_str().unwrap();
        let expired_at = p["credential"]["not_after"].as_str().unwrap();
        assert!(
            message.starts_with("the link expired ") && message.contains(&format!(" ago, at {expired_at} (")),
            "{name}: {message}"
        );
        assert!(message.contains(scheme) && message.contains("authprobe did not send it"), "{name}: {message}");
    }
    let not_yet = assert_failed(&report, "sas-not-yet", "auth", "auth_rejected");
    assert!(not_yet["error"]["message"].as_str().unwrap().starts_with("the link is not valid until "), "{not_yet:#}");
    for name in ["s3-v4-tampered", "sas-tampered", "gcs-v4-unregistered-key"] {
        let p = assert_failed(&report, name, "auth", "auth_rejected");
        assert!(p["error"]["hint"].as_str().unwrap().contains("the signature was refused"), "{name}: {p:#}");
    }
    assert!(probe(&report, "s3-v4-tampered")["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"));
    for name in ["s3-v4-missing", "sas-missing", "gcs-v4-missing"] {
        assert_failed(&report, name, "check", "not_found");
    }
    for name in ["sas-write-only", "gcs-v4-locked-bucket"] {
        let p = assert_failed(&report, name, "check", "permission_denied");
        assert!(
            p["error"]["hint"].as_str().unwrap().starts_with("the signature is valid but does not grant this"),
            "{p:#}"
        );
    }
    assert!(
        probe(&report, "sas-write-only")["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AuthorizationPermissionMismatch")
    );
    assert!(
        probe(&report, "gcs-v4-locked-bucket")["error"]["message"].as_str().unwrap().contains("storage.objects.get")
    );
}

#[tokio::test]
async fn check_takes_a_signed_link_and_keeps_it_off_plain_http() {
    let env = harness_env();
    let link = harness_var(&env, "AP_LINK_S3_V4");
    let ca = harness_var(&env, "AP_CA");
    let out = authprobe_harness(&["check", &link, "--ca", &ca, "-v"], &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("link: an S3 presigned URL (SigV4), expires 20"), "{}", out.stdout);
    for secret in link_secrets(&env) {
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "{}", out.stdout);
    }
    // The same link to s3s-fs without TLS: the signature is a bearer credential, and no one
    // vouches for the server.
    let tls_port = harness_var(&env, "AP_S3_TLS_PORT");
    let plain = link.replace(
        &format!("https://localhost:{tls_port}"),
        &format!("http://localhost:{}", harness_var(&env, "AP_S3_PORT")),
    );
    let out = authprobe_harness(&["check", &plain, "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report = out.json();
    let p = assert_failed(&report, "check", "auth", "tls_handshake");
    assert!(
        p["error"]["message"].as_str().unwrap().starts_with("the signed link's signature would go over plain http://"),
        "{p:#}"
    );
}
