//! What an AWS credential is, asked of AWS itself for credential hygiene: whose identity it
//! is (STS `GetCallerIdentity`: the account root, an IAM user, an assumed role) and, for an
//! IAM user's long-term access key, when it was made (IAM `ListAccessKeys`); and the
//! account's S3 Block Public Access settings (S3 Control), when a bucket looks public.
//! Calls signed here, over authprobe's own connections (not recorded as the probe's
//! stages), read-only and without side effects; both go out at once.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use bytes::Bytes;
use http::{HeaderValue, Method, header};
use url::Url;

use crate::connect::context::ProbeContext;
use crate::connect::httpc::{self, xml_element};
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::identity::aws::sign::{Signer, sign_request};

/// Answers are a few hundred bytes; a user has at most two keys.
const ANSWER_CAP: usize = 64 * 1024;

/// Where the calls go: AWS's own endpoints, or one endpoint that speaks every service (an
/// emulator such as moto, as the probe's `endpoint`).
pub struct Endpoints<'a> {
    pub region: &'a str,
    pub endpoint: Option<&'a str>,
    pub tls: &'a TlsOptions,
}

impl Endpoints<'_> {
    fn url(&self, service: &str) -> Result<Url, String> {
        let raw = match (self.endpoint, service) {
            (Some(endpoint), _) => format!("{}/", endpoint.trim_end_matches('/')),
            (None, "iam") => "https://iam.amazonaws.com/".to_string(),
            (None, _) => format!("https://{service}.{}.amazonaws.com/", self.region),
        };
        Url::parse(&raw).map_err(|e| format!("{raw}: {e}"))
    }
}

/// Asks who the credentials are and, when the probe has a `max_age` and the key is a
/// long-term one (`AKIA…`), when the key was made; notes what hygiene finds. A call that
/// fails is a `-v` line, never the probe's failure. Returns the account's id, when told.
pub async fn note_identity(ctx: &ProbeContext, credentials: &Credentials, at: &Endpoints<'_>) -> Option<String> {
    let key_id = credentials.access_key_id();
    let wants_age = ctx.hygiene.max_age.is_some() && key_id.starts_with("AKIA");
    let identity = call(ctx, credentials, at, "sts", "Action=GetCallerIdentity&Version=2011-06-15");
    let keys = async {
        if wants_age {
            Some(call(ctx, credentials, at, "iam", "Action=ListAccessKeys&Version=2010-05-08").await)
        } else {
            None
        }
    };
    let (identity, keys) = tokio::join!(identity, keys);
    let account = identity.as_ref().ok().and_then(|xml| xml_element(xml, "Account"));
    match identity.map(|xml| xml_element(&xml, "Arn")) {
        Ok(Some(arn)) => note_arn(ctx, &arn),
        Ok(None) => ctx.detail("hygiene: STS GetCallerIdentity answered without an Arn"),
        Err(why) => ctx.detail(format!("hygiene: STS GetCallerIdentity was not answered: {why}")),
    }
    match keys {
        None => {}
        Some(Ok(xml)) => match key_created(&xml, key_id) {
            Some(created) => {
                let last4 = crate::identity::cloud::last_chars(key_id, 4);
                ctx.note_age(
                    &format!("the access key …{last4}"),
                    created,
                    &format!(
                        "rotate it: aws iam create-access-key, move the probe and its users to the new key, then aws iam delete-access-key --access-key-id (the key ending {last4})"
                    ),
                );
            }
            None => ctx.detail("hygiene: IAM ListAccessKeys did not list the key in use"),
        },
        Some(Err(why)) => ctx.detail(format!(
            "hygiene: IAM ListAccessKeys was not answered ({why}): the key's age is unknown (grant iam:ListAccessKeys on the user itself to learn it)"
        )),
    }
    account.filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

/// S3 Block Public Access, as a bucket's or an account's settings say: which public grants
/// S3 does not honour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    /// A public bucket policy gives access only to AWS services and the account's own users.
    pub restrict_public_buckets: bool,
    /// Public ACLs are ignored.
    pub ignore_public_acls: bool,
}

impl PublicAccessBlock {
    /// From a `PublicAccessBlockConfiguration` document (S3's and S3 Control's alike).
    pub fn of_xml(xml: &str) -> PublicAccessBlock {
        let on = |name: &str| xml_element(xml, name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        PublicAccessBlock {
            restrict_public_buckets: on("RestrictPublicBuckets"),
            ignore_public_acls: on("IgnorePublicAcls"),
        }
    }
}

/// The account's S3 Block Public Access settings (S3 Control `GetPublicAccessBlock`; needs
/// `s3:GetAccountPublicAccessBlock`). None set is all off.
pub async fn account_public_access_block(
    ctx: &ProbeContext,
    credentials: &Credentials,
    at: &Endpoints<'_>,
    account: &str,
) -> Result<PublicAccessBlock, String> {
    let raw = match at.endpoint {
        Some(endpoint) => format!("{}/v20180820/configuration/publicAccessBlock", endpoint.trim_end_matches('/')),
        None => format!(
            "https://{account}.s3-control.{}.amazonaws.com/v20180820/configuration/publicAccessBlock",
            at.region
        ),
    };
    let url = Url::parse(&raw).map_err(|e| format!("{raw}: {e}"))?;
    let account_header = HeaderValue::from_str(account).map_err(|e| e.to_string())?;
    let mut headers = vec![(header::HeaderName::from_static("x-amz-account-id"), account_header)];
    let signer = Signer { credentials, region: at.region, service: "s3", now: SystemTime::now() };
    headers.extend(sign_request(&signer, &Method::GET, &url, &headers, b"").map_err(|f| f.message)?);
    match answer(ctx, at, &url, Method::GET, &headers, Bytes::new()).await {
        Ok(xml) => Ok(PublicAccessBlock::of_xml(&xml)),
        Err(why) if why.contains("NoSuchPublicAccessBlockConfiguration") => Ok(PublicAccessBlock::default()),
        Err(why) => Err(why),
    }
}

/// The account root's own key is a warning; a long-lived IAM user's key for a production
/// probe is information (a role's credentials expire by themselves).
fn note_arn(ctx: &ProbeContext, arn: &str) {
    ctx.detail(format!("hygiene: the credentials are {arn}"));
    if arn.ends_with(":root") {
        ctx.note_warning(
            "aws_account_root",
            "the credentials are the account root's own access key, which can do everything in the account and which no policy limits: create an IAM role (or user) allowed only what the probe needs (s3:ListBucket on the bucket), use its credentials, and delete the root access key".into(),
        );
    } else if arn.contains(":user/") && ctx.hygiene.environment.as_deref() == Some("production") {
        ctx.note_info(
            "aws_iam_user_key",
            "a production probe uses an IAM user's long-lived access key: where the probe runs in AWS, prefer a role (instance profile, IRSA, assume_role), whose credentials expire by themselves".into(),
        );
    }
}

async fn call(
    ctx: &ProbeContext,
    credentials: &Credentials,
    at: &Endpoints<'_>,
    service: &str,
    body: &'static str,
) -> Result<String, String> {
    let url = at.url(service)?;
    let region = if service == "iam" && at.endpoint.is_none() { "us-east-1" } else { at.region };
    let mut headers = vec![(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"))];
    let signer = Signer { credentials, region, service, now: SystemTime::now() };
    headers.extend(sign_request(&signer, &Method::POST, &url, &headers, body.as_bytes()).map_err(|f| f.message)?);
    answer(ctx, at, &url, Method::POST, &headers, Bytes::from_static(body.as_bytes())).await
}

/// One signed request's XML answer; an error status is `HTTP status, Code`.
async fn answer(
    ctx: &ProbeContext,
    at: &Endpoints<'_>,
    url: &Url,
    method: Method,
    headers: &[(header::HeaderName, HeaderValue)],
    body: Bytes,
) -> Result<String, String> {
    let mut conn = httpc::connect(ctx, url, at.tls, Record::Quietly).await.map_err(|f| f.message)?;
    let mut response = conn.send(method, url, headers, body).await.map_err(|f| f.message)?;
    let status = response.status();
    let (bytes, _) = httpc::read_capped(response.body_mut(), ANSWER_CAP).await.map_err(|f| f.message)?;
    let xml = String::from_utf8_lossy(&bytes).into_owned();
    if !status.is_success() {
        let code = xml_element(&xml, "Code").unwrap_or_default();
        return Err(format!(
            "HTTP {status}{}",
            if code.is_empty() { String::new() } else { format!(", {}", ctx.server_text(&code, 80)) }
        ));
    }
    Ok(xml)
}

/// When the key `key_id` was made, from a `ListAccessKeys` answer: each `member` has an
/// `AccessKeyId` and a `CreateDate` (ISO 8601, UTC).
pub fn key_created(xml: &str, key_id: &str) -> Option<i64> {
    xml.split("<member>")
        .skip(1)
        .find(|member| xml_element(member, "AccessKeyId").as_deref() == Some(key_id))
        .and_then(|member| xml_element(member, "CreateDate"))
        .as_deref()
        .and_then(iso_seconds)
}

/// `2026-12-07T00:13:45Z`, with or without fractions or a `+00:00` offset (AWS writes UTC).
fn iso_seconds(text: &str) -> Option<i64> {
    let whole = text.get(..19)?;
    let at = humantime::parse_rfc3339(&format!("{whole}Z")).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_and_its_key_age_are_read_from_the_answers() {
        let identity = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
            <Arn>arn:aws:iam::123456789012:root</Arn><UserId>123456789012</UserId><Account>123456789012</Account>\
            </GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(xml_element(identity, "Arn").as_deref(), Some("arn:aws:iam::123456789012:root"));
        assert_eq!(xml_element(identity, "Nope"), None);
        let keys = "<ListAccessKeysResponse><ListAccessKeysResult><AccessKeyMetadata>\
            <member><UserName>u</UserName><AccessKeyId>AKIAOTHER</AccessKeyId><Status>Active</Status><CreateDate>2020-01-01T00:00:00Z</CreateDate></member>\
            <member><UserName>u</UserName><AccessKeyId>AKIATHIS</AccessKeyId><Status>Active</Status><CreateDate>2026-12-07T00:13:45.123456+00:00</CreateDate></member>\
            </AccessKeyMetadata></ListAccessKeysResult></ListAccessKeysResponse>";
        assert_eq!(key_created(keys, "AKIATHIS"), Some(1_796_602_425));
        assert_eq!(key_created(keys, "AKIAOTHER"), Some(1_577_836_800));
        assert_eq!(key_created(keys, "AKIAMISSING"), None);
        assert_eq!(key_created("<not xml", "AKIATHIS"), None);
        assert_eq!(iso_seconds("2026"), None);
    }

    #[test]
    fn block_public_access_settings_are_read() {
        let xml = "<PublicAccessBlockConfiguration><BlockPublicAcls>false</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls>\
            <BlockPublicPolicy>false</BlockPublicPolicy><RestrictPublicBuckets>false</RestrictPublicBuckets></PublicAccessBlockConfiguration>";
        assert_eq!(
            PublicAccessBlock::of_xml(xml),
            PublicAccessBlock { restrict_public_buckets: false, ignore_public_acls: true }
        );
        assert_eq!(PublicAccessBlock::of_xml("<garbage"), PublicAccessBlock::default());
    }

    #[test]
    fn the_account_root_warns_and_a_production_user_key_is_information() {
        let ctx = |environment: Option<&str>| {
            let settings = crate::model::hygiene::HygieneSettings {
                environment: environment.map(str::to_string),
                ..Default::default()
            };
            ProbeContext::new(std::sync::Arc::default(), 14, std::time::Duration::from_secs(5))
                .with_hygiene(std::sync::Arc::new(settings))
        };
        let findings =
            |ctx: &ProbeContext| ctx.finish(&[]).findings.into_iter().map(|f| (f.what, f.severity)).collect::<Vec<_>>();
        let root = ctx(None);
        note_arn(&root, "arn:aws:iam::123456789012:root");
        assert_eq!(findings(&root), [("aws_account_root".to_string(), "warning")]);
        let prod_user = ctx(Some("production"));
        note_arn(&prod_user, "arn:aws:iam::123456789012:user/deploy");
        assert_eq!(findings(&prod_user), [("aws_iam_user_key".to_string(), "info")]);
        let test_user = ctx(Some("test"));
        note_arn(&test_user, "arn:aws:iam::123456789012:user/deploy");
        let role = ctx(Some("production"));
        note_arn(&role, "arn:aws:sts::123456789012:assumed-role/reader/session");
        assert!(findings(&test_user).is_empty() && findings(&role).is_empty());
    }
}
