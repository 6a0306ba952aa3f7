//! AWS Signature Version 4 outside the SDK: signing an HTTP probe's request
//! (`auth.type = "aws_sigv4"`) and presigning RDS IAM authentication tokens.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderName, HeaderValue, Method};
use url::Url;

use crate::model::error::{ErrorClass, Failure};
use crate::model::redact;

/// How long an RDS IAM token is valid: AWS's fixed 15 minutes.
const RDS_TOKEN_LIFETIME: Duration = Duration::from_secs(900);

fn signing_failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(ErrorClass::Internal, format!("SigV4 signing failed: {e}"))
}

fn params<'a>(
    identity: &'a Identity,
    region: &'a str,
    service: &'a str,
    now: SystemTime,
    settings: SigningSettings,
) -> Result<aws_sigv4::http_request::SigningParams<'a>, Failure> {
    Ok(v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(signing_failure)?
        .into())
}

/// Who signs, for which service and region, at what time.
pub struct Signer<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    pub service: &'a str,
    pub now: SystemTime,
}

/// The headers that sign a request (Authorization, X-Amz-Date, and for S3 the payload
/// hash; X-Amz-Security-Token with temporary credentials), to send with it.
pub fn sign_request(
    signer: &Signer<'_>,
    method: &Method,
    url: &Url,
    headers: &[(HeaderName, HeaderValue)],
    body: &[u8],
) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
    let Signer { credentials, region, service, now } = *signer;
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        // S3 checks the payload hash it is sent, and refuses requests without one.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = params(&identity, region, service, now, settings)?;
    let plain: Vec<(&str, &str)> =
        headers.iter().filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v))).collect();
    let request = SignableRequest::new(method.as_str(), url.as_str(), plain.into_iter(), SignableBody::Bytes(body))
        .map_err(signing_failure)?;
    let (instructions, _signature) = sign(request, &params).map_err(signing_failure)?.into_parts();
    let (signed_headers, _params) = instructions.into_parts();
    signed_headers
        .into_iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name().as_bytes()).map_err(signing_failure)?;
            let mut value = HeaderValue::from_str(h.value()).map_err(signing_failure)?;
            if h.sensitive() || name == http::header::AUTHORIZATION {
                value.set_sensitive(true);
                redact::register(h.value());
            }
            Ok((name, value))
        })
        .collect()
}

/// A presigned URL (the signature in the query string), as S3 and RDS use them.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    service: &str,
    url: &Url,
    expires_in: Duration,
    body: SignableBody<'_>,
    now: SystemTime,
) -> Result<Url, Failure> {
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let params = params(&identity, region, service, now, settings)?;
    let request = SignableRequest::new("GET", url.as_str(), std::iter::empty(), body).map_err(signing_failure)?;
    let (instructions, _signature) = sign(request, &params).map_err(signing_failure)?.into_parts();
    let mut signed = url.clone();
    {
        let mut query = signed.query_pairs_mut();
        for (name, value) in instructions.params() {
            query.append_pair(name, value);
        }
    }
    Ok(signed)
}

/// The RDS IAM authentication token for `user` at `host:port`: a presigned `connect`
/// action for the `rds-db` service, sent as the password over TLS. Registered as a secret.
pub fn rds_token(
    credentials: &Credentials,
    region: &str,
    host: &str,
    port: u16,
    user: &str,
    now: SystemTime,
) -> Result<String, Failure> {
    let mut url = Url::parse(&format!("https://{host}:{port}/"))
        .map_err(|e| Failure::new(ErrorClass::Config, format!("`{host}` cannot be signed for: {e}")))?;
    url.query_pairs_mut().append_pair("Action", "connect").append_pair("DBUser", user);
    let signed = presign(credentials, region, "rds-db", &url, RDS_TOKEN_LIFETIME, SignableBody::Bytes(&[]), now)?;
    // The token is the URL without its scheme.
    let token = signed.as_str().trim_start_matches("https://").to_string();
    redact::register(&token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    /// AWS's SigV4 test suite, `get-vanilla`.
    #[test]
    fn header_signing_matches_the_sigv4_test_suite() {
        let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let signer =
            Signer { credentials: &creds, region: "us-east-1", service: "service", now: at("2015-08-30T12:36:00Z") };
        let headers = sign_request(&signer, &Method::GET, &url, &[], b"").unwrap();
        let auth =
            headers.iter().find(|(n, _)| n == http::header::AUTHORIZATION).unwrap().1.to_str().unwrap().to_string();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let date = headers.iter().find(|(n, _)| n == "x-amz-date").unwrap().1.to_str().unwrap().to_string();
        assert_eq!(date, "20150830T123600Z");
    }

    /// The presigned-URL example of AWS's S3 documentation ("Authenticating Requests: Using
    /// Query Parameters"): the same presigning RDS tokens use, with S3's unsigned payload.
    #[test]
    fn presigning_matches_the_s3_documentation_example() {
        let creds =
            Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, None, "test");
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let signed = presign(
            &creds,
            "us-east-1",
            "s3",
            &url,
            Duration::from_secs(86400),
            SignableBody::UnsignedPayload,
            at("2013-05-24T00:00:00Z"),
        )
        .unwrap();
        let query: std::collections::HashMap<String, String> = signed.query_pairs().into_owned().collect();
        assert_eq!(query["X-Amz-Credential"], "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request");
        assert_eq!(query["X-Amz-Expires"], "86400");
        assert_eq!(query["X-Amz-SignedHeaders"], "host");
        assert_eq!(query["X-Amz-Signature"], "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    }

    #[test]
    fn an_rds_token_is_a_presigned_connect_for_the_user() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("SESSION".into()),
            None,
            "test",
        );
        let token = rds_token(&creds, "eu-west-1", "db.example.internal", 5432, "app_user", at("2024-01-02T03:04:05Z"))
            .unwrap();
        assert!(token.starts_with("db.example.internal:5432/?Action=connect&DBUser=app_user&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240102%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=20240102T030405Z&X-Amz-Expires=900"), "{token}");
        assert!(token.contains("X-Amz-Security-Token=SESSION"), "{token}");
        assert!(token.contains("&X-Amz-SignedHeaders=host&X-Amz-Signature="), "{token}");
    }
}
