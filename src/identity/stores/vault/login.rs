//! How a Vault or OpenBao store gets its token: as given (VAULT_TOKEN, ~/.vault-token,
//! `auth = { type = "token" }`), or by logging in (AppRole, userpass, a JWT, a pod's
//! service-account token), once per run and again near the end of the token's TTL.

use http::{Method, StatusCode};

use crate::connect::context::ProbeContext;
use crate::model::error::{ErrorClass, Failure};
use crate::model::redact::Secret;

use super::{Body, VaultStore, errors, failure};

/// How the store logs in.
pub(super) enum Login {
    /// A token as given; `None`: VAULT_TOKEN was not set, read ~/.vault-token at use.
    Token(Option<Secret>),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Secret,
    },
    Userpass {
        mount: String,
        username: String,
        password: Secret,
    },
    /// A signed JWT (a CI system's OIDC token, a workload's) for a `jwt` auth role. With
    /// `${file:…}` the file is read again at each run's login, as such tokens rotate.
    Jwt {
        mount: String,
        role: String,
        jwt: Secret,
    },
    /// A pod's service-account token for a `kubernetes` auth role, read from `token_path`
    /// at each login (the kubelet rotates the projected token in place).
    Kubernetes {
        mount: String,
        role: String,
        token_path: std::path::PathBuf,
    },
}

/// Where the kubelet mounts a pod's service-account token.
pub(super) const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The most a service-account token file may hold (they are a few kilobytes).
const SERVICE_ACCOUNT_TOKEN_CAP: u64 = 64 * 1024;

impl VaultStore {
    /// The token to use: the configured one, or a login's (made once, then kept).
    pub(super) async fn token(&self, ctx: &ProbeContext, name: &str) -> Result<Secret, Failure> {
        let mut kept = self.token.lock().await;
        if let Some((token, renew_at)) = kept.as_ref() {
            if renew_at.is_none_or(|at| std::time::Instant::now() < at) {
                ctx.register_secret(token.read_here());
                return Ok(token.clone());
            }
            ctx.detail(format!(
                "secret store `{name}`: the login's token is near the end of its TTL; logging in again"
            ));
        }
        let (token, ttl) = match &self.login {
            Login::Token(Some(token)) => (token.clone(), None),
            Login::Token(None) => {
                let file = std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".vault-token"));
                let read = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok());
                match read.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
                    Some(token) => (Secret::new(token), None),
                    None => {
                        return Err(failure(
                            ErrorClass::Config,
                            format!(
                                "secret store `{name}` has no token: VAULT_TOKEN is not set and there is no ~/.vault-token"
                            ),
                            "export VAULT_TOKEN (or log in with the vault/bao CLI), or give the store an auth table",
                        ));
                    }
                }
            }
            Login::AppRole { mount, role_id, secret_id } => {
                let body = Body { fields: vec![("role_id", role_id)], secret: Some(("secret_id", secret_id)) };
                self.login(ctx, name, &format!("auth/{mount}/login"), body, "AppRole (role_id and secret_id)").await?
            }
            Login::Jwt { mount, role, jwt } => {
                let body = Body { fields: vec![("role", role)], secret: Some(("jwt", jwt)) };
                self.login(ctx, name, &format!("auth/{mount}/login"), body, "a JWT (jwt auth role)").await?
            }
            Login::Kubernetes { mount, role, token_path } => {
                let jwt = service_account_token(name, token_path)?;
                ctx.register_secret(jwt.read_here());
                let body = Body { fields: vec![("role", role)], secret: Some(("jwt", &jwt)) };
                self.login(
                    ctx,
                    name,
                    &format!("auth/{mount}/login"),
                    body,
                    "kubernetes (the pod's service-account token)",
                )
                .await?
            }
            Login::Userpass { mount, username, password } => {
                let body = Body { fields: Vec::new(), secret: Some(("password", password)) };
                let user: String =
                    percent_encoding::utf8_percent_encode(username, percent_encoding::NON_ALPHANUMERIC).to_string();
                self.login(ctx, name, &format!("auth/{mount}/login/{user}"), body, "userpass (username and password)")
                    .await?
            }
        };
        ctx.register_secret(token.read_here());
        let renew_at = ttl.map(|ttl| std::time::Instant::now() + ttl.mul_f64(0.8));
        *kept = Some((token.clone(), renew_at));
        Ok(token)
    }

    async fn login(
        &self,
        ctx: &ProbeContext,
        name: &str,
        path: &str,
        body: Body<'_>,
        how: &str,
    ) -> Result<(Secret, Option<std::time::Duration>), Failure> {
        let (status, answer) = self.call(ctx, name, Method::POST, path, Some(body), None).await?;
        if let Some(token) = answer["auth"]["client_token"].as_str().filter(|_| status.is_success()) {
            ctx.register_secret(token);
            // 0: a token that does not expire (root-like); kept until the store refuses it.
            let ttl = answer["auth"]["lease_duration"]
                .as_u64()
                .filter(|&seconds| seconds > 0)
                .map(std::time::Duration::from_secs);
            let lasts = ttl.map(|t| format!(", token TTL {}s", t.as_secs())).unwrap_or_default();
            ctx.detail(format!("secret store `{name}`: logged in with {how}{lasts}"));
            return Ok((Secret::issued(token.to_string()), ttl));
        }
        let said = errors(ctx, &answer);
        let class = if matches!(status, StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) {
            ErrorClass::AuthRejected
        } else {
            ErrorClass::UnexpectedResponse
        };
        Err(failure(
            class,
            format!("secret store `{name}` refused the {how} login: HTTP {status}{said}"),
            "check the store's credentials (a secret_id expires and may be single-use; a jwt or kubernetes role binds audiences, claims or service accounts), and the auth method's mount",
        ))
    }
}

/// The service-account token a `kubernetes` login presents, read now: absent when not in a
/// pod, so the failure says where it looked.
fn service_account_token(name: &str, path: &std::path::Path) -> Result<Secret, Failure> {
    use std::io::Read;
    let unreadable = |why: String| {
        failure(
            ErrorClass::Config,
            format!("secret store `{name}`: cannot read the service-account token at {}: {why}", path.display()),
            "outside a pod, give the auth table a token_path (a projected token the cluster issued)",
        )
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.kind().to_string()))?;
    let mut text = String::new();
    file.take(SERVICE_ACCOUNT_TOKEN_CAP).read_to_string(&mut text).map_err(|e| unreadable(e.kind().to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(unreadable("the file is empty".to_string()));
    }
    Ok(Secret::new(token.to_string()))
}
