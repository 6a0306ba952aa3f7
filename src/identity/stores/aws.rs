//! AWS Secrets Manager (`${aws-sm:SECRET_ID[#KEY]}`, `?stage=` for a version stage) and SSM
//! Parameter Store (`${aws-ssm:/NAME}`, SecureString decrypted): one signed JSON call each,
//! with the same credential sources as the `s3` kind.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, header};
use url::Url;

use crate::config::reader::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::httpc;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::identity::aws::creds::{Source, Sts};
use crate::identity::aws::sign::{Signer, sign_request};
use crate::model::error::{ErrorClass, Failure, Stage};

use super::{StoreRead, failure};

/// Which service.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Service {
    SecretsManager,
    Ssm,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "ssm",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Service::SecretsManager => "Secrets Manager",
            Service::Ssm => "SSM Parameter Store",
        }
    }
}

pub struct AwsStore {
    service: Service,
    region: Option<String>,
    endpoint: Option<Url>,
    source: Source,
    tls: TlsOptions,
}

impl AwsStore {
    /// The built-in `aws-sm` / `aws-ssm` store: region and endpoint from the environment as
    /// the AWS CLI reads them, credentials from the default chain.
    pub fn from_env(service: Service, env: &dyn Fn(&str) -> Option<String>) -> AwsStore {
        let specific = match service {
            Service::SecretsManager => "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            Service::Ssm => "AWS_ENDPOINT_URL_SSM",
        };
        AwsStore {
            service,
            region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).filter(|r| !r.is_empty()),
            endpoint: env(specific).or_else(|| env("AWS_ENDPOINT_URL")).and_then(|e| Url::parse(&e).ok()),
            source: Source::DefaultChain,
            tls: TlsOptions::default(),
        }
    }

    /// A `[[secret_store]]` table: `region`, `endpoint`, `auth` (as for `s3`), `tls`.
    pub fn from_table(
        service: Service,
        t: &TableReader<'_, '_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<AwsStore> {
        let mut store = AwsStore::from_env(service, env);
        if let Some(region) = t.string("region") {
            store.region = Some(region);
        }
        if t.has("endpoint") {
            store.endpoint = Some(t.url("endpoint")?);
        }
        if t.has("tls") {
            store.tls = TlsOptions::read(t, None)?;
        }
        if let Some(auth) = t.table("auth") {
            store.source = Source::read(&auth, false, "secret_store")?;
            auth.finish();
        }
        t.duration("timeout");
        Some(store)
    }

    /// Reads one secret (Secrets Manager: `SECRET_ID` with an optional `?stage=STAGE`) or
    /// parameter (SSM: its name).
    pub async fn read(&self, ctx: &ProbeContext, name: &str, reference: &str) -> Result<StoreRead, Failure> {
        let what = self.service.what();
        let region = self.region.as_deref().ok_or_else(|| {
            failure(
                ErrorClass::Config,
                format!("secret store `{name}` ({what}) has no region: AWS_REGION is not set"),
                "export AWS_REGION, or give the store a [[secret_store]] table with region",
            )
        })?;
        let url = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => Url::parse(&format!("https://{}.{region}.amazonaws.com/", self.service.signing_name()))
                .map_err(|e| failure(ErrorClass::Config, format!("secret store `{name}`: {e}"), ""))?,
        };
        let (target, body) = match self.service {
            Service::SecretsManager => {
                let (id, stage) = match reference.split_once("?stage=") {
                    Some((id, stage)) => (id, stage),
                    None => (reference, "AWSCURRENT"),
                };
                ("secretsmanager.GetSecretValue", serde_json::json!({ "SecretId": id, "VersionStage": stage }))
            }
            Service::Ssm => {
                ("AmazonSSM.GetParameter", serde_json::json!({ "Name": reference, "WithDecryption": true }))
            }
        };
        let sts =
            Sts { region, endpoint: self.endpoint.as_ref().map(|e| e.as_str().trim_end_matches('/')), tls: &self.tls };
        let at_store = |f: Failure| Failure {
            message: format!("secret store `{name}` ({what}, {}): {}", url.as_str().trim_end_matches('/'), f.message),
            ..f.at(Stage::Secret)
        };
        let credentials = self.source.resolve(ctx, &sts).await.map_err(at_store)?.ok_or_else(|| {
            failure(ErrorClass::Config, format!("secret store `{name}`: {what} needs credentials, not anonymous"), "")
        })?;
        // A SigV4 signature hands over nothing reusable (as for the s3 kind), so a plain
        // http:// endpoint (a local emulator) is allowed; the value then comes back in clear.
        if url.scheme() == "http" {
            ctx.detail(format!("secret store `{name}`: {what} over plain http:// (the answer is not encrypted)"));
        }
        let body = body.to_string();
        let mut headers = vec![
            (header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1")),
            (HeaderName::from_static("x-amz-target"), HeaderValue::from_static(target)),
        ];
        let signer =
            Signer { credentials: &credentials, region, service: self.service.signing_name(), now: SystemTime::now() };
        headers.extend(sign_request(&signer, &Method::POST, &url, &headers, body.as_bytes())?);
        let mut conn = httpc::connect(ctx, &url, &self.tls, Record::Quietly).await.map_err(at_store)?;
        let mut response = conn.send(Method::POST, &url, &headers, Bytes::from(body)).await.map_err(at_store)?;
        let status = response.status();
        let (bytes, _) = httpc::read_capped(response.body_mut(), 1024 * 1024).await.map_err(at_store)?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            return Err(self.refusal(ctx, name, reference, status, &answer, &String::from_utf8_lossy(&bytes)));
        }
        let value = match self.service {
            Service::SecretsManager => answer["SecretString"].as_str(),
            Service::Ssm => answer["Parameter"]["Value"].as_str(),
        };
        let Some(value) = value else {
            return Err(failure(
                ErrorClass::UnexpectedResponse,
                format!("secret store `{name}`: `{reference}` has no text value (a binary secret?)"),
                "authprobe reads SecretString values and String/SecureString parameters",
            ));
        };
        ctx.register_secret(value);
        ctx.detail(format!("secret store `{name}`: read `{reference}` from {what}"));
        // A JSON object's keys are the fields `#KEY` picks; the whole text is the value.
        let fields = serde_json::from_str::<serde_json::Value>(value)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for field in fields.values().filter_map(|v| v.as_str()) {
            ctx.register_secret(field);
        }
        Ok(StoreRead { fields, whole: Some(value.to_string()), lease: None })
    }

    /// AWS's JSON error (`__type`), classified.
    /// The error is JSON (`__type`, `message`) from AWS, and an XML `<Error>` from some
    /// front ends and emulators (moto's IAM check).
    fn refusal(
        &self,
        ctx: &ProbeContext,
        name: &str,
        reference: &str,
        status: http::StatusCode,
        answer: &serde_json::Value,
        text: &str,
    ) -> Failure {
        let json_code = answer["__type"].as_str().map(|c| c.rsplit('#').next().unwrap_or(c).to_string());
        let code = json_code.or_else(|| httpc::xml_element(text, "Code")).unwrap_or_default();
        let code = code.as_str();
        let said = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .map(str::to_string)
            .or_else(|| httpc::xml_element(text, "Message"))
            .map(|m| format!(": {}", ctx.server_text(&m, 300)))
            .unwrap_or_default();
        let message = format!("secret store `{name}` answered HTTP {status} for `{reference}` ({code}{said})");
        let (class, hint) = match code {
            "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => (
                ErrorClass::NotFound,
                "check the secret's name or ARN (and ?stage=), the parameter's full name, and the region",
            ),
            "AccessDeniedException" | "AccessDenied" => (
                ErrorClass::PermissionDenied,
                "grant the identity secretsmanager:GetSecretValue (or ssm:GetParameter, and kms:Decrypt for a SecureString's key) on it",
            ),
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "IncompleteSignature" => (
                ErrorClass::AuthRejected,
                "the AWS credentials were refused: check the access key, the secret key and the session token",
            ),
            _ => (ErrorClass::UnexpectedResponse, "see the service's answer"),
        };
        failure(class, message, hint)
    }
}
