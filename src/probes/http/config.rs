//! An `http` probe's keys: the URL, method, headers, body, expectations and the
//! credentials (`auth`) in each of their forms.

use super::*;
use crate::model::signed_link::SignedLink;

/// How much of a body `expect.body_contains` looks at.
pub const BODY_CAP: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub(super) enum ApiKeyPlace {
    Header(HeaderName),
    Query(String),
}

#[derive(Debug, Clone)]
pub(super) enum Auth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Bearer {
        token: Secret,
    },
    ApiKey {
        key: Secret,
        place: ApiKeyPlace,
    },
    // The larger forms are boxed: a fleet of bearer probes need not carry their size.
    OAuth2(Box<TokenRequest>),
    /// A token from a cloud identity (Google service account or metadata server, Azure
    /// managed identity or client secret), sent as a bearer token.
    Cloud(Box<crate::identity::cloud::CloudIdentity>),
    /// HTTP Negotiate (SPNEGO) with a Kerberos ticket for HTTP/host.
    Kerberos(Box<crate::identity::kerberos::KerberosAuth>),
    /// The request signed with AWS SigV4, with credentials from any AWS source.
    AwsSigV4(Box<SigV4>),
}

#[derive(Debug, Clone)]
pub(super) struct SigV4 {
    pub(super) credentials: crate::identity::aws::creds::Source,
    pub(super) region: String,
    pub(super) service: String,
}

/// The request body: the config's text, or text that holds a reference (`${…}`), which may
/// be a credential and goes only where the release rule lets it.
#[derive(Debug, Clone)]
pub(super) enum RequestBody {
    Text(bytes::Bytes),
    Holding(Secret),
}

#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub(super) url: Url,
    pub(super) method: Method,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) body: Option<RequestBody>,
    pub(super) expect_status: Option<Vec<u16>>,
    pub(super) body_contains: Option<String>,
    pub(super) auth: Auth,
    pub(super) tls: TlsOptions,
    /// Set when the URL is a signed link and no other credential is configured.
    pub(super) signed_link: Option<Box<crate::model::signed_link::SignedLink>>,
    /// The method was written in the config (otherwise a signed link is fetched ranged).
    pub(super) method_given: bool,
}

pub fn parse(t: &TableReader<'_, '_>) -> Option<Arc<dyn Probe>> {
    // A webhook whose path is its key says so: then the whole URL is masked everywhere.
    let url_is_secret = t.bool("url_is_secret").unwrap_or(false);
    let url = t.required_url_masked("url", "the URL to request", url_is_secret);
    if let Some(u) = &url
        && !matches!(u.scheme(), "http" | "https")
    {
        t.error_at("url", format!("an http probe needs an http:// or https:// URL, not {}://", u.scheme()));
    }
    let method = match t.string("method") {
        Some(m) => match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(method) => Some(method),
            Err(_) => {
                t.error_at("method", format!("`{m}` is not an HTTP method"));
                None
            }
        },
        None => (!t.has("method")).then_some(Method::GET),
    };
    let headers = read_headers(t);
    let body = t.secret_and_references("body").map(|(body, referenced)| match referenced {
        true => RequestBody::Holding(body),
        // Config text, not a credential (still masked in output, as every secret key is).
        false => RequestBody::Text(bytes::Bytes::copy_from_slice(body.read_here().as_bytes())),
    });
    // Every key is read before any error returns, so that one bad value does not make the
    // keys after it look unknown.
    let expect = read_expect(t);
    let auth = read_auth(t);
    let tls = TlsOptions::read(t, None);
    let (expect_status, body_contains) = expect?;
    let (url, auth) = (url?, auth?);
    let signed_link = matches!(auth, Auth::None).then(|| SignedLink::recognise(&url)).flatten().map(Box::new);
    Some(Arc::new(HttpProbe {
        url,
        signed_link,
        method_given: t.has("method"),
        method: method?,
        headers: headers?,
        body,
        expect_status,
        body_contains,
        auth,
        tls: tls?,
    }))
}

pub(super) fn read_headers(t: &TableReader<'_, '_>) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let Some(raw) = t.string_map("headers", is_credential_header) else {
        return (!t.has("headers")).then(Vec::new);
    };
    let mut out = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            t.error_at("headers", format!("`{name}` is not a valid header name"));
            return None;
        };
        let Ok(mut header_value) = HeaderValue::from_str(&value) else {
            t.error_at("headers", format!("the value of header `{name}` contains characters a header cannot carry"));
            return None;
        };
        header_value.set_sensitive(true);
        out.push((header_name, header_value));
    }
    Some(out)
}

/// Headers whose values are credentials even when written literally in the config.
pub(super) fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "cookie", "token", "key", "secret", "auth", "session", "password", "signature"]
        .iter()
        .any(|word| name.contains(word))
}

pub(super) type Expect = (Option<Vec<u16>>, Option<String>);

pub(super) fn read_expect(t: &TableReader<'_, '_>) -> Option<Expect> {
    let Some(expect) = t.table("expect") else {
        return (!t.has("expect")).then_some((None, None));
    };
    let status =
        expect.integer_list("status", 100..=599).map(|v| v.into_iter().map(|s| s as u16).collect::<Vec<u16>>());
    let status_ok = status.is_some() || !expect.has("status");
    let body_contains = expect.string("body_contains");
    let body_ok = body_contains.is_some() || !expect.has("body_contains");
    if let Some(list) = &status
        && list.is_empty()
    {
        expect.error_at("status", "an empty list would accept nothing; leave it out to accept any 2xx");
    }
    expect.finish();
    (status_ok && body_ok).then_some((status, body_contains))
}

pub(super) const AUTH_TYPES: &[&str] = &[
    "none",
    "basic",
    "bearer",
    "api_key",
    "oauth2_client_credentials",
    "oauth2_refresh_token",
    "gcp_service_account",
    "gcp_metadata",
    "azure_managed_identity",
    "azure_client_secret",
    "azure_workload_identity",
    "aws_sigv4",
    "kerberos",
];

pub(super) fn read_auth(t: &TableReader<'_, '_>) -> Option<Auth> {
    let Some(a) = t.table("auth") else {
        return (!t.has("auth")).then_some(Auth::None);
    };
    let kind = a.required_string("type", AUTH_TYPES.join(" | ").as_str());
    let type_known = kind.as_deref().is_some_and(|k| AUTH_TYPES.contains(&k));
    let auth = match kind.as_deref() {
        None => None,
        Some("none") => Some(Auth::None),
        Some("basic") => {
            let username = a.required_string("username", "the user name");
            let password = a.required_secret("password", "the password");
            match (username, password) {
                (Some(username), Some(password)) => {
                    redact::register_basic_auth(&username, password.read_here());
                    Some(Auth::Basic { username, password })
                }
                _ => None,
            }
        }
        Some("bearer") => a.required_secret("token", "the bearer token").map(|token| Auth::Bearer { token }),
        Some("api_key") => read_api_key(&a),
        Some("kerberos") => crate::identity::kerberos::KerberosAuth::read(&a).map(|k| Auth::Kerberos(Box::new(k))),
        Some(grant @ ("oauth2_client_credentials" | "oauth2_refresh_token")) => read_oauth2(&a, grant),
        Some(cloud) if crate::identity::cloud::AUTH_TYPES.contains(&cloud) => {
            crate::identity::cloud::read(&a, cloud, None).map(|c| Auth::Cloud(Box::new(c)))
        }
        Some("aws_sigv4") => {
            let service = a.required_string("service", "the AWS service to sign for, e.g. \"execute-api\"");
            let region = a.required_string("region", "the AWS region, e.g. \"us-east-1\"");
            let credentials = match a.table("credentials") {
                Some(c) => {
                    let source = crate::identity::aws::creds::Source::read(&c, false, "aws_sigv4 credentials");
                    if source.is_some() {
                        c.finish();
                    }
                    source
                }
                None => (!a.has("credentials")).then_some(crate::identity::aws::creds::Source::DefaultChain),
            };
            if matches!(credentials, Some(crate::identity::aws::creds::Source::Anonymous)) {
                a.error_at("credentials", "aws_sigv4 signs requests: anonymous has nothing to sign with");
                return None;
            }
            Some(Auth::AwsSigV4(Box::new(SigV4 { credentials: credentials?, region: region?, service: service? })))
        }
        Some(other) => {
            let hint = crate::config::reader::did_you_mean(other, AUTH_TYPES)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_else(|| format!("; use one of: {}", AUTH_TYPES.join(", ")));
            a.error_at("type", format!("unknown auth type `{other}` for an http probe{hint}"));
            None
        }
    };
    // Unknown keys are only meaningful once the type is known.
    if type_known {
        a.finish();
    }
    auth
}

pub(super) fn read_api_key(a: &TableReader<'_, '_>) -> Option<Auth> {
    let key = a.required_secret("key", "the API key");
    let header = a.string("header");
    let query = a.string("query");
    let place = match (header, query) {
        (Some(h), None) => match HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) => Some(ApiKeyPlace::Header(name)),
            Err(_) => {
                a.error_at("header", format!("`{h}` is not a valid header name"));
                None
            }
        },
        (None, Some(q)) if !q.is_empty() => Some(ApiKeyPlace::Query(q)),
        (Some(_), Some(_)) => {
            a.error_here("set exactly one of `header` and `query`, not both");
            None
        }
        _ => {
            a.error_here("say where the key goes: header = \"X-API-Key\" or query = \"api_key\"");
            None
        }
    };
    Some(Auth::ApiKey { key: key?, place: place? })
}

pub(super) fn read_oauth2(a: &TableReader<'_, '_>, grant_type: &str) -> Option<Auth> {
    let token_url = a.required_url("token_url", "the authorization server's token endpoint");
    if let Some(u) = &token_url
        && !matches!(u.scheme(), "http" | "https")
    {
        a.error_at("token_url", "the token endpoint must be an http:// or https:// URL");
    }
    let client_id = a.required_string("client_id", "the OAuth2 client id");
    let (client_secret, grant, client_auth) = if grant_type == "oauth2_client_credentials" {
        let secret = a.required_secret("client_secret", "the OAuth2 client secret");
        let scope = a.string("scope");
        let client_auth = match a.string("client_auth").as_deref() {
            None | Some("basic") => Some(ClientAuth::Basic),
            Some("post") => Some(ClientAuth::Post),
            Some(other) => {
                a.error_at(
                    "client_auth",
                    format!("`{other}` is not a client authentication method; use \"basic\" or \"post\""),
                );
                None
            }
        };
        (secret.map(Some), Some(Grant::ClientCredentials { scope }), client_auth)
    } else {
        let secret = a.secret("client_secret");
        let refresh = a.required_secret("refresh_token", "the refresh token");
        let secret_ok = secret.is_some() || !a.has("client_secret");
        let grant = refresh.map(|refresh_token| Grant::RefreshToken { refresh_token });
        (secret_ok.then_some(secret), grant, Some(ClientAuth::Basic))
    };
    Some(Auth::OAuth2(Box::new(TokenRequest {
        token_url: token_url?,
        client_id: client_id?,
        client_secret: client_secret?,
        client_auth: client_auth?,
        grant: grant?,
    })))
}
