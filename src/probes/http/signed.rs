//! Signed links at the http probe: the link's own times are read before it is sent (an
//! expired link is not sent), the object is fetched as one byte (a ranged GET), and the
//! storage services' refusals (S3 and GCS XML error codes, Azure's x-ms-error-code) are
//! classified: expired or bad signature → `auth_rejected`, a valid signature without
//! permission → `permission_denied`, no such object → `not_found`.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::connect::context::ProbeContext;
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::report::CredentialReport;
use crate::model::signed_link::{Scheme, SignedLink, approx};

/// What a signed link is fetched with when the probe sets no method or expectation: its
/// first byte, so that a 5 GB object costs one byte. The Range header is never among a
/// link's signed headers.
pub(super) const FIRST_BYTE: &str = "bytes=0-0";

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Says what the link is and when it expires; refuses (before sending it) a link that has
/// expired or is not valid yet by this machine's clock; warns when it expires within the
/// probe's warning window and its last quarter.
pub(super) fn check_times(ctx: &ProbeContext, link: &SignedLink, now: SystemTime) -> Result<(), Failure> {
    let what = link.scheme.describe();
    if let Some(expires) = link.expires {
        ctx.add_credential(credential_report(link, expires, now));
    }
    let Some(expires) = link.expires else {
        let why = link.unreadable.map(|w| format!(": {w} does not parse")).unwrap_or_default();
        ctx.detail(format!("link: {what}; its expiry cannot be read{why}"));
        return Ok(());
    };
    if let Ok(ago) = now.duration_since(expires) {
        return Err(Failure::new(
            ErrorClass::AuthRejected,
            format!(
                "the link expired {} ago, at {} ({what}); authprobe did not send it",
                approx(ago),
                rfc3339(expires)
            ),
        )
        .with_hint(format!("ask {} for a new link", link.scheme.issuer())));
    }
    // SigV4 and GCS V4 dates are the signing time; servers allow 15 minutes of clock skew.
    let slack = match link.scheme {
        Scheme::AzureSas => Duration::ZERO,
        _ => Duration::from_secs(15 * 60),
    };
    if let Some(from) = link.valid_from
        && let Ok(ahead) = from.duration_since(now + slack)
    {
        return Err(Failure::new(
            ErrorClass::AuthRejected,
            format!(
                "the link is not valid until {} ({} from now, {what}); authprobe did not send it",
                rfc3339(from),
                approx(ahead)
            ),
        )
        .with_hint("check this machine's clock, or ask for a link whose validity has begun"));
    }
    let left = expires.duration_since(now).unwrap_or_default();
    ctx.detail(format!("link: {what}, expires {} (in {})", rfc3339(expires), approx(left)));
    // The last quarter of the link's life (its last day when the link does not say when
    // it began), and never earlier than the probe's warning window.
    let window = Duration::from_secs(u64::from(ctx.warn_expiry_days) * 86400);
    let last_part = link.lifetime().map_or(Duration::from_secs(86400), |life| life / 4);
    if left < window.min(last_part) {
        ctx.warn(format!(
            "the link expires in {} ({}): ask {} for a new one before then",
            approx(left),
            rfc3339(expires),
            link.scheme.issuer()
        ));
    }
    Ok(())
}

fn credential_report(link: &SignedLink, expires: SystemTime, now: SystemTime) -> CredentialReport {
    let unix = |t: SystemTime| match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    CredentialReport {
        what: link.scheme.describe().to_string(),
        not_after: Some(rfc3339(expires)),
        seconds_left: Some(unix(expires) - unix(now)),
        age_seconds: None,
        not_after_unix: Some(unix(expires)),
    }
}

/// What a ranged fetch of the link told about the object, for `-v`.
pub(super) fn describe_object(ctx: &ProbeContext, status: StatusCode, headers: &HeaderMap) {
    let size = headers
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('/').next())
        .and_then(|total| total.parse::<u64>().ok());
    match (status.as_u16(), size) {
        (416, _) => ctx.detail("object: empty (HTTP 416 for its first byte)"),
        (_, Some(size)) => ctx.detail(format!("object: {size} bytes; one was fetched")),
        _ => ctx.detail(format!("object: HTTP {status}; the body was not read")),
    }
}

/// A storage service's error answer: its code, message and details, from S3/GCS XML or
/// Azure's headers.
pub(super) struct ErrorAnswer {
    pub code: String,
    pub message: Option<String>,
    pub detail: Option<String>,
}

impl ErrorAnswer {
    pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> ErrorAnswer {
        let text = String::from_utf8_lossy(body);
        let xml = |name| crate::connect::httpc::xml_element(&text, name);
        let azure_code = headers.get("x-ms-error-code").and_then(|v| v.to_str().ok()).map(str::to_string);
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let json_field = |name: &str| json.as_ref().and_then(|j| j[name].as_str()).map(str::to_string);
        let code = xml("Code")
            .or(azure_code)
            .or_else(|| json_field("__type").map(|t| t.rsplit('#').next().unwrap_or_default().to_string()))
            .or_else(|| json_field("code"))
            .unwrap_or_default();
        let message = xml("Message").or_else(|| json_field("message")).or_else(|| json_field("Message"));
        let detail = xml("AuthenticationErrorDetail").or_else(|| xml("Details"));
        ErrorAnswer { code, message, detail }
    }

    fn says(&self, words: &[&str]) -> bool {
        let texts = [self.message.as_deref(), self.detail.as_deref()];
        texts.into_iter().flatten().any(|t| {
            let t = t.to_ascii_lowercase();
            words.iter().any(|w| t.contains(w))
        })
    }

    /// `HTTP 403 AccessDenied: Request has expired`, the server's words scrubbed and capped.
    pub(super) fn summary(&self, ctx: &ProbeContext, status: StatusCode) -> String {
        let mut text = format!("HTTP {status}");
        if !self.code.is_empty() {
            text.push(' ');
            text.push_str(&ctx.server_text(&self.code, 80));
        }
        // Azure's message goes on with RequestId and Time lines: the first line says it.
        let message = self.message.as_deref().and_then(|m| m.lines().next());
        for said in [message, self.detail.as_deref()].into_iter().flatten() {
            let said = ctx.server_text(said.trim(), 200);
            let joined = if text.ends_with(['.', '!', '?']) { " " } else { ": " };
            text.push_str(joined);
            text.push_str(&said);
        }
        text
    }
}

/// The storage service's refusal of a signed link. `expires` is the link's own expiry, to
/// tell a server whose clock differs from this machine's.
pub(super) fn refusal(ctx: &ProbeContext, link: &SignedLink, status: StatusCode, answer: &ErrorAnswer) -> Failure {
    let text = answer.summary(ctx, status);
    let issuer = link.scheme.issuer();
    let expired = match answer.code.as_str() {
        "ExpiredToken" | "RequestExpired" => true,
        "AccessDenied" => answer.says(&["expired"]),
        "AuthenticationFailed" => answer.says(&["not valid in the specified time frame", "expired"]),
        _ => false,
    };
    if expired {
        let clock = match link.expires {
            Some(expires) if SystemTime::now() < expires => format!(
                "; by this machine's clock the link is valid until {}: one of the clocks is wrong (check NTP here and there)",
                rfc3339(expires)
            ),
            _ => String::new(),
        };
        return Failure::new(ErrorClass::AuthRejected, format!("{text} (the server says the link has expired{clock})"))
            .at(Stage::Auth)
            .with_hint(format!("ask {issuer} for a new link"));
    }
    // Azure (and Azurite, which answers AuthorizationFailure) says "Server failed to
    // authenticate the request" for a signature it cannot verify.
    let unauthenticated = answer.says(&["failed to authenticate"]);
    match answer.code.as_str() {
        "SignatureDoesNotMatch" | "AuthorizationQueryParametersError" | "MalformedSecurityHeader" | "InvalidAccessKeyId"
        | "AuthenticationFailed" | "InvalidAuthenticationInfo" => Failure::new(ErrorClass::AuthRejected, text)
            .at(Stage::Auth)
            .with_hint(format!(
                "the signature was refused: the link was changed after signing (copied whole?), or its key was rotated or deleted; ask {issuer} for a new link"
            )),
        _ if unauthenticated => Failure::new(ErrorClass::AuthRejected, text).at(Stage::Auth).with_hint(format!(
            "the signature was refused: the link was changed after signing (copied whole?), or its key was rotated; ask {issuer} for a new link"
        )),
        "RequestTimeTooSkewed" => Failure::new(ErrorClass::AuthRejected, text)
            .at(Stage::Auth)
            .with_hint("the link's signing time and the server's clock differ too much: check the clocks (NTP)"),
        "NoSuchKey" | "NoSuchBucket" | "BlobNotFound" | "ContainerNotFound" | "ResourceNotFound" | "NoSuchVersion" => {
            Failure::new(ErrorClass::NotFound, text)
                .at(Stage::Check)
                .with_hint("the signature is valid but the object is not there: check the link's path, or whether the object was moved or deleted")
        }
        code if status == StatusCode::FORBIDDEN && (code == "AccessDenied" || code.starts_with("Authorization")) => {
            Failure::new(ErrorClass::PermissionDenied, text).at(Stage::Check).with_hint(format!(
                "the signature is valid but does not grant this: the signer lacks the permission (S3 s3:GetObject, GCS storage.objects.get), or the SAS's permissions (sp), resource or IP range exclude it; ask {issuer}"
            ))
        }
        _ if status == StatusCode::NOT_FOUND => Failure::new(ErrorClass::NotFound, text).at(Stage::Check),
        _ if status == StatusCode::FORBIDDEN => Failure::new(ErrorClass::PermissionDenied, text)
            .at(Stage::Check)
            .with_hint(format!("the server refused the link; ask {issuer} whether it grants this object")),
        _ => Failure::new(ErrorClass::UnexpectedResponse, text).at(Stage::Check),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ctx() -> ProbeContext {
        ProbeContext::new(Arc::default(), 14, Duration::from_secs(5))
    }

    fn link(scheme: Scheme, expires_in: i64) -> SignedLink {
        let now = SystemTime::now();
        let expires = if expires_in >= 0 {
            now + Duration::from_secs(expires_in as u64)
        } else {
            now - Duration::from_secs(expires_in.unsigned_abs())
        };
        SignedLink { scheme, valid_from: None, expires: Some(expires), unreadable: None }
    }

    fn judge(scheme: Scheme, status: u16, headers: &[(&'static str, &str)], body: &str) -> Failure {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        let answer = ErrorAnswer::read(&map, body.as_bytes());
        refusal(&ctx(), &link(scheme, 3600), StatusCode::from_u16(status).unwrap(), &answer)
    }

    // Bodies as s3s-fs, the GCS XML API and Azurite answer them (recorded from the harness).
    #[test]
    fn a_server_that_says_expired_while_this_clock_does_not_is_a_clock_problem() {
        let s3 = judge(
            Scheme::S3SigV4,
            403,
            &[],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        );
        assert_eq!((s3.class, s3.stage), (ErrorClass::AuthRejected, Some(Stage::Auth)));
        assert!(s3.message.contains("the server says the link has expired; by this machine's clock"), "{}", s3.message);
        let gcs = judge(
            Scheme::GcsV4,
            400,
            &[],
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code><Message>Invalid argument.</Message><Details>Request signature expired at: 2026-11-24T20:38:13+00:00</Details></Error>",
        );
        assert_eq!(gcs.class, ErrorClass::AuthRejected);
        assert!(
            gcs.message.starts_with("HTTP 400 Bad Request ExpiredToken: Invalid argument. Request signature expired"),
            "{}",
            gcs.message
        );
    }

    #[test]
    fn signature_permission_and_absence_are_told_apart() {
        let tampered = judge(Scheme::S3SigV4, 403, &[], "<Error><Code>SignatureDoesNotMatch</Code></Error>");
        assert_eq!(tampered.class, ErrorClass::AuthRejected);
        let azure = "<?xml version=\"1.0\"?>\n<Error>\n  <Code>AuthorizationFailure</Code>\n  <Message>Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature.\nRequestId:8c75\nTime:2026-11-24T22:38:16.461Z</Message>\n</Error>";
        let unauthenticated = judge(Scheme::AzureSas, 403, &[("x-ms-error-code", "AuthorizationFailure")], azure);
        assert_eq!(unauthenticated.class, ErrorClass::AuthRejected);
        assert!(!unauthenticated.message.contains("RequestId"), "{}", unauthenticated.message);
        let write_only = judge(Scheme::AzureSas, 403, &[("x-ms-error-code", "AuthorizationPermissionMismatch")], "");
        assert_eq!((write_only.class, write_only.stage), (ErrorClass::PermissionDenied, Some(Stage::Check)));
        let missing = judge(
            Scheme::GcsV4,
            404,
            &[],
            "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        );
        assert_eq!(missing.class, ErrorClass::NotFound);
        let head_refused = judge(Scheme::S3SigV4, 403, &[], "");
        assert_eq!(head_refused.class, ErrorClass::PermissionDenied);
    }

    #[test]
    fn expired_links_are_not_sent_and_closing_ones_warn() {
        let ctx = ctx();
        let expired = check_times(&ctx, &link(Scheme::S3SigV2, -7300), SystemTime::now()).unwrap_err();
        assert_eq!(expired.class, ErrorClass::AuthRejected);
        assert!(expired.message.starts_with("the link expired 2h 1m ago, at "), "{}", expired.message);
        let ctx = self::ctx();
        check_times(&ctx, &link(Scheme::S3SigV2, 3 * 86400), SystemTime::now()).unwrap();
        assert!(ctx.finish(&[]).warnings.is_empty());
        check_times(&ctx, &link(Scheme::S3SigV2, 3600), SystemTime::now()).unwrap();
        assert_eq!(ctx.finish(&[]).warnings.len(), 1);
    }
}
