//! AWS credential sources, shared by everything that signs with AWS keys (the s3 kind, the
//! `aws_sigv4` HTTP auth, RDS IAM tokens): static keys, a profile, the environment, the
//! default chain, an assumed role, a web identity (Kubernetes service-account roles), or
//! none. STS calls go through authprobe's own connections (its TLS checks and tunnels).

use std::path::PathBuf;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::config::Region;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::identity::aws::http as aws_http;
use crate::model::error::{ErrorClass, Failure};
use crate::model::redact::{self, Secret};

/// Where credentials come from.
#[derive(Debug, Clone)]
pub enum Source {
    Static {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    Profile(String),
    Env,
    DefaultChain,
    AssumeRole {
        role_arn: String,
        external_id: Option<Secret>,
        session_name: String,
        source: Box<Source>,
    },
    /// AssumeRoleWithWebIdentity with the token in a file, read at each attempt (Kubernetes
    /// rotates it).
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
        session_name: String,
        /// A regional or VPC STS endpoint (or a local one) instead of the default.
        sts_endpoint: Option<String>,
    },
    Anonymous,
}

/// Where STS is, for the sources that call it.
pub struct Sts<'a> {
    pub region: &'a str,
    /// An S3-compatible server that also speaks STS (moto) takes both on one endpoint.
    pub endpoint: Option<&'a str>,
    pub tls: &'a TlsOptions,
}

pub const AUTH_TYPES: &[&str] =
    &["static", "profile", "env", "default_chain", "assume_role", "web_identity", "anonymous"];

/// An access key id is not a secret, but only its start is needed to recognise it.
fn key_id_hint(id: &str) -> String {
    let shown: String = id.chars().take(8).collect();
    format!("{shown}…")
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Static { access_key_id, .. } => format!("static key {}", key_id_hint(access_key_id)),
            Source::Profile(name) => format!("profile {name}"),
            Source::Env => "environment (AWS_ACCESS_KEY_ID)".into(),
            Source::DefaultChain => "default chain".into(),
            Source::AssumeRole { role_arn, source, .. } => {
                format!("assumed role {role_arn} (via {})", source.describe())
            }
            Source::WebIdentity { role_arn, token_file, .. } => {
                format!("web identity {role_arn} (token {})", token_file.display())
            }
            Source::Anonymous => "anonymous".into(),
        }
    }

    /// Reads an auth table whose `type` is one of [`AUTH_TYPES`]; `kind` names the
    /// table's owner in errors ("S3", "aws_sigv4").
    pub fn read(a: &TableReader<'_, '_>, nested: bool, kind: &str) -> Option<Source> {
        let what = AUTH_TYPES.join(" | ");
        let auth_type = a.required_string("type", &what)?;
        match auth_type.as_str() {
            "static" => {
                let id = a.required_string("access_key_id", "the access key id");
                let secret = a.required_secret("secret_access_key", "the secret access key");
                let token = a.secret("session_token");
                Some(Source::Static { access_key_id: id?, secret_access_key: secret?, session_token: token })
            }
            "profile" => a.required_string("profile", "the profile name in ~/.aws/config").map(Source::Profile),
            "env" => Some(Source::Env),
            "default_chain" => Some(Source::DefaultChain),
            "anonymous" => Some(Source::Anonymous),
            "web_identity" => {
                let role_arn = a.required_string("role_arn", "the role to assume");
                let token_file = match a.path("token_file") {
                    Some(p) => Some(p),
                    None if a.has("token_file") => None,
                    None => {
                        a.required_string(
                            "token_file",
                            "the web identity token file (e.g. AWS_WEB_IDENTITY_TOKEN_FILE's)",
                        );
                        None
                    }
                };
                let session_name = a.string("session_name").unwrap_or_else(|| "authprobe".into());
                let sts_endpoint = a.url("sts_endpoint").map(|u| u.as_str().trim_end_matches('/').to_string());
                if sts_endpoint.is_none() && a.has("sts_endpoint") {
                    return None;
                }
                Some(Source::WebIdentity { role_arn: role_arn?, token_file: token_file?, session_name, sts_endpoint })
            }
            "assume_role" if !nested => {
                let role_arn = a.required_string("role_arn", "the role to assume");
                let external_id = a.secret("external_id");
                let session_name = a.string("session_name").unwrap_or_else(|| "authprobe".into());
                let source = match a.table("source") {
                    Some(inner) => {
                        let s = Source::read(&inner, true, kind);
                        if s.is_some() {
                            inner.finish();
                        }
                        s
                    }
                    None => (!a.has("source")).then_some(Source::DefaultChain),
                };
                Some(Source::AssumeRole { role_arn: role_arn?, external_id, session_name, source: Box::new(source?) })
            }
            "assume_role" => {
                a.error_at(
                    "type",
                    "the source of an assume_role cannot itself be assume_role: use static, profile, env, default_chain, web_identity or anonymous",
                );
                None
            }
            other => {
                let hint = crate::config::reader::did_you_mean(other, AUTH_TYPES)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!("; use one of: {}", AUTH_TYPES.join(", ")));
                a.error_at("type", format!("unknown {kind} auth type `{other}`{hint}"));
                None
            }
        }
    }

    /// The SDK provider for this source; `None` for anonymous.
    pub async fn provider(
        &self,
        ctx: &ProbeContext,
        sts: &Sts<'_>,
    ) -> Result<Option<SharedCredentialsProvider>, Failure> {
        let region = Region::new(sts.region.to_string());
        Ok(Some(match self {
            Source::Anonymous => return Ok(None),
            Source::Static { access_key_id, secret_access_key, session_token } => {
                // The secret key only signs. The session token travels beside each
                // signature, and is worth nothing without the key that made it.
                SharedCredentialsProvider::new(Credentials::new(
                    access_key_id,
                    secret_access_key.for_proof(),
                    session_token.as_ref().map(|t| t.for_proof().to_string()),
                    None,
                    "authprobe-static",
                ))
            }
            Source::Env => {
                SharedCredentialsProvider::new(aws_config::environment::EnvironmentVariableCredentialsProvider::new())
            }
            Source::Profile(name) => SharedCredentialsProvider::new(
                aws_config::profile::ProfileFileCredentialsProvider::builder().profile_name(name).build(),
            ),
            Source::DefaultChain => {
                // One short metadata attempt, so that a machine outside a cloud fails fast.
                let imds = aws_config::imds::Client::builder()
                    .max_attempts(1)
                    .connect_timeout(Duration::from_millis(500))
                    .read_timeout(Duration::from_millis(500))
                    .build();
                SharedCredentialsProvider::new(
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(region.clone())
                        .imds_client(imds)
                        .build()
                        .await,
                )
            }
            Source::AssumeRole { role_arn, external_id, session_name, source } => {
                let base = Box::pin(source.provider(ctx, sts)).await?.ok_or_else(|| {
                    Failure::new(ErrorClass::Config, "assume_role needs credentials to call STS with, not anonymous")
                })?;
                let sdk = sts_config(ctx, sts).credentials_provider(base.clone()).load().await;
                let mut builder = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                    .session_name(session_name)
                    .region(region.clone())
                    .configure(&sdk);
                if let Some(id) = external_id {
                    // Inside the signed AssumeRole request; AWS calls it an identifier, not a
                    // secret, and it is kept as one only so that reports do not show it.
                    builder = builder.external_id(id.for_proof());
                }
                SharedCredentialsProvider::new(builder.build_from_provider(base).await)
            }
            Source::WebIdentity { role_arn, token_file, session_name, sts_endpoint } => {
                let sts = Sts { endpoint: sts_endpoint.as_deref().or(sts.endpoint), ..*sts };
                let credentials = web_identity(ctx, &sts, role_arn, token_file, session_name).await?;
                SharedCredentialsProvider::new(credentials)
            }
        }))
    }

    /// The credentials themselves (secrets registered), or `None` for anonymous. Resolved
    /// once: an assumed role or the default chain is not asked again by whoever signs.
    pub async fn resolve(&self, ctx: &ProbeContext, sts: &Sts<'_>) -> Result<Option<Credentials>, Failure> {
        let Some(provider) = self.provider(ctx, sts).await? else {
            return Ok(None);
        };
        let creds = provider.provide_credentials().await.map_err(|e| self.failure(&e))?;
        // The config's own keys are registered process-wide already; what STS, SSO or a
        // metadata service issued belongs to this probe.
        ctx.register_secret(creds.secret_access_key());
        if let Some(token) = creds.session_token() {
            ctx.register_secret(token);
        }
        if let Some(Ok(ends)) = creds.expiry().map(|at| at.duration_since(std::time::UNIX_EPOCH)) {
            // Just issued (or cached by the SDK): listed, not warned about.
            let now = crate::model::expiry::now_unix();
            let _ = ctx.note_expiry("the temporary AWS credentials", ends.as_secs() as i64, Some(now), None);
        }
        Ok(Some(creds))
    }

    fn failure(&self, err: &aws_credential_types::provider::error::CredentialsError) -> Failure {
        let why = error_chain(err);
        let hint = match self {
            Source::DefaultChain => {
                "the default chain tried environment variables, the shared config/credentials files, web identity, ECS and the instance metadata service: configure one, or set auth explicitly"
                    .to_string()
            }
            Source::Profile(name) => {
                format!("check profile `{name}` in ~/.aws/config and ~/.aws/credentials (or AWS_CONFIG_FILE)")
            }
            Source::Env => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            Source::AssumeRole { .. } => {
                "the role could not be assumed: check role_arn, its trust policy, external_id, and the base credentials"
                    .into()
            }
            _ => "check the configured credentials".into(),
        };
        let class = if matches!(self, Source::AssumeRole { .. }) && assume_role_code(err) == Some("AccessDenied") {
            ErrorClass::PermissionDenied
        } else if matches!(self, Source::AssumeRole { .. }) {
            ErrorClass::AuthRejected
        } else {
            ErrorClass::Config
        };
        Failure::new(class, format!("no credentials from {}: {why}", self.describe())).with_hint(hint)
    }
}

/// An SDK config whose STS calls go through the probe's connections, quietly (inside the
/// token stage), with no SDK timeouts (the runner's bounds the probe).
fn sts_config(ctx: &ProbeContext, sts: &Sts<'_>) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(sts.region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::disabled())
        .http_client(aws_http::client(ctx, sts.tls, Record::Quietly));
    if let Some(endpoint) = sts.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader
}

/// AssumeRoleWithWebIdentity: unsigned, the token file is the credential.
async fn web_identity(
    ctx: &ProbeContext,
    sts: &Sts<'_>,
    role_arn: &str,
    token_file: &std::path::Path,
    session_name: &str,
) -> Result<Credentials, Failure> {
    let token = crate::config::secrets::read_text_capped(token_file, 64 * 1024).map_err(|err| {
        Failure::new(
            ErrorClass::Config,
            format!("cannot read the web identity token {}: {}", token_file.display(), crate::model::error::describe_io(&err)),
        )
        .with_hint("on Kubernetes the token is projected into the pod (AWS_WEB_IDENTITY_TOKEN_FILE); check the service account's eks.amazonaws.com/role-arn annotation")
    })?;
    let token = token.trim().to_string();
    redact::register(&token);
    let sdk = sts_config(ctx, sts).no_credentials().load().await;
    let client = aws_sdk_sts::Client::new(&sdk);
    let answer = client
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .web_identity_token(&token)
        .send()
        .await
        .map_err(|err| web_identity_failure(&err, role_arn))?;
    let Some(c) = answer.credentials() else {
        return Err(Failure::new(ErrorClass::Protocol, "STS answered AssumeRoleWithWebIdentity without credentials"));
    };
    ctx.register_secret(c.secret_access_key());
    ctx.register_secret(c.session_token());
    ctx.diagnostic(format!("sts: assumed {role_arn} with a web identity, credentials until {}", c.expiration()));
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "authprobe-web-identity",
    ))
}

fn web_identity_failure<E, R>(err: &aws_sdk_sts::error::SdkError<E, R>, role_arn: &str) -> Failure
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_sts::error::ProvideErrorMetadata;
    let code = err.code().unwrap_or_default().to_string();
    let said = err.message().map(|m| format!(": {m}")).unwrap_or_default();
    let text = format!("STS refused AssumeRoleWithWebIdentity for {role_arn} ({code}){said}");
    match code.as_str() {
        "InvalidIdentityToken" | "ExpiredTokenException" | "IDPRejectedClaim" => Failure::new(ErrorClass::AuthRejected, text)
            .with_hint("the token was refused: check that the cluster's OIDC provider is registered in IAM and the token is current"),
        "AccessDenied" => Failure::new(ErrorClass::PermissionDenied, text)
            .with_hint("the role's trust policy does not admit this identity: check its sts:AssumeRoleWithWebIdentity condition (aud, sub)"),
        "" => Failure::new(ErrorClass::Network, format!("cannot reach STS: {}", error_chain(err))),
        _ => Failure::new(ErrorClass::UnexpectedResponse, text),
    }
}

/// The error code STS answered an AssumeRole with, found in the typed cause the credential
/// provider wraps (the provider's own text is not a contract).
fn assume_role_code(err: &aws_credential_types::provider::error::CredentialsError) -> Option<&str> {
    use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    let sdk = crate::model::error::find_cause::<SdkError<AssumeRoleError>>(err)?;
    sdk.as_service_error()?.code()
}

/// An SDK error with its causes, on one line: the SDK's top-level text alone rarely says
/// what happened, and the default chain lists what it tried one provider per line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join("; ").replace(":;", ":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assume_role_refusal_is_classified_from_its_sts_code() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_sts::error::{ErrorMetadata, SdkError};
        use aws_sdk_sts::operation::assume_role::AssumeRoleError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        let refusal = |code: &str| {
            let status = StatusCode::try_from(403).unwrap();
            let service = AssumeRoleError::generic(ErrorMetadata::builder().code(code).message("no").build());
            CredentialsError::provider_error(SdkError::service_error(service, Response::new(status, SdkBody::empty())))
        };
        let source = Source::AssumeRole {
            role_arn: "arn:aws:iam::1:role/r".into(),
            external_id: None,
            session_name: "s".into(),
            source: Box::new(Source::DefaultChain),
        };
        assert_eq!(source.failure(&refusal("AccessDenied")).class, ErrorClass::PermissionDenied);
        assert_eq!(source.failure(&refusal("InvalidClientTokenId")).class, ErrorClass::AuthRejected);
        // The code in text only (a message quoting it) decides nothing.
        let text_only = CredentialsError::provider_error(std::io::Error::other("AccessDenied"));
        assert_eq!(source.failure(&text_only).class, ErrorClass::AuthRejected);
    }

    #[test]
    fn the_default_chains_report_is_one_line() {
        let err = std::io::Error::other(
            "no credentials found in chain. Attempted:\n  Environment: not set\n  Profile: not enabled\n",
        );
        assert_eq!(
            error_chain(&err),
            "no credentials found in chain. Attempted: Environment: not set; Profile: not enabled"
        );
    }
}
