//! Tokens from cloud identities, fetched in the `token` stage: Google service-account keys
//! (a signed JWT exchanged for an access or ID token), the GCP metadata server (workload
//! identity), Azure managed identity (IMDS) and Entra ID client secrets. The token is
//! registered as a secret before anything can print it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use url::Url;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::httpc;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::identity::oauth2::{self, ClientAuth, Grant, TokenRequest};
use crate::model::error::{ErrorClass, Failure};
use crate::model::redact::{self, Secret};

const GOOGLE_DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GCP_METADATA: &str = "http://metadata.google.internal";
const AZURE_IMDS: &str = "http://169.254.169.254";
const AZURE_AUTHORITY: &str = "https://login.microsoftonline.com";
/// A metadata server answers at once inside its cloud; outside, nothing answers at all.
const METADATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_CAP: usize = 64 * 1024;
/// What a tenant id may contain unescaped in a URL path (RFC 3986 unreserved).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What a Google token is for: API calls (an access token with scopes) or a service that
/// checks identity (an ID token for one audience).
#[derive(Debug, Clone)]
pub enum GoogleToken {
    Access { scopes: Vec<String> },
    Id { audience: String },
}

/// A service account's JSON key file: the fields the JWT-bearer grant needs.
pub struct ServiceAccount {
    pub client_email: String,
    pub key_id: String,
    pub token_uri: Url,
    /// Where Google publishes the account's public keys as certificates
    /// (`client_x509_cert_url`): each key's certificate starts when the key was made.
    pub cert_url: Option<Url>,
    key: aws_lc_rs::signature::RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount").field("client_email", &self.client_email).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
    client_x509_cert_url: Option<String>,
}

impl ServiceAccount {
    /// Parses a key file; the error says what is wrong without quoting the file.
    pub fn parse(json: &[u8]) -> Result<ServiceAccount, String> {
        let file: KeyFile =
            serde_json::from_slice(json).map_err(|e| format!("not a service-account key file (invalid JSON: {e})"))?;
        if let Some(pem) = &file.private_key {
            redact::register(pem);
        }
        match file.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(format!(
                    "a `{other}` credential file, not a service-account key (type = \"service_account\")"
                ));
            }
            None => return Err("not a service-account key file (no `type`)".into()),
        }
        let missing = |field: &str| format!("the key file has no `{field}`");
        let client_email = file.client_email.ok_or_else(|| missing("client_email"))?;
        let key_id = file.private_key_id.ok_or_else(|| missing("private_key_id"))?;
        let pem = file.private_key.ok_or_else(|| missing("private_key"))?;
        let token_uri = file.token_uri.unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        let token_uri = Url::parse(&token_uri).map_err(|e| format!("its token_uri is not a URL: {e}"))?;
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("its private_key is not a PEM private key ({e})"))?;
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.secret_der())
            .map_err(|e| format!("its private_key is not an RSA key ({e})"))?;
        let cert_url = file.client_x509_cert_url.and_then(|u| Url::parse(&u).ok());
        Ok(ServiceAccount { client_email, key_id, token_uri, cert_url, key })
    }

    /// Credential hygiene: the key's age (and end, when it has one) from the certificate
    /// Google publishes for it, a public document (nothing secret is sent). A page that
    /// does not answer, or does not list this key, says nothing.
    pub async fn note_key_age(&self, ctx: &ProbeContext) {
        let Some(url) = &self.cert_url else { return };
        let fetched = async {
            let mut conn = httpc::connect(ctx, url, &TlsOptions::default(), Record::Quietly).await?;
            let mut response = conn.send(Method::GET, url, &[], Bytes::new()).await?;
            let status = response.status();
            let (body, _) = httpc::read_capped(response.body_mut(), BODY_CAP).await?;
            Ok::<_, Failure>((status, body))
        };
        let body = match fetched.await {
            Ok((status, body)) if status.is_success() => body,
            Ok((status, _)) => {
                return ctx.detail(format!("hygiene: the key's certificate page answered HTTP {status}"));
            }
            Err(failure) => return ctx.detail(format!("hygiene: the key's certificate page: {}", failure.message)),
        };
        let Some((not_before, not_after)) = key_certificate_validity(&body, &self.key_id) else {
            return ctx.detail("hygiene: the certificate page does not list this key");
        };
        let what = format!("the service-account key …{}", last_chars(&self.key_id, 4));
        ctx.note_age(
            &what,
            not_before,
            &format!(
                "create a new key (gcloud iam service-accounts keys create NEW.json --iam-account {}), move the probe and its users to it, then delete this one (gcloud iam service-accounts keys delete KEY_ID --iam-account {})",
                self.client_email, self.client_email
            ),
        );
        // Google writes "never" as the year 9999.
        if not_after < NEVER_EXPIRES {
            let _ = ctx.note_expiry(&what, not_after, Some(not_before), None);
        }
    }

    /// The signed assertion (RFC 7523) Google exchanges for a token: RS256, one hour.
    pub fn assertion(&self, token: &GoogleToken, now: SystemTime) -> Result<String, Failure> {
        let iat = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.key_id});
        let mut claims = serde_json::json!({
            "iss": self.client_email,
            "aud": self.token_uri.as_str(),
            "iat": iat,
            "exp": iat + 3600,
        });
        match token {
            GoogleToken::Access { scopes } => claims["scope"] = scopes.join(" ").into(),
            GoogleToken::Id { audience } => claims["target_audience"] = audience.as_str().into(),
        }
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let signed = format!("{}.{}", b64(&header), b64(&claims));
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Failure::internal("signing the service-account assertion failed"))?;
        let assertion = format!("{signed}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature));
        redact::register(&assertion);
        Ok(assertion)
    }
}

/// A cloud identity that yields a bearer token.
#[derive(Debug, Clone)]
pub enum CloudIdentity {
    /// Google's token endpoint, via oauth2 with the JWT-bearer grant; Entra ID, via oauth2
    /// with client credentials.
    OAuth2(TokenRequest),
    GcpMetadata {
        endpoint: Url,
        account: String,
        token: GoogleToken,
    },
    AzureManagedIdentity {
        endpoint: Url,
        resource: String,
        client_id: Option<String>,
    },
}

/// The auth types this module reads, for the kinds' own lists.
pub const AUTH_TYPES: &[&str] = &[
    "gcp_service_account",
    "gcp_metadata",
    "azure_managed_identity",
    "azure_client_secret",
    "azure_workload_identity",
];

/// A key, else the environment variable the Azure workload identity webhook sets in the pod.
fn key_or_env(a: &TableReader<'_, '_>, key: &'static str, variable: &str, what: &str) -> Option<String> {
    if a.has(key) {
        return a.string(key);
    }
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            a.error_here(format!("set `{key}` ({what}), or run where {variable} is set (the workload identity webhook sets it in the pod)"));
            None
        }
    }
}

fn entra_token_url(authority: &Url, tenant: &str) -> Option<Url> {
    authority.join(&format!("{}/oauth2/v2.0/token", percent_encoding::utf8_percent_encode(tenant, PATH_SEGMENT))).ok()
}

fn google_token(a: &TableReader<'_, '_>) -> Option<GoogleToken> {
    let audience = a.string("audience");
    let scopes = a.string_list("scopes");
    match (audience, scopes) {
        (Some(_), Some(_)) => {
            a.error_here("set `scopes` (an access token) or `audience` (an ID token), not both");
            None
        }
        (Some(audience), None) => Some(GoogleToken::Id { audience }),
        (None, Some(scopes)) if scopes.is_empty() => {
            a.error_at("scopes", "an empty list; leave it out for the cloud-platform scope");
            None
        }
        (None, scopes) => {
            Some(GoogleToken::Access { scopes: scopes.unwrap_or_else(|| vec![GOOGLE_DEFAULT_SCOPE.into()]) })
        }
    }
}

/// An http(s) URL under `key`, else `default`; `None` after reporting a bad one.
fn http_url(a: &TableReader<'_, '_>, key: &'static str, default: &str) -> Option<Url> {
    match a.url(key) {
        Some(u) if matches!(u.scheme(), "http" | "https") => Some(u),
        Some(_) => {
            a.error_at(key, format!("`{key}` must be an http:// or https:// URL"));
            None
        }
        None if a.has(key) => None,
        None => Url::parse(default).ok(),
    }
}

/// Reads the keys of one of [`AUTH_TYPES`] (`auth_type` is already known to be one).
/// `default_resource`: the Azure resource a kind implies (Blob Storage's), so that
/// `resource` and `scope` may be left out.
pub fn read(a: &TableReader<'_, '_>, auth_type: &str, default_resource: Option<&str>) -> Option<CloudIdentity> {
    match auth_type {
        "gcp_service_account" => {
            let token = google_token(a);
            if !a.has("key_file") {
                a.required_string("key_file", "the service account's JSON key file");
                return None;
            }
            let (path, bytes) = a.file_bytes("key_file")?;
            let account = match ServiceAccount::parse(&bytes) {
                Ok(account) => account,
                Err(why) => {
                    a.error_at("key_file", format!("{}: {why}", path.display()));
                    return None;
                }
            };
            let token_url = account.token_uri.clone();
            Some(CloudIdentity::OAuth2(TokenRequest {
                token_url,
                client_id: account.client_email.clone(),
                client_secret: None,
                client_auth: ClientAuth::Post,
                grant: Grant::JwtBearer { account: Arc::new(account), token: token? },
            }))
        }
        "gcp_metadata" => {
            let token = google_token(a);
            let account = a.string("service_account").unwrap_or_else(|| "default".into());
            let endpoint = http_url(a, "endpoint", GCP_METADATA);
            Some(CloudIdentity::GcpMetadata { endpoint: endpoint?, account, token: token? })
        }
        "azure_managed_identity" => {
            let resource = match default_resource {
                Some(default) => Some(a.string("resource").unwrap_or_else(|| default.to_string())),
                None => a.required_string(
                    "resource",
                    "the resource to get a token for, e.g. \"https://storage.azure.com/\"",
                ),
            };
            let client_id = a.string("client_id");
            let endpoint = http_url(a, "endpoint", AZURE_IMDS);
            Some(CloudIdentity::AzureManagedIdentity { endpoint: endpoint?, resource: resource?, client_id })
        }
        "azure_client_secret" => {
            let tenant = a.required_string("tenant_id", "the Entra ID tenant (directory) id");
            let client_id = a.required_string("client_id", "the application (client) id");
            let secret = a.required_secret("client_secret", "the client secret");
            let scope = match default_resource {
                Some(default) => Some(a.string("scope").unwrap_or_else(|| format!("{default}.default"))),
                None => a.required_string("scope", "the scope, e.g. \"https://storage.azure.com/.default\""),
            };
            let authority = http_url(a, "authority", AZURE_AUTHORITY);
            let (tenant, authority) = (tenant?, authority?);
            Some(CloudIdentity::OAuth2(TokenRequest {
                token_url: entra_token_url(&authority, &tenant)?,
                client_id: client_id?,
                client_secret: Some(secret?),
                client_auth: ClientAuth::Post,
                grant: Grant::ClientCredentials { scope: Some(scope?) },
            }))
        }
        "azure_workload_identity" => {
            let tenant = key_or_env(a, "tenant_id", "AZURE_TENANT_ID", "the Entra ID tenant id");
            let client_id = key_or_env(a, "client_id", "AZURE_CLIENT_ID", "the application (client) id");
            let token_file = if a.has("token_file") {
                a.path("token_file")
            } else {
                key_or_env(a, "token_file", "AZURE_FEDERATED_TOKEN_FILE", "the projected service-account token")
                    .map(std::path::PathBuf::from)
            };
            let scope = match default_resource {
                Some(default) => Some(a.string("scope").unwrap_or_else(|| format!("{default}.default"))),
                None => a.required_string("scope", "the scope, e.g. \"https://storage.azure.com/.default\""),
            };
            let default_authority = std::env::var("AZURE_AUTHORITY_HOST").unwrap_or_else(|_| AZURE_AUTHORITY.into());
            let authority = http_url(a, "authority", &default_authority);
            let (tenant, authority) = (tenant?, authority?);
            Some(CloudIdentity::OAuth2(TokenRequest {
                token_url: entra_token_url(&authority, &tenant)?,
                client_id: client_id?,
                client_secret: None,
                client_auth: ClientAuth::Post,
                grant: Grant::ClientAssertion { scope: scope?, token_file: token_file? },
            }))
        }
        _ => None,
    }
}

impl CloudIdentity {
    /// Fetches the token (run it inside the `token` stage). Token endpoints are public
    /// services, judged against the system roots, not the probe's own `tls`.
    pub async fn token(&self, ctx: &ProbeContext) -> Result<Secret, Failure> {
        let tls = TlsOptions::default();
        match self {
            CloudIdentity::OAuth2(request) => oauth2::fetch_token(ctx, request, &tls).await,
            CloudIdentity::GcpMetadata { endpoint, account, token } => {
                let mut url = endpoint.clone();
                let which = match token {
                    GoogleToken::Access { .. } => "token",
                    GoogleToken::Id { .. } => "identity",
                };
                url.set_path(&format!("/computeMetadata/v1/instance/service-accounts/{account}/{which}"));
                match token {
                    GoogleToken::Access { scopes } => {
                        url.query_pairs_mut().append_pair("scopes", &scopes.join(","));
                    }
                    GoogleToken::Id { audience } => {
                        url.query_pairs_mut().append_pair("audience", audience).append_pair("format", "full");
                    }
                }
                let header = (HeaderName::from_static("metadata-flavor"), HeaderValue::from_static("Google"));
                let (status, body) = metadata_get(ctx, &url, header, Cloud::Gcp, &tls).await?;
                if !status.is_success() {
                    return Err(gcp_metadata_error(status, &body, account));
                }
                match token {
                    GoogleToken::Id { .. } => {
                        let jwt = String::from_utf8_lossy(&body).trim().to_string();
                        ctx.register_secret(&jwt);
                        if jwt.split('.').count() != 3 {
                            return Err(Failure::new(
                                ErrorClass::Protocol,
                                "the metadata server's identity answer is not a JWT",
                            ));
                        }
                        ctx.diagnostic("token: an ID token from the GCP metadata server");
                        Ok(Secret::issued(jwt))
                    }
                    GoogleToken::Access { .. } => access_token_from_json(ctx, &body, "the GCP metadata server"),
                }
            }
            CloudIdentity::AzureManagedIdentity { endpoint, resource, client_id } => {
                let mut url = endpoint.clone();
                url.set_path("/metadata/identity/oauth2/token");
                url.query_pairs_mut().append_pair("api-version", "2018-02-01").append_pair("resource", resource);
                if let Some(id) = client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                let header = (HeaderName::from_static("metadata"), HeaderValue::from_static("true"));
                let (status, body) = metadata_get(ctx, &url, header, Cloud::Azure, &tls).await?;
                if !status.is_success() {
                    return Err(azure_imds_error(status, &body, client_id.as_deref()));
                }
                access_token_from_json(ctx, &body, "Azure IMDS")
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Cloud {
    Gcp,
    Azure,
}

/// A GET to a metadata server; not reaching one at all means "not inside that cloud".
async fn metadata_get(
    ctx: &ProbeContext,
    url: &Url,
    header: (HeaderName, HeaderValue),
    cloud: Cloud,
    tls: &TlsOptions,
) -> Result<(http::StatusCode, Bytes), Failure> {
    let host = url.host_str().unwrap_or_default().to_string();
    let unreachable = |why: String| {
        let hint = match cloud {
            Cloud::Gcp => {
                "the GCP metadata server exists only on GCP (Compute Engine, GKE with workload identity, Cloud Run); elsewhere use gcp_service_account, or set `endpoint` to an emulator"
            }
            Cloud::Azure => {
                "Azure IMDS exists only on Azure (VMs, AKS with a managed identity, App Service); elsewhere use azure_client_secret, or set `endpoint` to an emulator"
            }
        };
        Failure::new(ErrorClass::Network, format!("no metadata server answered at {host}: {why}")).with_hint(hint)
    };
    let mut conn =
        match tokio::time::timeout(METADATA_CONNECT_TIMEOUT, httpc::connect(ctx, url, tls, Record::Quietly)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(failure)) => return Err(unreachable(failure.message)),
            Err(_) => {
                return Err(unreachable(format!(
                    "nothing within {}",
                    humantime::format_duration(METADATA_CONNECT_TIMEOUT)
                )));
            }
        };
    let mut response = conn.send(Method::GET, url, &[header], Bytes::new()).await?;
    ctx.diagnostic(format!("metadata server {}", httpc::describe_response(ctx, &Method::GET, url, &response)));
    let status = response.status();
    let (body, _) = httpc::read_capped(response.body_mut(), BODY_CAP).await?;
    Ok((status, body))
}

#[derive(Deserialize)]
struct MetadataToken {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

fn access_token_from_json(ctx: &ProbeContext, body: &[u8], from: &str) -> Result<Secret, Failure> {
    let parsed: MetadataToken = serde_json::from_slice(body)
        .map_err(|_| Failure::new(ErrorClass::Protocol, format!("{from} answered without a JSON token")))?;
    let Some(token) = parsed.access_token.filter(|t| !t.is_empty()) else {
        return Err(Failure::new(ErrorClass::Protocol, format!("{from}'s answer has no access_token")));
    };
    ctx.register_secret(&token);
    let kind = parsed.token_type.unwrap_or_else(|| "(no token_type)".into());
    let expires = parsed
        .expires_in
        .as_ref()
        .map(|e| format!(", expires in {} s", e.as_str().map(str::to_string).unwrap_or(e.to_string())))
        .unwrap_or_default();
    ctx.diagnostic(format!("token: a {kind} token from {from}{expires}"));
    let what = format!("the access token from {from} (expires_in)");
    oauth2::note_expires_in(ctx, &what, &token, parsed.expires_in.as_ref());
    Ok(Secret::issued(token))
}

fn said(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() { String::new() } else { format!(": {}", crate::model::redact::excerpt(line, 200)) }
}

fn gcp_metadata_error(status: http::StatusCode, body: &[u8], account: &str) -> Failure {
    match status.as_u16() {
        404 => Failure::new(ErrorClass::NotFound, format!("the metadata server has no service account `{account}`{}", said(body)))
            .with_hint("check `service_account`: it must be attached to this VM, node pool or Kubernetes service account (or leave it out for the default)"),
        403 => Failure::new(ErrorClass::Protocol, format!("the metadata server refused the request (HTTP 403){}", said(body)))
            .with_hint("a metadata server or proxy that does not accept the Metadata-Flavor header; check `endpoint`"),
        400 => Failure::new(ErrorClass::UnexpectedResponse, format!("the metadata server refused the request (HTTP 400){}", said(body))),
        _ => Failure::new(ErrorClass::UnexpectedResponse, format!("the metadata server answered HTTP {status}{}", said(body))),
    }
}

#[derive(Deserialize)]
struct AzureError {
    error: Option<String>,
    error_description: Option<String>,
}

fn azure_imds_error(status: http::StatusCode, body: &[u8], client_id: Option<&str>) -> Failure {
    let parsed: Option<AzureError> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|p| p.error.clone()).unwrap_or_default();
    let description = parsed.and_then(|p| p.error_description).unwrap_or_default();
    let text = format!("Azure IMDS answered HTTP {status} ({code}): {description}");
    if description.contains("Identity not found") {
        let which = client_id.map(|c| format!("with client_id {c} ")).unwrap_or_default();
        return Failure::new(ErrorClass::AuthRejected, text).with_hint(format!(
            "this VM or pod has no managed identity {which}assigned: assign one, or fix `client_id`"
        ));
    }
    match code.as_str() {
        "invalid_resource" => Failure::new(ErrorClass::PermissionDenied, text)
            .with_hint("check `resource`: an Azure resource URI such as https://storage.azure.com/"),
        "invalid_request" => Failure::new(ErrorClass::Protocol, text)
            .with_hint("check `endpoint`: the server did not accept the IMDS request"),
        _ => Failure::new(ErrorClass::UnexpectedResponse, text),
    }
}

/// 9000-01-01T00:00:00Z: a key certificate ending after it does not expire.
const NEVER_EXPIRES: i64 = 221_845_392_000;

/// The last `n` characters of an identifier, to name it without showing it.
pub(crate) fn last_chars(id: &str, n: usize) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}

/// The validity (Unix seconds) of key `key_id`'s certificate on Google's x509 page: a JSON
/// object of key ids to PEM certificates.
pub fn key_certificate_validity(page: &[u8], key_id: &str) -> Option<(i64, i64)> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certificates: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(page).ok()?;
    let pem = certificates.get(key_id)?.as_str()?;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&der).ok()?;
    let validity = certificate.validity();
    Some((validity.not_before.timestamp(), validity.not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../tests/data/gcp-test-key.json");

    #[test]
    fn a_keys_age_and_end_come_from_its_certificate_on_googles_page() {
        let mut params = rcgen::CertificateParams::new(vec!["sa.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(9999, 12, 31);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let page = serde_json::json!({ "other": "not a certificate", "key-1": pem }).to_string();
        let (from, until) = key_certificate_validity(page.as_bytes(), "key-1").unwrap();
        assert_eq!(from, 1_577_836_800);
        assert!(until > NEVER_EXPIRES);
        assert_eq!(key_certificate_validity(page.as_bytes(), "other"), None);
        assert_eq!(key_certificate_validity(page.as_bytes(), "key-2"), None);
        assert_eq!(key_certificate_validity(b"<html>", "key-1"), None);
        assert_eq!(last_chars("abcdef", 4), "cdef");
        assert_eq!(last_chars("ab", 4), "ab");
    }

    #[test]
    fn a_service_account_assertion_is_an_rs256_jwt_with_the_key_id_and_claims() {
        let account = ServiceAccount::parse(KEY.as_bytes()).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = account.assertion(&GoogleToken::Access { scopes: vec!["a".into(), "b".into()] }, now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], account.key_id);
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], account.client_email);
        assert_eq!(claims["aud"], account.token_uri.as_str());
        assert_eq!(claims["scope"], "a b");
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
        // The signature verifies with the key's public half.
        use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, account.key.public_key().as_ref().to_vec());
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).unwrap();
        let id = account.assertion(&GoogleToken::Id { audience: "https://x".into() }, now).unwrap();
        assert_eq!(decode(id.split('.').nth(1).unwrap())["target_audience"], "https://x");
    }

    #[test]
    fn key_file_errors_say_what_is_wrong() {
        assert!(ServiceAccount::parse(b"{").unwrap_err().contains("invalid JSON"));
        let user = br#"{"type": "authorized_user", "client_id": "x"}"#;
        assert!(ServiceAccount::parse(user).unwrap_err().contains("`authorized_user` credential file"));
        let no_key = br#"{"type": "service_account", "client_email": "a@b", "private_key_id": "1"}"#;
        assert!(ServiceAccount::parse(no_key).unwrap_err().contains("no `private_key`"));
    }
}
