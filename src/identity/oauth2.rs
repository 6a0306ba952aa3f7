//! OAuth2 token acquisition (RFC 6749 client credentials and refresh token grants), run as
//! the `token` stage. The token endpoint's own error codes decide the class.

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use serde::Deserialize;
use url::Url;

use crate::connect::context::ProbeContext;
use crate::connect::httpc;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::model::error::{ErrorClass, Failure};
use crate::model::redact::{self, Secret};
use crate::model::release::Release;

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP basic with the form-encoded id and secret (RFC 6749 §2.3.1), the default.
    Basic,
    /// `client_id` and `client_secret` in the request body.
    Post,
}

#[derive(Debug, Clone)]
pub enum Grant {
    ClientCredentials {
        scope: Option<String>,
    },
    RefreshToken {
        refresh_token: Secret,
    },
    /// RFC 7523 JWT bearer, as Google service accounts use it: a signed assertion instead of
    /// client authentication; an ID token instead of an access token when asked for one.
    JwtBearer {
        account: std::sync::Arc<crate::identity::cloud::ServiceAccount>,
        token: crate::identity::cloud::GoogleToken,
    },
    /// Client credentials with a client assertion (RFC 7521) instead of a secret: Azure
    /// workload identity's Kubernetes service-account token, read from its file at each
    /// attempt (the kubelet renews it).
    ClientAssertion {
        scope: String,
        token_file: std::path::PathBuf,
    },
}

/// The client assertion's file: small, and a credential.
fn read_assertion(path: &std::path::Path) -> Result<String, Failure> {
    let text = crate::config::secrets::read_capped(path, TOKEN_BODY_CAP as u64)
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .map_err(|err| {
            Failure::new(
                ErrorClass::Config,
                format!("cannot read the federated token file {}: {}", path.display(), crate::model::error::describe_io(&err)),
            )
            .with_hint("in a pod, the workload identity webhook projects it and sets AZURE_FEDERATED_TOKEN_FILE: check the pod's azure.workload.identity/use label and its service account's azure.workload.identity/client-id annotation")
        })?;
    redact::register(&text);
    Ok(text)
}

#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    pub grant: Grant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Token responses are small; anything bigger is not a token endpoint.
const TOKEN_BODY_CAP: usize = 64 * 1024;

/// Fetches an access token. The token (and any rotated refresh token) is registered as a
/// secret before anything else can see it.
pub async fn fetch_token(ctx: &ProbeContext, req: &TokenRequest, tls: &TlsOptions) -> Result<Secret, Failure> {
    let secret_sent = match (&req.grant, &req.client_secret) {
        (Grant::JwtBearer { .. }, _) => Some("the signed token request (a JWT assertion, usable until it expires)"),
        (Grant::RefreshToken { .. }, _) => Some("the refresh token"),
        (Grant::ClientAssertion { .. }, _) => Some("the service-account token (a client assertion)"),
        (_, Some(_)) => Some("the client secret"),
        (Grant::ClientCredentials { .. }, None) => None,
    };
    if let Some(what) = secret_sent {
        ctx.release_over_plain_http(&req.token_url, what)?;
    }

    // A service-account key's age is asked of Google's public page for it at the same time.
    let key_age = async {
        if let Grant::JwtBearer { account, .. } = &req.grant
            && ctx.hygiene.enabled
        {
            account.note_key_age(ctx).await;
        }
    };
    let exchange = async {
        let mut conn = httpc::connect(ctx, &req.token_url, tls, Record::Quietly)
            .await
            .map_err(|f| in_token_stage(f, &req.token_url))?;
        let proof = match secret_sent {
            Some(what) => Some(
                conn.release(ctx, &req.token_url, what, ctx.consent())
                    .map_err(|f| in_token_stage(f, &req.token_url))?,
            ),
            None => None,
        };
        let (body, headers) = token_request_parts(req, proof.as_ref())?;
        redact::register(&body);
        conn.send(Method::POST, &req.token_url, &headers, Bytes::from(body)).await
    };
    let (sent, _) = crate::model::hygiene::beside(exchange, key_age).await;
    let mut response = sent?;
    let status = response.status();
    ctx.diagnostic(format!(
        "token endpoint {}",
        httpc::describe_response(ctx, &Method::POST, &req.token_url, &response)
    ));
    let (bytes, _) = httpc::read_capped(response.body_mut(), TOKEN_BODY_CAP).await?;
    let parsed: Option<TokenResponse> = serde_json::from_slice(&bytes).ok();
    if let Some(parsed) = &parsed {
        // Register before any branch can put a piece of the body into a message.
        // With this probe only: a token the server chose must not mask what others show.
        for token in [&parsed.access_token, &parsed.refresh_token, &parsed.id_token].into_iter().flatten() {
            ctx.register_secret(token);
        }
    }
    if status.is_success() {
        let Some(parsed) = parsed else {
            return Err(Failure::new(
                ErrorClass::Protocol,
                format!("the token endpoint answered HTTP {status} without a JSON token response"),
            )
            .with_hint("check token_url: it should be the authorization server's token endpoint"));
        };
        if let Grant::JwtBearer { token: crate::identity::cloud::GoogleToken::Id { .. }, .. } = &req.grant {
            let Some(id_token) = parsed.id_token.filter(|t| !t.is_empty()) else {
                return Err(Failure::new(ErrorClass::Protocol, "the token response has no id_token"));
            };
            ctx.diagnostic("token: an ID token");
            return Ok(Secret::issued(id_token));
        }
        let Some(token) = parsed.access_token.filter(|t| !t.is_empty()) else {
            return Err(Failure::new(ErrorClass::Protocol, "the token response has no access_token"));
        };
        let expires = parsed.expires_in.as_ref().map(|e| format!(", expires in {e} s")).unwrap_or_default();
        let scope = parsed.scope.as_deref().map(|s| format!(", scope `{s}`")).unwrap_or_default();
        let kind_shown = parsed.token_type.as_deref().unwrap_or("(no token_type)");
        ctx.diagnostic(format!("token: a {kind_shown} token{expires}{scope}"));
        if let Some(kind) = parsed.token_type.as_deref()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("the token endpoint issued a `{kind}` token; authprobe can present bearer tokens only"),
            ));
        }
        note_expires_in(ctx, "the OAuth2 access token (expires_in)", &token, parsed.expires_in.as_ref());
        ctx.note_scopes(
            "the OAuth2 access token",
            crate::model::hygiene::granted_scopes(parsed.scope.as_deref(), &token),
        );
        if let Grant::RefreshToken { .. } = req.grant {
            ctx.note_info(
                "oauth2_refresh_token",
                "a refresh token acts for the person who consented to it: it stops when they leave or revoke it; for a system's connection prefer a client of its own (client credentials)".into(),
            );
        }
        return Ok(Secret::issued(token));
    }
    Err(token_error(status, parsed, &req.grant))
}

/// The token response's `expires_in` as the access token's end, for a token that does not
/// carry its own (`exp` of a JWT is read where the token is used, and wins): listed with the
/// probe's credentials; issued now, so it warns only in the last quarter of its life.
pub(crate) fn note_expires_in(
    log: &crate::model::stages::StageLog,
    what: &str,
    token: &str,
    expires_in: Option<&serde_json::Value>,
) {
    if crate::model::expiry::jwt_times(token).is_some_and(|t| t.exp.is_some()) {
        return;
    }
    // RFC 6749 says a number; some servers send it as a string.
    let seconds = expires_in.and_then(|e| e.as_i64().or_else(|| e.as_str()?.trim().parse().ok()));
    let Some(seconds) = seconds.filter(|s| *s > 0 && *s < 10 * 365 * 86_400) else { return };
    let now = crate::model::expiry::now_unix();
    let _ = log.note_expiry(what, now + seconds, Some(now), None);
}

/// The form body and headers of a token request. Built in one synchronous step: the form
/// serializer is not `Send` and must not live across an await.
/// `proof` is the release rule's for the token endpoint's connection: secrets go into the
/// request only with it.
fn token_request_parts(
    req: &TokenRequest,
    proof: Option<&Release>,
) -> Result<(String, Vec<(header::HeaderName, HeaderValue)>), Failure> {
    let released = |secret: &'_ Secret| -> Result<String, Failure> {
        let proof =
            proof.ok_or_else(|| Failure::internal("a token request's secret without the release rule's proof"))?;
        Ok(secret.release(proof).to_string())
    };
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match &req.grant {
        Grant::ClientCredentials { scope } => {
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = scope {
                form.append_pair("scope", scope);
            }
        }
        Grant::RefreshToken { refresh_token } => {
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", &released(refresh_token)?);
        }
        Grant::JwtBearer { account, token } => {
            form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
            form.append_pair("assertion", &account.assertion(token, std::time::SystemTime::now())?);
        }
        Grant::ClientAssertion { scope, token_file } => {
            form.append_pair("grant_type", "client_credentials");
            form.append_pair("scope", scope);
            form.append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            form.append_pair("client_assertion", &read_assertion(token_file)?);
        }
    }
    let mut headers = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded")),
        (header::ACCEPT, HeaderValue::from_static("application/json")),
    ];
    if matches!(req.grant, Grant::JwtBearer { .. }) {
        // The signed assertion is the client's authentication.
        return Ok((form.finish(), headers));
    }
    match (&req.client_secret, req.client_auth) {
        (Some(secret), ClientAuth::Basic) => {
            let id: String = url::form_urlencoded::byte_serialize(req.client_id.as_bytes()).collect();
            let pw: String = url::form_urlencoded::byte_serialize(released(secret)?.as_bytes()).collect();
            redact::register_basic_auth(&id, &pw);
            headers.push((header::AUTHORIZATION, basic_header(&id, &pw)?));
        }
        (Some(secret), ClientAuth::Post) => {
            form.append_pair("client_id", &req.client_id);
            form.append_pair("client_secret", &released(secret)?);
        }
        (None, _) => {
            form.append_pair("client_id", &req.client_id);
        }
    }
    Ok((form.finish(), headers))
}

fn in_token_stage(failure: Failure, url: &Url) -> Failure {
    let host = url.host_str().unwrap_or_default();
    Failure { message: format!("token endpoint {host}: {}", failure.message), ..failure }
}

fn basic_header(user: &str, password: &str) -> Result<HeaderValue, Failure> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| Failure::new(ErrorClass::Config, "the client credentials cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn token_error(status: http::StatusCode, parsed: Option<TokenResponse>, grant: &Grant) -> Failure {
    let (code, description) = match &parsed {
        Some(p) => (p.error.clone(), p.error_description.clone()),
        None => (None, None),
    };
    let said = description.as_deref().map(|d| format!(": {}", redact::excerpt(d, 200))).unwrap_or_default();
    // Entra ID says more in its AADSTS codes than in the OAuth2 error.
    let aadsts = |n: &str| description.as_deref().is_some_and(|d| d.contains(&format!("AADSTS{n}:")));
    if aadsts("700016") {
        return Failure::new(ErrorClass::AuthRejected, format!("the application is not known in this tenant{said}"))
            .with_hint(
                "check client_id (the application id) and tenant_id: the app must be registered in that tenant",
            );
    }
    if aadsts("90002") {
        return Failure::new(ErrorClass::NotFound, format!("the tenant does not exist{said}"))
            .with_hint("check tenant_id (the directory id, or a verified domain such as contoso.onmicrosoft.com)");
    }
    if aadsts("70021") || aadsts("700211") || aadsts("700213") {
        return Failure::new(
            ErrorClass::AuthRejected,
            format!("Entra ID has no federated credential that matches the service-account token{said}"),
        )
        .with_hint("the app (client_id) needs a federated identity credential with the cluster's OIDC issuer URL, subject system:serviceaccount:NAMESPACE:NAME of this pod's service account, and audience api://AzureADTokenExchange");
    }
    if aadsts("700024") || aadsts("50027") {
        return Failure::new(
            ErrorClass::AuthRejected,
            format!("Entra ID refused the service-account token as the client assertion{said}"),
        )
        .with_hint("the projected token expired or is not a valid JWT: the kubelet renews the file the webhook mounts (AZURE_FEDERATED_TOKEN_FILE); a copied token goes stale within the hour");
    }
    if aadsts("7000215") || aadsts("7000222") {
        return Failure::new(ErrorClass::AuthRejected, format!("the client secret was refused{said}"))
            .with_hint("use the secret's value (not its id), and check it has not expired: create a new one under the app's Certificates & secrets");
    }
    if let (Some("invalid_grant"), Grant::JwtBearer { account, .. }) = (code.as_deref(), grant) {
        return Failure::new(
            ErrorClass::AuthRejected,
            format!("Google refused the signed assertion of {} (invalid_grant){said}", account.client_email),
        )
        .with_hint(format!(
            "the key (id {}) may be deleted or disabled, or the account removed: compare with `gcloud iam service-accounts keys list --iam-account {}` and create a new key if needed",
            account.key_id, account.client_email
        ));
    }
    match code.as_deref() {
        Some("invalid_client") => Failure::new(
            ErrorClass::AuthRejected,
            format!("the token endpoint refused the client credentials (invalid_client){said}"),
        )
        .with_hint("check client_id and client_secret; if they are right, the server may expect the other client_auth (basic or post)"),
        Some("invalid_grant") => {
            let what = match grant {
                Grant::RefreshToken { .. } => "the refresh token was refused (invalid_grant): expired, revoked, or issued to another client",
                Grant::ClientCredentials { .. } | Grant::JwtBearer { .. } | Grant::ClientAssertion { .. } => {
                    "the grant was refused (invalid_grant)"
                }
            };
            Failure::new(ErrorClass::AuthRejected, format!("{what}{said}"))
                .with_hint("obtain a new refresh token and update the secret it comes from")
        }
        Some("unauthorized_client") => Failure::new(
            ErrorClass::PermissionDenied,
            format!("the client is not allowed to use this grant type (unauthorized_client){said}"),
        )
        .with_hint("enable the grant type for this client at the authorization server"),
        Some("invalid_scope") => Failure::new(ErrorClass::PermissionDenied, format!("the requested scope was refused (invalid_scope){said}"))
            .with_hint("request a scope this client is allowed, or ask for it to be granted"),
        Some(other) => Failure::new(ErrorClass::UnexpectedResponse, format!("the token endpoint answered HTTP {status} with error `{other}`{said}")),
        None => match status.as_u16() {
            401 => Failure::new(ErrorClass::AuthRejected, format!("the token endpoint answered HTTP {status}"))
                .with_hint("check client_id and client_secret"),
            403 => Failure::new(ErrorClass::PermissionDenied, format!("the token endpoint answered HTTP {status}")),
            404 => Failure::new(ErrorClass::NotFound, format!("the token endpoint answered HTTP {status}"))
                .with_hint("check token_url"),
            _ => Failure::new(ErrorClass::UnexpectedResponse, format!("the token endpoint answered HTTP {status}")),
        },
    }
}
