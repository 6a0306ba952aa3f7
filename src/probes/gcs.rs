//! The `gcs` probe: lists at most one object of a Google Cloud Storage bucket. With a
//! Google identity (service-account key or metadata server; stage `token`) it uses the JSON
//! API with a bearer token; with HMAC interoperability keys, the XML API signed with
//! SigV4, as GCS's S3-compatible clients do. Stages: `dns`, `connect`, `tls`, [`token`],
//! `auth` (the request), `check`. Classes come from GCS's error answers.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use bytes::Bytes;
use http::{Method, StatusCode};
use url::Url;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::httpc;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::identity::cloud::CloudIdentity;
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::redact::Secret;
use crate::probes::Probe;

const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
const BODY_CAP: usize = 64 * 1024;
const AUTH_TYPES: &[&str] = &["gcp_service_account", "gcp_metadata", "hmac", "anonymous"];
/// The segment encoding of a bucket or object name in a JSON API path.
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[derive(Debug, Clone)]
enum Auth {
    Google(CloudIdentity),
    Hmac { access_id: String, secret: Secret },
    Anonymous,
}

#[derive(Debug, Clone)]
pub struct GcsProbe {
    bucket: String,
    prefix: Option<String>,
    endpoint: String,
    auth: Auth,
    tls: TlsOptions,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    let bucket = t.required_string("bucket", "the bucket to list");
    let prefix = t.string("prefix");
    let endpoint = t.url("endpoint").map(|u| u.as_str().trim_end_matches('/').to_string());
    let endpoint_ok = endpoint.is_some() || !t.has("endpoint");
    let auth = read_auth(t);
    let tls = TlsOptions::read(t, None);
    if !endpoint_ok {
        return None;
    }
    Some(Arc::new(GcsProbe {
        bucket: bucket?,
        prefix,
        endpoint: endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
        auth: auth?,
        tls: tls?,
    }))
}

fn read_auth(t: &TableReader<'_, '_>) -> Option<Auth> {
    let Some(a) = t.table("auth") else {
        t.required_string(
            "auth",
            "a table: { type = \"gcp_service_account\" | \"gcp_metadata\" | \"hmac\" | \"anonymous\" }",
        );
        return None;
    };
    let auth_type = a.required_string("type", &AUTH_TYPES.join(" | "))?;
    let auth = match auth_type.as_str() {
        google @ ("gcp_service_account" | "gcp_metadata") => {
            crate::identity::cloud::read(&a, google, None).map(Auth::Google)
        }
        "hmac" => {
            let access_id = a.required_string("access_id", "the HMAC key's access id (GOOG1…)");
            let secret = a.required_secret("secret", "the HMAC key's secret");
            Some(Auth::Hmac { access_id: access_id?, secret: secret? })
        }
        "anonymous" => Some(Auth::Anonymous),
        other => {
            let hint = crate::config::reader::did_you_mean(other, AUTH_TYPES)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_else(|| format!("; use one of: {}", AUTH_TYPES.join(", ")));
            a.error_at("type", format!("unknown gcs auth type `{other}`{hint}"));
            return None;
        }
    };
    a.finish();
    auth
}

/// What a refusal was: GCS's code or reason and its message.
struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
}

impl GcsProbe {
    /// The JSON API's objects.list, or for HMAC keys the XML API's ListObjectsV2.
    fn list_url(&self) -> Result<Url, Failure> {
        let bucket = percent_encoding::utf8_percent_encode(&self.bucket, PATH_SEGMENT);
        let (path, count, prefix_name) = match self.auth {
            Auth::Hmac { .. } => (format!("/{bucket}"), "max-keys", "prefix"),
            _ => (format!("/storage/v1/b/{bucket}/o"), "maxResults", "prefix"),
        };
        let mut url = Url::parse(&format!("{}{path}", self.endpoint))
            .map_err(|e| Failure::new(ErrorClass::Config, format!("the bucket URL is invalid: {e}")))?;
        if let Auth::Hmac { .. } = self.auth {
            url.query_pairs_mut().append_pair("list-type", "2");
        }
        url.query_pairs_mut().append_pair(count, "1");
        if let Some(prefix) = &self.prefix {
            url.query_pairs_mut().append_pair(prefix_name, prefix);
        }
        Ok(url)
    }

    fn describe_auth(&self) -> String {
        match &self.auth {
            Auth::Google(CloudIdentity::GcpMetadata { .. }) => "metadata server".into(),
            Auth::Google(_) => "service-account key".into(),
            Auth::Hmac { access_id, .. } => {
                format!("HMAC key {}…", access_id.chars().take(8).collect::<String>())
            }
            Auth::Anonymous => "anonymous".into(),
        }
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        let url = self.list_url()?;
        let mut conn = httpc::connect(ctx, &url, &self.tls, Record::Stages).await?;
        ctx.detail(format!("credentials: {}", self.describe_auth()));
        let mut headers = Vec::new();
        match &self.auth {
            Auth::Google(identity) => {
                // The credential release rule: a bearer token goes to http:// only with consent.
                ctx.release_over_plain_http(&url, "the access token").map_err(|f| ctx.fail_before(Stage::Auth, f))?;
                let proof = conn
                    .release(ctx, &url, "the access token", ctx.consent())
                    .map_err(|f| ctx.fail_before(Stage::Auth, f))?;
                let token = ctx.stage(Stage::Token, identity.token(ctx)).await?;
                headers.push((
                    http::header::AUTHORIZATION,
                    httpc::sensitive_header(&format!("Bearer {}", token.release(&proof)))?,
                ));
            }
            Auth::Hmac { access_id, secret } => {
                let credentials = Credentials::new(access_id, secret.for_proof(), None, None, "authprobe-gcs-hmac");
                // GCS takes any region in the scope of an interoperability signature; "auto" is its own.
                let signer = crate::identity::aws::sign::Signer {
                    credentials: &credentials,
                    region: "auto",
                    service: "s3",
                    now: SystemTime::now(),
                };
                headers.extend(crate::identity::aws::sign::sign_request(&signer, &Method::GET, &url, &headers, &[])?);
            }
            Auth::Anonymous => {}
        }
        let outcome = ctx
            .stage(Stage::Auth, async {
                let mut response = conn.send(Method::GET, &url, &headers, Bytes::new()).await?;
                ctx.diagnostic(httpc::describe_response(ctx, &Method::GET, &url, &response));
                let status = response.status();
                let (body, _) = httpc::read_capped(response.body_mut(), BODY_CAP).await?;
                if status.is_success() {
                    return Ok(Ok(body));
                }
                let failure = self.classify(ctx, refusal(status, &body));
                if failure.class == ErrorClass::AuthRejected { Err(failure) } else { Ok(Err(failure)) }
            })
            .await?;
        ctx.stage(Stage::Check, async {
            let body = outcome?;
            let seen = match self.auth {
                Auth::Hmac { .. } => {
                    let text = String::from_utf8_lossy(&body);
                    if !text.contains("<ListBucketResult") {
                        return Err(not_gcs());
                    }
                    text.matches("<Contents>").count()
                }
                _ => {
                    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| not_gcs())?;
                    if json["kind"] != "storage#objects" {
                        return Err(not_gcs());
                    }
                    json["items"].as_array().map_or(0, Vec::len)
                }
            };
            ctx.detail(format!("objects seen: {seen}"));
            if ctx.hygiene.enabled && matches!(self.auth, Auth::Google(_)) {
                self.note_public_access(ctx, &mut conn, &headers).await;
            }
            Ok(())
        })
        .await
    }

    /// Credential hygiene, read-only, one request on the same connection: whether the
    /// bucket's IAM policy grants anything to `allUsers` or `allAuthenticatedUsers`.
    async fn note_public_access(
        &self,
        ctx: &ProbeContext,
        conn: &mut httpc::Connection,
        headers: &[(http::HeaderName, http::HeaderValue)],
    ) {
        let bucket = percent_encoding::utf8_percent_encode(&self.bucket, PATH_SEGMENT);
        let Ok(url) = Url::parse(&format!("{}/storage/v1/b/{bucket}/iam", self.endpoint)) else { return };
        let answer = async {
            let mut response = conn.send(Method::GET, &url, headers, Bytes::new()).await?;
            let status = response.status();
            let (body, _) = httpc::read_capped(response.body_mut(), BODY_CAP).await?;
            Ok::<_, Failure>((status, body))
        };
        let (status, body) = match answer.await {
            Ok(answer) => answer,
            Err(failure) => {
                return ctx.detail(format!("hygiene: the bucket's IAM policy was not read: {}", failure.message));
            }
        };
        if !status.is_success() {
            let Refusal { code, .. } = refusal(status, &body);
            return ctx.detail(format!(
                "hygiene: the bucket's IAM policy was not read (HTTP {status} {}): grant storage.buckets.getIamPolicy to learn whether it is public",
                ctx.server_text(&code, 80)
            ));
        }
        let policy: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let public: Vec<String> = policy["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| {
                b["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| matches!(m.as_str(), Some("allUsers" | "allAuthenticatedUsers"))))
            })
            .filter_map(|b| b["role"].as_str().map(|role| ctx.server_text(role, 80)))
            .collect();
        if public.is_empty() {
            return ctx.detail("hygiene: the bucket's IAM policy grants nothing to allUsers or allAuthenticatedUsers");
        }
        ctx.note_warning(
            "gcs_bucket_public",
            format!(
                "bucket {} is public: its IAM policy grants {} to allUsers or allAuthenticatedUsers; if that is not meant, remove those members (gcloud storage buckets remove-iam-policy-binding gs://{} --member=allUsers --role=ROLE) or enforce public access prevention",
                self.bucket,
                public.join(", "),
                self.bucket
            ),
        );
    }

    fn classify(&self, ctx: &ProbeContext, refusal: Refusal) -> Failure {
        let Refusal { status, code, message } = refusal;
        let said = if message.is_empty() { String::new() } else { format!(": {}", ctx.server_text(&message, 240)) };
        let what = format!("HTTP {status} {code}{said}");
        let (class, hint) = match (status.as_u16(), code.as_str()) {
            (_, "SignatureDoesNotMatch" | "InvalidSecurity") => (
                ErrorClass::AuthRejected,
                "the HMAC signature was refused: check the secret (shown once, when the key was created)".to_string(),
            ),
            (_, "InvalidAccessKeyId") => (
                ErrorClass::AuthRejected,
                "the HMAC access id is unknown: the key may be deleted or inactive (gcloud storage hmac list)".to_string(),
            ),
            (401, _) if matches!(self.auth, Auth::Anonymous) => (
                ErrorClass::PermissionDenied,
                "the bucket does not allow anonymous listing (allUsers has no storage.objects.list): use credentials".to_string(),
            ),
            (401, _) => (
                ErrorClass::AuthRejected,
                "the token was refused: it must be an OAuth2 access token (not an ID token) with a storage or cloud-platform scope".to_string(),
            ),
            (403, _) | (_, "AccessDenied") => (
                ErrorClass::PermissionDenied,
                format!(
                    "the identity authenticated but may not list `{}`: grant it roles/storage.objectViewer on the bucket (GCS also says this for buckets that do not exist)",
                    self.bucket
                ),
            ),
            (404, _) | (_, "NoSuchBucket") => {
                (ErrorClass::NotFound, format!("the credentials work, but bucket `{}` does not exist", self.bucket))
            }
            _ => (ErrorClass::UnexpectedResponse, "GCS refused the listing; see its code and message".to_string()),
        };
        let stage = if class == ErrorClass::AuthRejected { Stage::Auth } else { Stage::Check };
        Failure::new(class, what).with_hint(hint).at(stage)
    }
}

fn not_gcs() -> Failure {
    Failure::new(ErrorClass::UnexpectedResponse, "the answer is not a GCS object listing")
        .with_hint("check `endpoint`: this does not look like Google Cloud Storage")
}

/// GCS's JSON error (`error.errors[0].reason`, `error.message`) or XML error (`Code`,
/// `Message`).
/// Reads an error body as the probe does (for fuzzing the reader).
pub fn read_refusal(body: &[u8]) {
    let _ = refusal(StatusCode::FORBIDDEN, body);
}

fn refusal(status: StatusCode, body: &[u8]) -> Refusal {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let error = &json["error"];
        return Refusal {
            status,
            code: error["errors"][0]["reason"].as_str().unwrap_or_default().to_string(),
            message: error["message"].as_str().unwrap_or_default().to_string(),
        };
    }
    let text = String::from_utf8_lossy(body);
    Refusal {
        status,
        code: httpc::xml_element(&text, "Code").unwrap_or_default(),
        message: httpc::xml_element(&text, "Message").unwrap_or_default(),
    }
}

impl Probe for GcsProbe {
    fn target(&self) -> String {
        let at = if self.endpoint == DEFAULT_ENDPOINT {
            String::new()
        } else {
            format!(" @ {}", crate::model::redact::endpoint_for_display(&self.endpoint))
        };
        format!("gs://{}/{}{at}", self.bucket, self.prefix.as_deref().unwrap_or(""))
    }

    fn stages(&self) -> Vec<Stage> {
        super::endpoint_stages(&self.endpoint, matches!(self.auth, Auth::Google(_)))
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> super::ProbeFuture<'a> {
        Box::pin(self.run_once(ctx))
    }

    fn retarget(&self, target: &str) -> Result<Arc<dyn Probe>, String> {
        let endpoint = super::retarget_endpoint(Some(&self.endpoint), target)?;
        Ok(Arc::new(GcsProbe { endpoint, ..self.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcs_json_and_xml_errors_are_read() {
        let json = br#"{"error":{"code":403,"message":"x does not have storage.objects.list access","errors":[{"reason":"forbidden"}]}}"#;
        let r = refusal(StatusCode::FORBIDDEN, json);
        assert_eq!((r.code.as_str(), r.message.as_str()), ("forbidden", "x does not have storage.objects.list access"));
        let xml = b"<?xml version='1.0'?><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>";
        let r = refusal(StatusCode::FORBIDDEN, xml);
        assert_eq!((r.code.as_str(), r.message.as_str()), ("SignatureDoesNotMatch", "no"));
    }
}
