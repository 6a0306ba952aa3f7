//! The `http` probe: one request with the configured credentials, then the response is
//! checked against `expect`. Stages: dns, connect, tls (https), token (OAuth2), auth (the
//! request carrying credentials, judged on 401), check (status and body).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use url::Url;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::httpc;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::identity::kerberos;
use crate::identity::oauth2::{self, ClientAuth, Grant, TokenRequest};
use crate::model::advice::Fix;
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::redact::{self, Secret};
use crate::probes::{Probe, ProbeFuture};

mod check_url;
mod config;
mod signed;

pub use check_url::*;
pub use config::*;

/// How long a body is read for when nothing in it is checked.
const BODY_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// AWS credentials from the configured source; STS, when a source needs it, is AWS's own
/// (judged against the system trust store).
async fn aws_credentials(
    ctx: &ProbeContext,
    source: &crate::identity::aws::creds::Source,
    region: &str,
) -> Result<aws_credential_types::Credentials, Failure> {
    let tls = TlsOptions::default();
    let sts = crate::identity::aws::creds::Sts { region, endpoint: None, tls: &tls };
    source.resolve(ctx, &sts).await?.ok_or_else(|| Failure::internal("no credentials to sign with"))
}

impl HttpProbe {
    /// The credential this probe sends with its request itself, if any, for the release
    /// rule. SigV4 sends a signature, from which nothing reusable is recovered.
    fn credential_sent(&self) -> Option<String> {
        let what = match &self.auth {
            Auth::Basic { .. } => "the basic-auth password",
            Auth::Bearer { .. } => "the bearer token",
            Auth::ApiKey { .. } => "the API key",
            Auth::OAuth2(_) | Auth::Cloud(_) => "the access token",
            // A Kerberos AP-REQ is bound to the service's key and the moment: nothing in it
            // is reusable elsewhere.
            Auth::None if self.signed_link.is_some() => "the signed link's signature",
            Auth::None | Auth::AwsSigV4(_) | Auth::Kerberos(_) => {
                if let Some((name, _)) = self.headers.iter().find(|(name, _)| is_credential_header(name.as_str())) {
                    return Some(format!("the `{name}` header"));
                }
                return matches!(self.body, Some(RequestBody::Holding(_)))
                    .then(|| "the request body (it holds a ${…} reference)".to_string());
            }
        };
        Some(what.to_string())
    }

    async fn run_once(&self, ctx: &ProbeContext) -> Result<(), Failure> {
        if let Some(what) = self.credential_sent() {
            ctx.release_over_plain_http(&self.url, &what).map_err(|f| ctx.fail_before(Stage::Auth, f))?;
        }
        // The larger steps are boxed: a probe in flight then holds the one that is running,
        // not room for every step it could take (a run of 10,000 probes at 256 at once).
        let mut conn = Box::pin(httpc::connect(ctx, &self.url, &self.tls, Record::Stages)).await?;
        // The release rule's proof for this connection, when the request carries a credential.
        let proof = match self.credential_sent() {
            Some(what) => {
                Some(conn.release(ctx, &self.url, &what, ctx.consent()).map_err(|f| ctx.fail_before(Stage::Auth, f))?)
            }
            None => None,
        };
        let released = |secret: &'_ Secret| -> Result<String, Failure> {
            let proof =
                proof.as_ref().ok_or_else(|| Failure::internal("a credential without the release rule's proof"))?;
            Ok(secret.release(proof).to_string())
        };
        let mut headers = self.headers.clone();
        if let Some(link) = &self.signed_link {
            signed::check_times(ctx, link, std::time::SystemTime::now())
                .map_err(|f| ctx.fail_before(Stage::Auth, f))?;
            if self.ranged() {
                headers.push((header::RANGE, HeaderValue::from_static(signed::FIRST_BYTE)));
            }
        }
        let mut url = self.url.clone();
        let mut negotiate: Option<kerberos::Initiator> = None;
        match &self.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                use base64::Engine;
                let pair = format!("{username}:{}", released(password)?);
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                headers.push((header::AUTHORIZATION, httpc::sensitive_header(&format!("Basic {encoded}"))?));
            }
            Auth::Bearer { token } => {
                crate::model::expiry::check_jwt(ctx, "the bearer token", token.read_here())?;
                ctx.note_scopes("the bearer token", crate::model::hygiene::granted_scopes(None, token.read_here()));
                headers.push((header::AUTHORIZATION, httpc::sensitive_header(&format!("Bearer {}", released(token)?))?))
            }
            Auth::ApiKey { key, place: ApiKeyPlace::Header(name) } => {
                headers.push((name.clone(), httpc::sensitive_header(&released(key)?)?))
            }
            Auth::ApiKey { key, place: ApiKeyPlace::Query(param) } => {
                url.query_pairs_mut().append_pair(param, &released(key)?);
            }
            Auth::OAuth2(request) => {
                let token = ctx.stage(Stage::Token, Box::pin(oauth2::fetch_token(ctx, request, &self.tls))).await?;
                crate::model::expiry::check_jwt(ctx, "the OAuth2 access token", token.read_here())?;
                headers
                    .push((header::AUTHORIZATION, httpc::sensitive_header(&format!("Bearer {}", released(&token)?))?));
            }
            Auth::Cloud(identity) => {
                let token = ctx.stage(Stage::Token, Box::pin(identity.token(ctx))).await?;
                crate::model::expiry::check_jwt(ctx, "the cloud access token", token.read_here())?;
                ctx.note_scopes(
                    "the cloud access token",
                    crate::model::hygiene::granted_scopes(None, token.read_here()),
                );
                headers
                    .push((header::AUTHORIZATION, httpc::sensitive_header(&format!("Bearer {}", released(&token)?))?));
            }
            Auth::AwsSigV4(_) => {}
            Auth::Kerberos(kerberos) => {
                ctx.detail(format!("credentials: Kerberos, {}", kerberos.describe()));
                let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
                let (initiator, token) = ctx
                    .stage(
                        Stage::Token,
                        Box::pin(async {
                            let mut initiator =
                                kerberos::acquire::initiator(ctx, kerberos, "HTTP", &host, kerberos::Mechanism::Spnego)
                                    .await?;
                            let token = initiator.step(None)?;
                            Ok((initiator, token))
                        }),
                    )
                    .await?;
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&token);
                headers.push((header::AUTHORIZATION, httpc::sensitive_header(&format!("Negotiate {encoded}"))?));
                negotiate = Some(initiator);
            }
        }
        let body = match &self.body {
            None => Bytes::new(),
            Some(RequestBody::Text(text)) => text.clone(),
            Some(RequestBody::Holding(secret)) => Bytes::copy_from_slice(released(secret)?.as_bytes()),
        };
        if let Auth::AwsSigV4(signing) = &self.auth {
            let SigV4 { credentials, region, service } = &**signing;
            ctx.detail(format!("credentials: {}", credentials.describe()));
            let credentials = ctx.stage(Stage::Token, Box::pin(aws_credentials(ctx, credentials, region))).await?;
            let signer = crate::identity::aws::sign::Signer {
                credentials: &credentials,
                region,
                service,
                now: std::time::SystemTime::now(),
            };
            let signed = crate::identity::aws::sign::sign_request(&signer, &self.method, &url, &headers, &body)?;
            headers.extend(signed);
        }
        if matches!(self.auth, Auth::None) && self.signed_link.is_none() {
            return ctx
                .stage(Stage::Check, async {
                    let sent = std::time::Instant::now();
                    let response = conn.send(self.method.clone(), &url, &headers, body).await?;
                    record_head(ctx, &url, &response, sent);
                    ctx.diagnostic(httpc::describe_response(ctx, &self.method, &url, &response));
                    self.check(ctx, response, false, conn.client_cert_requested()).await
                })
                .await;
        }
        let response = ctx
            .stage(Stage::Auth, async {
                let sent = std::time::Instant::now();
                let mut response = conn.send(self.method.clone(), &url, &headers, body).await?;
                record_head(ctx, &url, &response, sent);
                ctx.diagnostic(httpc::describe_response(ctx, &self.method, &url, &response));
                if response.status() == StatusCode::UNAUTHORIZED && !self.status_expected(401) {
                    if let Some(initiator) = negotiate.as_mut()
                        && mutual_authentication(ctx, initiator, &response).is_ok()
                        && initiator.is_complete()
                    {
                        // The server accepted the ticket (and proved itself) but refuses this
                        // principal: an authorization answer, not a credential one.
                        return Err(Failure::new(
                            ErrorClass::PermissionDenied,
                            format!(
                                "HTTP 401: the server accepted the Kerberos ticket of {} but does not let it in",
                                initiator.ticket().client
                            ),
                        )
                        .with_hint("the server's authorization refuses this principal (Apache: Require user/group; IIS: the URL's permissions)"));
                    }
                    return Err(unauthorized(ctx, &response, true));
                }
                if let Some(initiator) = negotiate.as_mut() {
                    mutual_authentication(ctx, initiator, &response)?;
                }
                if let Some(link) = &self.signed_link
                    && response.status().as_u16() >= 400
                    && !self.status_expected(response.status().as_u16())
                {
                    let status = response.status();
                    let (body, _) = httpc::read_capped(response.body_mut(), 64 * 1024).await?;
                    let answer = signed::ErrorAnswer::read(response.headers(), &body);
                    return Err(signed::refusal(ctx, link, status, &answer));
                }
                // AWS answers a refused signature with 403 (or 400) and says why in the body.
                let refused = matches!(response.status(), StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST);
                if let Auth::AwsSigV4(_) = &self.auth
                    && refused
                    && !self.status_expected(response.status().as_u16())
                {
                    let status = response.status();
                    let (body, _) = httpc::read_capped(response.body_mut(), 64 * 1024).await?;
                    return Err(aws_refusal(ctx, status, response.headers(), &body));
                }
                Ok(response)
            })
            .await?;
        let cert_requested = conn.client_cert_requested();
        ctx.stage(Stage::Check, self.check(ctx, response, true, cert_requested)).await
    }

    fn status_expected(&self, status: u16) -> bool {
        match &self.expect_status {
            Some(list) => list.contains(&status),
            // 416: the object is empty, so it has no first byte.
            None if self.ranged() => (200..300).contains(&status) || status == 416,
            None => (200..300).contains(&status),
        }
    }

    /// A signed link is fetched as its first byte unless the probe says how to fetch it.
    fn ranged(&self) -> bool {
        self.signed_link.is_some() && !self.method_given && self.expect_status.is_none() && self.body_contains.is_none()
    }

    async fn check(
        &self,
        ctx: &ProbeContext,
        mut response: http::Response<hyper::body::Incoming>,
        has_auth: bool,
        client_cert_requested: bool,
    ) -> Result<(), Failure> {
        let status = response.status();
        let expected = self.status_expected(status.as_u16());
        if expected && self.ranged() {
            signed::describe_object(ctx, status, response.headers());
        }
        // The body is read (at most BODY_CAP), whatever the status, as the blackbox exporter
        // does: for expect.body_contains, and for the transfer phase and body length.
        let (body, truncated) = self.read_body(ctx, &mut response, expected && self.body_contains.is_some()).await?;
        let mismatch =
            expected && self.body_contains.as_ref().is_some_and(|needle| !contains(&body, needle.as_bytes()));
        if let Some(mut facts) = ctx.http_facts() {
            facts.failed_due_to_regex = mismatch;
            ctx.set_http(facts);
        }
        if !expected {
            if status == StatusCode::BAD_REQUEST && client_cert_requested {
                return Err(self.client_cert_bad_request());
            }
            return Err(self.status_failure(ctx, &response, has_auth));
        }
        if let Some(needle) = &self.body_contains
            && mismatch
        {
            let scope = if truncated { format!(" (in the first {} KiB)", BODY_CAP / 1024) } else { String::new() };
            return Err(Failure::new(
                ErrorClass::UnexpectedResponse,
                format!("HTTP {status}, but the body does not contain `{needle}`{scope}"),
            )
            .with_hint("the endpoint answered something else: check the URL and expect.body_contains"));
        }
        Ok(())
    }

    /// Reads at most BODY_CAP of the body and records its length and transfer time. When
    /// nothing in it is checked (`checked` false) the read is bounded in time too: a
    /// streaming endpoint (SSE, long poll) passes on its head, as it always did.
    async fn read_body(
        &self,
        ctx: &ProbeContext,
        response: &mut http::Response<hyper::body::Incoming>,
        checked: bool,
    ) -> Result<(Bytes, bool), Failure> {
        let started = std::time::Instant::now();
        let read = if self.method == Method::HEAD {
            (Bytes::new(), false)
        } else if checked {
            httpc::read_capped(response.body_mut(), BODY_CAP).await?
        } else {
            match tokio::time::timeout(BODY_READ_LIMIT, httpc::read_capped(response.body_mut(), BODY_CAP)).await {
                Ok(Ok(read)) => read,
                Ok(Err(_)) | Err(_) => {
                    let limit = humantime::format_duration(BODY_READ_LIMIT);
                    ctx.detail(format!("body: not read to its end within {limit}"));
                    (Bytes::new(), true)
                }
            }
        };
        if let Some(mut facts) = ctx.http_facts() {
            facts.transfer_secs = started.elapsed().as_secs_f64();
            facts.body_length = read.0.len() as u64;
            ctx.set_http(facts);
        }
        Ok(read)
    }

    /// nginx (and others) finish the handshake whatever client certificate arrives, then
    /// answer 400: after the server asked for a certificate, that 400 is about it.
    fn client_cert_bad_request(&self) -> Failure {
        let what = if self.tls.identity.is_some() { "it did not accept ours" } else { "none is configured" };
        Failure::new(
            ErrorClass::TlsClientCert,
            format!("HTTP 400 Bad Request after the server asked for a client certificate: {what}"),
        )
        .with_hint(crate::advice![Fix::ClientCertificate, " to a certificate from a CA the server trusts"])
    }

    fn status_failure(
        &self,
        ctx: &ProbeContext,
        response: &http::Response<hyper::body::Incoming>,
        has_auth: bool,
    ) -> Failure {
        let status = response.status();
        let expected = match &self.expect_status {
            Some(list) => describe_statuses(list),
            None => "any 2xx".into(),
        };
        match status.as_u16() {
            401 => unauthorized(ctx, response, has_auth),
            403 => Failure::new(ErrorClass::PermissionDenied, format!("HTTP {status} (expected {expected})"))
                .with_hint("the credentials were accepted but lack permission for this resource: ask its owner to grant access"),
            404 | 410 => Failure::new(ErrorClass::NotFound, format!("HTTP {status} (expected {expected})"))
                .with_hint("check the URL path; the server is reachable and answered"),
            300..=399 => {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(|l| format!(" to {}", redact::scrub(l)))
                    .unwrap_or_default();
                Failure::new(ErrorClass::UnexpectedResponse, format!("HTTP {status}: redirected{location} (expected {expected})"))
                    .with_hint("authprobe does not follow redirects: probe the final URL, or add this status to expect.status")
            }
            // A service behind a proxy that is still starting answers 502/503/504; rate
            // limits pass too. --wait retries them.
            429 | 500..=599 => {
                Failure::new(ErrorClass::UnexpectedResponse, format!("HTTP {status} (expected {expected})")).transient()
            }
            _ => Failure::new(ErrorClass::UnexpectedResponse, format!("HTTP {status} (expected {expected})")),
        }
    }
}

/// The accepted statuses as written: a whole hundred as its class ("2xx"), others one by one.
fn describe_statuses(list: &[u16]) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut classes: Vec<u16> = Vec::new();
    for &status in list {
        let class = status / 100;
        if classes.contains(&class) {
            continue;
        }
        if (class * 100..class * 100 + 100).all(|s| list.contains(&s)) {
            classes.push(class);
            shown.push(format!("{class}xx"));
        } else {
            shown.push(status.to_string());
        }
    }
    shown.join(", ")
}

/// A 401 with what the server said in WWW-Authenticate (scheme and error code, never a token).
/// HTTP Negotiate's last step: the server's token (the Kerberos AP-REP) proves it holds the
/// service's key. Without one the exchange still worked, but Kerberos did not confirm who
/// answered: said, and a warning unless TLS verified the server.
fn mutual_authentication(
    ctx: &ProbeContext,
    initiator: &mut kerberos::Initiator,
    response: &http::Response<hyper::body::Incoming>,
) -> Result<(), Failure> {
    use base64::Engine;
    let token = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("Negotiate ").map(str::trim));
    let Some(token) = token else {
        if ctx.tls().is_some_and(|tls| tls.verified) {
            ctx.detail("kerberos: the server sent no token back (mutual authentication not done; TLS verified it)");
        } else {
            ctx.warn("the server sent no Negotiate token back: Kerberos did not confirm its identity (mutual authentication), and TLS did not either");
        }
        return Ok(());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| Failure::new(ErrorClass::Protocol, "the server's Negotiate token is not base64"))?;
    if let Err(failure) = initiator.step(Some(&bytes)) {
        return Err(Failure::new(
            ErrorClass::UnexpectedResponse,
            format!("the server's answer did not prove it holds the key of {}: {}", initiator.ticket().service, failure.message),
        )
        .with_hint("something other than the service answered with its name, or its keytab does not match the KDC: check the service's keytab"));
    }
    initiator.report_proof(ctx);
    Ok(())
}

fn unauthorized(ctx: &ProbeContext, response: &http::Response<hyper::body::Incoming>, has_auth: bool) -> Failure {
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("; server says: {}", ctx.server_text(v, 200)))
        .unwrap_or_default();
    let failure = Failure::new(ErrorClass::AuthRejected, format!("HTTP 401 Unauthorized{challenge}"));
    if has_auth {
        failure.with_hint("the credentials were refused: check that they are current and meant for this endpoint")
    } else {
        failure
            .with_hint(crate::advice!["the endpoint requires credentials: ", crate::model::advice::Fix::AddCredentials])
    }
}

/// A SigV4-signed request refused with AWS's error code (XML `<Code>`, JSON `__type` or
/// `code`): a bad signature or key is `auth_rejected` at `auth`, a missing permission
/// `permission_denied` at `check`.
fn aws_refusal(ctx: &ProbeContext, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Failure {
    let answer = signed::ErrorAnswer::read(headers, body);
    let text = answer.summary(ctx, status);
    let code = answer.code;
    match code.as_str() {
        "SignatureDoesNotMatch" | "IncompleteSignature" | "InvalidSignatureException" => Failure::new(
            ErrorClass::AuthRejected,
            text,
        )
        .at(Stage::Auth)
        .with_hint(
            "the signature was refused: check secret_access_key, and that `service` and `region` are the endpoint's",
        ),
        "InvalidAccessKeyId" | "InvalidClientTokenId" | "UnrecognizedClientException" | "NotSignedUp" => {
            Failure::new(ErrorClass::AuthRejected, text)
                .at(Stage::Auth)
                .with_hint("the access key id is unknown to this endpoint: check it, and that it is still active")
        }
        "ExpiredToken" | "ExpiredTokenException" | "InvalidToken" | "RequestExpired" => {
            Failure::new(ErrorClass::AuthRejected, text).at(Stage::Auth).with_hint(
                "the temporary credentials or the request time were refused: refresh the session, and check the clock",
            )
        }
        "MissingAuthenticationToken" | "MissingAuthenticationTokenException" => {
            Failure::new(ErrorClass::NotFound, text)
                .at(Stage::Check)
                .with_hint("API Gateway says this for unknown paths too: check the URL's stage and resource path")
        }
        _ if status == StatusCode::FORBIDDEN => {
            Failure::new(ErrorClass::PermissionDenied, text).at(Stage::Check).with_hint(
                "the signature was accepted but the identity lacks permission: check its IAM policy for this action",
            )
        }
        _ => Failure::new(ErrorClass::UnexpectedResponse, text).at(Stage::Check),
    }
}

/// For the fuzzer: a storage service's answer to a signed link (`body`, and the same bytes
/// as an x-ms-error-code header when they can be one), read and classified.
pub fn classify_signed_link_answer(body: &[u8]) -> ErrorClass {
    let link = crate::model::signed_link::SignedLink {
        scheme: crate::model::signed_link::Scheme::AzureSas,
        valid_from: None,
        expires: Some(std::time::SystemTime::now()),
        unreadable: None,
    };
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(&body[..body.len().min(64)]) {
        headers.insert("x-ms-error-code", value);
    }
    let ctx = ProbeContext::new(Arc::default(), 14, std::time::Duration::from_secs(1));
    let answer = signed::ErrorAnswer::read(&headers, body);
    signed::refusal(&ctx, &link, StatusCode::FORBIDDEN, &answer).class
}

/// The answer's head as the blackbox metrics describe it (the body's part comes in `check`).
fn record_head(
    ctx: &ProbeContext,
    url: &Url,
    response: &http::Response<hyper::body::Incoming>,
    sent: std::time::Instant,
) {
    let header = |name: header::HeaderName| response.headers().get(name).and_then(|v| v.to_str().ok());
    let version = match response.version() {
        http::Version::HTTP_09 => 0.9,
        http::Version::HTTP_10 => 1.0,
        http::Version::HTTP_2 => 2.0,
        http::Version::HTTP_3 => 3.0,
        _ => 1.1,
    };
    let last_modified = header(header::LAST_MODIFIED)
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    ctx.set_http(crate::model::facts::HttpFacts {
        status: response.status().as_u16(),
        version,
        content_length: header(header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()).unwrap_or(-1),
        last_modified_unix: last_modified,
        processing_secs: sent.elapsed().as_secs_f64(),
        tls: url.scheme() == "https",
        ..Default::default()
    });
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

impl Probe for HttpProbe {
    fn target(&self) -> String {
        redact::url_for_display(&self.url)
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::Dns, Stage::Connect];
        if self.url.scheme() == "https" {
            stages.push(Stage::Tls);
        }
        match self.auth {
            Auth::None if self.signed_link.is_some() => stages.push(Stage::Auth),
            Auth::None => {}
            Auth::OAuth2(_) | Auth::Cloud(_) | Auth::AwsSigV4(_) | Auth::Kerberos(_) => {
                stages.extend([Stage::Token, Stage::Auth])
            }
            _ => stages.push(Stage::Auth),
        }
        stages.push(Stage::Check);
        stages
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(self.run_once(ctx))
    }

    fn retarget(&self, target: &str) -> Result<Arc<dyn Probe>, String> {
        let url = if target.contains("://") {
            let url = Url::parse(target).map_err(|e| format!("`{target}` is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("an http probe needs an http:// or https:// URL, not {}://", url.scheme()));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err("the target URL must not carry credentials; the probe's `auth` supplies them".into());
            }
            url
        } else {
            let (host, port) = super::host_and_port(target)?;
            let mut url = self.url.clone();
            url.set_host(Some(&host)).map_err(|e| format!("`{host}` is not a host name: {e}"))?;
            if port.is_some() {
                url.set_port(port).map_err(|()| format!("cannot set a port on {}", url.scheme()))?;
            }
            url
        };
        // A signed link or keyed URL is a credential: its secret parameters are masked.
        crate::model::signed_link::register_query_secrets(&url);
        let signed_link =
            matches!(self.auth, Auth::None).then(|| crate::model::signed_link::SignedLink::recognise(&url)).flatten();
        Ok(Arc::new(HttpProbe { url, signed_link: signed_link.map(Box::new), ..self.clone() }))
    }
}

#[cfg(test)]
mod tests;
