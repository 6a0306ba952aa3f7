//! Vault and OpenBao (one HTTP API): KV v1 and v2 read alike (`secret/app` reads
//! `secret/data/app` on a v2 mount, as `vault kv get` does), any other path is a plain read
//! (dynamic database credentials, with their lease given back after the probe). Logins:
//! a token (VAULT_TOKEN, ~/.vault-token), AppRole, userpass, a JWT or a pod's service-account
//! token (kubernetes), made once per run and kept.

use bytes::Bytes;
use http::{Method, StatusCode, header};
use url::Url;

use crate::config::reader::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::httpc;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::redact::Secret;
use crate::model::release::Release;

use super::{StoreRead, failure};

mod login;
use login::{Login, SERVICE_ACCOUNT_TOKEN};

/// The most a Vault answer may hold: secrets are small.
const ANSWER_CAP: usize = 1024 * 1024;

pub struct VaultStore {
    /// `None` when neither `address` nor VAULT_ADDR gave one (said at the first read).
    address: Option<Url>,
    tls: TlsOptions,
    namespace: Option<String>,
    login: Login,
    allow_unverified_password: bool,
    /// The token a login made, kept for the run (or by `serve` between scrapes), and when
    /// to log in again: at four fifths of the token's TTL, before the store refuses it.
    token: tokio::sync::Mutex<Option<(Secret, Option<std::time::Instant>)>>,
    /// Mounts already asked about: their path, and whether they are KV version 2. Asking is
    /// done under the lock, so that probes starting together ask once, not each.
    mounts: tokio::sync::Mutex<Vec<(String, bool)>>,
    /// A given token's own life (`lookup-self`), asked beside the first read and again
    /// when older than [`TOKEN_LIFE_ASKED_AGAIN`] (`serve` runs for months; tokens get
    /// renewed), and when it was asked. Asked under the lock: probes starting together ask once.
    given_token_life: tokio::sync::Mutex<Option<(std::time::Instant, Option<TokenLife>)>>,
}

/// How long `serve` trusts what `lookup-self` said of a given token's end.
const TOKEN_LIFE_ASKED_AGAIN: std::time::Duration = std::time::Duration::from_secs(600);

/// A given token's issue and end (none: it does not expire, as a root token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokenLife {
    issued: Option<i64>,
    ends: Option<i64>,
}

impl TokenLife {
    /// From `auth/token/lookup-self`'s data: `ttl` is the seconds left (0: never ends).
    fn of(data: &serde_json::Value, now: i64) -> Option<TokenLife> {
        let ttl = data["ttl"].as_i64()?;
        let issued = data["issue_time"]
            .as_str()
            .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_secs() as i64);
        Some(TokenLife { issued, ends: (ttl > 0).then_some(now + ttl) })
    }
}

impl VaultStore {
    /// The built-in `vault` store, from the environment as the CLIs read it.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> VaultStore {
        let tls = TlsOptions {
            ca: env("VAULT_CACERT").and_then(|path| {
                let pem = std::fs::read(path).ok()?;
                crate::connect::tls::parse_ca(&pem).ok().map(std::sync::Arc::new)
            }),
            ..TlsOptions::default()
        };
        let token = env("VAULT_TOKEN").filter(|t| !t.is_empty()).map(Secret::new);
        VaultStore {
            address: env("VAULT_ADDR").and_then(|a| Url::parse(&a).ok()),
            tls,
            namespace: env("VAULT_NAMESPACE").filter(|n| !n.is_empty()),
            login: Login::Token(token),
            allow_unverified_password: false,
            token: tokio::sync::Mutex::new(None),
            mounts: tokio::sync::Mutex::new(Vec::new()),
            given_token_life: tokio::sync::Mutex::new(None),
        }
    }

    /// A `[[secret_store]]` table of type vault: the environment's values unless the
    /// table says otherwise.
    pub fn from_table(t: &TableReader<'_, '_>, env: &dyn Fn(&str) -> Option<String>) -> Option<VaultStore> {
        let mut store = VaultStore::from_env(env);
        if t.has("address") {
            store.address = Some(t.url("address")?);
        }
        if t.has("tls") {
            store.tls = TlsOptions::read(t, None)?;
        }
        if let Some(namespace) = t.string("namespace") {
            store.namespace = Some(namespace);
        }
        store.allow_unverified_password = t.bool("allow_unverified_password").unwrap_or(false);
        t.duration("timeout");
        if let Some(auth) = t.table("auth") {
            let kind = auth.required_string("type", "token, approle, userpass, jwt or kubernetes")?;
            let mount = |default: &str| auth.string("mount").unwrap_or_else(|| default.to_string());
            store.login = match kind.as_str() {
                "token" => Login::Token(Some(auth.required_secret("token", "the Vault token")?)),
                "approle" => Login::AppRole {
                    mount: mount("approle"),
                    role_id: auth.required_string("role_id", "the AppRole's role_id")?,
                    secret_id: auth.required_secret("secret_id", "the AppRole's secret_id")?,
                },
                "userpass" => Login::Userpass {
                    mount: mount("userpass"),
                    username: auth.required_string("username", "the user name")?,
                    password: auth.required_secret("password", "the password")?,
                },
                "jwt" => Login::Jwt {
                    mount: mount("jwt"),
                    role: auth.required_string("role", "the jwt auth role")?,
                    jwt: auth.required_secret("jwt", "the signed JWT, e.g. ${file:/var/run/secrets/token}")?,
                },
                "kubernetes" => Login::Kubernetes {
                    mount: mount("kubernetes"),
                    role: auth.required_string("role", "the kubernetes auth role")?,
                    token_path: auth.string("token_path").unwrap_or_else(|| SERVICE_ACCOUNT_TOKEN.to_string()).into(),
                },
                other => {
                    auth.error_at(
                        "type",
                        format!(
                            "unknown Vault auth type `{other}`; implemented: token, approle, userpass, jwt, kubernetes"
                        ),
                    );
                    return None;
                }
            };
            auth.finish();
        }
        Some(store)
    }

    /// Reads `path` (KV v1 or v2 alike, or any other secret engine's path). A given token's
    /// end is asked beside the first read (a login's is renewed by logging in again).
    pub async fn read(&self, ctx: &ProbeContext, name: &str, path: &str) -> Result<StoreRead, Failure> {
        let token = self.token(ctx, name).await?;
        let (read, life) =
            tokio::join!(self.read_with(ctx, name, path, token.clone()), self.given_token_life(ctx, name, &token));
        if let Some(life) = life {
            let what = format!("the token of secret store `{name}`");
            match life.ends {
                Some(ends) => {
                    let _ = ctx.note_expiry(&what, ends, life.issued, None);
                }
                None => ctx.detail(format!("credential: {what} does not expire")),
            }
        }
        read
    }

    /// A given token's life, asked once per run (by `serve` every ten minutes): none for a
    /// login's token, with `hygiene = false`, or when the store does not say.
    async fn given_token_life(&self, ctx: &ProbeContext, name: &str, token: &Secret) -> Option<TokenLife> {
        if !matches!(self.login, Login::Token(_)) || !ctx.hygiene.enabled {
            return None;
        }
        let mut kept = self.given_token_life.lock().await;
        if let Some((asked, life)) = *kept
            && asked.elapsed() < TOKEN_LIFE_ASKED_AGAIN
        {
            return life;
        }
        let life = match self.call(ctx, name, Method::GET, "auth/token/lookup-self", None, Some(token)).await {
            Ok((status, answer)) if status.is_success() => {
                TokenLife::of(&answer["data"], crate::model::expiry::now_unix())
            }
            _ => None,
        };
        *kept = Some((std::time::Instant::now(), life));
        life
    }

    async fn read_with(
        &self,
        ctx: &ProbeContext,
        name: &str,
        path: &str,
        mut token: Secret,
    ) -> Result<StoreRead, Failure> {
        let api_path = self.kv_path(ctx, name, &token, path).await?;
        let (mut status, mut answer) = self.call(ctx, name, Method::GET, &api_path, None, Some(&token)).await?;
        if status == StatusCode::FORBIDDEN && !matches!(self.login, Login::Token(_)) {
            // A login's token kept past its TTL (serve keeps it between scrapes): log in
            // again once, then judge.
            *self.token.lock().await = None;
            token = self.token(ctx, name).await?;
            (status, answer) = self.call(ctx, name, Method::GET, &api_path, None, Some(&token)).await?;
        }
        if !status.is_success() {
            return Err(self.refusal(ctx, name, &token, (path, &api_path), status, &answer).await);
        }
        let data = &answer["data"];
        // KV v2 nests the fields in data.data; a v2 secret deleted at its current version
        // answers with data.data null.
        let fields = match (api_path != path, data.get("data")) {
            (true, Some(serde_json::Value::Object(fields))) => fields.clone(),
            (true, _) => {
                return Err(failure(
                    ErrorClass::NotFound,
                    format!("secret store `{name}`: `{path}` has no current version (deleted or destroyed)"),
                    "undelete it (vault kv undelete) or write a new version",
                ));
            }
            (false, _) => data.as_object().cloned().unwrap_or_default(),
        };
        if api_path != path {
            note_kv_age(ctx, name, path, &data["metadata"]);
        }
        let lease = answer["lease_id"].as_str().filter(|l| !l.is_empty()).map(str::to_string);
        if let Some(lease) = &lease {
            let ttl = answer["lease_duration"].as_u64().unwrap_or(0);
            if ttl > 0 {
                let now = crate::model::expiry::now_unix();
                let what = format!("the lease on `{path}` from secret store `{name}`");
                let _ = ctx.note_expiry(&what, now + ttl as i64, Some(now), None);
            }
            let shown: String = lease.chars().take(lease.rfind('/').map_or(12, |i| i + 9)).collect();
            ctx.detail(format!(
                "secret store `{name}`: `{path}` is leased ({shown}…, ttl {ttl} s); given back after the probe"
            ));
        } else {
            ctx.detail(format!("secret store `{name}`: read `{path}`"));
        }
        Ok(StoreRead { fields, whole: None, lease })
    }

    /// Gives a lease back.
    pub async fn revoke(&self, ctx: &ProbeContext, name: &str, lease: &str) {
        let Ok(token) = self.token(ctx, name).await else { return };
        let body = Body { fields: vec![("lease_id", lease)], secret: None };
        // Not given back, the credentials live until their TTL: said as a warning, since a
        // health cron would leave a trail of them.
        match self.call(ctx, name, Method::PUT, "sys/leases/revoke", Some(body), Some(&token)).await {
            Ok((status, _)) if status.is_success() => ctx.detail(format!("secret store `{name}`: lease revoked")),
            Ok((status, answer)) => ctx.warn(format!(
                "secret store `{name}` did not revoke the lease (HTTP {status}{}): the credentials stay valid until their TTL{}",
                errors(ctx, &answer),
                if status == StatusCode::FORBIDDEN { "; grant the token update on sys/leases/revoke" } else { "" }
            )),
            Err(failure) => ctx.warn(format!(
                "secret store `{name}`: revoking the lease failed ({}): the credentials stay valid until their TTL",
                failure.message
            )),
        }
    }

    /// The API path to read: `MOUNT/data/REST` on a KV v2 mount (asked of the server, as
    /// the CLI does), the path itself otherwise.
    async fn kv_path(&self, ctx: &ProbeContext, name: &str, token: &Secret, path: &str) -> Result<String, Failure> {
        let in_mount = |mount: &str| {
            path.strip_prefix(mount).filter(|rest| mount.is_empty() || rest.is_empty() || rest.starts_with('/'))
        };
        let mut mounts = self.mounts.lock().await;
        let known = mounts.iter().find(|(mount, _)| in_mount(mount).is_some()).cloned();
        let (mount, v2) = match known {
            // A mount's version was asked once for the run (or for serve's config).
            Some(known) => known,
            None => {
                let (status, answer) = self
                    .call(ctx, name, Method::GET, &format!("sys/internal/ui/mounts/{path}"), None, Some(token))
                    .await?;
                if !status.is_success() {
                    // Tokens without access to the mount's description read the path as given.
                    return Ok(path.to_string());
                }
                let data = &answer["data"];
                let v2 = data["type"] == "kv" && data["options"]["version"] == "2";
                let mount = data["path"].as_str().unwrap_or_default().trim_end_matches('/').to_string();
                if !mount.is_empty() {
                    mounts.push((mount.clone(), v2));
                }
                (mount, v2)
            }
        };
        drop(mounts);
        match in_mount(&mount) {
            Some(rest) if v2 && !mount.is_empty() => Ok(format!("{mount}/data/{}", rest.trim_start_matches('/'))),
            _ => Ok(path.to_string()),
        }
    }

    /// A refused read, explained: a token the server does not know (bad, expired or revoked)
    /// is `auth_rejected`; a known token whose policy forbids the path `permission_denied`.
    async fn refusal(
        &self,
        ctx: &ProbeContext,
        name: &str,
        token: &Secret,
        (path, api_path): (&str, &str),
        status: StatusCode,
        answer: &serde_json::Value,
    ) -> Failure {
        let said = errors(ctx, answer);
        match status {
            StatusCode::NOT_FOUND => failure(
                ErrorClass::NotFound,
                format!("secret store `{name}` has no secret at `{path}`{said}"),
                "check the path (MOUNT/PATH, as `vault kv get MOUNT/PATH` takes it) and the namespace",
            ),
            StatusCode::FORBIDDEN => {
                // Vault answers 403 to a bad token and to a policy alike: ask who we are.
                let known = matches!(
                    self.call(ctx, name, Method::GET, "auth/token/lookup-self", None, Some(token)).await,
                    Ok((s, _)) if s.is_success()
                );
                if known {
                    failure(
                        ErrorClass::PermissionDenied,
                        format!("secret store `{name}`: the token may not read `{path}`{said}"),
                        format!(
                            "grant the token's policy read on it: path \"{api_path}\" {{ capabilities = [\"read\"] }}"
                        ),
                    )
                } else {
                    failure(
                        ErrorClass::AuthRejected,
                        format!("secret store `{name}` does not accept the token (bad, expired or revoked){said}"),
                        "get a new token (vault login, or the store's auth table), and check VAULT_NAMESPACE",
                    )
                }
            }
            _ => failure(
                ErrorClass::UnexpectedResponse,
                format!("secret store `{name}` answered HTTP {status} reading `{path}`{said}"),
                "a sealed or standby server answers 503: check `vault status`",
            ),
        }
    }

    /// One API call: its status and JSON answer (null when not JSON).
    async fn call(
        &self,
        ctx: &ProbeContext,
        name: &str,
        method: Method,
        path: &str,
        body: Option<Body<'_>>,
        token: Option<&Secret>,
    ) -> Result<(StatusCode, serde_json::Value), Failure> {
        let Some(address) = &self.address else {
            return Err(failure(
                ErrorClass::Config,
                format!("secret store `{name}` has no address: VAULT_ADDR is not set"),
                "export VAULT_ADDR, or give the store a [[secret_store]] table with address",
            ));
        };
        let url = address
            .join(&format!("v1/{path}"))
            .map_err(|e| failure(ErrorClass::Config, format!("secret store `{name}`: bad path `{path}`: {e}"), ""))?;
        let what = match body.as_ref().and_then(|b| b.secret) {
            Some((field, _)) => format!("secret store `{name}`'s login {field}"),
            None => format!("secret store `{name}`'s token"),
        };
        let sends_secret = token.is_some() || body.as_ref().is_some_and(|b| b.secret.is_some());
        if sends_secret && ctx.consent_or(self.allow_unverified_password).is_none() {
            ctx.release_over_plain_http(&url, &what).map_err(|f| f.at(Stage::Secret))?;
        }
        let at_store = |f: Failure| Failure {
            message: format!("secret store `{name}` ({}): {}", address.as_str().trim_end_matches('/'), f.message),
            ..f.at(Stage::Secret)
        };
        let mut conn = httpc::connect(ctx, &url, &self.tls, Record::Quietly).await.map_err(at_store)?;
        let proof = match sends_secret {
            true => {
                Some(conn.release(ctx, &url, &what, ctx.consent_or(self.allow_unverified_password)).map_err(at_store)?)
            }
            false => None,
        };
        let mut headers = vec![(header::ACCEPT, http::HeaderValue::from_static("application/json"))];
        if let (Some(token), Some(proof)) = (token, &proof) {
            let value = httpc::sensitive_header(token.release(proof))?;
            headers.push((header::HeaderName::from_static("x-vault-token"), value));
        }
        if let Some(namespace) = &self.namespace {
            let value = http::HeaderValue::from_str(namespace)
                .map_err(|_| failure(ErrorClass::Config, format!("secret store `{name}`: bad namespace"), ""))?;
            headers.push((header::HeaderName::from_static("x-vault-namespace"), value));
        }
        if body.is_some() {
            headers.push((header::CONTENT_TYPE, http::HeaderValue::from_static("application/json")));
        }
        let body = body.map(|b| b.json(proof.as_ref())).unwrap_or_default();
        let mut response = conn.send(method, &url, &headers, Bytes::from(body)).await.map_err(at_store)?;
        let status = response.status();
        let (bytes, _) = httpc::read_capped(response.body_mut(), ANSWER_CAP).await.map_err(at_store)?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)))
    }
}

/// A request's JSON body. A login's secret field is written only with the release rule's
/// proof for the connection it goes on.
struct Body<'a> {
    fields: Vec<(&'static str, &'a str)>,
    secret: Option<(&'static str, &'a Secret)>,
}

impl Body<'_> {
    fn json(&self, proof: Option<&Release>) -> String {
        let mut map = serde_json::Map::new();
        for (field, value) in &self.fields {
            map.insert(field.to_string(), (*value).into());
        }
        if let (Some((field, secret)), Some(proof)) = (self.secret, proof) {
            map.insert(field.to_string(), secret.release(proof).into());
        }
        serde_json::Value::Object(map).to_string()
    }
}

/// Vault's `errors` list, scrubbed and capped, as `: …` (empty when none).
fn errors(ctx: &ProbeContext, answer: &serde_json::Value) -> String {
    let list: Vec<&str> =
        answer["errors"].as_array().map(|a| a.iter().filter_map(|e| e.as_str()).collect()).unwrap_or_default();
    if list.is_empty() {
        return String::new();
    }
    format!(" ({})", ctx.server_text(&list.join("; "), 300))
}

/// A KV v2 secret's current version says when it was written (`created_time`): the age of
/// the credential it holds, as far as the store knows (a rotation writes a new version).
/// Compared with the probe's `max_age`; KV v1 and other engines say nothing.
fn note_kv_age(ctx: &ProbeContext, name: &str, path: &str, metadata: &serde_json::Value) {
    let Some(created) = metadata["created_time"].as_str() else { return };
    let Ok(at) = humantime::parse_rfc3339(created) else { return };
    let Ok(since_epoch) = at.duration_since(std::time::UNIX_EPOCH) else { return };
    let version = metadata["version"].as_u64().map(|v| format!(" (version {v})")).unwrap_or_default();
    ctx.note_age(
        &format!("the secret `{path}`{version} in secret store `{name}`"),
        since_epoch.as_secs() as i64,
        "rotate the credential and write the new one as a new version (vault kv put)",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_life_is_read_from_lookup_self() {
        let data = serde_json::json!({ "ttl": 3600, "issue_time": "2026-12-07T01:00:00.123456789Z" });
        let life = TokenLife::of(&data, 1_000).unwrap();
        assert_eq!(life.ends, Some(4_600));
        assert_eq!(life.issued, Some(1_796_605_200));
        // A root token: ttl 0, no end.
        let root = TokenLife::of(&serde_json::json!({ "ttl": 0, "issue_time": null }), 1_000).unwrap();
        assert_eq!(root, TokenLife { issued: None, ends: None });
        assert_eq!(TokenLife::of(&serde_json::Value::Null, 1_000), None);
    }
}
