//! The `s3` probe: resolve credentials from the configured source (stage `token`, which
//! for `assume_role` is the STS call), list at most one object under the prefix (stage
//! `auth`: the request the credentials sign, over a connection whose `dns`, `connect` and
//! `tls` stages are authprobe's own, see [`crate::identity::aws::http`]), and judge the answer (stage
//! `check`). The SDK does not retry inside an attempt (`--wait` retries whole attempts),
//! and nothing touches the instance metadata service unless the default chain is asked for.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;

use crate::config::TableReader;
use crate::config::document::{Table, Value};
use crate::connect::context::ProbeContext;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::identity::aws::account;
use crate::identity::aws::creds::{Source, Sts, error_chain};
use crate::identity::aws::http::{self as aws_http, CarriedFailure};
use crate::model::error::{ErrorClass, Failure, Stage, classify_io, describe_io, find_cause};
use crate::probes::from_url::{UrlOptions, UrlProbe, literal};
use crate::probes::{Probe, ProbeFuture};
use aws_credential_types::Credentials;
use url::Url;

/// The ACL grantee groups that make a bucket public: everyone, and every AWS account.
const PUBLIC_GROUPS: [&str; 2] =
    ["http://acs.amazonaws.com/groups/global/AllUsers", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"];

/// What the bucket's policy (public or not) and ACL (the permissions granted to everyone)
/// say, or why they were not read.
struct Exposure {
    policy: Result<bool, String>,
    acl: Result<Vec<String>, String>,
    /// What S3 Block Public Access (the bucket's, else the account's) neutralises, and whose
    /// setting it is.
    blocked: Option<(account::PublicAccessBlock, &'static str)>,
}

#[derive(Debug, Clone)]
pub struct S3Probe {
    bucket: String,
    prefix: Option<String>,
    region: String,
    endpoint: Option<String>,
    path_style: bool,
    source: Source,
    tls: TlsOptions,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    let bucket = t.required_string("bucket", "the bucket to list");
    let prefix = t.string("prefix");
    let region = t.string("region").unwrap_or_else(|| "us-east-1".into());
    let endpoint = t.url("endpoint").map(|u| u.as_str().trim_end_matches('/').to_string());
    let endpoint_ok = endpoint.is_some() || !t.has("endpoint");
    let path_style = t.bool("path_style").unwrap_or(false);
    let source = match t.table("auth") {
        Some(a) => {
            let s = Source::read(&a, false, "S3");
            if s.is_some() {
                a.finish();
            }
            s
        }
        None => (!t.has("auth")).then_some(Source::DefaultChain),
    };
    let tls = TlsOptions::read(t, None);
    if !endpoint_ok {
        return None;
    }
    Some(Arc::new(S3Probe { bucket: bucket?, prefix, region, endpoint, path_style, source: source?, tls: tls? }))
}

impl S3Probe {
    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        ctx.detail(format!("credentials: {}", self.source.describe()));
        let sts = Sts { region: &self.region, endpoint: self.endpoint.as_deref(), tls: &self.tls };
        let credentials = ctx.stage(Stage::Token, self.source.resolve(ctx, &sts)).await?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .retry_config(RetryConfig::disabled())
            // The runner's timeout alone bounds the probe and blames the stage that was
            // running; an SDK timeout racing it would end the nested stage first and be
            // blamed on `auth`.
            .timeout_config(TimeoutConfig::disabled())
            .http_client(aws_http::client(ctx, &self.tls, Record::Stages));
        loader = match credentials.clone() {
            Some(credentials) => loader.credentials_provider(credentials),
            None => loader.no_credentials(),
        };
        let sdk = loader.load().await;
        let mut conf =
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(self.path_style || self.endpoint.is_some());
        if let Some(endpoint) = &self.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        // Hygiene's questions go out with the listing, each on a connection of its own (not
        // recorded as the probe's stages), so that they cost no round trip of their own.
        let hygiene_client = aws_sdk_s3::Client::from_conf(
            conf.clone().http_client(aws_http::client(ctx, &self.tls, Record::Quietly)).build(),
        );
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        let mut request = client.list_objects_v2().bucket(&self.bucket).max_keys(1);
        if let Some(prefix) = &self.prefix {
            request = request.prefix(prefix);
        }
        let listing = ctx.stage(Stage::Auth, async {
            match request.send().await {
                Ok(list) => Ok(Ok(list)),
                Err(err) => match self.explain(classify(&err, &self.region)) {
                    // Failures of the connection's own stages keep them.
                    failure if failure.stage.is_some() || is_auth_failure(failure.class) => Err(failure),
                    failure => Ok(Err(failure)),
                },
            }
        });
        let hygiene = async {
            if ctx.hygiene.enabled && credentials.is_some() {
                Some(self.hygiene(ctx, &hygiene_client, credentials.as_ref()).await)
            } else {
                None
            }
        };
        // The listing decides the probe; hygiene not answered shortly after it is given up.
        let (outcome, hygiene) = crate::model::hygiene::beside(listing, hygiene).await;
        let hygiene = hygiene.unwrap_or_else(|| {
            ctx.detail("hygiene: not all answered within 2s of the listing; not waited for");
            None
        });
        let outcome = outcome?;
        ctx.stage(Stage::Check, async {
            let list = outcome?;
            ctx.detail(format!("objects seen: {}", list.key_count().unwrap_or(0)));
            // Known only now that the credentials are known to work.
            if let Some(exposure) = hygiene {
                self.note_exposure(ctx, exposure);
            }
            Ok(())
        })
        .await
    }
}

impl S3Probe {
    /// Credential hygiene, read-only, all at once: whether the bucket's policy makes it
    /// public (returned, to be noted once the listing passed), and whose the credentials
    /// are (and their key's age, with `max_age`).
    async fn hygiene(
        &self,
        ctx: &ProbeContext,
        client: &aws_sdk_s3::Client,
        credentials: Option<&Credentials>,
    ) -> Exposure {
        let policy = async {
            match client.get_bucket_policy_status().bucket(&self.bucket).send().await {
                Ok(answer) => Ok(answer.policy_status().and_then(|s| s.is_public()).unwrap_or(false)),
                Err(err) => Err(unanswered(ctx, &err)),
            }
        };
        let at = account::Endpoints { region: &self.region, endpoint: self.endpoint.as_deref(), tls: &self.tls };
        let identity = async {
            match credentials {
                Some(credentials) => account::note_identity(ctx, credentials, &at).await,
                None => None,
            }
        };
        // The ACL's grants to everyone (or to every AWS account), which a bucket policy does
        // not show: a bucket made public the old way.
        let acl = async {
            match client.get_bucket_acl().bucket(&self.bucket).send().await {
                Ok(answer) => Ok(answer
                    .grants()
                    .iter()
                    .filter(|g| g.grantee().and_then(|g| g.uri()).is_some_and(|uri| PUBLIC_GROUPS.contains(&uri)))
                    .filter_map(|g| g.permission().map(|p| ctx.server_text(p.as_str(), 40)))
                    .collect()),
                Err(err) => Err(unanswered(ctx, &err)),
            }
        };
        // Block Public Access can make a public policy or ACL moot: the bucket's own setting.
        let bucket_block = async {
            let answer = client.get_public_access_block().bucket(&self.bucket).send().await.ok()?;
            let config = answer.public_access_block_configuration()?;
            Some(account::PublicAccessBlock {
                restrict_public_buckets: config.restrict_public_buckets().unwrap_or(false),
                ignore_public_acls: config.ignore_public_acls().unwrap_or(false),
            })
        };
        let (policy, acl, account_id, bucket_block) = tokio::join!(policy, acl, identity, bucket_block);
        let bucket_block = bucket_block.unwrap_or_default();
        let looks_public = |block: account::PublicAccessBlock| {
            (policy == Ok(true) && !block.restrict_public_buckets)
                || (acl.as_ref().is_ok_and(|g: &Vec<String>| !g.is_empty()) && !block.ignore_public_acls)
        };
        // The account's setting is asked only when the bucket still looks public: a round
        // trip more in that case alone.
        let mut blocked = (bucket_block != account::PublicAccessBlock::default()).then_some((bucket_block, "bucket"));
        if looks_public(bucket_block)
            && let (Some(credentials), Some(account_id)) = (credentials, account_id)
        {
            match account::account_public_access_block(ctx, credentials, &at, &account_id).await {
                Ok(account_block) => {
                    let either = account::PublicAccessBlock {
                        restrict_public_buckets: bucket_block.restrict_public_buckets
                            || account_block.restrict_public_buckets,
                        ignore_public_acls: bucket_block.ignore_public_acls || account_block.ignore_public_acls,
                    };
                    if either != bucket_block {
                        blocked = Some((either, "account"));
                    }
                }
                Err(why) => ctx.detail(format!(
                    "hygiene: the account's Block Public Access settings were not answered ({why}); judged without them"
                )),
            }
        }
        Exposure { policy, acl, blocked }
    }

    fn note_exposure(&self, ctx: &ProbeContext, exposure: Exposure) {
        let (block, whose) = exposure.blocked.unwrap_or_default();
        match exposure.acl {
            Ok(granted) if !granted.is_empty() && block.ignore_public_acls => ctx.detail(format!(
                "hygiene: the bucket's ACL grants {} to everyone, but the {whose}'s Block Public Access ignores public ACLs",
                granted.join(", ")
            )),
            Ok(granted) if !granted.is_empty() => ctx.note_warning(
                "s3_bucket_acl_public",
                format!(
                    "the bucket {} is public through its ACL ({} granted to everyone or to any AWS account): if that is not meant, aws s3api put-bucket-acl --bucket {} --acl private",
                    self.bucket,
                    granted.join(", "),
                    self.bucket
                ),
            ),
            Ok(_) => ctx.detail("hygiene: the bucket's ACL grants nothing to everyone"),
            Err(why) => ctx.detail(format!("hygiene: GetBucketAcl was not answered ({why})")),
        }
        match exposure.policy {
            Ok(true) if block.restrict_public_buckets => ctx.detail(format!(
                "hygiene: the bucket's policy is public, but the {whose}'s Block Public Access restricts it to the account's own users and AWS services"
            )),
            Ok(true) => ctx.note_warning(
                "s3_bucket_public",
                format!(
                    "the bucket {} is public: its policy grants access to everyone; if that is not meant, remove the public statements (or turn on S3 Block Public Access: aws s3api put-public-access-block --bucket {} --public-access-block-configuration BlockPublicPolicy=true,RestrictPublicBuckets=true)",
                    self.bucket, self.bucket
                ),
            ),
            Ok(false) => ctx.detail("hygiene: the bucket's policy does not make it public"),
            // No policy at all is the common case, and not public.
            Err(code) if code == "NoSuchBucketPolicy" => ctx.detail("hygiene: the bucket has no policy"),
            Err(why) => ctx.detail(format!("hygiene: GetBucketPolicyStatus was not answered ({why})")),
        }
    }

    /// Without credentials, a refusal is about anonymous access, not about a key's rights.
    fn explain(&self, failure: Failure) -> Failure {
        match (&self.source, failure.class) {
            (Source::Anonymous, ErrorClass::PermissionDenied) => failure.with_hint(
                "the bucket does not allow anonymous listing: configure credentials (auth), or ask its owner to allow public s3:ListBucket",
            ),
            _ => failure,
        }
    }
}

/// Why a hygiene question was not answered: the service's error code (as the server's text,
/// scrubbed and cut), else the error's chain.
fn unanswered<E, R>(ctx: &ProbeContext, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match err.as_service_error().and_then(|e| e.code()) {
        Some(code) => ctx.server_text(code, 80),
        None => error_chain(err),
    }
}

fn is_auth_failure(class: ErrorClass) -> bool {
    matches!(
        class,
        ErrorClass::AuthRejected
            | ErrorClass::ConnectRefused
            | ErrorClass::Dns
            | ErrorClass::Network
            | ErrorClass::Timeout
            | ErrorClass::TlsUntrusted
            | ErrorClass::TlsHandshake
            | ErrorClass::Protocol
    )
}

/// The class of a failed ListObjectsV2, from the S3 error code or the transport error.
fn classify(err: &SdkError<ListObjectsV2Error>, configured_region: &str) -> Failure {
    if let Some(CarriedFailure(failure)) = find_cause::<CarriedFailure>(err) {
        return failure.clone();
    }
    if let SdkError::ServiceError(service) = err {
        let e = service.err();
        let code = e.code().unwrap_or("");
        let said = match e.message() {
            Some(message) => {
                format!("{} ({code})", crate::model::redact::excerpt(message, crate::model::redact::SERVER_TEXT_MAX))
            }
            None if code.is_empty() => "the server answered without an S3 error code".to_string(),
            None => format!("the server answered {code}"),
        };
        return match code {
            "InvalidAccessKeyId" | "NotSignedUp" => Failure::new(ErrorClass::AuthRejected, said).with_hint(
                "the access key id is unknown to this endpoint: check it, and that it belongs to this account",
            ),
            "SignatureDoesNotMatch" => Failure::new(ErrorClass::AuthRejected, said)
                .with_hint("the secret access key does not match the key id: check the secret"),
            "ExpiredToken" | "TokenRefreshRequired" | "InvalidToken" => Failure::new(ErrorClass::AuthRejected, said)
                .with_hint("the session token has expired: refresh the temporary credentials"),
            "AccessDenied" | "AllAccessDisabled" => Failure::new(ErrorClass::PermissionDenied, said)
                .with_hint("the credentials work but may not list this bucket: grant s3:ListBucket on it"),
            "NoSuchBucket" => Failure::new(ErrorClass::NotFound, said)
                .with_hint("the bucket does not exist: check `bucket` (and the endpoint)"),
            "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => {
                let region = service
                    .raw()
                    .headers()
                    .get("x-amz-bucket-region")
                    .map(str::to_string)
                    .unwrap_or_else(|| "(the response did not say)".into());
                Failure::new(
                    ErrorClass::UnexpectedResponse,
                    format!("{said}: the bucket is not in {configured_region}"),
                )
                .with_hint(format!("set region = \"{region}\""))
            }
            _ => {
                let status = service.raw().status().as_u16();
                let failure = |class| Failure::new(class, format!("HTTP {status}: {said}"));
                match status {
                    401 => failure(ErrorClass::AuthRejected),
                    403 => failure(ErrorClass::PermissionDenied),
                    404 => failure(ErrorClass::NotFound),
                    500..=599 => failure(ErrorClass::UnexpectedResponse)
                        .with_hint("the S3 endpoint failed with a server error: check its health and logs, then retry"),
                    _ => failure(ErrorClass::UnexpectedResponse).with_hint(
                        "the endpoint answered what S3 clients do not expect: check that `endpoint` is the S3 API, not a website or console",
                    ),
                }
            }
        };
    }
    if let SdkError::TimeoutError(_) = err {
        return Failure::new(ErrorClass::Timeout, "the S3 request timed out");
    }
    if let Some(tls) = find_cause::<rustls::Error>(err) {
        return Failure::new(ErrorClass::TlsHandshake, format!("TLS to the endpoint failed: {tls}"));
    }
    if let Some(io) = find_cause::<std::io::Error>(err) {
        return Failure::new(classify_io(io), format!("cannot reach the endpoint: {}", describe_io(io)));
    }
    if let SdkError::DispatchFailure(d) = err {
        if d.is_timeout() {
            return Failure::new(ErrorClass::Timeout, "the S3 request timed out");
        }
        if d.is_io() {
            return Failure::new(ErrorClass::Network, "cannot reach the endpoint");
        }
    }
    Failure::new(ErrorClass::Protocol, format!("S3 request failed: {}", error_chain(err)))
}

impl Probe for S3Probe {
    fn target(&self) -> String {
        let prefix = self.prefix.as_deref().unwrap_or("");
        match &self.endpoint {
            Some(ep) => format!("s3://{}/{prefix} @ {}", self.bucket, crate::model::redact::endpoint_for_display(ep)),
            None => format!("s3://{}/{prefix} ({})", self.bucket, self.region),
        }
    }

    fn stages(&self) -> Vec<Stage> {
        super::endpoint_stages(self.endpoint.as_deref().unwrap_or("https:"), true)
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(self.run_once(ctx))
    }

    /// A URL replaces `endpoint`; `host[:port]` keeps the endpoint's scheme (https for AWS).
    fn retarget(&self, target: &str) -> Result<Arc<dyn Probe>, String> {
        let endpoint = super::retarget_endpoint(self.endpoint.as_deref(), target)?;
        Ok(Arc::new(S3Probe { endpoint: Some(endpoint), ..self.clone() }))
    }
}

/// `check s3://bucket/prefix`: region, endpoint and profile from URL parameters; the
/// credentials as the AWS CLI finds them.
pub fn from_url(url: &Url, _opts: &UrlOptions, out: &mut UrlProbe) -> Result<(), String> {
    let UrlProbe { probe, .. } = out;
    probe.insert("bucket", literal(url.host_str().ok_or("the URL names no bucket")?));
    let prefix = url.path().trim_start_matches('/');
    if !prefix.is_empty() {
        probe.insert("prefix", literal(prefix));
    }
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "region" => probe.insert("region", literal(&value)),
            "endpoint" => probe.insert("endpoint", literal(&value)),
            "profile" => {
                let mut auth = Table::new();
                auth.insert("type", literal("profile"));
                auth.insert("profile", literal(&value));
                probe.insert("auth", Value::Table(auth));
            }
            other => {
                return Err(format!("unsupported URL parameter `{other}` (supported: region, endpoint, profile)"));
            }
        }
    }
    if probe.get("auth").is_none() {
        // The AWS CLI's order: environment variables when set, else the default chain.
        let source = if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() { "env" } else { "default_chain" };
        let mut auth = Table::new();
        auth.insert("type", literal(source));
        probe.insert("auth", Value::Table(auth));
    }
    Ok(())
}

/// `inspect s3://bucket/…`: where the probe's requests go, as an https URL: its `endpoint`
/// parameter, else AWS's virtual-hosted address for the bucket in `region` (us-east-1 when
/// not given).
pub fn inspect_endpoint(url: &Url) -> Result<Url, String> {
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    if let Some(raw) = param("endpoint") {
        let given = Url::parse(&raw).map_err(|e| format!("endpoint `{raw}` is not a URL: {e}"))?;
        if given.scheme() != "https" {
            return Err(format!("the endpoint {raw} does not use TLS: nothing to inspect"));
        }
        return Ok(given);
    }
    let bucket = url.host_str().ok_or("the URL names no bucket")?;
    let region = param("region").unwrap_or_else(|| "us-east-1".into());
    Url::parse(&format!("https://{bucket}.s3.{region}.amazonaws.com/")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    /// S3's answer to a request signed for the wrong region, as AWS sends it. No local S3
    /// server produces it (s3s-fs and moto accept any region), so this is the SDK's error
    /// built by hand.
    fn wrong_region(code: &str) -> SdkError<ListObjectsV2Error> {
        let metadata = ErrorMetadata::builder()
            .code(code)
            .message("The bucket you are attempting to access must be addressed using the specified endpoint.")
            .build();
        let mut raw = Response::new(StatusCode::try_from(301).unwrap(), SdkBody::empty());
        raw.headers_mut().insert("x-amz-bucket-region", "eu-west-1");
        SdkError::service_error(ListObjectsV2Error::generic(metadata), raw)
    }

    #[test]
    fn a_wrong_region_names_the_right_one() {
        for code in ["PermanentRedirect", "AuthorizationHeaderMalformed"] {
            let failure = classify(&wrong_region(code), "us-east-1");
            assert_eq!(failure.class, ErrorClass::UnexpectedResponse, "{code}");
            assert!(failure.message.contains("the bucket is not in us-east-1"), "{}", failure.message);
            assert_eq!(failure.hint.map(|h| h.to_string()).as_deref(), Some("set region = \"eu-west-1\""));
        }
    }
}
